// The repairs of core/repair/ on real models and images: cross-layer equalization computes the
// same function (float tolerance) and balances each pair's channel ranges (the paper's fixed
// point r1_i = r2_i); it rescues per-tensor W8A8 on MobileNetV1 (the paper's headline); bias
// correction removes the mean output shift weight quantization causes, measured on images the
// correction never saw; the int8 engine stays bit-exact with the simulation under repairs and the
// QDQ export carries them; the study repairs once per repair setting.

#include "common/error.h"
#include "engine/executor.h"
#include "engine/graph_preparation.h"
#include "engine/operator.h"
#include "quant/layers.h"
#include "quant/qdq_import.h"
#include "quant/simulator.h"
#include "repair/bias_correction.h"
#include "repair/repair.h"
#include "repair/weight_channels.h"
#include "study/study.h"
#include "sanitizer.h"
#include "test_support.h"

#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

Q_DECLARE_METATYPE(qe::Preprocess)

using namespace qe;
namespace fs = std::filesystem;

namespace {

const fs::path kDemoModel = test::sourceDir() / "resources/models/fashion_cnn.onnx";
const fs::path kFashionTest = fs::path(QE_FASHION_MNIST_DIR) / "t10k-images-idx3-ubyte.gz";
const fs::path kFashionTrain = fs::path(QE_FASHION_MNIST_DIR) / "train-images-idx3-ubyte.gz";
const fs::path kImageNet = test::sharedDir() / "data/imagenet_val_227_300";
const fs::path kMobileNet05 = test::sharedDir() / "models/mobilenet_v1_0.5_160_float.onnx";
const fs::path kResNet8 = test::sharedDir() / "models/resnet8_cifar10.onnx";
const fs::path kCifar = test::sharedDir() / "data/cifar10_mlperf_tiny_200/test_200.bin";

// Demo-model images the study evaluates on. Under a sanitizer fewer, AdaRound runs shorter, and
// the bars that need the full count or the full optimisation are left to the normal pass
// (tests/sanitizer.h).
const std::size_t kDemoImages = test::unlessSanitized<std::size_t>(1000, 200);

// W4A8 per channel with AdaRound on every layer, short enough for a test (the defaults are
// 10,000 iterations on 256 images).
QuantConfig perChannelW4A8AdaRound()
{
    QuantConfig config;
    config.defaultWeights.bits = 4;
    config.calibrationImages = 128;
    config.repairs.adaRound = {true, test::unlessSanitized(1500, 200), 64};
    return config;
}

QuantConfig perTensorW8A8()
{
    QuantConfig config;
    config.defaultWeights.granularity = Granularity::PerTensor;
    config.calibration.method = CalibrationMethod::MinMax;
    return config;
}

// Per-tensor W8A8 with both repairs on every layer: what the int8 engine and the export run.
QuantConfig perTensorW8A8Repaired()
{
    QuantConfig config = perTensorW8A8();
    config.repairs.equalization = true;
    config.repairs.biasCorrection = BiasCorrection::Empirical;
    return config;
}

// The model's output on the first `count` images, by `graph`.
Tensor outputOn(const Graph& graph, const Dataset& data, const Preprocess& preprocess, std::size_t count)
{
    const ImageInputGeometry g = imageInputGeometry(graph);
    const Tensor batch = makeBatch(data, 0, count, preprocess, g.channels, g.height, g.width);
    return Executor(graph).run({{graph.inputs[0].name, batch}}).at(graph.outputs[0].name);
}

// Per output channel of `layer`: the mean over `images` of (layer with the weights `quantized`
// and the bias of `corrected`) minus (layer with the float weights and bias of `original`), both
// on the float inputs `original` gives the layer.
std::vector<double> meanOutputShift(const Graph& original, const Graph& corrected, const QuantLayer& layer, const Tensor& quantized,
                                    const Dataset& images, const Preprocess& preprocess, std::size_t count)
{
    const Node& node = original.nodes.at(std::size_t(layer.nodeIndex));
    const Node& correctedNode = corrected.nodes.at(std::size_t(layer.nodeIndex));
    const ImageInputGeometry g = imageInputGeometry(original);
    const Tensor batch = makeBatch(images, 0, count, preprocess, g.channels, g.height, g.width);
    RunOptions run;
    run.capture.insert(node.input(0));
    const Tensor input = Executor(original).run({{original.inputs[0].name, batch}}, run).at(node.input(0));
    const Tensor* bias = node.input(2).empty() ? nullptr : &original.initializers.at(node.input(2));
    const Tensor* correctedBias = correctedNode.input(2).empty() ? nullptr : &corrected.initializers.at(correctedNode.input(2));
    const Tensor exact = runNode(node, original.opsetVersion, {&input, &original.initializers.at(layer.weight), bias}).at(0);
    const Tensor repaired = runNode(correctedNode, corrected.opsetVersion, {&input, &quantized, correctedBias}).at(0);
    Tensor difference = repaired.clone();
    for (std::int64_t k = 0; k < difference.size(); ++k)
        difference.mutableData<float>()[k] -= exact.data<float>()[k];
    std::vector<double> sum, unused;
    std::size_t n = 0;
    accumulateChannelMoments(difference, activationChannelAxis(difference, layer.opType == "Conv"), sum, unused, n);
    for (double& s : sum)
        s /= double(n);
    return sum;
}

double largestMagnitude(const std::vector<double>& values)
{
    double m = 0;
    for (double v : values)
        m = std::max(m, std::abs(v));
    return m;
}

StudySources demoSources(std::size_t images)
{
    StudySources sources;
    sources.model = kDemoModel;
    sources.data = kFashionTest;
    sources.calibrationData = kFashionTrain;
    sources.evaluationImages = images;
    return sources;
}

StudySources mobileNetSources()
{
    StudySources sources;
    sources.model = kMobileNet05;
    sources.data = kImageNet;
    sources.labelColumn = "label_1001";
    sources.calibrationImages = 64;  // the shared set has no calibration split: the first 64 evaluation images
    sources.evaluationImages = test::unlessSanitized<std::size_t>(0, 50);  // 0: all 300
    sources.adjustPreprocess = [](Preprocess& p) { p = test::makePreprocess(ColorOrder::Rgb, 1.0, 128, 128, 0.875); };
    return sources;
}

// ONNX Runtime (when onnxruntime-node can be had, as in tst_qdq_export) on the exported demo model
// `path`: the same top-1 as the int8 engine's `ours` (0.2 points) and the same prediction on
// 99.5% of the images. Skips the test, with the reason, when ONNX Runtime is missing.
void checkOnnxRuntimeScoresLikeTheInt8Engine(const Dataset& data, const Preprocess& preprocess, const fs::path& path,
                                             const IntegerEvaluation& ours)
{
    QString why;
    const std::size_t n = ours.predictions.size();
    const std::vector<int> ort = test::onnxRuntimePredictions(data, preprocess, path, n, 1, 28, 28, why);
    if (QTest::currentTestFailed())
        return;
    if (ort.empty())
        QSKIP(qPrintable("the QDQ import agrees; ONNX Runtime not checked: " + why));
    QCOMPARE(ort.size(), n);
    std::size_t ortSame = 0, ortCorrect = 0;
    for (std::size_t i = 0; i < n; ++i) {
        ortSame += ort[i] == ours.predictions[i];
        ortCorrect += ort[i] == data.label(i);
    }
    qInfo("ONNX Runtime on the repaired export: top-1 %.2f%% (int8 engine %.2f%%), same prediction on %zu of %zu images",
          100.0 * double(ortCorrect) / double(n), 100 * ours.top1, ortSame, n);
    if (test::kSanitizerBuild)
        return;  // on 200 images 0.2 points is no image at all
    QVERIFY(std::abs(double(ortCorrect) / double(n) - ours.top1) <= 0.002);
    QVERIFY(double(ortSame) / double(n) >= 0.995);
}

}  // namespace

class TestRepair : public QObject {
    Q_OBJECT
private slots:
    void equalizationKeepsTheFunction_data();
    void equalizationKeepsTheFunction();
    void reluSixPairsAreSkippedUnlessAllowed();
    void clippedNormalMeanMatchesIntegration_data();
    void clippedNormalMeanMatchesIntegration();
    void empiricalBiasCorrectionRemovesTheMeanShift();
    void analyticalBiasCorrectionUsesFoldedBatchNorm();
    void equalizationRescuesPerTensorMobileNet();
    void equalizationLeavesDecayedChannelsAlone();
    void int8EngineStaysExactUnderRepairs();
    void exportCarriesTheRepairs();
    void repairsAreCachedAcrossUnrelatedEdits();
    void adaRoundThroughTheStudy();
    void adaRoundIsCancelledWithProgress();
};

void TestRepair::equalizationKeepsTheFunction_data()
{
    QTest::addColumn<QString>("model");
    QTest::addColumn<QString>("data");
    QTest::addColumn<Preprocess>("preprocess");
    QTest::addColumn<int>("pairs");  // how many pairs the model has
    const Preprocess imagenet = test::makePreprocess(ColorOrder::Rgb, 1.0, 128, 128, 0.875);
    QTest::newRow("demo") << QString::fromStdString(kDemoModel.string()) << QString::fromStdString(kFashionTest.string())
                          << test::makePreprocess(ColorOrder::Gray, 1.0 / 255, 0, 1, 1) << 3;
    // MobileNetV1: 13 depthwise -> pointwise and 13 pointwise (or the first conv) -> depthwise.
    QTest::newRow("mobilenet 0.25") << QString::fromStdString((test::sharedDir() / "models/mobilenet_v1_0.25_128_float.onnx").string())
                                    << QString::fromStdString(kImageNet.string()) << imagenet << 26;
    QTest::newRow("mobilenet 0.5") << QString::fromStdString(kMobileNet05.string()) << QString::fromStdString(kImageNet.string())
                                   << imagenet << 26;
    QTest::newRow("vww mobilenet 0.25") << QString::fromStdString((test::sharedDir() / "models/vww_96_mobilenetv1_025.onnx").string())
                                        << QString::fromStdString((test::sharedDir() / "data/vww_coco_96_200").string())
                                        << test::makePreprocess(ColorOrder::Rgb, 1.0 / 255, 0, 1, 1) << 26;
}

// The MobileNets' ReLU6 are made ReLUs first (relu6AsRelu), in the graph equalization is compared
// with too, so that what is measured is equalization alone.
void TestRepair::equalizationKeepsTheFunction()
{
    QFETCH(QString, model);
    QFETCH(QString, data);
    QFETCH(Preprocess, preprocess);
    QFETCH(int, pairs);
    QE_REQUIRE_PATH(fs::path(model.toStdString()));
    QE_REQUIRE_PATH(fs::path(data.toStdString()));
    Graph original = loadOnnx(model.toStdString());
    const std::vector<QuantLayer> layers = findQuantLayers(original);
    const std::vector<bool> all(layers.size(), true);
    std::vector<SkippedRepair> skipped;
    const std::vector<EqualizationPair> found = findEqualizationPairs(original, layers, all, all, skipped);
    QCOMPARE(int(found.size()), pairs);
    makeClipsRelu(original, layers, found);  // a no-op on the demo model, which has ReLUs

    Graph equalized = original;
    const Equalization result = equalizePairs(equalized, layers, found, 2000);
    qInfo("%s: %zu pairs equalized in %d sweeps", qPrintable(QFileInfo(model).fileName()), result.pairs.size(), result.sweeps);
    QVERIFY(result.sweeps < 2000);  // converged

    // The paper's fixed point: each pair's ranges are equal per channel, r1_i = r2_i
    // (= sqrt(r1_i r2_i) of the ranges before), and the scales moved something.
    double largestScale = 1;
    // Channels without weights on one side (0, or under 2^-24 of that layer's largest channel, as
    // weight decay leaves them) have nothing to balance and are left alone, or cleared when dead.
    for (const EqualizedPair& p : result.pairs) {
        const float negligible1 = *std::max_element(p.firstRangesAfter.begin(), p.firstRangesAfter.end()) * 0x1p-24f;
        const float negligible2 = *std::max_element(p.secondRangesAfter.begin(), p.secondRangesAfter.end()) * 0x1p-24f;
        for (std::size_t i = 0; i < p.scales.size(); ++i) {
            if (p.firstRangesAfter[i] <= negligible1 || p.secondRangesAfter[i] <= negligible2 || p.scales[i] == 0)
                continue;
            const double ratio = p.firstRangesAfter[i] / p.secondRangesAfter[i];
            QVERIFY2(std::abs(ratio - 1) < 1e-3, qPrintable(QString("%1 -> %2, channel %3: r1 %4, r2 %5")
                                                                .arg(QString::fromStdString(p.first), QString::fromStdString(p.second))
                                                                .arg(i)
                                                                .arg(p.firstRangesAfter[i])
                                                                .arg(p.secondRangesAfter[i])));
            largestScale = std::max({largestScale, double(p.scales[i]), 1.0 / p.scales[i]});
        }
    }
    QVERIFY(largestScale > 1.5);

    // The same outputs, to float tolerance, on real images.
    const std::shared_ptr<const Dataset> images = openDataset(data.toStdString());
    const std::size_t count = imageInputGeometry(original).fixedBatchOfOne ? 1 : 16;
    const Tensor before = outputOn(original, *images, preprocess, count);
    const Tensor after = outputOn(equalized, *images, preprocess, count);
    const std::string difference = test::compareClose(after, before, 1e-3, 1e-5);
    QVERIFY2(difference.empty(), difference.c_str());
}

void TestRepair::reluSixPairsAreSkippedUnlessAllowed()
{
    QE_REQUIRE_PATH(kMobileNet05);
    const Graph graph = loadOnnx(kMobileNet05);
    const std::vector<QuantLayer> layers = findQuantLayers(graph);
    QuantConfig config;
    config.repairs.equalization = true;
    const RepairedModel exact = repair(graph, layers, config, {});
    QVERIFY(exact.report.equalized.empty());
    QCOMPARE(exact.report.skipped.size(), std::size_t(26));
    QVERIFY(QString::fromStdString(exact.report.skipped[0].reason).contains("ReLU6"));
    for (const QuantLayer& layer : layers)  // nothing changed
        if (!layer.weight.empty())
            QCOMPARE(exact.graph->initializers.at(layer.weight).data<float>(), graph.initializers.at(layer.weight).data<float>());

    config.repairs.relu6AsRelu = true;
    const RepairedModel relu = repair(graph, layers, config, {});
    QCOMPARE(relu.report.equalized.size(), std::size_t(26));
    QVERIFY(relu.report.skipped.empty());
    QVERIFY(relu.report.equalized[0].clipBecameRelu);
}

void TestRepair::clippedNormalMeanMatchesIntegration_data()
{
    QTest::addColumn<double>("mean");
    QTest::addColumn<double>("stddev");
    QTest::addColumn<double>("lo");
    QTest::addColumn<double>("hi");
    const double inf = std::numeric_limits<double>::infinity();
    QTest::newRow("relu, mostly negative") << -1.0 << 0.5 << 0.0 << inf;
    QTest::newRow("relu, centred") << 0.0 << 1.0 << 0.0 << inf;
    QTest::newRow("relu6, wide") << 3.0 << 4.0 << 0.0 << 6.0;
    QTest::newRow("no activation") << 0.7 << 2.0 << -inf << inf;
}

// Against a plain numerical integral of clamp(y) times the normal density.
void TestRepair::clippedNormalMeanMatchesIntegration()
{
    QFETCH(double, mean);
    QFETCH(double, stddev);
    QFETCH(double, lo);
    QFETCH(double, hi);
    double integral = 0;
    const double step = stddev / 2000;
    for (double y = mean - 12 * stddev; y < mean + 12 * stddev; y += step) {
        const double z = (y + step / 2 - mean) / stddev;
        integral += std::clamp(y + step / 2, lo, hi) * std::exp(-0.5 * z * z) / (stddev * std::sqrt(2 * M_PI)) * step;
    }
    QVERIFY2(std::abs(clippedNormalMean(mean, stddev, lo, hi) - integral) < 1e-6,
             qPrintable(QString("%1 against %2").arg(clippedNormalMean(mean, stddev, lo, hi)).arg(integral)));
}

// 4-bit per-channel weights on the demo model: the correction is measured on 512 training images
// and checked on 1000 test images it never saw.
void TestRepair::empiricalBiasCorrectionRemovesTheMeanShift()
{
    QE_REQUIRE_PATH(kFashionTest);
    QE_REQUIRE_PATH(kFashionTrain);
    const Graph graph = loadOnnx(kDemoModel);
    const Preprocess preprocess = *Preprocess::loadSidecar(kDemoModel);
    const std::vector<QuantLayer> layers = findQuantLayers(graph);
    const auto train = openDataset(kFashionTrain), test = openDataset(kFashionTest);
    QuantConfig config;
    config.defaultWeights.bits = 4;
    config.repairs.biasCorrection = BiasCorrection::Empirical;
    const RepairedModel repaired = repair(graph, layers, config, {train.get(), &preprocess, 512});
    QCOMPARE(repaired.report.biasCorrected.size(), std::size_t(5));  // every weighted layer
    for (const QuantLayer& layer : layers) {
        if (layer.weight.empty())
            continue;
        Tensor quantized;
        quantizeLayerWeights(layer, config.resolve(layer.name).weights, graph.initializers.at(layer.weight), quantized);
        const std::vector<double> before = meanOutputShift(graph, graph, layer, quantized, *test, preprocess, 1000);
        const std::vector<double> after = meanOutputShift(graph, *repaired.graph, layer, quantized, *test, preprocess, 1000);
        qInfo("%s: largest per-channel mean shift %.5f before, %.5f after", layer.name.c_str(), largestMagnitude(before),
              largestMagnitude(after));
        QVERIFY(largestMagnitude(before) > 1e-3);
        QVERIFY2(largestMagnitude(after) < 0.2 * largestMagnitude(before), layer.name.c_str());
    }
}

// ResNet-8 keeps its BatchNormalization in the file, so folding gives each layer beta and |gamma|:
// the analytical correction needs no images, and still lowers the measured shift.
void TestRepair::analyticalBiasCorrectionUsesFoldedBatchNorm()
{
    QE_REQUIRE_PATH(kResNet8);
    QE_REQUIRE_PATH(kCifar);
    const Graph graph = loadOnnx(kResNet8);
    QVERIFY(!graph.foldedNormalization.empty());
    const Preprocess preprocess = test::makePreprocess(ColorOrder::Rgb, 1, 0, 1, 1);
    const std::vector<QuantLayer> layers = findQuantLayers(graph);
    const auto images = openDataset(kCifar);
    QuantConfig config;
    config.defaultWeights.bits = 4;
    config.defaultWeights.granularity = Granularity::PerTensor;
    config.repairs.biasCorrection = BiasCorrection::Analytical;
    const RepairedModel repaired = repair(graph, layers, config, {});
    QVERIFY(!repaired.report.biasCorrected.empty());
    double before = 0, after = 0;
    for (const BiasCorrectionReport& corrected : repaired.report.biasCorrected) {
        QVERIFY(QString::fromStdString(corrected.statistics).contains("batch normalization"));
        const QuantLayer& layer = *std::find_if(layers.begin(), layers.end(), [&](const QuantLayer& l) { return l.name == corrected.layer; });
        Tensor quantized;
        quantizeLayerWeights(layer, config.resolve(layer.name).weights, graph.initializers.at(layer.weight), quantized);
        const double b = largestMagnitude(meanOutputShift(graph, graph, layer, quantized, *images, preprocess, 200));
        const double a = largestMagnitude(meanOutputShift(graph, *repaired.graph, layer, quantized, *images, preprocess, 200));
        qInfo("%s (%s): largest per-channel mean shift %.4f before, %.4f after", layer.name.c_str(), corrected.statistics.c_str(), b, a);
        before += b;
        after += a;
    }
    QVERIFY2(after < 0.7 * before, qPrintable(QString("summed largest shifts: %1 before, %2 after").arg(before).arg(after)));
}

// Per-tensor W8A8 on MobileNetV1 0.5 at 160: the depthwise layers' channel ranges differ by orders
// of magnitude and per-tensor weights lose most channels. Equalization (through its ReLU6, made
// ReLUs, as in the paper) gives many back; so does bias correction alone, which removes the
// mean shift of the channels that round to few levels. (This TensorFlow model loses about 19
// points in float when its ReLU6 become ReLUs, which bounds what equalization can reach.)
void TestRepair::equalizationRescuesPerTensorMobileNet()
{
    QE_REQUIRE_PATH(kMobileNet05);
    QE_REQUIRE_PATH(kImageNet);
    Study study(mobileNetSources());
    QuantConfig config = perTensorW8A8();
    const StudyResult nearest = study.evaluate(config);
    config.repairs.biasCorrection = BiasCorrection::Empirical;
    const StudyResult corrected = study.evaluate(config);
    config.repairs.equalization = true;
    config.repairs.relu6AsRelu = true;
    const StudyResult both = study.evaluate(config);
    config.repairs.biasCorrection = BiasCorrection::None;
    const StudyResult equalized = study.evaluate(config);
    qInfo("MobileNetV1 0.5 160, per-tensor W8A8 on %zu images: float %.1f%%, nearest %.1f%%, + equalization %.1f%%, "
          "+ equalization + bias correction %.1f%%, bias correction alone %.1f%%",
          nearest.metrics.images, 100 * nearest.metrics.floatTop1, 100 * nearest.metrics.top1, 100 * equalized.metrics.top1,
          100 * both.metrics.top1, 100 * corrected.metrics.top1);
    QCOMPARE(equalized.metrics.floatTop1, nearest.metrics.floatTop1);  // the reference stays the original model
    QVERIFY(equalized.repairs && equalized.repairs->equalized.size() == 26);
    if (test::kSanitizerBuild)
        return;
    QVERIFY(equalized.metrics.top1 > nearest.metrics.top1 + 0.10);
    QVERIFY(corrected.metrics.top1 > nearest.metrics.top1 + 0.20);
}

// The VWW MobileNet was trained with weight decay: up to 167 of a layer's 256 channels have
// weights of 1e-30, not 0. Balanced against them, equalization scaled those channels' outputs by
// up to 1e+15, and the activation range every other channel is quantized in with them: W8A8
// fell from 84% to 50% (one class) although the float model was unchanged. Such channels are
// now treated as having no weights (the dead ones cleared, the others left alone): every scale
// stays moderate and equalization keeps the quantized model within 3 points of float (the
// MANIFEST's 85.0% on these 200 images).
void TestRepair::equalizationLeavesDecayedChannelsAlone()
{
    const fs::path model = test::sharedDir() / "models/vww_96_mobilenetv1_025.onnx";
    const fs::path data = test::sharedDir() / "data/vww_coco_96_200";
    QE_REQUIRE_PATH(model);
    QE_REQUIRE_PATH(data);
    StudySources sources;
    sources.model = model;
    sources.data = data;
    sources.calibrationImages = 200;  // no calibration split is shipped beside these images
    sources.adjustPreprocess = [](Preprocess& p) { p = test::makePreprocess(ColorOrder::Rgb, 1.0 / 255, 0, 1, 1); };
    Study study(sources);
    QuantConfig config;  // W8A8, per-channel weights
    config.repairs.equalization = true;
    const StudyResult result = study.evaluate(config);
    QVERIFY(result.repairs && result.repairs->equalized.size() == 26);
    std::size_t cleared = 0;
    for (const EqualizedPair& pair : result.repairs->equalized)
        for (float scale : pair.scales) {
            cleared += scale == 0.f;
            QVERIFY2(scale == 0.f || (scale > 1e-3f && scale < 1e3f),
                     qPrintable(QString("%1 -> %2: scale %3").arg(QString::fromStdString(pair.first), QString::fromStdString(pair.second)).arg(scale)));
        }
    qInfo("VWW MobileNetV1 0.25, W8A8 + equalization on %zu images: float %.1f%%, quantized %.1f%%, %zu decayed channels cleared",
          result.metrics.images, 100 * result.metrics.floatTop1, 100 * result.metrics.top1, cleared);
    QVERIFY(cleared > 0);
    QVERIFY(result.metrics.top1 >= result.metrics.floatTop1 - 0.03);
}

// The int8 engine runs the repaired model's plan: every layer the simulation computes in integers
// gives the same codes, as without repairs (tst_integer_engine's thresholds).
void TestRepair::int8EngineStaysExactUnderRepairs()
{
    QE_REQUIRE_PATH(kFashionTest);
    QE_REQUIRE_PATH(kFashionTrain);
    Study study(demoSources(kDemoImages));
    const QuantConfig config = perTensorW8A8Repaired();
    const StudyResult result = study.evaluate(config, {.integerEngine = true});
    QVERIFY(result.repairs && !result.repairs->equalized.empty() && !result.repairs->biasCorrected.empty());
    const IntegerEvaluation& r = *result.integer;
    const QuantPlan plan = study.plan(config);
    QCOMPARE(r.integerLayers, r.layers.size());
    for (std::size_t i = 0; i < r.layers.size(); ++i)
        if (plan.integerLayers.count(plan.layers[i].nodeIndex))
            QVERIFY2(r.isolatedExactFraction[i] == 1.0, plan.layers[i].name.c_str());
    QVERIFY(r.outputWithinOneLsb >= 0.999);
    QVERIFY(r.agreementWithSimulation >= 0.995);  // at 200 images under a sanitizer: one image
    QVERIFY(std::abs(r.top1 - result.metrics.top1) <= 0.005);
}

// The exported QDQ model is the repaired one: imported back, its own parameters give the same
// predictions as the int8 engine on the repaired plan; ONNX Runtime (when onnxruntime-node can be
// had, as in tst_qdq_export) scores what the int8 engine scores.
void TestRepair::exportCarriesTheRepairs()
{
    QE_REQUIRE_PATH(kFashionTest);
    QE_REQUIRE_PATH(kFashionTrain);
    Study study(demoSources(kDemoImages));
    const QuantConfig config = perTensorW8A8Repaired();
    QTemporaryDir dir;
    const fs::path path = (dir.path() + "/repaired.onnx").toStdString();
    const ExportedFiles files = study.exportQdqModel(config, path);
    QVERIFY(files.repairs && !files.repairs->biasCorrected.empty());
    const IntegerEvaluation ours = study.runIntegerEngine(config);

    StudySources exported = demoSources(kDemoImages);
    exported.model = path;
    Study reopened(exported);
    QVERIFY(reopened.modelConfig().has_value());
    const IntegerEvaluation theirs = reopened.runIntegerEngine(*reopened.modelConfig());
    std::size_t same = 0;
    for (std::size_t i = 0; i < ours.predictions.size(); ++i)
        same += ours.predictions[i] == theirs.predictions[i];
    qInfo("int8 engine: %.2f%% on the repaired plan, %.2f%% on its QDQ export, same prediction on %zu of %zu images", 100 * ours.top1,
          100 * theirs.top1, same, ours.predictions.size());
    QCOMPARE(same, ours.predictions.size());

    checkOnnxRuntimeScoresLikeTheInt8Engine(*study.dataset(), study.preprocess(), path, ours);
}

void TestRepair::repairsAreCachedAcrossUnrelatedEdits()
{
    QE_REQUIRE_PATH(kFashionTest);
    QE_REQUIRE_PATH(kFashionTrain);
    Study study(demoSources(200));
    QuantConfig config;
    config.repairs.equalization = true;
    config.layers["/fc2/Gemm"].repairs.biasCorrection = BiasCorrection::Empirical;
    const auto first = study.repairedModel(config);
    QVERIFY(first);
    // Another layer's quantization: the same repaired model.
    QuantConfig other = config;
    other.layers["/conv1/Conv"].weights.bits = 4;
    other.layers["/conv2/Conv"].activations.bits = 6;
    QCOMPARE(study.repairedModel(other).get(), first.get());
    // The corrected layer's weights: repaired again.
    QuantConfig corrected = config;
    corrected.layers["/fc2/Gemm"].weights.bits = 4;
    QVERIFY(study.repairedModel(corrected).get() != first.get());
    // No repairs: the original model.
    QVERIFY(!study.repairedModel(QuantConfig{}));
}

// AdaRound as the last repair, through the study, on the demo model at W4A8 per channel. One
// test, because the repair is the expensive part and the study keeps it: (a) the plan's codes are
// AdaRound's, each within one step of nearest rounding, with the flipped fraction the report
// states (the pinned scale reproduces the codes exactly); (b) accuracy is at least nearest
// rounding's; (c) the int8 engine is bit-exact with the simulation; (d) the QDQ export carries the
// codes: imported back it predicts as the int8 engine, and ONNX Runtime scores what it scores;
// (e) editing a layer after the last AdaRounded one keeps the repaired model.
void TestRepair::adaRoundThroughTheStudy()
{
    QE_REQUIRE_PATH(kFashionTest);
    QE_REQUIRE_PATH(kFashionTrain);
    Study study(demoSources(kDemoImages));
    const QuantConfig config = perChannelW4A8AdaRound();
    const StudyResult result = study.evaluate(config, {.integerEngine = true});
    QVERIFY(result.repairs);
    QCOMPARE(result.repairs->adaRounded.size(), std::size_t(5));  // every weighted layer
    QVERIFY(result.repairs->skipped.empty());

    // (a)
    const auto repaired = study.repairedModel(config);
    const QuantPlan plan = study.plan(config);
    for (const AdaRoundReport& rounded : result.repairs->adaRounded) {
        const auto layer = std::find_if(plan.layers.begin(), plan.layers.end(), [&](const QuantLayer& l) { return l.name == rounded.layer; });
        QVERIFY(layer != plan.layers.end());
        const LayerPlan& lp = plan.plans[std::size_t(layer - plan.layers.begin())];
        QVERIFY(lp.weightParams);
        Tensor nearest;
        const QuantParams nearestParams = quantizeLayerWeights(*layer, lp.config.weights, repaired->reference->initializers.at(layer->weight), nearest);
        QVERIFY2(*lp.weightParams == nearestParams, rounded.layer.c_str());  // the scale AdaRound rounded with
        const auto codes = uniformCodes(plan.quantizedWeights.at(layer->weight), *lp.weightParams, layer->weightChannelAxis);
        const auto nearestCodes = uniformCodes(nearest, nearestParams, layer->weightChannelAxis);
        std::size_t flipped = 0;
        for (std::size_t i = 0; i < codes.size(); ++i) {
            QVERIFY2(std::abs(codes[i] - nearestCodes[i]) <= 1, rounded.layer.c_str());
            flipped += codes[i] != nearestCodes[i];
        }
        QCOMPARE(double(flipped) / double(codes.size()), rounded.flippedFraction);
        QVERIFY2(test::kSanitizerBuild || rounded.adaRoundError < rounded.nearestError, rounded.layer.c_str());
        qInfo("%s: %.1f%% flipped, reconstruction error %.4g nearest, %.4g AdaRound", rounded.layer.c_str(),
              100 * rounded.flippedFraction, rounded.nearestError, rounded.adaRoundError);
    }

    // (b)
    QuantConfig nearestConfig = config;
    nearestConfig.repairs.adaRound.enabled = false;
    const StudyResult nearest = study.evaluate(nearestConfig);
    qInfo("W4A8 per channel: top-1 %.2f%% nearest, %.2f%% AdaRound (float %.2f%%)", 100 * nearest.metrics.top1,
          100 * result.metrics.top1, 100 * result.metrics.floatTop1);
    QVERIFY(test::kSanitizerBuild || result.metrics.top1 >= nearest.metrics.top1);
    QCOMPARE(result.metrics.floatTop1, nearest.metrics.floatTop1);

    // (c)
    const IntegerEvaluation& r = *result.integer;
    QCOMPARE(r.integerLayers, r.layers.size());
    for (std::size_t i = 0; i < r.layers.size(); ++i)
        if (plan.integerLayers.count(plan.layers[i].nodeIndex))
            QVERIFY2(r.isolatedExactFraction[i] == 1.0, plan.layers[i].name.c_str());
    QVERIFY(r.outputWithinOneLsb >= 0.999);
    QVERIFY(r.agreementWithSimulation >= 0.995);

    // (e) before the export, which leaves the study on this configuration.
    QuantConfig lastLayerEdited = config;
    lastLayerEdited.layers["/fc2/Gemm"].activations.bits = 6;  // after every AdaRounded layer's input
    QCOMPARE(study.repairedModel(lastLayerEdited).get(), repaired.get());
    QuantConfig firstLayerEdited = config;
    firstLayerEdited.layers["/conv1/Conv"].activations.bits = 6;  // feeds the later layers' inputs
    QuantConfig unchanged = config;
    QVERIFY(repairKey(firstLayerEdited, study.layers(), 128) != repairKey(unchanged, study.layers(), 128));

    // (d)
    QTemporaryDir dir;
    const fs::path path = (dir.path() + "/adarounded.onnx").toStdString();
    const ExportedFiles files = study.exportQdqModel(config, path);
    QVERIFY(files.repairs && files.repairs->adaRounded.size() == 5);
    StudySources exported = demoSources(kDemoImages);
    exported.model = path;
    Study reopened(exported);
    const IntegerEvaluation theirs = reopened.runIntegerEngine(*reopened.modelConfig());
    std::size_t same = 0;
    for (std::size_t i = 0; i < r.predictions.size(); ++i)
        same += r.predictions[i] == theirs.predictions[i];
    QCOMPARE(same, r.predictions.size());
    checkOnnxRuntimeScoresLikeTheInt8Engine(*study.dataset(), study.preprocess(), path, r);
}

// The study's progress names the layer AdaRound is on; Cancel stops it with qe::Cancelled and
// leaves no repaired model behind.
void TestRepair::adaRoundIsCancelledWithProgress()
{
    QE_REQUIRE_PATH(kFashionTest);
    QE_REQUIRE_PATH(kFashionTrain);
    Study study(demoSources(100));
    QuantConfig config = perChannelW4A8AdaRound();
    config.repairs.adaRound.iterations = 1000;
    std::atomic<bool> cancel{false};
    std::vector<std::string> stages;
    EvaluationProgress progress;
    progress.cancel = &cancel;
    progress.report = [&](const std::string& stage, std::size_t, std::size_t) {
        if (stages.empty() || stages.back() != stage)
            stages.push_back(stage);
        if (stage.starts_with("AdaRound layer 2 of 5"))
            cancel = true;
    };
    QVERIFY_THROWS_EXCEPTION(Cancelled, study.evaluate(config, {}, progress));
    const bool sawFirst = std::any_of(stages.begin(), stages.end(), [](const std::string& s) {
        return s == "AdaRound layer 1 of 5 (/conv1/Conv): rounding";
    });
    QVERIFY2(sawFirst, stages.empty() ? "no progress" : stages.back().c_str());
    QVERIFY(stages.back().starts_with("AdaRound layer 2 of 5"));
    // Not cancelled: it runs to the end.
    cancel = false;
    progress.report = {};
    QCOMPARE(study.evaluate(config, {}, progress).repairs->adaRounded.size(), std::size_t(5));
}

QTEST_GUILESS_MAIN(TestRepair)
#include "tst_repair.moc"
