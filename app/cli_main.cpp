// quantexplorer-cli: the headless front end. Its subcommands, flags, JSON keys and exit codes
// are a stable interface that other tools script: 0 success, 2 bad input (message on stderr),
// 1 an unexpected internal failure.

#include "cli_options.h"

#include "common/error.h"
#include "data/dataset.h"
#include "engine/executor.h"
#include "engine/operator.h"
#include "eval/accuracy.h"
#include "model/onnx_import.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iomanip>
#include <iostream>
#include <map>
#include <unistd.h>

namespace {

using namespace qe;
using nlohmann::json;

constexpr const char* kUsage = R"(quantexplorer-cli - explore neural-network quantization from the command line

usage: quantexplorer-cli <command> [options]

commands:
  info   show a model's nodes, operators, shapes and parameter counts
  eval   run a model on a labelled data set and report top-1 / top-5 accuracy

Run 'quantexplorer-cli <command> --help' for the options of a command.
Exit codes: 0 success, 2 bad input (the error is on stderr), 1 internal failure.
)";

constexpr const char* kInfoUsage = R"(usage: quantexplorer-cli info --model M.onnx [--json] [--no-fold]

  --model PATH   the ONNX model
  --json         print one JSON object on stdout
  --no-fold      show the graph as exported (BatchNormalization and constants not folded)
)";

constexpr const char* kEvalUsage = R"(usage: quantexplorer-cli eval --model M.onnx --data PATH [options]

  --model PATH          the ONNX model (a <model>.preprocess.json beside it is used when present)
  --data PATH           idx image file (.gz or plain), CIFAR-10 .bin batch, image folder or image file
  --labels PATH         labels (idx1 file or CSV) when they are not found beside the data
  --label-column NAME   the CSV column holding the labels (default "label", else the first "label*")
  --limit N             evaluate only the first N images
  --batch N             images per inference batch (default 32)
  --color rgb|bgr|gray  channel order the model expects
  --scale S             multiply pixels (0..255) by S before mean/std
  --mean a[,b,c]        per-channel mean subtracted after scaling
  --std a[,b,c]         per-channel standard deviation divided after the mean
  --resize-shorter N    resize the shorter image side to N before cropping
  --crop-fraction F     central crop keeping fraction F of each side (TF-slim style), then resize
  --json                print one JSON object on stdout: {"top1", "top5", "count", ...}
)";

bool wantsHelp(const std::vector<std::string>& args)
{
    for (const std::string& a : args)
        if (a == "--help" || a == "-h")
            return true;
    return false;
}

json shapeJson(const ValueInfo& info)
{
    json dims = json::array();
    for (const Dim& d : info.shape)
        d.isDynamic() ? dims.push_back(d.symbol.empty() ? "?" : d.symbol) : dims.push_back(d.value);
    return dims;
}

int runInfo(const std::vector<std::string>& args)
{
    if (wantsHelp(args)) {
        std::cout << kInfoUsage;
        return 0;
    }
    const cli::Options options(args, {"--model"}, {"--json", "--no-fold"});
    ImportOptions importOptions;
    importOptions.foldBatchNorm = !options.has("--no-fold");
    importOptions.foldConstants = !options.has("--no-fold");
    const Graph graph = loadOnnx(options.required("--model"), importOptions);

    std::map<std::string, int> operatorCounts;
    for (const Node& node : graph.nodes)
        ++operatorCounts[node.opType];

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
    std::cout << std::left << std::setw(32) << "node" << std::setw(20) << "operator" << std::setw(24) << "output shape"
              << "parameters\n";
    for (const Node& node : graph.nodes) {
        auto it = graph.values.find(node.outputs.empty() ? "" : node.outputs[0]);
        const std::string shape = it != graph.values.end() ? symbolicShapeToString(it->second.shape) : "?";
        std::cout << std::left << std::setw(32) << node.name << std::setw(20) << node.opType << std::setw(24) << shape
                  << graph.parameterCount(node) << "\n";
    }
    return 0;
}

Preprocess preprocessFor(const std::filesystem::path& modelPath, const ImageInputGeometry& geometry, const cli::Options& options)
{
    Preprocess p;
    if (auto sidecar = Preprocess::loadSidecar(modelPath)) {
        p = *sidecar;
    } else if (geometry.channels == 1) {
        p.color = ColorOrder::Gray;
    }
    if (auto color = options.value("--color")) {
        if (*color == "rgb")
            p.color = ColorOrder::Rgb;
        else if (*color == "bgr")
            p.color = ColorOrder::Bgr;
        else if (*color == "gray")
            p.color = ColorOrder::Gray;
        else
            throw Error("option --color expects rgb, bgr or gray, got '" + *color + "'");
    }
    if (auto s = options.number("--scale"))
        p.scale = *s;
    if (auto m = options.floatList("--mean"))
        p.mean = *m;
    if (auto s = options.floatList("--std")) {
        for (float v : *s)
            if (v == 0.f)
                throw Error("option --std: a standard deviation of 0 is not allowed");
        p.stdDev = *s;
    }
    if (auto r = options.integer("--resize-shorter"))
        p.resizeShorter = static_cast<int>(*r);
    if (auto f = options.number("--crop-fraction")) {
        if (*f <= 0 || *f > 1)
            throw Error("option --crop-fraction expects a value in (0, 1], got " + std::to_string(*f));
        p.cropFraction = *f;
    }
    return p;
}

int runEval(const std::vector<std::string>& args)
{
    if (wantsHelp(args)) {
        std::cout << kEvalUsage;
        return 0;
    }
    const cli::Options options(args,
                               {"--model", "--data", "--labels", "--label-column", "--limit", "--batch", "--color", "--scale", "--mean",
                                "--std", "--resize-shorter", "--crop-fraction"},
                               {"--json"});
    const std::filesystem::path modelPath = options.required("--model");
    const Graph graph = loadOnnx(modelPath);
    const ImageInputGeometry geometry = imageInputGeometry(graph);
    const Preprocess preprocess = preprocessFor(modelPath, geometry, options);
    std::optional<std::filesystem::path> labels;
    if (auto l = options.value("--labels"))
        labels = *l;
    const auto dataset = openDataset(options.required("--data"), labels, options.value("--label-column").value_or(""));
    if (!dataset->hasLabels())
        throw Error(dataset->description() + ": has no labels; give them with --labels");

    const Executor executor(graph);
    EvaluationOptions evalOptions;
    if (auto n = options.integer("--limit"))
        evalOptions.limit = static_cast<std::size_t>(*n);
    if (auto b = options.integer("--batch"))
        evalOptions.batchSize = static_cast<std::size_t>(std::max<long long>(1, *b));
    const bool terminal = isatty(STDERR_FILENO);
    evalOptions.progress = [&](std::size_t done, std::size_t total) {
        if (terminal)
            std::cerr << "\r" << done << "/" << total << " images" << (done == total ? "\n" : "") << std::flush;
    };
    const ClassificationResult result = evaluateClassifier(executor, *dataset, preprocess, evalOptions);

    if (options.has("--json")) {
        json out{{"top1", result.top1()}, {"top5", result.top5()}, {"count", result.count},
                 {"model", modelPath.string()}, {"data", dataset->description()}};
        std::cout << out.dump() << "\n";
    } else {
        std::cout << std::fixed << std::setprecision(2) << "top-1: " << 100.0 * result.top1() << "%\n"
                  << "top-5: " << 100.0 * result.top5() << "%\n"
                  << "images: " << result.count << "\n";
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv)
{
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
        std::cout << kUsage;
        return args.empty() ? 2 : 0;
    }
    const std::string command = args[0];
    args.erase(args.begin());
    try {
        if (command == "info")
            return runInfo(args);
        if (command == "eval")
            return runEval(args);
        std::cerr << "error: unknown command '" << command << "'\n\n" << kUsage;
        return 2;
    } catch (const Error& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "internal error: " << e.what() << "\n";
        return 1;
    }
}
