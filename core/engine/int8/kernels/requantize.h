#pragma once
// Integer requantization: turning an int32 accumulator into an output code without floats.
//
// A real multiplier M (e.g. input_scale * weight_scale / output_scale) is prepared once per layer
// as a Q0.31 fixed-point mantissa and a power-of-two exponent (TFLite's QuantizeMultiplier):
//     M = multiplier * 2^(shift - 31),   multiplier in [2^30, 2^31)
// and applied with one rounding step (TFLite's single-rounding variant) in 64-bit arithmetic:
//     round(x * M) = roundingShift(x * multiplier, s),   s = 31 - shift
// The rounding mode is round half to even, the mode of ONNX's QuantizeLinear, of ONNX Runtime's
// requantization and of the simulation's fake quantization, so that exact ties (common where
// scales are powers of two apart, e.g. an Add of two equal scales) round the same way in all
// three. (TFLite rounds ties away from zero; gemmlowp's RoundingDivideByPOT likewise.)

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

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

// value / 2^shift rounded to the nearest integer, ties to even; shift in [1, 62].
inline std::int64_t roundingShift(std::int64_t value, int shift)
{
    const std::int64_t half = std::int64_t{1} << (shift - 1);
    const std::int64_t mask = (std::int64_t{1} << shift) - 1;
    // An arithmetic right shift floors, so adding one half first rounds half up...
    std::int64_t rounded = (value + half) >> shift;
    // ...and an exact tie that went up to an odd result goes back down to the even one.
    if ((value & mask) == half && (rounded & 1))
        --rounded;
    return rounded;
}

// round_half_even(x * M), exact in 64 bits: |x * multiplier| < 2^62. The result may exceed the
// int32 range when M > 1 (it is clamped to the code range afterwards, never wrapped).
inline std::int64_t applyMultiplier(std::int32_t x, FixedPointMultiplier m)
{
    if (m.multiplier == 0)
        return 0;
    return roundingShift(static_cast<std::int64_t>(x) * m.multiplier, m.rightShift);
}

// The output code of one accumulator: zero-point plus the rescaled value, clamped to the code
// range (which also applies a fused Relu/Clip).
inline std::int32_t requantize(std::int32_t accumulator, FixedPointMultiplier m, std::int32_t outputZeroPoint,
                               std::int32_t codeMin, std::int32_t codeMax)
{
    return static_cast<std::int32_t>(std::clamp<std::int64_t>(applyMultiplier(accumulator, m) + outputZeroPoint, codeMin, codeMax));
}

// Whether a real rescale factor can be requantized with: finite, not negative, and below 2^20
// (the engine's bound, far above any real layer's, which keeps every 64-bit product in range).
inline bool isUsableMultiplier(double realMultiplier)
{
    return realMultiplier >= 0 && realMultiplier < (1 << 20);  // false for NaN and infinity too
}

// The largest |bias| (in accumulator units) that an int32 accumulator of `reductionSize` products
// of 8-bit codes can take without the sum overflowing: |acc| <= reductionSize * 255 * 128 (uint8
// codes minus a zero-point, times int8 weights minus theirs at most 255 apart: 255 * 255 bounds it).
inline std::int64_t int32BiasLimit(std::int64_t reductionSize)
{
    return std::max<std::int64_t>(0, 2147483647LL - reductionSize * 255LL * 255LL);
}

// A real bias as an int32 in units of `accumulatorScale` (input scale x weight scale), rounded
// half to even and clamped to int32BiasLimit, as the engine and the simulation both store it.
inline std::int32_t int32Bias(double bias, double accumulatorScale, std::int64_t reductionSize)
{
    const auto limit = static_cast<double>(int32BiasLimit(reductionSize));
    return static_cast<std::int32_t>(std::clamp(std::nearbyint(bias / accumulatorScale), -limit, limit));
}

// The parameters of 16 channels in the lanes AVX-512 code reads them (requantize_avx512.h):
// 32-bit lanes for the bias and multiplier, and, because a 64-bit product vpmuldq makes holds
// either the even (0, 2, ...) or the odd channels, their shifts in two 64-bit vectors each.
// Lanes beyond the layer's channels have a zero multiplier (result 0).
struct alignas(64) RequantizationBlock {
    std::int32_t bias[16] = {};
    std::int32_t multiplier[16] = {};
    std::int64_t shiftEven[8] = {62, 62, 62, 62, 62, 62, 62, 62}, shiftOdd[8] = {62, 62, 62, 62, 62, 62, 62, 62};
    std::int64_t halfMinusOneEven[8] = {}, halfMinusOneOdd[8] = {};  // 2^(shift - 1) - 1
};

// Per-output-channel requantization prepared for a whole layer: a bias in accumulator units and
// a multiplier per channel, laid out so that the loop over channels vectorizes (no branches,
// 64-bit products of 32-bit values, the arithmetic right shift done as a logical shift of a value
// made non-negative by adding 2^62, which leaves the low bits and hence the tie test unchanged),
// and again in blocks of 16 for AVX-512. Gives exactly requantize(accumulator + bias,
// multiplier, ...) for every element.
struct ChannelRequantization {
    std::vector<std::int32_t> bias, multiplier;
    std::vector<std::uint64_t> rightShift, half, lowMask;
    std::vector<std::int64_t> offset;  // 2^(62 - rightShift): the added 2^62 after the shift
    std::vector<RequantizationBlock> blocks;

    std::size_t channels() const { return bias.size(); }
    // The same requantization with `extra[c]` added to every channel's bias (two's complement).
    ChannelRequantization withBiasAdded(const std::vector<std::int32_t>& extra) const
    {
        ChannelRequantization r;
        for (std::size_t c = 0; c < channels(); ++c)
            r.add(static_cast<std::int32_t>(static_cast<std::uint32_t>(bias[c]) + static_cast<std::uint32_t>(extra.at(c))),
                  FixedPointMultiplier{multiplier[c], static_cast<int>(rightShift[c])});
        return r;
    }
    void add(std::int32_t channelBias, FixedPointMultiplier m)
    {
        // A zero multiplier (M below 2^-31) with the largest shift yields 0 like applyMultiplier.
        const int s = m.multiplier == 0 ? 62 : m.rightShift;
        const std::size_t lane = bias.size() % 16;
        bias.push_back(channelBias);
        multiplier.push_back(m.multiplier);
        rightShift.push_back(static_cast<std::uint64_t>(s));
        half.push_back(std::uint64_t{1} << (s - 1));
        lowMask.push_back((std::uint64_t{1} << s) - 1);
        offset.push_back(std::int64_t{1} << (62 - s));
        if (lane == 0)
            blocks.emplace_back();
        RequantizationBlock& b = blocks.back();
        b.bias[lane] = channelBias;
        b.multiplier[lane] = m.multiplier;
        (lane % 2 ? b.shiftOdd : b.shiftEven)[lane / 2] = s;
        (lane % 2 ? b.halfMinusOneOdd : b.halfMinusOneEven)[lane / 2] = (std::int64_t{1} << (s - 1)) - 1;
    }
};

// out[p][c] = requantize(acc[p][c] + bias[c], multiplier[c], zeroPoint, codeMin, codeMax) for
// `pixels` rows of `channels` accumulators (channels-last). Uses AVX-512 where the CPU has it
// (requantize_avx512.cpp), else the portable loop below; both give exactly the scalar result.
void requantizeChannelsLast(const std::int32_t* acc, std::uint8_t* out, std::int64_t pixels, std::int64_t channels,
                            const ChannelRequantization& r, std::int32_t zeroPoint, std::int32_t codeMin, std::int32_t codeMax);

// round_half_even((accumulator + bias) * M) for one channel's prepared parameters (the arrays of
// ChannelRequantization), without branches so that loops over channels vectorize: the
// arithmetic right shift done as a logical one on a value made non-negative by 2^62. The sum is
// taken in two's complement: a bias with folded zero-point terms may wrap on its own.
inline std::int64_t roundedProduct(std::int32_t accumulator, std::int32_t bias, std::int32_t multiplier, std::uint64_t shift,
                                   std::uint64_t half, std::uint64_t mask, std::int64_t offset)
{
    const auto sum = static_cast<std::int32_t>(static_cast<std::uint32_t>(accumulator) + static_cast<std::uint32_t>(bias));
    const std::int64_t v = static_cast<std::int64_t>(sum) * multiplier;
    const std::uint64_t biased = static_cast<std::uint64_t>(v) + (std::uint64_t{1} << 62);
    std::int64_t rounded = static_cast<std::int64_t>((biased + half) >> shift) - offset;
    rounded -= static_cast<std::int64_t>((biased & mask) == half) & rounded & 1;
    return rounded;
}

// One row, portable C++ the compiler vectorizes (exposed for the tests).
inline void requantizeRowPortable(const std::int32_t* a, std::uint8_t* y, std::int64_t channels, const ChannelRequantization& r,
                                  std::int32_t zeroPoint, std::int32_t codeMin, std::int32_t codeMax)
{
    const std::int32_t* bias = r.bias.data();
    const std::int32_t* multiplier = r.multiplier.data();
    const std::uint64_t* shift = r.rightShift.data();
    const std::uint64_t* half = r.half.data();
    const std::uint64_t* mask = r.lowMask.data();
    const std::int64_t* offset = r.offset.data();
    for (std::int64_t c = 0; c < channels; ++c) {
        const std::int64_t rounded = roundedProduct(a[c], bias[c], multiplier[c], shift[c], half[c], mask[c], offset[c]);
        y[c] = static_cast<std::uint8_t>(std::clamp<std::int64_t>(rounded + zeroPoint, codeMin, codeMax));
    }
}

// `pixels` rows with AVX-512 (requantize_avx512.cpp); only call it where avx512Available()
// (AVX-512 F, BW and VL).
bool avx512Available();
void requantizeRowsAvx512(const std::int32_t* acc, std::uint8_t* out, std::int64_t pixels, std::int64_t channels,
                          const ChannelRequantization& r, std::int32_t zeroPoint, std::int32_t codeMin, std::int32_t codeMax);

}  // namespace qe::int8
