#pragma once
// The model as the engine sees it: nodes in topological order, named tensors, initializers and
// inferred shapes. A Graph is a plain value; transforms (folding, BatchNorm fusion) return a new
// Graph, so the importer can keep the original form for users who want to see it.

#include "tensor/tensor.h"

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

namespace qe {

using AttributeValue = std::variant<std::int64_t, float, std::string, std::vector<std::int64_t>,
                                    std::vector<float>, std::vector<std::string>, Tensor>;

struct Node {
    std::string name;    // never empty: the importer names anonymous nodes "<OpType>_<index>"
    std::string opType;
    std::string domain;  // "" for the default ONNX domain
    std::vector<std::string> inputs;   // "" marks an omitted optional input
    std::vector<std::string> outputs;
    std::map<std::string, AttributeValue> attributes;

    bool hasAttribute(const std::string& key) const { return attributes.count(key) != 0; }
    // Typed attribute access; a present attribute of the wrong type is a qe::Error naming the node.
    std::int64_t intAttribute(const std::string& key, std::int64_t fallback) const;
    float floatAttribute(const std::string& key, float fallback) const;
    std::string stringAttribute(const std::string& key, const std::string& fallback) const;
    std::vector<std::int64_t> intsAttribute(const std::string& key, std::vector<std::int64_t> fallback = {}) const;
    std::vector<float> floatsAttribute(const std::string& key, std::vector<float> fallback = {}) const;
    const Tensor* tensorAttribute(const std::string& key) const;
    std::string input(std::size_t i) const { return i < inputs.size() ? inputs[i] : std::string(); }
};

// A dimension is either a known size or a symbol (dynamic, e.g. the batch axis "N").
struct Dim {
    std::int64_t value = -1;  // -1 when symbolic
    std::string symbol;
    bool isDynamic() const { return value < 0; }
};
using SymbolicShape = std::vector<Dim>;
std::string symbolicShapeToString(const SymbolicShape& shape);

struct ValueInfo {
    std::string name;
    DataType dtype = DataType::Float32;
    SymbolicShape shape;
    bool shapeKnown = false;
};

// Per output channel, the mean and standard deviation a folded BatchNormalization gave a layer's
// output (its beta and |gamma|): the statistics the data-free repairs read (core/repair/).
struct ChannelStatistics {
    std::vector<float> mean, stddev;
};

struct Graph {
    std::string name;
    std::string sourcePath;  // the file it came from, for error messages
    std::int64_t opsetVersion = 0;
    std::vector<Node> nodes;                  // topological order
    std::map<std::string, Tensor> initializers;
    std::vector<ValueInfo> inputs;            // real inputs only (no initializers)
    std::vector<ValueInfo> outputs;
    std::map<std::string, ValueInfo> values;  // every tensor's inferred type and shape
    // What foldBatchNormalization folded, by the layer node's name; rescaled with the layer's
    // channels by equalization. Not written to ONNX: a saved model is already folded.
    std::map<std::string, ChannelStatistics> foldedNormalization;

    bool isInitializer(const std::string& tensor) const { return initializers.count(tensor) != 0; }
    const Node* producer(const std::string& tensor) const;
    std::vector<const Node*> consumers(const std::string& tensor) const;
    bool isOutput(const std::string& tensor) const;
    const Node* findNode(const std::string& name) const;
    // `base`, or `base_1`, `base_2`, ...: the first that names no initializer, no known tensor and
    // nothing in `alsoTaken` (names a transform has handed out but not yet added).
    std::string unusedName(const std::string& base, const std::set<std::string>& alsoTaken = {}) const;
    std::int64_t parameterCount() const;  // elements of all weight and bias initializers
    // Elements of the node's weight and bias inputs (int64 shape constants are not parameters).
    std::int64_t parameterCount(const Node& node) const;
    // How many nodes of each operator the graph has, by operator name.
    std::map<std::string, int> operatorCounts() const;
};

// The image a classifier takes: C, H, W of the model's single NCHW input.
struct ImageInputGeometry {
    int channels = 0, height = 0, width = 0;
    bool fixedBatchOfOne = false;  // e.g. mnist-8, whose Reshape constant pins the batch to 1
};
// qe::Error naming the model when it has no such input.
ImageInputGeometry imageInputGeometry(const Graph& graph);

}  // namespace qe
