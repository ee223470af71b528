#include "repair/repair.h"

#include "common/error.h"
#include "model/operator_traits.h"
#include "quant/simulator.h"
#include "repair/bias_correction.h"
#include "repair/weight_channels.h"

#include <map>

namespace qe {

namespace {

bool correctsBias(const LayerQuantConfig& c, const QuantLayer& layer)
{
    return c.repairs.biasCorrection != BiasCorrection::None && !layer.weight.empty() && !c.keepFloat && c.weights.quantize;
}

// The layer whose (activated) output is `tensor`, if a layer's output is.
const QuantLayer* producerOf(const std::vector<QuantLayer>& layers, const std::string& tensor)
{
    for (const QuantLayer& layer : layers)
        if (layer.nodeIndex >= 0 && layer.output == tensor)
            return &layer;
    return nullptr;
}

// The output of the layer's own node, before its fused activation: what a BatchNormalization
// folded into it described.
const std::string& preActivation(const Graph& graph, const QuantLayer& layer)
{
    return graph.nodes.at(std::size_t(layer.nodeIndex)).outputs.at(0);
}

std::string imagesNote(const RepairImages& images)
{
    return "calibration images (" + std::to_string(std::min(images.images, images.dataset->size())) + ")";
}

void equalize(Graph& graph, const std::vector<QuantLayer>& layers, const QuantConfig& config, const RepairImages& images,
              const RepairProgress& progress, RepairReport& report)
{
    std::vector<bool> enabled, relu6AsRelu;
    for (const QuantLayer& layer : layers) {
        const RepairSpec spec = config.resolve(layer.name).repairs;
        enabled.push_back(spec.equalization);
        relu6AsRelu.push_back(spec.relu6AsRelu);
    }
    if (progress.report)
        progress.report("equalization", 0, 0);
    const std::vector<EqualizationPair> pairs = findEqualizationPairs(graph, layers, enabled, relu6AsRelu, report.skipped);
    makeClipsRelu(graph, layers, pairs);
    Equalization equalized = equalizePairs(graph, layers, pairs);
    report.equalizationSweeps = equalized.sweeps;

    // High-bias absorption needs each first layer's pre-activation mean and deviation: from its
    // folded BatchNormalization (rescaled with it), else measured on the equalized model.
    std::map<std::string, bool> toMeasure;
    std::vector<std::string> obstacles(pairs.size());
    for (std::size_t p = 0; p < pairs.size(); ++p) {
        const QuantLayer& first = layers[pairs[p].first];
        obstacles[p] = absorptionObstacle(graph, first, layers[pairs[p].second]);
        if (obstacles[p].empty() && !graph.foldedNormalization.count(first.name) && images.available())
            toMeasure[preActivation(graph, first)] = first.opType == "Conv";
    }
    const auto measured = toMeasure.empty() ? std::map<std::string, ChannelStatistics>{}
                                            : measureChannelStatistics(graph, toMeasure, images, progress);
    for (std::size_t p = 0; p < pairs.size(); ++p) {
        const QuantLayer& first = layers[pairs[p].first];
        EqualizedPair& out = equalized.pairs[p];
        if (!obstacles[p].empty()) {
            out.absorptionStatistics = "no high-bias absorption: " + obstacles[p];
            continue;
        }
        const ChannelStatistics* stats = nullptr;
        if (auto bn = graph.foldedNormalization.find(first.name); bn != graph.foldedNormalization.end()) {
            stats = &bn->second;
            out.absorptionStatistics = "batch normalization folded into '" + first.name + "'";
        } else if (auto m = measured.find(preActivation(graph, first)); m != measured.end()) {
            stats = &m->second;
            out.absorptionStatistics = imagesNote(images);
        } else {
            out.absorptionStatistics = "no high-bias absorption: no folded batch normalization and no calibration images";
            continue;
        }
        out.absorbed = absorbHighBias(graph, first, layers[pairs[p].second], stats->mean, stats->stddev);
        // The pre-activation's mean moved down with the bias.
        if (auto bn = graph.foldedNormalization.find(first.name); bn != graph.foldedNormalization.end())
            for (std::size_t i = 0; i < out.absorbed.size() && i < bn->second.mean.size(); ++i)
                bn->second.mean[i] -= out.absorbed[i];
    }
    report.equalized = std::move(equalized.pairs);
}

void correctBiases(Graph& graph, const Graph& reference, const std::vector<QuantLayer>& layers, const QuantConfig& config,
                   const RepairImages& images, const RepairProgress& progress, RepairReport& report)
{
    std::vector<const QuantLayer*> empirical, analytical;
    std::map<std::string, Tensor> quantized;
    for (const QuantLayer& layer : layers) {
        const LayerQuantConfig c = config.resolve(layer.name);
        if (!correctsBias(c, layer))
            continue;
        const Node& node = graph.nodes.at(std::size_t(layer.nodeIndex));
        if (operatorTraits(node.name, node.opType).biasInput < 0) {
            report.skipped.push_back({layer.name, "bias correction: a " + node.opType + " has no bias to correct"});
            continue;
        }
        Tensor q;
        quantizeLayerWeights(layer, c.weights, reference.initializers.at(layer.weight), q);
        quantized[layer.name] = q;
        if (c.repairs.biasCorrection == BiasCorrection::Empirical && !images.available())
            report.skipped.push_back({layer.name, "empirical bias correction needs calibration images"});
        else
            (c.repairs.biasCorrection == BiasCorrection::Empirical ? empirical : analytical).push_back(&layer);
    }

    std::map<std::string, std::vector<double>> shifts;
    std::map<std::string, std::string> sources;
    if (!empirical.empty()) {
        std::vector<QuantLayer> measuredLayers;
        for (const QuantLayer* layer : empirical)
            measuredLayers.push_back(*layer);
        shifts = measureQuantizationShift(reference, measuredLayers, quantized, images, progress);
        for (const QuantLayer* layer : empirical)
            sources[layer->name] = imagesNote(images);
    }
    // Analytical: E[x] from the producing layer's folded BatchNormalization, else from its
    // pre-activation measured on the images (the same clipped-normal model, other statistics).
    std::map<std::string, bool> toMeasure;
    for (const QuantLayer* layer : analytical) {
        const QuantLayer* producer = producerOf(layers, reference.nodes.at(std::size_t(layer->nodeIndex)).input(0));
        if (producer && !reference.foldedNormalization.count(producer->name) && images.available())
            toMeasure[preActivation(reference, *producer)] = producer->opType == "Conv";
    }
    const auto measured = toMeasure.empty() ? std::map<std::string, ChannelStatistics>{}
                                            : measureChannelStatistics(reference, toMeasure, images, progress);
    for (const QuantLayer* layer : analytical) {
        const QuantLayer* producer = producerOf(layers, reference.nodes.at(std::size_t(layer->nodeIndex)).input(0));
        const ChannelStatistics* stats = nullptr;
        if (!producer) {
            report.skipped.push_back({layer->name, "analytical bias correction: its input is not a layer's output, so "
                                                   "nothing gives its statistics"});
            continue;
        }
        if (auto bn = reference.foldedNormalization.find(producer->name); bn != reference.foldedNormalization.end()) {
            stats = &bn->second;
            sources[layer->name] = "batch normalization folded into '" + producer->name + "'";
        } else if (auto m = measured.find(preActivation(reference, *producer)); m != measured.end()) {
            stats = &m->second;
            sources[layer->name] = "normal model of '" + producer->name + "' fitted on " + imagesNote(images);
        } else {
            report.skipped.push_back({layer->name, "analytical bias correction: '" + producer->name +
                                                   "' has no folded batch normalization and no calibration images were given"});
            continue;
        }
        const std::vector<double> expected = expectedActivation(reference, *producer, *stats);
        const WeightChannels layout = weightChannels(reference, *layer);
        if (std::int64_t(expected.size()) != layout.inputs) {
            report.skipped.push_back({layer->name, "analytical bias correction: " + std::to_string(expected.size()) +
                                                   " statistics for " + std::to_string(layout.inputs) + " input channels"});
            continue;
        }
        shifts[layer->name] = analyticalQuantizationShift(reference, *layer, quantized.at(layer->name), expected);
    }

    for (const QuantLayer& layer : layers) {
        auto shift = shifts.find(layer.name);
        if (shift == shifts.end())
            continue;
        subtractFromBias(graph, layer, shift->second);
        BiasCorrectionReport out;
        out.layer = layer.name;
        out.mode = config.resolve(layer.name).repairs.biasCorrection;
        out.statistics = sources[layer.name];
        out.shift.assign(shift->second.begin(), shift->second.end());
        report.biasCorrected.push_back(std::move(out));
    }
}

}  // namespace

bool RepairKey::any() const
{
    for (const RepairSpec& spec : layers)
        if (spec.any())
            return true;
    return false;
}

RepairKey repairKey(const QuantConfig& config, const std::vector<QuantLayer>& layers, std::size_t images)
{
    RepairKey key;
    for (const QuantLayer& layer : layers) {
        const LayerQuantConfig c = config.resolve(layer.name);
        key.layers.push_back(c.repairs);
        key.correctedWeights.push_back(correctsBias(c, layer) ? std::optional(c.weights) : std::nullopt);
    }
    key.images = key.any() ? images : 0;
    return key;
}

RepairedModel repair(const Graph& original, const std::vector<QuantLayer>& layers, const QuantConfig& config,
                     const RepairImages& images, const RepairProgress& progress)
{
    RepairedModel result;
    Graph graph = original;
    bool equalization = false, biasCorrection = false;
    for (const QuantLayer& layer : layers) {
        const LayerQuantConfig c = config.resolve(layer.name);
        equalization = equalization || c.repairs.equalization;
        biasCorrection = biasCorrection || correctsBias(c, layer);
    }
    if (equalization)
        equalize(graph, layers, config, images, progress, result.report);
    if (progress.cancel && progress.cancel->load())
        throw Cancelled();
    auto reference = std::make_shared<const Graph>(graph);
    if (biasCorrection)
        correctBiases(graph, *reference, layers, config, images, progress, result.report);
    result.reference = std::move(reference);
    result.graph = std::make_shared<const Graph>(std::move(graph));
    return result;
}

}  // namespace qe
