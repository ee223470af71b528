#pragma once
// Writing a Graph back to an ONNX file: the inverse of loadOnnx for everything the engine runs.
// Initializers are written as raw data; shapes of inputs and outputs as symbolic where dynamic.

#include "model/graph.h"

#include <filesystem>
#include <string>

namespace qe {

struct ExportOptions {
    std::string producerName = "quantexplorer";
    // Raise the default-domain opset to at least this (QDQ per-channel axes need 13). Nodes whose
    // meaning changed on the way (Softmax, Squeeze/Unsqueeze, Clip, ...) are rewritten or, where
    // that is not possible, are a qe::Error naming the node.
    std::int64_t minimumOpset = 0;
};

// The serialized ModelProto. Throws qe::Error for graphs ONNX cannot express.
std::string serializeOnnx(const Graph& graph, const ExportOptions& options = {});
// Written atomically (a temporary file renamed over `path`).
void saveOnnx(const Graph& graph, const std::filesystem::path& path, const ExportOptions& options = {});

// Rewrites nodes whose ONNX definition changed between the graph's opset and `opset` (upwards
// only): Softmax/LogSoftmax get their old default axis explicitly, Squeeze/Unsqueeze and Split
// move axes/split from attributes to inputs, Clip's min/max become inputs. Unknown changes are
// a qe::Error naming the node.
Graph upgradeOpset(const Graph& graph, std::int64_t opset);

}  // namespace qe
