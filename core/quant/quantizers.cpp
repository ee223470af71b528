// The element-wise quantizers of every kind of scheme (uniform, log2, codebook, floating-point
// format): fake quantization and the levels of one block, the functions the rows of kSchemes
// (scheme.cpp) point to, and the block index that maps each element to its parameter block.
// Plain scalar code; fast paths, if ever needed, are tested against these. The uniform path is
// bit-identical to PyTorch's fake_quantize kernels: tests/core/tst_quantizer.cpp checks it against
// references produced by scripts/make_quantizer_references.py.

#include "quant/scheme.h"
#include "quant/scheme_internal.h"

#include "common/error.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numbers>
#include <string>
#include <string_view>
#include <vector>

namespace qe::scheme_detail {
namespace {

// Log2 levels: 0 and +-scale * 2^e for e = -(K-1) .. 0 (K = qmax). |x| is rounded to the nearest
// level in the log domain (the boundary between 2^(e-1) and 2^e is 2^e / sqrt(2)), which keeps the
// relative error bounded. Below the smallest level L the choice is between L and 0, and there the
// linear midpoint L/2 decides, so tiny values become 0 rather than L. Beyond scale, values clip to
// +-scale; unsigned blocks clip negative values to 0.
struct Log2Block {
    float scale;
    int levels;  // K
    bool isSigned;
    float operator()(float x) const
    {
        if (std::isnan(x))
            return x;
        if (x == 0.f || (!isSigned && x < 0.f))
            return 0.f;
        const double ratio = std::fabs(static_cast<double>(x)) / scale;
        const int smallest = 1 - levels;
        int exponent = 0;
        if (ratio < 1.0) {
            int binade = 0;
            const double mantissa = std::frexp(ratio, &binade);  // ratio = mantissa * 2^binade, mantissa in [0.5, 1)
            exponent = 2.0 * mantissa >= std::numbers::sqrt2 ? binade : binade - 1;
            if (exponent < smallest) {
                if (ratio < std::ldexp(0.5, smallest))
                    return 0.f;
                exponent = smallest;
            }
        }
        const auto level = static_cast<float>(std::ldexp(static_cast<double>(scale), exponent));
        return x < 0.f ? -level : level;
    }
};

// The levels a Log2Block can produce, ascending (computed the same way as the block does).
std::vector<float> log2Levels(float scale, int levels, bool isSigned)
{
    std::vector<float> positive;
    for (int e = 1 - levels; e <= 0; ++e)
        positive.push_back(static_cast<float>(std::ldexp(static_cast<double>(scale), e)));
    std::vector<float> result;
    if (isSigned)
        for (auto it = positive.rbegin(); it != positive.rend(); ++it)
            result.push_back(-*it);
    result.push_back(0.f);
    result.insert(result.end(), positive.begin(), positive.end());
    std::sort(result.begin(), result.end());  // tiny levels may underflow to 0
    result.erase(std::unique(result.begin(), result.end()), result.end());
    return result;
}

// out[i] = quantize(in[i], block of i); quantize never throws (this may run on OpenMP threads).
template <class MakeBlock>
void applyPerBlock(const float* in, float* out, std::int64_t n, const BlockIndex& blockOf, const std::vector<MakeBlock>& blocks)
{
    if (blocks.size() == 1) {
        const MakeBlock block = blocks[0];
#pragma omp parallel for if (n > (1 << 16))
        for (std::int64_t i = 0; i < n; ++i)
            out[i] = block(in[i]);
        return;
    }
#pragma omp parallel for if (n > (1 << 16))
    for (std::int64_t i = 0; i < n; ++i)
        out[i] = blocks[static_cast<std::size_t>(blockOf(i))](in[i]);
}

template <class Fn>
void applyElementwise(const float* in, float* out, std::int64_t n, Fn fn)
{
#pragma omp parallel for if (n > (1 << 16))
    for (std::int64_t i = 0; i < n; ++i)
        out[i] = fn(in[i]);
}

void checkScales(const std::vector<float>& scales, std::string_view what)
{
    for (std::size_t b = 0; b < scales.size(); ++b)
        if (!usableScale(scales[b]))
            throw Error("quantization parameters: expected a positive, finite " + std::string(what) +
                        " (with a finite inverse), got " + std::to_string(scales[b]) + " in block " + std::to_string(b));
}

void checkArraySize(std::string_view name, std::size_t actual, std::size_t expected)
{
    if (actual != expected)
        throw Error("quantization parameters: expected " + std::to_string(expected) + " " + std::string(name) +
                    " entries (one per block), got " + std::to_string(actual));
}

// Index of the centroid nearest to x in a sorted codebook, given the midpoints between neighbours
// (a value exactly on a midpoint goes to the upper centroid).
std::size_t nearestCentroid(const double* midpoints, std::size_t midpointCount, float x)
{
    return static_cast<std::size_t>(std::upper_bound(midpoints, midpoints + midpointCount, static_cast<double>(x)) - midpoints);
}

}  // namespace

BlockIndex blockIndexFor(const QuantParams& params, const Tensor& values)
{
    BlockIndex index;
    index.granularity = params.granularity;
    if (params.granularity == Granularity::PerTensor)
        return index;
    const std::string what = std::string(granularityName(params.granularity)) + " parameters for " + values.describe();
    if (params.granularity == Granularity::PerToken) {
        if (values.rank() < 1 || values.dim(values.rank() - 1) == 0)
            throw Error(what + ": expected a tensor of rank >= 1 with rows of at least one element");
        index.inner = values.dim(values.rank() - 1);
        index.count = values.size() / index.inner;
        if (static_cast<std::int64_t>(params.blockCount()) != index.count)
            throw Error(what + ": expected " + std::to_string(index.count) + " row ranges, got " + std::to_string(params.blockCount()));
        return index;
    }
    if (params.axis < 0 || params.axis >= values.rank())
        throw Error(what + ": expected a channel axis in [0, " + std::to_string(values.rank()) + "), got " +
                    std::to_string(params.axis));
    index.channels = values.dim(params.axis);
    index.inner = 1;
    for (int d = params.axis + 1; d < values.rank(); ++d)
        index.inner *= values.dim(d);
    index.count = index.channels;
    if (params.granularity == Granularity::PerGroup) {
        if (params.axis != 0)
            throw Error(what + ": groups run along the dimensions after axis 0, expected axis 0, got " + std::to_string(params.axis));
        if (params.groupSize <= 0)
            throw Error(what + ": expected a group size > 0, got " + std::to_string(params.groupSize));
        index.groupSize = params.groupSize;
        index.groupsPerChannel = (index.inner + params.groupSize - 1) / params.groupSize;
        index.count = index.channels * index.groupsPerChannel;
    }
    return index;
}

// Fake quantization, by kind: out[i] = the level in[i] quantizes to.
void fakeQuantizeUniform(const QuantParams& params, const BlockIndex& blockOf, const float* in, float* out, std::int64_t n)
{
    const UniformParams& u = params.uniform();
    const auto blocks = static_cast<std::size_t>(blockOf.count);
    checkArraySize("scale", u.scale.size(), blocks);
    checkScales(u.scale, "scale");
    checkArraySize("zero-point", u.zeroPoint.size(), blocks);
    if (params.qmin >= params.qmax)
        throw Error("quantization parameters: expected qmin < qmax, got [" + std::to_string(params.qmin) + ", " +
                    std::to_string(params.qmax) + "]");
    std::vector<UniformRounding> quantizers;
    for (std::size_t b = 0; b < blocks; ++b)
        quantizers.push_back(UniformRounding::of(params, b));
    applyPerBlock(in, out, n, blockOf, quantizers);
}

void fakeQuantizeLog2(const QuantParams& params, const BlockIndex& blockOf, const float* in, float* out, std::int64_t n)
{
    const Log2Params& l = params.log2();
    const auto blocks = static_cast<std::size_t>(blockOf.count);
    checkArraySize("largest level", l.largest.size(), blocks);
    checkScales(l.largest, "largest level");
    if (params.qmax < 1)
        throw Error("log2 parameters: expected qmax (the number of magnitudes) >= 1, got " + std::to_string(params.qmax));
    std::vector<Log2Block> quantizers;
    for (std::size_t b = 0; b < blocks; ++b)
        quantizers.push_back({l.largest[b], params.qmax, params.isSigned});
    applyPerBlock(in, out, n, blockOf, quantizers);
}

void fakeQuantizeCodebook(const QuantParams& params, const BlockIndex& blockOf, const float* in, float* out, std::int64_t n)
{
    const CodebookParams& c = params.codebook();
    const auto blocks = static_cast<std::size_t>(blockOf.count);
    const auto levels = std::size_t{1} << params.bits;
    checkArraySize("codebook", c.centroids.size(), blocks * levels);
    // Midpoints between neighbouring centroids, per block, for a binary search per value.
    std::vector<double> midpoints(blocks * (levels - 1));
    for (std::size_t b = 0; b < blocks; ++b) {
        const float* centroids = c.centroids.data() + b * levels;
        if (!std::is_sorted(centroids, centroids + levels))
            throw Error("k-means parameters: expected each block's codebook sorted ascending (block " + std::to_string(b) + ")");
        for (std::size_t i = 0; i + 1 < levels; ++i)
            midpoints[b * (levels - 1) + i] = 0.5 * (static_cast<double>(centroids[i]) + centroids[i + 1]);
    }
    const float* codebook = c.centroids.data();
    const double* mids = midpoints.data();
#pragma omp parallel for if (n > (1 << 16))
    for (std::int64_t i = 0; i < n; ++i) {
        const auto b = static_cast<std::size_t>(blockOf(i));
        out[i] = std::isnan(in[i]) ? in[i] : codebook[b * levels + nearestCentroid(mids + b * (levels - 1), levels - 1, in[i])];
    }
}

void fakeQuantizeFloatFormat(const QuantParams& params, const BlockIndex& blockOf, const float* in, float* out, std::int64_t n)
{
    const FloatFormatParams& f = params.floatFormat();
    checkArraySize("pre-scale", f.preScale.size(), static_cast<std::size_t>(blockOf.count));
    checkScales(f.preScale, "pre-scale");
    const Rounding round = roundingOf(params.scheme);
    if (!schemeTraits(params.scheme).format->preScaled) {
        applyElementwise(in, out, n, round);
        return;
    }
    // value = s * format(x / s): the pre-scale maps the block's amax to the format's max.
    const float* preScale = f.preScale.data();
#pragma omp parallel for if (n > (1 << 16))
    for (std::int64_t i = 0; i < n; ++i) {
        const float s = preScale[blockOf(i)];
        out[i] = s * round(in[i] / s);
    }
}

// Every level of one block, ascending, by kind.
std::vector<float> uniformLevels(const QuantParams& params, std::size_t block)
{
    const UniformParams& u = params.uniform();
    checkArraySize("zero-point", u.zeroPoint.size(), u.scale.size());
    // The same float arithmetic as fakeQuantize(), so every output is one of these values.
    const float scale = u.scale.at(block);
    const auto zeroPoint = static_cast<float>(u.zeroPoint[block]);
    std::vector<float> levels;
    for (std::int32_t q = params.qmin; q <= params.qmax; ++q)
        levels.push_back((static_cast<float>(q) - zeroPoint) * scale);
    return levels;
}

std::vector<float> log2LevelsOf(const QuantParams& params, std::size_t block)
{
    return log2Levels(params.log2().largest.at(block), params.qmax, params.isSigned);
}

std::vector<float> codebookLevels(const QuantParams& params, std::size_t block)
{
    const auto count = std::size_t{1} << params.bits;
    const CodebookParams& c = params.codebook();
    checkArraySize("codebook", c.centroids.size(), params.blockCount() * count);
    // Only the fitted centroids: the padding repeats the largest.
    const std::size_t fitted = block < c.fitted.size() ? static_cast<std::size_t>(c.fitted[block]) : count;
    const auto first = c.centroids.begin() + static_cast<std::ptrdiff_t>(block * count);
    return {first, first + static_cast<std::ptrdiff_t>(std::min(fitted, count))};
}

// Floating-point formats: enumerate the codes. Pre-scaled (FP8) levels are all finite codes
// times the pre-scale (which maps the block's range onto the whole format); fp16/bf16 have no
// pre-scale, so only the values the block's data range can reach are listed (from its rounded
// minimum to its rounded maximum), and none at all when there are more than kMaxFloatLevels of
// them (too many to draw).
std::vector<float> floatFormatLevels(const QuantParams& params, std::size_t block)
{
    constexpr std::size_t kMaxFloatLevels = 4096;
    const FloatFormat& format = *schemeTraits(params.scheme).format;
    const float preScale = params.floatFormat().preScale.at(block);
    const std::uint32_t codeCount = 1u << (1 + format.exponentBits + format.mantissaBits);
    const Rounding round = roundingOf(params.scheme);
    const float lo = format.preScaled ? -std::numeric_limits<float>::infinity() : round(params.rangeMin.at(block));
    const float hi = format.preScaled ? std::numeric_limits<float>::infinity() : round(params.rangeMax.at(block));
    std::vector<float> levels;
    for (std::uint32_t code = 0; code < codeCount; ++code) {
        const float value = preScale * static_cast<float>(decodeFloat(code, format));
        if (std::isfinite(value) && value >= lo && value <= hi) {
            levels.push_back(value);
            if (levels.size() > 2 * kMaxFloatLevels)  // +0 and -0 are merged below
                return {};
        }
    }
    std::sort(levels.begin(), levels.end());
    levels.erase(std::unique(levels.begin(), levels.end()), levels.end());  // +0 == -0
    if (levels.size() > kMaxFloatLevels)
        return {};
    return levels;
}

}  // namespace qe::scheme_detail
