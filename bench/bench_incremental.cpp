// Incremental recompute vs a full rerun: the time from "one layer's configuration changed" to
// fresh metrics, on the demo model with Fashion-MNIST.
//   build/bench/bench_incremental [--images N] [--repeats R]

#include "common/memory.h"
#include "data/dataset.h"
#include "eval/quant_evaluator.h"
#include "engine/graph_preparation.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using namespace qe;

namespace {
double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

template <class F> double millis(F&& f)
{
    const auto start = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}
}  // namespace

int main(int argc, char** argv)
{
    qe::keepFreedMemoryForReuse();
    std::size_t images = 1000;
    int repeats = 15;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--images"))
            images = std::stoul(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--repeats"))
            repeats = std::stoi(argv[i + 1]);
    }
    const std::string model = QE_SOURCE_DIR "/resources/models/fashion_cnn.onnx";
    const std::string data = "/usr/share/datasets/fashion-mnist/";
    auto graph = std::make_shared<const Graph>(loadOnnx(model));
    std::shared_ptr<const Dataset> test = openDataset(data + "t10k-images-idx3-ubyte.gz");
    const auto train = openDataset(data + "train-images-idx3-ubyte.gz");
    QuantEvaluator evaluator(graph, test, *Preprocess::loadSidecar(model), images);
    evaluator.calibrate(*train, 512);

    QuantConfig config;
    const double first = millis([&] { evaluator.evaluate(config); });  // builds the float cache too

    // Each layer in turn: flip its weight bits between 8 and 4 and measure the incremental update,
    // then the same configuration from scratch (quantized cache dropped; float cache kept).
    std::printf("model %s, %zu evaluation images, %d repeats; first evaluation (with float cache) %.1f ms\n\n",
                model.c_str(), images, repeats, first);
    std::printf("| changed layer | resumes at node | incremental ms (median) | full rerun ms (median) | speed-up |\n");
    std::printf("|---|---:|---:|---:|---:|\n");
    for (const QuantLayer& layer : evaluator.layers()) {
        if (layer.weight.empty())
            continue;
        std::vector<double> incremental, full;
        std::size_t resumedAt = 0;
        for (int r = 0; r < repeats; ++r) {
            // The same configuration twice: once as an update of the previous one, once from scratch.
            config.layers[layer.name].weights.bits = (r % 2) ? 8 : 4;
            incremental.push_back(millis([&] { resumedAt = evaluator.evaluate(config).recomputedFromNode; }));
            evaluator.clearQuantizedCache();
            full.push_back(millis([&] { evaluator.evaluate(config); }));
        }
        config.layers.erase(layer.name);
        evaluator.evaluate(config);
        std::printf("| %s | %zu of %zu | %.1f | %.1f | %.1fx |\n", layer.name.c_str(), resumedAt, graph->nodes.size(),
                    median(incremental), median(full), median(full) / median(incremental));
    }
    return 0;
}
