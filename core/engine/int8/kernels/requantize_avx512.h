#pragma once
// The AVX-512 form of requantize() for 16 int32 accumulators at once, shared by the separate
// requantization pass (requantize_avx512.cpp) and the epilogues of our fused kernels
// (fused_kernels.cpp). Exactly the scalar arithmetic: the 64-bit products of the even and the odd
// lanes (vpmuldq), each rounded half to even by one arithmetic shift, clamped, interleaved back.
// Only for translation units that call it where avx512Available(); the functions carry the
// target attribute, so the rest of such a file still runs on any x86-64.

#include "engine/int8/kernels/requantize.h"

#include <immintrin.h>

#define QE_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

namespace qe::int8 {

// The clamp and output zero-point in the lanes requantize16 uses them.
struct VectorClamp {
    __m512i lowest, highest;  // codeMin - zeroPoint and codeMax - zeroPoint, 64-bit lanes
    __m512i zeroPoint;        // 32-bit lanes
};

QE_TARGET_AVX512 inline VectorClamp makeVectorClamp(std::int32_t zeroPoint, std::int32_t codeMin, std::int32_t codeMax)
{
    return {_mm512_set1_epi64(codeMin - zeroPoint), _mm512_set1_epi64(codeMax - zeroPoint), _mm512_set1_epi32(zeroPoint)};
}

// round_half_even(product / 2^shift), clamped: floor((p + half - 1 + parity(floor(p / 2^s))) / 2^s)
// rounds an exact tie up exactly when floor(p / 2^s) is odd.
QE_TARGET_AVX512 inline __m512i roundShiftClamp(__m512i product, const std::int64_t* shift, const std::int64_t* halfMinusOne,
                                                const VectorClamp& clamp)
{
    const __m512i s = _mm512_load_si512(shift);
    const __m512i parity = _mm512_and_si512(_mm512_srav_epi64(product, s), _mm512_set1_epi64(1));
    const __m512i biased = _mm512_add_epi64(product, _mm512_load_si512(halfMinusOne));
    const __m512i rounded = _mm512_srav_epi64(_mm512_add_epi64(biased, parity), s);
    return _mm512_min_epi64(_mm512_max_epi64(rounded, clamp.lowest), clamp.highest);
}

// Sixteen accumulators of the channels of `block`, bias not yet added, to sixteen output codes.
QE_TARGET_AVX512 inline __m128i requantize16(__m512i accumulators, const RequantizationBlock& block, const VectorClamp& clamp)
{
    const __m512i v = _mm512_add_epi32(accumulators, _mm512_load_si512(block.bias));
    const __m512i m = _mm512_load_si512(block.multiplier);
    const __m512i even = roundShiftClamp(_mm512_mul_epi32(v, m), block.shiftEven, block.halfMinusOneEven, clamp);
    const __m512i odd = roundShiftClamp(_mm512_mul_epi32(_mm512_srli_epi64(v, 32), _mm512_srli_epi64(m, 32)), block.shiftOdd,
                                        block.halfMinusOneOdd, clamp);
    // Clamped, each result fits the low half of its 64-bit lane: interleave them back to 16 lanes.
    const __m512i codes = _mm512_add_epi32(_mm512_mask_mov_epi32(even, 0xAAAA, _mm512_slli_epi64(odd, 32)), clamp.zeroPoint);
    return _mm512_cvtepi32_epi8(codes);
}

}  // namespace qe::int8
