#include "model/graph_transforms.h"

#include "common/error.h"
#include "engine/executor.h"
#include "engine/operator.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace qe {

namespace {

bool isGraphOutput(const Graph& graph, const std::string& name)
{
    for (const ValueInfo& output : graph.outputs)
        if (output.name == name)
            return true;
    return false;
}

void renameInputs(Graph& graph, const std::string& from, const std::string& to)
{
    for (Node& node : graph.nodes)
        for (std::string& input : node.inputs)
            if (input == from)
                input = to;
}

// Runs one node on constant inputs.
std::vector<Tensor> evaluate(const Graph& graph, const Node& node)
{
    std::vector<const Tensor*> inputs;
    for (const std::string& name : node.inputs)
        inputs.push_back(name.empty() ? nullptr : &graph.initializers.at(name));
    return runNode(node, graph.opsetVersion, std::move(inputs));
}

void removeDeadCode(Graph& graph)
{
    // Walk backwards: a node is live when a graph output or a live node reads one of its outputs.
    std::set<std::string> needed;
    for (const ValueInfo& output : graph.outputs)
        needed.insert(output.name);
    std::vector<bool> live(graph.nodes.size(), false);
    for (std::size_t i = graph.nodes.size(); i-- > 0;) {
        const Node& node = graph.nodes[i];
        for (const std::string& out : node.outputs)
            if (needed.count(out))
                live[i] = true;
        if (live[i])
            for (const std::string& in : node.inputs)
                needed.insert(in);
    }
    std::vector<Node> kept;
    for (std::size_t i = 0; i < graph.nodes.size(); ++i)
        if (live[i])
            kept.push_back(std::move(graph.nodes[i]));
    graph.nodes = std::move(kept);
    for (auto it = graph.initializers.begin(); it != graph.initializers.end();)
        it = needed.count(it->first) ? std::next(it) : graph.initializers.erase(it);
}

bool isFoldable(const Node& node)
{
    // Quantization nodes stay visible; Constant is handled by the same path (it has no inputs).
    return node.opType != "QuantizeLinear" && node.opType != "DequantizeLinear";
}

}  // namespace

Graph foldConstants(Graph graph)
{
    std::vector<Node> kept;
    for (Node& node : graph.nodes) {
        const bool passThrough = node.opType == "Identity" ||
                                 (node.opType == "Dropout" && (node.outputs.size() < 2 || node.outputs[1].empty()) &&
                                  (node.input(2).empty() || graph.isInitializer(node.input(2))));
        if (passThrough && !isGraphOutput(graph, node.outputs[0]) && !node.input(0).empty()) {
            // Dropout's training_mode input, when given as a constant, must be false in inference.
            if (node.opType == "Dropout" && !node.input(2).empty() &&
                graph.initializers.at(node.input(2)).toInt64Vector().at(0) != 0) {
                kept.push_back(std::move(node));
                continue;
            }
            // Only later nodes can read it (topological order), so renaming them is enough.
            renameInputs(graph, node.outputs[0], node.inputs[0]);
            continue;
        }
        bool allConstant = isFoldable(node);
        for (const std::string& in : node.inputs)
            if (!in.empty() && !graph.isInitializer(in))
                allConstant = false;
        bool outputsInternal = true;
        for (const std::string& out : node.outputs)
            if (isGraphOutput(graph, out))
                outputsInternal = false;
        if (allConstant && outputsInternal) {
            std::vector<Tensor> outputs = evaluate(graph, node);
            for (std::size_t o = 0; o < node.outputs.size() && o < outputs.size(); ++o)
                if (!node.outputs[o].empty())
                    graph.initializers[node.outputs[o]] = outputs[o];
            continue;
        }
        kept.push_back(std::move(node));
    }
    graph.nodes = std::move(kept);
    removeDeadCode(graph);
    return graph;
}

Graph foldStaticShapes(Graph graph)
{
    auto staticShape = [&](const std::string& tensor, std::vector<bool>& dynamic) -> std::optional<Shape> {
        auto it = graph.values.find(tensor);
        if (it == graph.values.end() || !it->second.shapeKnown)
            return std::nullopt;
        Shape shape;
        dynamic.clear();
        for (const Dim& d : it->second.shape) {
            shape.push_back(d.isDynamic() ? -1 : d.value);
            dynamic.push_back(d.isDynamic());
        }
        return shape;
    };

    for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
        Node& node = graph.nodes[i];
        if (node.opType != "Shape")
            continue;
        std::vector<bool> dynamic;
        auto shape = staticShape(node.input(0), dynamic);
        if (!shape)
            continue;
        const auto [start, end] = shapeNodeRange(node, static_cast<std::int64_t>(shape->size()));
        Shape dims;
        std::vector<bool> dims_dynamic;
        for (std::int64_t d = start; d < end; ++d) {
            dims.push_back((*shape)[static_cast<std::size_t>(d)]);
            dims_dynamic.push_back(dynamic[static_cast<std::size_t>(d)]);
        }
        const bool anyDynamic = std::find(dims_dynamic.begin(), dims_dynamic.end(), true) != dims_dynamic.end();
        if (!anyDynamic) {
            // Turn the Shape node into a Constant; foldConstants will take it from there.
            node.opType = "Constant";
            node.inputs.clear();
            node.attributes.clear();
            node.attributes["value"] = Tensor::fromValues<std::int64_t>({static_cast<std::int64_t>(dims.size())}, dims);
            continue;
        }
        // Partially dynamic: fold the Gathers that pick only static dimensions.
        for (Node& consumer : graph.nodes) {
            if (consumer.opType != "Gather" || consumer.input(0) != node.outputs[0] ||
                !graph.isInitializer(consumer.input(1)))
                continue;
            const Tensor& indices = graph.initializers.at(consumer.input(1));
            std::vector<std::int64_t> picked;
            bool ok = true;
            for (std::int64_t index : indices.toInt64Vector()) {
                const auto n = static_cast<std::int64_t>(dims.size());
                if (index < 0)
                    index += n;
                if (index < 0 || index >= n || dims_dynamic[static_cast<std::size_t>(index)]) {
                    ok = false;
                    break;
                }
                picked.push_back(dims[static_cast<std::size_t>(index)]);
            }
            if (!ok)
                continue;
            consumer.opType = "Constant";
            consumer.inputs.clear();
            consumer.attributes.clear();
            consumer.attributes["value"] = Tensor::fromValues<std::int64_t>(indices.shape(), picked);
        }
    }
    removeDeadCode(graph);
    return graph;
}

Graph foldBatchNormalization(Graph graph)
{
    std::set<std::size_t> removed;
    for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
        const Node& bn = graph.nodes[i];
        if (bn.opType != "BatchNormalization" || bn.outputs.size() != 1)
            continue;
        bool constants = true;
        for (std::size_t k = 1; k < 5; ++k)
            constants = constants && graph.isInitializer(bn.input(k));
        if (!constants)
            continue;
        // The producer must be a Conv/Gemm read by nothing but this BatchNormalization.
        std::size_t p = 0;
        bool found = false;
        for (std::size_t j = 0; j < i; ++j)
            if (!graph.nodes[j].outputs.empty() && graph.nodes[j].outputs[0] == bn.input(0)) {
                p = j;
                found = true;
            }
        if (!found || graph.consumers(bn.input(0)).size() != 1 || isGraphOutput(graph, bn.input(0)))
            continue;
        Node& layer = graph.nodes[p];
        const bool isConv = layer.opType == "Conv";
        const bool isGemm = layer.opType == "Gemm" && layer.floatAttribute("alpha", 1.f) == 1.f &&
                            layer.floatAttribute("beta", 1.f) == 1.f && layer.intAttribute("transA", 0) == 0;
        if ((!isConv && !isGemm) || !graph.isInitializer(layer.input(1)) ||
            (!layer.input(2).empty() && !graph.isInitializer(layer.input(2))))
            continue;
        const Tensor& weight = graph.initializers.at(layer.input(1));
        if (weight.dtype() != DataType::Float32 || graph.consumers(layer.input(1)).size() != 1)
            continue;

        const auto gamma = graph.initializers.at(bn.input(1)).toFloatVector();
        const auto beta = graph.initializers.at(bn.input(2)).toFloatVector();
        const auto mean = graph.initializers.at(bn.input(3)).toFloatVector();
        const auto var = graph.initializers.at(bn.input(4)).toFloatVector();
        const float epsilon = bn.floatAttribute("epsilon", 1e-5f);
        const bool transB = isGemm && layer.intAttribute("transB", 0) != 0;
        const std::int64_t channels = isConv ? weight.dim(0) : (transB ? weight.dim(0) : weight.dim(1));
        const auto size = static_cast<std::size_t>(channels);
        if (gamma.size() != size || beta.size() != size || mean.size() != size || var.size() != size)
            continue;  // malformed: the BatchNormalization kernel will report it

        std::vector<float> factor(static_cast<std::size_t>(channels));
        for (std::int64_t c = 0; c < channels; ++c)
            factor[c] = gamma[c] / std::sqrt(var[c] + epsilon);

        Tensor newWeight = weight.clone();
        float* w = newWeight.mutableData<float>();
        if (isConv || transB) {
            const std::int64_t perChannel = weight.size() / channels;
            for (std::int64_t c = 0; c < channels; ++c)
                for (std::int64_t k = 0; k < perChannel; ++k)
                    w[c * perChannel + k] *= factor[c];
        } else {  // Gemm weights [K, N]: the channel is the column
            for (std::int64_t r = 0; r < weight.dim(0); ++r)
                for (std::int64_t c = 0; c < channels; ++c)
                    w[r * channels + c] *= factor[c];
        }
        std::vector<float> bias(static_cast<std::size_t>(channels), 0.f);
        if (!layer.input(2).empty()) {
            const auto old = graph.initializers.at(layer.input(2)).toFloatVector();
            if (old.size() == bias.size())
                bias = old;
            else if (old.size() == 1)
                std::fill(bias.begin(), bias.end(), old[0]);
            else
                continue;
        }
        for (std::int64_t c = 0; c < channels; ++c)
            bias[c] = (bias[c] - mean[c]) * factor[c] + beta[c];

        graph.initializers[layer.input(1)] = newWeight;
        std::string biasName = layer.input(2);
        if (biasName.empty() || graph.consumers(biasName).size() != 1)
            biasName = layer.name + ".bias_folded";
        graph.initializers[biasName] = Tensor::fromValues<float>({channels}, bias);
        layer.inputs.resize(3);
        layer.inputs[2] = biasName;
        layer.outputs[0] = bn.outputs[0];
        removed.insert(i);
    }
    std::vector<Node> kept;
    for (std::size_t i = 0; i < graph.nodes.size(); ++i)
        if (!removed.count(i))
            kept.push_back(std::move(graph.nodes[i]));
    graph.nodes = std::move(kept);
    removeDeadCode(graph);
    return graph;
}

void inferShapes(Graph& graph)
{
    // Probe feeds: the declared shape, with the leading symbolic axis set to 1 and then 2.
    for (const ValueInfo& input : graph.inputs) {
        if (!input.shapeKnown)
            return;
        for (std::size_t d = 0; d < input.shape.size(); ++d)
            if (input.shape[d].isDynamic() && d != 0)
                return;
    }
    const bool hasDynamicBatch = [&] {
        for (const ValueInfo& input : graph.inputs)
            if (!input.shape.empty() && input.shape[0].isDynamic())
                return true;
        return false;
    }();

    auto probe = [&](std::int64_t batch) {
        TensorMap feeds;
        for (const ValueInfo& input : graph.inputs) {
            Shape shape;
            for (const Dim& d : input.shape)
                shape.push_back(d.isDynamic() ? batch : d.value);
            Tensor t(input.dtype, shape);
            // Ones rather than zeros: integer graphs may divide by their input.
            dispatchType(input.dtype, [&](auto v) {
                using T = decltype(v);
                T* p = t.mutableData<T>();
                std::fill(p, p + t.size(), static_cast<T>(1));
            });
            feeds[input.name] = t;
        }
        Executor executor(graph);
        RunOptions options;
        options.captureAll = true;
        return executor.run(feeds, options);
    };

    // Batch 2 and 3, not 1: a batch of one is degenerate (a Squeeze without axes would drop it).
    const TensorMap first = probe(hasDynamicBatch ? 2 : 1);
    const TensorMap second = hasDynamicBatch ? probe(3) : first;
    std::string batchSymbol = "N";
    for (const ValueInfo& input : graph.inputs)
        if (!input.shape.empty() && input.shape[0].isDynamic() && !input.shape[0].symbol.empty())
            batchSymbol = input.shape[0].symbol;

    for (const auto& [name, tensor] : first) {
        ValueInfo info;
        info.name = name;
        info.dtype = tensor.dtype();
        const Tensor& other = second.at(name);
        // A rank that depends on the batch size cannot be described: leave the shape unknown.
        info.shapeKnown = other.rank() == tensor.rank();
        for (int d = 0; info.shapeKnown && d < tensor.rank(); ++d) {
            Dim dim;
            if (other.dim(d) != tensor.dim(d))
                dim.symbol = (tensor.dim(d) == 2 && other.dim(d) == 3) ? batchSymbol : "?";
            else
                dim.value = tensor.dim(d);
            info.shape.push_back(dim);
        }
        graph.values[name] = info;
    }
    for (ValueInfo& output : graph.outputs) {
        auto it = graph.values.find(output.name);
        if (it != graph.values.end())
            output = it->second;
    }
}

}  // namespace qe
