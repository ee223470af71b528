#pragma once
// The int8 engine's steps and how a node becomes one (inside engine/int8/ only).
//
// The lowering (integer_engine.cpp) walks the plan's graph and asks the step family the operator
// table names (model/operator_traits.h, IntegerFamily) to run each node in integers. Each family
// lives in one file with its steps and its lowering function:
//   float_steps.cpp        graph inputs to codes, and nodes run by the fp32 kernels on dequantized values
//   weighted_steps.cpp     Conv, Gemm/MatMul: integer weights, int32 accumulators, fused requantization
//   elementwise_steps.cpp  Add, Mul, Add/Sub of a constant, Concat
//   pooling_steps.cpp      AveragePool, GlobalAveragePool, MaxPool
//   lookup_steps.cpp       functions of one input by 256-entry table, Softmax
//   move_steps.cpp         Reshape, Transpose, Slice, ...: codes moved, not changed
// A family's lowering returns no step when its kernels do not take the node's form; the node
// then runs in float (FloatStep), exactly as the simulation computes it.

#include "engine/int8/integer_engine.h"
#include "engine/int8/kernels/quantized_tensor.h"
#include "engine/int8/kernels/requantize.h"
#include "engine/operator.h"
#include "model/operator_traits.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qe {

// A tensor while the engine runs: codes when quantized, float otherwise (or both, once a
// quantized tensor has been dequantized for a float step).
struct IntegerEngine::Value {
    std::optional<int8::QuantizedTensor> codes;
    std::optional<Tensor> real;  // for quantized values: made when some float step needs them
    const Tensor& realValues()
    {
        if (!real)
            real = int8::dequantize(*codes);
        return *real;
    }
};

using Values = std::map<std::string, IntegerEngine::Value>;

struct IntegerEngine::Step {
    virtual ~Step() = default;
    virtual void run(Values& values) const = 0;
    std::vector<std::string> inputs;   // tensors read (besides constants)
    std::vector<std::string> outputs;  // tensors written
};

namespace int8_steps {

using Step = IntegerEngine::Step;

// A quantized layer the lowering asks a step family to run in integers. Its output has static
// integer parameters; the layer's inputs are all quantized.
struct LayerLowering {
    const Graph& graph;  // the engine's own copy: steps may keep pointers into it
    const Node& node;
    const QuantLayer& layer;
    const LayerPlan& plan;
    const Node* fusedActivation = nullptr;  // a Relu/Clip folded into the requantization
    int8::ActivationParams output;
    std::int32_t codeLo = 0, codeHi = 255;  // the output's codes left by the fused activation
    std::vector<std::string> dataInputs;     // inputs that are not constants
    // Static parameters of each data input; std::nullopt when they are computed per batch.
    std::vector<std::optional<int8::ActivationParams>> inputParams;
    bool fastKernels = false;  // fast kernels wanted and available on this CPU
};

// The step for a layer, or none when the family's kernels do not take this form of the operator.
struct LoweredLayer {
    std::unique_ptr<Step> step;
    std::string kernel;  // convolutions and products: "fused", "onednn", "fused or onednn, timed", "reference"
};

// The family's lowering for a layer with a static integer output (integer_engine.cpp): one of
// those below, by the operator table's IntegerFamily; no step for the families that are no layer
// of their own (MaxPool, Move) or have no integer kernels.
LoweredLayer lowerLayer(IntegerFamily family, const LayerLowering& layer);

// weighted_steps.cpp (the layer's integerFormObstacle is already known to be empty)
LoweredLayer lowerConvolution(const LayerLowering& layer);
LoweredLayer lowerMatrixProduct(const LayerLowering& layer);
// A MatMul of two quantized activations (attention's Q.K^T and attention.V).
LoweredLayer lowerActivationProduct(const LayerLowering& layer);
// elementwise_steps.cpp
LoweredLayer lowerElementwise(const LayerLowering& layer);
LoweredLayer lowerConcat(const LayerLowering& layer);
// pooling_steps.cpp
LoweredLayer lowerAveragePool(const LayerLowering& layer);
// lookup_steps.cpp
LoweredLayer lowerLookup(const LayerLowering& layer);
LoweredLayer lowerSoftmax(const LayerLowering& layer);

// Nodes that are not layers of their own keep their input's parameters `input` (std::nullopt when
// computed per batch). No step when the node's form does not allow it.
std::unique_ptr<Step> lowerMaxPool(const Graph& graph, const Node& node);                                            // pooling_steps.cpp
std::unique_ptr<Step> lowerLookupKeepingParameters(const Graph& graph, const Node& node,
                                                   const std::optional<int8::ActivationParams>& input);               // lookup_steps.cpp
std::unique_ptr<Step> lowerMove(const Graph& graph, const Node& node);                                               // move_steps.cpp

// float_steps.cpp
// A graph input to codes: with static parameters, else with parameters from each batch's range
// under `spec`.
std::unique_ptr<Step> quantizeInputStep(const std::optional<int8::ActivationParams>& params, const TensorQuantSpec& spec);
// A graph input fake-quantized to a format without integer codes (fp8, log2, ...).
std::unique_ptr<Step> fakeQuantizeInputStep(const LayerPlan& plan);
// A node run by the fp32 kernels on dequantized inputs; output 0 is then quantized as
// `outputPlan` says (to codes when `outputToCodes`, else fake-quantized), when given.
std::unique_ptr<Step> floatStep(const Graph& graph, const Node& node, const LayerPlan* outputPlan, bool outputToCodes);

// Shared by the families.
// Signed codes are stored shifted by +128 (quantized_tensor.h).
int8::ActivationParams toActivationParams(const QuantParams& params);
inline OpContext contextFor(const Node& node, const Graph& graph) { return OpContext{node, graph.opsetVersion, {}}; }
[[noreturn]] void fail(const Node& node, const std::string& message);
// The fixed-point form of a rescale factor; qe::Error naming the node when it is out of range.
int8::FixedPointMultiplier checkedMultiplier(double m, const Node& node);
// A new quantized value with freshly allocated codes of `shape` under `params`.
IntegerEngine::Value newCodes(const int8::ActivationParams& params, Shape shape, bool channelsLast = false);

}  // namespace int8_steps
}  // namespace qe
