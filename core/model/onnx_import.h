#pragma once
// Reads ONNX files (opset 7 to 17; older ones load where their operators do) into a Graph.
// Everything a user can get wrong - a truncated file, a missing initializer, an unsupported
// operator, a cycle, an absurd shape - is a qe::Error naming the file, the node and the problem.

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

// A TensorProto file (the ONNX backend tests' input_N.pb / output_N.pb).
Tensor loadTensorProtoFile(const std::filesystem::path& path, std::string* name = nullptr);

}  // namespace qe
