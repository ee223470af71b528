#pragma once
// Graph-to-graph rewrites applied at import. Each takes a Graph by value and returns the new one;
// none of them changes what the model computes (tests compare folded and unfolded outputs).

#include "model/graph.h"

namespace qe {

// Constant nodes become initializers; Identity and inference-mode Dropout disappear; any node whose
// inputs are all constants is evaluated once (QuantizeLinear/DequantizeLinear are kept, because a
// quantized model's structure is what the user came to see); unused nodes and initializers go.
Graph foldConstants(Graph graph);

// Shape nodes (and Gathers of them) whose dimensions do not depend on the batch become constants,
// so the Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains of exporters fold away where
// they can. Needs inferred shapes.
Graph foldStaticShapes(Graph graph);

// BatchNormalization directly after a Conv or Gemm (whose output feeds nothing else) is folded
// into that layer's weights and bias: w' = w * gamma / sqrt(var + eps),
// b' = (b - mean) * gamma / sqrt(var + eps) + beta.
Graph foldBatchNormalization(Graph graph);

// Infers every tensor's type and shape by running the graph on a probe input: twice, with batch 1
// and batch 2 on the dynamic leading axis, so a dimension that follows the batch is marked dynamic.
// Running the real kernels means the shapes can never disagree with what the engine computes, and
// an absurd shape fails here, at load time, with the node's name. Graphs whose inputs have other
// symbolic dimensions are left without inferred shapes.
void inferShapes(Graph& graph);

}  // namespace qe
