#include "engine/graph_preparation.h"

#include "common/error.h"
#include "engine/executor.h"
#include "engine/operator.h"
#include "model/graph_transforms.h"
#include "model/shape_inference.h"
#include "model/onnx_import.h"

#include <algorithm>

namespace qe {

namespace {

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
        if (passThrough && !graph.isOutput(node.outputs[0]) && !node.input(0).empty()) {
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
            if (graph.isOutput(out))
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

void probeShapes(Graph& graph)
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

Graph prepareGraph(Graph graph, const ImportOptions& options)
{
    const std::string source = graph.sourcePath;
    try {
        if (options.foldConstants)
            graph = foldConstants(std::move(graph));
        if (options.inferShapes)
            inferShapes(graph);
        if (options.foldConstants && options.inferShapes) {
            graph = foldStaticShapes(std::move(graph));
            graph = foldConstants(std::move(graph));
        }
        if (options.foldBatchNorm)
            graph = foldBatchNormalization(std::move(graph));
        if (options.inferShapes)
            inferShapes(graph);
    } catch (const Error& e) {
        throw Error(source + ": " + e.what());
    }
    return graph;
}

Graph loadOnnx(const std::filesystem::path& path, const ImportOptions& options)
{
    return prepareGraph(readOnnx(path), options);
}

Graph loadOnnxFromMemory(const std::string& bytes, const std::string& sourceName, const std::filesystem::path& externalDataDir,
                         const ImportOptions& options)
{
    return prepareGraph(readOnnxFromMemory(bytes, sourceName, externalDataDir), options);
}

}  // namespace qe
