// Operators that move codes without changing them (Reshape, Transpose, Slice, Gather, ...).
#include "engine/int8/steps.h"

#include "common/error.h"

namespace qe::int8_steps {

using int8::ActivationParams;
using int8::ChannelRequantization;
using int8::FixedPointMultiplier;
using int8::QuantizedTensor;

namespace {

// Operators that only move values (Reshape, Transpose, ...): the fp32 engine's kernels are
// type-generic, so they run on the codes in the channels-first layout ONNX describes.
struct MoveStep final : Step {
    const Node* node = nullptr;
    const Graph* graph = nullptr;
    void run(Values& values) const override
    {
        const QuantizedTensor x = int8::toChannelsFirst(*values.at(node->inputs[0]).codes);
        std::vector<const Tensor*> in{&x.codes};
        std::vector<Tensor> realInputs;
        realInputs.reserve(node->inputs.size());
        for (std::size_t i = 1; i < node->inputs.size(); ++i) {
            const std::string& name = node->inputs[i];
            if (name.empty())
                in.push_back(nullptr);
            else if (graph->isInitializer(name))
                in.push_back(&graph->initializers.at(name));
            else {
                realInputs.push_back(values.at(name).realValues());
                in.push_back(&realInputs.back());
            }
        }
        std::vector<Tensor> out = runNode(*node, graph->opsetVersion, in);
        for (std::size_t i = 0; i < out.size() && i < node->outputs.size(); ++i) {
            IntegerEngine::Value y;
            y.codes.emplace();
            y.codes->params = x.params;
            y.codes->codes = std::move(out[i]);
            values[node->outputs[i]] = std::move(y);
        }
    }
};

// Whether every output of a node that moves values is a float tensor (Dropout's optional mask is
// not, and stays in float).
bool allOutputsFloat(const Graph& graph, const Node& node)
{
    for (const std::string& out : node.outputs) {
        auto it = graph.values.find(out);
        if (!out.empty() && (it == graph.values.end() || it->second.dtype != DataType::Float32))
            return false;
    }
    return true;
}

}  // namespace

std::unique_ptr<Step> lowerMove(const Graph& graph, const Node& node)
{
    if (!allOutputsFloat(graph, node))
        return nullptr;
    auto s = std::make_unique<MoveStep>();
    s->node = &node;
    s->graph = &graph;
    return s;
}

}  // namespace qe::int8_steps
