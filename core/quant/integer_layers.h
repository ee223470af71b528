#pragma once
// The weighted layers (Conv, Gemm, MatMul) that the integer engine runs in integer arithmetic,
// and how the simulation computes them exactly as the engine does.
//
// The engine sums (x_code - zx) * (w_code - zw) into int32 accumulators, adds the bias quantized
// to int32 at scale sx * sw, and requantizes each accumulator with a fixed-point multiplier
// M = sx * sw[c] / sy and one rounding, half to even (engine/int8/kernels/requantize.h). A float32 Conv on
// fake-quantized values computes the same sum, but each product and partial sum is rounded
// (about 1e-7 relative), which moves an output code by one step now and then (one in 10^5 to
// 10^6 on the models here); over a deep model, and through a Softmax that spreads one step of
// the logits over several steps of its output, the simulation and the engine drift apart. So the simulation runs the node's own float
// kernel on integer-valued operands instead:
//     x / sx    = x_code - zx  (exactly, after rounding to the nearest integer: x = (x_code - zx) * sx
//                               up to float rounding, and |x_code - zx| <= 255)
//     w_int     = w_code - zw  (prepared once per plan)
// Products of integers up to 255 in magnitude are exact in float32, and so is every sum while its
// partial sums stay below 2^24 in magnitude; `accumulatorBound` bounds them for the layer's
// weights (sum of |w_int| over a channel times the largest |x_code - zx|). The accumulator then
// goes through the engine's requantization, bias included.

#include "engine/int8/kernels/quantized_tensor.h"
#include "engine/int8/kernels/requantize.h"
#include "model/graph.h"
#include "quant/layers.h"
#include "quant/scheme.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace qe {

// Activation parameters an integer kernel takes: uniform, at most 8 bits, one scale.
bool isIntegerActivationParams(const QuantParams& params);
// Weight parameters an integer kernel takes: uniform, at most 8 bits, per tensor or per channel.
bool isIntegerWeightParams(const QuantParams& params);

// Why the integer engine runs this Conv, Gemm or MatMul layer in float whatever its input and
// output parameters ("" when its form runs in integers): its weights, their scheme, or a form of
// the operator that the integer kernels do not take.
std::string integerFormObstacle(const Graph& graph, const QuantLayer& layer, const QuantParams* weights);

// The per-output-channel requantization of a weighted layer, as both the engine and the
// simulation use it: the bias (already rounded to int32 steps in the plan) in units of
// inputScale * weightScales[c], clamped where the int32 sum cannot overflow, and the fixed-point
// multiplier inputScale * weightScales[c] / outputScale. std::nullopt when a multiplier is out of
// range (negative, not finite or 2^20 and more), which `why` then describes.
std::optional<int8::ChannelRequantization> weightedLayerRequantization(float inputScale, const std::vector<float>& weightScales,
                                                                       const std::vector<float>& bias, float outputScale,
                                                                       std::int64_t reductionSize, std::string* why = nullptr);

// The code range of `output` left after a fused activation node (Relu/Clip, a clamp:
// quantize(act(x)) == clamp(quantize(x), quantize(act(-max)), quantize(act(+max)))), in
// `output`'s code domain; the whole range without one. std::nullopt when the clamp's bounds are
// computed rather than constants, or leave no code.
std::optional<std::pair<std::int32_t, std::int32_t>> fusedCodeRange(const Graph& graph, const Node* activation,
                                                                    const QuantParams& output);

// One prepared layer on the int8 engine's own kernels: given the layer node's input (fake-
// quantized values on the input's grid), the output runIntegerWeightedLayer gives, from the same
// codes, computed by the engine's integer convolutions and products instead of the float kernel on
// integer-valued operands. The engine sits above quant/, so it is the one that makes them
// (attachIntegerKernels, engine/int8/integer_engine.h); a plan without them simulates in float.
// A run also gives the output's codes: the next integer layer, whose input grid is this layer's
// output grid, takes them instead of quantizing the values again (the same codes: the values are
// (code - zero-point) * scale, which quantize back to their codes exactly).
class IntegerLayerKernels {
public:
    virtual ~IntegerLayerKernels() = default;
    // `inputCodes`, when given and of the input's shape and grid, are the input's codes; other
    // codes are ignored. `outputCodes`, when given, receives the output's.
    virtual Tensor run(const Tensor& input, const int8::QuantizedTensor* inputCodes, int8::QuantizedTensor* outputCodes) const = 0;
};

// A weighted layer prepared for exact simulation, once per plan.
struct IntegerWeightedLayer {
    QuantParams input, output;  // the layer's input and output activation parameters (uniform, one scale)
    Tensor weights;  // w_code - zw as float32, in the layout of the model's weights
    double largestWeightSum = 0;  // of |w_code - zw| over one output channel
    // Per output channel: the int32 bias (at scale sx * sw[c]) and the fixed-point multiplier.
    int8::ChannelRequantization requantization;
    std::int32_t codeMin = 0, codeMax = 255;  // the output's code range, narrowed by a fused Relu/Clip
    // The largest |partial sum| the accumulation can reach (largestWeightSum times the largest
    // |x_code - zx|); below 2^24, float32 sums are exact.
    double accumulatorBound = 0;
    // The engine's kernels for this layer, when they were attached; shared between the plans of
    // successive edits while the layer's weights and parameters stay the same.
    std::shared_ptr<const IntegerLayerKernels> kernels;

    // Whether `other` computes the same codes: same weights (shared), parameters and requantization.
    bool sameAs(const IntegerWeightedLayer& other) const;
};

// `graph` holds the plan's weights (fake-quantized) and biases (already rounded to int32 steps).
// `input` and `output` are static integer activations, `weights` integer weights, and the layer's
// form has no integerFormObstacle. std::nullopt where the engine would reject the rescale factor
// (out of range). `sameWeights`, when given, is the layer as prepared for another plan with the
// same weights and weight parameters: its integer weights are reused (shared, not copied).
std::optional<IntegerWeightedLayer> prepareIntegerWeightedLayer(const Graph& graph, const QuantLayer& layer,
                                                                const QuantParams& input, const QuantParams& weights,
                                                                const QuantParams& output,
                                                                const IntegerWeightedLayer* sameWeights = nullptr);

// The layer node's output as the engine computes it, as the float values of its codes. A fused
// Relu/Clip is already applied, as the clamp of the codes: running it on these values, and fake-
// quantizing the result, changes nothing. inputs[0] holds fake-quantized values on the input's grid.
// With the engine's kernels attached, `inputCodes` and `outputCodes` are passed on to them
// (IntegerLayerKernels::run); without, the output codes are not made (left empty).
std::vector<Tensor> runIntegerWeightedLayer(const IntegerWeightedLayer& layer, const Node& node, std::int64_t opset,
                                            const std::vector<const Tensor*>& inputs,
                                            const int8::QuantizedTensor* inputCodes = nullptr,
                                            int8::QuantizedTensor* outputCodes = nullptr);

}  // namespace qe
