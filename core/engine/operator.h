#pragma once
// The kernels of the one operator table (model/operator_traits.h): the executor runs the kernel
// each row names, run<Name>. Adding an operator is one row there and one kernel function.

#include "model/graph.h"
#include "model/operator_traits.h"
#include "tensor/tensor.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qe {

// What a kernel sees: its node (attributes), the model's opset and its input tensors.
struct OpContext {
    const Node& node;
    std::int64_t opset;
    std::vector<const Tensor*> inputs;  // nullptr where an optional input is omitted

    std::size_t inputCount() const { return inputs.size(); }
    bool hasInput(std::size_t i) const { return i < inputs.size() && inputs[i] != nullptr; }
    // Throws qe::Error naming the input when it is absent.
    const Tensor& input(std::size_t i) const;
    std::size_t outputCount() const { return node.outputs.size(); }
};

using Kernel = std::vector<Tensor> (*)(const OpContext&);

#define QE_DECLARE_KERNEL(Name, ...) std::vector<Tensor> run##Name(const OpContext& context);
QE_OPERATORS(QE_DECLARE_KERNEL)
#undef QE_DECLARE_KERNEL

// nullptr when the operator is not supported (the caller names the node in its error).
Kernel findKernel(std::string_view domain, std::string_view opType);

// Runs one kernel; any failure comes back as a qe::Error prefixed with the node's name and operator
// (out of memory included), so a user always learns which node failed.
std::vector<Tensor> runKernel(Kernel kernel, const OpContext& context);
// Runs one node on the given inputs (nullptr for omitted ones); the operator must be supported.
std::vector<Tensor> runNode(const Node& node, std::int64_t opset, std::vector<const Tensor*> inputs);
// What a clamp-like activation node of `graph` (Relu, Clip: monotone and constant beyond its
// bounds) makes of -extreme and +extreme, computed by its own kernel, so that its bounds follow
// the operator's definition in the graph's opset (Clip's moved from attributes to inputs in opset
// 11); nullopt when one of its other inputs is computed rather than an initializer.
std::optional<std::pair<float, float>> activationBounds(const Graph& graph, const Node& activation, float extreme);

// Helpers shared by kernels.
[[noreturn]] void failNode(const OpContext& context, const std::string& message);
std::int64_t normalizeAxis(const OpContext& context, std::int64_t axis, std::int64_t rank);

}  // namespace qe
