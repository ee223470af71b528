#pragma once
// The one table of quantization schemes. Each row holds everything a scheme is: its name and bit
// widths, its family, whether an integer form exists, its format constants, and its behaviour
// (code range, parameter fitting, fake quantization, levels; the rows are in scheme.cpp, the
// fake quantization and levels functions they point to in quantizers.cpp). The engine, the configuration parser, the UI's combo boxes, the exporter and the tests
// all read it (ggml's type_traits pattern), so adding a scheme is one enum value and one row.
//
// Quantization parameters are values with one stated meaning per kind (QuantParams::values):
//     uniform:        real = scale * (code - zero_point)            (TFLite's convention)
//     log2:           real = 0 or +-largest * 2^-k
//     codebook:       real = centroid[code]
//     floating point: real = pre_scale * round_to_format(x / pre_scale)

#include "tensor/tensor.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace qe {

enum class Scheme : std::uint8_t {
    Affine,      // uniform, asymmetric: scale and zero-point, real 0.0 exactly representable
    Symmetric,   // uniform, zero-point 0 (narrow range for signed: -(2^(b-1)-1) .. 2^(b-1)-1)
    PowerOfTwo,  // symmetric with the scale rounded up to a power of two (fixed-point hardware)
    Log2,        // non-uniform: 0 and +-scale * 2^-k, k = 0 .. 2^(b-1)-2
    KMeans,      // non-uniform: a codebook of 2^b centroids (weight sharing), weights only
    Fp16,        // IEEE 754 binary16
    Bf16,        // bfloat16 (8-bit exponent, 7-bit mantissa)
    Fp8E4M3,     // OCP 8-bit float E4M3 (bias 7, max 448, no infinities)
    Fp8E5M2,     // OCP 8-bit float E5M2 (bias 15, max 57344, IEEE-like infinities)
};
constexpr int kSchemeCount = 9;

enum class SchemeFamily : std::uint8_t { Uniform, Logarithmic, Codebook, FloatingPoint };

// A binary floating-point format narrower than float32 (fp16, bf16, fp8).
struct FloatFormat {
    int exponentBits, mantissaBits, bias;
    double maxFinite;
    bool saturate;      // overflow (and infinity) to +-maxFinite instead of to infinity
    bool ieeeSpecials;  // all-ones exponent is inf/NaN (fp16, bf16, E5M2); else only S.1111.111 is NaN (E4M3)
    bool preScaled;     // values are divided by a per-block pre-scale mapping their amax to maxFinite (fp8)
};

// How the MSE calibrators score a candidate range (calibration.cpp): the uniform grid it would
// get. Non-uniform schemes and float formats are scored with the symmetric grid: a proxy.
enum class CalibrationGrid : std::uint8_t { Affine, Symmetric, PowerOfTwo };

struct SchemeTraits {
    Scheme scheme;
    std::string_view name;         // as written in configuration files: "affine", "fp8_e4m3", ...
    std::string_view displayName;  // for the UI: "Affine (asymmetric)"
    SchemeFamily family;
    int minBits, maxBits, defaultBits;  // floating-point formats have minBits == maxBits
    bool forWeights, forActivations;
    // Its codes are integers that integer kernels and QDQ files take (uniform schemes), up to
    // kMaxIntegerBits bits: see runsInIntegers().
    bool integerForm;
    const FloatFormat* format;     // floating-point formats only
    CalibrationGrid calibrationGrid;
    std::string_view tradeOff;     // one sentence shown as a tooltip: what it costs, what it buys
};

const std::array<SchemeTraits, kSchemeCount>& schemeTable();
const SchemeTraits& schemeTraits(Scheme scheme);
std::optional<Scheme> schemeFromName(std::string_view name);

// PerToken is for dynamic activations only: one range per row of the last axis, taken at run
// time (a transformer's tokens: one outlier token no longer sets every other token's step).
enum class Granularity : std::uint8_t { PerTensor, PerChannel, PerGroup, PerToken };
std::string_view granularityName(Granularity g);  // "per_tensor", "per_channel", "per_group", "per_token"
std::optional<Granularity> granularityFromName(std::string_view name);

// How each weight block's range is chosen before its scheme fits a grid to it: the block's
// extremes, or the clipping that gives the block the least squared quantization error (the range
// shrunk towards 0 by a common factor; the choice AdaRound's authors and AIMET make for weights).
// At 4 bits and below one outlier weight otherwise coarsens the step of every other weight.
enum class WeightRange : std::uint8_t { MinMax, Mse };
std::string_view weightRangeName(WeightRange range);  // "minmax", "mse"
std::optional<WeightRange> weightRangeFromName(std::string_view name);

// What the user chose for one tensor (a layer's weights or its output activations).
struct TensorQuantSpec {
    bool quantize = true;             // false: this tensor stays in float
    Scheme scheme = Scheme::Symmetric;
    int bits = 8;
    Granularity granularity = Granularity::PerTensor;
    int groupSize = 0;                // for PerGroup: block length along the input axis
    std::optional<bool> isSigned;     // unset: signed for weights, unsigned for affine activations
                                      // whose range is non-negative
    bool dynamic = false;             // activations only: range computed per input at run time
    WeightRange range = WeightRange::MinMax;  // weights only; k-means fits its codebook to the values instead
    bool operator==(const TensorQuantSpec&) const = default;
};

// The parameters of each kind of scheme, one array entry per block (tensor, channel or group).
struct UniformParams {      // affine, symmetric, power of two: real = scale * (code - zeroPoint)
    std::vector<float> scale;             // the step between neighbouring levels
    std::vector<std::int32_t> zeroPoint;  // 0 for the symmetric schemes
    bool operator==(const UniformParams&) const = default;
};
struct Log2Params {         // 0 and +-largest * 2^-k, k = 0 .. qmax - 1; code +-j is the level +-largest * 2^(j - qmax)
    std::vector<float> largest;
    bool operator==(const Log2Params&) const = default;
};
struct CodebookParams {     // k-means: 2^bits sorted centroids per block; code k is centroid k
    std::vector<float> centroids;
    // Per block: how many centroids were fitted. A block with fewer distinct weights than 2^bits
    // (a 3x3 depthwise channel has 9) gets exactly its distinct values, and the rest of its
    // 2^bits entries repeat the largest: more levels could not lower the error.
    std::vector<int> fitted;
    bool operator==(const CodebookParams&) const = default;
};
struct FloatFormatParams {  // real = preScale * round_to_format(x / preScale); 1 for fp16/bf16
    std::vector<float> preScale;
    bool operator==(const FloatFormatParams&) const = default;
};

// The parameters one tensor was quantized with. `axis` is the channel axis of per-channel and
// per-group blocks.
struct QuantParams {
    Scheme scheme = Scheme::Symmetric;
    int bits = 8;
    bool isSigned = true;
    Granularity granularity = Granularity::PerTensor;
    int axis = 0;
    int groupSize = 0;
    std::int32_t qmin = -127, qmax = 127;  // the integer codes (uniform, log2 and k-means; 0 for float formats)
    std::vector<float> rangeMin, rangeMax; // the clipping range each block's parameters were derived from
    std::variant<UniformParams, Log2Params, CodebookParams, FloatFormatParams> values;

    // The kind's parameters; qe::Error naming the scheme when the parameters are of another kind.
    const UniformParams& uniform() const;
    UniformParams& uniform();
    const Log2Params& log2() const;
    const CodebookParams& codebook() const;
    const FloatFormatParams& floatFormat() const;
    std::size_t blockCount() const;
    bool operator==(const QuantParams&) const = default;
};

// Uniform parameters of `scheme` with these scales and zero-points (e.g. read from a QDQ file).
QuantParams uniformParams(Scheme scheme, int bits, bool isSigned, std::vector<float> scale, std::vector<std::int32_t> zeroPoint);

// The one rule for "runs in integers": quantized so, a tensor is 8-bit integer codes that the
// int8 engine's kernels and a QDQ file take. Granularity is the caller's concern (per-group
// blocks have no integer kernel, and activations must be per tensor).
constexpr int kMaxIntegerBits = 8;
bool runsInIntegers(Scheme scheme, int bits);
inline bool runsInIntegers(const QuantParams& params) { return runsInIntegers(params.scheme, params.bits); }
inline bool runsInIntegers(const TensorQuantSpec& spec) { return runsInIntegers(spec.scheme, spec.bits); }

// Parameters for an activation tensor whose clipping range is [min, max] (from calibration or,
// for dynamic quantization, from the tensor itself). Per-tensor only; k-means is not allowed.
QuantParams paramsForRange(const TensorQuantSpec& spec, float min, float max);

// Dynamic per-token parameters of an activation tensor: each row of its last axis gets the range
// of its own values (spec.granularity must be PerToken; rank >= 1). Signedness is the tensor's:
// as paramsForRange() decides it from the whole tensor's range.
QuantParams paramsForTokens(const TensorQuantSpec& spec, const Tensor& values);

// Parameters for a weight tensor: ranges per tensor / per output channel (axis 0) / per group
// (blocks of groupSize along the flattened input dimensions of each output channel), each block's
// range chosen as spec.range says; k-means
// fits its codebook here (deterministic: Lloyd's iterations started from the uniform grid, so the
// result is never worse in MSE than uniform min-max quantization with the same level count).
QuantParams paramsForWeights(const TensorQuantSpec& spec, const Tensor& weights);
// Whether paramsForWeights searches the weights' range under `spec`: MSE ranges on a scheme that
// fits a grid to a range (every one but the k-means codebook, which fits itself to the values).
bool searchesWeightRange(const TensorQuantSpec& spec);

// Uniform fake quantization of one block, exactly as PyTorch's CPU kernel
// (fake_quantize_tensor_cachemask_kernel and its per-channel twin): inv_scale = 1.0f / scale,
// q = zero_point + nearbyint(x * inv_scale) in float32 (half to even, rounding x * inv_scale, not
// x / scale), clamped to [qmin, qmax], then (q - zero_point) * scale. PyTorch's product is in double
// and rounded once to float, which equals the float product because (q - zero_point) has at most 17
// significant bits. Differences on purpose: NaN stays NaN and +-inf saturate to the range ends;
// PyTorch casts those to int64 (undefined behaviour; in practice they become qmin).
// No branch for NaN: it passes through every step (std::clamp returns a NaN it is given), and
// without a branch the loops over a tensor compile to vector instructions (vroundps), four to
// eight values at a time. fakeQuantize uses it for every uniform scheme; loops that read the
// fake-quantized values once (the evaluator's error sums) use it in place of a quantized tensor.
struct UniformRounding {
    float scale, inverseScale, zeroPoint, qmin, qmax;
    float operator()(float x) const
    {
        const float q = std::clamp(std::nearbyint(x * inverseScale) + zeroPoint, qmin, qmax);
        return (q - zeroPoint) * scale;
    }
    // Block `block` of uniform parameters (unchecked: fakeQuantize checks them).
    static UniformRounding of(const QuantParams& params, std::size_t block)
    {
        const UniformParams& u = params.uniform();
        return {u.scale[block], 1.0f / u.scale[block], static_cast<float>(u.zeroPoint[block]), static_cast<float>(params.qmin),
                static_cast<float>(params.qmax)};
    }
};
// The rounding of uniform parameters with one block that fakeQuantize accepts (a positive, finite
// scale with a finite inverse; qmin < qmax), which then gives fakeQuantize's values element by
// element; nothing for other schemes, several blocks or parameters fakeQuantize would refuse.
std::optional<UniformRounding> singleUniformRounding(const QuantParams& params);

// Quantize and dequantize: the float tensor a device would compute with (fake quantization).
Tensor fakeQuantize(const Tensor& values, const QuantParams& params);

// Every representable value of block `block` (sorted ascending), for histograms and for the UI's
// layer details. Floating-point formats return the values inside [rangeMin, rangeMax] only up to
// a limit of 4096 levels (fp16/bf16 have too many to draw).
std::vector<float> quantizationLevels(const QuantParams& params, std::size_t block = 0);

// Scalar conversions, exposed for the tests against outside references.
float roundToFp16(float x);   // IEEE round-to-nearest-even, overflow to infinity, subnormals kept
float roundToBf16(float x);   // round-to-nearest-even on the upper 16 bits of the binary32
float roundToFp8E4M3(float x);  // OCP E4M3, round-to-nearest-even, saturating to +-448, NaN stays NaN
float roundToFp8E5M2(float x);  // OCP E5M2, round-to-nearest-even, saturating to +-57344

}  // namespace qe
