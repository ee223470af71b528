#pragma once
// Our own int8 kernels, with the requantization done in the kernel's epilogue while the
// accumulators are still in registers:
//   - PackedGemm: a matrix product by constant weights (a fully connected layer, or the rows of
//     Im2colConv). AVX-512 VNNI (vpdpbusd: u8 x s8, four products summed into each int32 lane),
//     a 6 x 64 register tile (XNNPACK/ruy style).
//   - Im2colConv: convolutions without groups, pointwise ones straight on the input.
//   - DepthwiseConv: one filter per channel, any window, stride, dilation and padding, channels-
//     last, sixteen channels per AVX-512 vector (3x3 windows: four taps per vpdpbusd).
// Writing no int32 accumulators to memory is what makes them faster than a library convolution
// followed by a separate requantization pass (bench/README.md).
//
// Both compute exactly what the reference kernels followed by requantize() compute: the int32
// sum of (x - zx) * (w - zw) plus the layer's bias, rescaled by the per-channel fixed-point
// multiplier with one rounding half to even (requantize.h), plus the output zero-point, clamped.
// The zero-point terms are folded in exactly (two's-complement int32 arithmetic wraps, and the
// true sum fits in int32 because int32BiasLimit bounds the bias). Padded input positions hold
// the input zero-point, so they add nothing, as in the reference kernels.
//
// Inputs are uint8 codes (int8 activations arrive shifted by +128 with their zero-point, see
// quantized_tensor.h); weights are int8 codes with per-channel zero-points.

#include "engine/int8/kernels/requantize.h"
#include "model/window.h"

#include <cstdint>
#include <vector>

namespace qe::int8 {

// Whether this CPU runs the kernels below (AVX-512 F/BW/VL, VNNI and VBMI). Without it the engine uses
// its other kernels.
bool fusedKernelsAvailable();

// Where the codes go and how: the requantization of every output channel and the clamp.
struct OutputStage {
    const ChannelRequantization* requantization = nullptr;
    std::int32_t zeroPoint = 0, codeMin = 0, codeMax = 255;
};

// y[m][n] = requantize(sum_k (x[m][k] - zx) * (w[k][n] - zw[n]) + bias[n]) for uint8 rows x.
class PackedGemm {
public:
    // `weights` int8 of K x N, element (k, n) at weights[k * kStride + n * nStride]: pass
    // (N, 1) for a [K, N] matrix, (1, K) for [N, K] (convolution weights [OC, IC, 1, 1]).
    // `weightZeroPoints`: 1 or N values.
    PackedGemm(const std::int8_t* weights, std::int64_t k, std::int64_t n, std::int64_t kStride, std::int64_t nStride,
               std::vector<std::int32_t> weightZeroPoints);
    std::int64_t depth() const { return k_; }
    std::int64_t outputs() const { return n_; }
    // `x`: `rows` rows of depth() uint8 codes, `xStride` bytes apart; `y`: rows of outputs()
    // codes, `yStride` bytes apart. Uses every OpenMP thread when the product is large enough.
    void run(const std::uint8_t* x, std::int64_t rows, std::int64_t xStride, std::int32_t inputZeroPoint,
             const OutputStage& stage, std::uint8_t* y, std::int64_t yStride) const;

private:
    std::int64_t k_ = 0, n_ = 0;
    std::vector<std::int8_t> packed_;            // [N / 64 panels][K / 4 groups][64 columns][4 k]
    std::vector<std::int32_t> weightSums_;       // sum_k w[k][n], for the input zero-point term
    std::vector<std::int32_t> weightZeroPoints_; // per column
    bool hasWeightZeroPoints_ = false;
};

// A convolution without groups (any window, stride, dilation, padding): the windows of a few
// thousand output pixels at a time are copied into matrix rows (im2col, with the input
// zero-point where the window leaves the image) and multiplied by PackedGemm. A pointwise
// convolution (1x1, stride 1, no padding) multiplies the input itself.
class Im2colConv {
public:
    // `weights`: int8 [OC, C, KH, KW]; `weightZeroPoints`: 1 or OC values.
    Im2colConv(const std::int8_t* weights, std::int64_t outChannels, std::int64_t channels, std::int64_t kernelH,
               std::int64_t kernelW, std::vector<std::int32_t> weightZeroPoints);
    // `x`: uint8 [N, H, W, C] channels-last; `y`: [N, OH, OW, OC].
    void run(const std::uint8_t* x, std::int64_t batch, const Window2D& window, std::int32_t inputZeroPoint,
             const OutputStage& stage, std::uint8_t* y) const;

private:
    std::int64_t channels_ = 0, kernelH_ = 0, kernelW_ = 0;
    PackedGemm gemm_;  // K = KH * KW * C in (ky, kx, c) order, the order of an im2col row
};

// A depthwise convolution: channels-last uint8 input [N, H, W, C], int8 weights [C, 1, KH, KW],
// output [N, OH, OW, C] channels-last.
class DepthwiseConv {
public:
    DepthwiseConv(const std::int8_t* weights, std::int64_t channels, std::int64_t kernelH, std::int64_t kernelW,
                  std::vector<std::int32_t> weightZeroPoints);
    std::int64_t channels() const { return channels_; }
    void run(const std::uint8_t* x, std::int64_t batch, const Window2D& window, std::int32_t inputZeroPoint,
             const OutputStage& stage, std::uint8_t* y) const;

private:
    std::int64_t channels_ = 0, kernelH_ = 0, kernelW_ = 0;
    std::vector<std::int32_t> taps_;             // other windows: [KH * KW][C rounded up to 16], widened to int32
    std::vector<std::int8_t> quads_;             // 3x3: [C / 16][3][16 channels][4 taps], for vpdpbusd
    std::vector<std::int32_t> weightSums_;       // per channel
    std::vector<std::int32_t> weightZeroPoints_; // per channel
    bool hasWeightZeroPoints_ = false;
};

}  // namespace qe::int8
