// The table of quantization schemes and the reference quantizers (plain scalar code; fast paths,
// if ever needed, are tested against these). The uniform path is bit-identical to PyTorch's
// fake_quantize kernels and the FP8 conversions follow the OCP tables: tests/core/tst_quantizer.cpp
// checks both against references produced by scripts/make_quantizer_references.py.

#include "quant/scheme.h"

#include "common/error.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numbers>
#include <span>

namespace qe {
namespace {

// ---------------------------------------------------------------------------------------------
// The table

constexpr std::array<SchemeTraits, kSchemeCount> kSchemes{{
    {Scheme::Affine, "affine", "Affine (asymmetric)", SchemeFamily::Uniform, 2, 16, 8, true, true,
     "Uses the full code range for skewed data such as ReLU outputs; the zero-point adds integer work to every dot "
     "product."},
    {Scheme::Symmetric, "symmetric", "Symmetric", SchemeFamily::Uniform, 2, 16, 8, true, true,
     "No zero-point, so integer kernels stay simple; signed codes waste half the range on one-sided data such as ReLU "
     "outputs."},
    {Scheme::PowerOfTwo, "power_of_two", "Symmetric, power-of-two scale", SchemeFamily::Uniform, 2, 16, 8, true, true,
     "Rescaling becomes a bit shift on fixed-point hardware; rounding the scale up can cost up to one bit of "
     "resolution."},
    {Scheme::Log2, "log2", "Logarithmic (powers of two)", SchemeFamily::Logarithmic, 3, 8, 4, true, true,
     "Small values keep their relative precision and multiplications become shifts, but large values are coarse "
     "(up to about 40% relative error)."},
    {Scheme::KMeans, "kmeans", "K-means codebook", SchemeFamily::Codebook, 1, 8, 4, true, false,
     "Places the levels where the weights are, giving the lowest error per bit; needs a lookup table and a fitting "
     "step, so it is for weights only."},
    {Scheme::Fp16, "fp16", "FP16 (IEEE half)", SchemeFamily::FloatingPoint, 16, 16, 16, true, true,
     "Halves the memory with almost no accuracy loss; values beyond 65504 overflow to infinity."},
    {Scheme::Bf16, "bf16", "BF16 (bfloat16)", SchemeFamily::FloatingPoint, 16, 16, 16, true, true,
     "Keeps float32's range so nothing overflows, but has only 8 significant bits (2 to 3 decimal digits)."},
    {Scheme::Fp8E4M3, "fp8_e4m3", "FP8 E4M3 (OCP)", SchemeFamily::FloatingPoint, 8, 8, 8, true, true,
     "A quarter of float32's memory with a relative precision of 1/16 within a per-tensor scaled range; the usual "
     "FP8 choice for inference."},
    {Scheme::Fp8E5M2, "fp8_e5m2", "FP8 E5M2 (OCP)", SchemeFamily::FloatingPoint, 8, 8, 8, true, true,
     "More dynamic range than E4M3 but only a relative precision of 1/8; made for gradients and usually too coarse "
     "for weights."},
}};

constexpr bool rowsFollowTheEnum()
{
    for (std::size_t i = 0; i < kSchemes.size(); ++i)
        if (static_cast<std::size_t>(kSchemes[i].scheme) != i)
            return false;
    return true;
}
static_assert(static_cast<int>(Scheme::Fp8E5M2) + 1 == kSchemeCount, "kSchemeCount must count every Scheme");
static_assert(kSchemes.size() == kSchemeCount && rowsFollowTheEnum(), "one schemeTable() row per Scheme, in enum order");

constexpr std::array<std::string_view, 3> kGranularityNames{"per_tensor", "per_channel", "per_group"};

std::string quoted(std::string_view name) { return "'" + std::string(name) + "'"; }

// ---------------------------------------------------------------------------------------------
// Small floating-point formats

// A binary floating-point format narrower than float32, described by what rounding needs.
struct FloatFormat {
    int mantissaBits;       // stored fraction bits
    int minNormalExponent;  // exponent of the smallest normal binade; subnormals share its spacing
    double maxFinite;
    bool saturate;          // overflow (and infinity) to +-maxFinite instead of to infinity
};
constexpr FloatFormat kFp16Format{10, -14, 65504.0, false};
constexpr FloatFormat kE4M3Format{3, -6, 448.0, true};
constexpr FloatFormat kE5M2Format{2, -14, 57344.0, true};

float roundToFormat(float x, const FloatFormat& format)
{
    if (std::isnan(x))
        return x;
    if (std::isinf(x))
        return format.saturate ? static_cast<float>(std::copysign(format.maxFinite, x)) : x;
    const double magnitude = std::fabs(static_cast<double>(x));
    if (magnitude == 0.0)
        return x;  // keeps the sign of -0
    // Representable values around `magnitude` are multiples of 2^(e - mantissaBits), e being its
    // binade (or the smallest normal binade for subnormals). Everything here is exact in double.
    // nearbyint rounds half to even, and an even multiple is a code with an even mantissa (a carry
    // into the next binade gives mantissa 0), so this is the format's round-to-nearest-even.
    const int exponent = std::max(std::ilogb(magnitude), format.minNormalExponent);
    const double quantum = std::ldexp(1.0, exponent - format.mantissaBits);
    double rounded = std::nearbyint(magnitude / quantum) * quantum;
    if (rounded > format.maxFinite)
        rounded = format.saturate ? format.maxFinite : std::numeric_limits<double>::infinity();
    // Sign-magnitude: a negative value that rounds to zero becomes -0, as in IEEE conversions.
    return static_cast<float>(std::copysign(rounded, static_cast<double>(x)));
}

// Bit layout of a small float format, for enumerating its codes.
struct FloatEncoding {
    int exponentBits, mantissaBits, bias;
    bool ieeeSpecials;  // all-ones exponent means inf/NaN (fp16, E5M2); else only S.1111.111 is NaN (E4M3)
};

// The value of `code`, or NaN when the code is not a finite number.
double decodeFloat(std::uint32_t code, const FloatEncoding& e)
{
    const std::uint32_t mantissaMask = (1u << e.mantissaBits) - 1;
    const std::uint32_t exponentMask = (1u << e.exponentBits) - 1;
    const std::uint32_t mantissa = code & mantissaMask;
    const std::uint32_t exponent = (code >> e.mantissaBits) & exponentMask;
    const bool negative = (code >> (e.mantissaBits + e.exponentBits)) & 1u;
    if (exponent == exponentMask && (e.ieeeSpecials || mantissa == mantissaMask))
        return std::numeric_limits<double>::quiet_NaN();  // inf is not a level either
    const double magnitude = exponent == 0
        ? std::ldexp(static_cast<double>(mantissa), 1 - e.bias - e.mantissaBits)
        : std::ldexp(static_cast<double>(mantissa | (mantissaMask + 1)), static_cast<int>(exponent) - e.bias - e.mantissaBits);
    return negative ? -magnitude : magnitude;
}

// ---------------------------------------------------------------------------------------------
// Parameters

// The smallest scale we hand out: positive, and 1/scale is still finite. A zero range (an all-zero
// tensor, a dead channel) gets it instead of 0 or NaN; its only code near zero is then 0 itself.
constexpr float kMinScale = std::numeric_limits<float>::min();

float atLeastMinScale(float scale) { return scale >= kMinScale ? scale : kMinScale; }  // also catches NaN

float fp8Max(Scheme scheme) { return scheme == Scheme::Fp8E4M3 ? 448.f : 57344.f; }

void checkBits(Scheme scheme, int bits)
{
    const SchemeTraits& traits = schemeTraits(scheme);
    if (bits >= traits.minBits && bits <= traits.maxBits)
        return;
    const std::string expected = traits.minBits == traits.maxBits
        ? "exactly " + std::to_string(traits.minBits) + " bits"
        : std::to_string(traits.minBits) + " to " + std::to_string(traits.maxBits) + " bits";
    throw Error("scheme " + quoted(traits.name) + ": expected " + expected + ", got " + std::to_string(bits));
}

// Sets the code range of `params` from its scheme, bits and signedness.
void setCodeRange(QuantParams& params)
{
    const int b = params.bits;
    switch (params.scheme) {
    case Scheme::Affine:
        params.qmin = params.isSigned ? -(1 << (b - 1)) : 0;
        params.qmax = params.isSigned ? (1 << (b - 1)) - 1 : (1 << b) - 1;
        break;
    case Scheme::Symmetric:
    case Scheme::PowerOfTwo:
        // Narrow signed range (TFLite's int8 weights): -qmax .. qmax, so +-amax are both exact.
        params.qmin = params.isSigned ? -((1 << (b - 1)) - 1) : 0;
        params.qmax = params.isSigned ? (1 << (b - 1)) - 1 : (1 << b) - 1;
        break;
    case Scheme::Log2:
        // Code 0 is the value 0 and code +-j (j = 1 .. qmax) the level +-scale * 2^(j - qmax).
        // Signed: one sign bit, 2^(b-1) - 1 magnitudes; unsigned: all 2^b - 1 nonzero codes.
        params.qmax = params.isSigned ? (1 << (b - 1)) - 1 : (1 << b) - 1;
        params.qmin = params.isSigned ? -params.qmax : 0;
        break;
    case Scheme::KMeans:  // codes are indices into the block's codebook
        params.qmin = 0;
        params.qmax = (1 << b) - 1;
        break;
    case Scheme::Fp16:
    case Scheme::Bf16:
    case Scheme::Fp8E4M3:
    case Scheme::Fp8E5M2:  // no integer codes
        params.qmin = params.qmax = 0;
        break;
    }
}

QuantParams baseParams(const TensorQuantSpec& spec, bool isSigned)
{
    QuantParams params;
    params.scheme = spec.scheme;
    params.bits = spec.bits;
    const SchemeFamily family = schemeTraits(spec.scheme).family;
    params.isSigned = family == SchemeFamily::FloatingPoint || family == SchemeFamily::Codebook ? true : isSigned;
    params.granularity = spec.granularity;
    params.axis = 0;
    params.groupSize = spec.granularity == Granularity::PerGroup ? spec.groupSize : 0;
    setCodeRange(params);
    return params;
}

// 2^ceil(log2(scale)), computed exactly from the binary exponent rather than with log2().
float roundUpToPowerOfTwo(float scale)
{
    int exponent = 0;
    const float mantissa = std::frexp(scale, &exponent);  // scale = mantissa * 2^exponent, mantissa in [0.5, 1)
    if (mantissa == 0.5f)
        return scale;
    return std::ldexp(1.f, std::min(exponent, std::numeric_limits<float>::max_exponent - 1));
}

// Appends one block's parameters for values in [lo, hi] (uniform, log2 and floating-point schemes).
void appendBlock(QuantParams& params, float lo, float hi)
{
    const auto qmin = static_cast<float>(params.qmin), qmax = static_cast<float>(params.qmax);
    switch (params.scheme) {
    case Scheme::Affine: {
        // The range must contain 0 (zero padding and ReLU's zeros must stay exactly 0).
        lo = std::min(lo, 0.f);
        hi = std::max(hi, 0.f);
        // In float32, as PyTorch's MinMaxObserver, so the parameters match PyTorch's bit for bit.
        float scale = (hi - lo) / (qmax - qmin);
        if (!std::isfinite(scale))  // hi - lo overflowed float
            scale = static_cast<float>((static_cast<double>(hi) - lo) / (qmax - qmin));
        scale = atLeastMinScale(scale);
        // The zero-point is rounded to an integer code ("nudged", as TFLite does) so that real 0.0 is
        // exactly representable; the representable range shifts by at most scale/2. PyTorch's form
        // qmin - round(lo / scale) equals round(qmin - lo / scale) because qmin is even.
        const float zeroPoint = std::clamp(qmin - std::nearbyint(lo / scale), qmin, qmax);
        params.scale.push_back(scale);
        params.zeroPoint.push_back(static_cast<std::int32_t>(zeroPoint));
        params.rangeMin.push_back(lo);
        params.rangeMax.push_back(hi);
        return;
    }
    case Scheme::Symmetric:
    case Scheme::PowerOfTwo:
    case Scheme::Log2: {
        // Unsigned codes cannot hold negative values, so only the positive side sets the range.
        const float amax = params.isSigned ? std::max({-lo, hi, 0.f}) : std::max(hi, 0.f);
        float scale = 0.f;
        if (params.scheme == Scheme::Log2) {
            scale = atLeastMinScale(amax);  // the largest level is amax itself
        } else {
            scale = atLeastMinScale(amax / qmax);  // as PyTorch's symmetric observer: amax / ((qmax - qmin) / 2)
            if (params.scheme == Scheme::PowerOfTwo)
                scale = roundUpToPowerOfTwo(scale);  // rounding up never clips more than the symmetric scale
        }
        params.scale.push_back(scale);
        if (params.scheme != Scheme::Log2)
            params.zeroPoint.push_back(0);
        params.rangeMin.push_back(params.isSigned ? -amax : 0.f);
        params.rangeMax.push_back(amax);
        return;
    }
    case Scheme::Fp8E4M3:
    case Scheme::Fp8E5M2: {
        // Per-tensor (per-channel) scaling as in FP8 training recipes: amax maps to the format's max.
        const float amax = std::max({-lo, hi, 0.f});
        params.scale.push_back(atLeastMinScale(amax / fp8Max(params.scheme)));
        params.rangeMin.push_back(-amax);
        params.rangeMax.push_back(amax);
        return;
    }
    case Scheme::Fp16:
    case Scheme::Bf16:
        // No pre-scale: the values are rounded to the format as they are. The range is the data's,
        // which limits quantizationLevels() to the levels the data can reach.
        params.scale.push_back(1.f);
        params.rangeMin.push_back(lo);
        params.rangeMax.push_back(hi);
        return;
    case Scheme::KMeans:
        break;
    }
    throw Error("scheme " + quoted(schemeTraits(params.scheme).name) + " has no range-based parameters");
}

// A contiguous run of elements that share one parameter block (weights: axis 0 is the output
// channel and groups run along the flattened remaining dimensions, so every block is contiguous).
struct BlockSpan {
    std::int64_t start, length;
};

std::vector<BlockSpan> weightBlocks(const TensorQuantSpec& spec, const Tensor& weights)
{
    const std::int64_t n = weights.size();
    if (spec.granularity == Granularity::PerTensor)
        return {{0, n}};
    if (weights.rank() == 0)
        throw Error(std::string(granularityName(spec.granularity)) +
                    " weights need an output-channel axis: expected a tensor of rank >= 1, got " + weights.describe());
    const std::int64_t channels = weights.dim(0), inner = n / channels;
    std::int64_t groupSize = inner;
    if (spec.granularity == Granularity::PerGroup)
        groupSize = spec.groupSize;
    std::vector<BlockSpan> blocks;
    for (std::int64_t c = 0; c < channels; ++c)
        for (std::int64_t g = 0; g < inner; g += groupSize)
            blocks.push_back({c * inner + g, std::min(groupSize, inner - g)});
    return blocks;
}

void checkGroupSize(const TensorQuantSpec& spec)
{
    if (spec.granularity == Granularity::PerGroup && spec.groupSize <= 0)
        throw Error("per_group granularity: expected a group_size > 0, got " + std::to_string(spec.groupSize));
}

// ---------------------------------------------------------------------------------------------
// K-means

constexpr int kMaxLloydIterations = 30;
constexpr int kMaxCodebookSize = 256;  // k-means takes at most 8 bits

// Fits `levels` sorted centroids to `values` with Lloyd's algorithm. Sorts `values` in place and
// uses `prefix` (values.size() + 1 entries) as scratch. Allocates nothing, so it can run inside a
// parallel region.
//
// It starts from the uniform grid of `levels` points spanning [min, max]. The first assignment is
// then exactly uniform min-max quantization, and no Lloyd step increases the MSE (the assignment
// step picks the nearest centroid for fixed centroids, the update step the best centroids for a
// fixed assignment), so the result is never worse than uniform min-max with the same level count.
//
// In 1-D with sorted values each cluster is an index range whose ends are found by binary search
// on the midpoints between neighbouring centroids, and its mean comes from prefix sums: one
// iteration costs O(levels * log n), not O(n).
void fitCodebook(std::span<float> values, std::span<double> prefix, int levels, float* codebook)
{
    std::sort(values.begin(), values.end());
    const std::size_t n = values.size();
    prefix[0] = 0.0;
    for (std::size_t i = 0; i < n; ++i)
        prefix[i + 1] = prefix[i] + values[i];
    const double lo = values.front(), hi = values.back();

    std::array<double, kMaxCodebookSize> centroids{};
    std::array<std::size_t, kMaxCodebookSize + 1> bounds{}, previousBounds{};
    for (int i = 0; i < levels; ++i)
        centroids[i] = levels == 1 ? lo : lo + (hi - lo) * i / (levels - 1);
    for (int iteration = 0; iteration < kMaxLloydIterations; ++iteration) {
        // Cluster i holds the values in [midpoint(i-1, i), midpoint(i, i+1)); a value exactly on a
        // midpoint goes to the upper centroid, as in fakeQuantize().
        bounds[0] = 0;
        bounds[levels] = n;
        for (int i = 1; i < levels; ++i) {
            const double midpoint = 0.5 * (centroids[i - 1] + centroids[i]);
            bounds[i] = static_cast<std::size_t>(
                std::lower_bound(values.begin(), values.end(), midpoint, [](float v, double m) { return v < m; }) - values.begin());
        }
        if (iteration > 0 && std::equal(bounds.begin(), bounds.begin() + levels + 1, previousBounds.begin()))
            break;  // same assignment, same centroids: converged
        previousBounds = bounds;
        for (int i = 0; i < levels; ++i)
            if (bounds[i + 1] > bounds[i])  // an empty cluster keeps its centroid
                centroids[i] = (prefix[bounds[i + 1]] - prefix[bounds[i]]) / static_cast<double>(bounds[i + 1] - bounds[i]);
    }
    std::sort(centroids.begin(), centroids.begin() + levels);
    for (int i = 0; i < levels; ++i)
        codebook[i] = static_cast<float>(centroids[i]);
}

// Index of the centroid nearest to x in a sorted codebook, given the midpoints between neighbours
// (a value exactly on a midpoint goes to the upper centroid).
std::size_t nearestCentroid(const double* midpoints, std::size_t midpointCount, float x)
{
    return static_cast<std::size_t>(std::upper_bound(midpoints, midpoints + midpointCount, static_cast<double>(x)) - midpoints);
}

// ---------------------------------------------------------------------------------------------
// Element-wise quantizers

// Uniform fake quantization exactly as PyTorch's CPU kernel (fake_quantize_tensor_cachemask_kernel
// and its per-channel twin): inv_scale = 1.0f / scale, q = zero_point + nearbyint(x * inv_scale) in
// float32 (half to even, rounding x * inv_scale, not x / scale), clamped to [qmin, qmax], then
// (q - zero_point) * scale. PyTorch's product is in double and rounded once to float, which equals
// the float product because (q - zero_point) has at most 17 significant bits.
// Differences on purpose: NaN stays NaN and +-inf saturate to the range ends; PyTorch casts those
// to int64 (undefined behaviour; in practice they become qmin).
struct UniformBlock {
    float scale, inverseScale, zeroPoint, qmin, qmax;
    float operator()(float x) const
    {
        if (std::isnan(x))
            return x;
        const float q = std::clamp(std::nearbyint(x * inverseScale) + zeroPoint, qmin, qmax);
        return (q - zeroPoint) * scale;
    }
};

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

// Which parameter block element i of a tensor belongs to, for a given granularity and shape.
struct BlockIndex {
    Granularity granularity = Granularity::PerTensor;
    std::int64_t inner = 1;     // elements after the channel axis
    std::int64_t channels = 1;
    std::int64_t groupSize = 1;
    std::int64_t groupsPerChannel = 1;
    std::int64_t count = 1;     // number of blocks

    std::int64_t operator()(std::int64_t i) const
    {
        switch (granularity) {
        case Granularity::PerTensor: return 0;
        case Granularity::PerChannel: return (i / inner) % channels;
        case Granularity::PerGroup: return (i / inner) * groupsPerChannel + (i % inner) / groupSize;
        }
        return 0;
    }
};

BlockIndex blockIndexFor(const QuantParams& params, const Tensor& values)
{
    BlockIndex index;
    index.granularity = params.granularity;
    if (params.granularity == Granularity::PerTensor)
        return index;
    const std::string what = std::string(granularityName(params.granularity)) + " parameters for " + values.describe();
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

void checkScales(const QuantParams& params)
{
    for (std::size_t b = 0; b < params.scale.size(); ++b)
        if (!(params.scale[b] > 0.f) || !std::isfinite(params.scale[b]) || !std::isfinite(1.f / params.scale[b]))
            throw Error("quantization parameters: expected a positive, finite scale (with a finite inverse), got " +
                        std::to_string(params.scale[b]) + " in block " + std::to_string(b));
}

void checkArraySize(std::string_view name, std::size_t actual, std::size_t expected)
{
    if (actual != expected)
        throw Error("quantization parameters: expected " + std::to_string(expected) + " " + std::string(name) +
                    " entries (one per block), got " + std::to_string(actual));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public functions

const std::array<SchemeTraits, kSchemeCount>& schemeTable() { return kSchemes; }

const SchemeTraits& schemeTraits(Scheme scheme)
{
    const auto index = static_cast<std::size_t>(scheme);
    if (index >= kSchemes.size())
        throw Error("unknown quantization scheme id " + std::to_string(index) + ": expected one of the " +
                    std::to_string(kSchemeCount) + " schemes in schemeTable()");
    return kSchemes[index];
}

std::optional<Scheme> schemeFromName(std::string_view name)
{
    for (const SchemeTraits& traits : kSchemes)
        if (traits.name == name)
            return traits.scheme;
    return std::nullopt;
}

std::string_view granularityName(Granularity g) { return kGranularityNames.at(static_cast<std::size_t>(g)); }

std::optional<Granularity> granularityFromName(std::string_view name)
{
    for (std::size_t i = 0; i < kGranularityNames.size(); ++i)
        if (kGranularityNames[i] == name)
            return static_cast<Granularity>(i);
    return std::nullopt;
}

QuantParams paramsForRange(const TensorQuantSpec& spec, float min, float max)
{
    const SchemeTraits& traits = schemeTraits(spec.scheme);
    if (!traits.forActivations)
        throw Error("scheme " + quoted(traits.name) +
                    " is for weights only (it fits a codebook to known values): expected an activation scheme such as "
                    "'affine' or 'symmetric'");
    checkBits(spec.scheme, spec.bits);
    if (spec.granularity != Granularity::PerTensor)
        throw Error("activation ranges are per tensor: expected granularity 'per_tensor', got " +
                    quoted(granularityName(spec.granularity)));
    if (!std::isfinite(min) || !std::isfinite(max) || min > max)
        throw Error("expected a finite activation range with min <= max, got [" + std::to_string(min) + ", " +
                    std::to_string(max) + "]");
    // Unset signedness: affine activations use unsigned codes (uint8 with a zero-point, as ONNX
    // Runtime's u8 activations) whatever their sign; the zero-point-free schemes need signed codes
    // unless the range is non-negative (ReLU outputs), where unsigned codes double the resolution.
    const bool isSigned = spec.isSigned.value_or(spec.scheme == Scheme::Affine ? false : min < 0.f);
    QuantParams params = baseParams(spec, isSigned);
    appendBlock(params, min, max);
    return params;
}

QuantParams paramsForWeights(const TensorQuantSpec& spec, const Tensor& weights)
{
    checkBits(spec.scheme, spec.bits);
    checkGroupSize(spec);
    if (weights.empty() || weights.size() == 0)
        throw Error("expected a non-empty weight tensor to quantize, got " + (weights.empty() ? std::string("no tensor") : weights.describe()));
    if (weights.dtype() != DataType::Float32)
        throw Error("expected float32 weights to quantize, got " + weights.describe());

    QuantParams params = baseParams(spec, spec.isSigned.value_or(true));
    const std::vector<BlockSpan> blocks = weightBlocks(spec, weights);
    const float* w = weights.data<float>();
    for (std::size_t b = 0; b < blocks.size(); ++b) {
        float lo = std::numeric_limits<float>::infinity(), hi = -lo;
        bool finite = true;
        for (std::int64_t i = blocks[b].start; i < blocks[b].start + blocks[b].length; ++i) {
            finite = finite && std::isfinite(w[i]);
            lo = std::min(lo, w[i]);
            hi = std::max(hi, w[i]);
        }
        if (!finite)
            throw Error("weights " + weights.describe() + " contain NaN or infinity (block " + std::to_string(b) +
                        "): expected finite values");
        if (spec.scheme == Scheme::KMeans) {
            params.scale.push_back(hi - lo);  // for display only: the block's value range
            params.rangeMin.push_back(lo);
            params.rangeMax.push_back(hi);
        } else {
            appendBlock(params, lo, hi);
        }
    }

    if (spec.scheme == Scheme::KMeans) {
        const int levels = 1 << spec.bits;
        params.codebook.resize(blocks.size() * static_cast<std::size_t>(levels));
        const std::span<const float> all = weights.values<float>();
        std::vector<float> sorted(all.begin(), all.end());
        std::vector<double> prefix(sorted.size() + blocks.size());
        const auto blockCount = static_cast<std::int64_t>(blocks.size());
#pragma omp parallel for schedule(dynamic) if (blockCount > 1 && weights.size() > (1 << 16))
        for (std::int64_t b = 0; b < blockCount; ++b) {
            const BlockSpan& span = blocks[static_cast<std::size_t>(b)];
            const auto start = static_cast<std::size_t>(span.start), length = static_cast<std::size_t>(span.length);
            fitCodebook(std::span<float>(sorted).subspan(start, length),
                        std::span<double>(prefix).subspan(start + static_cast<std::size_t>(b), length + 1), levels,
                        params.codebook.data() + static_cast<std::size_t>(b) * static_cast<std::size_t>(levels));
        }
    }
    return params;
}

Tensor fakeQuantize(const Tensor& values, const QuantParams& params)
{
    if (values.empty())
        throw Error("fakeQuantize: expected a float32 tensor, got no tensor");
    if (values.dtype() != DataType::Float32)
        throw Error("fakeQuantize: expected a float32 tensor, got " + values.describe());
    checkBits(params.scheme, params.bits);
    const BlockIndex blockOf = blockIndexFor(params, values);
    const auto blocks = static_cast<std::size_t>(blockOf.count);
    checkArraySize("scale", params.scale.size(), blocks);

    Tensor result(DataType::Float32, values.shape());
    const std::int64_t n = values.size();
    if (n == 0)
        return result;
    const float* in = values.data<float>();
    float* out = result.mutableData<float>();

    switch (schemeTraits(params.scheme).family) {
    case SchemeFamily::Uniform: {
        checkScales(params);
        checkArraySize("zero-point", params.zeroPoint.size(), blocks);
        if (params.qmin >= params.qmax)
            throw Error("quantization parameters: expected qmin < qmax, got [" + std::to_string(params.qmin) + ", " +
                        std::to_string(params.qmax) + "]");
        std::vector<UniformBlock> quantizers;
        for (std::size_t b = 0; b < blocks; ++b)
            quantizers.push_back({params.scale[b], 1.0f / params.scale[b], static_cast<float>(params.zeroPoint[b]),
                                  static_cast<float>(params.qmin), static_cast<float>(params.qmax)});
        applyPerBlock(in, out, n, blockOf, quantizers);
        break;
    }
    case SchemeFamily::Logarithmic: {
        checkScales(params);
        if (params.qmax < 1)
            throw Error("log2 parameters: expected qmax (the number of magnitudes) >= 1, got " + std::to_string(params.qmax));
        std::vector<Log2Block> quantizers;
        for (std::size_t b = 0; b < blocks; ++b)
            quantizers.push_back({params.scale[b], params.qmax, params.isSigned});
        applyPerBlock(in, out, n, blockOf, quantizers);
        break;
    }
    case SchemeFamily::Codebook: {
        const auto levels = std::size_t{1} << params.bits;
        checkArraySize("codebook", params.codebook.size(), blocks * levels);
        // Midpoints between neighbouring centroids, per block, for a binary search per value.
        std::vector<double> midpoints(blocks * (levels - 1));
        for (std::size_t b = 0; b < blocks; ++b) {
            const float* c = params.codebook.data() + b * levels;
            if (!std::is_sorted(c, c + levels))
                throw Error("k-means parameters: expected each block's codebook sorted ascending (block " + std::to_string(b) + ")");
            for (std::size_t i = 0; i + 1 < levels; ++i)
                midpoints[b * (levels - 1) + i] = 0.5 * (static_cast<double>(c[i]) + c[i + 1]);
        }
        const float* codebook = params.codebook.data();
        const double* mids = midpoints.data();
#pragma omp parallel for if (n > (1 << 16))
        for (std::int64_t i = 0; i < n; ++i) {
            const auto b = static_cast<std::size_t>(blockOf(i));
            out[i] = std::isnan(in[i]) ? in[i] : codebook[b * levels + nearestCentroid(mids + b * (levels - 1), levels - 1, in[i])];
        }
        break;
    }
    case SchemeFamily::FloatingPoint:
        if (params.scheme == Scheme::Fp16) {
            applyElementwise(in, out, n, [](float x) { return roundToFp16(x); });
        } else if (params.scheme == Scheme::Bf16) {
            applyElementwise(in, out, n, [](float x) { return roundToBf16(x); });
        } else {
            // value = s * fp8(x / s): the pre-scale maps the block's amax to the format's max.
            checkScales(params);
            const bool e4m3 = params.scheme == Scheme::Fp8E4M3;
            const float* scale = params.scale.data();
#pragma omp parallel for if (n > (1 << 16))
            for (std::int64_t i = 0; i < n; ++i) {
                const float s = scale[blockOf(i)];
                out[i] = s * (e4m3 ? roundToFp8E4M3(in[i] / s) : roundToFp8E5M2(in[i] / s));
            }
        }
        break;
    }
    return result;
}

std::vector<float> quantizationLevels(const QuantParams& params, std::size_t block)
{
    if (block >= params.blockCount())
        throw Error("quantizationLevels: expected a block index below " + std::to_string(params.blockCount()) + ", got " +
                    std::to_string(block));
    const float scale = params.scale[block];
    std::vector<float> levels;
    switch (schemeTraits(params.scheme).family) {
    case SchemeFamily::Uniform: {
        checkArraySize("zero-point", params.zeroPoint.size(), params.blockCount());
        // The same float arithmetic as fakeQuantize(), so every output is one of these values.
        const auto zeroPoint = static_cast<float>(params.zeroPoint[block]);
        for (std::int32_t q = params.qmin; q <= params.qmax; ++q)
            levels.push_back((static_cast<float>(q) - zeroPoint) * scale);
        return levels;
    }
    case SchemeFamily::Logarithmic:
        return log2Levels(scale, params.qmax, params.isSigned);
    case SchemeFamily::Codebook: {
        const auto count = std::size_t{1} << params.bits;
        checkArraySize("codebook", params.codebook.size(), params.blockCount() * count);
        return {params.codebook.begin() + static_cast<std::ptrdiff_t>(block * count),
                params.codebook.begin() + static_cast<std::ptrdiff_t>((block + 1) * count)};
    }
    case SchemeFamily::FloatingPoint:
        break;
    }

    // Floating-point formats: enumerate the codes. FP8 levels are all finite codes times the
    // pre-scale (the scale maps the block's range onto the whole format); fp16/bf16 have no
    // pre-scale, so only the values the block's data range can reach are listed (from its rounded
    // minimum to its rounded maximum), and none at all when there are more than kMaxFloatLevels of
    // them (too many to draw).
    constexpr std::size_t kMaxFloatLevels = 4096;
    const bool fp8 = params.scheme == Scheme::Fp8E4M3 || params.scheme == Scheme::Fp8E5M2;
    const std::uint32_t codeCount = fp8 ? 256 : 65536;
    const auto round = params.scheme == Scheme::Fp16 ? roundToFp16 : roundToBf16;
    const float lo = fp8 ? -std::numeric_limits<float>::infinity() : round(params.rangeMin.at(block));
    const float hi = fp8 ? std::numeric_limits<float>::infinity() : round(params.rangeMax.at(block));
    for (std::uint32_t code = 0; code < codeCount; ++code) {
        float value = 0.f;
        switch (params.scheme) {
        case Scheme::Fp8E4M3: value = scale * static_cast<float>(decodeFloat(code, {4, 3, 7, false})); break;
        case Scheme::Fp8E5M2: value = scale * static_cast<float>(decodeFloat(code, {5, 2, 15, true})); break;
        case Scheme::Fp16: value = static_cast<float>(decodeFloat(code, {5, 10, 15, true})); break;
        default: value = std::bit_cast<float>(code << 16); break;  // bf16: the upper half of a float32
        }
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

float roundToFp16(float x) { return roundToFormat(x, kFp16Format); }

float roundToBf16(float x)
{
    if (std::isnan(x))
        return std::bit_cast<float>(0x7FC00000u);  // PyTorch's c10::BFloat16 also makes every NaN 0x7FC0
    // Round to nearest, ties to even, on the 16 bits that are dropped; a carry may run into the
    // exponent, which is correct (up to infinity on overflow, as PyTorch's .bfloat16()).
    std::uint32_t bits = std::bit_cast<std::uint32_t>(x);
    bits += 0x7FFFu + ((bits >> 16) & 1u);
    return std::bit_cast<float>(bits & 0xFFFF0000u);
}

// OCP E4M3 has no infinity (S.1111.111 is NaN), so saturation is the only sensible overflow.
float roundToFp8E4M3(float x) { return roundToFormat(x, kE4M3Format); }

// OCP E5M2 has infinities, but we saturate finite overflow and infinity alike to +-57344 (OCP's
// "saturating" conversion mode): the pre-scale in fakeQuantize() is meant to prevent overflow, and
// an inf would poison every later layer's statistics.
float roundToFp8E5M2(float x) { return roundToFormat(x, kE5M2Format); }

}  // namespace qe
