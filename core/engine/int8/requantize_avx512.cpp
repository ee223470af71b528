// The requantization row with AVX-512 intrinsics: eight channels per step, in 64-bit lanes
// (vpmuldq products, vpsravq shifts, and vpmovqb to narrow the codes to bytes). Exactly the
// arithmetic of requantizeRowPortable; the tests compare both with the scalar requantize().

#include "engine/int8/requantize.h"

#include <immintrin.h>

namespace qe::int8 {

bool avx512Available()
{
    static const bool available = __builtin_cpu_supports("avx512f");
    return available;
}

__attribute__((target("avx512f"))) void requantizeRowAvx512(const std::int32_t* a, std::uint8_t* y, std::int64_t channels,
                                                             const ChannelRequantization& r, std::int32_t zeroPoint,
                                                             std::int32_t codeMin, std::int32_t codeMax)
{
    const __m512i zero = _mm512_set1_epi64(zeroPoint);
    const __m512i lo = _mm512_set1_epi64(codeMin), hi = _mm512_set1_epi64(codeMax);
    const __m512i one = _mm512_set1_epi64(1);
    std::int64_t c = 0;
    for (; c + 8 <= channels; c += 8) {
        const __m256i sum = _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + c)),
                                             _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.bias.data() + c)));
        const __m512i v = _mm512_mul_epi32(_mm512_cvtepi32_epi64(sum),
                                           _mm512_cvtepi32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.multiplier.data() + c))));
        const __m512i shift = _mm512_loadu_si512(r.rightShift.data() + c);
        const __m512i half = _mm512_loadu_si512(r.half.data() + c);
        const __m512i mask = _mm512_loadu_si512(r.lowMask.data() + c);
        // floor((v + half) / 2^s) by an arithmetic shift; ties that went to an odd value go back.
        __m512i rounded = _mm512_srav_epi64(_mm512_add_epi64(v, half), shift);
        const __mmask8 tie = _mm512_cmpeq_epi64_mask(_mm512_and_si512(v, mask), half);
        rounded = _mm512_mask_sub_epi64(rounded, tie, rounded, _mm512_and_si512(rounded, one));
        const __m512i code = _mm512_min_epi64(_mm512_max_epi64(_mm512_add_epi64(rounded, zero), lo), hi);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(y + c), _mm512_cvtepi64_epi8(code));
    }
    if (c < channels) {
        // The last channels: the portable row on the tail, with the per-channel arrays offset.
        for (; c < channels; ++c) {
            const FixedPointMultiplier m{r.multiplier[static_cast<std::size_t>(c)], static_cast<int>(r.rightShift[static_cast<std::size_t>(c)])};
            y[c] = static_cast<std::uint8_t>(requantize(a[c] + r.bias[static_cast<std::size_t>(c)], m, zeroPoint, codeMin, codeMax));
        }
    }
}

void requantizeChannelsLast(const std::int32_t* acc, std::uint8_t* out, std::int64_t pixels, std::int64_t channels,
                            const ChannelRequantization& r, std::int32_t zeroPoint, std::int32_t codeMin, std::int32_t codeMax)
{
    const bool wide = avx512Available() && channels >= 8;
#pragma omp parallel for schedule(static) if (pixels * channels >= (1 << 15))
    for (std::int64_t p = 0; p < pixels; ++p) {
        if (wide)
            requantizeRowAvx512(acc + p * channels, out + p * channels, channels, r, zeroPoint, codeMin, codeMax);
        else
            requantizeRowPortable(acc + p * channels, out + p * channels, channels, r, zeroPoint, codeMin, codeMax);
    }
}

}  // namespace qe::int8
