#include "quant/simulator.h"

#include "model/operator_traits.h"

#include "common/error.h"
#include "common/parallel.h"
#include "engine/int8/kernels/requantize.h"
#include "model/graph.h"
#include "quant/image_batches.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace qe {

std::set<std::string> layerNames(const std::vector<QuantLayer>& layers)
{
    std::set<std::string> names;
    for (const QuantLayer& layer : layers)
        names.insert(layer.name);
    return names;
}

namespace {

// The first `count` images of a batch (axis 0), copied.
Tensor firstImages(const Tensor& batch, std::size_t count)
{
    Shape shape = batch.shape();
    shape[0] = std::int64_t(count);
    Tensor first = Tensor::uninitialized(batch.dtype(), shape);
    std::memcpy(first.mutableRawData(), batch.rawData(), first.byteSize());
    return first;
}

}  // namespace

CalibrationData calibrate(const Graph& graph, const std::vector<QuantLayer>& layers, const Dataset& dataset,
                          const Preprocess& preprocess, const CalibrationOptions& options)
{
    const Executor executor(graph);
    CalibrationData data;
    RunOptions run;
    run.cancel = options.cancel;
    for (const QuantLayer& layer : layers) {
        run.capture.insert(layer.output);
        data.observers.emplace(layer.output, RangeObserver());
    }
    const std::size_t total = std::min(options.images, dataset.size());
    auto observe = [&](std::size_t offset, const Tensor& batch) {
        const TensorMap outputs = executor.run({{graph.inputs[0].name, batch}}, run);
        // Between batches, whose kernels use every core, the layers' observers share the cores too.
        std::vector<std::pair<RangeObserver*, const Tensor*>> observed;
        for (auto& [name, observer] : data.observers)
            observed.emplace_back(&observer, &outputs.at(name));
        parallelFor(std::int64_t(observed.size()),
                    [&](std::int64_t i) { observed[std::size_t(i)].first->observe(*observed[std::size_t(i)].second); });
        if (options.progress)
            options.progress(offset + std::size_t(batch.dim(0)), total);
    };
    // The prepared batches are used while they fall where decoding would put them (full batches,
    // or the last one, cut to what is left), so that the observers see the same batches either way.
    const std::size_t step = modelBatchSize(imageInputGeometry(graph), options.batchSize);
    std::size_t prepared = 0;  // images taken from the prepared batches
    if (options.preparedBatches)
        for (const Tensor& batch : *options.preparedBatches) {
            const std::size_t size = std::size_t(batch.dim(0)), left = total - prepared, count = std::min(size, left);
            const bool asDecoded = count == left ? count <= step : size == step;
            if (count == 0 || !asDecoded)
                break;
            if (options.cancel && options.cancel->load())
                throw Cancelled();
            observe(prepared, count == size ? batch : firstImages(batch, count));
            prepared += count;
        }
    forEachImageBatch(graph, dataset, preprocess, prepared, total - prepared, options.batchSize, options.cancel,
                      [&](std::size_t offset, const Tensor& batch) { observe(prepared + offset, batch); });
    data.images = total;
    return data;
}

// Gemm/MatMul weights keep their output channels on axis 1 ([K, N]); the quantizers want them on
// axis 0, so the weights are transposed around the call.
Tensor moveAxisToFront(const Tensor& w, int axis)
{
    if (axis == 0)
        return w;
    if (w.rank() != 2 || axis != 1)
        throw Error("weights " + w.describe() + ": per-channel quantization needs the channel on axis 0 or 1 of a matrix");
    Tensor t(DataType::Float32, {w.dim(1), w.dim(0)});
    const float* src = w.data<float>();
    float* dst = t.mutableData<float>();
    for (std::int64_t r = 0; r < w.dim(0); ++r)
        for (std::int64_t c = 0; c < w.dim(1); ++c)
            dst[c * w.dim(0) + r] = src[r * w.dim(1) + c];
    return t;
}

std::vector<std::int32_t> uniformCodes(const Tensor& fakeQuantized, const QuantParams& p, int channelAxis)
{
    if (!schemeTraits(p.scheme).integerForm || p.uniform().scale.empty() || p.uniform().zeroPoint.size() != p.uniform().scale.size())
        throw Error("integer codes need uniform parameters with one zero-point per scale");
    const UniformParams& u = p.uniform();
    std::int64_t inner = 1, channels = 1;
    if (u.scale.size() > 1) {
        if (channelAxis < 0 || channelAxis >= fakeQuantized.rank() ||
            fakeQuantized.dim(channelAxis) != static_cast<std::int64_t>(u.scale.size()))
            throw Error("integer codes: " + std::to_string(u.scale.size()) + " scales do not match axis " + std::to_string(channelAxis) +
                        " of " + fakeQuantized.describe());
        channels = fakeQuantized.dim(channelAxis);
        for (int d = channelAxis + 1; d < fakeQuantized.rank(); ++d)
            inner *= fakeQuantized.dim(d);
    }
    const float* w = fakeQuantized.data<float>();
    std::vector<std::int32_t> codes(static_cast<std::size_t>(fakeQuantized.size()));
    for (std::int64_t i = 0; i < fakeQuantized.size(); ++i) {
        const std::size_t c = static_cast<std::size_t>((i / inner) % channels);
        codes[static_cast<std::size_t>(i)] = std::clamp(static_cast<std::int32_t>(std::nearbyint(w[i] / u.scale[c])) + u.zeroPoint[c], p.qmin, p.qmax);
    }
    return codes;
}

QuantParams quantizeLayerWeights(const QuantLayer& layer, const TensorQuantSpec& spec, const Tensor& weights,
                                 Tensor& quantized)
{
    // Per-tensor quantization does not care where the channels are.
    const int axis = spec.granularity == Granularity::PerTensor ? 0 : layer.weightChannelAxis;
    const Tensor front = moveAxisToFront(weights, axis);
    QuantParams params = paramsForWeights(spec, front);
    quantized = fakeQuantize(front, params);
    if (axis != 0)
        quantized = moveAxisToFront(quantized, 1);  // back to [K, N]
    params.axis = axis;
    return params;
}

namespace {

// The static integer activation parameters of a layer's output, if it has them.
const QuantParams* staticIntegerOutput(const LayerPlan& lp)
{
    return !lp.config.keepFloat && lp.activationParams && isIntegerActivationParams(*lp.activationParams) ? &*lp.activationParams : nullptr;
}

// Where the integer engine computes in integers, the simulation does too. Walking the graph in
// order, with the static integer parameters of every tensor known so far:
// - Biases become int32 at the accumulator's scale (input scale x weight scale), as integer
//   runtimes and QDQ models store them, so that the simulation rounds a bias exactly as the
//   integer engine does. Only where the input has static per-tensor parameters of at most 8 bits
//   and the weights a uniform scheme: elsewhere nothing runs in integers and the bias stays float.
// - A weighted layer whose output is a static integer activation too, in a form the integer
//   kernels take, is prepared for exact integer accumulation (integer_layers.h).
void prepareIntegerLayers(QuantPlan& plan, const Graph& graph, const QuantPlan* previous)
{
    std::map<std::string, const QuantParams*> tensorParams;
    std::map<int, std::size_t> layerAtOutputNode;
    for (std::size_t i = 0; i < plan.layers.size(); ++i) {
        const QuantLayer& layer = plan.layers[i];
        if (layer.outputNodeIndex < 0)
            if (const QuantParams* p = staticIntegerOutput(plan.plans[i]))
                tensorParams[layer.output] = p;
        if (layer.outputNodeIndex >= 0)
            layerAtOutputNode[layer.outputNodeIndex] = i;
    }
    std::map<int, std::size_t> layerAtNode;
    for (std::size_t i = 0; i < plan.layers.size(); ++i)
        if (plan.layers[i].nodeIndex >= 0)
            layerAtNode[plan.layers[i].nodeIndex] = i;
    for (int n = 0; n < static_cast<int>(graph.nodes.size()); ++n) {
        const Node& node = graph.nodes[static_cast<std::size_t>(n)];
        if (auto l = layerAtNode.find(n); l != layerAtNode.end()) {
            const QuantLayer& layer = plan.layers[l->second];
            LayerPlan& lp = plan.plans[l->second];
            auto in = tensorParams.find(node.input(0));
            const QuantParams* input = in != tensorParams.end() ? in->second : nullptr;
            if (!layer.bias.empty() && lp.weightParams && isIntegerWeightParams(*lp.weightParams) && input) {
                const double inputScale = input->uniform().scale[0];
                const std::vector<float>& weightScales = lp.weightParams->uniform().scale;
                const Tensor& w = graph.initializers.at(layer.weight);
                const Tensor& bias = graph.initializers.at(layer.bias);
                plan.graph.initializers[layer.bias] = integerBias(bias, inputScale, weightScales, w.size() / std::max<std::int64_t>(1, bias.size()));
                lp.biasInputScale = static_cast<float>(inputScale);
            }
            const bool weighted = operatorTraits(node.name, node.opType).role == OpRole::Weighted;
            const QuantParams* output = staticIntegerOutput(lp);
            if (weighted && input && output && integerFormObstacle(plan.graph, layer, lp.weightParams ? &*lp.weightParams : nullptr).empty()) {
                // The previous plan's integer weights, when it had this layer's weight parameters.
                const IntegerWeightedLayer* sameWeights = nullptr;
                if (previous && previous->integerLayers.count(n) && previous->plans.size() == plan.plans.size() &&
                    previous->layers[l->second].name == layer.name && previous->plans[l->second].weightParams == lp.weightParams)
                    sameWeights = &previous->integerLayers.at(n);
                if (auto prepared = prepareIntegerWeightedLayer(plan.graph, layer, *input, *lp.weightParams, *output, sameWeights))
                    plan.integerLayers.emplace(n, std::move(*prepared));
            }
        }
        if (auto l = layerAtOutputNode.find(n); l != layerAtOutputNode.end()) {
            if (const QuantParams* p = staticIntegerOutput(plan.plans[l->second]))
                tensorParams[plan.layers[l->second].output] = p;
        } else if (keepsInputParameters(operatorTraits(node.name, node.opType).role) && !node.inputs.empty() && tensorParams.count(node.input(0)) &&
                   !layerAtNode.count(n)) {
            for (const std::string& out : node.outputs)
                tensorParams[out] = tensorParams.at(node.input(0));
        }
    }
}

}  // namespace

namespace {

// The model's own parameters for a layer's tensor, while the configuration asks for exactly `spec`.
const QuantParams* fixedParamsFor(const std::map<std::string, FixedTensorParams>& table, const std::string& layer,
                                  const TensorQuantSpec& spec)
{
    auto it = table.find(layer);
    return it != table.end() && it->second.spec == spec ? &it->second.params : nullptr;
}

}  // namespace

QuantParams layerWeightParams(const QuantLayer& layer, const TensorQuantSpec& spec, const Tensor& weights,
                              const FixedParams* fixed, Tensor& quantized)
{
    if (const QuantParams* given = fixed ? fixedParamsFor(fixed->weights, layer.name, spec) : nullptr) {
        quantized = fakeQuantize(weights, *given);
        return *given;
    }
    return quantizeLayerWeights(layer, spec, weights, quantized);
}

bool activationsFromCalibration(const QuantLayer& layer, const LayerQuantConfig& config, const FixedParams* fixed)
{
    return !config.keepFloat && config.activations.quantize && !config.activations.dynamic &&
           !config.calibration.fixedRange && !(fixed && fixedParamsFor(fixed->activations, layer.name, config.activations));
}

std::optional<QuantParams> layerActivationParams(const QuantLayer& layer, const LayerQuantConfig& config,
                                                 const CalibrationData& calibration, const FixedParams* fixed)
{
    if (const QuantParams* given = fixed ? fixedParamsFor(fixed->activations, layer.name, config.activations) : nullptr)
        return *given;
    if (config.activations.dynamic)
        return std::nullopt;
    if (config.calibration.fixedRange)
        return paramsForRange(config.activations, config.calibration.fixedRange->first, config.calibration.fixedRange->second);
    auto it = calibration.observers.find(layer.output);
    if (it == calibration.observers.end() || it->second.empty())
        throw Error("layer '" + layer.name + "': its static activation range needs calibration images, and none "
                    "were observed for '" + layer.output + "'");
    const auto [lo, hi] = it->second.range(config.calibration, config.activations);
    return paramsForRange(config.activations, lo, hi);
}

Tensor integerBias(const Tensor& bias, double inputScale, const std::vector<float>& weightScales, std::int64_t reductionSize)
{
    Tensor quantized(DataType::Float32, bias.shape());
    const float* b = bias.data<float>();
    float* q = quantized.mutableData<float>();
    // Biases too large for an int32 accumulator (tiny weights, a real bias: a channel a folded
    // BatchNorm almost switched off) are clamped where the sum cannot overflow.
    for (std::int64_t c = 0; c < bias.size(); ++c) {
        const double step = inputScale * (weightScales.size() == 1 ? weightScales[0] : weightScales.at(static_cast<std::size_t>(c)));
        q[c] = static_cast<float>(int8::int32Bias(b[c], step, reductionSize) * step);
    }
    return quantized;
}

QuantPlan makePlan(const Graph& graph, const std::vector<QuantLayer>& layers, const QuantConfig& config,
                   const CalibrationData& calibration, const QuantPlan* previous, const FixedParams* fixed)
{
    QuantPlan plan;
    plan.layers = layers;
    plan.graph = graph;
    for (const QuantLayer& layer : layers) {
        LayerPlan lp;
        lp.config = config.resolve(layer.name);
        const bool quantizeWeights = !lp.config.keepFloat && lp.config.weights.quantize && !layer.weight.empty();
        if (quantizeWeights) {
            // Reuse the previous plan's weights when this layer's weight choice did not change:
            // k-means on a large layer is the slowest step of a plan.
            const LayerPlan* old = nullptr;
            if (previous)
                for (std::size_t i = 0; i < previous->layers.size(); ++i)
                    if (previous->layers[i].name == layer.name && previous->plans[i].weightParams &&
                        previous->plans[i].config.weights == lp.config.weights && !previous->plans[i].config.keepFloat)
                        old = &previous->plans[i];
            const bool given = fixed && fixedParamsFor(fixed->weights, layer.name, lp.config.weights);
            lp.weightsFromModel = given;
            if (old && !given) {
                lp.weightParams = old->weightParams;
                plan.quantizedWeights[layer.weight] = previous->quantizedWeights.at(layer.weight);
            } else {
                Tensor quantized;
                lp.weightParams = layerWeightParams(layer, lp.config.weights, graph.initializers.at(layer.weight), fixed, quantized);
                plan.quantizedWeights[layer.weight] = quantized;
            }
            plan.graph.initializers[layer.weight] = plan.quantizedWeights.at(layer.weight);
        }
        if (!lp.config.keepFloat && lp.config.activations.quantize) {
            lp.activationParams = layerActivationParams(layer, lp.config, calibration, fixed);
            lp.activationsFromModel = fixed && fixedParamsFor(fixed->activations, layer.name, lp.config.activations);
            lp.dynamicActivations = !lp.activationParams;
        }
        plan.plans.push_back(std::move(lp));
    }
    prepareIntegerLayers(plan, graph, previous);
    return plan;
}

QuantParams activationParamsFor(const LayerPlan& plan, const Tensor& values)
{
    if (plan.activationParams)
        return *plan.activationParams;
    if (plan.config.activations.granularity == Granularity::PerToken)
        return paramsForTokens(plan.config.activations, values);
    const auto v = values.values<float>();
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    return paramsForRange(plan.config.activations, v.empty() ? 0.f : *lo, v.empty() ? 0.f : *hi);
}

bool dynamicActivationCodes(const LayerPlan& plan)
{
    return plan.dynamicActivations && runsInIntegers(plan.config.activations) &&
           plan.config.activations.granularity == Granularity::PerTensor;
}

TensorMap runSimulated(const QuantPlan& plan, const Executor& executor, TensorMap feeds, RunOptions options)
{
    std::map<int, std::size_t> layerAtNode;  // output node index -> layer index
    // The fused activations of integer layers, whose clamp is already in the layer's codes.
    std::set<int> appliedActivations;
    for (std::size_t i = 0; i < plan.layers.size(); ++i) {
        const QuantLayer& layer = plan.layers[i];
        const LayerPlan& lp = plan.plans[i];
        const bool active = lp.activationParams || lp.dynamicActivations;
        if (!active)
            continue;
        if (layer.outputNodeIndex < 0) {
            // A graph input: quantize what is fed (only on full runs; resumed runs feed it quantized).
            auto it = feeds.find(layer.output);
            if (it != feeds.end() && options.startNode == 0)
                it->second = fakeQuantize(it->second, activationParamsFor(lp, it->second));
        } else if (plan.integerLayers.count(layer.nodeIndex)) {
            if (layer.outputNodeIndex != layer.nodeIndex)
                appliedActivations.insert(layer.outputNodeIndex);
        } else {
            layerAtNode[layer.outputNodeIndex] = i;
        }
    }
    const std::int64_t opset = executor.graph().opsetVersion;
    // The codes of integer layers' outputs, by tensor name, until their last reader has run: a
    // following integer layer takes them rather than quantizing the values again (MobileNetV1's
    // layers follow one another in integers; the conversion took as long as its convolutions).
    struct Codes {
        int8::QuantizedTensor codes;
        std::size_t lastReader = 0;
    };
    std::map<std::string, Codes> codesOf;
    const std::map<std::string, std::size_t>& lastReader = executor.lastReaders();
    auto keepCodes = [&](const std::string& name, int8::QuantizedTensor codes) {
        if (auto reader = lastReader.find(name); reader != lastReader.end() && !codes.codes.empty())
            codesOf[name] = {std::move(codes), reader->second};
    };
    options.computeNode = [&](std::size_t nodeIndex, const Node& node,
                              const std::vector<const Tensor*>& inputs) -> std::optional<std::vector<Tensor>> {
        std::erase_if(codesOf, [&](const auto& entry) { return entry.second.lastReader < nodeIndex; });
        if (appliedActivations.count(static_cast<int>(nodeIndex))) {
            // The layer's codes are already clamped: the activation's output has them too.
            if (auto in = codesOf.find(node.input(0)); in != codesOf.end() && !node.outputs.empty())
                keepCodes(node.outputs[0], in->second.codes);
            return std::vector<Tensor>{*inputs.at(0)};
        }
        auto it = plan.integerLayers.find(static_cast<int>(nodeIndex));
        if (it == plan.integerLayers.end())
            return std::nullopt;
        auto in = codesOf.find(node.input(0));
        int8::QuantizedTensor out;
        std::vector<Tensor> outputs =
            runIntegerWeightedLayer(it->second, node, opset, inputs, in != codesOf.end() ? &in->second.codes : nullptr, &out);
        if (!node.outputs.empty())
            keepCodes(node.outputs[0], std::move(out));
        return outputs;
    };
    options.afterNode = [&](std::size_t nodeIndex, const Node&, std::vector<Tensor>& outputs) {
        auto it = layerAtNode.find(static_cast<int>(nodeIndex));
        if (it == layerAtNode.end() || outputs.empty())
            return;
        outputs[0] = fakeQuantize(outputs[0], activationParamsFor(plan.plans[it->second], outputs[0]));
    };
    return executor.run(feeds, options);
}

std::vector<Tensor> runSimulatedNode(const QuantPlan& plan, std::size_t nodeIndex, const std::vector<const Tensor*>& inputs)
{
    const Node& node = plan.graph.nodes.at(nodeIndex);
    auto it = plan.integerLayers.find(static_cast<int>(nodeIndex));
    if (it != plan.integerLayers.end())
        return runIntegerWeightedLayer(it->second, node, plan.graph.opsetVersion, inputs);
    return runNode(node, plan.graph.opsetVersion, inputs);
}

}  // namespace qe
