#include "model/graph.h"

#include "common/error.h"

#include <algorithm>

namespace qe {

namespace {
template <class T> const T* getAttribute(const Node& node, const std::string& key, const char* expected)
{
    auto it = node.attributes.find(key);
    if (it == node.attributes.end())
        return nullptr;
    const T* value = std::get_if<T>(&it->second);
    if (!value)
        throw Error("node '" + node.name + "' (" + node.opType + "): attribute '" + key + "' should be " + expected);
    return value;
}
}  // namespace

std::int64_t Node::intAttribute(const std::string& key, std::int64_t fallback) const
{
    const auto* v = getAttribute<std::int64_t>(*this, key, "an integer");
    return v ? *v : fallback;
}

float Node::floatAttribute(const std::string& key, float fallback) const
{
    const auto* v = getAttribute<float>(*this, key, "a float");
    return v ? *v : fallback;
}

std::string Node::stringAttribute(const std::string& key, const std::string& fallback) const
{
    const auto* v = getAttribute<std::string>(*this, key, "a string");
    return v ? *v : fallback;
}

std::vector<std::int64_t> Node::intsAttribute(const std::string& key, std::vector<std::int64_t> fallback) const
{
    const auto* v = getAttribute<std::vector<std::int64_t>>(*this, key, "a list of integers");
    return v ? *v : fallback;
}

std::vector<float> Node::floatsAttribute(const std::string& key, std::vector<float> fallback) const
{
    const auto* v = getAttribute<std::vector<float>>(*this, key, "a list of floats");
    return v ? *v : fallback;
}

const Tensor* Node::tensorAttribute(const std::string& key) const
{
    return getAttribute<Tensor>(*this, key, "a tensor");
}

std::string symbolicShapeToString(const SymbolicShape& shape)
{
    std::string out = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (i)
            out += ",";
        out += shape[i].isDynamic() ? (shape[i].symbol.empty() ? "?" : shape[i].symbol) : std::to_string(shape[i].value);
    }
    return out + "]";
}

const Node* Graph::producer(const std::string& tensor) const
{
    for (const Node& node : nodes)
        for (const std::string& out : node.outputs)
            if (out == tensor)
                return &node;
    return nullptr;
}

std::vector<const Node*> Graph::consumers(const std::string& tensor) const
{
    std::vector<const Node*> result;
    for (const Node& node : nodes)
        for (const std::string& in : node.inputs)
            if (in == tensor) {
                result.push_back(&node);
                break;
            }
    return result;
}

const Node* Graph::findNode(const std::string& name) const
{
    for (const Node& node : nodes)
        if (node.name == name)
            return &node;
    return nullptr;
}

std::int64_t Graph::parameterCount() const
{
    std::int64_t count = 0;
    for (const auto& [name, tensor] : initializers)
        if (tensor.dtype() != DataType::Int64)
            count += tensor.size();
    return count;
}

std::map<std::string, int> Graph::operatorCounts() const
{
    std::map<std::string, int> counts;
    for (const Node& node : nodes)
        ++counts[node.opType];
    return counts;
}

std::int64_t Graph::parameterCount(const Node& node) const
{
    std::int64_t count = 0;
    for (const std::string& in : node.inputs) {
        auto it = initializers.find(in);
        if (it != initializers.end() && it->second.dtype() != DataType::Int64)
            count += it->second.size();
    }
    return count;
}

std::string Graph::unusedName(const std::string& base, const std::set<std::string>& alsoTaken) const
{
    std::string name = base;
    for (int i = 1; isInitializer(name) || values.count(name) || alsoTaken.count(name); ++i)
        name = base + "_" + std::to_string(i);
    return name;
}

bool Graph::isOutput(const std::string& tensor) const
{
    return std::any_of(outputs.begin(), outputs.end(), [&](const ValueInfo& output) { return output.name == tensor; });
}

ImageInputGeometry imageInputGeometry(const Graph& graph)
{
    if (graph.inputs.size() != 1)
        throw Error(graph.sourcePath + ": expected one image input, the model has " + std::to_string(graph.inputs.size()));
    const ValueInfo& input = graph.inputs[0];
    if (!input.shapeKnown || input.shape.size() != 4)
        throw Error(graph.sourcePath + ": input '" + input.name + "' should be N x C x H x W, it is " +
                    symbolicShapeToString(input.shape));
    for (std::size_t d = 1; d < 4; ++d) {
        if (input.shape[d].isDynamic())
            throw Error(graph.sourcePath + ": input '" + input.name + "' has a dynamic dimension at axis " +
                        std::to_string(d) + "; only the batch axis may be dynamic");
        if (input.shape[d].value == 0)
            throw Error(graph.sourcePath + ": graph input '" + input.name + "': dimension " + std::to_string(d) +
                        " is 0; expected a positive image size");
    }
    ImageInputGeometry g;
    g.channels = static_cast<int>(input.shape[1].value);
    g.height = static_cast<int>(input.shape[2].value);
    g.width = static_cast<int>(input.shape[3].value);
    g.fixedBatchOfOne = !input.shape[0].isDynamic() && input.shape[0].value == 1;
    return g;
}

}  // namespace qe
