#include "repair/smoothquant.h"

#include "common/error.h"
#include "repair/weight_channels.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

namespace qe {

namespace {

// The smallest s_j: a channel whose activations are all but zero would otherwise get a scale
// that blows its weights up (the paper clamps the same way).
constexpr float kMinScale = 1e-5f;

struct Candidate {
    std::size_t layerNorm = 0;             // index into the layers
    std::vector<std::size_t> consumers;    // indices into the layers
    float alpha = 0.5f;
};

// Why the LayerNormalization `ln` cannot be smoothed into its consumers as configured, or "".
std::string smoothingObstacle(const Graph& graph, const std::vector<QuantLayer>& layers, const QuantConfig& config,
                              const QuantLayer& ln, Candidate& candidate)
{
    const std::vector<const Node*> readers = graph.consumers(ln.output);
    if (readers.empty())
        return "nothing reads its output";
    if (graph.isOutput(ln.output))
        return "its output is a model output, which smoothing would change";
    const Node& node = graph.nodes.at(std::size_t(ln.nodeIndex));
    for (std::size_t input = 1; input < node.inputs.size() && input <= 2; ++input)
        if (!node.inputs[input].empty() && !graph.isInitializer(node.inputs[input]))
            return "its " + std::string(input == 1 ? "scale" : "bias") + " is computed, not stored: the scales cannot fold into it";
    if (node.inputs.size() < 2 || node.inputs[1].empty())
        return "it has no scale input";
    // Through a Transpose that keeps the last axis last (PyTorch's MultiheadAttention swaps the
    // batch and sequence axes first) the channels are the same, so its readers take the scales.
    // A Shape node reads only the shape, which smoothing leaves alone.
    std::vector<std::pair<const Node*, std::string>> readersOfChannels;  // node, the tensor it reads
    for (const Node* reader : readers) {
        if (reader->opType == "Shape")
            continue;
        const auto perm = reader->opType == "Transpose" ? reader->intsAttribute("perm") : std::vector<std::int64_t>{};
        if (!perm.empty() && perm.back() == std::int64_t(perm.size()) - 1 && !graph.isOutput(reader->outputs.at(0))) {
            for (const Node* next : graph.consumers(reader->outputs.at(0)))
                if (next->opType != "Shape")
                    readersOfChannels.push_back({next, reader->outputs.at(0)});
        } else {
            readersOfChannels.push_back({reader, ln.output});
        }
    }
    std::optional<float> alpha;
    for (const auto& [reader, tensor] : readersOfChannels) {
        // A structured binding captured by a lambda is C++20 that clang 14 (the fuzzing and
        // ThreadSanitizer builds) does not take: the lambda gets a copy of the pointer.
        auto layer = std::find_if(layers.begin(), layers.end(), [&, readerNode = reader](const QuantLayer& l) {
            return l.nodeIndex >= 0 && &graph.nodes[std::size_t(l.nodeIndex)] == readerNode;
        });
        if ((reader->opType != "MatMul" && reader->opType != "Gemm") || layer == layers.end() || layer->weight.empty() ||
            reader->input(0) != tensor)
            return "'" + reader->name + "' (" + reader->opType + ") reads its output: only MatMul and Gemm layers with "
                   "weights can take the scales";
        if (graph.consumers(layer->weight).size() != 1)
            return "the weights of '" + layer->name + "' are shared with another node";
        const RepairSpec spec = config.resolve(layer->name).repairs;
        if (!spec.smoothQuant)
            return "SmoothQuant is off for '" + layer->name + "', which reads its output";
        if (alpha && *alpha != spec.smoothQuantAlpha)
            return "its consumers ask for different alphas";
        alpha = spec.smoothQuantAlpha;
        candidate.consumers.push_back(std::size_t(layer - layers.begin()));
    }
    if (!alpha)
        return "nothing but a Transpose nobody reads reads its output";
    candidate.alpha = *alpha;
    return {};
}

}  // namespace

float outlierRatio(const std::vector<float>& channelMax)
{
    if (channelMax.empty())
        return 1.f;
    std::vector<float> sorted = channelMax;
    std::nth_element(sorted.begin(), sorted.begin() + std::ptrdiff_t(sorted.size() / 2), sorted.end());
    const float median = sorted[sorted.size() / 2];
    const float largest = *std::max_element(channelMax.begin(), channelMax.end());
    return median > 0 ? largest / median : 1.f;
}

std::vector<SmoothedGroup> smoothQuant(Graph& graph, const std::vector<QuantLayer>& layers, const QuantConfig& config,
                                       const RepairImages& images, const RepairProgress& progress,
                                       std::vector<SkippedRepair>& skipped)
{
    std::vector<Candidate> candidates;
    for (std::size_t i = 0; i < layers.size(); ++i) {
        const QuantLayer& ln = layers[i];
        if (ln.opType != "LayerNormalization")
            continue;
        // A LayerNorm is a candidate when it or a layer reading it asks; a skip names the reason.
        bool asked = config.resolve(ln.name).repairs.smoothQuant;
        for (const Node* reader : graph.consumers(ln.output))
            for (const QuantLayer& l : layers)
                if (l.nodeIndex >= 0 && &graph.nodes[std::size_t(l.nodeIndex)] == reader && config.resolve(l.name).repairs.smoothQuant)
                    asked = true;
        if (!asked)
            continue;
        Candidate candidate;
        candidate.layerNorm = i;
        const std::string obstacle = smoothingObstacle(graph, layers, config, ln, candidate);
        if (!obstacle.empty())
            skipped.push_back({ln.name, "SmoothQuant: " + obstacle});
        else if (!images.available())
            skipped.push_back({ln.name, "SmoothQuant needs calibration images to measure the activation channels"});
        else
            candidates.push_back(std::move(candidate));
    }
    if (candidates.empty())
        return {};

    // max |x_j| of every candidate's output over the calibration images, in one pass.
    std::set<std::string> capture;
    for (const Candidate& c : candidates)
        capture.insert(layers[c.layerNorm].output);
    std::map<std::string, std::vector<float>> activationMax;
    std::size_t imagesSeen = 0;
    forEachCalibrationBatch(graph, capture, images, progress, "SmoothQuant statistics", [&](const Tensor& batch, const TensorMap& captured) {
        imagesSeen += std::size_t(batch.dim(0));
        for (const std::string& name : capture) {
            const Tensor& x = captured.at(name);
            const std::int64_t channels = x.dim(x.rank() - 1);
            std::vector<float>& m = activationMax[name];
            m.resize(std::size_t(channels), 0.f);
            const float* v = x.data<float>();
            for (std::int64_t i = 0; i < x.size(); ++i)
                m[std::size_t(i % channels)] = std::max(m[std::size_t(i % channels)], std::abs(v[i]));
        }
    });

    std::vector<SmoothedGroup> groups;
    for (const Candidate& c : candidates) {
        const QuantLayer& ln = layers[c.layerNorm];
        SmoothedGroup group;
        group.layerNorm = ln.name;
        group.alpha = c.alpha;
        group.images = imagesSeen;
        group.activationMax = activationMax.at(ln.output);
        const std::size_t channels = group.activationMax.size();
        group.weightMax.assign(channels, 0.f);
        std::vector<WeightChannels> layouts;
        for (std::size_t l : c.consumers) {
            layouts.push_back(weightChannels(graph, layers[l]));
            const std::vector<float> ranges = inputChannelRanges(graph.initializers.at(layers[l].weight), layouts.back());
            if (ranges.size() != channels)
                throw Error("SmoothQuant: '" + layers[l].name + "' has " + std::to_string(ranges.size()) + " input channels, '" +
                            ln.name + "' outputs " + std::to_string(channels));
            for (std::size_t j = 0; j < channels; ++j)
                group.weightMax[j] = std::max(group.weightMax[j], ranges[j]);
            group.consumers.push_back(layers[l].name);
        }
        group.scales.resize(channels);
        for (std::size_t j = 0; j < channels; ++j) {
            const float x = group.activationMax[j], w = group.weightMax[j];
            group.scales[j] = x > 0 && w > 0 ? std::max(kMinScale, std::pow(x, c.alpha) / std::pow(w, 1.f - c.alpha)) : 1.f;
        }

        // LayerNormalization(x, scale, bias) / s: new initializers, since exporters share equal ones.
        Node& node = graph.nodes.at(std::size_t(ln.nodeIndex));
        for (std::size_t input = 1; input <= 2; ++input) {
            if (input >= node.inputs.size() || node.inputs[input].empty())
                continue;  // no bias: LayerNorm's bias is 0, and 0 / s is 0
            const Tensor& original = graph.initializers.at(node.inputs[input]);
            if (original.size() != std::int64_t(channels))
                throw Error("SmoothQuant: '" + ln.name + "' input " + std::to_string(input) + " is " + original.describe() +
                            ", expected " + std::to_string(channels) + " values");
            std::vector<float> values = original.toFloatVector();
            for (std::size_t j = 0; j < channels; ++j)
                values[j] /= group.scales[j];
            const std::string name = ln.name + (input == 1 ? "/smoothquant_scale" : "/smoothquant_bias");
            const std::string previous = node.inputs[input];
            graph.initializers[name] = Tensor::fromValues<float>(original.shape(), values);
            node.inputs[input] = name;
            // The original goes when nothing else reads it, so that the model's size stays true.
            if (graph.consumers(previous).empty() && !graph.isOutput(previous))
                graph.initializers.erase(previous);
        }
        for (std::size_t k = 0; k < c.consumers.size(); ++k) {
            Tensor& weights = graph.initializers.at(layers[c.consumers[k]].weight);
            weights = weights.clone();  // the original graph shares the storage
            scaleInputChannels(weights, layouts[k], group.scales);
        }
        groups.push_back(std::move(group));
    }
    return groups;
}

}  // namespace qe
