#pragma once
// The one table of quantization schemes. The engine, the configuration parser, the UI's combo
// boxes, the exporter and the tests all read it (ggml's type_traits pattern), so adding a scheme
// is one enum value and one table row.
//
// Quantization parameters are values with a stated meaning (TFLite's convention):
//     real_value = scale * (quantized_value - zero_point)
// for the uniform schemes; the non-uniform schemes (log2, k-means) are lookup tables of levels,
// and the floating-point formats round to the nearest representable value of the format.

#include "tensor/tensor.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
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

struct SchemeTraits {
    Scheme scheme;
    std::string_view name;         // as written in configuration files: "affine", "fp8_e4m3", ...
    std::string_view displayName;  // for the UI: "Affine (asymmetric)"
    SchemeFamily family;
    int minBits, maxBits, defaultBits;  // floating-point formats have minBits == maxBits
    bool forWeights, forActivations;
    std::string_view tradeOff;     // one sentence shown as a tooltip: what it costs, what it buys
};

const std::array<SchemeTraits, kSchemeCount>& schemeTable();
const SchemeTraits& schemeTraits(Scheme scheme);
std::optional<Scheme> schemeFromName(std::string_view name);

enum class Granularity : std::uint8_t { PerTensor, PerChannel, PerGroup };
std::string_view granularityName(Granularity g);  // "per_tensor", "per_channel", "per_group"
std::optional<Granularity> granularityFromName(std::string_view name);

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
    bool operator==(const TensorQuantSpec&) const = default;
};

// The parameters one tensor was quantized with. Arrays have one entry per tensor, per channel,
// or per (channel, group); `axis` is the channel axis.
struct QuantParams {
    Scheme scheme = Scheme::Symmetric;
    int bits = 8;
    bool isSigned = true;
    Granularity granularity = Granularity::PerTensor;
    int axis = 0;
    int groupSize = 0;
    std::int32_t qmin = -127, qmax = 127;  // integer code range (uniform and log2)
    std::vector<float> scale;              // uniform: step; log2: largest level; fp8: pre-scale; fp16/bf16: 1
    std::vector<std::int32_t> zeroPoint;   // uniform only (0 for symmetric)
    std::vector<float> rangeMin, rangeMax; // the clipping range each scale was derived from
    std::vector<float> codebook;           // k-means: 2^bits sorted centroids per parameter block
    std::size_t blockCount() const { return scale.size(); }
    bool operator==(const QuantParams&) const = default;
};

// Parameters for an activation tensor whose clipping range is [min, max] (from calibration or,
// for dynamic quantization, from the tensor itself). Per-tensor only; k-means is not allowed.
QuantParams paramsForRange(const TensorQuantSpec& spec, float min, float max);

// Parameters for a weight tensor: ranges per tensor / per output channel (axis 0) / per group
// (blocks of groupSize along the flattened input dimensions of each output channel); k-means
// fits its codebook here (deterministic: Lloyd's iterations started from the uniform grid, so the
// result is never worse in MSE than uniform min-max quantization with the same level count).
QuantParams paramsForWeights(const TensorQuantSpec& spec, const Tensor& weights);

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
