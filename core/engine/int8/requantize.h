#pragma once
// Integer requantization: turning an int32 accumulator into an output code without floats.
//
// A real multiplier M (e.g. input_scale * weight_scale / output_scale) is prepared once per layer
// as a Q0.31 fixed-point mantissa and a power-of-two exponent (TFLite's QuantizeMultiplier):
//     M = multiplier * 2^(shift - 31),   multiplier in [2^30, 2^31)
// and applied with one rounding step (TFLite's single-rounding variant, as ruy's MulParams and
// ONNX Runtime's MLAS "fixed point" path do):
//     round(x * M) = (x * multiplier + 2^(s - 1)) >> s,   s = 31 - shift
// in 64-bit arithmetic. The rounding mode is half up (ties go toward +infinity), so it differs
// from the float engine's round-half-to-even only on exact ties.

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace qe::int8 {

struct FixedPointMultiplier {
    std::int32_t multiplier = 0;  // Q0.31 mantissa in [2^30, 2^31), or 0 for M == 0
    int rightShift = 0;           // total right shift s (31 - exponent), 0 < s <= 62 for multiplier != 0
};

// Prepared once per layer (never inside the inference loop). M must be finite and >= 0; values
// too small to matter (below 2^-31, where x * M < 0.5 for every int32 x) become 0, and values
// of 2^31 or more are rejected by the caller's parameter checks long before they reach here.
inline FixedPointMultiplier prepareMultiplier(double realMultiplier)
{
    FixedPointMultiplier fp;
    if (!(realMultiplier > 0))
        return fp;
    int exponent = 0;
    const double mantissa = std::frexp(realMultiplier, &exponent);  // M = mantissa * 2^exponent, mantissa in [0.5, 1)
    auto q = static_cast<std::int64_t>(std::llround(mantissa * (1ll << 31)));
    if (q == (1ll << 31)) {  // rounding carried into the next power of two
        q /= 2;
        ++exponent;
    }
    int rightShift = 31 - exponent;
    if (rightShift > 62)  // M < 2^-31: the product is below one half for every int32 input
        return fp;
    if (rightShift < 1)  // M >= 2^30: not a meaningful requantization; keep the arithmetic defined
        rightShift = 1;
    fp.multiplier = static_cast<std::int32_t>(q);
    fp.rightShift = rightShift;
    return fp;
}

// round_half_up(x * M), exact in 64 bits: |x * multiplier| < 2^62.
inline std::int32_t applyMultiplier(std::int32_t x, FixedPointMultiplier m)
{
    if (m.multiplier == 0)
        return 0;
    const std::int64_t product = static_cast<std::int64_t>(x) * m.multiplier;
    const std::int64_t rounding = std::int64_t{1} << (m.rightShift - 1);
    // An arithmetic right shift floors, so adding one half first rounds half up.
    return static_cast<std::int32_t>((product + rounding) >> m.rightShift);
}

// The output code of one accumulator: zero-point plus the rescaled value, clamped to the code
// range (which also applies a fused Relu/Clip).
inline std::int32_t requantize(std::int32_t accumulator, FixedPointMultiplier m, std::int32_t outputZeroPoint,
                               std::int32_t codeMin, std::int32_t codeMax)
{
    return std::clamp(applyMultiplier(accumulator, m) + outputZeroPoint, codeMin, codeMax);
}

}  // namespace qe::int8
