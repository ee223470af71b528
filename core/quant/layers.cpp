#include "quant/layers.h"

#include "model/operator_traits.h"

#include <set>

namespace qe {

std::vector<QuantLayer> findQuantLayers(const Graph& graph)
{
    std::vector<QuantLayer> layers;
    for (const ValueInfo& input : graph.inputs)
        if (input.dtype == DataType::Float32)
            layers.push_back({input.name, "Input", -1, "", 0, "", input.name, -1, "", {}});

    std::set<std::string> claimedWeights;
    for (int i = 0; i < static_cast<int>(graph.nodes.size()); ++i) {
        const Node& node = graph.nodes[static_cast<std::size_t>(i)];
        // Operators whose output is new values get their own quantization parameters; an operator
        // the table does not know is an error here, never a silently unquantized layer.
        const OperatorTraits& traits = operatorTraits(node.name, node.opType);
        if (!makesNewValues(traits.role) || node.outputs.empty())
            continue;
        // Integer arithmetic on shapes (Shape -> Gather -> Concat -> Reshape) is not a layer.
        auto type = graph.values.find(node.outputs[0]);
        if (type != graph.values.end() && type->second.dtype != DataType::Float32)
            continue;
        QuantLayer layer;
        layer.name = node.name;
        layer.opType = node.opType;
        layer.nodeIndex = i;
        layer.output = node.outputs[0];
        layer.outputNodeIndex = i;
        for (const std::string& in : node.inputs)
            if (!in.empty() && !graph.isInitializer(in))
                layer.inputs.push_back(in);
        // A weight shared by several layers (tied weights) is quantized once, as the first
        // layer that reads it says; the others read that same quantized tensor.
        const std::string weight = traits.weightInput >= 0 ? node.input(std::size_t(traits.weightInput)) : std::string();
        if (!weight.empty() && graph.isInitializer(weight) && graph.initializers.at(weight).dtype() == DataType::Float32 &&
            claimedWeights.insert(weight).second) {
            layer.weight = weight;
            if (node.opType == "Gemm")
                layer.weightChannelAxis = node.intAttribute("transB", 0) ? 0 : 1;
            else if (node.opType == "MatMul")
                layer.weightChannelAxis = graph.initializers.at(layer.weight).rank() - 1;
            if (traits.biasInput >= 0 && graph.isInitializer(node.input(std::size_t(traits.biasInput))))
                layer.bias = node.input(std::size_t(traits.biasInput));
        }
        // An elementwise op with a constant operand (a bias add, a scale) has only its output
        // activation quantized; the constant stays float, as a device folds it into the rescale.
        // Fuse a Relu/Clip that is the only reader of the layer's output.
        const auto readers = graph.consumers(layer.output);
        bool isOutput = false;
        for (const ValueInfo& out : graph.outputs)
            isOutput = isOutput || out.name == layer.output;
        if (!isOutput && readers.size() == 1 && operatorTraits(readers[0]->name, readers[0]->opType).fusesIntoLayer) {
            layer.fusedActivation = readers[0]->opType;
            layer.output = readers[0]->outputs[0];
            for (int j = i + 1; j < static_cast<int>(graph.nodes.size()); ++j)
                if (&graph.nodes[static_cast<std::size_t>(j)] == readers[0])
                    layer.outputNodeIndex = j;
        }
        layers.push_back(std::move(layer));
    }
    return layers;
}

}  // namespace qe
