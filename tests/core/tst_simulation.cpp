// Fake-quantization simulation and its metrics on the demo model and Fashion-MNIST: W8A8 keeps
// the float accuracy, the incremental recompute gives exactly what a full recompute gives, and
// the per-layer numbers behave as the theory says (uniform rounding noise, float layers exact).

#include "common/error.h"
#include "data/dataset.h"
#include "eval/quant_evaluator.h"
#include "engine/graph_preparation.h"
#include "sanitizer.h"
#include "test_support.h"

#include <nlohmann/json.hpp>

#include <QtTest>

using namespace qe;
namespace fs = std::filesystem;

namespace {

const fs::path kModel = test::sourceDir() / "resources/models/fashion_cnn.onnx";
const fs::path kTest = fs::path(QE_FASHION_MNIST_DIR) / "t10k-images-idx3-ubyte.gz";
const fs::path kTrain = fs::path(QE_FASHION_MNIST_DIR) / "train-images-idx3-ubyte.gz";

struct Fixture {
    std::shared_ptr<const Graph> graph = std::make_shared<const Graph>(loadOnnx(kModel));
    Preprocess preprocess = *Preprocess::loadSidecar(kModel);
    std::shared_ptr<const Dataset> test = openDataset(kTest);
    std::shared_ptr<const Dataset> train = openDataset(kTrain);

    std::unique_ptr<QuantEvaluator> evaluator(std::size_t images, std::size_t calibrationImages = 512) const
    {
        auto e = std::make_unique<QuantEvaluator>(graph, test, preprocess, images);
        e->calibrate(*train, calibrationImages);
        return e;
    }
};

QuantConfig w8a8()
{
    QuantConfig c;  // the defaults are per-channel symmetric int8 weights, affine uint8 activations
    c.calibration.method = CalibrationMethod::MinMax;
    return c;
}

const LayerMetrics& layerNamed(const ModelMetrics& m, const std::string& name)
{
    for (const LayerMetrics& l : m.layers)
        if (l.name == name)
            return l;
    throw std::runtime_error("no layer " + name);
}

// Every number two evaluations report alike: predictions, accuracy, output error, and each
// layer's errors, clipping, rounding noise and cost. Exact: the same images measured the same way.
void compareMetrics(const ModelMetrics& a, const ModelMetrics& b)
{
    QCOMPARE(a.predictions, b.predictions);
    QCOMPARE(a.floatPredictions, b.floatPredictions);
    QCOMPARE(a.top1, b.top1);
    QCOMPARE(a.outputSqnrDb, b.outputSqnrDb);
    QCOMPARE(a.layers.size(), b.layers.size());
    for (std::size_t i = 0; i < a.layers.size(); ++i) {
        QCOMPARE(a.layers[i].accumulated.mse, b.layers[i].accumulated.mse);
        QCOMPARE(a.layers[i].accumulated.maxAbsError, b.layers[i].accumulated.maxAbsError);
        QCOMPARE(a.layers[i].isolated.mse, b.layers[i].isolated.mse);
        QCOMPARE(a.layers[i].clippedFraction, b.layers[i].clippedFraction);
        QCOMPARE(std::isnan(a.layers[i].rmseOverScale), std::isnan(b.layers[i].rmseOverScale));
        if (!std::isnan(a.layers[i].rmseOverScale))
            QCOMPARE(a.layers[i].rmseOverScale, b.layers[i].rmseOverScale);
        QCOMPARE(a.layers[i].macs, b.layers[i].macs);
    }
}

}  // namespace

class TestSimulation : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void w8a8KeepsAccuracy();
    void incrementalEqualsFull();
    void costOnlyEqualsFullAndLeavesNoStaleLayers();
    void floatLayersAreExact();
    void lowerBitsLoseMore();
    void roundingNoiseIsUniform();
    void dynamicActivations();
    void histogramShowsLevels();
    void configErrorsNameTheLayer();
    void cancelledRunLeavesNoStaleCache();
    void memoryBudgetKeepsResultsAndBound();
    void memoryBudgetAcrossResidualBlocks();
    void calibrationOnTheEvaluationImages();
};

void TestSimulation::initTestCase()
{
    if (!fs::exists(kTest) || !fs::exists(kTrain))
        QSKIP("needs Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)");
}

void TestSimulation::w8a8KeepsAccuracy()
{
    // The issue's bar: W8A8 (per-channel symmetric weights, calibrated affine activations) loses at
    // most 0.5 points of top-1 on the whole Fashion-MNIST test set.
    // Under a sanitizer the first 1000 images run the same code; the bar on all 10,000 is the
    // normal pass's.
    Fixture f;
    const std::size_t images = test::unlessSanitized<std::size_t>(10000, 1000);
    auto evaluator = f.evaluator(images);
    const ModelMetrics m = evaluator->evaluate(w8a8());
    qInfo("W8A8: top-1 %.2f%% vs float %.2f%%, agreement %.2f%%, output SQNR %.1f dB, %.0f bytes vs %.0f float, %.2f bits/weight",
          100 * m.top1, 100 * m.floatTop1, 100 * m.agreement, m.outputSqnrDb, m.sizeBytes, m.floatSizeBytes, m.bitsPerWeight);
    QCOMPARE(m.images, images);
    if (!test::kSanitizerBuild) {
        QVERIFY(m.floatTop1 >= 0.90);
        QVERIFY2(m.floatTop1 - m.top1 <= 0.005, "W8A8 lost more than 0.5 points");
        QVERIFY(m.agreement >= 0.98);
    }
    QVERIFY(m.outputSqnrDb > 20);
    // int8 weights plus one float scale per channel: a bit more than 8 bits per weight, about a
    // quarter of the float size.
    QVERIFY(m.bitsPerWeight > 8.0 && m.bitsPerWeight < 8.5);
    QVERIFY(m.sizeBytes < 0.3 * m.floatSizeBytes);
}

void TestSimulation::incrementalEqualsFull()
{
    Fixture f;
    auto incremental = f.evaluator(1000);
    QuantConfig config = w8a8();
    const ModelMetrics before = incremental->evaluate(config);
    QCOMPARE(before.recomputedFromNode, std::size_t(0));

    // Change the last Gemm's weights to 3 bits: only it and what follows may rerun.
    const QuantLayer& fc2 = incremental->layers().back();
    QVERIFY(!fc2.weight.empty());
    config.layers[fc2.name].weights.bits = 3;
    const ModelMetrics after = incremental->evaluate(config);
    QCOMPARE(after.recomputedFromNode, std::size_t(fc2.nodeIndex));
    QVERIFY(after.recomputedFromNode > 0);

    auto fresh = f.evaluator(1000);
    const ModelMetrics full = fresh->evaluate(config);
    compareMetrics(after, full);
    if (QTest::currentTestFailed())
        return;
    // And the change is real: the last layer's weights lost precision.
    QVERIFY(layerNamed(after, fc2.name).weights->sqnrDb < layerNamed(before, fc2.name).weights->sqnrDb - 10);
}

void TestSimulation::costOnlyEqualsFullAndLeavesNoStaleLayers()
{
    Fixture f;
    auto evaluator = f.evaluator(500);
    QuantConfig config = w8a8();
    const QuantLayer& fc2 = evaluator->layers().back();
    config.layers[fc2.name].weights.bits = 4;
    const ModelMetrics costOnly = evaluator->evaluate(config, {}, QuantEvaluator::LayerDetail::CostOnly);

    auto fresh = f.evaluator(500);
    const ModelMetrics full = fresh->evaluate(config);
    // The model's numbers and every layer's cost are the full evaluation's.
    QCOMPARE(costOnly.predictions, full.predictions);
    QCOMPARE(costOnly.outputSqnrDb, full.outputSqnrDb);
    QCOMPARE(costOnly.sizeBytes, full.sizeBytes);
    QCOMPARE(costOnly.bitOperations, full.bitOperations);
    QCOMPARE(costOnly.layers.size(), full.layers.size());
    for (std::size_t i = 0; i < full.layers.size(); ++i) {
        QCOMPARE(costOnly.layers[i].name, full.layers[i].name);
        QCOMPARE(costOnly.layers[i].weightBytes, full.layers[i].weightBytes);
        QCOMPARE(costOnly.layers[i].macs, full.layers[i].macs);
        QVERIFY(!costOnly.layers[i].weights.has_value());  // errors are not measured
    }

    // A full evaluation after it, resuming at the last layer (the earlier ones unchanged), measures
    // every layer's errors as a fresh evaluator does: nothing was cached from the cost-only run.
    config.layers[fc2.name].weights.bits = 3;
    const ModelMetrics after = evaluator->evaluate(config);
    QCOMPARE(after.recomputedFromNode, std::size_t(fc2.nodeIndex));
    auto fresh3 = f.evaluator(500);
    const ModelMetrics full3 = fresh3->evaluate(config);
    for (std::size_t i = 0; i < full3.layers.size(); ++i) {
        QCOMPARE(after.layers[i].accumulated.mse, full3.layers[i].accumulated.mse);
        QCOMPARE(after.layers[i].isolated.mse, full3.layers[i].isolated.mse);
        QCOMPARE(after.layers[i].weights.has_value(), full3.layers[i].weights.has_value());
        QCOMPARE(after.layers[i].clippedFraction, full3.layers[i].clippedFraction);
    }
}

void TestSimulation::floatLayersAreExact()
{
    Fixture f;
    auto evaluator = f.evaluator(500);
    QuantConfig config = w8a8();
    for (const QuantLayer& layer : evaluator->layers())
        config.layers[layer.name].keepFloat = true;
    const ModelMetrics m = evaluator->evaluate(config);
    QCOMPARE(m.top1, m.floatTop1);
    QCOMPARE(m.agreement, 1.0);
    QVERIFY(std::isinf(m.outputSqnrDb));
    for (const LayerMetrics& l : m.layers) {
        QVERIFY(!l.weights.has_value());
        QCOMPARE(l.accumulated.mse, 0.0);
    }
    QCOMPARE(m.sizeBytes, m.floatSizeBytes);
}

void TestSimulation::lowerBitsLoseMore()
{
    Fixture f;
    auto evaluator = f.evaluator(1000);
    double previousSqnr = 1e9;
    for (int bits : {8, 6, 4, 2}) {
        QuantConfig config = w8a8();
        config.defaultWeights.bits = bits;
        const ModelMetrics m = evaluator->evaluate(config);
        double weightSqnr = 0;
        int n = 0;
        for (const LayerMetrics& l : m.layers)
            if (l.weights) {
                weightSqnr += l.weights->sqnrDb;
                ++n;
            }
        weightSqnr /= n;
        qInfo("W%dA8: top-1 %.2f%%, mean weight SQNR %.1f dB", bits, 100 * m.top1, weightSqnr);
        // About 6 dB per bit for uniform quantization.
        QVERIFY(weightSqnr < previousSqnr);
        if (previousSqnr < 1e9)
            QVERIFY2(previousSqnr - weightSqnr > 2 * 4.0, "expected roughly 6 dB per bit");
        previousSqnr = weightSqnr;
    }
}

void TestSimulation::roundingNoiseIsUniform()
{
    // Inside the clipping range the rounding error of an 8-bit activation is close to uniform on
    // [-step/2, step/2], whose RMS is step/sqrt(12).
    Fixture f;
    auto evaluator = f.evaluator(500);
    const ModelMetrics m = evaluator->evaluate(w8a8());
    int checked = 0;
    for (const LayerMetrics& l : m.layers) {
        if (std::isnan(l.rmseOverScale) || l.opType == "Input")
            continue;  // the input is exact: pixels/255 on a 1/255 grid
        QVERIFY2(std::abs(l.rmseOverScale - 1 / std::sqrt(12.0)) < 0.05,
                 qPrintable(QString("%1: %2").arg(QString::fromStdString(l.name)).arg(l.rmseOverScale)));
        ++checked;
    }
    QVERIFY(checked >= 3);
}

void TestSimulation::dynamicActivations()
{
    Fixture f;
    auto evaluator = f.evaluator(1000);
    QuantConfig config = w8a8();
    config.defaultActivations.dynamic = true;
    const ModelMetrics m = evaluator->evaluate(config);
    QVERIFY(m.agreement >= 0.98);
    for (const LayerMetrics& l : m.layers)
        QCOMPARE(l.clippedFraction, 0.0);  // a range taken from the tensor itself clips nothing
}

void TestSimulation::histogramShowsLevels()
{
    Fixture f;
    auto evaluator = f.evaluator(200);
    QuantConfig config = w8a8();
    const QuantLayer* conv = nullptr;
    for (const QuantLayer& l : evaluator->layers())
        if (l.opType == "Conv" && !conv)
            conv = &l;
    QVERIFY(conv);
    config.layers[conv->name].weights.scheme = Scheme::KMeans;
    config.layers[conv->name].weights.bits = 3;
    const TensorHistogram weights = evaluator->histogram(config, conv->weight);
    QVERIFY(weights.isWeight);
    // All channels of per-channel parameters: no common levels or range.
    QVERIFY(weights.levels.empty());
    QVERIFY(!weights.clipRange);
    QVERIFY(weights.params && weights.params->blockCount() == std::size_t(weights.channelCount));
    const Tensor& w = f.graph->initializers.at(conv->weight);
    QCOMPARE(weights.histogram.total(), double(w.size()));
    // One channel: its own values, and the levels and range of its own block.
    const int channel = weights.channelCount - 1;
    const TensorHistogram one = evaluator->histogram(config, conv->weight, 128, channel);
    QCOMPARE(one.channel, channel);
    QCOMPARE(one.levels.size(), std::size_t(8));  // the k-means codebook of that channel
    QCOMPARE(one.levels, quantizationLevels(*one.params, std::size_t(channel)));
    QCOMPARE(one.clipRange->first, one.params->rangeMin[std::size_t(channel)]);
    QCOMPARE(one.histogram.total(), double(w.size() / weights.channelCount));
    const auto values = w.values<float>();
    const auto per = std::size_t(w.size() / weights.channelCount);
    QCOMPARE(one.min, *std::min_element(values.begin() + std::ptrdiff_t(per) * channel, values.begin() + std::ptrdiff_t(per) * (channel + 1)));
    // Per tensor, every channel has the tensor's levels.
    config.layers[conv->name].weights.granularity = Granularity::PerTensor;
    QCOMPARE(evaluator->histogram(config, conv->weight, 128, channel).levels, evaluator->histogram(config, conv->weight).levels);
    QVERIFY_THROWS_EXCEPTION(Error, evaluator->histogram(config, conv->weight, 128, weights.channelCount));

    // The per-channel ranges: each channel's extremes, and per channel a weight rounds to zero
    // only where it also would per tensor (its scale is at most the tensor's).
    QuantConfig lowBits = w8a8();  // 3 bits: coarse enough that weights round to zero at all
    lowBits.defaultWeights.bits = 3;
    const ChannelRanges ranges = evaluator->channelRanges(lowBits, conv->name);
    QCOMPARE(int(ranges.min.size()), weights.channelCount);
    QCOMPARE(ranges.min[std::size_t(channel)], one.min);
    QCOMPARE(ranges.granularity, std::optional(Granularity::PerChannel));
    double perTensorZeros = 0, perChannelZeros = 0;
    for (std::size_t c = 0; c < ranges.min.size(); ++c) {
        QVERIFY(ranges.zeroFraction[c] <= ranges.perTensorZeroFraction[c]);
        perTensorZeros += ranges.perTensorZeroFraction[c];
        perChannelZeros += ranges.zeroFraction[c];
    }
    QVERIFY(perTensorZeros > perChannelZeros);
    float amax = 0;  // symmetric per tensor: [-amax, amax] over all channels
    for (std::size_t c = 0; c < ranges.min.size(); ++c)
        amax = std::max({amax, -ranges.min[c], ranges.max[c]});
    QCOMPARE(ranges.perTensorRange.second, amax);

    const TensorHistogram activations = evaluator->histogram(w8a8(), conv->name);
    QVERIFY(!activations.isWeight);
    QCOMPARE(activations.levels.size(), std::size_t(256));
    QVERIFY(activations.clipRange.has_value());
    QCOMPARE(activations.calibrationRanges.size(), std::size_t(kCalibrationMethodCount));

    // Any other tensor: a MaxPool output, 200 images x 16 x 14 x 14 values, no levels of its own.
    const TensorHistogram pooled = evaluator->histogram(w8a8(), "/pool1/MaxPool_output_0");
    QCOMPARE(pooled.histogram.total(), 200.0 * 16 * 14 * 14);
    QVERIFY(pooled.levels.empty());
    QVERIFY(pooled.histogram.low >= 0.f);  // after ReLU
}

void TestSimulation::configErrorsNameTheLayer()
{
    Fixture f;
    auto evaluator = f.evaluator(10);
    const std::string json = R"({"format": "quantexplorer-config", "version": 1, "layers": {"conv9": {"float": true}}})";
    try {
        QuantConfig::fromJson(nlohmann::json::parse(json), "bad.json", layerNames(evaluator->layers()));
        QFAIL("accepted a layer the model lacks");
    } catch (const Error& e) {
        QVERIFY2(std::string(e.what()).find("conv9") != std::string::npos, e.what());
        QVERIFY2(std::string(e.what()).find("bad.json") != std::string::npos, e.what());
    }
}

void TestSimulation::cancelledRunLeavesNoStaleCache()
{
    Fixture f;
    auto evaluator = f.evaluator(1000);
    QuantConfig a = w8a8();
    const ModelMetrics first = evaluator->evaluate(a);

    // Start B (all weights at 3 bits) and cancel it half-way through the quantized run.
    QuantConfig b = a;
    b.defaultWeights.bits = 3;
    std::atomic<bool> cancel{false};
    EvaluationProgress progress;
    progress.cancel = &cancel;
    progress.report = [&](const std::string& stage, std::size_t done, std::size_t total) {
        if (stage == "quantized model" && done >= total / 2)
            cancel = true;
    };
    QVERIFY_THROWS_EXCEPTION(Cancelled, evaluator->evaluate(b, progress));

    // Back to A: the numbers must be A's, not a mix of A and B.
    const ModelMetrics again = evaluator->evaluate(a);
    QCOMPARE(again.predictions, first.predictions);
    QCOMPARE(again.outputSqnrDb, first.outputSqnrDb);
}

// The caches within a budget (issue 16): with room for the late layers' activations, less, or
// none, every number is the same as with everything cached, through edits before and after where
// the caches start (incremental and full), a dynamic and a non-uniform layer, a cost-only sweep,
// per-image errors and histograms; an edit after the cache start resumes at its layer; what is
// cached stays within the budget.
void TestSimulation::memoryBudgetKeepsResultsAndBound()
{
    Fixture f;
    auto all = f.evaluator(1000);
    QuantConfig config = w8a8();
    const ModelMetrics reference = all->evaluate(config);
    const std::uint64_t everything = all->cachedBytes();
    const std::size_t nodes = all->graph().nodes.size();
    QCOMPARE(all->cacheStartNode(), std::size_t(0));
    QVERIFY(everything > 0);
    std::vector<std::uint64_t> budgets{everything / 2, everything / 4, everything / 8, 0};
    std::vector<std::unique_ptr<QuantEvaluator>> limited;
    for (std::uint64_t budget : budgets) {
        limited.push_back(f.evaluator(1000));
        limited.back()->setCacheBudget(budget);
        compareMetrics(limited.back()->evaluate(config), reference);
        QVERIFY2(limited.back()->cachedBytes() <= budget,
                 qPrintable(QString("%1 > %2").arg(limited.back()->cachedBytes()).arg(budget)));
    }
    // Less room, a later start; a budget of a quarter still holds the late layers.
    QVERIFY(limited[0]->cacheStartNode() > 0);
    for (std::size_t k = 1; k < limited.size(); ++k)
        QVERIFY(limited[k]->cacheStartNode() >= limited[k - 1]->cacheStartNode());
    QVERIFY(limited[1]->cacheStartNode() < nodes);
    QCOMPARE(limited.back()->cacheStartNode(), nodes);
    QCOMPARE(limited.back()->cachedBytes(), std::uint64_t(0));

    const std::vector<QuantLayer>& layers = all->layers();
    auto check = [&](const char* what) {
        const ModelMetrics expected = all->evaluate(config);
        for (std::size_t k = 0; k < limited.size(); ++k) {
            const ModelMetrics got = limited[k]->evaluate(config);
            compareMetrics(got, expected);
            QVERIFY2(limited[k]->cachedBytes() <= budgets[k], what);
            for (std::size_t image : {std::size_t(3), std::size_t(999)}) {
                const std::vector<ErrorStats> a = all->imageLayerErrors(image), b = limited[k]->imageLayerErrors(image);
                QCOMPARE(a.size(), b.size());
                for (std::size_t i = 0; i < a.size(); ++i)
                    QCOMPARE(a[i].mse, b[i].mse);
            }
        }
    };
    // The last layer: resumed there wherever the caches start before it.
    const QuantLayer& last = layers.back();
    config.layers[last.name].weights.bits = 3;
    check("last layer");
    for (const auto& e : limited) {
        const std::size_t resumed = e->evaluate(config).recomputedFromNode;  // unchanged: nothing rerun
        QCOMPARE(resumed, nodes);
    }
    config.layers[last.name].weights.bits = 4;
    QCOMPARE(limited[1]->evaluate(config).recomputedFromNode, std::size_t(last.nodeIndex));
    for (auto& e : limited)
        e->evaluate(config);
    // A middle layer with dynamic activations, then a non-uniform (log) one, the first layer, and
    // a cost-only sweep followed by a full evaluation.
    const QuantLayer& middle = layers[layers.size() / 2];
    config.layers[middle.name].activations.dynamic = true;
    check("dynamic middle layer");
    config.layers[middle.name].activations.dynamic = false;
    config.layers[middle.name].weights.scheme = Scheme::Log2;
    check("log middle layer");
    config.layers[layers[1].name].weights.bits = 4;
    check("first layers");
    config.layers[layers[1].name].weights.bits = 6;
    for (auto& e : limited)
        e->evaluate(config, {}, QuantEvaluator::LayerDetail::CostOnly);
    all->evaluate(config, {}, QuantEvaluator::LayerDetail::CostOnly);
    QVERIFY_THROWS_EXCEPTION(Error, limited[0]->imageLayerErrors(3));  // a sweep measures no errors
    check("after a cost-only sweep");

    const TensorHistogram ha = all->histogram(config, layers[1].name), hn = limited.back()->histogram(config, layers[1].name);
    QCOMPARE(ha.histogram.counts, hn.histogram.counts);
    QCOMPARE(ha.min, hn.min);
    QCOMPARE(ha.max, hn.max);
}

// A residual network (ResNet-8): tensors that skip across the cache start (a block's input,
// read again by its Add) are what a resumed run is fed; an edit inside a block gives the numbers
// of everything cached.
void TestSimulation::memoryBudgetAcrossResidualBlocks()
{
    const fs::path model = test::sharedDir() / "models/resnet8_cifar10.onnx";
    const fs::path data = test::sharedDir() / "data/cifar10_mlperf_tiny_200/test_200.bin";
    QE_REQUIRE_PATH(model);
    QE_REQUIRE_PATH(data);
    auto graph = std::make_shared<const Graph>(loadOnnx(model));
    const std::shared_ptr<const Dataset> images = openDataset(data);
    const Preprocess preprocess = test::makePreprocess(ColorOrder::Rgb, 1, 0, 1, 1);
    auto make = [&](std::optional<std::uint64_t> budget) {
        auto e = std::make_unique<QuantEvaluator>(graph, images, preprocess, 200);
        if (budget)
            e->setCacheBudget(*budget);
        e->calibrate(*images, 100);
        return e;
    };
    auto all = make(std::nullopt);
    QuantConfig config = w8a8();
    const ModelMetrics reference = all->evaluate(config);
    // A budget whose caches start inside the graph: besides the caches it holds the images and
    // the batches in flight, so the first of a few multiples of the caches' full size that does.
    std::unique_ptr<QuantEvaluator> half;
    for (int quarters = 1; quarters <= 12 && !half; ++quarters) {
        auto e = make(all->cachedBytes() * quarters / 4);
        compareMetrics(e->evaluate(config), reference);
        if (e->cacheStartNode() > 0 && e->cacheStartNode() < graph->nodes.size())
            half = std::move(e);
    }
    QVERIFY(half);
    const std::size_t start = half->cacheStartNode();
    // Every layer after the cache start in turn, then the one just before it.
    for (const QuantLayer& layer : all->layers()) {
        if (layer.nodeIndex < 0 || std::size_t(layer.nodeIndex) < start)
            continue;
        config.layers[layer.name].weights.bits = 5;
        const ModelMetrics expected = all->evaluate(config);
        const ModelMetrics got = half->evaluate(config);
        compareMetrics(got, expected);
        QCOMPARE(got.recomputedFromNode, std::size_t(layer.nodeIndex));
    }
    for (auto it = all->layers().rbegin(); it != all->layers().rend(); ++it)
        if (it->nodeIndex >= 0 && std::size_t(it->nodeIndex) < start) {
            config.layers[it->name].weights.bits = 6;
            break;
        }
    compareMetrics(half->evaluate(config), all->evaluate(config));
}

// Calibrating on its own evaluation images, the evaluator observes the batches it decoded for
// the evaluation instead of decoding them again: the numbers must be those of a calibration that
// decodes its images (the same file opened again), for fewer, as many and more calibration images
// than evaluation images (200 = 6 batches of 32 and one of 8), before and after the evaluation
// decoded them. The moving average of each batch's range depends on where the batches fall.
void TestSimulation::calibrationOnTheEvaluationImages()
{
    if (!fs::exists(kTest))
        QSKIP("needs Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)");
    const Fixture f;
    const std::shared_ptr<const Dataset> sameFile = openDataset(kTest);
    for (const CalibrationMethod method : {CalibrationMethod::MovingAverage, CalibrationMethod::MinMax}) {
        QuantConfig config = w8a8();
        config.calibration.method = method;
        for (const std::size_t images : {100, 200, 250, 232}) {
            QuantEvaluator decoding(f.graph, f.test, f.preprocess, 200), own(f.graph, f.test, f.preprocess, 200);
            decoding.calibrate(*sameFile, images);
            own.calibrate(*f.test, images);
            const ModelMetrics expected = decoding.evaluate(config);
            compareMetrics(own.evaluate(config), expected);
            // Again, now that the evaluation's batches are decoded.
            own.calibrate(*f.test, images);
            compareMetrics(own.evaluate(config), expected);
        }
    }
}

QTEST_APPLESS_MAIN(TestSimulation)
#include "tst_simulation.moc"
