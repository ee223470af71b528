#include "model/graph_transforms.h"

#include "common/error.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace qe {

void removeDeadCode(Graph& graph)
{
    // Walk backwards: a node is live when a graph output or a live node reads one of its outputs.
    std::set<std::string> needed;
    for (const ValueInfo& output : graph.outputs)
        needed.insert(output.name);
    std::vector<bool> live(graph.nodes.size(), false);
    for (std::size_t i = graph.nodes.size(); i-- > 0;) {
        const Node& node = graph.nodes[i];
        for (const std::string& out : node.outputs)
            if (needed.count(out))
                live[i] = true;
        if (live[i])
            for (const std::string& in : node.inputs)
                needed.insert(in);
    }
    std::vector<Node> kept;
    for (std::size_t i = 0; i < graph.nodes.size(); ++i)
        if (live[i])
            kept.push_back(std::move(graph.nodes[i]));
    graph.nodes = std::move(kept);
    for (auto it = graph.initializers.begin(); it != graph.initializers.end();)
        it = needed.count(it->first) ? std::next(it) : graph.initializers.erase(it);
}

Graph foldBatchNormalization(Graph graph)
{
    std::set<std::size_t> removed;
    for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
        const Node& bn = graph.nodes[i];
        if (bn.opType != "BatchNormalization" || bn.outputs.size() != 1)
            continue;
        bool constants = true;
        for (std::size_t k = 1; k < 5; ++k)
            constants = constants && graph.isInitializer(bn.input(k));
        if (!constants)
            continue;
        // The producer must be a Conv/Gemm read by nothing but this BatchNormalization.
        std::size_t p = 0;
        bool found = false;
        for (std::size_t j = 0; j < i; ++j)
            if (!graph.nodes[j].outputs.empty() && graph.nodes[j].outputs[0] == bn.input(0)) {
                p = j;
                found = true;
            }
        if (!found || graph.consumers(bn.input(0)).size() != 1 || graph.isOutput(bn.input(0)))
            continue;
        Node& layer = graph.nodes[p];
        const bool isConv = layer.opType == "Conv";
        const bool isGemm = layer.opType == "Gemm" && layer.floatAttribute("alpha", 1.f) == 1.f &&
                            layer.floatAttribute("beta", 1.f) == 1.f && layer.intAttribute("transA", 0) == 0;
        if ((!isConv && !isGemm) || !graph.isInitializer(layer.input(1)) ||
            (!layer.input(2).empty() && !graph.isInitializer(layer.input(2))))
            continue;
        const Tensor& weight = graph.initializers.at(layer.input(1));
        if (weight.dtype() != DataType::Float32 || graph.consumers(layer.input(1)).size() != 1)
            continue;

        const auto gamma = graph.initializers.at(bn.input(1)).toFloatVector();
        const auto beta = graph.initializers.at(bn.input(2)).toFloatVector();
        const auto mean = graph.initializers.at(bn.input(3)).toFloatVector();
        const auto var = graph.initializers.at(bn.input(4)).toFloatVector();
        const float epsilon = bn.floatAttribute("epsilon", 1e-5f);
        const bool transB = isGemm && layer.intAttribute("transB", 0) != 0;
        const std::int64_t channels = isConv ? weight.dim(0) : (transB ? weight.dim(0) : weight.dim(1));
        const auto size = static_cast<std::size_t>(channels);
        if (gamma.size() != size || beta.size() != size || mean.size() != size || var.size() != size)
            continue;  // malformed: the BatchNormalization kernel will report it

        std::vector<float> factor(static_cast<std::size_t>(channels));
        for (std::int64_t c = 0; c < channels; ++c)
            factor[c] = gamma[c] / std::sqrt(var[c] + epsilon);

        Tensor newWeight = weight.clone();
        float* w = newWeight.mutableData<float>();
        if (isConv || transB) {
            const std::int64_t perChannel = weight.size() / channels;
            for (std::int64_t c = 0; c < channels; ++c)
                for (std::int64_t k = 0; k < perChannel; ++k)
                    w[c * perChannel + k] *= factor[c];
        } else {  // Gemm weights [K, N]: the channel is the column
            for (std::int64_t r = 0; r < weight.dim(0); ++r)
                for (std::int64_t c = 0; c < channels; ++c)
                    w[r * channels + c] *= factor[c];
        }
        std::vector<float> bias(static_cast<std::size_t>(channels), 0.f);
        if (!layer.input(2).empty()) {
            const auto old = graph.initializers.at(layer.input(2)).toFloatVector();
            if (old.size() == bias.size())
                bias = old;
            else if (old.size() == 1)
                std::fill(bias.begin(), bias.end(), old[0]);
            else
                continue;
        }
        for (std::int64_t c = 0; c < channels; ++c)
            bias[c] = (bias[c] - mean[c]) * factor[c] + beta[c];

        // The layer's output now has, per channel, the mean beta and deviation |gamma| that the
        // normalization gave it: kept for the repairs that need activation statistics without data.
        ChannelStatistics statistics{beta, gamma};
        for (float& g : statistics.stddev)
            g = std::abs(g);
        graph.foldedNormalization[layer.name] = std::move(statistics);
        graph.initializers[layer.input(1)] = newWeight;
        std::string biasName = layer.input(2);
        if (biasName.empty() || graph.consumers(biasName).size() != 1)
            biasName = layer.name + ".bias_folded";
        graph.initializers[biasName] = Tensor::fromValues<float>({channels}, bias);
        layer.inputs.resize(3);
        layer.inputs[2] = biasName;
        layer.outputs[0] = bn.outputs[0];
        removed.insert(i);
    }
    std::vector<Node> kept;
    for (std::size_t i = 0; i < graph.nodes.size(); ++i)
        if (!removed.count(i))
            kept.push_back(std::move(graph.nodes[i]));
    graph.nodes = std::move(kept);
    removeDeadCode(graph);
    return graph;
}
}  // namespace qe
