#pragma once
// Inside the training module only (it includes libtorch): each ONNX operator on the training path
// as torch operations, one function per operator in torch_operators.cpp's table, following the
// ONNX semantics of our fp32 kernels. TorchGraph runs a graph through them.

#include "common/error.h"
#include "model/graph.h"

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace qe {

// What an operator sees: its inputs as torch tensors, and constant inputs as integers.
class OpInputs {
public:
    OpInputs(const Node& node, const Graph& graph, const std::map<std::string, torch::Tensor>& values)
        : node_(node), graph_(graph), values_(values)
    {
    }
    bool has(std::size_t i) const { return !node_.input(i).empty(); }
    const torch::Tensor& operator[](std::size_t i) const
    {
        const auto it = values_.find(node_.input(i));
        if (it == values_.end())
            throw Error("input " + std::to_string(i) + " ('" + node_.input(i) + "') is not available");
        return it->second;
    }
    // A constant integer input (shapes, axes, pads): an initializer.
    std::vector<std::int64_t> ints(std::size_t i) const
    {
        const auto it = graph_.initializers.find(node_.input(i));
        if (it == graph_.initializers.end())
            throw Error("input " + std::to_string(i) + " ('" + node_.input(i) +
                        "') must be a constant to train this model (it is computed at run time)");
        return it->second.toInt64Vector();
    }

private:
    const Node& node_;
    const Graph& graph_;
    const std::map<std::string, torch::Tensor>& values_;
};

using Outputs = std::vector<torch::Tensor>;
using OpFunction = Outputs (*)(const Node&, const OpInputs&, const Graph&);

// The torch form of `node`'s operator; nullptr when it has none (no gradient to give).
OpFunction findOperator(const Node& node);

}  // namespace qe
