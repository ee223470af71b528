#pragma once
// Where a model is quantized. A "layer" is what the user configures: a node that computes new
// values (Conv, Gemm, MatMul, Add, Concat, pooling that averages, ...) or a graph input. Its
// output activation is quantized after any directly following Relu/Clip, which a device fuses
// into the layer (the clamp is part of the requantization), and its weights, if it has any, are
// quantized per the configuration. Reshapes, MaxPool and the like move values without changing
// them and keep their input's quantization.

#include "model/graph.h"

#include <string>
#include <vector>

namespace qe {

struct QuantLayer {
    std::string name;          // the node name (or the graph input's name for input layers)
    std::string opType;        // "Input" for graph inputs
    int nodeIndex = -1;        // index in graph.nodes; -1 for graph inputs
    std::string weight;        // initializer holding the weights ("" when none)
    int weightChannelAxis = 0; // the output-channel axis of `weight`
    std::string bias;          // initializer holding the bias ("" when none)
    std::string output;        // the tensor that is quantized (after a fused activation)
    int outputNodeIndex = -1;  // the node producing `output` (-1 for graph inputs)
    std::string fusedActivation;  // "Relu", "Clip" or ""
    std::vector<std::string> inputs;  // the layer node's non-constant inputs
};

std::vector<QuantLayer> findQuantLayers(const Graph& graph);

}  // namespace qe
