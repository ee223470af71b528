#pragma once
// A model made ready for the engines: read (model/onnx_import.h), then the exporter's leftovers
// folded and every tensor's shape inferred. Both evaluate nodes with the fp32 kernels, so they
// live here, above model/: constants are folded by the very kernels that would compute them, and
// shapes are those the engine computes (see inferShapes).

#include "model/graph.h"

#include <filesystem>
#include <string>

namespace qe {

struct ImportOptions {
    // Fold exporter leftovers: Constant, Identity, Dropout, constant subgraphs and the
    // Shape/Gather/Unsqueeze/Concat chains that feed Reshape where the shapes are static.
    bool foldConstants = true;
    // Fold BatchNormalization into the preceding Conv or Gemm. Off keeps the layers as exported.
    bool foldBatchNorm = true;
    // Infer every tensor's shape by running the graph on a probe input (see graph_transforms.h).
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

// Shape nodes (and Gathers of them) whose dimensions do not depend on the batch become constants,
// so the Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains of exporters fold away where
// they can. Needs inferred shapes.
Graph foldStaticShapes(Graph graph);

// Infers every tensor's type and shape by running the graph on a probe input: twice, with batch 1
// and batch 2 on the dynamic leading axis, so a dimension that follows the batch is marked dynamic.
// Running the real kernels means the shapes can never disagree with what the engine computes, and
// an absurd shape fails here, at load time, with the node's name. Graphs whose inputs have other
// symbolic dimensions are left without inferred shapes.
void inferShapes(Graph& graph);

}  // namespace qe
