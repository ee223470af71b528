// The table of quantization schemes, the fitting of each kind's parameters, and the functions
// scheme.h declares. Each scheme's behaviour is in its row of kSchemes (at the end of the
// anonymous namespace): its code range and parameter fitting, defined above the table, and its
// fake quantization and levels, defined in quantizers.cpp. The small floating-point formats are
// in small_float.cpp and the k-means codebook fitting in kmeans.cpp; scheme_internal.h is what the
// four files share. Nothing else in the program switches over schemes.

#include "quant/scheme.h"
#include "quant/scheme_internal.h"

#include "common/error.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace qe {
using namespace scheme_detail;  // the rows' functions and formats, from the other three files
namespace {

constexpr std::array<std::string_view, 4> kGranularityNames{"per_tensor", "per_channel", "per_group", "per_token"};
constexpr std::array<std::string_view, 2> kWeightRangeNames{"minmax", "mse"};

std::string quoted(std::string_view name) { return "'" + std::string(name) + "'"; }

// The enumerator whose name in `names` (in enum order) is `name`.
template <class Enum, std::size_t N>
std::optional<Enum> fromName(const std::array<std::string_view, N>& names, std::string_view name)
{
    for (std::size_t i = 0; i < N; ++i)
        if (names[i] == name)
            return static_cast<Enum>(i);
    return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Parameters

// The smallest scale we hand out: positive, and 1/scale is still finite. A zero range (an all-zero
// tensor, a dead channel) gets it instead of 0 or NaN; its only code near zero is then 0 itself.
constexpr float kMinScale = std::numeric_limits<float>::min();

float atLeastMinScale(float scale) { return scale >= kMinScale ? scale : kMinScale; }  // also catches NaN

// 2^ceil(log2(scale)), computed exactly from the binary exponent rather than with log2().
float roundUpToPowerOfTwo(float scale)
{
    int exponent = 0;
    const float mantissa = std::frexp(scale, &exponent);  // scale = mantissa * 2^exponent, mantissa in [0.5, 1)
    if (mantissa == 0.5f)
        return scale;
    return std::ldexp(1.f, std::min(exponent, std::numeric_limits<float>::max_exponent - 1));
}

struct CodeRange {
    std::int32_t qmin, qmax;
};

// Code ranges, by kind.
CodeRange fullCodes(int b, bool isSigned)  // affine: every code of b bits
{
    return isSigned ? CodeRange{-(1 << (b - 1)), (1 << (b - 1)) - 1} : CodeRange{0, (1 << b) - 1};
}
CodeRange narrowCodes(int b, bool isSigned)  // symmetric: -qmax .. qmax (TFLite's int8 weights), so +-amax are both exact
{
    return isSigned ? CodeRange{-((1 << (b - 1)) - 1), (1 << (b - 1)) - 1} : CodeRange{0, (1 << b) - 1};
}
CodeRange log2Codes(int b, bool isSigned)
{
    // Code 0 is the value 0 and code +-j (j = 1 .. qmax) the level +-largest * 2^(j - qmax).
    // Signed: one sign bit, 2^(b-1) - 1 magnitudes; unsigned: all 2^b - 1 nonzero codes.
    const std::int32_t qmax = isSigned ? (1 << (b - 1)) - 1 : (1 << b) - 1;
    return {isSigned ? -qmax : 0, qmax};
}
CodeRange codebookCodes(int b, bool) { return {0, (1 << b) - 1}; }  // indices into the block's codebook
CodeRange noCodes(int, bool) { return {0, 0}; }                     // floating-point formats

// Parameter fitting from one block's range [lo, hi], by scheme. Each appends one block.
void fitAffine(QuantParams& params, float lo, float hi)
{
    const auto qmin = static_cast<float>(params.qmin), qmax = static_cast<float>(params.qmax);
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
    params.uniform().scale.push_back(scale);
    params.uniform().zeroPoint.push_back(static_cast<std::int32_t>(zeroPoint));
    params.rangeMin.push_back(lo);
    params.rangeMax.push_back(hi);
}

// The symmetric range's bound: unsigned codes cannot hold negative values, so only the positive
// side sets it.
float symmetricBound(const QuantParams& params, float lo, float hi)
{
    return params.isSigned ? std::max({-lo, hi, 0.f}) : std::max(hi, 0.f);
}

void appendSymmetricBlock(QuantParams& params, float amax, float scale)
{
    params.uniform().scale.push_back(scale);
    params.uniform().zeroPoint.push_back(0);
    params.rangeMin.push_back(params.isSigned ? -amax : 0.f);
    params.rangeMax.push_back(amax);
}

void fitSymmetric(QuantParams& params, float lo, float hi)
{
    const float amax = symmetricBound(params, lo, hi);
    // As PyTorch's symmetric observer: amax / ((qmax - qmin) / 2).
    appendSymmetricBlock(params, amax, atLeastMinScale(amax / static_cast<float>(params.qmax)));
}

void fitPowerOfTwo(QuantParams& params, float lo, float hi)
{
    const float amax = symmetricBound(params, lo, hi);
    // Rounding up never clips more than the symmetric scale.
    appendSymmetricBlock(params, amax, roundUpToPowerOfTwo(atLeastMinScale(amax / static_cast<float>(params.qmax))));
}

void fitLog2(QuantParams& params, float lo, float hi)
{
    const float amax = symmetricBound(params, lo, hi);
    std::get<Log2Params>(params.values).largest.push_back(atLeastMinScale(amax));  // the largest level is amax itself
    params.rangeMin.push_back(params.isSigned ? -amax : 0.f);
    params.rangeMax.push_back(amax);
}

void fitFloatFormat(QuantParams& params, float lo, float hi)
{
    const FloatFormat& format = *schemeTraits(params.scheme).format;
    auto& preScale = std::get<FloatFormatParams>(params.values).preScale;
    if (format.preScaled) {
        // Per-tensor (per-channel) scaling as in FP8 recipes: amax maps to the format's max.
        const float amax = std::max({-lo, hi, 0.f});
        preScale.push_back(atLeastMinScale(amax / static_cast<float>(format.maxFinite)));
        params.rangeMin.push_back(-amax);
        params.rangeMax.push_back(amax);
    } else {
        // No pre-scale: the values are rounded to the format as they are. The range is the
        // data's, which limits quantizationLevels() to the levels the data can reach.
        preScale.push_back(1.f);
        params.rangeMin.push_back(lo);
        params.rangeMax.push_back(hi);
    }
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
// The table

struct SchemeRow {
    SchemeTraits traits;
    CodeRange (*codeRange)(int bits, bool isSigned);
    // One block's parameters from its range; nullptr when they are fitted to the values (k-means).
    void (*fitBlock)(QuantParams& params, float lo, float hi);
    void (*fakeQuantize)(const QuantParams& params, const BlockIndex& blockOf, const float* in, float* out, std::int64_t n);
    std::vector<float> (*levels)(const QuantParams& params, std::size_t block);
    float (*round)(float x);  // floating-point formats: to the nearest value of the format
    // The parameters of this kind, empty.
    std::variant<UniformParams, Log2Params, CodebookParams, FloatFormatParams> (*emptyValues)();
};

template <class Kind> std::variant<UniformParams, Log2Params, CodebookParams, FloatFormatParams> empty() { return Kind{}; }

constexpr std::array<SchemeRow, kSchemeCount> kSchemes{{
    {{Scheme::Affine, "affine", "Affine (asymmetric)", SchemeFamily::Uniform, 2, 16, 8, true, true, true, nullptr, CalibrationGrid::Affine,
      "Uses the full code range for skewed data such as ReLU outputs; the zero-point adds integer work to every dot "
      "product."},
     fullCodes, fitAffine, fakeQuantizeUniform, uniformLevels, nullptr, empty<UniformParams>},
    {{Scheme::Symmetric, "symmetric", "Symmetric", SchemeFamily::Uniform, 2, 16, 8, true, true, true, nullptr, CalibrationGrid::Symmetric,
      "No zero-point, so integer kernels stay simple; signed codes waste half the range on one-sided data such as ReLU "
      "outputs."},
     narrowCodes, fitSymmetric, fakeQuantizeUniform, uniformLevels, nullptr, empty<UniformParams>},
    {{Scheme::PowerOfTwo, "power_of_two", "Symmetric, power-of-two scale", SchemeFamily::Uniform, 2, 16, 8, true, true, true, nullptr,
      CalibrationGrid::PowerOfTwo,
      "Rescaling becomes a bit shift on fixed-point hardware; rounding the scale up can cost up to one bit of "
      "resolution."},
     narrowCodes, fitPowerOfTwo, fakeQuantizeUniform, uniformLevels, nullptr, empty<UniformParams>},
    {{Scheme::Log2, "log2", "Logarithmic (powers of two)", SchemeFamily::Logarithmic, 3, 8, 4, true, true, false, nullptr,
      CalibrationGrid::Symmetric,
      "Small values keep their relative precision and multiplications become shifts, but large values are coarse "
      "(up to about 40% relative error)."},
     log2Codes, fitLog2, fakeQuantizeLog2, log2LevelsOf, nullptr, empty<Log2Params>},
    {{Scheme::KMeans, "kmeans", "K-means codebook", SchemeFamily::Codebook, 1, 8, 4, true, false, false, nullptr, CalibrationGrid::Symmetric,
      "Places the levels where the weights are, giving the lowest error per bit; needs a lookup table and a fitting "
      "step, so it is for weights only."},
     codebookCodes, nullptr, fakeQuantizeCodebook, codebookLevels, nullptr, empty<CodebookParams>},
    {{Scheme::Fp16, "fp16", "FP16 (IEEE half)", SchemeFamily::FloatingPoint, 16, 16, 16, true, true, false, &kFp16, CalibrationGrid::Symmetric,
      "Halves the memory with almost no accuracy loss; values beyond 65504 overflow to infinity."},
     noCodes, fitFloatFormat, fakeQuantizeFloatFormat, floatFormatLevels, roundToFp16, empty<FloatFormatParams>},
    {{Scheme::Bf16, "bf16", "BF16 (bfloat16)", SchemeFamily::FloatingPoint, 16, 16, 16, true, true, false, &kBf16, CalibrationGrid::Symmetric,
      "Keeps float32's range so nothing overflows, but has only 8 significant bits (2 to 3 decimal digits)."},
     noCodes, fitFloatFormat, fakeQuantizeFloatFormat, floatFormatLevels, roundToBf16, empty<FloatFormatParams>},
    {{Scheme::Fp8E4M3, "fp8_e4m3", "FP8 E4M3 (OCP)", SchemeFamily::FloatingPoint, 8, 8, 8, true, true, false, &kFp8E4M3,
      CalibrationGrid::Symmetric,
      "A quarter of float32's memory with a relative precision of 1/16 within a per-tensor scaled range; the usual "
      "FP8 choice for inference."},
     noCodes, fitFloatFormat, fakeQuantizeFloatFormat, floatFormatLevels, roundToFp8E4M3, empty<FloatFormatParams>},
    {{Scheme::Fp8E5M2, "fp8_e5m2", "FP8 E5M2 (OCP)", SchemeFamily::FloatingPoint, 8, 8, 8, true, true, false, &kFp8E5M2,
      CalibrationGrid::Symmetric,
      "More dynamic range than E4M3 but only a relative precision of 1/8; made for gradients and usually too coarse "
      "for weights."},
     noCodes, fitFloatFormat, fakeQuantizeFloatFormat, floatFormatLevels, roundToFp8E5M2, empty<FloatFormatParams>},
}};

constexpr bool rowsFollowTheEnum()
{
    for (std::size_t i = 0; i < kSchemes.size(); ++i)
        if (static_cast<std::size_t>(kSchemes[i].traits.scheme) != i)
            return false;
    return true;
}
static_assert(static_cast<int>(Scheme::Fp8E5M2) + 1 == kSchemeCount, "kSchemeCount must count every Scheme");
static_assert(kSchemes.size() == kSchemeCount && rowsFollowTheEnum(), "one schemeTable() row per Scheme, in enum order");

constexpr std::array<SchemeTraits, kSchemeCount> traitsOf(const std::array<SchemeRow, kSchemeCount>& rows)
{
    std::array<SchemeTraits, kSchemeCount> traits{};
    for (std::size_t i = 0; i < rows.size(); ++i)
        traits[i] = rows[i].traits;
    return traits;
}
constexpr std::array<SchemeTraits, kSchemeCount> kTraits = traitsOf(kSchemes);

const SchemeRow& row(Scheme scheme)
{
    const auto index = static_cast<std::size_t>(scheme);
    if (index >= kSchemes.size())
        throw Error("unknown quantization scheme id " + std::to_string(index) + ": expected one of the " +
                    std::to_string(kSchemeCount) + " schemes in schemeTable()");
    return kSchemes[index];
}


bool bitsAllowed(Scheme scheme, int bits)
{
    const SchemeTraits& traits = schemeTraits(scheme);
    return bits >= traits.minBits && bits <= traits.maxBits;
}

void checkBits(Scheme scheme, int bits)
{
    if (bitsAllowed(scheme, bits))
        return;
    const SchemeTraits& traits = schemeTraits(scheme);
    const std::string expected = traits.minBits == traits.maxBits
        ? "exactly " + std::to_string(traits.minBits) + " bits"
        : std::to_string(traits.minBits) + " to " + std::to_string(traits.maxBits) + " bits";
    throw Error("scheme " + quoted(traits.name) + ": expected " + expected + ", got " + std::to_string(bits));
}

// Empty parameters for `spec`: its scheme's kind, code range and granularity, no blocks yet.
QuantParams emptyParams(const TensorQuantSpec& spec, bool isSigned)
{
    const SchemeRow& r = row(spec.scheme);
    QuantParams params;
    params.scheme = spec.scheme;
    params.bits = spec.bits;
    const SchemeFamily family = r.traits.family;
    params.isSigned = family == SchemeFamily::FloatingPoint || family == SchemeFamily::Codebook ? true : isSigned;
    params.granularity = spec.granularity;
    params.axis = 0;
    params.groupSize = spec.granularity == Granularity::PerGroup ? spec.groupSize : 0;
    const CodeRange codes = r.codeRange(params.bits, params.isSigned);
    params.qmin = codes.qmin;
    params.qmax = codes.qmax;
    params.values = r.emptyValues();
    return params;
}

// Candidate clippings of the weights' MSE range: [f lo, f hi] for f = k / kWeightMseCandidates,
// then, around the best of those, steps a twentieth as fine (at 8 bits the error changes within
// one coarse step).
constexpr int kWeightMseCandidates = 100;
constexpr int kWeightMseRefinement = 20;

// The clipping of one weight block's range [lo, hi] that gives its `n` values `w` the least
// squared error once quantized as `noBlocks` (the tensor's parameters before any block) would
// quantize them. Every candidate
// is quantized by the scheme's own functions, so the search needs nothing per scheme. Weights
// are few next to activations and known exactly, so the search runs on the values themselves
// rather than on a histogram as the activations' MSE calibration does.
std::pair<float, float> mseWeightRange(const QuantParams& noBlocks, const float* w, std::int64_t n, float lo, float hi)
{
    const SchemeRow& r = row(noBlocks.scheme);
    std::vector<float> quantized(static_cast<std::size_t>(n));
    auto squaredError = [&](double factor) {
        QuantParams candidate = noBlocks;  // the scheme, bits and codes, with one block of its own
        candidate.granularity = Granularity::PerTensor;
        r.fitBlock(candidate, static_cast<float>(factor * lo), static_cast<float>(factor * hi));
        r.fakeQuantize(candidate, BlockIndex{}, w, quantized.data(), n);
        double error = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            const double d = double(quantized[static_cast<std::size_t>(i)]) - double(w[i]);
            error += d * d;
        }
        return error;
    };
    double bestError = std::numeric_limits<double>::infinity(), bestFactor = 1;
    auto consider = [&](double factor) {
        const double error = squaredError(factor);
        if (error < bestError) {  // candidates come widest first: ties keep the wider
            bestError = error;
            bestFactor = factor;
        }
    };
    for (int k = kWeightMseCandidates; k >= 1; --k)
        consider(double(k) / kWeightMseCandidates);
    const double coarse = bestFactor, fine = 1.0 / (kWeightMseCandidates * kWeightMseRefinement);
    for (int k = kWeightMseRefinement - 1; k >= -(kWeightMseRefinement - 1); --k)
        if (k != 0 && coarse + k * fine <= 1.0 && coarse + k * fine > 0)
            consider(coarse + k * fine);
    return {static_cast<float>(bestFactor * lo), static_cast<float>(bestFactor * hi)};
}

[[noreturn]] void wrongKind(Scheme scheme, std::string_view kind)
{
    throw Error("quantization parameters of scheme " + quoted(schemeTraits(scheme).name) + " have no " + std::string(kind) +
                " parameters");
}

}  // namespace

// The rows' rounding, for quantizers.cpp.
scheme_detail::Rounding scheme_detail::roundingOf(Scheme scheme) { return row(scheme).round; }

// ---------------------------------------------------------------------------------------------
// Public functions

const std::array<SchemeTraits, kSchemeCount>& schemeTable() { return kTraits; }

const SchemeTraits& schemeTraits(Scheme scheme)
{
    row(scheme);  // checks the id
    return kTraits[static_cast<std::size_t>(scheme)];
}

std::optional<Scheme> schemeFromName(std::string_view name)
{
    for (const SchemeTraits& traits : kTraits)
        if (traits.name == name)
            return traits.scheme;
    return std::nullopt;
}

std::string_view granularityName(Granularity g) { return kGranularityNames.at(static_cast<std::size_t>(g)); }

std::optional<Granularity> granularityFromName(std::string_view name) { return fromName<Granularity>(kGranularityNames, name); }

std::string_view weightRangeName(WeightRange range) { return kWeightRangeNames.at(static_cast<std::size_t>(range)); }

std::optional<WeightRange> weightRangeFromName(std::string_view name) { return fromName<WeightRange>(kWeightRangeNames, name); }

bool runsInIntegers(Scheme scheme, int bits) { return schemeTraits(scheme).integerForm && bits <= kMaxIntegerBits; }

const UniformParams& QuantParams::uniform() const
{
    if (const auto* u = std::get_if<UniformParams>(&values))
        return *u;
    wrongKind(scheme, "uniform");
}

UniformParams& QuantParams::uniform()
{
    if (auto* u = std::get_if<UniformParams>(&values))
        return *u;
    wrongKind(scheme, "uniform");
}

const Log2Params& QuantParams::log2() const
{
    if (const auto* l = std::get_if<Log2Params>(&values))
        return *l;
    wrongKind(scheme, "log2");
}

const CodebookParams& QuantParams::codebook() const
{
    if (const auto* c = std::get_if<CodebookParams>(&values))
        return *c;
    wrongKind(scheme, "codebook");
}

const FloatFormatParams& QuantParams::floatFormat() const
{
    if (const auto* f = std::get_if<FloatFormatParams>(&values))
        return *f;
    wrongKind(scheme, "floating-point format");
}

std::size_t QuantParams::blockCount() const
{
    if (const auto* u = std::get_if<UniformParams>(&values))
        return u->scale.size();
    if (const auto* l = std::get_if<Log2Params>(&values))
        return l->largest.size();
    if (const auto* c = std::get_if<CodebookParams>(&values))
        return c->centroids.size() >> bits;
    return std::get<FloatFormatParams>(values).preScale.size();
}

QuantParams uniformParams(Scheme scheme, int bits, bool isSigned, std::vector<float> scale, std::vector<std::int32_t> zeroPoint)
{
    if (!schemeTraits(scheme).integerForm)
        throw Error("scheme " + quoted(schemeTraits(scheme).name) + " is not uniform: expected scales and zero-points of a uniform scheme");
    TensorQuantSpec spec;
    spec.scheme = scheme;
    spec.bits = bits;
    QuantParams params = emptyParams(spec, isSigned);
    params.granularity = scale.size() > 1 ? Granularity::PerChannel : Granularity::PerTensor;
    params.uniform().scale = std::move(scale);
    params.uniform().zeroPoint = std::move(zeroPoint);
    return params;
}

namespace {

void requireActivationScheme(const TensorQuantSpec& spec)
{
    const SchemeTraits& traits = schemeTraits(spec.scheme);
    if (!traits.forActivations || !row(spec.scheme).fitBlock)
        throw Error("scheme " + quoted(traits.name) +
                    " is for weights only (it fits a codebook to known values): expected an activation scheme such as "
                    "'affine' or 'symmetric'");
    checkBits(spec.scheme, spec.bits);
}

// Unset signedness: affine activations use unsigned codes (uint8 with a zero-point, as ONNX
// Runtime's u8 activations) whatever their sign; the zero-point-free schemes need signed codes
// unless the range is non-negative (ReLU outputs), where unsigned codes double the resolution.
bool activationIsSigned(const TensorQuantSpec& spec, float min)
{
    return spec.isSigned.value_or(spec.scheme == Scheme::Affine ? false : min < 0.f);
}

}  // namespace

QuantParams paramsForRange(const TensorQuantSpec& spec, float min, float max)
{
    requireActivationScheme(spec);
    if (spec.granularity != Granularity::PerTensor)
        throw Error("activation ranges are per tensor: expected granularity 'per_tensor', got " +
                    quoted(granularityName(spec.granularity)));
    if (!std::isfinite(min) || !std::isfinite(max) || min > max)
        throw Error("expected a finite activation range with min <= max, got [" + std::to_string(min) + ", " +
                    std::to_string(max) + "]");
    QuantParams params = emptyParams(spec, activationIsSigned(spec, min));
    row(spec.scheme).fitBlock(params, min, max);
    return params;
}

QuantParams paramsForTokens(const TensorQuantSpec& spec, const Tensor& values)
{
    if (spec.granularity != Granularity::PerToken)
        throw Error("paramsForTokens: expected granularity 'per_token', got " + quoted(granularityName(spec.granularity)));
    if (values.empty() || values.dtype() != DataType::Float32 || values.rank() < 1 || values.dim(values.rank() - 1) == 0)
        throw Error("per-token ranges need a float32 tensor of rank >= 1 with non-empty rows, got " +
                    (values.empty() ? std::string("no tensor") : values.describe()));
    requireActivationScheme(spec);
    const std::int64_t rowLength = values.dim(values.rank() - 1), rows = values.size() / rowLength;
    const float* v = values.data<float>();
    std::vector<std::pair<float, float>> ranges(static_cast<std::size_t>(rows));
    float lowest = 0.f;
    for (std::int64_t r = 0; r < rows; ++r) {
        const auto [lo, hi] = std::minmax_element(v + r * rowLength, v + (r + 1) * rowLength);
        ranges[static_cast<std::size_t>(r)] = {*lo, *hi};
        lowest = std::min(lowest, *lo);
    }
    // One signedness for the whole tensor: one code type, as the static per-tensor range has.
    QuantParams params = emptyParams(spec, activationIsSigned(spec, lowest));
    params.axis = values.rank() - 1;
    for (const auto& [lo, hi] : ranges) {
        if (!std::isfinite(lo) || !std::isfinite(hi))
            throw Error("per-token ranges: " + values.describe() + " holds NaN or infinity");
        row(spec.scheme).fitBlock(params, lo, hi);
    }
    return params;
}

bool searchesWeightRange(const TensorQuantSpec& spec)
{
    return spec.range == WeightRange::Mse && row(spec.scheme).fitBlock != nullptr;
}

QuantParams paramsForWeights(const TensorQuantSpec& spec, const Tensor& weights)
{
    checkBits(spec.scheme, spec.bits);
    checkGroupSize(spec);
    if (weights.empty() || weights.size() == 0)
        throw Error("expected a non-empty weight tensor to quantize, got " + (weights.empty() ? std::string("no tensor") : weights.describe()));
    if (weights.dtype() != DataType::Float32)
        throw Error("expected float32 weights to quantize, got " + weights.describe());

    QuantParams params = emptyParams(spec, spec.isSigned.value_or(true));
    const auto fitBlock = row(spec.scheme).fitBlock;
    const std::vector<BlockSpan> blocks = weightBlocks(spec, weights);
    const float* w = weights.data<float>();
    const QuantParams noBlocks = params;
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
        if (fitBlock) {
            if (searchesWeightRange(spec))
                std::tie(lo, hi) = mseWeightRange(noBlocks, w + blocks[b].start, blocks[b].length, lo, hi);
            fitBlock(params, lo, hi);
        } else {  // the codebook is fitted below; the range is the block's values
            params.rangeMin.push_back(lo);
            params.rangeMax.push_back(hi);
        }
    }

    if (!fitBlock) {  // k-means: a codebook fitted to each block's values
        const int levels = 1 << spec.bits;
        CodebookParams& fitted = std::get<CodebookParams>(params.values);
        std::vector<float>& codebook = fitted.centroids;
        codebook.resize(blocks.size() * static_cast<std::size_t>(levels));
        fitted.fitted.resize(blocks.size());
        const std::span<const float> all = weights.values<float>();
        std::vector<float> sorted(all.begin(), all.end());
        std::vector<double> prefix(sorted.size() + blocks.size());
        const auto blockCount = static_cast<std::int64_t>(blocks.size());
#pragma omp parallel for schedule(dynamic) if (blockCount > 1 && weights.size() > (1 << 16))
        for (std::int64_t b = 0; b < blockCount; ++b) {
            const BlockSpan& span = blocks[static_cast<std::size_t>(b)];
            const auto start = static_cast<std::size_t>(span.start), length = static_cast<std::size_t>(span.length);
            fitted.fitted[static_cast<std::size_t>(b)] =
                fitCodebook(std::span<float>(sorted).subspan(start, length),
                            std::span<double>(prefix).subspan(start + static_cast<std::size_t>(b), length + 1), levels,
                            codebook.data() + static_cast<std::size_t>(b) * static_cast<std::size_t>(levels));
        }
    }
    return params;
}

std::optional<UniformRounding> singleUniformRounding(const QuantParams& params)
{
    // fakeQuantize's checks (checkBits, the row's kind, checkScales, qmin < qmax), as a question.
    if (!bitsAllowed(params.scheme, params.bits) || !std::holds_alternative<UniformParams>(params.values) ||
        params.values.index() != row(params.scheme).emptyValues().index() || params.granularity != Granularity::PerTensor)
        return std::nullopt;
    const UniformParams& u = params.uniform();
    if (u.scale.size() != 1 || u.zeroPoint.size() != 1 || params.qmin >= params.qmax || !usableScale(u.scale[0]))
        return std::nullopt;
    return UniformRounding::of(params, 0);
}

Tensor fakeQuantize(const Tensor& values, const QuantParams& params)
{
    if (values.empty())
        throw Error("fakeQuantize: expected a float32 tensor, got no tensor");
    if (values.dtype() != DataType::Float32)
        throw Error("fakeQuantize: expected a float32 tensor, got " + values.describe());
    checkBits(params.scheme, params.bits);
    if (params.values.index() != row(params.scheme).emptyValues().index())
        throw Error("quantization parameters: the parameters do not match their scheme " + quoted(schemeTraits(params.scheme).name));
    const BlockIndex blockOf = blockIndexFor(params, values);
    Tensor result = Tensor::uninitialized(DataType::Float32, values.shape());  // every element is written
    const std::int64_t n = values.size();
    if (n == 0)
        return result;
    row(params.scheme).fakeQuantize(params, blockOf, values.data<float>(), result.mutableData<float>(), n);
    return result;
}

std::vector<float> quantizationLevels(const QuantParams& params, std::size_t block)
{
    if (block >= params.blockCount())
        throw Error("quantizationLevels: expected a block index below " + std::to_string(params.blockCount()) + ", got " +
                    std::to_string(block));
    return row(params.scheme).levels(params, block);
}

}  // namespace qe
