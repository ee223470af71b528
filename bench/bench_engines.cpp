// Our fp32 engine and our int8 engine on the models of ../shared/bench (LeNet, MobileNetV1 and
// ResNet-18 size, random weights), timed the way the peers there are timed, and written as the
// same JSON rows, so that bench/run_peers.sh puts ONNX Runtime, OpenCV and us in one table.
//
//   build/bench/bench_engines --models-dir DIR [--models lenet,mobilenet,resnet18]
//       [--threads 1,2] [--batches 1,32] [--precisions fp32,int8] [--runs 20] [--warmup 3] [--min-time 1] [--json OUT.jsonl]
//       [--profile 1]   (after each int8 row: where the time goes, step by step and by kind of step)
//       [--int8-from-qdq KEY]  (the int8 engine runs the QDQ model manifest.json names under
//                               files.KEY, with its own scales, instead of quantizing the fp32 one)
//
// int8 here is W8A8 as ONNX Runtime's QDQ models of the same folder have it: per-channel
// symmetric int8 weights, per-tensor affine uint8 activations, min-max ranges from 8 random
// inputs. Layers that do not run in integers are listed with the engine's reason; the check line
// says how far int8 is from fp32. With --int8-from-qdq both engines run the very same QDQ file
// (bench/vit_peers.sh: the demo vision transformer as the project exports it).

#include "common/error.h"
#include "common/memory.h"
#include "engine/executor.h"
#include "engine/graph_preparation.h"
#include "engine/int8/integer_engine.h"
#include "quant/layers.h"
#include "quant/qdq_import.h"
#include "quant/simulator.h"

#include <nlohmann/json.hpp>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using namespace qe;
using nlohmann::json;

namespace {

std::vector<std::string> split(const std::string& s)
{
    std::vector<std::string> out;
    std::stringstream in(s);
    for (std::string item; std::getline(in, item, ',');)
        if (!item.empty())
            out.push_back(item);
    return out;
}

Tensor randomInput(const Graph& graph, std::int64_t batch, unsigned seed)
{
    const ValueInfo& input = graph.inputs.at(0);
    Shape shape{batch};
    for (std::size_t d = 1; d < input.shape.size(); ++d)
        shape.push_back(input.shape[d].value);
    Tensor t(DataType::Float32, shape);
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.f, 1.f);
    for (std::int64_t i = 0; i < t.size(); ++i)
        t.mutableData<float>()[i] = normal(rng);
    return t;
}

struct Timing {
    double median = 0, p10 = 0, p90 = 0;
    int runs = 0;
};

template <class F> Timing timeIt(F&& f, int warmup, int minRuns, double minSeconds)
{
    for (int i = 0; i < warmup; ++i)
        f();
    std::vector<double> ms;
    const auto start = std::chrono::steady_clock::now();
    while (static_cast<int>(ms.size()) < minRuns ||
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < minSeconds) {
        const auto t0 = std::chrono::steady_clock::now();
        f();
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        if (ms.size() >= 1000)
            break;
    }
    std::sort(ms.begin(), ms.end());
    return {ms[ms.size() / 2], ms[ms.size() / 10], ms[ms.size() * 9 / 10], static_cast<int>(ms.size())};
}

// The median time of every step over `runs` runs, the slowest steps first, then the sums by kind.
void printProfile(const IntegerEngine& engine, const std::string& inputName, const Tensor& x, int runs)
{
    std::vector<std::vector<double>> times;
    std::vector<StepTime> steps;
    for (int r = 0; r < runs; ++r) {
        const IntegerRunResult result = engine.run({{inputName, x}}, {}, true);
        steps = result.profile;
        times.resize(steps.size());
        for (std::size_t i = 0; i < steps.size(); ++i)
            times[i].push_back(steps[i].milliseconds);
    }
    std::map<std::string, double> byKind;
    double total = 0;
    for (std::size_t i = 0; i < steps.size(); ++i) {
        std::sort(times[i].begin(), times[i].end());
        steps[i].milliseconds = times[i][times[i].size() / 2];
        byKind[steps[i].kind] += steps[i].milliseconds;
        total += steps[i].milliseconds;
    }
    std::vector<std::size_t> order(steps.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return steps[a].milliseconds > steps[b].milliseconds; });
    std::printf("    slowest steps (median ms):\n");
    for (std::size_t i = 0; i < std::min<std::size_t>(40, order.size()); ++i)
        std::printf("      %8.3f  %-18s %s\n", steps[order[i]].milliseconds, steps[order[i]].kind.c_str(), steps[order[i]].output.c_str());
    std::printf("    by kind (sum of medians %.3f ms):\n", total);
    for (const auto& [kind, ms] : byKind)
        std::printf("      %8.3f  %s\n", ms, kind.c_str());
}

// The manifest's batch-2 check input (raw float32), else random values.
Tensor checkInput(const Graph& graph, const std::string& modelsDir, const json& entry)
{
    Tensor x = randomInput(graph, 2, 7);
    if (!entry.contains("check"))
        return x;
    const std::string file = modelsDir + "/" + entry["check"]["input"].get<std::string>();
    std::ifstream in(file, std::ios::binary);
    in.read(reinterpret_cast<char*>(x.mutableData<float>()), std::streamsize(x.size() * sizeof(float)));
    if (!in)
        throw Error(file + ": expected " + std::to_string(x.size()) + " float32 values (a batch-2 input " +
                    shapeToString(x.shape()) + ")");
    return x;
}

// Multiply-accumulates per image of the Conv, MatMul and Gemm nodes (activation products
// included), from the shapes one batch-1 run gives: for models whose manifest has no count.
double macsPerImage(const Graph& graph, const Executor& executor)
{
    RunOptions all;
    all.captureAll = true;
    const TensorMap values = executor.run({{graph.inputs[0].name, randomInput(graph, 1, 5)}}, all);
    const auto shapeOf = [&](const std::string& name) -> const Shape& {
        const auto it = values.find(name);
        return it != values.end() ? it->second.shape() : graph.initializers.at(name).shape();
    };
    double macs = 0;
    for (const Node& node : graph.nodes) {
        if (node.opType != "Conv" && node.opType != "MatMul" && node.opType != "Gemm")
            continue;
        const Shape& a = shapeOf(node.inputs[0]);
        const Shape& w = shapeOf(node.inputs[1]);
        double outputs = 1;
        for (const std::int64_t d : shapeOf(node.outputs[0]))
            outputs *= double(d);
        if (node.opType == "Conv") {
            double kernel = double(a[1] / node.intAttribute("group", 1));
            for (std::size_t d = 2; d < w.size(); ++d)
                kernel *= double(w[d]);
            macs += outputs * kernel;
        } else {
            macs += outputs * double(node.opType == "Gemm" && node.intAttribute("transA", 0) ? a[0] : a.back());
        }
    }
    return macs;
}

// W8A8 as the QDQ peers of ../shared/bench: min-max ranges from 8 random inputs.
QuantPlan quantizeLikeThePeers(const Graph& graph)
{
    const std::vector<QuantLayer> layers = findQuantLayers(graph);
    CalibrationData calibration;
    const Executor executor(graph);
    RunOptions capture;
    for (const QuantLayer& l : layers)
        capture.capture.insert(l.output);
    const TensorMap out = executor.run({{graph.inputs[0].name, randomInput(graph, 8, 1)}}, capture);
    for (const QuantLayer& l : layers)
        calibration.observers[l.output].observe(out.at(l.output));
    calibration.images = 8;
    const QuantConfig config;  // per-channel symmetric int8 weights, affine uint8 activations, min-max
    return makePlan(graph, layers, config, calibration);
}

// The quantization a QDQ file carries (its own scales and zero-points), as the window and the CLI
// open such a file.
QuantPlan planFromQdq(const std::string& modelsDir, const json& entry, const std::string& key)
{
    if (!entry.contains("files") || !entry["files"].contains(key))
        throw Error("manifest.json: the model has no files." + key + " (the QDQ model --int8-from-qdq names)");
    const std::string file = modelsDir + "/" + entry["files"][key].get<std::string>();
    const std::optional<ImportedQuantization> imported = importQdq(loadOnnx(file));
    if (!imported)
        throw Error(file + ": expected a QDQ model (QuantizeLinear/DequantizeLinear nodes), found none");
    const std::vector<QuantLayer> layers = findQuantLayers(imported->floatGraph);
    return makePlan(imported->floatGraph, layers, imported->config, CalibrationData{}, nullptr, &imported->params);
}

}  // namespace

int main(int argc, char** argv)
{
    qe::keepFreedMemoryForReuse();
    std::string modelsDir, jsonPath, int8FromQdq;
    std::vector<std::string> models{"lenet", "mobilenet", "resnet18"};
    std::vector<std::string> threads{"1", "2"}, batches{"1", "32"}, precisions{"fp32", "int8"};
    int runs = 20, warmup = 3;
    double minTime = 1.0;
    bool profile = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string flag = argv[i], value = argv[i + 1];
        if (flag == "--models-dir") modelsDir = value;
        else if (flag == "--models") models = split(value);
        else if (flag == "--threads") threads = split(value);
        else if (flag == "--batches") batches = split(value);
        else if (flag == "--precisions") precisions = split(value);
        else if (flag == "--runs") runs = std::stoi(value);
        else if (flag == "--warmup") warmup = std::stoi(value);
        else if (flag == "--min-time") minTime = std::stod(value);
        else if (flag == "--json") jsonPath = value;
        else if (flag == "--profile") profile = value == "1";
        else if (flag == "--int8-from-qdq") int8FromQdq = value;
        else {
            std::cerr << "unknown option " << flag << "\n";
            return 2;
        }
    }
    if (modelsDir.empty()) {
        std::cerr << "usage: bench_engines --models-dir DIR [--models a,b] [--threads 1,2] [--batches 1,32] [--json OUT]\n";
        return 2;
    }
    try {
        json manifest = json::parse(std::ifstream(modelsDir + "/manifest.json"));
        std::ofstream jsonOut;
        if (!jsonPath.empty())
            jsonOut.open(jsonPath, std::ios::app);
        std::printf("%-10s %-6s %3s %5s %12s %12s\n", "model", "prec", "thr", "batch", "median ms", "images/s");
        for (const std::string& name : models) {
            const std::string file = modelsDir + "/" + name + "_fp32.onnx";
            const auto graph = std::make_shared<const Graph>(loadOnnx(file));
            const Executor floatExecutor(*graph);
            double macs = 0;
            if (manifest["models"].contains(name))
                macs = manifest["models"][name].value("macs_per_image", 0.0);
            if (macs == 0) {
                macs = macsPerImage(*graph, floatExecutor);
                std::printf("%s: %.2f M multiply-accumulates per image\n", name.c_str(), macs / 1e6);
            }

            const QuantPlan plan = int8FromQdq.empty() ? quantizeLikeThePeers(*graph)
                                                       : planFromQdq(modelsDir, manifest["models"][name], int8FromQdq);
            const std::size_t layerCount = plan.layers.size();
            const IntegerEngine engine(plan);
            if (engine.integerLayerCount() != layerCount)
                for (const LayerExecution& e : engine.layerExecution())
                    if (!e.integer)
                        std::cerr << name << ": layer " << e.layer << " runs in float: " << e.reason << "\n";

            // How far int8 is from fp32 on the same input (the peers print the same check, on the
            // manifest's batch-2 input: real images where the ranges were calibrated on them).
            {
                const Tensor x = checkInput(*graph, modelsDir, manifest["models"].value(name, json::object()));
                const Tensor a = runSingle(floatExecutor, x);
                const Tensor b = runIntegerSingle(engine, graph->inputs[0].name, x);
                double dot = 0, na = 0, nb = 0;
                for (std::int64_t i = 0; i < a.size(); ++i) {
                    dot += double(a.data<float>()[i]) * b.data<float>()[i];
                    na += double(a.data<float>()[i]) * a.data<float>()[i];
                    nb += double(b.data<float>()[i]) * b.data<float>()[i];
                }
                const json check{{"kind", "check"}, {"engine", "qe"}, {"model", name}, {"precision", "int8"},
                                 {"cosine", dot / std::sqrt(na * nb)}, {"integer_layers", engine.integerLayerCount()},
                                 {"layers", layerCount}};
                std::printf("%s: int8 vs fp32 cosine %.5f, %zu of %zu layers in integers\n", name.c_str(),
                            check["cosine"].get<double>(), engine.integerLayerCount(), layerCount);
                if (jsonOut)
                    jsonOut << check.dump() << "\n";
            }
            for (const std::string& t : threads) {
                omp_set_num_threads(std::stoi(t));
                for (const std::string& b : batches) {
                    const std::int64_t batch = std::stoll(b);
                    const Tensor x = randomInput(*graph, batch, 3);
                    const std::string inputName = graph->inputs[0].name;
                    for (const std::string& precision : precisions) {
                        const Timing timing = precision == "fp32"
                                                  ? timeIt([&] { runSingle(floatExecutor, x); }, warmup, runs, minTime)
                                                  : timeIt([&] { runIntegerSingle(engine, inputName, x); }, warmup, runs, minTime);
                        const double imagesPerSecond = 1000.0 * double(batch) / timing.median;
                        const json row{{"kind", "peer"}, {"model", name}, {"engine", "qe"}, {"precision", precision},
                                       {"threads", std::stoi(t)}, {"batch", batch}, {"median_ms", timing.median},
                                       {"p10_ms", timing.p10}, {"p90_ms", timing.p90}, {"runs", timing.runs},
                                       {"images_per_s", imagesPerSecond}, {"gops", 2.0 * macs * imagesPerSecond / 1e9}};
                        std::printf("%-10s %-6s %3s %5lld %12.3f %12.1f\n", name.c_str(), precision.c_str(), t.c_str(),
                                    static_cast<long long>(batch), timing.median, imagesPerSecond);
                        std::fflush(stdout);
                        if (jsonOut)
                            jsonOut << row.dump() << "\n";
                        if (profile && precision == "int8")
                            printProfile(engine, inputName, x, runs);
                    }
                }
            }
        }
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
