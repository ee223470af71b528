// The study's choices that change results, checked on real data: the labels column of a labels
// file with several numberings (ImageNet's label_1000 and label_1001) is the one that fits the
// model's outputs, so TensorFlow's MobileNet scores the MANIFEST's 54.0% rather than the 2% of a
// shifted numbering; a given or stored column wins; the sidecar's "label_column" is checked.
// Images that do not fit the model are said in words (dataWarnings), and a result says how many
// images its calibration really observed and which parameters are the model file's own.

#include "common/error.h"
#include "study/study.h"
#include "test_support.h"

#include <nlohmann/json.hpp>

#include <QtTest>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

using namespace qe;

namespace {

const std::filesystem::path kMobileNet = test::sharedDir() / "models/mobilenet_v1_0.25_128_float.onnx";
const std::filesystem::path kImageNet = test::sharedDir() / "data/imagenet_val_227_300";
const std::filesystem::path kResNet8 = test::sharedDir() / "models/resnet8_cifar10.onnx";
const std::filesystem::path kResNet8Qdq = test::sharedDir() / "models/resnet8_cifar10_qdq_int8.onnx";
const std::filesystem::path kCifar = test::sharedDir() / "data/cifar10_mlperf_tiny_200/test_200.bin";
const std::filesystem::path kFashion = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
const std::filesystem::path kDemoModel = test::sourceDir() / "resources/models/fashion_cnn.onnx";
const std::filesystem::path kVit = test::sourceDir() / "resources/models/fashion_vit.onnx";

QuantConfig configFromJson(const std::string& text)
{
    nlohmann::json json = nlohmann::json::parse(text);
    json["format"] = "quantexplorer-config";
    json["version"] = 1;
    return QuantConfig::fromJson(json, "test");
}

bool mentions(const std::vector<std::string>& warnings, const std::string& text)
{
    for (const std::string& w : warnings)
        if (w.find(text) != std::string::npos)
            return true;
    return false;
}

std::string joined(const std::vector<std::string>& warnings)
{
    std::string all;
    for (const std::string& w : warnings)
        all += w + "\n";
    return all;
}

// MANIFEST.md's preprocessing for the TensorFlow MobileNets.
StudySources mobileNetOnImageNet(const std::string& labelColumn)
{
    StudySources sources;
    sources.model = kMobileNet;
    sources.data = kImageNet;
    sources.labelColumn = labelColumn;
    sources.adjustPreprocess = [](Preprocess& p) { p = test::makePreprocess(ColorOrder::Rgb, 1.0, 128, 128, 0.875); };
    return sources;
}

}  // namespace

class TestStudy : public QObject {
    Q_OBJECT
private slots:
    void labelColumnFitsTheModel();
    void givenLabelColumnWins();
    void sidecarLabelColumn();
    void fittingDataHasNoWarnings();
    void grayImagesOnAColourModelAreSaid();
    void fewerClassesThanOutputsAreSaid();
    void calibrationCountIsTheImagesObserved();
    void qdqScalesAreMarkedAsTheModels();
    void integerTraceEndsInTheEngineCode_data();
    void integerTraceEndsInTheEngineCode();
    void integerTraceRefusesWhatItCannotTrace();
    void runningTop1IntervalIsWilsons();
    void runningTop1IntervalCoversTheWholeSet();
    void top1StreamsInWithTheBatches();
};

void TestStudy::labelColumnFitsTheModel()
{
    QE_REQUIRE_PATH(kMobileNet);
    QE_REQUIRE_PATH(kImageNet);
    std::vector<std::string> warnings;
    StudySources sources = mobileNetOnImageNet("");
    sources.warn = [&](const std::string& w) { warnings.push_back(w); };
    Study study(sources);
    QCOMPARE(study.outputClassCount(), std::int64_t(1001));
    QCOMPARE(study.labelColumn(), std::string("label_1001"));
    // The choice is said, not silent, and the images fit: nothing else is said.
    QVERIFY2(study.dataWarnings().empty(), joined(study.dataWarnings()).c_str());
    QCOMPARE(warnings.size(), std::size_t(1));
    QVERIFY2(warnings[0].find("label_1001") != std::string::npos, warnings[0].c_str());
    QCOMPARE(study.labelColumnNote(), warnings[0]);
    // MANIFEST.md: 54.0% top-1 on these 300 images.
    const ClassificationResult r = study.evaluateStoredModel(32);
    QCOMPARE(r.count, std::size_t(300));
    QVERIFY2(std::abs(100 * r.top1() - 54.0) <= 1.0, std::to_string(100 * r.top1()).c_str());
}

void TestStudy::givenLabelColumnWins()
{
    QE_REQUIRE_PATH(kMobileNet);
    QE_REQUIRE_PATH(kImageNet);
    Study study(mobileNetOnImageNet("label_1000"));
    QCOMPARE(study.labelColumn(), std::string("label_1000"));
    QVERIFY(study.labelColumnNote().empty());
    // Shifted by one class: what the window showed before it chose the column (2.33%).
    QVERIFY(study.evaluateStoredModel(32).top1() < 0.10);
    // ... and the misfit is said: the column is named for 1000 classes, the model has 1001.
    QVERIFY2(mentions(study.dataWarnings(), "label_1000"), joined(study.dataWarnings()).c_str());
    QCOMPARE(labelColumns(kImageNet), (std::vector<std::string>{"label_1000", "label_1001"}));
}

void TestStudy::sidecarLabelColumn()
{
    Preprocess p;
    p.labelColumn = "label_1001";
    QCOMPARE(Preprocess::fromJson(p.toJson(), "m.preprocess.json").labelColumn, std::string("label_1001"));
    nlohmann::json bad = p.toJson();
    bad["label_column"] = 1001;
    try {
        Preprocess::fromJson(bad, "m.preprocess.json");
        QFAIL("a numeric label_column was accepted");
    } catch (const Error& e) {
        QVERIFY2(std::string(e.what()).find("m.preprocess.json") != std::string::npos &&
                     std::string(e.what()).find("label_column") != std::string::npos,
                 e.what());
    }
}

void TestStudy::fittingDataHasNoWarnings()
{
    QE_REQUIRE_PATH(kResNet8);
    QE_REQUIRE_PATH(kCifar);
    Study study(StudySources{.model = kResNet8, .data = kCifar});
    QVERIFY2(study.dataWarnings().empty(), joined(study.dataWarnings()).c_str());
}

void TestStudy::grayImagesOnAColourModelAreSaid()
{
    // Issue 19: ResNet-8 (CIFAR-10) on Fashion-MNIST showed "top-1 10.80%" without a word.
    QE_REQUIRE_PATH(kResNet8);
    QE_REQUIRE_PATH(kFashion);
    std::vector<std::string> told;
    StudySources sources{.model = kResNet8, .data = kFashion, .evaluationImages = 100};
    sources.warn = [&](const std::string& w) { told.push_back(w); };
    Study study(sources);
    const std::vector<std::string>& w = study.dataWarnings();
    QVERIFY2(mentions(w, "grayscale (1 channel)") && mentions(w, "3 colour channels"), joined(w).c_str());
    QVERIFY2(mentions(w, "28\u00d728") && mentions(w, "32\u00d732"), joined(w).c_str());
    // The same sentences reach the warn callback (the CLI's stderr), naming the files.
    QCOMPARE(told.size(), w.size());
    QVERIFY2(told[0].find("t10k-images-idx3-ubyte.gz on resnet8_cifar10.onnx: ") == 0, told[0].c_str());
}

void TestStudy::fewerClassesThanOutputsAreSaid()
{
    // Issue 19: MobileNet on CIFAR-10 showed 0.00% with 10 labels against 1001 outputs.
    QE_REQUIRE_PATH(kMobileNet);
    QE_REQUIRE_PATH(kCifar);
    Study study(StudySources{.model = kMobileNet, .data = kCifar});
    const std::vector<std::string>& w = study.dataWarnings();
    QVERIFY2(mentions(w, "10 classes but the model has 1001 outputs"), joined(w).c_str());
    QVERIFY2(mentions(w, "32\u00d732 pixels but the model's input is 128\u00d7128"), joined(w).c_str());
}

void TestStudy::calibrationCountIsTheImagesObserved()
{
    // The default configuration asks for 512 calibration images; the set has 200.
    QE_REQUIRE_PATH(kResNet8);
    QE_REQUIRE_PATH(kCifar);
    Study study(StudySources{.model = kResNet8, .data = kCifar});
    QuantConfig config;
    QCOMPARE(config.calibrationImages, 512);
    QCOMPARE(study.evaluate(config).calibrationImages, std::size_t(200));
}

void TestStudy::qdqScalesAreMarkedAsTheModels()
{
    QE_REQUIRE_PATH(kResNet8Qdq);
    QE_REQUIRE_PATH(kCifar);
    Study study(StudySources{.model = kResNet8Qdq, .data = kCifar});
    QVERIFY(study.modelConfig());
    const StudyResult own = study.evaluate(*study.modelConfig());
    QCOMPARE(own.calibrationImages, std::size_t(0));  // nothing needed calibrating
    std::size_t fromModel = 0;
    for (const LayerPlan& plan : own.plans) {
        QVERIFY(!plan.activationParams || plan.activationsFromModel);
        QVERIFY(!plan.weightParams || plan.weightsFromModel);
        fromModel += plan.activationsFromModel;
    }
    QVERIFY(fromModel > 0);
    // A layer given another scheme gets computed parameters, no longer the file's.
    QuantConfig edited = *study.modelConfig();
    edited.layers[study.layers()[0].name].weights.bits = 4;
    const StudyResult changed = study.evaluate(edited);
    QVERIFY(!changed.plans[0].weightsFromModel);
}

// Lesson 10's trace of one output value (eval/integer_trace.h) recomputes the value from the
// engine's input codes and the layer's integer weights, bias and multiplier, step by step; it
// must end in exactly the code the int8 engine's own kernels (fused AVX-512, oneDNN or reference,
// whichever ran) wrote at that position. Every integer Conv (plain, strided, padded, depthwise)
// and Gemm/MatMul of each model, at its first, a middle and its last output element.
void TestStudy::integerTraceEndsInTheEngineCode_data()
{
    QTest::addColumn<QString>("model");
    QTest::addColumn<QString>("data");
    QTest::addColumn<QString>("config");  // JSON, or "model" for a QDQ model's own
    QTest::addColumn<bool>("shared");
    QTest::newRow("demo CNN W8A8") << QString::fromStdString(kDemoModel.string()) << QString::fromStdString(kFashion.string()) << "{}" << false;
    QTest::newRow("demo CNN W4, int8 activations")
        << QString::fromStdString(kDemoModel.string()) << QString::fromStdString(kFashion.string())
        << R"({"default": {"weights": {"bits": 4, "granularity": "per_tensor"}, "activations": {"scheme": "symmetric"}}})" << false;
    QTest::newRow("demo ViT W8A8") << QString::fromStdString(kVit.string()) << QString::fromStdString(kFashion.string()) << "{}" << false;
    QTest::newRow("resnet8 int8 QDQ") << QString::fromStdString(kResNet8Qdq.string()) << QString::fromStdString(kCifar.string()) << "model" << true;
    QTest::newRow("mobilenet 0.25 W8A8") << QString::fromStdString(kMobileNet.string()) << QString::fromStdString(kImageNet.string()) << "{}" << true;
}

void TestStudy::integerTraceEndsInTheEngineCode()
{
    QFETCH(QString, model);
    QFETCH(QString, data);
    QFETCH(QString, config);
    QFETCH(bool, shared);
    QE_REQUIRE_PATH(std::filesystem::path(data.toStdString()));
    if (shared)
        QE_REQUIRE_PATH(std::filesystem::path(model.toStdString()));
    StudySources sources{.model = model.toStdString(), .data = data.toStdString()};
    sources.evaluationImages = 4;
    sources.calibrationImages = 32;
    if (model.contains("mobilenet"))
        sources = [&] { StudySources s = mobileNetOnImageNet(""); s.evaluationImages = 4; s.calibrationImages = 32; return s; }();
    Study study(sources);
    const QuantConfig quantConfig = config == "model" ? *study.modelConfig() : configFromJson(config.toStdString());
    const QuantPlan plan = study.plan(quantConfig);
    int traced = 0, padded = 0, clamped = 0, signedInputs = 0;
    for (const QuantLayer& layer : plan.layers) {
        if (!plan.integerLayers.count(layer.nodeIndex))
            continue;
        const std::vector<std::int64_t> shape = study.traceIntegerOutput(quantConfig, layer.name, 1, {}).outputShape;
        std::int64_t elements = 1;
        for (std::int64_t d : shape)
            elements *= d;
        for (std::int64_t flat : {std::int64_t{0}, elements / 2 + 7 * (elements > 16), elements - 1}) {
            std::vector<std::int64_t> position(shape.size());
            for (std::size_t d = shape.size(); d-- > 0; flat /= shape[d])
                position[d] = flat % shape[d];
            const IntegerTrace t = study.traceIntegerOutput(quantConfig, layer.name, 1, position);
            const std::string where = layer.name + " at element " + std::to_string(flat);
            QVERIFY2(t.code == t.engineCode, (where + ": traced " + std::to_string(t.code) + ", engine " + std::to_string(t.engineCode)).c_str());
            // The steps are consistent with each other...
            std::int64_t sum = 0;
            for (const IntegerTraceTerm& term : t.terms) {
                QCOMPARE(term.product, std::int64_t(term.inputCode - t.inputZeroPoint) * (term.weightCode - t.weightZeroPoint));
                QCOMPARE(term.inputCode == t.inputZeroPoint || !term.padding, true);
                sum += term.product;
                padded += term.padding;
            }
            QCOMPARE(t.accumulator, sum);
            QCOMPARE(t.biased, t.accumulator + t.biasCode);
            QVERIFY(std::abs(t.biasCode - t.bias / (double(t.inputScale) * t.weightScale)) <= 0.5 + 1e-3);
            // ...the Q0.31 mantissa and shift give M to 31 bits...
            QVERIFY(t.multiplier >= (1 << 30));
            QVERIFY(std::abs(std::ldexp(double(t.multiplier), -t.rightShift) / t.realMultiplier - 1) < 1e-9);
            // ...and the rounding lands within half a step of the exact rescaled value (plus the
            // mantissa's 2^-31 relative error).
            QVERIFY2(std::abs(double(t.rounded) - t.exactRescaled) <= 0.5 + std::abs(t.exactRescaled) * 1e-9 + 1e-9, where.c_str());
            QCOMPARE(t.withZeroPoint, t.rounded + t.outputZeroPoint);
            QCOMPARE(t.code, std::int32_t(std::clamp<std::int64_t>(t.withZeroPoint, t.codeMin, t.codeMax)));
            clamped += t.clamped;
            signedInputs += t.inputSigned;
            ++traced;
        }
    }
    qInfo("%d values traced (%d padded products, %d clamped, %d with int8 inputs): each equals the engine's code", traced, padded,
          clamped, signedInputs);
    QVERIFY(traced >= 6);
}

void TestStudy::integerTraceRefusesWhatItCannotTrace()
{
    QE_REQUIRE_PATH(kFashion);
    Study study(StudySources{.model = kDemoModel, .data = kFashion, .calibrationImages = 16, .evaluationImages = 4});
    const QuantConfig config = configFromJson("{}");
    const std::string conv = study.layers()[1].name;
    auto message = [&](const std::string& layer, const std::vector<std::int64_t>& position, std::size_t image = 0) {
        try {
            study.traceIntegerOutput(config, layer, image, position);
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    QVERIFY(message("nonsense", {}).find("no layer 'nonsense'") != std::string::npos);
    QVERIFY(message(study.layers()[0].name, {}).find("does not run in integers") != std::string::npos);
    QVERIFY(message(conv, {0, 999, 0, 0}).find("is not in its output, of shape [1,") != std::string::npos);
    QVERIFY(message(conv, {0, 0}).find("is not in its output") != std::string::npos);
    QVERIFY(message(conv, {}, 99).find("not one of the 4 evaluation images") != std::string::npos);
    // No position: the first element.
    const IntegerTrace first = study.traceIntegerOutput(config, conv, 0, {});
    QCOMPARE(first.position, std::vector<std::int64_t>(4, 0));
    QCOMPARE(first.code, first.engineCode);
    const QuantConfig floatConv = configFromJson(R"({"layers": {")" + conv + R"(": {"float": true}}})");
    try {
        study.traceIntegerOutput(floatConv, conv, 0, {});
        QFAIL("a float layer was traced");
    } catch (const Error& e) {
        QVERIFY(std::string(e.what()).find("does not run in integers") != std::string::npos);
    }
}

QTEST_APPLESS_MAIN(TestStudy)
// With a set far larger than the sample, the interval is Wilson's score interval, as published
// by Newcombe ("Two-sided confidence intervals for the single proportion", Statistics in Medicine
// 1998, table II, method 3): 81/263 0.2553-0.3662, 15/148 0.0624-0.1605, 0/20 0-0.1611, 1/29
// 0.0061-0.1718. Once every image is scored the interval is the value; it never leaves what the
// images left can still do.
void TestStudy::runningTop1IntervalIsWilsons()
{
    const struct {
        std::size_t correct, scored;
        double low, high;
    } newcombe[] = {{81, 263, 0.2553, 0.3662}, {15, 148, 0.0624, 0.1605}, {0, 20, 0.0, 0.1611}, {1, 29, 0.0061, 0.1718}};
    for (const auto& row : newcombe) {
        const Interval interval = runningTop1Interval({row.correct, row.scored, 100'000'000});
        QVERIFY2(std::abs(interval.low - row.low) < 6e-5 && std::abs(interval.high - row.high) < 6e-5,
                 qPrintable(QString("%1/%2: %3 to %4").arg(row.correct).arg(row.scored).arg(interval.low).arg(interval.high)));
    }
    const Interval all = runningTop1Interval({150, 300, 300});
    QCOMPARE(all.low, 0.5);
    QCOMPARE(all.high, 0.5);
    // 290 of 299 scored, one image left: the set's top-1 is 290/300 or 291/300.
    const Interval last = runningTop1Interval({290, 299, 300});
    QVERIFY(last.low >= 290.0 / 300 - 1e-12 && last.high <= 291.0 / 300 + 1e-12);
    // The further along, the narrower.
    QVERIFY(runningTop1Interval({64, 100, 1000}).high - runningTop1Interval({64, 100, 1000}).low >
            runningTop1Interval({320, 500, 1000}).high - runningTop1Interval({320, 500, 1000}).low);
}

// What the interval claims, checked by sampling: sets of 1000 images with a known top-1, the first
// n of a random order scored; the set's top-1 lies inside the interval about 95% of the time.
// Wilson's coverage oscillates around its level and dips to about 92% for few samples at an
// extreme proportion (Brown, Cai and DasGupta, "Interval estimation for a binomial proportion",
// 2001), and 4,000 trials add about 0.7 points either way: from 91% to 98% is asked. Without the
// finite-population correction the 640-of-1000 intervals would be 1.7 times too wide and hold it
// about 99.9% of the time.
void TestStudy::runningTop1IntervalCoversTheWholeSet()
{
    std::mt19937 random(2026);
    for (const double accuracy : {0.55, 0.9, 0.97})
        for (const std::size_t scored : {32, 128, 640}) {
            constexpr std::size_t total = 1000, trials = 4000;
            const std::size_t correctInSet = std::size_t(accuracy * total);
            std::vector<char> set(total, 0);
            std::fill(set.begin(), set.begin() + std::ptrdiff_t(correctInSet), 1);
            std::size_t covered = 0;
            for (std::size_t t = 0; t < trials; ++t) {
                std::shuffle(set.begin(), set.end(), random);
                const std::size_t correct = std::size_t(std::count(set.begin(), set.begin() + std::ptrdiff_t(scored), 1));
                const Interval interval = runningTop1Interval({correct, scored, total});
                const double truth = double(correctInSet) / total;
                covered += interval.low <= truth && truth <= interval.high;
            }
            const double coverage = double(covered) / trials;
            qInfo("top-1 %.2f, %zu of %zu scored: the interval held the set's top-1 in %.1f%% of %zu trials", accuracy, scored,
                  std::size_t(total), 100 * coverage, std::size_t(trials));
            QVERIFY(coverage >= 0.91 && coverage <= 0.98);
        }
}

// The evaluator reports top-1 batch by batch, float first and then the quantized model: counts
// only grow, never pass the labelled images, and the last report of each is the final top-1.
void TestStudy::top1StreamsInWithTheBatches()
{
    QE_REQUIRE_PATH(kFashion);
    StudySources sources;
    sources.model = kDemoModel;
    sources.data = kFashion;
    sources.evaluationImages = 300;
    sources.calibrationImages = 64;
    Study study(sources);
    std::map<std::string, std::vector<RunningTop1>> seen;
    EvaluationProgress progress;
    progress.top1 = [&](const std::string& stage, const RunningTop1& top1) { seen[stage].push_back(top1); };
    QuantConfig config;
    config.defaultWeights.bits = 4;
    const StudyResult result = study.evaluate(config, {}, progress);
    QCOMPARE(seen.size(), std::size_t(2));
    for (const auto& [stage, reports] : seen) {
        QVERIFY2(reports.size() >= 300 / 64, stage.c_str());  // one per batch
        for (std::size_t i = 0; i < reports.size(); ++i) {
            QCOMPARE(reports[i].total, std::size_t(300));
            QVERIFY(reports[i].correct <= reports[i].scored && reports[i].scored <= reports[i].total);
            if (i > 0)
                QVERIFY(reports[i].scored > reports[i - 1].scored && reports[i].correct >= reports[i - 1].correct);
        }
        QCOMPARE(reports.back().scored, std::size_t(300));
    }
    QCOMPARE(seen["float reference"].back().value(), result.metrics.floatTop1);
    QCOMPARE(seen["quantized model"].back().value(), result.metrics.top1);

    // An edit of the last layer: the quantized model streams in again, from the cached batches.
    seen.clear();
    config.layers["/fc2/Gemm"].weights.bits = 8;
    const StudyResult edited = study.evaluate(config, {}, progress);
    QCOMPARE(seen.count("float reference"), std::size_t(0));
    QCOMPARE(seen["quantized model"].back().value(), edited.metrics.top1);
}

#include "tst_study.moc"
