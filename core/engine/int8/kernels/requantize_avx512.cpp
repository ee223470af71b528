// The separate requantization pass with AVX-512: sixteen channels per step (requantize16 of
// requantize_avx512.h). Exactly the arithmetic of the scalar requantize(); the tests compare both.

#include "engine/int8/kernels/requantize_avx512.h"

#include <omp.h>

#include <algorithm>

namespace qe::int8 {

bool avx512Available()
{
    static const bool available =
        __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    return available;
}

QE_TARGET_AVX512 void requantizeRowsAvx512(const std::int32_t* acc, std::uint8_t* out, std::int64_t pixels, std::int64_t channels,
                                           const ChannelRequantization& r, std::int32_t zeroPoint, std::int32_t codeMin,
                                           std::int32_t codeMax)
{
    const VectorClamp clamp = makeVectorClamp(zeroPoint, codeMin, codeMax);
    const RequantizationBlock* blocks = r.blocks.data();
    for (std::int64_t p = 0; p < pixels; ++p) {
        const std::int32_t* a = acc + p * channels;
        std::uint8_t* y = out + p * channels;
        std::int64_t c = 0;
        for (; c + 16 <= channels; c += 16)
            _mm_storeu_si128(reinterpret_cast<__m128i*>(y + c), requantize16(_mm512_loadu_si512(a + c), blocks[c / 16], clamp));
        if (c < channels) {
            const auto mask = static_cast<__mmask16>((1u << (channels - c)) - 1);
            _mm_mask_storeu_epi8(y + c, mask, requantize16(_mm512_maskz_loadu_epi32(mask, a + c), blocks[c / 16], clamp));
        }
    }
}

void requantizeChannelsLast(const std::int32_t* acc, std::uint8_t* out, std::int64_t pixels, std::int64_t channels,
                            const ChannelRequantization& r, std::int32_t zeroPoint, std::int32_t codeMin, std::int32_t codeMax)
{
    const bool wide = avx512Available();
    // Blocks of pixels, one per thread at most.
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
