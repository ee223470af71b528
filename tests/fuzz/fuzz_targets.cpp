#include "fuzz_targets.h"

#include "common/error.h"
#include "data/dataset.h"
#include "data/preprocess.h"
#include "engine/graph_preparation.h"
#include "lesson/lesson.h"
#include "model/onnx_import.h"
#include "quant/config.h"
#include "quant/layers.h"
#include "quant/qdq_import.h"

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <unistd.h>

namespace fs = std::filesystem;

namespace qe::fuzz {

namespace {

fs::path scratch;  // this process's folder for the targets that read files

std::string bytesOf(const std::uint8_t* data, std::size_t size)
{
    return std::string(reinterpret_cast<const char*>(data), size);
}

void writeFile(const fs::path& path, const std::uint8_t* data, std::size_t size)
{
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out)
        throw std::runtime_error("fuzz: cannot write " + path.string());
}

// Opens `path` as a data set and decodes every image (a few at most), as an evaluation would.
void readDataset(const fs::path& path)
{
    const auto dataset = openDataset(path);
    const std::size_t n = std::min<std::size_t>(dataset->size(), 4);
    for (std::size_t i = 0; i < n; ++i) {
        (void)dataset->image(i);
        (void)dataset->label(i);
        (void)dataset->imageName(i);
    }
    (void)dataset->description();
    if (n > 0) {
        Preprocess p;
        p.color = ColorOrder::Gray;
        (void)makeBatch(*dataset, 0, n, p, 1, 8, 8);
    }
}

void onnxModel(const std::uint8_t* data, std::size_t size)
{
    try {
        (void)loadOnnxFromMemory(bytesOf(data, size), "fuzz.onnx", scratch);  // shape inference and BN folding included
    } catch (const Error&) {
    }
}

void qdqModel(const std::uint8_t* data, std::size_t size)
{
    try {
        const Graph graph = loadOnnxFromMemory(bytesOf(data, size), "fuzz.onnx", scratch, {true, false, true});
        (void)importQdq(graph);
    } catch (const Error&) {
    }
}

const std::set<std::string>& demoLayers()
{
    static const std::set<std::string> names = [] {
        std::set<std::string> result;
        const Graph graph = loadOnnx(fs::path(QE_SOURCE_DIR) / "resources/models/fashion_cnn.onnx");
        for (const QuantLayer& layer : findQuantLayers(graph))
            result.insert(layer.name);
        return result;
    }();
    return names;
}

void configuration(const std::uint8_t* data, std::size_t size)
{
    const fs::path path = scratch / "fuzz.json";
    writeFile(path, data, size);
    QuantConfig config;
    try {
        config = QuantConfig::load(path, demoLayers());
    } catch (const Error&) {
        return;
    }
    // What was accepted must survive a save and a load unchanged.
    const fs::path saved = scratch / "saved.json";
    config.save(saved);
    if (!(QuantConfig::load(saved, demoLayers()) == config))
        throw std::logic_error("configuration: load(save(c)) != c");
}

void sidecar(const std::uint8_t* data, std::size_t size)
{
    const fs::path path = scratch / "fuzz.preprocess.json";
    writeFile(path, data, size);
    Preprocess p;
    try {
        p = Preprocess::load(path);
    } catch (const Error&) {
        return;
    }
    const fs::path saved = scratch / "saved.preprocess.json";
    p.save(saved);
    (void)Preprocess::load(saved);  // must not throw: we wrote it
    // Applied to one small image, as an evaluation would.
    const cv::Mat pixels(5, 7, CV_8UC3, cv::Scalar(10, 20, 30));
    const int channels = p.color == ColorOrder::Gray ? 1 : 3;
    std::vector<float> out(static_cast<std::size_t>(channels) * 8 * 8);
    try {
        p.apply(pixels, channels, 8, 8, out.data());
    } catch (const Error&) {
    }
}

void dataFile(const std::string& name, const std::uint8_t* data, std::size_t size)
{
    const fs::path path = scratch / name;
    writeFile(path, data, size);
    try {
        readDataset(path);
    } catch (const Error&) {
    }
}

void idx(const std::uint8_t* data, std::size_t size) { dataFile("fuzz-images-idx3-ubyte", data, size); }
void idxGz(const std::uint8_t* data, std::size_t size) { dataFile("fuzz-images-idx3-ubyte.gz", data, size); }
void cifar(const std::uint8_t* data, std::size_t size) { dataFile("data_batch_fuzz.bin", data, size); }
void image(const std::uint8_t* data, std::size_t size) { dataFile("fuzz.png", data, size); }

// The labels CSV of a folder holding a.png and b.png (made once by initialize()).
void labelsCsv(const std::uint8_t* data, std::size_t size)
{
    writeFile(scratch / "csv" / "labels.csv", data, size);
    try {
        readDataset(scratch / "csv");
    } catch (const Error&) {
    }
}

// A lesson file (loadLesson: JSON, steps, configurations, playgrounds, paths kept inside the
// lesson's folder); an accepted lesson's texts rendered and its questions checked as the panel
// would, against an evaluation without numbers.
void lessonFile(const std::uint8_t* data, std::size_t size)
{
    const fs::path path = scratch / "lessons" / "fuzz.json";
    writeFile(path, data, size);
    Lesson lesson;
    try {
        lesson = loadLesson(path, fs::path(QE_SOURCE_DIR) / "resources/models");
    } catch (const Error&) {
        return;
    }
    const StudyResult nothing;
    for (const LessonStep& step : lesson.steps) {
        (void)renderLessonText(step.text, nothing, step.layer);
        if (step.playground)
            (void)renderLessonText(step.text, nothing, step.layer, playgroundFacts(quantizePlayground(*step.playground)));
        if (step.question)
            for (const char* answer : {"", "1.5", "/conv1/Conv", "x"})
                (void)checkLessonAnswer(*step.question, answer, nothing, step.layer);
    }
}

}  // namespace

const std::vector<Target>& targets()
{
    static const std::vector<Target> all = {
        {"onnx", onnxModel}, {"qdq", qdqModel},     {"config", configuration}, {"sidecar", sidecar},
        {"idx", idx},        {"idx_gz", idxGz},     {"cifar", cifar},          {"csv", labelsCsv},
        {"image", image},    {"lesson", lessonFile},
    };
    return all;
}

void run(const std::string& name, const std::uint8_t* data, std::size_t size)
{
    for (const Target& t : targets())
        if (name == t.name)
            return t.entry(data, size);
    throw std::invalid_argument("no fuzz target named '" + name + "'");
}

void initialize()
{
    setenv("QE_MEMORY_BUDGET_MB", "256", 1);
    setenv("OPENCV_IO_MAX_IMAGE_PIXELS", "16777216", 1);  // OpenCV's own limit on a decoded image
    scratch = fs::temp_directory_path() / ("qe-fuzz-" + std::to_string(getpid()));
    fs::create_directories(scratch / "csv");
    fs::create_directories(scratch / "lessons");
    const cv::Mat pixels(4, 4, CV_8UC1, cv::Scalar(128));
    cv::imwrite((scratch / "csv" / "a.png").string(), pixels);
    cv::imwrite((scratch / "csv" / "b.png").string(), pixels);
}

}  // namespace qe::fuzz
