// The QDQ export checked by outsiders: onnx.checker (Debian's python3-onnx) accepts it, ONNX
// Runtime (npm's onnxruntime-node, as in ../shared/bench) gives the same predictions as our
// integer engine on the Fashion-MNIST test set, and importing the file back gives the same plan.
// Also: choices without an integer form are written in float and named in the warnings, and
// the encodings table holds every quantized tensor's parameters.

#include "data/dataset.h"
#include "eval/accuracy.h"
#include "eval/integer_evaluation.h"
#include "eval/quant_evaluator.h"
#include "io/qdq_export.h"
#include "io/report.h"
#include "model/onnx_export.h"
#include "engine/graph_preparation.h"
#include "quant/qdq_import.h"
#include "test_support.h"

#include <QProcess>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QtTest>

#include <nlohmann/json.hpp>

#include <fstream>

using namespace qe;
namespace fs = std::filesystem;

namespace {

const fs::path kDemoModel = test::sourceDir() / "resources/models/fashion_cnn.onnx";
const fs::path kFashionTest = fs::path(QE_FASHION_MNIST_DIR) / "t10k-images-idx3-ubyte.gz";
const fs::path kFashionTrain = fs::path(QE_FASHION_MNIST_DIR) / "train-images-idx3-ubyte.gz";

struct Demo {
    std::shared_ptr<const Graph> graph;
    Preprocess preprocess;
    std::shared_ptr<const Dataset> test;
    std::unique_ptr<QuantEvaluator> evaluator;
};

Demo openDemo(std::size_t images)
{
    Demo d;
    d.graph = std::make_shared<const Graph>(loadOnnx(kDemoModel));
    d.preprocess = *Preprocess::loadSidecar(kDemoModel);
    d.test = openDataset(kFashionTest);
    d.evaluator = std::make_unique<QuantEvaluator>(d.graph, d.test, d.preprocess, images);
    d.evaluator->calibrate(*openDataset(kFashionTrain), 256);
    return d;
}

}  // namespace

class TestQdqExport : public QObject {
    Q_OBJECT
private slots:
    void exportedModelPassesOnnxChecker();
    void onnxRuntimeAgreesWithIntegerEngine();
    void importingTheExportGivesTheSamePlan();
    void unsupportedChoicesAreFloatAndWarned();
    void encodingsListEveryQuantizedTensor();
    void encodingsKeepWhatTheQdqModelCannotHold();
    void reportSummarizesAConfusionTooLargeToDraw();
};

void TestQdqExport::exportedModelPassesOnnxChecker()
{
    QE_REQUIRE_PATH(kFashionTrain);
    Demo d = openDemo(100);
    QuantConfig config;
    config.defaultActivations.bits = 6;  // a narrower range too: exported with a Clip before QuantizeLinear
    const QdqModel model = exportQdq(d.evaluator->plan(config));
    QTemporaryDir dir;
    const QString path = dir.path() + "/fashion_w8a6.onnx";
    saveOnnx(model.graph, path.toStdString(), {.minimumOpset = 13});
    QProcess python;
    python.start("/usr/bin/python3", {"-c", "import sys, onnx; m = onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True); "
                                            "print(sum(n.op_type == 'QuantizeLinear' for n in m.graph.node))",
                                      path});
    QVERIFY(python.waitForFinished(120000));
    const QString err = QString::fromUtf8(python.readAllStandardError());
    if (err.contains("No module named 'onnx'"))
        QSKIP("Debian's python3-onnx is not installed");
    QVERIFY2(python.exitCode() == 0, qPrintable(err));
    // One QuantizeLinear per quantized activation: the input and the five layers.
    QCOMPARE(QString::fromUtf8(python.readAllStandardOutput()).trimmed().toInt(), 6);
}

void TestQdqExport::onnxRuntimeAgreesWithIntegerEngine()
{
    QE_REQUIRE_PATH(kFashionTrain);
    QString why;
    const QString ortDir = test::ortDirectory(why);
    if (ortDir.isEmpty())
        QSKIP(qPrintable(why));
    Demo d = openDemo(10000);
    const QuantPlan plan = d.evaluator->plan(QuantConfig{});
    QTemporaryDir dir;
    const QString modelPath = dir.path() + "/fashion_w8a8.onnx";
    saveOnnx(exportQdq(plan).graph, modelPath.toStdString(), {.minimumOpset = 13});

    // All 10,000 test images, preprocessed once, for both.
    const std::size_t n = d.test->size();
    const QString inputPath = dir.path() + "/images.bin";
    {
        std::ofstream raw(inputPath.toStdString(), std::ios::binary);
        for (std::size_t first = 0; first < n; first += 500) {
            const Tensor batch = makeBatch(*d.test, first, std::min<std::size_t>(500, n - first), d.preprocess, 1, 28, 28);
            raw.write(reinterpret_cast<const char*>(batch.data<float>()), static_cast<std::streamsize>(batch.size() * 4));
        }
    }
    QProcess node;
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert("ORTPEER_DIR", ortDir);
    node.setProcessEnvironment(env);
    node.start("node", {QString(QE_SOURCE_DIR) + "/scripts/ort_predict.js", modelPath, inputPath, QString::number(n), "1", "28", "28"});
    QVERIFY(node.waitForFinished(600000));
    QVERIFY2(node.exitCode() == 0, node.readAllStandardError().constData());
    const auto predictions = nlohmann::json::parse(node.readAllStandardOutput().toStdString())["predictions"].get<std::vector<int>>();
    QCOMPARE(predictions.size(), n);

    const IntegerEvaluation ours = evaluateInteger(plan, *d.test, d.preprocess, 0);
    std::size_t same = 0, ortCorrect = 0;
    for (std::size_t i = 0; i < n; ++i) {
        same += predictions[i] == ours.predictions[i];
        ortCorrect += predictions[i] == d.test->label(i);
    }
    const double ortTop1 = double(ortCorrect) / double(n);
    qInfo("ONNX Runtime on the exported W8A8 model: top-1 %.2f%%, our int8 engine %.2f%%, same prediction on %.2f%% of %zu images",
          100 * ortTop1, 100 * ours.top1, 100.0 * double(same) / double(n), n);
    QVERIFY(std::abs(ortTop1 - ours.top1) <= 0.002);
    QVERIFY(double(same) / double(n) >= 0.995);
}

void TestQdqExport::importingTheExportGivesTheSamePlan()
{
    QE_REQUIRE_PATH(kFashionTrain);
    Demo d = openDemo(1000);
    QuantConfig config;
    config.layers["/fc2/Gemm"].keepFloat = true;  // a float layer stays float across the trip
    const QuantPlan plan = d.evaluator->plan(config);
    QTemporaryDir dir;
    const std::string path = (dir.path() + "/exported.onnx").toStdString();
    saveOnnx(exportQdq(plan).graph, path, {.minimumOpset = 13});

    const auto imported = importQdq(loadOnnx(path));
    QVERIFY(imported.has_value());
    QuantEvaluator again(std::make_shared<const Graph>(imported->floatGraph), d.test, d.preprocess, 1000);
    again.setFixedParams(imported->params);
    QVERIFY(!again.needsCalibration(imported->config));
    const QuantPlan roundTrip = again.plan(imported->config);
    QCOMPARE(roundTrip.layers.size(), plan.layers.size());
    for (std::size_t i = 0; i < plan.layers.size(); ++i) {
        QCOMPARE(roundTrip.layers[i].name, plan.layers[i].name);
        QCOMPARE(roundTrip.plans[i].config.keepFloat || !roundTrip.plans[i].activationParams, plan.plans[i].config.keepFloat);
        if (plan.plans[i].activationParams) {
            QCOMPARE(roundTrip.plans[i].activationParams->uniform().scale, plan.plans[i].activationParams->uniform().scale);
            QCOMPARE(roundTrip.plans[i].activationParams->uniform().zeroPoint, plan.plans[i].activationParams->uniform().zeroPoint);
        }
        if (plan.plans[i].weightParams) {
            QVERIFY(roundTrip.plans[i].weightParams.has_value());
            QCOMPARE(roundTrip.plans[i].weightParams->uniform().scale, plan.plans[i].weightParams->uniform().scale);
        }
    }
    // The same results: the simulation of the re-imported model and of the original plan.
    const ModelMetrics a = d.evaluator->evaluate(config);
    const ModelMetrics b = again.evaluate(imported->config);
    QCOMPARE(b.predictions, a.predictions);
    QCOMPARE(b.top1, a.top1);
}

void TestQdqExport::unsupportedChoicesAreFloatAndWarned()
{
    QE_REQUIRE_PATH(kFashionTrain);
    Demo d = openDemo(100);
    QuantConfig config;
    config.layers["/conv2/Conv"].weights.scheme = Scheme::KMeans;
    config.layers["/conv2/Conv"].weights.bits = 4;
    config.layers["/conv3/Conv"].activations.scheme = Scheme::Fp8E4M3;
    config.layers["/conv3/Conv"].activations.bits = 8;
    const QuantPlan plan = d.evaluator->plan(config);
    const QdqModel model = exportQdq(plan);
    QCOMPARE(model.warnings.size(), std::size_t{2});
    QVERIFY(QString::fromStdString(model.warnings[0]).contains("/conv2/Conv"));
    QVERIFY(QString::fromStdString(model.warnings[0]).contains("kmeans"));
    QVERIFY(QString::fromStdString(model.warnings[1]).contains("/conv3/Conv"));
    QVERIFY(QString::fromStdString(model.warnings[1]).contains("fp8_e4m3"));
    // conv2's weights are the k-means values themselves, in float; conv1's are int8 codes.
    const QuantLayer& conv2 = plan.layers[2];
    QCOMPARE(conv2.name, std::string("/conv2/Conv"));
    const Tensor& written = model.graph.initializers.at(conv2.weight);
    QCOMPARE(written.dtype(), DataType::Float32);
    QVERIFY(std::equal(written.data<float>(), written.data<float>() + written.size(), plan.graph.initializers.at(conv2.weight).data<float>()));
    QCOMPARE(model.graph.initializers.at(plan.layers[1].weight + "_quantized").dtype(), DataType::Int8);
}

void TestQdqExport::encodingsListEveryQuantizedTensor()
{
    QE_REQUIRE_PATH(kFashionTrain);
    Demo d = openDemo(100);
    const QuantPlan plan = d.evaluator->plan(QuantConfig{});
    const QdqModel model = exportQdq(plan);
    // 6 activations (input + 5 layers), 5 weights, 5 biases.
    QCOMPARE(model.encodings.size(), std::size_t{16});
    const auto json = nlohmann::json::parse(encodingsJson(model.encodings));
    QCOMPARE(json["tensors"].size(), std::size_t{16});
    for (const auto& t : json["tensors"])
        if (t["tensor"] == plan.layers[1].weight) {
            QCOMPARE(t["kind"].get<std::string>(), std::string("weight"));
            QCOMPARE(t["scale"].get<std::vector<float>>(), plan.plans[1].weightParams->uniform().scale);
            QCOMPARE(t["granularity"].get<std::string>(), std::string("per_channel"));
        }
    const std::string csv = encodingsCsv(model.encodings);
    QCOMPARE(std::count(csv.begin(), csv.end(), '\n'), 17L);  // header + 16 rows
    QVERIFY(csv.rfind("tensor,layer,kind,scheme,bits,signed,granularity,axis,code_min,code_max,scale,zero_point,in_qdq_model,levels,"
                      "pre_scale\n", 0) == 0);
    for (const auto& t : json["tensors"])
        QVERIFY(t["in_qdq_model"].get<bool>());
}

void TestQdqExport::encodingsKeepWhatTheQdqModelCannotHold()
{
    // Issue 19: the encodings CSV dropped a k-means layer's weights silently. They are listed,
    // marked as not in the QDQ model, with their codebook; an fp8 activation with its pre-scale.
    QE_REQUIRE_PATH(kFashionTrain);
    Demo d = openDemo(100);
    QuantConfig config;
    config.layers["/conv2/Conv"].weights.scheme = Scheme::KMeans;
    config.layers["/conv2/Conv"].weights.bits = 4;
    config.layers["/conv3/Conv"].activations.scheme = Scheme::Fp8E4M3;
    config.layers["/conv3/Conv"].activations.bits = 8;
    const QuantPlan plan = d.evaluator->plan(config);
    const QdqModel model = exportQdq(plan);
    // 6 activations (conv3's in fp8), 5 weights (conv2's k-means), 3 int32 biases: conv2's stays
    // float with its float weights, and so does fc1's, whose input (conv3's output) has no
    // integer scale.
    QCOMPARE(model.encodings.size(), std::size_t{14});
    const auto json = nlohmann::json::parse(encodingsJson(model.encodings));
    bool sawCodebook = false, sawPreScale = false;
    for (const auto& t : json["tensors"]) {
        if (t["tensor"] == plan.layers[2].weight) {
            sawCodebook = true;
            QCOMPARE(t["scheme"].get<std::string>(), std::string("kmeans"));
            QVERIFY(!t["in_qdq_model"].get<bool>());
            const auto levels = t["levels"].get<std::vector<std::vector<float>>>();
            QCOMPARE(levels.size(), plan.plans[2].weightParams->blockCount());
            QCOMPARE(levels[0], quantizationLevels(*plan.plans[2].weightParams, 0));
        }
        if (t["tensor"] == plan.layers[3].output) {
            sawPreScale = true;
            QCOMPARE(t["scheme"].get<std::string>(), std::string("fp8_e4m3"));
            QVERIFY(!t["in_qdq_model"].get<bool>());
            QCOMPARE(t["pre_scale"].get<std::vector<float>>(), plan.plans[3].activationParams->floatFormat().preScale);
        }
    }
    QVERIFY(sawCodebook && sawPreScale);
    const std::string csv = encodingsCsv(model.encodings);
    QVERIFY(csv.find("\"" + plan.layers[2].weight + "\"") != std::string::npos);
    QVERIFY(csv.find(",kmeans,4,") != std::string::npos);
}

void TestQdqExport::reportSummarizesAConfusionTooLargeToDraw()
{
    // Issue 19: report.md had no confusion matrix for 1000 classes. Beyond 100 classes it lists
    // the most frequent mistakes and the worst classes. Here 150 classes: label i is predicted as
    // i, except that class 7 is taken for class 3 three times and class 9 for class 8 once.
    std::vector<int> labels, predictions;
    for (int i = 0; i < 150; ++i) {
        labels.push_back(i);
        predictions.push_back(i);
    }
    for (int k = 0; k < 3; ++k) {
        labels.push_back(7);
        predictions.push_back(3);
    }
    labels.push_back(9);
    predictions.push_back(8);
    const ConfusionMatrix matrix = confusionMatrix(labels, predictions);
    const std::vector<ConfusedPair> pairs = mostConfusedPairs(matrix, 5);
    QCOMPARE(pairs.size(), std::size_t{2});
    QCOMPARE(pairs[0].label, 7);
    QCOMPARE(pairs[0].predicted, 3);
    QCOMPARE(pairs[0].count, std::size_t{3});
    QCOMPARE(pairs[1].label, 9);
    const std::vector<ClassAccuracy> worst = classAccuracies(matrix);
    QCOMPARE(worst.size(), std::size_t{150});
    QCOMPARE(worst[0].label, 7);  // 1 of 4 right
    QCOMPARE(worst[0].images, std::size_t{4});
    QCOMPARE(worst[1].label, 9);  // 1 of 2 right

    QE_REQUIRE_PATH(kFashionTrain);
    Demo d = openDemo(100);
    const QuantPlan plan = d.evaluator->plan(QuantConfig{});
    ModelMetrics metrics = d.evaluator->evaluate(QuantConfig{});
    metrics.labels = labels;
    metrics.predictions = predictions;
    ReportInput input = reportInputFor(*d.evaluator, QuantConfig{}, plan, metrics);
    input.classNames.assign(150, "name");
    input.classNames[7] = "seven";
    QTemporaryDir dir;
    const auto written = writeReport(dir.path().toStdString(), input);
    QVERIFY(!QFile::exists(dir.path() + "/confusion_matrix.png"));
    QFile md(dir.path() + "/report.md");
    QVERIFY(md.open(QIODevice::ReadOnly));
    const QString text = QString::fromUtf8(md.readAll());
    QVERIFY(text.contains("## Confusion matrix"));
    QVERIFY(text.contains("150 classes are too many to draw"));
    QVERIFY2(text.contains("| 7 seven | 3 name | 3 |"), qPrintable(text));
}

QTEST_APPLESS_MAIN(TestQdqExport)
#include "tst_qdq_export.moc"
