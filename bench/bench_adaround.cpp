// AdaRound over every weighted layer of a model at W4 per-channel (symmetric), with
// AdaRound's defaults, each layer fed what the W4A8 simulation (nearest rounding) gives it:
//   build/bench/bench_adaround [--iterations N] [--images N]              the demo model, Fashion-MNIST training images
//   build/bench/bench_adaround --mobilenet [--iterations N] [--images N]  MobileNetV1 0.5 at 160, ../shared's ImageNet images
// --threads N sets AdaRound's threads (default 2).
// Prints, per layer, the seconds and where they went (unfolding and set-up, forward, backward,
// Adam), and the reconstruction error of nearest rounding and AdaRound on the optimised rows.

#include "data/dataset.h"
#include "engine/graph_preparation.h"
#include "quant/simulator.h"
#include "repair/adaround.h"
#include "repair/layer_samples.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using namespace qe;

namespace {

double secondsSince(std::chrono::steady_clock::time_point start)
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv)
{
    bool mobileNet = false;
    AdaRoundOptions options;
    std::size_t images = 256;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--mobilenet"))
            mobileNet = true;
        else if (!std::strcmp(argv[i], "--iterations") && i + 1 < argc)
            options.iterations = std::stoi(argv[++i]);
        else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc)
            options.threads = std::stoi(argv[++i]);
        else if (!std::strcmp(argv[i], "--images") && i + 1 < argc)
            images = std::stoul(argv[++i]);
        else {
            std::fprintf(stderr, "usage: bench_adaround [--mobilenet] [--iterations N] [--images N] [--threads N]\n");
            return 2;
        }
    }
    const std::string model = mobileNet ? QE_SHARED_DIR "/models/mobilenet_v1_0.5_160_float.onnx"
                                        : QE_SOURCE_DIR "/resources/models/fashion_cnn.onnx";
    const Graph graph = loadOnnx(model);
    Preprocess preprocess;
    std::unique_ptr<Dataset> data;
    if (mobileNet) {
        // As ../shared/models/MANIFEST.md states: RGB, (pixel - 128) / 128, central 87.5% crop.
        preprocess.color = ColorOrder::Rgb;
        preprocess.mean = {128};
        preprocess.stdDev = {128};
        preprocess.cropFraction = 0.875;
        data = openDataset(QE_SHARED_DIR "/data/imagenet_val_227_300", std::nullopt, "label_1001");
    } else {
        preprocess = *Preprocess::loadSidecar(model);
        data = openDataset("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
    }

    const auto start = std::chrono::steady_clock::now();
    const std::vector<QuantLayer> all = findQuantLayers(graph);
    std::vector<QuantLayer> weighted;
    for (const QuantLayer& layer : all)
        if (!layer.weight.empty())
            weighted.push_back(layer);
    QuantConfig w4a8;
    w4a8.defaultWeights = {true, Scheme::Symmetric, 4, Granularity::PerChannel, 0, std::nullopt, false};
    CalibrationOptions calibration;
    calibration.images = images;
    const QuantPlan plan = makePlan(graph, all, w4a8, calibrate(graph, all, *data, preprocess, calibration));
    const auto samples = collectLayerSamples(graph, weighted, *data, preprocess, 0, images, &plan);
    std::printf("%s: %zu weighted layers, %zu images, %d iterations, %d images per step; calibration and samples %.1f s\n",
                model.c_str(), weighted.size(), images, options.iterations, options.batchSize, secondsSince(start));
    std::printf("| layer | rows | rows/step | s | set-up s | forward s | backward s | Adam s | flipped | error nearest | error AdaRound |\n"
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    double total = 0, forward = 0, backward = 0, adam = 0, setup = 0;
    for (const QuantLayer& layer : weighted) {
        Tensor nearest;
        const QuantParams params = quantizeLayerWeights(layer, w4a8.defaultWeights, graph.initializers.at(layer.weight), nearest);
        const LayerSamples& s = samples.at(layer.name);
        const AdaRoundStatistics r = adaRound(graph, layer, params, s.inputs, s.floatOutputs, options).statistics;
        std::printf("| %s | %lld | %lld | %.2f | %.2f | %.2f | %.2f | %.2f | %.1f%% | %.4g | %.4g |\n", layer.name.c_str(),
                    static_cast<long long>(r.rows), static_cast<long long>(r.rowsPerStep), r.totalMs / 1000, r.setupMs / 1000,
                    r.forwardMs / 1000, r.backwardMs / 1000, r.adamMs / 1000, 100 * r.flippedFraction, r.nearestError, r.adaRoundError);
        std::fflush(stdout);
        total += r.totalMs / 1000;
        setup += r.setupMs / 1000;
        forward += r.forwardMs / 1000;
        backward += r.backwardMs / 1000;
        adam += r.adamMs / 1000;
    }
    std::printf("AdaRound total %.1f s (%.2f s per layer): set-up %.1f s, forward %.1f s, backward %.1f s, Adam %.1f s\n", total,
                total / double(weighted.size()), setup, forward, backward, adam);
    return 0;
}
