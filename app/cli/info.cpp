// quantexplorer-cli info: a model's nodes, operators, shapes and parameter counts.

#include "cli/common.h"

#include "engine/graph_preparation.h"

#include <iomanip>
#include <iostream>
#include <map>

namespace qe::cli {

namespace {

using nlohmann::json;

constexpr const char* kInfoUsage = R"(usage: quantexplorer-cli info --model M.onnx [--json] [--no-fold]

  --model PATH   the ONNX model
  --json         print one JSON object on stdout
  --no-fold      show the graph as exported (BatchNormalization and constants not folded)
)";

json shapeJson(const ValueInfo& info)
{
    json dims = json::array();
    for (const Dim& d : info.shape)
        d.isDynamic() ? dims.push_back(d.symbol.empty() ? "?" : d.symbol) : dims.push_back(d.value);
    return dims;
}

}  // namespace

int runInfo(const std::vector<std::string>& args)
{
    if (printedHelp(args, kInfoUsage))
        return 0;
    const cli::Options options(args, {"--model"}, {"--json", "--no-fold"});
    ImportOptions importOptions;
    importOptions.foldBatchNorm = !options.has("--no-fold");
    importOptions.foldConstants = !options.has("--no-fold");
    const Graph graph = loadOnnx(options.required("--model"), importOptions);

    const std::map<std::string, int> operatorCounts = graph.operatorCounts();

    if (options.has("--json")) {
        json out;
        out["model"] = graph.sourcePath;
        out["opset"] = graph.opsetVersion;
        out["parameter_count"] = graph.parameterCount();
        out["node_count"] = graph.nodes.size();
        out["operators"] = operatorCounts;
        for (const ValueInfo& in : graph.inputs)
            out["inputs"].push_back({{"name", in.name}, {"type", dataTypeName(in.dtype)}, {"shape", shapeJson(in)}});
        for (const ValueInfo& o : graph.outputs)
            out["outputs"].push_back({{"name", o.name}, {"type", dataTypeName(o.dtype)}, {"shape", shapeJson(o)}});
        out["nodes"] = json::array();
        for (const Node& node : graph.nodes) {
            json n{{"name", node.name}, {"op", node.opType}, {"inputs", node.inputs}, {"outputs", node.outputs},
                   {"parameters", graph.parameterCount(node)}};
            json shapes = json::array();
            for (const std::string& o : node.outputs) {
                auto it = graph.values.find(o);
                shapes.push_back(it != graph.values.end() ? shapeJson(it->second) : json(nullptr));
            }
            n["output_shapes"] = shapes;
            out["nodes"].push_back(n);
        }
        std::cout << out.dump(2) << "\n";
        return 0;
    }

    std::cout << "model:      " << graph.sourcePath << "\n";
    std::cout << "opset:      " << graph.opsetVersion << "\n";
    for (const ValueInfo& in : graph.inputs)
        std::cout << "input:      " << in.name << " " << dataTypeName(in.dtype) << symbolicShapeToString(in.shape) << "\n";
    for (const ValueInfo& o : graph.outputs)
        std::cout << "output:     " << o.name << " " << dataTypeName(o.dtype) << symbolicShapeToString(o.shape) << "\n";
    std::cout << "nodes:      " << graph.nodes.size() << "\n";
    std::cout << "parameters: " << graph.parameterCount() << "\n";
    std::cout << "operators: ";
    for (const auto& [op, count] : operatorCounts)
        std::cout << " " << op << " x" << count;
    std::cout << "\n\n";
    const int nodeColumn = columnWidth(graph.nodes, [](const Node& n) { return n.name; }, 32);
    std::cout << std::left << std::setw(nodeColumn) << "node" << std::setw(20) << "operator" << std::setw(24) << "output shape"
              << "parameters\n";
    for (const Node& node : graph.nodes) {
        auto it = graph.values.find(node.outputs.empty() ? "" : node.outputs[0]);
        const std::string shape = it != graph.values.end() ? symbolicShapeToString(it->second.shape) : "?";
        std::cout << std::left << std::setw(nodeColumn) << node.name << std::setw(20) << node.opType << std::setw(24) << shape
                  << graph.parameterCount(node) << "\n";
    }
    return 0;
}

}  // namespace qe::cli
