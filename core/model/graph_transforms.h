#pragma once
// Graph-to-graph rewrites that need no kernels. Each changes nothing the model computes (tests
// compare folded and unfolded outputs). The rewrites that evaluate nodes (constant folding, shape
// inference) are in engine/graph_preparation.h.

#include "model/graph.h"

namespace qe {

// BatchNormalization directly after a Conv or Gemm (whose output feeds nothing else) is folded
// into that layer's weights and bias: w' = w * gamma / sqrt(var + eps),
// b' = (b - mean) * gamma / sqrt(var + eps) + beta. beta and |gamma| are kept in
// graph.foldedNormalization under the layer's name.
Graph foldBatchNormalization(Graph graph);

// Removes the nodes no graph output depends on, and the initializers nothing reads.
void removeDeadCode(Graph& graph);

}  // namespace qe
