// quantexplorer-cli: the headless front end. Its subcommands, flags, JSON keys and exit codes
// are a stable interface that other tools script: 0 success, 2 bad input (message on stderr),
// 1 an unexpected internal failure.

#include "cli_options.h"

#include "common/error.h"
#include "common/memory.h"
#include "data/dataset.h"
#include "engine/executor.h"
#include "engine/operator.h"
#include "eval/accuracy.h"
#include "eval/integer_evaluation.h"
#include "eval/quant_evaluator.h"
#include "io/qdq_export.h"
#include "io/report.h"
#include "model/onnx_export.h"
#include "common/atomic_file.h"
#include "quant/config.h"
#include "quant/qdq_import.h"
#include "model/onnx_import.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <set>
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
  info       show a model's nodes, operators, shapes and parameter counts
  eval       run a model on a labelled data set and report top-1 / top-5 accuracy; with
             --config, quantize it as configured and report what each layer lost
  histogram  one weight or activation tensor's histogram with its quantization levels
  export     write the quantized model as QDQ ONNX (for ONNX Runtime, TensorRT) and the
             table of every tensor's scale and zero-point (JSON or CSV)
  report     write a Markdown report with PNG charts: model, data, configuration, accuracy,
             size and every layer's metrics

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

quantization (see README, "Quantization"):
  --config C.json       quantize as the configuration says (fake-quantization simulation); the
                        JSON then adds float_top1, agreement, size_bytes and a "layers" array.
                        "--config model" uses a QDQ model's own scales and zero-points
  --save-config PATH    write the configuration that was used (e.g. the one read from a QDQ model)
  --engine E            simulate (default): fake quantization in the float engine; int8: also run the
                        integer-only engine (accuracy reported is then the engine's; --json adds
                        agreement_with_simulation, output_within_1_lsb and ms_per_image)
  --calib-data PATH     calibration images (default: the training split beside --data, e.g.
                        train-images-idx3-ubyte.gz beside t10k-images-idx3-ubyte.gz)
  --calib-count N       calibration images to use (default: the configuration's "images")
)";

constexpr const char* kHistogramUsage = R"(usage: quantexplorer-cli histogram --model M.onnx --config C.json --tensor NAME [options]

  --tensor NAME         a layer name (its output activation), a weight initializer name, or any
                        other float tensor of the graph (shown without levels)
  --data PATH           images for activation histograms (not needed for weights)
  --calib-data PATH     calibration images (default: the training split beside --data)
  --calib-count N       calibration images (default: the configuration's "images")
  --limit N             images to histogram activations over (default 1000)
  --bins N              histogram bins (default 128)
  --json                one JSON object: counts, range, levels, clip range, calibration ranges
  (and the preprocessing flags of 'eval')
)";

constexpr const char* kExportUsage = R"(usage: quantexplorer-cli export --model M.onnx --config C.json --out Q.onnx [options]

  --model PATH          the float ONNX model (or a QDQ model with --config model)
  --config C.json       the quantization to write ("model": a QDQ model's own)
  --out Q.onnx          the QDQ model: QuantizeLinear/DequantizeLinear around activations, int8
                        weights with per-channel scales, int32 biases (opset >= 13); the model's
                        preprocessing is written beside it as Q.preprocess.json
  --encodings E         also write every quantized tensor's scale and zero-point: E.json or E.csv
  --calib-data PATH     calibration images for static activation ranges (default: the training
                        split beside --data; needed unless the configuration is the model's own)
  --data PATH           images (only used to find the calibration split beside them)
  --calib-count N       calibration images (default: the configuration's "images")
  --json                one JSON object on stdout: files written, tensors, warnings
  (and the preprocessing flags of 'eval')
Choices ONNX's 8-bit QDQ cannot express (k-means, log2, fp8/fp16/bf16, per-group, dynamic ranges)
are written in float and listed as warnings on stderr; nothing is changed silently.
)";

constexpr const char* kReportUsage = R"(usage: quantexplorer-cli report --model M.onnx --config C.json --data PATH --out DIR [options]

  --out DIR             writes DIR/report.md, DIR/layer_sqnr.png, DIR/weight_histograms.png and
                        DIR/confusion_matrix.png
  --engine int8         also run the integer-only engine and report it beside the simulation
  --limit N             evaluate the first N images (default: all)
  --calib-data PATH, --calib-count N, --labels PATH, --label-column NAME: as for 'eval'
  --json                one JSON object on stdout: the files written
  (and the preprocessing flags of 'eval')
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

// JSON has no infinity: an exact (error-free) SQNR is written as null.
json finite(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json errorJson(const ErrorStats& e)
{
    return {{"sqnr_db", finite(e.sqnrDb)}, {"mse", e.mse}, {"cosine", e.cosine}, {"max_abs_error", e.maxAbsError}};
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
    Preprocess p = Preprocess::forModel(modelPath, geometry.channels);
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

const std::set<std::string> kPreprocessFlags = {"--color", "--scale", "--mean", "--std", "--resize-shorter", "--crop-fraction"};

std::set<std::string> withPreprocessFlags(std::set<std::string> flags)
{
    flags.insert(kPreprocessFlags.begin(), kPreprocessFlags.end());
    return flags;
}

// Progress of long runs on stderr: a bar with the time left when stderr is a terminal, nothing
// otherwise (logs of scripts stay clean; --json output is on stdout either way).
std::function<void(const std::string&, std::size_t, std::size_t)> stderrProgress()
{
    if (!isatty(STDERR_FILENO))
        return [](const std::string&, std::size_t, std::size_t) {};
    struct State {
        std::string stage;
        std::chrono::steady_clock::time_point start;
    };
    auto state = std::make_shared<State>();
    return [state](const std::string& stage, std::size_t done, std::size_t total) {
        const auto now = std::chrono::steady_clock::now();
        if (stage != state->stage) {
            state->stage = stage;
            state->start = now;
        }
        const double fraction = total ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
        const double elapsed = std::chrono::duration<double>(now - state->start).count();
        const int width = 30, filled = static_cast<int>(fraction * width);
        std::string bar = "[" + std::string(static_cast<std::size_t>(filled), '#') + std::string(static_cast<std::size_t>(width - filled), '.') + "]";
        std::cerr << "\r" << stage << " " << bar << " " << static_cast<int>(100 * fraction) << "% " << done << "/" << total;
        if (done > 0 && done < total)
            std::cerr << " ETA " << static_cast<int>(std::ceil(elapsed / fraction - elapsed)) << " s   ";
        else
            std::cerr << "          ";
        std::cerr << (done >= total ? "\n" : "") << std::flush;
    };
}

// Calibrates `evaluator` on --calib-data (or the training split beside --data).
void calibrateFromOptions(QuantEvaluator& evaluator, const QuantConfig& config, const cli::Options& options,
                          const std::optional<std::filesystem::path>& dataPath, const std::string& labelColumn)
{
    std::optional<std::filesystem::path> calibPath;
    if (auto c = options.value("--calib-data"))
        calibPath = *c;
    else if (dataPath)
        calibPath = trainingSplitBeside(*dataPath);
    if (!calibPath) {
        if (!dataPath)
            throw Error("calibration needs images: give --calib-data (or --data)");
        std::cerr << "warning: no separate calibration set found beside " << dataPath->string()
                  << "; calibrating on the evaluation images (give --calib-data to avoid optimistic results)\n";
        calibPath = dataPath;
    }
    const auto calibrationSet = openDataset(*calibPath, std::nullopt, labelColumn);
    const std::size_t count = options.integer("--calib-count").value_or(config.calibrationImages);
    evaluator.calibrate(*calibrationSet, count, {stderrProgress(), nullptr});
}

// What eval and histogram read from the command line: the model, its preprocessing and the images.
struct ModelAndData {
    std::filesystem::path modelPath;
    std::shared_ptr<const Graph> graph;
    Preprocess preprocess;
    std::optional<std::filesystem::path> dataPath;
    std::shared_ptr<const Dataset> dataset;  // null when --data is optional and absent
    std::string labelColumn;
};

ModelAndData loadModelAndData(const cli::Options& options, bool dataRequired)
{
    ModelAndData in;
    in.modelPath = options.required("--model");
    in.graph = std::make_shared<const Graph>(loadOnnx(in.modelPath));
    in.preprocess = preprocessFor(in.modelPath, imageInputGeometry(*in.graph), options);
    in.labelColumn = options.value("--label-column").value_or("");
    if (dataRequired)
        in.dataPath = options.required("--data");
    else if (auto d = options.value("--data"))
        in.dataPath = *d;
    if (in.dataPath) {
        std::optional<std::filesystem::path> labels;
        if (auto l = options.value("--labels"))
            labels = *l;
        in.dataset = openDataset(*in.dataPath, labels, in.labelColumn);
    }
    return in;
}

// --engine simulate (the default) or int8: whether the integer engine runs too.
bool wantsIntegerEngine(const cli::Options& options)
{
    const std::string engine = options.value("--engine").value_or("simulate");
    if (engine != "simulate" && engine != "int8")
        throw Error("--engine: expected 'simulate' or 'int8', got '" + engine + "'");
    return engine == "int8";
}

// The configuration (--config C.json, or "model" for a QDQ model's own parameters) and an
// evaluator calibrated for it: what eval, export and report share.
struct QuantSetup {
    std::unique_ptr<QuantEvaluator> evaluator;
    QuantConfig config;
};

QuantSetup openQuantization(const cli::Options& options, const ModelAndData& in, std::size_t evaluationImages)
{
    QuantSetup q;
    const std::string source = options.required("--config");
    // "--config model": the QDQ model's own quantization, on the float graph it wraps.
    std::optional<ImportedQuantization> imported;
    if (source == "model") {
        imported = importQdq(*in.graph);
        if (!imported)
            throw Error(in.modelPath.string() + ": --config model needs a quantized (QDQ) model; this one has no "
                                                "QuantizeLinear/DequantizeLinear nodes");
    }
    q.evaluator = std::make_unique<QuantEvaluator>(imported ? std::make_shared<const Graph>(imported->floatGraph) : in.graph,
                                                   in.dataset, in.preprocess, evaluationImages);
    if (imported) {
        q.config = imported->config;
        q.evaluator->setFixedParams(imported->params);
    } else {
        q.config = QuantConfig::load(source, layerNames(q.evaluator->layers()));
    }
    if (q.evaluator->needsCalibration(q.config))
        calibrateFromOptions(*q.evaluator, q.config, options, in.dataPath, in.labelColumn);
    return q;
}

int runEval(const std::vector<std::string>& args)
{
    if (wantsHelp(args)) {
        std::cout << kEvalUsage;
        return 0;
    }
    const cli::Options options(args,
                               withPreprocessFlags({"--model", "--data", "--labels", "--label-column", "--limit", "--batch",
                                                    "--config", "--calib-data", "--calib-count", "--save-config", "--engine"}),
                               {"--json"});
    const bool integerEngine = wantsIntegerEngine(options);
    if (integerEngine && !options.value("--config"))
        throw Error("--engine int8 needs --config (the quantization to run in integers)");
    const ModelAndData in = loadModelAndData(options, true);
    const auto& [modelPath, graph, preprocess, dataPathOptional, dataset, labelColumn] = in;
    const std::filesystem::path dataPath = *dataPathOptional;
    if (!dataset->hasLabels())
        throw Error(dataset->description() + ": has no labels; give them with --labels");
    const std::size_t limit = options.integer("--limit").value_or(0);

    if (!options.value("--config")) {
        for (const char* flag : {"--calib-data", "--calib-count", "--save-config"})
            if (options.has(flag))
                throw Error(std::string("option ") + flag + " needs --config");
        const Executor executor(*graph);
        EvaluationOptions evalOptions;
        evalOptions.limit = limit;
        if (auto b = options.integer("--batch"))
            evalOptions.batchSize = static_cast<std::size_t>(std::max<long long>(1, *b));
        auto progress = stderrProgress();
        evalOptions.progress = [&](std::size_t done, std::size_t total) { progress("float model", done, total); };
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

    QuantSetup q = openQuantization(options, in, limit ? limit : dataset->size());
    QuantEvaluator& evaluator = *q.evaluator;
    const QuantConfig& config = q.config;
    if (auto save = options.value("--save-config"))
        config.save(*save);
    ModelMetrics m = evaluator.evaluate(config, {stderrProgress(), nullptr});
    std::optional<IntegerEvaluation> integer;
    if (integerEngine) {
        integer = evaluateInteger(evaluator.plan(config), *dataset, preprocess, limit, {stderrProgress(), nullptr});
        // The accuracy reported is the integer engine's; the simulation's stays beside it.
        std::size_t agree = 0;
        for (std::size_t i = 0; i < integer->predictions.size() && i < m.floatPredictions.size(); ++i)
            agree += integer->predictions[i] == m.floatPredictions[i];
        m.top1 = integer->top1;
        m.top5 = integer->top5;
        m.agreement = integer->images ? double(agree) / double(integer->images) : 0;
    }

    if (options.has("--json")) {
        json layers = json::array();
        for (const LayerMetrics& l : m.layers) {
            json entry{{"name", l.name}, {"op", l.opType}, {"float", l.keepFloat},
                       {"accumulated", errorJson(l.accumulated)}, {"isolated", errorJson(l.isolated)},
                       {"clipped_fraction", l.clippedFraction}, {"rmse_over_scale", finite(l.rmseOverScale)},
                       {"weight_count", l.weightCount}, {"weight_bytes", l.weightBytes}};
            entry["weights"] = l.weights ? errorJson(*l.weights) : json(nullptr);
            if (integer)
                for (const LayerExecution& e : integer->layers)
                    if (e.layer == l.name) {
                        entry["integer"] = e.integer;
                        const bool hasGemm = e.opType == "Conv" || e.opType == "Gemm" || e.opType == "MatMul";
                        entry["kernel"] = !e.integer ? "float" : !hasGemm ? "integer" : e.kernel;
                        if (!e.integer)
                            entry["float_reason"] = e.reason;
                        const std::size_t index = static_cast<std::size_t>(&e - integer->layers.data());
                        entry["codes_equal_to_simulation"] = finite(integer->layerExactFraction[index]);
                        entry["codes_within_1_lsb_of_simulation"] = finite(integer->layerWithinOneLsbFraction[index]);
                        entry["alone_codes_equal_to_simulation"] = finite(integer->isolatedExactFraction[index]);
                        entry["alone_codes_within_1_lsb_of_simulation"] = finite(integer->isolatedWithinOneLsbFraction[index]);
                    }
            layers.push_back(entry);
        }
        json out{{"top1", m.top1}, {"top5", m.top5}, {"count", m.images}, {"float_top1", m.floatTop1},
                 {"float_top5", m.floatTop5}, {"agreement", m.agreement}, {"size_bytes", m.sizeBytes},
                 {"float_size_bytes", m.floatSizeBytes}, {"bits_per_weight", m.bitsPerWeight},
                 {"output_sqnr_db", finite(m.outputSqnrDb)}, {"model", modelPath.string()},
                 {"data", dataset->description()}, {"config", *options.value("--config")}, {"engine", integerEngine ? "int8" : "simulate"},
                 {"layers", layers}};
        if (integer) {
            out["simulated_top1"] = integer->simulatedTop1;
            out["agreement_with_simulation"] = integer->agreementWithSimulation;
            out["agreement_with_simulation_up_to_ties"] = integer->agreementUpToTies;
            out["output_within_1_lsb"] = integer->outputWithinOneLsb;
            out["max_output_lsb_difference"] = integer->maxOutputLsbDifference;
            out["ms_per_image"] = integer->msPerImage;
            out["integer_layers"] = integer->integerLayers;
        }
        std::cout << out.dump() << "\n";
        return 0;
    }
    std::cout << std::fixed << std::setprecision(2);
    std::cout << "top-1: " << 100 * m.top1 << "% (float " << 100 * m.floatTop1 << "%)\n"
              << "top-5: " << 100 * m.top5 << "% (float " << 100 * m.floatTop5 << "%)\n"
              << "agreement with float: " << 100 * m.agreement << "%\n"
              << "output SQNR: " << m.outputSqnrDb << " dB\n"
              << "size: " << m.sizeBytes / 1024 << " KiB (float " << m.floatSizeBytes / 1024 << " KiB), "
              << m.bitsPerWeight << " bits per weight\n"
              << "images: " << m.images << "\n";
    if (integer) {
        std::cout << "engine: int8, " << integer->integerLayers << " of " << integer->layers.size()
                  << " layers in integer arithmetic, " << std::setprecision(3) << integer->msPerImage << " ms per image\n"
                  << std::setprecision(2) << "simulation top-1: " << 100 * integer->simulatedTop1
                  << "%, agreement with the simulation: " << 100 * integer->agreementWithSimulation << "% ("
                  << 100 * integer->agreementUpToTies << "% up to tied scores), output within 1 LSB: "
                  << 100 * integer->outputWithinOneLsb << "%\n";
        for (std::size_t i = 0; i < integer->layers.size(); ++i) {
            const LayerExecution& e = integer->layers[i];
            std::cout << "  " << std::left << std::setw(28) << e.layer << std::right;
            if (e.integer)
                std::cout << "integer; codes equal to the simulation's: " << std::setw(6) << 100 * integer->layerExactFraction[i]
                          << "% (layer alone: " << std::setw(6) << 100 * integer->isolatedExactFraction[i] << "%), within 1 LSB: "
                          << std::setw(6) << 100 * integer->layerWithinOneLsbFraction[i] << "% (alone: " << std::setw(6)
                          << 100 * integer->isolatedWithinOneLsbFraction[i] << "%)\n";
            else
                std::cout << "float (" << e.reason << ")\n";
        }
    }
    std::cout << "\n";
    std::cout << std::left << std::setw(28) << "layer" << std::setw(12) << "op" << std::right << std::setw(12)
              << "SQNR dB" << std::setw(12) << "isolated" << std::setw(12) << "weights" << std::setw(10) << "clipped"
              << std::setw(10) << "cosine" << "\n";
    for (const LayerMetrics& l : m.layers) {
        std::cout << std::left << std::setw(28) << l.name << std::setw(12) << l.opType << std::right << std::setw(12)
                  << l.accumulated.sqnrDb << std::setw(12) << l.isolated.sqnrDb << std::setw(12)
                  << (l.weights ? std::to_string(l.weights->sqnrDb).substr(0, 6) : std::string("-")) << std::setw(9)
                  << 100 * l.clippedFraction << "%" << std::setw(10) << std::setprecision(5) << l.accumulated.cosine
                  << std::setprecision(2) << "\n";
    }
    return 0;
}

int runHistogram(const std::vector<std::string>& args)
{
    if (wantsHelp(args)) {
        std::cout << kHistogramUsage;
        return 0;
    }
    const cli::Options options(args,
                               withPreprocessFlags({"--model", "--config", "--tensor", "--data", "--labels", "--label-column",
                                                    "--calib-data", "--calib-count", "--limit", "--bins"}),
                               {"--json"});
    const ModelAndData in = loadModelAndData(options, false);
    const auto& [modelPath, graph, preprocess, dataPath, dataset, labelColumn] = in;
    QuantEvaluator evaluator(graph, dataset, preprocess, options.integer("--limit").value_or(1000));
    const QuantConfig config = QuantConfig::load(options.required("--config"), layerNames(evaluator.layers()));
    const std::string tensor = options.required("--tensor");
    const bool isWeight = graph->isInitializer(tensor);
    if (!isWeight) {
        if (!dataset)
            throw Error("the histogram of activation '" + tensor + "' needs images: give --data");
        calibrateFromOptions(evaluator, config, options, dataPath, labelColumn);
    }
    const TensorHistogram h = evaluator.histogram(config, tensor, static_cast<int>(options.integer("--bins").value_or(128)));

    json out{{"tensor", h.tensor}, {"layer", h.layer}, {"kind", h.isWeight ? "weight" : "activation"},
             {"min", h.min}, {"max", h.max},
             {"low", h.histogram.low}, {"high", h.histogram.high}, {"counts", h.histogram.counts},
             {"levels", h.levels}, {"clipped_fraction", h.clippedFraction}};
    out["clip_range"] = h.clipRange ? json{h.clipRange->first, h.clipRange->second} : json(nullptr);
    json ranges = json::object();
    for (const auto& [method, range] : h.calibrationRanges)
        ranges[method] = {range.first, range.second};
    out["calibration_ranges"] = ranges;
    if (options.has("--json")) {
        std::cout << out.dump() << "\n";
        return 0;
    }
    if (h.layer.empty())
        std::cout << h.tensor << " (not a quantization point; it keeps its producer's levels): range [";
    else
        std::cout << h.tensor << " (" << (h.isWeight ? "weights" : "activations") << " of layer " << h.layer << "): range [";
    std::cout << h.min << ", " << h.max << "], " << h.levels.size() << " levels";
    if (h.clipRange)
        std::cout << ", clipped to [" << h.clipRange->first << ", " << h.clipRange->second << "] ("
                  << 100 * h.clippedFraction << "% clipped)";
    std::cout << "\n";
    for (const auto& [method, range] : h.calibrationRanges)
        std::cout << "  " << method << ": [" << range.first << ", " << range.second << "]\n";
    return 0;
}

}  // namespace

int runExport(const std::vector<std::string>& args)
{
    if (wantsHelp(args)) {
        std::cout << kExportUsage;
        return 0;
    }
    const cli::Options options(args,
                               withPreprocessFlags({"--model", "--config", "--out", "--encodings", "--calib-data", "--calib-count",
                                                    "--data", "--labels", "--label-column"}),
                               {"--json"});
    const std::filesystem::path out = options.required("--out");
    const ModelAndData in = loadModelAndData(options, false);
    QuantSetup q = openQuantization(options, in, 0);
    const QuantPlan plan = q.evaluator->plan(q.config);
    const QdqModel model = exportQdq(plan);
    saveOnnx(model.graph, out, {.minimumOpset = 13});
    // The exported model takes the same pixels: its preprocessing sidecar goes beside it.
    const std::filesystem::path sidecar = Preprocess::sidecarPath(out);
    in.preprocess.save(sidecar);
    std::optional<std::filesystem::path> encodings;
    if (auto e = options.value("--encodings")) {
        encodings = *e;
        const std::string ext = encodings->extension().string();
        if (ext == ".csv")
            writeFileAtomically(*encodings, encodingsCsv(model.encodings));
        else if (ext == ".json")
            writeFileAtomically(*encodings, encodingsJson(model.encodings));
        else
            throw Error("--encodings " + encodings->string() + ": expected a .json or .csv file name");
    }
    for (const std::string& w : model.warnings)
        std::cerr << "warning: " << w << "\n";
    std::size_t activations = 0, weights = 0;
    for (const TensorEncoding& e : model.encodings)
        (e.kind == "activation" ? activations : weights) += 1;
    if (options.has("--json")) {
        json j{{"out", out.string()}, {"preprocess", sidecar.string()}, {"opset", std::max<std::int64_t>(13, model.graph.opsetVersion)},
               {"quantized_activations", activations}, {"quantized_weights_and_biases", weights}, {"warnings", model.warnings}};
        j["encodings"] = encodings ? json(encodings->string()) : json(nullptr);
        std::cout << j.dump() << "\n";
    } else {
        std::cout << "wrote " << out.string() << " (and its preprocessing, " << sidecar.filename().string() << "): " << activations << " activations and " << weights
                  << " weights/biases quantized" << (model.warnings.empty() ? "" : ", " + std::to_string(model.warnings.size()) + " warnings")
                  << "\n";
        if (encodings)
            std::cout << "wrote " << encodings->string() << "\n";
    }
    return 0;
}

int runReport(const std::vector<std::string>& args)
{
    if (wantsHelp(args)) {
        std::cout << kReportUsage;
        return 0;
    }
    const cli::Options options(args,
                               withPreprocessFlags({"--model", "--config", "--data", "--out", "--labels", "--label-column", "--limit",
                                                    "--calib-data", "--calib-count", "--engine"}),
                               {"--json"});
    const std::filesystem::path dir = options.required("--out");
    const bool integerEngine = wantsIntegerEngine(options);
    const ModelAndData in = loadModelAndData(options, true);
    const std::size_t limit = options.integer("--limit").value_or(0);
    QuantSetup q = openQuantization(options, in, limit ? limit : in.dataset->size());
    const ModelMetrics m = q.evaluator->evaluate(q.config, {stderrProgress(), nullptr});
    const QuantPlan plan = q.evaluator->plan(q.config);
    std::optional<IntegerEvaluation> integer;
    if (integerEngine)
        integer = evaluateInteger(plan, *in.dataset, in.preprocess, limit, {stderrProgress(), nullptr});
    ReportInput r = reportInputFor(*q.evaluator, q.config, plan, m);
    r.modelPath = in.modelPath.string();
    r.dataDescription = in.dataset->description();
    r.integer = integer ? &*integer : nullptr;
    const auto files = writeReport(dir, r);
    if (options.has("--json")) {
        json list = json::array();
        for (const auto& f : files)
            list.push_back(f.string());
        std::cout << json{{"files", list}}.dump() << "\n";
    } else {
        for (const auto& f : files)
            std::cout << "wrote " << f.string() << "\n";
    }
    return 0;
}

int main(int argc, char** argv)
{
    qe::keepFreedMemoryForReuse();
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
        if (command == "histogram")
            return runHistogram(args);
        if (command == "export")
            return runExport(args);
        if (command == "report")
            return runReport(args);
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
