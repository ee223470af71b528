#include "engine/conv_chains.h"

#include "common/error.h"
#include "engine/operator.h"
#include "engine/ops/float_kernels.h"
#include "model/window.h"

#include <algorithm>
#include <limits>

namespace qe {

namespace {

bool standardDomain(const Node& node) { return node.domain.empty() || node.domain == "ai.onnx"; }

const Tensor* floatInitializer(const Graph& graph, const Node& node, std::size_t input, int rank)
{
    if (node.input(input).empty())
        return nullptr;
    auto it = graph.initializers.find(node.input(input));
    if (it == graph.initializers.end() || it->second.dtype() != DataType::Float32 || it->second.rank() != rank)
        return nullptr;
    return &it->second;
}

// A 2-D Conv whose weights (and bias, if any) are float initializers.
bool chainableConv(const Graph& graph, const Node& node)
{
    return standardDomain(node) && node.opType == "Conv" && node.inputs.size() >= 2 && floatInitializer(graph, node, 1, 4) &&
           (node.input(2).empty() || floatInitializer(graph, node, 2, 1));
}

// The bounds of a Relu, or of a Clip whose bounds are constants: what the node's own kernel makes
// of -inf and +inf (the clip post-op then gives exactly the kernel's values, infinities included);
// nothing for any other node.
std::optional<std::pair<float, float>> clampOf(const Graph& graph, const Node& node)
{
    if (!standardDomain(node) || (node.opType != "Relu" && node.opType != "Clip"))
        return std::nullopt;
    try {
        return activationBounds(graph, node, std::numeric_limits<float>::infinity());
    } catch (const Error&) {  // bounds the kernel rejects: the node, run alone, names them
        return std::nullopt;
    }
}

}  // namespace

std::map<std::size_t, ConvChain> findConvChains(const Graph& graph)
{
    // How many node inputs read each tensor; graph outputs count as one more reader.
    std::map<std::string, int> readers;
    for (const Node& node : graph.nodes)
        for (const std::string& in : node.inputs)
            if (!in.empty())
                ++readers[in];
    for (const ValueInfo& output : graph.outputs)
        ++readers[output.name];
    // `tensor` is read by `node` alone.
    auto onlyReader = [&](const std::string& tensor, const Node& node) {
        return readers[tensor] == 1 && !node.inputs.empty() && node.inputs[0] == tensor;
    };

    std::map<std::size_t, ConvChain> chains;
    const std::size_t count = graph.nodes.size();
    for (std::size_t i = 0; i < count;) {
        if (!chainableConv(graph, graph.nodes[i])) {
            ++i;
            continue;
        }
        ConvChain chain;
        std::size_t n = i;
        while (true) {
            ConvChain::Stage stage{n, std::nullopt};
            const std::string& convOutput = graph.nodes[n].outputs.at(0);
            if (n + 1 < count && clampOf(graph, graph.nodes[n + 1]) && onlyReader(convOutput, graph.nodes[n + 1])) {
                stage.activation = n + 1;
                chain.inner.push_back(convOutput);
            }
            chain.stages.push_back(stage);
            const std::size_t end = chain.last();
            const std::string& output = graph.nodes[end].outputs.at(0);
            if (end + 1 < count && chainableConv(graph, graph.nodes[end + 1]) && onlyReader(output, graph.nodes[end + 1])) {
                chain.inner.push_back(output);
                n = end + 1;
                continue;
            }
            break;
        }
        const std::size_t next = chain.last() + 1;
        if (chain.last() > chain.first())
            chains.emplace(i, std::move(chain));
        i = next;
    }
    return chains;
}

std::optional<ConvChain> convChainPart(const Graph& graph, const ConvChain& chain, std::size_t firstStage,
                                       const std::set<std::string>& kept, std::size_t endNode)
{
    ConvChain part;
    for (std::size_t s = firstStage; s < chain.stages.size(); ++s) {
        const ConvChain::Stage& stage = chain.stages[s];
        if (stage.activation.value_or(stage.conv) >= endNode)
            break;
        // The tensors this stage would put inside the part: the previous stage's output and its
        // own Conv's output when an activation reads it.
        std::vector<std::string> inner;
        if (!part.stages.empty())
            inner.push_back(graph.nodes[part.last()].outputs.at(0));
        if (stage.activation)
            inner.push_back(graph.nodes[stage.conv].outputs.at(0));
        if (std::any_of(inner.begin(), inner.end(), [&](const std::string& name) { return kept.count(name) > 0; }))
            break;
        part.inner.insert(part.inner.end(), inner.begin(), inner.end());
        part.stages.push_back(stage);
    }
    if (part.stages.empty() || part.last() == part.first())
        return std::nullopt;
    return part;
}

std::optional<ConvChain> convWithActivation(const Graph& graph, std::size_t conv, std::size_t activation)
{
    if (conv >= graph.nodes.size() || activation >= graph.nodes.size() || !chainableConv(graph, graph.nodes[conv]))
        return std::nullopt;
    const Node& clamp = graph.nodes[activation];
    const std::string& convOutput = graph.nodes[conv].outputs.at(0);
    if (!clampOf(graph, clamp) || clamp.inputs.empty() || clamp.inputs[0] != convOutput)
        return std::nullopt;
    ConvChain chain;
    chain.stages.push_back({conv, activation});
    chain.inner.push_back(convOutput);
    return chain;
}

std::optional<Tensor> runConvChain(const Graph& graph, const ConvChain& chain, const Tensor& input)
{
    if (input.dtype() != DataType::Float32 || input.rank() != 4)
        return std::nullopt;
    std::vector<FloatConvStage> stages;
    Shape shape = input.shape();
    for (const ConvChain::Stage& s : chain.stages) {
        const Node& node = graph.nodes[s.conv];
        const Tensor& weights = graph.initializers.at(node.input(1));
        const std::int64_t group = node.intAttribute("group", 1);
        if (group < 1 || shape[1] % group != 0 || weights.dim(0) % group != 0 || shape[1] / group != weights.dim(1))
            return std::nullopt;
        const auto kernelShape = node.intsAttribute("kernel_shape");
        if (!kernelShape.empty() && (kernelShape.size() != 2 || kernelShape[0] != weights.dim(2) || kernelShape[1] != weights.dim(3)))
            return std::nullopt;
        FloatConvStage stage;
        try {
            stage.window = makeWindow(node, 2, shape[2], shape[3], weights.dim(2), weights.dim(3), false);
        } catch (const Error&) {
            return std::nullopt;
        }
        if (stage.window.outH <= 0 || stage.window.outW <= 0)
            return std::nullopt;
        stage.weights = weights;
        if (!node.input(2).empty()) {
            stage.bias = graph.initializers.at(node.input(2));
            if (stage.bias.size() != weights.dim(0))
                return std::nullopt;
        }
        stage.groups = group;
        if (s.activation)
            stage.clamp = clampOf(graph, graph.nodes[*s.activation]);
        shape = {shape[0], weights.dim(0), stage.window.outH, stage.window.outW};
        stages.push_back(std::move(stage));
    }
    return fastFloatConvChain(input, stages);
}

}  // namespace qe
