// Requantization with AVX-512 intrinsics: eight channels per step in 64-bit lanes (vpmuldq
// products, vpsravq shifts, vpmovqb to narrow the codes to bytes), the channel block's
// parameters held in registers across the pixels. Exactly the arithmetic of the scalar
// requantize(); the tests compare both.

#include "engine/int8/requantize.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>

namespace qe::int8 {

bool avx512Available()
{
    static const bool available = __builtin_cpu_supports("avx512f");
    return available;
}

__attribute__((target("avx512f"))) void requantizeRowsAvx512(const std::int32_t* acc, std::uint8_t* out, std::int64_t pixels,
                                                              std::int64_t channels, const ChannelRequantization& r,
                                                              std::int32_t zeroPoint, std::int32_t codeMin, std::int32_t codeMax)
{
    const __m512i zero = _mm512_set1_epi64(zeroPoint);
    const __m512i lo = _mm512_set1_epi64(codeMin), hi = _mm512_set1_epi64(codeMax);
    const __m512i one = _mm512_set1_epi64(1);
    std::int64_t c = 0;
    // Channels outside, pixels inside: a block's parameters stay in registers for every pixel.
    for (; c + 8 <= channels; c += 8) {
        const __m256i bias = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.bias.data() + c));
        const __m512i multiplier = _mm512_cvtepi32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.multiplier.data() + c)));
        const __m512i shift = _mm512_loadu_si512(r.rightShift.data() + c);
        const __m512i halfMinusOne = _mm512_sub_epi64(_mm512_loadu_si512(r.half.data() + c), one);
        for (std::int64_t p = 0; p < pixels; ++p) {
            const __m256i sum = _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + p * channels + c)), bias);
            const __m512i v = _mm512_mul_epi32(_mm512_cvtepi32_epi64(sum), multiplier);
            // Round half to even in one shift: floor((v + half - 1 + parity(floor(v / 2^s))) / 2^s).
            const __m512i parity = _mm512_and_si512(_mm512_srav_epi64(v, shift), one);
            const __m512i rounded = _mm512_srav_epi64(_mm512_add_epi64(v, _mm512_add_epi64(halfMinusOne, parity)), shift);
            const __m512i code = _mm512_min_epi64(_mm512_max_epi64(_mm512_add_epi64(rounded, zero), lo), hi);
            _mm_storel_epi64(reinterpret_cast<__m128i*>(out + p * channels + c), _mm512_cvtepi64_epi8(code));
        }
    }
    for (; c < channels; ++c) {  // the last channels, scalar
        const FixedPointMultiplier m{r.multiplier[static_cast<std::size_t>(c)], static_cast<int>(r.rightShift[static_cast<std::size_t>(c)])};
        for (std::int64_t p = 0; p < pixels; ++p)
            out[p * channels + c] = static_cast<std::uint8_t>(
                requantize(acc[p * channels + c] + r.bias[static_cast<std::size_t>(c)], m, zeroPoint, codeMin, codeMax));
    }
}

void requantizeChannelsLast(const std::int32_t* acc, std::uint8_t* out, std::int64_t pixels, std::int64_t channels,
                            const ChannelRequantization& r, std::int32_t zeroPoint, std::int32_t codeMin, std::int32_t codeMax)
{
    const bool wide = avx512Available() && channels >= 8;
    // Blocks of pixels, one per thread at most, each requantized channel block by channel block.
    const int threads = pixels * channels >= (1 << 15) ? omp_get_max_threads() : 1;
    const std::int64_t block = (pixels + threads - 1) / threads;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int t = 0; t < threads; ++t) {
        const std::int64_t first = t * block, count = std::min(block, pixels - first);
        if (count <= 0)
            continue;
        if (wide) {
            requantizeRowsAvx512(acc + first * channels, out + first * channels, count, channels, r, zeroPoint, codeMin, codeMax);
        } else {
            for (std::int64_t p = first; p < first + count; ++p)
                requantizeRowPortable(acc + p * channels, out + p * channels, channels, r, zeroPoint, codeMin, codeMax);
        }
    }
}

}  // namespace qe::int8
