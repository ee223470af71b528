// The demo vision transformer (resources/models/fashion_vit.onnx) quantized: its layer table,
// per-token dynamic activations, SmoothQuant and the int8 engine, on Fashion-MNIST.

#include "data/dataset.h"
#include "engine/executor.h"
#include "engine/graph_preparation.h"
#include "quant/layers.h"
#include "repair/smoothquant.h"
#include "study/study.h"
#include "sanitizer.h"
#include "test_support.h"

#include <QTemporaryDir>
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <set>

using namespace qe;
namespace fs = std::filesystem;

namespace {

const fs::path kVit = test::sourceDir() / "resources/models/fashion_vit.onnx";
const fs::path kFashionTest = fs::path(QE_FASHION_MNIST_DIR) / "t10k-images-idx3-ubyte.gz";
const fs::path kFashionTrain = fs::path(QE_FASHION_MNIST_DIR) / "train-images-idx3-ubyte.gz";
constexpr int kBlocks = 4;  // scripts/train_demo_vit.py's depth
// Images evaluated; under a sanitizer fewer, and the bars that need 500 to hold are left to the
// normal pass (tests/sanitizer.h).
constexpr std::size_t kImages = test::unlessSanitized<std::size_t>(500, 100);

StudySources vitSources(std::size_t images)
{
    StudySources sources;
    sources.model = kVit;
    sources.data = kFashionTest;
    sources.calibrationData = kFashionTrain;
    sources.evaluationImages = images;
    return sources;
}

QuantConfig w8a8PerTensor()
{
    QuantConfig c;
    c.calibrationImages = 256;
    c.defaultWeights = {true, Scheme::Symmetric, 8, Granularity::PerChannel};
    c.defaultActivations = {true, Scheme::Affine, 8, Granularity::PerTensor};
    return c;
}

QuantConfig w8PerTokenDynamic()
{
    QuantConfig c = w8a8PerTensor();
    c.defaultActivations.dynamic = true;
    c.defaultActivations.granularity = Granularity::PerToken;
    return c;
}

}  // namespace

class TestTransformer : public QObject {
    Q_OBJECT
private slots:
    void init();
    void layerTableListsTheTransformerLayers();
    void perTokenActivationsRunAndStayInFloatInTheEngine();
    void smoothQuantKeepsTheFunctionAndBalancesTheChannels();
    void int8EngineRunsTheTransformer();
    void activationChannelsShowTheOutliers();
    void exportRunsInOnnxRuntime();
};

void TestTransformer::init()
{
    QE_REQUIRE_PATH(kFashionTest);
    QE_REQUIRE_PATH(kFashionTrain);
}

// The attention and MLP products, the LayerNorms, Softmax and the GELU's Erf are layers a user
// can quantize one by one.
void TestTransformer::layerTableListsTheTransformerLayers()
{
    const Graph graph = loadOnnx(kVit);
    std::map<std::string, int> count;
    for (const QuantLayer& layer : findQuantLayers(graph))
        ++count[layer.opType];
    QCOMPARE(count["LayerNormalization"], 2 * kBlocks + 1);
    QCOMPARE(count["Softmax"], kBlocks);
    QCOMPARE(count["Erf"], kBlocks);
    // Q, K, V, the output projection, two MLP layers per block (weighted), Q.K^T and
    // attention.V (two activations) per block, and the head (a Gemm).
    QCOMPARE(count["MatMul"], 8 * kBlocks);
    QCOMPARE(count["Gemm"], 1);
    QCOMPARE(count["Conv"], 1);  // the patch embedding
}

// Per token, each row of a tensor gets its own range at run time: the simulation runs it, the
// int8 engine computes those layers in float and says why, and accuracy stays near float's.
void TestTransformer::perTokenActivationsRunAndStayInFloatInTheEngine()
{
    Study study(vitSources(kImages));
    const StudyResult perToken = study.evaluate(w8PerTokenDynamic(), {.integerEngine = true});
    const StudyResult perTensor = study.evaluate(w8a8PerTensor());
    qInfo("fashion_vit, %zu images: float %.2f%%, W8A8 per tensor %.2f%% (output SQNR %.1f dB), W8 per-token dynamic %.2f%% "
          "(%.1f dB)",
          kImages, 100 * perToken.metrics.floatTop1, 100 * perTensor.metrics.top1, perTensor.metrics.outputSqnrDb, 100 * perToken.metrics.top1,
          perToken.metrics.outputSqnrDb);
    if (!test::kSanitizerBuild)
        QVERIFY(perToken.metrics.top1 >= perToken.metrics.floatTop1 - 0.01);
    // Per token is never coarser than per tensor on the same values, so the model loses less.
    QVERIFY2(perToken.metrics.outputSqnrDb > perTensor.metrics.outputSqnrDb,
             qPrintable(QString("per token %1 dB, per tensor %2 dB").arg(perToken.metrics.outputSqnrDb).arg(perTensor.metrics.outputSqnrDb)));
    const IntegerEvaluation& engine = *perToken.integer;
    std::size_t perTokenInFloat = 0;
    for (const LayerExecution& layer : engine.layers)
        if (!layer.integer && layer.reason.find("per-token") != std::string::npos)
            ++perTokenInFloat;
    QVERIFY(perTokenInFloat > 0);
    if (!test::kSanitizerBuild)
        QVERIFY(engine.agreementWithSimulation >= 0.99);
}

// SmoothQuant on each block's two LayerNorms: the float outputs do not change, and with alpha 0.5
// each channel's activation and weight ranges meet at sqrt(max|x_j| max|w_j|) (the paper's
// balance). The final LayerNorm feeds a Gather (the class token): skipped, with the reason.
void TestTransformer::smoothQuantKeepsTheFunctionAndBalancesTheChannels()
{
    const Graph original = loadOnnx(kVit);
    const std::vector<QuantLayer> layers = findQuantLayers(original);
    QuantConfig config = w8a8PerTensor();
    config.repairs.smoothQuant = true;
    const auto dataset = openDataset(kFashionTrain);
    const Preprocess mnist = test::makePreprocess(ColorOrder::Gray, 1.0 / 255, 0, 1, 1.0);
    RepairImages images{dataset.get(), &mnist, 64, 0};
    Graph smoothed = original;
    std::vector<SkippedRepair> skipped;
    const std::vector<SmoothedGroup> groups = smoothQuant(smoothed, layers, config, images, {}, skipped);
    QCOMPARE(int(groups.size()), 2 * kBlocks);
    QCOMPARE(skipped.size(), std::size_t(1));
    QVERIFY2(skipped[0].reason.find("Gather") != std::string::npos, skipped[0].reason.c_str());
    std::set<std::size_t> consumerCounts;
    for (const SmoothedGroup& g : groups) {
        consumerCounts.insert(g.consumers.size());
        QCOMPARE(g.images, std::size_t(64));
        for (std::size_t j = 0; j < g.scales.size(); ++j) {
            const double x = g.activationMax[j] / g.scales[j], w = g.weightMax[j] * g.scales[j];
            QVERIFY2(std::abs(x / w - 1) < 1e-4, qPrintable(QString("%1 channel %2: %3 vs %4").arg(g.layerNorm.c_str()).arg(j).arg(x).arg(w)));
        }
    }
    QCOMPARE(consumerCounts, (std::set<std::size_t>{1, 3}));  // fc1; Q, K and V

    // The function is the same on test images.
    const Tensor batch = makeBatch(*openDataset(kFashionTest), 0, 32, mnist, 1, 28, 28);
    const Tensor before = Executor(original).run({{original.inputs[0].name, batch}}).at(original.outputs[0].name);
    const Tensor after = Executor(smoothed).run({{smoothed.inputs[0].name, batch}}).at(smoothed.outputs[0].name);
    const std::string difference = test::compareClose(after, before, 1e-3, 1e-4);
    QVERIFY2(difference.empty(), difference.c_str());

    // Through the study: the repair runs, reports, and the quantized model does not get worse.
    Study study(vitSources(kImages));
    const StudyResult plain = study.evaluate(w8a8PerTensor());
    const StudyResult repaired = study.evaluate(config);
    QVERIFY(repaired.repairs && repaired.repairs->smoothed.size() == groups.size());
    qInfo("fashion_vit W8A8 per tensor: %.2f%% (%.1f dB), with SmoothQuant %.2f%% (%.1f dB)", 100 * plain.metrics.top1,
          plain.metrics.outputSqnrDb, 100 * repaired.metrics.top1, repaired.metrics.outputSqnrDb);
    if (!test::kSanitizerBuild)
        QVERIFY(repaired.metrics.top1 >= plain.metrics.top1 - 0.01);
}

// W8A8 per tensor in the int8 engine: the weighted products run in integers, LayerNorm, Softmax
// and Erf in float with a stated reason, and the predictions agree with the simulation.
void TestTransformer::int8EngineRunsTheTransformer()
{
    Study study(vitSources(kImages));
    const StudyResult result = study.evaluate(w8a8PerTensor(), {.integerEngine = true});
    const IntegerEvaluation& engine = *result.integer;
    std::map<std::string, int> integer, total;
    for (const LayerExecution& layer : engine.layers) {
        ++total[layer.opType];
        integer[layer.opType] += layer.integer;
        if (!layer.integer)
            QVERIFY2(!layer.reason.empty(), layer.layer.c_str());
    }
    qInfo("int8 engine: %.2f%% (simulation %.2f%%), agreement %.2f%%; MatMul %d of %d in integers", 100 * engine.top1,
          100 * engine.simulatedTop1, 100 * engine.agreementWithSimulation, integer["MatMul"], total["MatMul"]);
    QVERIFY(integer["MatMul"] >= 6 * kBlocks);  // at least every MatMul with weights
    QVERIFY(integer["Conv"] == 1);
    if (test::kSanitizerBuild)
        return;
    QVERIFY(engine.agreementWithSimulation >= 0.98);
    QVERIFY(std::abs(engine.top1 - result.metrics.top1) <= 0.01);
}

// A LayerNorm's row in the window shows its activation's channels: 64 hidden channels whose
// ranges together are the tensor's range (the histogram's, computed separately), and the share
// of each channel one per-tensor range rounds to zero.
void TestTransformer::activationChannelsShowTheOutliers()
{
    Study study(vitSources(200));
    const QuantConfig config = w8a8PerTensor();
    study.evaluate(config);
    const std::string ln = "/blocks/blocks.0/ln1/LayerNormalization";
    const LayerHistograms h = study.layerHistograms(config, ln, {});
    QVERIFY(h.channelRanges && h.activations && !h.weights);
    const ChannelRanges& r = *h.channelRanges;
    QVERIFY(r.activations);
    QCOMPARE(r.images, std::size_t(200));
    QCOMPARE(r.min.size(), std::size_t(64));
    QCOMPARE(*std::min_element(r.min.begin(), r.min.end()), h.activations->min);
    QCOMPARE(*std::max_element(r.max.begin(), r.max.end()), h.activations->max);
    QCOMPARE(r.perTensorZeroFraction.size(), std::size_t(64));
    for (double f : r.perTensorZeroFraction)
        QVERIFY(f >= 0 && f <= 1);
    qInfo("%s: channel ranges from %.3g to %.3g, largest channel / median %.1f", ln.c_str(), double(h.activations->min),
          double(h.activations->max), double(outlierRatio(r.max)));
}

// The QDQ export of W8A8 per tensor: ONNX Runtime scores what the window showed (the simulation)
// and predicts what the int8 engine predicts. Opened again (as the window and bench/vit_peers.sh
// open a QDQ file: its own scales become the configuration), the int8 engine runs the file's
// quantization: the same layers in integers and the same predictions.
void TestTransformer::exportRunsInOnnxRuntime()
{
    Study study(vitSources(kImages));
    const QuantConfig config = w8a8PerTensor();
    const StudyResult result = study.evaluate(config, {.integerEngine = true});
    QTemporaryDir dir;
    const fs::path path = (dir.path() + "/fashion_vit_w8a8.onnx").toStdString();
    study.exportQdqModel(config, path);

    StudySources reopenedSources = vitSources(kImages);
    reopenedSources.model = path;
    Study reopened(reopenedSources);
    QVERIFY(reopened.modelConfig().has_value());
    const StudyResult again = reopened.evaluate(*reopened.modelConfig(), {.integerEngine = true});
    std::size_t sameAsBefore = 0;
    for (std::size_t i = 0; i < again.integer->predictions.size(); ++i)
        sameAsBefore += again.integer->predictions[i] == result.integer->predictions[i];
    qInfo("reopened QDQ export: int8 engine %.2f%% (before export %.2f%%), %zu of %zu layers in integers (before %zu), same "
          "prediction on %zu of %zu",
          100 * again.integer->top1, 100 * result.integer->top1, again.integer->integerLayers, again.integer->layers.size(),
          result.integer->integerLayers, sameAsBefore, kImages);
    QCOMPARE(again.integer->integerLayers, result.integer->integerLayers);
    QVERIFY(sameAsBefore >= kImages - kImages / 100);

    QString why;
    const std::vector<int> ort = test::onnxRuntimePredictions(*study.dataset(), study.preprocess(), path, kImages, 1, 28, 28, why);
    if (QTest::currentTestFailed())
        return;
    if (ort.empty())
        QSKIP(qPrintable("ONNX Runtime not checked: " + why));
    std::size_t same = 0, correct = 0;
    for (std::size_t i = 0; i < ort.size(); ++i) {
        same += ort[i] == result.integer->predictions[i];
        correct += ort[i] == study.dataset()->label(i);
    }
    const double ortTop1 = double(correct) / double(ort.size());
    qInfo("fashion_vit W8A8 QDQ: ONNX Runtime %.2f%%, simulation %.2f%%, int8 engine %.2f%%, same prediction as the engine on %zu "
          "of %zu",
          100 * ortTop1, 100 * result.metrics.top1, 100 * result.integer->top1, same, ort.size());
    if (test::kSanitizerBuild)
        return;
    QVERIFY(std::abs(ortTop1 - result.metrics.top1) <= 0.01);
    QVERIFY(double(same) / double(ort.size()) >= 0.98);
}

QTEST_APPLESS_MAIN(TestTransformer)
#include "tst_transformer.moc"
