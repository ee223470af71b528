#pragma once
// Fake-quantization simulation in the fp32 engine: weights are quantized once when the plan is
// made, activations are quantized at each layer's output as the configuration says (static
// ranges from calibration, or dynamic ranges from each input), and everything else runs in float,
// except the weighted layers the integer engine runs in integers: those are computed exactly as
// the engine computes them (integer_layers.h), so that both give the same codes.

#include "data/dataset.h"
#include "engine/executor.h"
#include "quant/calibration.h"
#include "quant/config.h"
#include "quant/integer_layers.h"
#include "quant/layers.h"

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace qe {

// The float activations of every layer output over the calibration images, as streaming
// observers (the calibration set never has to fit in memory).
struct CalibrationData {
    std::size_t images = 0;
    std::map<std::string, RangeObserver> observers;  // by layer output tensor name
};

struct CalibrationOptions {
    std::size_t images = 512;
    std::size_t batchSize = 32;
    // The dataset's first images already preprocessed for the graph, in batches of batchSize (as
    // modelBatchSize allows): observed as they are instead of decoded again. The evaluator passes
    // its evaluation batches when it calibrates on its own images.
    const std::vector<Tensor>* preparedBatches = nullptr;
    std::function<void(std::size_t done, std::size_t total)> progress;
    const std::atomic<bool>* cancel = nullptr;
};

CalibrationData calibrate(const Graph& graph, const std::vector<QuantLayer>& layers, const Dataset& dataset,
                          const Preprocess& preprocess, const CalibrationOptions& options);

// What the plan decided for one layer.
struct LayerPlan {
    LayerQuantConfig config;
    std::optional<QuantParams> weightParams;      // when the weights are quantized
    std::optional<QuantParams> activationParams;  // static activation quantization
    bool dynamicActivations = false;              // range taken from each input at run time
    // The parameters are the model file's own (a QDQ model's scales), not computed here.
    bool weightsFromModel = false, activationsFromModel = false;
    // The scale of the layer's (static, integer) input when its bias was quantized to int32 at
    // input scale x weight scale; 0 when the bias stays float.
    float biasInputScale = 0.f;
    bool operator==(const LayerPlan&) const = default;
};

// Parameters that come with the model (a QDQ file) rather than from calibration or fitting.
// They are used while the layer's configuration still asks for exactly `spec`; a change of the
// layer's scheme or bits recomputes its parameters from the data.
struct FixedTensorParams {
    TensorQuantSpec spec;
    QuantParams params;
};
struct FixedParams {
    std::map<std::string, FixedTensorParams> weights, activations;  // by layer name
};

struct QuantPlan {
    std::vector<QuantLayer> layers;
    std::vector<LayerPlan> plans;  // parallel to layers
    Graph graph;                   // the model with fake-quantized weights (shared storage otherwise)
    std::map<std::string, Tensor> quantizedWeights;  // by initializer name
    // The Conv/Gemm/MatMul layers that run in integers, by node index: static integer input and
    // output activations, integer weights, a form the integer kernels take (integerFormObstacle).
    std::map<int, IntegerWeightedLayer> integerLayers;
};

// The layer's weights quantized as `spec` says: the parameters, and the fake-quantized tensor in
// the layout of the original (Gemm weights keep their [K, N] layout).
QuantParams quantizeLayerWeights(const QuantLayer& layer, const TensorQuantSpec& spec, const Tensor& weights,
                                 Tensor& quantized);

// The parameters makePlan puts on a layer's weights under `spec`: the model's own (a QDQ file's)
// while `spec` asks for exactly what they describe, else fitted to the weights. `quantized` gets
// the fake-quantized weights in the layout of the original. What the histograms show, too.
QuantParams layerWeightParams(const QuantLayer& layer, const TensorQuantSpec& spec, const Tensor& weights,
                              const FixedParams* fixed, Tensor& quantized);
// Whether a layer's output activation takes its range from calibration: quantized statically,
// with neither the model's own parameters for it (`fixed`) nor a fixed range in `config`. What
// needs calibration before a plan, and what a new calibration changes.
bool activationsFromCalibration(const QuantLayer& layer, const LayerQuantConfig& config, const FixedParams* fixed);
// The parameters makePlan puts on a layer's output activation: the model's own while the
// configuration asks for exactly what they describe, else the calibrated range (qe::Error when
// none was observed); nullopt for dynamic activations (their range is each input's).
std::optional<QuantParams> layerActivationParams(const QuantLayer& layer, const LayerQuantConfig& config,
                                                 const CalibrationData& calibration, const FixedParams* fixed);

// The weights with their output channels on axis 0 (Gemm/MatMul weights keep them on axis 1 of
// [K, N]): each channel's values are then one contiguous run.
Tensor moveAxisToFront(const Tensor& weights, int axis);

// The integer codes of fake-quantized values under uniform parameters: exact, since each value is
// (code - zero_point) * scale. Per-channel parameters run along `channelAxis` of the tensor.
std::vector<std::int32_t> uniformCodes(const Tensor& fakeQuantized, const QuantParams& params, int channelAxis);

// A weighted layer's bias as the integer engine stores it: int32 codes at the step inputScale x
// the output channel's weight scale (one scale: per tensor), clamped where the accumulator of
// `reductionSize` products could overflow; dequantized. What makePlan puts on an integer layer.
Tensor integerBias(const Tensor& bias, double inputScale, const std::vector<float>& weightScales, std::int64_t reductionSize);
// Throws qe::Error when the configuration asks for something the data cannot give (e.g. static
// activations for a layer the calibration never saw).
QuantPlan makePlan(const Graph& graph, const std::vector<QuantLayer>& layers, const QuantConfig& config,
                   const CalibrationData& calibration, const QuantPlan* previous = nullptr,
                   const FixedParams* fixed = nullptr);

// Runs the plan: RunOptions' hooks compute the integer layers and fake-quantize activations, so
// `options` must set neither computeNode nor afterNode. Inputs are quantized by their "Input" layers.
TensorMap runSimulated(const QuantPlan& plan, const Executor& executor, TensorMap feeds, RunOptions options = {});

// One node of the plan's graph as runSimulated computes it, on the given inputs (nullptr where
// omitted): an integer layer's output values (integer_layers.h), else the node's float kernel,
// before the fake quantization of its output.
std::vector<Tensor> runSimulatedNode(const QuantPlan& plan, std::size_t nodeIndex, const std::vector<const Tensor*>& inputs);

// The activation parameters a layer uses for one tensor (static or computed from the tensor).
QuantParams activationParamsFor(const LayerPlan& plan, const Tensor& values);
// Whether a layer's dynamic activations become integer codes in the int8 engine: uniform, at most
// 8 bits, one range per tensor. Per-token ranges stay fake-quantized float there: an integer
// kernel would need a scale per row.
bool dynamicActivationCodes(const LayerPlan& plan);

// The layer names a configuration may mention.
std::set<std::string> layerNames(const std::vector<QuantLayer>& layers);

}  // namespace qe
