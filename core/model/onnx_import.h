#pragma once
// Reads ONNX files (opset 7 to 18; older ones load where their operators do) into a Graph.
// Everything a user can get wrong - a truncated file, a missing initializer, an unsupported
// operator, a cycle, an absurd shape - is a qe::Error naming the file, the node and the problem.

#include "model/graph.h"

#include <filesystem>
#include <string>

namespace qe {

// The file as it is: parsed, checked and in topological order, with the shapes the file declares.
// Nothing is folded and no shape is inferred: engine/graph_preparation.h's loadOnnx does that.
Graph readOnnx(const std::filesystem::path& path);
Graph readOnnxFromMemory(const std::string& bytes, const std::string& sourceName, const std::filesystem::path& externalDataDir);

// The element type of an ONNX TensorProto.DataType number (Cast's 'to', a tensor's data_type);
// qe::Error starting with `what` for a type the engine does not support.
DataType convertDataType(int onnxType, const std::string& what);

// A TensorProto file (the ONNX backend tests' input_N.pb / output_N.pb).
Tensor loadTensorProtoFile(const std::filesystem::path& path, std::string* name = nullptr);

}  // namespace qe
