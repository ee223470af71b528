// Sensitivity and mixed-precision search, timed end to end through the core's functions (what
// `quantexplorer-cli sensitivity` and `search` run):
//   build/bench/bench_precision sensitivity [--images N]   the demo model, every layer, default widths
//   build/bench/bench_precision search-demo [--images N]    the demo model, 0.5-point budget
//   build/bench/bench_precision search-mobilenet            MobileNetV1 0.25 on ../shared's 300 ImageNet images
// The MobileNet run splits the 300 images (sorted by name) into calibration (the first 100),
// search (the next 100) and reported (the last 100) folders of symbolic links in a temporary folder.

#include "common/memory.h"
#include "study/precision_search.h"
#include "study/study.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

using namespace qe;

namespace {

double secondsSince(std::chrono::steady_clock::time_point start)
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

const std::string kFashion = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
const std::string kDemo = QE_SOURCE_DIR "/resources/models/fashion_cnn.onnx";

StudySources demo(std::size_t images)
{
    StudySources sources;
    sources.model = kDemo;
    sources.data = kFashion;
    sources.evaluationImages = images;
    return sources;
}

void printSearch(const SearchResult& r, double seconds)
{
    std::size_t front = 0;
    for (const SearchCandidate& c : r.evaluated)
        front += c.onFront;
    std::printf("search: %.1f s, %zu configurations evaluated, %zu on the front\n"
                "  search images: %s\n"
                "  chosen: top-1 %.2f%% on the reported images (float %.2f%%), %.2f%% on the search images (float %.2f%%)\n"
                "  size %.0f bytes (base %.0f), %.3g bit operations per image%s%s\n",
                seconds, r.evaluated.size(), front, r.searchImages.description.c_str(), 100 * r.top1, 100 * r.floatTop1,
                100 * r.searchTop1, 100 * r.searchFloatTop1, r.sizeBytes, r.baseSizeBytes, r.bitOperations,
                r.shortfall.empty() ? "" : "\n  shortfall: ", r.shortfall.c_str());
}

// The 300 ImageNet images in three folders of links: calibration, search, reported.
std::filesystem::path splitImageNet(const std::filesystem::path& source)
{
    const std::filesystem::path root = std::filesystem::temp_directory_path() / "qe_bench_precision_imagenet";
    std::filesystem::remove_all(root);
    std::ifstream labels(source / "labels.csv");
    std::string header, line;
    std::getline(labels, header);
    std::vector<std::string> rows;
    while (std::getline(labels, line))
        if (!line.empty())
            rows.push_back(line);
    std::sort(rows.begin(), rows.end());
    const char* parts[] = {"calibration", "search", "reported"};
    for (int part = 0; part < 3; ++part) {
        const std::filesystem::path dir = root / parts[part];
        std::filesystem::create_directories(dir);
        std::ofstream out(dir / "labels.csv");
        out << header << "\n";
        const std::size_t first = rows.size() * std::size_t(part) / 3, last = rows.size() * std::size_t(part + 1) / 3;
        for (std::size_t i = first; i < last; ++i) {
            const std::string file = rows[i].substr(0, rows[i].find(','));
            std::filesystem::create_symlink(source / file, dir / file);
            out << rows[i] << "\n";
        }
    }
    return root;
}

}  // namespace

int main(int argc, char** argv)
{
    qe::keepFreedMemoryForReuse();
    const std::string mode = argc > 1 ? argv[1] : "";
    std::size_t images = 1000;
    for (int i = 2; i + 1 < argc; i += 2)
        if (!std::strcmp(argv[i], "--images"))
            images = std::stoul(argv[i + 1]);
    const QuantConfig base;  // W8A8, per-channel weights
    if (mode == "sensitivity") {
        Study study(demo(images));
        study.evaluate(QuantConfig{});  // opening, calibration and the float activations: not the sweep's
        const auto start = std::chrono::steady_clock::now();
        const SensitivityResult r = measureSensitivity(study, base, {}, {});
        std::size_t points = 0;
        for (const LayerSensitivity& l : r.layers)
            points += l.onlyThis.size() + 1;
        std::printf("sensitivity of %zu layers on %zu images: %zu evaluations in %.2f s (float top-1 %.2f%%, base %.2f%%)\n",
                    r.layers.size(), study.evaluationImages(), points + 2, secondsSince(start), 100 * r.floatTop1, 100 * r.baseTop1);
        return 0;
    }
    SearchOptions options;
    options.budget = {SearchBudget::Kind::MaxAccuracyDrop, 0.5, 0};
    if (mode == "search-demo") {
        options.searchImages = images;
        const auto start = std::chrono::steady_clock::now();
        Study study(demo(images));
        const SearchResult r = searchMixedPrecision(study, base, options, {});
        printSearch(r, secondsSince(start));
        return 0;
    }
    if (mode == "search-mobilenet") {
        const std::filesystem::path shared = QE_SOURCE_DIR "/../shared";
        const std::filesystem::path split = splitImageNet(shared / "data/imagenet_val_227_300");
        StudySources sources;
        sources.model = shared / "models/mobilenet_v1_0.25_128_float.onnx";
        sources.data = split / "reported";
        sources.calibrationData = split / "calibration";
        sources.calibrationImages = 100;
        // MANIFEST.md's preprocessing for the TensorFlow MobileNets.
        sources.adjustPreprocess = [](Preprocess& p) {
            p.color = ColorOrder::Rgb;
            p.scale = 1.0;
            p.mean = {128};
            p.stdDev = {128};
            p.cropFraction = 0.875;
        };
        options.searchData = split / "search";
        const auto start = std::chrono::steady_clock::now();
        Study study(sources);
        const SearchResult r = searchMixedPrecision(study, base, options, {});
        printSearch(r, secondsSince(start));
        return 0;
    }
    std::fprintf(stderr, "usage: bench_precision sensitivity|search-demo|search-mobilenet [--images N]\n");
    return 2;
}
