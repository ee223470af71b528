#pragma once
// Shared helpers for the tests: where the outside reference data lives, and closeness checks
// with the tolerances of the references we compare with.

#include "data/dataset.h"
#include "data/preprocess.h"
#include "tensor/tensor.h"
#include "train/training_module_loader.h"
#include "sanitizer.h"

#include <nlohmann/json.hpp>

#include <QDir>
#include <QProcess>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QString>
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace qe::test {

inline std::filesystem::path sharedDir() { return QE_SHARED_DIR; }
inline std::filesystem::path sourceDir() { return QE_SOURCE_DIR; }
inline std::filesystem::path binaryDir() { return QE_BINARY_DIR; }

// Where reference files made by outside tools at test time (torchvision's exports, PyTorch's
// quantizer results) live: $QE_REFERENCE_DIR/<name> when set, else <build>/<name>. scripts/test.sh
// points its sanitizer pass at the normal build's folder, so that Python makes them once.
inline std::filesystem::path referenceDir(const std::string& name)
{
    const char* shared = std::getenv("QE_REFERENCE_DIR");
    return (shared && *shared ? std::filesystem::path(shared) : binaryDir()) / name;
}

// Skips the current test with a message when `path` does not exist.
#define QE_REQUIRE_PATH(path)                                                                        \
    do {                                                                                             \
        if (!std::filesystem::exists(path))                                                          \
            QSKIP(qPrintable(QString("needs %1, which is absent").arg(QString::fromStdString((path).string())))); \
    } while (0)

// Skips the current test, saying why, when the training module (libtorch) cannot be loaded: it is
// not built with QE_BUILD_TRAINING=OFF, as in the sanitizer builds.
#define QE_REQUIRE_TRAINING_MODULE()                                                                 \
    do {                                                                                             \
        try {                                                                                        \
            qe::trainingModuleEntry();                                                               \
        } catch (const std::exception& e) {                                                          \
            QSKIP(qPrintable(QString("the training module is not built here (QE_BUILD_TRAINING=OFF?): ") + e.what())); \
        }                                                                                            \
    } while (0)

// One data row "dir" per node test of Debian's libonnx-testdata (a folder with a model.onnx and,
// when `needsTestData`, its test_data_set_0), in name order; none when the package is absent
// (the test function then skips).
inline void addOnnxNodeTestRows(bool needsTestData)
{
    QTest::addColumn<QString>("dir");
    const std::filesystem::path root = QE_ONNX_TESTDATA_DIR;
    if (!std::filesystem::exists(root))
        return;
    std::vector<std::filesystem::path> dirs;
    for (const auto& entry : std::filesystem::directory_iterator(root))
        if (entry.is_directory() && std::filesystem::exists(entry.path() / "model.onnx") &&
            (!needsTestData || std::filesystem::exists(entry.path() / "test_data_set_0")))
            dirs.push_back(entry.path());
    std::sort(dirs.begin(), dirs.end());
    for (const std::filesystem::path& dir : dirs)
        QTest::newRow(dir.filename().string().c_str()) << QString::fromStdString(dir.string());
}

// numpy.testing.assert_allclose semantics: |actual - expected| <= atol + rtol * |expected|.
// Returns an empty string when close, else a description of the worst element.
inline std::string compareClose(const Tensor& actual, const Tensor& expected, double rtol, double atol)
{
    if (actual.dtype() != expected.dtype())
        return "type " + dataTypeName(actual.dtype()) + " != expected " + dataTypeName(expected.dtype());
    if (actual.shape() != expected.shape())
        return "shape " + shapeToString(actual.shape()) + " != expected " + shapeToString(expected.shape());
    const Tensor a = actual.castTo(DataType::Float64), e = expected.castTo(DataType::Float64);
    const double* pa = a.data<double>();
    const double* pe = e.data<double>();
    std::int64_t worst = -1;
    double worstExcess = 0;
    for (std::int64_t i = 0; i < a.size(); ++i) {
        if (std::isnan(pa[i]) && std::isnan(pe[i]))
            continue;
        if (std::isinf(pe[i]) && pa[i] == pe[i])
            continue;
        const double excess = std::abs(pa[i] - pe[i]) - (atol + rtol * std::abs(pe[i]));
        if (excess > worstExcess || (std::isnan(excess))) {
            worstExcess = std::isnan(excess) ? INFINITY : excess;
            worst = i;
        }
    }
    if (worst < 0)
        return {};
    return "element " + std::to_string(worst) + ": " + std::to_string(pa[worst]) + " vs expected " + std::to_string(pe[worst]);
}

// Per-image top-1 of one model from reference_predictions.csv, indexed by image index.
inline std::vector<int> referenceTop1(const std::filesystem::path& csv, const std::string& model)
{
    std::ifstream in(csv);
    std::string line;
    std::getline(in, line);  // header: model,runtime,dataset,index,label,top1,top1_prob
    std::vector<int> top1;
    while (std::getline(in, line)) {
        std::vector<std::string> fields;
        std::stringstream row(line);
        std::string field;
        while (std::getline(row, field, ','))
            fields.push_back(field);
        if (fields.size() < 7 || fields[0] != model)
            continue;
        const auto index = static_cast<std::size_t>(std::stoul(fields[3]));
        if (top1.size() <= index)
            top1.resize(index + 1, -1);
        top1[index] = std::stoi(fields[5]);
    }
    return top1;
}

// Preprocessing as a MANIFEST states it: colour order, scale, one mean and std, central crop.
inline Preprocess makePreprocess(ColorOrder color, double scale, float mean, float std, double cropFraction)
{
    Preprocess p;
    p.color = color;
    p.scale = scale;
    p.mean = {mean};
    p.stdDev = {std};
    p.cropFraction = cropFraction;
    return p;
}

// Raw little-endian float32 values (the reference files our Python scripts write).
inline Tensor readRawFloats(const std::filesystem::path& path, const Shape& shape)
{
    Tensor t(DataType::Float32, shape);
    std::ifstream in(path, std::ios::binary);
    in.read(reinterpret_cast<char*>(t.mutableRawData()), static_cast<std::streamsize>(t.byteSize()));
    if (in.gcount() != static_cast<std::streamsize>(t.byteSize()))
        throw std::runtime_error(path.string() + " is too short");
    return t;
}

// Runs `scripts/<script> --out <outDir>` with Debian's Python, which makes outside reference data
// (PyTorch results) at test time. Returns an empty string on success and a reason to skip when
// Python or its modules are missing (the scripts exit with 3 for that); throws on any other
// failure, which fails the test.
inline QString runReferenceScript(const std::string& script, const QString& outDir, const QString& needs)
{
    QProcess python;
    python.setProcessChannelMode(QProcess::ForwardedErrorChannel);
    python.start("/usr/bin/python3", {QString::fromStdString((sourceDir() / "scripts" / script).string()), "--out", outDir});
    if (!python.waitForStarted())
        return "needs /usr/bin/python3 with " + needs;
    if (!python.waitForFinished(600000))
        throw std::runtime_error(script + " did not finish within 10 minutes");
    if (python.exitCode() == 3)
        return "needs Debian's " + needs;
    if (python.exitStatus() != QProcess::NormalExit || python.exitCode() != 0)
        throw std::runtime_error(script + " failed with exit code " + std::to_string(python.exitCode()));
    return {};
}

// The torchvision models scripts/make_torchvision_models.py exports with random weights.
inline const std::vector<std::string> kTorchvisionModels = {"resnet18",           "mobilenet_v2", "mobilenet_v3_small",
                                                            "squeezenet1_1",      "shufflenet_v2_x0_5",
                                                            "vit_b_16",           "vit_b_16_opset17"};

// Why a test that runs every export skips `name` in this build, empty when it runs it: under a
// sanitizer ViT-B/16 (17.5 GFLOP a float run, four runs) takes minutes for operators the demo
// transformer (tst_real_models, tst_transformer) runs there too.
inline QString torchvisionSanitizerSkip(const QString& name)
{
    return kSanitizerBuild && name.startsWith("vit") ? QStringLiteral("ViT-B/16 is the normal pass's (too slow under a sanitizer)")
                                                     : QString();
}

// Exports them into `dir` unless its manifest lists every one already (a build folder made before
// a model was added gets them all again); a skip reason when PyTorch is missing.
inline QString ensureTorchvisionModels(const std::filesystem::path& dir)
{
    if (std::ifstream in{dir / "manifest.json"}) {
        std::set<std::string> listed;
        for (const auto& m : nlohmann::json::parse(in, nullptr, false).value("models", nlohmann::json::array()))
            listed.insert(m.value("name", ""));
        if (std::all_of(kTorchvisionModels.begin(), kTorchvisionModels.end(), [&](const std::string& n) { return listed.count(n); }))
            return {};
    }
    return runReferenceScript("make_torchvision_models.py", QString::fromStdString(dir.string()),
                              "python3-torch and python3-torchvision to export the models");
}

// onnxruntime-node: $ORTPEER_DIR, else <build>/ortpeer, installed there from npm when missing.
// Empty when node or the package cannot be had (the caller skips).
inline QString ortDirectory(QString& why)
{
    if (QStandardPaths::findExecutable("node").isEmpty()) {
        why = "node is not installed (Debian's nodejs)";
        return {};
    }
    QString dir = qEnvironmentVariable("ORTPEER_DIR");
    if (dir.isEmpty())
        dir = QString(QE_BINARY_DIR) + "/ortpeer";
    if (QFile::exists(dir + "/node_modules/onnxruntime-node/package.json"))
        return dir;
    if (QStandardPaths::findExecutable("npm").isEmpty()) {
        why = "onnxruntime-node is not in " + dir + " and npm is not installed";
        return {};
    }
    QProcess npm;
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert("ONNXRUNTIME_NODE_INSTALL", "skip");  // the package's own download is for CUDA only
    npm.setProcessEnvironment(env);
    QDir().mkpath(dir);
    npm.start("npm", {"--prefix", dir, "install", "onnxruntime-node@1.30.0"});
    if (!npm.waitForFinished(300000) || !QFile::exists(dir + "/node_modules/onnxruntime-node/package.json")) {
        why = "could not install onnxruntime-node into " + dir + ": " + QString::fromUtf8(npm.readAllStandardError()).left(300);
        return {};
    }
    return dir;
}

// ONNX Runtime's top-1 predictions for the first `count` images of `data` on the ONNX model
// `model` (scripts/ort_predict.js through onnxruntime-node). Empty, with `why`, when ONNX
// Runtime cannot be had; a failed run is a failed QVERIFY (check QTest::currentTestFailed()).
inline std::vector<int> onnxRuntimePredictions(const Dataset& data, const Preprocess& preprocess, const std::filesystem::path& model,
                                               std::size_t count, std::int64_t channels, std::int64_t height, std::int64_t width,
                                               QString& why)
{
    const QString ortDir = ortDirectory(why);
    if (ortDir.isEmpty())
        return {};
    QTemporaryDir dir;
    const QString inputPath = dir.path() + "/images.bin";
    {
        const Tensor batch = makeBatch(data, 0, count, preprocess, channels, height, width);
        std::ofstream raw(inputPath.toStdString(), std::ios::binary);
        raw.write(reinterpret_cast<const char*>(batch.data<float>()), static_cast<std::streamsize>(batch.size() * 4));
    }
    QProcess node;
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert("ORTPEER_DIR", ortDir);
    node.setProcessEnvironment(env);
    node.start("node", {QString(QE_SOURCE_DIR) + "/scripts/ort_predict.js", QString::fromStdString(model.string()), inputPath,
                        QString::number(count), QString::number(channels), QString::number(height), QString::number(width)});
    const bool finished = node.waitForFinished(600000);
    [&] {
        QVERIFY2(finished, "ONNX Runtime did not finish");
        QVERIFY2(node.exitCode() == 0, node.readAllStandardError().constData());
    }();
    if (!finished || node.exitCode() != 0)
        return {};
    return nlohmann::json::parse(node.readAllStandardOutput().toStdString())["predictions"].get<std::vector<int>>();
}

}  // namespace qe::test
