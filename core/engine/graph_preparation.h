#pragma once
// A model made ready for the engines: read (model/onnx_import.h), then the exporter's leftovers
// folded and every tensor's shape inferred (model/shape_inference.h, without running anything).
// Folding constant subgraphs evaluates nodes with the fp32 kernels, so it lives here, above
// model/: constants are folded by the very kernels that would compute them.

#include "model/graph.h"
#include "model/shape_inference.h"

#include <filesystem>
#include <string>

namespace qe {

struct ImportOptions {
    // Fold exporter leftovers: Constant, Identity, Dropout, constant subgraphs and the
    // Shape/Gather/Unsqueeze/Concat chains that feed Reshape where the shapes are static.
    bool foldConstants = true;
    // Fold BatchNormalization into the preceding Conv or Gemm. Off keeps the layers as exported.
    bool foldBatchNorm = true;
    // Infer every tensor's type and shape from the operators' shape rules (model/shape_inference.h).
    bool inferShapes = true;
};

Graph loadOnnx(const std::filesystem::path& path, const ImportOptions& options = {});
Graph loadOnnxFromMemory(const std::string& bytes, const std::string& sourceName,
                         const std::filesystem::path& externalDataDir, const ImportOptions& options = {});

// The steps of loadOnnx after reading, in its order; errors name the graph's source file.
Graph prepareGraph(Graph graph, const ImportOptions& options = {});

// Constant nodes become initializers; Identity and inference-mode Dropout disappear; any node whose
// inputs are all constants is evaluated once (QuantizeLinear/DequantizeLinear are kept, because a
// quantized model's structure is what the user came to see); unused nodes and initializers go.
Graph foldConstants(Graph graph);

// The oracle of the tests for model/'s static shape inference, not used by the program: infers
// every tensor's type and shape into graph.values by running the graph with the fp32 kernels on a
// probe input of ones, with batch 2 and then 3 on the dynamic leading axis (a dimension that
// changes with them is marked with the batch's symbol). Graphs whose inputs have other symbolic
// dimensions are left as they are.
void probeShapes(Graph& graph);

}  // namespace qe
