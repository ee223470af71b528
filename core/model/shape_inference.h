#pragma once
// Static shape inference: every tensor's element type and shape, computed from the operators'
// attributes and their inputs' shapes, without running a kernel. Each operator's rule is named in
// its row of the operator table (model/operator_traits.h, the last column); the rules live in
// shape_inference.cpp.
//
// Shapes are computed for concrete sizes: the model's leading symbolic axis (the batch) is set to
// 2, then to 3, and a dimension that follows it is marked with the batch's symbol, exactly as a
// probe run of the graph would. Small integer tensors (the Shape -> Gather -> Concat -> Reshape
// chains exporters write) also have their values propagated, so a Reshape whose target is computed
// has a known shape. An inconsistent model (a Conv whose weights do not fit its input, a MatMul
// with different inner dimensions, a Reshape that changes the element count, an absurd size) is a
// qe::Error naming the node, at load time.

#include "model/graph.h"

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace qe {

// What shape inference knows of one tensor at one probe batch size: its type and shape, and, for
// a small integer (or boolean) tensor whose values do not depend on the model's input, its values.
struct TensorFacts {
    DataType dtype = DataType::Float32;
    Shape shape;
    std::optional<Tensor> value;
};

// What a shape rule sees: its node, the model's opset and its inputs' facts.
struct ShapeContext {
    const Node& node;
    std::int64_t opset;
    std::vector<const TensorFacts*> inputs;  // nullptr where an optional input is omitted

    bool hasInput(std::size_t i) const { return i < inputs.size() && inputs[i] != nullptr; }
    // qe::Error naming the input when it is absent.
    const TensorFacts& input(std::size_t i) const;
    // The input's values as integers; when they are not known (computed from the model's input)
    // the output shapes cannot be known either, and inference leaves them unknown.
    std::vector<std::int64_t> values(std::size_t i) const;
    std::size_t outputCount() const { return node.outputs.size(); }
};

using ShapeRule = std::vector<TensorFacts> (*)(const ShapeContext&);

// The rule named in the operator's row; nullptr for an operator not in the table.
ShapeRule findShapeRule(std::string_view opType);

// Infers every tensor's type and shape into graph.values (the model's inputs and every node's
// outputs) and updates graph.outputs. A tensor whose shape depends on the model's input values is
// left with shapeKnown = false, and so is every tensor after it. Graphs whose inputs have symbolic
// dimensions other than the leading one are left as they are.
void inferShapes(Graph& graph);

// Shape nodes (and Gathers of them) whose dimensions do not depend on the batch become Constant
// nodes, so the Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains of exporters fold away
// where they can. Needs inferred shapes.
Graph foldStaticShapes(Graph graph);

// The dimensions [start, end) a Shape node reports for an input of `rank`, with its start/end
// attributes clamped as ONNX defines.
std::pair<std::int64_t, std::int64_t> shapeNodeRange(const Node& node, std::int64_t rank);

}  // namespace qe
