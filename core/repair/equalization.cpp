#include "repair/equalization.h"

#include "common/error.h"
#include "engine/operator.h"
#include "model/operator_traits.h"
#include "repair/weight_channels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

namespace qe {

namespace {

// The activation's outputs on the probe values below.
std::vector<float> probeActivation(const Graph& graph, const Node& node, const std::vector<float>& probe, bool& constantBounds)
{
    const Tensor x = Tensor::fromValues<float>({std::int64_t(probe.size())}, probe);
    std::vector<const Tensor*> inputs{&x};
    constantBounds = true;
    for (std::size_t k = 1; k < node.inputs.size(); ++k) {
        if (node.inputs[k].empty()) {
            inputs.push_back(nullptr);
            continue;
        }
        if (!graph.isInitializer(node.inputs[k])) {
            constantBounds = false;  // a computed bound could be anything
            return {};
        }
        inputs.push_back(&graph.initializers.at(node.inputs[k]));
    }
    const Tensor y = runNode(node, graph.opsetVersion, inputs).at(0);
    return {y.data<float>(), y.data<float>() + y.size()};
}

const std::vector<float> kProbe{-1e30f, -3.f, -0.5f, 0.f, 0.5f, 3.f, 7.f, 1e30f};

// Whether `node` (one input, one output, constant other inputs) satisfies f(x / s) = f(x) / s for
// every s > 0 on its own, checked by running it: it must be the identity or max(x, 0) on values
// from -huge to +huge. This asks the kernel rather than parsing Clip's attribute and input forms.
bool positivelyHomogeneous(const Graph& graph, const Node& node, bool& zeroesNegatives)
{
    bool constant = false;
    const std::vector<float> y = probeActivation(graph, node, kProbe, constant);
    if (!constant)
        return false;
    bool identity = true, relu = true;
    for (std::size_t k = 0; k < kProbe.size(); ++k) {
        identity = identity && y[k] == kProbe[k];
        relu = relu && y[k] == std::max(kProbe[k], 0.f);
    }
    zeroesNegatives = relu;
    return identity || relu;
}

// Whether `node` is max(x, 0) with an upper bound (a ReLU6): 0 below zero, x just above it.
bool boundedRelu(const Graph& graph, const Node& node)
{
    bool constant = false;
    const std::vector<float> y = probeActivation(graph, node, kProbe, constant);
    return constant && y[0] == 0.f && y[2] == 0.f && y[3] == 0.f && y[4] == 0.5f && y.back() < 1e30f;
}

// Operators that act on each channel on its own and commute with a positive per-channel scale
// without further checks: the values they output are some of the values they read.
bool movesValuesPerChannel(const std::string& opType) { return opType == "Identity" || opType == "MaxPool"; }

bool isConvolution(const QuantLayer& layer) { return layer.opType == "Conv"; }

bool padsInput(const Node& node)
{
    for (std::int64_t p : node.intsAttribute("pads"))
        if (p != 0)
            return true;
    const std::string autoPad = node.stringAttribute("auto_pad", "NOTSET");
    return autoPad != "NOTSET" && autoPad != "VALID";
}

// The first layer's bias per output channel (zeros when it has none).
std::vector<float> firstBias(const Graph& graph, const QuantLayer& layer, std::int64_t channels)
{
    const Node& node = graph.nodes.at(std::size_t(layer.nodeIndex));
    const OperatorTraits& traits = operatorTraits(node.name, node.opType);
    const std::string name = traits.biasInput >= 0 ? node.input(std::size_t(traits.biasInput)) : std::string();
    std::vector<float> bias(std::size_t(channels), 0.f);
    if (name.empty() || !graph.isInitializer(name))
        return bias;
    const std::vector<float> values = graph.initializers.at(name).toFloatVector();
    if (values.size() == 1)
        std::fill(bias.begin(), bias.end(), values[0]);
    else if (std::int64_t(values.size()) == channels)
        bias = values;
    return bias;
}

// A weight initializer shared with another node cannot be rescaled for one of them.
bool ownsWeights(const Graph& graph, const QuantLayer& layer) { return graph.consumers(layer.weight).size() == 1; }

}  // namespace

std::string ownBias(Graph& graph, const QuantLayer& layer, std::int64_t channels)
{
    Node& node = graph.nodes.at(static_cast<std::size_t>(layer.nodeIndex));
    const OperatorTraits& traits = operatorTraits(node.name, node.opType);
    if (traits.biasInput < 0)
        throw Error("layer '" + layer.name + "' (" + node.opType + ") has no bias input to change");
    const auto biasIndex = static_cast<std::size_t>(traits.biasInput);
    const std::string current = node.input(biasIndex);
    if (!current.empty() && !graph.isInitializer(current))
        throw Error("layer '" + layer.name + "': its bias '" + current + "' is computed, not a constant");
    std::vector<float> values(static_cast<std::size_t>(channels), 0.f);
    if (!current.empty()) {
        const Tensor& bias = graph.initializers.at(current);
        if (bias.size() == channels && graph.consumers(current).size() == 1) {
            graph.initializers[current] = bias.clone();  // the original graph shares the storage
            return current;
        }
        const std::vector<float> old = bias.toFloatVector();
        if (old.size() == 1)
            std::fill(values.begin(), values.end(), old[0]);
        else if (std::int64_t(old.size()) == channels)
            values = old;
        else
            throw Error("layer '" + layer.name + "': bias " + bias.describe() + " for " + std::to_string(channels) + " channels");
    }
    const std::string name = graph.unusedName(layer.name + ".bias");
    graph.initializers[name] = Tensor::fromValues<float>({channels}, values);
    if (node.inputs.size() <= biasIndex)
        node.inputs.resize(biasIndex + 1);
    node.inputs[biasIndex] = name;
    return name;
}

std::vector<EqualizationPair> findEqualizationPairs(const Graph& graph, const std::vector<QuantLayer>& layers,
                                                    const std::vector<bool>& enabled, const std::vector<bool>& relu6AsRelu,
                                                    std::vector<SkippedRepair>& skipped)
{
    std::map<int, std::size_t> layerAtNode;
    for (std::size_t k = 0; k < layers.size(); ++k)
        if (layers[k].nodeIndex >= 0)
            layerAtNode[layers[k].nodeIndex] = k;

    std::vector<EqualizationPair> pairs;
    for (std::size_t a = 0; a < layers.size(); ++a) {
        const QuantLayer& first = layers[a];
        if (first.weight.empty() || !enabled[a])
            continue;
        // Follow the first layer's output through per-channel operators to the one node reading it.
        std::vector<std::string> between;
        bool homogeneous = true, clipBecomesRelu = false, zeroesNegatives = false;
        if (!first.fusedActivation.empty()) {
            const Node& activation = graph.nodes.at(std::size_t(first.outputNodeIndex));
            between.push_back(first.fusedActivation);
            homogeneous = positivelyHomogeneous(graph, activation, zeroesNegatives);
            if (!homogeneous && relu6AsRelu[a] && boundedRelu(graph, activation)) {
                homogeneous = clipBecomesRelu = zeroesNegatives = true;
                between.back() = first.fusedActivation + " made Relu";
            }
        }
        std::string tensor = first.output;
        const Node* reader = nullptr;
        while (true) {
            const auto readers = graph.consumers(tensor);
            if (graph.isOutput(tensor) || readers.size() != 1)
                break;
            if (movesValuesPerChannel(readers[0]->opType) && readers[0]->outputs.size() == 1) {
                between.push_back(readers[0]->opType);
                tensor = readers[0]->outputs[0];
                continue;
            }
            reader = readers[0];
            break;
        }
        if (!reader)
            continue;
        const auto readerIndex = static_cast<int>(reader - graph.nodes.data());
        const auto found = layerAtNode.find(readerIndex);
        if (found == layerAtNode.end() || layers[found->second].weight.empty() || reader->input(0) != tensor)
            continue;
        const std::size_t b = found->second;
        const QuantLayer& second = layers[b];
        std::string joined;
        for (const std::string& op : between)
            joined += (joined.empty() ? "" : ", ") + op;
        const std::string name = first.name + " -> " + second.name;
        auto skip = [&](const std::string& why) { skipped.push_back({name, why}); };
        if (!enabled[b]) {
            skip("equalization is off for '" + second.name + "'");
            continue;
        }
        if (!homogeneous) {
            skip("the " + first.fusedActivation + " between them has an upper bound (ReLU6): clip(x / s) != clip(x) / s, "
                 "and ONNX's Clip cannot take a bound per channel (\"relu6_as_relu\" makes it a ReLU)");
            continue;
        }
        if (isConvolution(first) != isConvolution(second)) {
            skip("a " + first.opType + " followed by a " + second.opType + ": their channels are on different axes");
            continue;
        }
        if (!ownsWeights(graph, first) || !ownsWeights(graph, second)) {
            skip("a weight tensor is shared with another node");
            continue;
        }
        try {
            const WeightChannels one = weightChannels(graph, first), two = weightChannels(graph, second);
            if (one.outputs != two.inputs) {
                skip(std::to_string(one.outputs) + " output channels against " + std::to_string(two.inputs) + " input channels");
                continue;
            }
        } catch (const Error& e) {
            skip(e.what());
            continue;
        }
        pairs.push_back({a, b, joined, clipBecomesRelu, zeroesNegatives});
    }
    return pairs;
}

void makeClipsRelu(Graph& graph, const std::vector<QuantLayer>& layers, const std::vector<EqualizationPair>& pairs)
{
    for (const EqualizationPair& pair : pairs) {
        if (!pair.clipBecomesRelu)
            continue;
        Node& clip = graph.nodes.at(std::size_t(layers[pair.first].outputNodeIndex));
        clip.opType = "Relu";
        clip.inputs.resize(1);
        clip.attributes.clear();
    }
}

Equalization equalizePairs(Graph& graph, const std::vector<QuantLayer>& layers, const std::vector<EqualizationPair>& pairs,
                           int maxSweeps, float tolerance)
{
    Equalization result;
    std::set<std::string> cloned;
    for (const EqualizationPair& pair : pairs)
        for (const std::string& weight : {layers[pair.first].weight, layers[pair.second].weight})
            if (cloned.insert(weight).second)
                graph.initializers[weight] = graph.initializers.at(weight).clone();  // the original shares the storage

    for (const EqualizationPair& pair : pairs) {
        EqualizedPair report;
        report.first = layers[pair.first].name;
        report.second = layers[pair.second].name;
        report.between = pair.between;
        report.clipBecameRelu = pair.clipBecomesRelu;
        const WeightChannels one = weightChannels(graph, layers[pair.first]), two = weightChannels(graph, layers[pair.second]);
        report.firstRangesBefore = outputChannelRanges(graph.initializers.at(layers[pair.first].weight), one);
        report.secondRangesBefore = inputChannelRanges(graph.initializers.at(layers[pair.second].weight), two);
        report.scales.assign(std::size_t(one.outputs), 1.f);
        result.pairs.push_back(std::move(report));
    }

    for (result.sweeps = 0; result.sweeps < maxSweeps && !pairs.empty();) {
        ++result.sweeps;
        float largestChange = 0.f;
        for (std::size_t p = 0; p < pairs.size(); ++p) {
            const QuantLayer& first = layers[pairs[p].first];
            const QuantLayer& second = layers[pairs[p].second];
            const WeightChannels one = weightChannels(graph, first), two = weightChannels(graph, second);
            Tensor& w1 = graph.initializers.at(first.weight);
            Tensor& w2 = graph.initializers.at(second.weight);
            const std::vector<float> r1 = outputChannelRanges(w1, one), r2 = inputChannelRanges(w2, two);
            const std::vector<float> b1 = firstBias(graph, first, one.outputs);
            // Training's weight decay leaves a dead channel's weights at 1e-30 rather than 0;
            // balancing against those would scale the channel's output by 1e+15 and with it the
            // activation range every other channel is quantized in (the VWW MobileNet fell to
            // one class). Weights under 2^-24 of the layer's largest channel count as none: they
            // move no output of float arithmetic by more than its rounding.
            const float negligible1 = r1.empty() ? 0.f : *std::max_element(r1.begin(), r1.end()) * 0x1p-24f;
            const float negligible2 = r2.empty() ? 0.f : *std::max_element(r2.begin(), r2.end()) * 0x1p-24f;
            std::vector<float> s(r1.size(), 1.f), inverse(r1.size(), 1.f);
            for (std::size_t i = 0; i < s.size(); ++i) {
                // A first-layer channel without weights outputs the constant act(b_i). Where that
                // is 0 (a dead ReLU channel), the second layer's weights on it only ever multiply
                // zeros: clearing them changes nothing, and keeps their (untrained, often large)
                // values from setting the second layer's per-tensor range.
                if (r1[i] <= negligible1 && r2[i] > 0.f && (b1[i] == 0.f || (b1[i] < 0.f && pairs[p].zeroesNegatives))) {
                    s[i] = 0.f;
                    result.pairs[p].scales[i] = 0.f;
                    largestChange = std::max(largestChange, 1.f);
                    continue;
                }
                // A channel without weights on either side has nothing to balance.
                if (r1[i] > negligible1 && r2[i] > negligible2) {
                    s[i] = float(std::sqrt(double(r1[i]) * double(r2[i])) / double(r2[i]));
                    inverse[i] = 1.f / s[i];
                }
                largestChange = std::max(largestChange, std::abs(s[i] - 1.f));
                result.pairs[p].scales[i] *= s[i];
            }
            scaleOutputChannels(w1, one, inverse);
            scaleInputChannels(w2, two, s);
            const Node& node = graph.nodes.at(std::size_t(first.nodeIndex));
            const OperatorTraits& traits = operatorTraits(node.name, node.opType);
            if (traits.biasInput >= 0 && !node.input(std::size_t(traits.biasInput)).empty()) {
                Tensor& bias = graph.initializers.at(ownBias(graph, first, one.outputs));
                float* b = bias.mutableData<float>();
                for (std::size_t i = 0; i < s.size(); ++i)
                    b[i] *= inverse[i];
            }
            if (auto stats = graph.foldedNormalization.find(first.name); stats != graph.foldedNormalization.end())
                for (std::size_t i = 0; i < s.size() && i < stats->second.mean.size(); ++i) {
                    stats->second.mean[i] *= inverse[i];
                    stats->second.stddev[i] *= inverse[i];
                }
        }
        if (largestChange < tolerance)
            break;
    }

    for (std::size_t p = 0; p < pairs.size(); ++p) {
        const QuantLayer& first = layers[pairs[p].first];
        const QuantLayer& second = layers[pairs[p].second];
        result.pairs[p].firstRangesAfter = outputChannelRanges(graph.initializers.at(first.weight), weightChannels(graph, first));
        result.pairs[p].secondRangesAfter = inputChannelRanges(graph.initializers.at(second.weight), weightChannels(graph, second));
    }
    return result;
}

std::string absorptionObstacle(const Graph& graph, const QuantLayer& first, const QuantLayer& second)
{
    const Node& node = graph.nodes.at(std::size_t(second.nodeIndex));
    if (isConvolution(second) && padsInput(node))
        return "'" + second.name + "' pads its input with zeros, which would not carry the absorbed bias";
    const Node& firstNode = graph.nodes.at(std::size_t(first.nodeIndex));
    if (operatorTraits(firstNode.name, firstNode.opType).biasInput < 0)
        return "'" + first.name + "' has no bias";
    return {};
}

std::vector<float> absorbHighBias(Graph& graph, const QuantLayer& first, const QuantLayer& second,
                                  const std::vector<float>& mean, const std::vector<float>& stddev)
{
    const WeightChannels two = weightChannels(graph, second);
    std::vector<float> c(mean.size(), 0.f);
    std::vector<double> cd(mean.size(), 0.0);
    bool any = false;
    for (std::size_t i = 0; i < c.size(); ++i) {
        // Nearly every value of the channel (all but 0.13 % of a normal distribution) lies above
        // mean - 3 stddev; only what lies above any value of the channel can move.
        c[i] = std::max(0.f, mean[i] - 3.f * stddev[i]);
        cd[i] = c[i];
        any = any || c[i] > 0.f;
    }
    if (!any)
        return c;
    Tensor& b1 = graph.initializers.at(ownBias(graph, first, std::int64_t(c.size())));
    for (std::size_t i = 0; i < c.size(); ++i)
        b1.mutableData<float>()[i] -= c[i];
    const std::vector<double> added = responseToConstantInput(graph.initializers.at(second.weight), two, cd);
    Tensor& b2 = graph.initializers.at(ownBias(graph, second, two.outputs));
    for (std::size_t o = 0; o < added.size(); ++o)
        b2.mutableData<float>()[o] += float(added[o]);
    return c;
}

}  // namespace qe
