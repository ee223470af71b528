// torchvision architectures (random weights, exported to ONNX at test time by
// scripts/make_torchvision_models.py with Debian's python3-torch): our outputs must match
// PyTorch's on the same input within 1e-4 relative, folded and unfolded, and per image.

#include "engine/executor.h"
#include "engine/graph_preparation.h"
#include "test_support.h"

#include <nlohmann/json.hpp>

#include <QProcess>
#include <QtTest>

#include <fstream>

using namespace qe;
namespace fs = std::filesystem;

namespace {

// max |actual - expected| / max |expected|: "relative" for a whole logit vector.
double relativeError(const Tensor& actual, const Tensor& expected)
{
    double maxDiff = 0, maxRef = 0;
    for (std::int64_t i = 0; i < expected.size(); ++i) {
        maxDiff = std::max(maxDiff, double(std::abs(actual.data<float>()[i] - expected.data<float>()[i])));
        maxRef = std::max(maxRef, double(std::abs(expected.data<float>()[i])));
    }
    return maxDiff / std::max(maxRef, 1e-12);
}

const fs::path kModelDir = test::referenceDir("torchvision_models");

}  // namespace

class TestTorchvision : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void matchesPyTorch_data();
    void matchesPyTorch();

private:
    QString skipReason_;
};

void TestTorchvision::initTestCase()
{
    skipReason_ = test::ensureTorchvisionModels(kModelDir);
}

void TestTorchvision::matchesPyTorch_data()
{
    QTest::addColumn<QString>("name");
    for (const std::string& name : test::kTorchvisionModels)
        QTest::newRow(name.c_str()) << QString::fromStdString(name);
}

void TestTorchvision::matchesPyTorch()
{
    if (!skipReason_.isEmpty())
        QSKIP(qPrintable(skipReason_));
    QFETCH(QString, name);
    if (const QString skip = test::torchvisionSanitizerSkip(name); !skip.isEmpty())
        QSKIP(qPrintable(skip));
    const nlohmann::json manifest = nlohmann::json::parse(std::ifstream(kModelDir / "manifest.json"));
    nlohmann::json entry;
    for (const auto& m : manifest["models"])
        if (m["name"] == name.toStdString())
            entry = m;
    QVERIFY2(!entry.is_null(), "model missing from the manifest");
    const Shape inputShape = entry["input_shape"].get<Shape>();
    const Shape outputShape = entry["output_shape"].get<Shape>();
    const Tensor input = test::readRawFloats(kModelDir / entry["input_file"].get<std::string>(), inputShape);
    const Tensor expected = test::readRawFloats(kModelDir / entry["output_file"].get<std::string>(), outputShape);
    const fs::path modelPath = kModelDir / entry["file"].get<std::string>();

    // As imported for the user (folded), and exactly as exported.
    ImportOptions asExported;
    asExported.foldBatchNorm = false;
    asExported.foldConstants = false;
    for (const ImportOptions& options : {ImportOptions{}, asExported}) {
        const Graph graph = loadOnnx(modelPath, options);
        const Executor executor(graph);
        const Tensor output = runSingle(executor, input);
        QCOMPARE(output.shape(), outputShape);
        const double error = relativeError(output, expected);
        qInfo("%s (%s, %zu nodes): relative error %.2e", qPrintable(name), options.foldBatchNorm ? "folded" : "as exported",
              graph.nodes.size(), error);
        QVERIFY2(error <= 1e-4, qPrintable(QString("relative error %1").arg(error)));
    }

    // The second image alone (dynamic batch) gives PyTorch's second row.
    const Graph graph = loadOnnx(modelPath);
    const std::int64_t imageSize = input.size() / inputShape[0], rowSize = expected.size() / outputShape[0];
    const Tensor second = Tensor::fromValues<float>({1, inputShape[1], inputShape[2], inputShape[3]},
                                                    std::vector<float>(input.data<float>() + imageSize, input.data<float>() + 2 * imageSize));
    const Tensor expectedRow = Tensor::fromValues<float>({1, outputShape[1]},
                                                         std::vector<float>(expected.data<float>() + rowSize, expected.data<float>() + 2 * rowSize));
    const double error = relativeError(runSingle(Executor(graph), second), expectedRow);
    QVERIFY2(error <= 1e-4, qPrintable(QString("batch-1 relative error %1").arg(error)));
}

QTEST_APPLESS_MAIN(TestTorchvision)
#include "tst_torchvision.moc"
