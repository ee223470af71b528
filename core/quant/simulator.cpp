#include "quant/simulator.h"

#include "common/error.h"
#include "eval/accuracy.h"

#include <algorithm>

namespace qe {

std::set<std::string> layerNames(const std::vector<QuantLayer>& layers)
{
    std::set<std::string> names;
    for (const QuantLayer& layer : layers)
        names.insert(layer.name);
    return names;
}

CalibrationData calibrate(const Graph& graph, const std::vector<QuantLayer>& layers, const Dataset& dataset,
                          const Preprocess& preprocess, const CalibrationOptions& options)
{
    const ImageInputGeometry g = imageInputGeometry(graph);
    const Executor executor(graph);
    CalibrationData data;
    RunOptions run;
    run.cancel = options.cancel;
    for (const QuantLayer& layer : layers) {
        run.capture.insert(layer.output);
        data.observers.emplace(layer.output, RangeObserver());
    }
    const std::size_t total = std::min(options.images, dataset.size());
    const std::size_t batchSize = g.fixedBatchOfOne ? 1 : std::max<std::size_t>(1, options.batchSize);
    for (std::size_t first = 0; first < total; first += batchSize) {
        const std::size_t count = std::min(batchSize, total - first);
        const Tensor batch = makeBatch(dataset, first, count, preprocess, g.channels, g.height, g.width);
        const TensorMap outputs = executor.run({{graph.inputs[0].name, batch}}, run);
        for (auto& [name, observer] : data.observers)
            observer.observe(outputs.at(name));
        if (options.progress)
            options.progress(first + count, total);
    }
    data.images = total;
    return data;
}

namespace {

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

}  // namespace

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

QuantPlan makePlan(const Graph& graph, const std::vector<QuantLayer>& layers, const QuantConfig& config,
                   const CalibrationData& calibration, const QuantPlan* previous, const FixedParams* fixed)
{
    auto fixedFor = [&](const std::map<std::string, FixedTensorParams>& table, const std::string& layer,
                        const TensorQuantSpec& spec) -> const QuantParams* {
        auto it = table.find(layer);
        return it != table.end() && it->second.spec == spec ? &it->second.params : nullptr;
    };
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
            const QuantParams* given = fixed ? fixedFor(fixed->weights, layer.name, lp.config.weights) : nullptr;
            if (given) {
                lp.weightParams = *given;
                plan.quantizedWeights[layer.weight] = fakeQuantize(graph.initializers.at(layer.weight), *given);
            } else if (old) {
                lp.weightParams = old->weightParams;
                plan.quantizedWeights[layer.weight] = previous->quantizedWeights.at(layer.weight);
            } else {
                Tensor quantized;
                lp.weightParams = quantizeLayerWeights(layer, lp.config.weights, graph.initializers.at(layer.weight), quantized);
                plan.quantizedWeights[layer.weight] = quantized;
            }
            plan.graph.initializers[layer.weight] = plan.quantizedWeights.at(layer.weight);
        }
        const bool quantizeActivations = !lp.config.keepFloat && lp.config.activations.quantize;
        if (quantizeActivations) {
            const QuantParams* given = fixed ? fixedFor(fixed->activations, layer.name, lp.config.activations) : nullptr;
            if (given) {
                lp.activationParams = *given;
            } else if (lp.config.activations.dynamic) {
                lp.dynamicActivations = true;
            } else {
                auto it = calibration.observers.find(layer.output);
                if (it == calibration.observers.end() || it->second.empty())
                    throw Error("layer '" + layer.name + "': its static activation range needs calibration images, and none "
                                "were observed for '" + layer.output + "'");
                const auto [lo, hi] = it->second.range(lp.config.calibration, lp.config.activations);
                lp.activationParams = paramsForRange(lp.config.activations, lo, hi);
            }
        }
        plan.plans.push_back(std::move(lp));
    }
    return plan;
}

QuantParams activationParamsFor(const LayerPlan& plan, const Tensor& values)
{
    if (plan.activationParams)
        return *plan.activationParams;
    const auto v = values.values<float>();
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    return paramsForRange(plan.config.activations, v.empty() ? 0.f : *lo, v.empty() ? 0.f : *hi);
}

TensorMap runSimulated(const QuantPlan& plan, const Executor& executor, TensorMap feeds, RunOptions options)
{
    std::map<int, std::size_t> layerAtNode;  // output node index -> layer index
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
        } else {
            layerAtNode[layer.outputNodeIndex] = i;
        }
    }
    options.afterNode = [&](std::size_t nodeIndex, const Node&, std::vector<Tensor>& outputs) {
        auto it = layerAtNode.find(static_cast<int>(nodeIndex));
        if (it == layerAtNode.end() || outputs.empty())
            return;
        outputs[0] = fakeQuantize(outputs[0], activationParamsFor(plan.plans[it->second], outputs[0]));
    };
    return executor.run(feeds, options);
}

}  // namespace qe
