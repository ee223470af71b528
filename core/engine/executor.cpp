#include "engine/executor.h"

#include "common/error.h"
#include "engine/operator.h"

#include <algorithm>
#include <new>

namespace qe {

Executor::Executor(const Graph& graph) : graph_(graph)
{
    kernels_.reserve(graph.nodes.size());
    for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
        const Node& node = graph.nodes[i];
        Kernel kernel = findKernel(node.domain, node.opType);
        if (!kernel)
            throw Error(unsupportedOperatorMessage(node.name, node.opType, node.domain));
        kernels_.push_back(kernel);
        for (const std::string& input : node.inputs)
            if (!input.empty())
                lastUse_[input] = i;
    }
    convChains_ = findConvChains(graph);
    for (const auto& [first, chain] : convChains_)
        for (std::size_t s = 0; s < chain.stages.size(); ++s)
            chainStageAt_[chain.stages[s].conv] = {first, s};
}

namespace {
void checkInputShape(const ValueInfo& input, const Tensor& fed)
{
    if (!input.shapeKnown)
        return;
    bool ok = fed.rank() == static_cast<int>(input.shape.size());
    for (std::size_t d = 0; ok && d < input.shape.size(); ++d)
        if (!input.shape[d].isDynamic() && input.shape[d].value != fed.dim(static_cast<int>(d)))
            ok = false;
    if (!ok)
        throw Error("graph input '" + input.name + "' expects shape " + symbolicShapeToString(input.shape) + ", got " +
                    shapeToString(fed.shape()));
}
}  // namespace

TensorMap Executor::run(const TensorMap& feeds, const RunOptions& options) const
{
    std::map<std::string, Tensor> live;
    if (options.startNode == 0) {
        for (const ValueInfo& input : graph_.inputs) {
            auto it = feeds.find(input.name);
            if (it == feeds.end())
                throw Error("graph input '" + input.name + "' was not given");
            checkInputShape(input, it->second);
            live[input.name] = it->second;
        }
    } else {
        for (const auto& [name, tensor] : feeds)
            if (lastUse_.count(name) && lastUse_.at(name) >= options.startNode)
                live[name] = tensor;
    }

    std::set<std::string> keep = options.capture;
    for (const ValueInfo& output : graph_.outputs)
        keep.insert(output.name);

    TensorMap result;
    auto lookup = [&](const std::string& name) -> const Tensor* {
        auto it = live.find(name);
        if (it != live.end())
            return &it->second;
        auto init = graph_.initializers.find(name);
        if (init != graph_.initializers.end())
            return &init->second;
        return nullptr;
    };
    // Inputs and initializers that are asked for directly.
    for (const std::string& name : keep)
        if (const Tensor* t = lookup(name))
            result[name] = *t;
    if (options.captureAll) {
        for (const auto& [name, tensor] : live)
            result[name] = tensor;
    }

    const std::size_t endNode = std::min(options.endNode, graph_.nodes.size());
    for (std::size_t i = options.startNode; i < endNode; ++i) {
        if (options.cancel && options.cancel->load(std::memory_order_relaxed))
            throw Cancelled();
        // A run of convolutions in one go when no hook sees its nodes, up to the first tensor
        // inside it that is asked for.
        std::optional<ConvChain> part;
        if (!options.computeNode && !options.afterNode && !options.captureAll)
            if (auto at = chainStageAt_.find(i); at != chainStageAt_.end())
                part = convChainPart(graph_, convChains_.at(at->second.first), at->second.second, keep, endNode);
        if (part) {
            const ConvChain& c = *part;
            const Tensor* input = lookup(graph_.nodes[c.first()].input(0));
            std::optional<Tensor> output = input ? runConvChain(graph_, c, *input) : std::nullopt;
            if (output) {
                const std::string& name = graph_.nodes[c.last()].outputs.at(0);
                if (keep.count(name))
                    result[name] = *output;
                if (lastUse_.count(name))
                    live[name] = std::move(*output);
                for (std::size_t n = c.first(); n <= c.last(); ++n)
                    for (const std::string& in : graph_.nodes[n].inputs)
                        if (auto last = lastUse_.find(in); last != lastUse_.end() && last->second == n)
                            live.erase(in);
                i = c.last();
                continue;
            }
        }
        const Node& node = graph_.nodes[i];
        OpContext context{node, graph_.opsetVersion, {}};
        context.inputs.reserve(node.inputs.size());
        for (const std::string& name : node.inputs) {
            if (name.empty()) {
                context.inputs.push_back(nullptr);
                continue;
            }
            const Tensor* t = lookup(name);
            if (!t)
                throw Error("node '" + node.name + "': input '" + name + "' is not available");
            context.inputs.push_back(t);
        }

        std::optional<std::vector<Tensor>> computed;
        if (options.computeNode)
            computed = options.computeNode(i, node, context.inputs);
        std::vector<Tensor> outputs = computed ? std::move(*computed) : runKernel(kernels_[i], context);
        if (options.afterNode)
            options.afterNode(i, node, outputs);

        for (std::size_t o = 0; o < node.outputs.size() && o < outputs.size(); ++o) {
            const std::string& name = node.outputs[o];
            if (name.empty())
                continue;
            if (keep.count(name) || options.captureAll)
                result[name] = outputs[o];
            if (lastUse_.count(name))
                live[name] = std::move(outputs[o]);
        }
        // Release what no later node reads.
        for (const std::string& name : node.inputs) {
            auto last = lastUse_.find(name);
            if (last != lastUse_.end() && last->second == i)
                live.erase(name);
        }
    }
    if (endNode < graph_.nodes.size())
        return result;
    for (const ValueInfo& output : graph_.outputs) {
        if (!result.count(output.name) && feeds.count(output.name))
            result[output.name] = feeds.at(output.name);  // produced before startNode
        if (!result.count(output.name))
            throw Error("graph output '" + output.name + "' was not produced");
    }
    return result;
}

Tensor runSingle(const Executor& executor, const Tensor& input)
{
    const Graph& graph = executor.graph();
    if (graph.inputs.size() != 1 || graph.outputs.empty())
        throw Error("model has " + std::to_string(graph.inputs.size()) + " inputs; exactly one image input is expected");
    TensorMap outputs = executor.run({{graph.inputs[0].name, input}});
    return outputs.at(graph.outputs[0].name);
}

}  // namespace qe
