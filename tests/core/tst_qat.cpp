// Quantization-aware training (core/train/qat.h, issue 15). The training module's torch graph
// must compute what our fp32 engine computes on every real model, and with the configuration's
// fake quantizers what our simulation computes; training must lower the quantized model's
// error, be reproducible from its seed, and `eval` of the written model must give the accuracy
// training reported, also with learned ranges (LSQ). Bad input (an operator torch cannot train, a learning rate that diverges,
// Cancel) ends in a clear state, never a crash.

#include "test_support.h"

#include "common/error.h"
#include "data/dataset.h"
#include "engine/executor.h"
#include "engine/graph_preparation.h"
#include "quant/simulator.h"
#include "study/study.h"
#include "train/qat.h"
#include "train/training_module_loader.h"

#include <QtTest>

#include <atomic>
#include <cmath>

using namespace qe;
namespace fs = std::filesystem;

namespace {

const fs::path kDemo = test::sourceDir() / "resources/models/fashion_cnn.onnx";
const fs::path kFashionTest = fs::path(QE_FASHION_MNIST_DIR) / "t10k-images-idx3-ubyte.gz";

QuantConfig w4a4()
{
    QuantConfig config;
    config.defaultWeights = {true, Scheme::Symmetric, 4, Granularity::PerChannel, 0, std::nullopt, false};
    config.defaultActivations = {true, Scheme::Affine, 4, Granularity::PerTensor, 0, std::nullopt, false};
    config.calibrationImages = 512;
    return config;
}

StudySources demoSources(std::size_t evaluationImages)
{
    StudySources sources;
    sources.model = kDemo;
    sources.data = kFashionTest;
    sources.evaluationImages = evaluationImages;
    return sources;
}

// The largest |a - b| over the largest |b|.
double relativeMaxError(const Tensor& a, const Tensor& b)
{
    double diff = 0, scale = 0;
    const auto va = a.values<float>(), vb = b.values<float>();
    for (std::size_t i = 0; i < va.size(); ++i) {
        diff = std::max(diff, double(std::abs(va[i] - vb[i])));
        scale = std::max(scale, double(std::abs(vb[i])));
    }
    return diff / std::max(scale, 1e-30);
}

std::vector<int> argmaxRows(const Tensor& t)
{
    const std::int64_t rows = t.dim(0), cols = t.size() / std::max<std::int64_t>(rows, 1);
    std::vector<int> result;
    for (std::int64_t r = 0; r < rows; ++r) {
        const float* row = t.data<float>() + r * cols;
        result.push_back(int(std::max_element(row, row + cols) - row));
    }
    return result;
}

}  // namespace

class TestQat : public QObject {
    Q_OBJECT

private slots:
    void initTestCase()
    {
        QE_REQUIRE_TRAINING_MODULE();
    }

    // The torch graph against our fp32 engine on real images: the demo model and every float
    // model of ../shared (their MANIFEST preprocessing; mnist-8 takes one image at a time).
    void forwardEqualsEngine_data()
    {
        QTest::addColumn<QString>("model");
        QTest::addColumn<QString>("data");
        QTest::addColumn<double>("scale");
        QTest::addColumn<double>("mean");
        QTest::addColumn<double>("crop");
        QTest::addColumn<int>("batch");
        const QString shared = QString::fromStdString(test::sharedDir().string());
        QTest::newRow("demo") << QString::fromStdString(kDemo.string()) << QString::fromStdString(kFashionTest.string())
                              << 1.0 / 255 << 0.0 << 1.0 << 16;
        QTest::newRow("mnist-8") << shared + "/models/mnist-8.onnx" << shared + "/data/mnist/t10k-images-idx3-ubyte.gz"
                                 << 1.0 / 255 << 0.0 << 1.0 << 1;
        QTest::newRow("resnet8") << shared + "/models/resnet8_cifar10.onnx"
                                 << shared + "/data/cifar10_mlperf_tiny_200/test_200.bin" << 1.0 << 0.0 << 1.0 << 16;
        QTest::newRow("vww") << shared + "/models/vww_96_mobilenetv1_025.onnx" << shared + "/data/vww_coco_96_200"
                             << 1.0 / 255 << 0.0 << 1.0 << 8;
        QTest::newRow("mobilenet 0.25") << shared + "/models/mobilenet_v1_0.25_128_float.onnx"
                                        << shared + "/data/imagenet_val_227_300" << 1.0 / 128 << 128.0 << 0.875 << 4;
        QTest::newRow("mobilenet 0.5") << shared + "/models/mobilenet_v1_0.5_160_float.onnx"
                                       << shared + "/data/imagenet_val_227_300" << 1.0 / 128 << 128.0 << 0.875 << 4;
    }

    void forwardEqualsEngine()
    {
        QFETCH(QString, model);
        QFETCH(QString, data);
        QFETCH(double, scale);
        QFETCH(double, mean);
        QFETCH(double, crop);
        QFETCH(int, batch);
        const fs::path modelPath = model.toStdString(), dataPath = data.toStdString();
        QE_REQUIRE_PATH(modelPath);
        QE_REQUIRE_PATH(dataPath);
        const Graph graph = loadOnnx(modelPath);
        const ImageInputGeometry input = imageInputGeometry(graph);
        Preprocess preprocess;
        preprocess.color = input.channels == 1 ? ColorOrder::Gray : ColorOrder::Rgb;
        // The MANIFEST's (pixel - mean) / 128 for the ImageNet MobileNets, pixel * scale otherwise.
        preprocess.scale = mean > 0 ? 1.0 : scale;
        preprocess.mean = {float(mean)};
        preprocess.stdDev = {mean > 0 ? 128.f : 1.f};
        preprocess.cropFraction = crop;
        const auto images = openDataset(dataPath);
        const Tensor x = makeBatch(*images, 0, std::size_t(batch), preprocess, input.channels, input.height, input.width);
        const Executor executor(graph);
        const Tensor expected = runSingle(executor, x);
        const Tensor actual = torchForward(graph, x);
        QCOMPARE(actual.shape(), expected.shape());
        // float32 in both, summed in other orders: ONNX's conformance tolerance.
        const std::string close = test::compareClose(actual, expected, 1e-3, 1e-5);
        QVERIFY2(close.empty(), close.c_str());
    }

    // With the configuration's fake quantizers, the torch graph computes what the simulation
    // computes: W8A8 and W4A4 on the demo model, on 256 test images. The simulation runs its
    // integer layers in integers (int32 bias, requantization), which rounds a few values to the
    // neighbouring level, so the outputs agree to within a few output steps, and the predictions
    // almost everywhere.
    void quantizedForwardEqualsSimulation_data()
    {
        QTest::addColumn<int>("bits");
        QTest::addColumn<int>("which");
        QTest::newRow("W8A8") << 8 << 3;
        QTest::newRow("W4A4") << 4 << 3;
        QTest::newRow("W4") << 4 << 1;
        QTest::newRow("A4") << 4 << 2;
    }

    void quantizedForwardEqualsSimulation()
    {
        QFETCH(int, bits);
        QFETCH(int, which);
        QE_REQUIRE_PATH(kFashionTest);
        Study study(demoSources(256));
        QuantConfig config = w4a4();
        config.defaultWeights.bits = bits;
        config.defaultActivations.bits = bits;
        config.defaultWeights.quantize = which & 1;
        config.defaultActivations.quantize = which & 2;
        const QuantPlan plan = study.plan(config);
        const Tensor x = makeBatch(*study.dataset(), 0, 256, study.preprocess(), 1, 28, 28);
        const Executor executor(plan.graph);
        const Tensor simulated = runSimulated(plan, executor, {{study.graph().inputs.at(0).name, x}}).begin()->second;
        const Tensor trained = quantizedForward(study, config, x);
        const std::vector<int> a = argmaxRows(trained), b = argmaxRows(simulated);
        int agree = 0;
        for (std::size_t i = 0; i < a.size(); ++i)
            agree += a[i] == b[i];
        const double error = relativeMaxError(trained, simulated);
        qInfo("%s: predictions agree on %d of 256 images; largest output difference %.4f of the largest output",
              QTest::currentDataTag(), agree, error);
        QVERIFY2(agree >= 250, qPrintable(QString("only %1 of 256 predictions agree").arg(agree)));
        // The float model differs far more: the quantizers are really there.
        const Tensor floatOutput = torchForward(study.graph(), x);
        QVERIFY(relativeMaxError(floatOutput, simulated) > 2 * error);
    }

    // W4A4 on the demo model: a few hundred steps of QAT lower the loss and raise the accuracy
    // above post-training quantization's, and eval of the written model and configuration gives
    // exactly the accuracy training reported.
    void recoversAndReproduces()
    {
        QE_REQUIRE_PATH(kFashionTest);
        Study study(demoSources(2000));
        QatOptions options;
        options.steps = 600;
        options.learningRate = 1e-3;
        options.checkpointEvery = 300;
        const QatResult result = fineTuneWithQat(study, w4a4(), options);
        qInfo("float %.2f%%, post-training %.2f%%, after %d steps %.2f%% (%.0f s)", 100 * result.floatTop1,
              100 * result.ptqTop1, result.steps, 100 * result.top1, result.seconds);
        QCOMPARE(result.steps, 600);
        QCOMPARE(result.history.size(), std::size_t(2));
        QVERIFY(!result.distilled);
        QCOMPARE(result.trainImages, std::size_t(60000));
        QVERIFY2(result.top1 > result.ptqTop1 + 0.005, "QAT did not beat post-training quantization by half a point");

        QTemporaryDir dir;
        const fs::path out = fs::path(dir.path().toStdString()) / "fashion_qat.onnx";
        saveFineTunedModel(result, study.preprocess(), out);
        Study reopened(StudySources{.model = out, .data = kFashionTest, .evaluationImages = 2000});
        const double top1 = reopened.evaluate(result.config).metrics.top1;
        QCOMPARE(top1, result.top1);
    }

    // LSQ: the activations' step sizes train with the weights. Each affine layer's learned range
    // keeps its zero-point (LSQ learns the step only), most steps move away from calibration, the
    // result beats post-training quantization, and the saved configuration (a fixed range per
    // layer, read back from its file) reproduces the reported top-1 without calibrating.
    void learnedRangesTrainAndReproduce()
    {
        QE_REQUIRE_PATH(kFashionTest);
        Study study(demoSources(2000));
        QatOptions options;
        options.steps = 300;
        options.learningRate = 1e-3;
        options.learnRanges = true;
        const QuantConfig config = w4a4();
        const QatResult result = fineTuneWithQat(study, config, options);
        qInfo("LSQ: post-training %.2f%%, after %d steps %.2f%%", 100 * result.ptqTop1, result.steps, 100 * result.top1);
        QVERIFY2(result.top1 > result.ptqTop1 + 0.005, "QAT with learned ranges did not beat post-training quantization");

        const QuantPlan calibrated = study.plan(config);
        QTemporaryDir dir;
        const fs::path out = fs::path(dir.path().toStdString()) / "fashion_lsq.onnx";
        const fs::path configPath = fs::path(dir.path().toStdString()) / "fashion_lsq.json";
        saveFineTunedModel(result, study.preprocess(), out);
        result.config.save(configPath);
        Study reopened(StudySources{.model = out, .data = kFashionTest, .evaluationImages = 2000});
        const QuantConfig saved = reopened.loadConfig(configPath);
        QCOMPARE(saved, result.config);
        const QuantPlan learned = reopened.plan(saved);
        int layersLearned = 0, stepsMoved = 0;
        for (std::size_t i = 0; i < learned.layers.size(); ++i) {
            const std::string& name = learned.layers[i].name;
            const LayerQuantConfig resolved = saved.resolve(name);
            if (!learned.plans[i].activationParams)
                continue;
            QVERIFY2(resolved.calibration.fixedRange, name.c_str());
            ++layersLearned;
            const UniformParams& before = calibrated.plans[i].activationParams->uniform();
            const UniformParams& after = learned.plans[i].activationParams->uniform();
            QCOMPARE(after.zeroPoint, before.zeroPoint);
            stepsMoved += std::abs(after.scale[0] / before.scale[0] - 1) > 0.01;
        }
        int staticLayers = 0;
        for (const LayerPlan& plan : calibrated.plans)
            staticLayers += plan.activationParams.has_value();
        QCOMPARE(layersLearned, staticLayers);
        QVERIFY(layersLearned >= 5);
        QVERIFY2(2 * stepsMoved > layersLearned, "LSQ left most steps where calibration put them");
        // Learned weight steps below the min-max ones: the saved weights are clipped at +-step * qmax,
        // so a clipped channel has several weights of exactly its largest magnitude (unclipped
        // trained weights almost never tie).
        int channels = 0, clipped = 0;
        for (const QuantLayer& layer : reopened.layers()) {
            if (layer.weight.empty())
                continue;
            const Tensor& w = reopened.graph().initializers.at(layer.weight);
            QCOMPARE(layer.weightChannelAxis, 0);
            const std::int64_t count = w.dim(0), perChannel = w.size() / count;
            const auto v = w.values<float>();
            for (std::int64_t c = 0; c < count; ++c, ++channels) {
                float largest = 0;
                for (std::int64_t i = 0; i < perChannel; ++i)
                    largest = std::max(largest, std::abs(v[std::size_t(c * perChannel + i)]));
                int atLargest = 0;
                for (std::int64_t i = 0; i < perChannel; ++i)
                    atLargest += std::abs(v[std::size_t(c * perChannel + i)]) == largest;
                clipped += atLargest >= 2;
            }
        }
        qInfo("LSQ clipped the weights of %d of %d output channels", clipped, channels);
        QVERIFY2(clipped * 20 > channels, "LSQ learned a step below min-max in fewer than one channel in twenty");
        // Fixed ranges everywhere: the reopened study evaluates without calibrating at all.
        const StudyResult again = reopened.evaluate(saved);
        QCOMPARE(again.calibrationImages, std::size_t(0));
        QCOMPARE(again.metrics.top1, result.top1);
        // An activation histogram calibrates (for each method's range, as the window shows them);
        // the evaluation it follows used none of those ranges and stays complete.
        const std::vector<ErrorStats> before = reopened.imageLayerErrors(3);
        reopened.histogram(saved, reopened.layers().at(1).output, 64, {});
        QCOMPARE(reopened.imageLayerErrors(3).size(), before.size());
    }

    // BatchNormalization during the first epoch, frozen after (ResNet-8, whose seven BNs the
    // importer folds). With a learning rate too small to move the weights, what changes them is the
    // running statistics alone: after one epoch each folded convolution's output channel is its
    // old weights times one factor (gamma / sqrt(running variance) moved), some factors away from
    // 1; a second epoch changes nothing more (frozen); and frozen from the start, nothing moves.
    void batchNormStatisticsMoveDuringTheFirstEpochOnly()
    {
        const fs::path model = test::sharedDir() / "models/resnet8_cifar10.onnx";
        const fs::path data = test::sharedDir() / "data/cifar10_mlperf_tiny_200/test_200.bin";
        QE_REQUIRE_PATH(model);
        QE_REQUIRE_PATH(data);
        Study study(StudySources{.model = model, .data = data, .evaluationImages = 200});
        QCOMPARE(study.graph().foldedNormalization.size(), std::size_t(7));
        QuantConfig config;
        config.calibrationImages = 200;
        QatOptions options;
        options.batchSize = 50;
        options.learningRate = 1e-9;
        auto train = [&](int epochs, int batchNormEpochs) {
            options.epochs = epochs;
            options.batchNormEpochs = batchNormEpochs;
            return fineTuneWithQat(study, config, options).graph;
        };
        const std::shared_ptr<const Graph> frozen = train(1, 0), oneEpoch = train(1, 1), twoEpochs = train(2, 1);
        int channelsMoved = 0;
        for (const QuantLayer& layer : study.layers()) {
            if (!study.graph().foldedNormalization.count(layer.name))
                continue;
            const Tensor& before = study.graph().initializers.at(layer.weight);
            const std::int64_t channels = before.dim(0), perChannel = before.size() / channels;
            const auto w0 = before.values<float>(), wFrozen = frozen->initializers.at(layer.weight).values<float>(),
                       w1 = oneEpoch->initializers.at(layer.weight).values<float>(),
                       w2 = twoEpochs->initializers.at(layer.weight).values<float>();
            for (std::int64_t c = 0; c < channels; ++c) {
                // The channel's factor, from its largest weight.
                std::int64_t largest = c * perChannel;
                for (std::int64_t i = c * perChannel; i < (c + 1) * perChannel; ++i)
                    if (std::abs(w0[std::size_t(i)]) > std::abs(w0[std::size_t(largest)]))
                        largest = i;
                if (w0[std::size_t(largest)] == 0.f)
                    continue;
                const double factor = double(w1[std::size_t(largest)]) / w0[std::size_t(largest)];
                channelsMoved += std::abs(factor - 1) > 0.01;
                for (std::int64_t i = c * perChannel; i < (c + 1) * perChannel; ++i) {
                    const auto k = std::size_t(i);
                    const double scale = std::abs(double(w0[std::size_t(largest)]));
                    QVERIFY2(std::abs(wFrozen[k] - w0[k]) <= 1e-5 * scale, qPrintable(QString::fromStdString(layer.name)));
                    QVERIFY2(std::abs(w1[k] - factor * w0[k]) <= 1e-4 * std::abs(factor) * scale,
                             qPrintable(QString::fromStdString(layer.name) + " channel " + QString::number(c)));
                    QVERIFY2(std::abs(w2[k] - w1[k]) <= 1e-4 * std::abs(factor) * scale,
                             qPrintable(QString::fromStdString(layer.name) + " changed in the second epoch"));
                }
            }
        }
        qInfo("%d output channels rescaled by more than 1%% by the first epoch's statistics", channelsMoved);
        QVERIFY(channelsMoved > 20);
    }

    // The bar: at W4A4 (per-channel weights, MSE activation ranges; the shipped
    // configuration) three epochs of QAT come within 1.5 points of float on all 10,000 test images,
    // where post-training quantization loses more than that.
    void w4a4WithinOneAndAHalfPointsOfFloat()
    {
        QE_REQUIRE_PATH(kFashionTest);
        Study study(demoSources(10000));
        const QuantConfig config = QuantConfig::load(test::sourceDir() / "resources/configs/w4a4_mse_per_channel.json");
        QatOptions options;
        options.epochs = 3;
        options.learningRate = 1e-3;
        const QatResult result = fineTuneWithQat(study, config, options);
        qInfo("float %.2f%%, post-training %.2f%%, QAT %.2f%% (%.0f s)", 100 * result.floatTop1, 100 * result.ptqTop1,
              100 * result.top1, result.seconds);
        QVERIFY2(result.ptqTop1 < result.floatTop1 - 0.015, "post-training quantization is already within 1.5 points");
        QVERIFY2(result.top1 >= result.floatTop1 - 0.015, "QAT is more than 1.5 points below float");
    }

    // The same seed gives the same weights; another seed others.
    void deterministic()
    {
        QE_REQUIRE_PATH(kFashionTest);
        Study study(demoSources(100));
        QatOptions options;
        options.steps = 20;
        options.trainImages = 2000;
        options.learningRate = 1e-3;
        auto weights = [&](std::uint64_t seed) {
            options.seed = seed;
            return fineTuneWithQat(study, w4a4(), options).graph->initializers.at("fc2.weight").toFloatVector();
        };
        const std::vector<float> first = weights(7);
        QCOMPARE(weights(7), first);
        QVERIFY(weights(8) != first);
    }

    // Labels absent: the float model's outputs are the targets, and it still trains.
    void distillsWithoutLabels()
    {
        QE_REQUIRE_PATH(kFashionTest);
        QTemporaryDir dir;
        // The training images alone, without their labels file beside them.
        const fs::path unlabelled = fs::path(dir.path().toStdString()) / "images-idx3-ubyte.gz";
        fs::copy_file(fs::path(QE_FASHION_MNIST_DIR) / "train-images-idx3-ubyte.gz", unlabelled);
        Study study(demoSources(1000));
        QatOptions options;
        options.steps = 400;
        options.trainImages = 6400;
        options.learningRate = 1e-3;
        options.trainData = unlabelled;
        const QatResult result = fineTuneWithQat(study, w4a4(), options);
        qInfo("post-training %.2f%%, distilled %d steps %.2f%%", 100 * result.ptqTop1, result.steps, 100 * result.top1);
        QVERIFY(result.distilled);
        QVERIFY(!result.notes.empty());
        QVERIFY2(result.top1 > result.ptqTop1, "distillation did not beat post-training quantization");
    }

    // A learning rate that makes the loss diverge: training stops, keeps the last finite weights
    // and says so.
    void divergenceStops()
    {
        QE_REQUIRE_PATH(kFashionTest);
        Study study(demoSources(200));
        QatOptions options;
        options.steps = 50;
        options.trainImages = 3200;
        options.optimizer = QatOptimizer::Sgd;
        options.learningRate = 1e12;
        options.cosineSchedule = false;
        options.checkpointEvery = 5;
        const QatResult result = fineTuneWithQat(study, w4a4(), options);
        QVERIFY(result.diverged);
        QVERIFY(result.steps < 50);
        bool mentioned = false;
        for (const std::string& note : result.notes)
            mentioned |= note.find("diverged") != std::string::npos;
        QVERIFY(mentioned);
        for (const auto& [name, tensor] : result.graph->initializers)
            if (tensor.dtype() == DataType::Float32)
                for (float v : tensor.values<float>())
                    QVERIFY2(std::isfinite(v), name.c_str());
    }

    // Cancel after the first checkpoint keeps the best checkpoint's weights.
    void cancelKeepsBestCheckpoint()
    {
        QE_REQUIRE_PATH(kFashionTest);
        Study study(demoSources(500));
        QatOptions options;
        options.steps = 1000;
        options.trainImages = 6400;
        options.learningRate = 1e-3;
        options.checkpointEvery = 10;
        std::atomic<bool> cancel{false};
        QatProgress progress;
        progress.cancel = &cancel;
        progress.onCheckpoint = [&](const QatCheckpoint& c) {
            if (c.step >= 20)
                cancel = true;
        };
        const QatResult result = fineTuneWithQat(study, w4a4(), options, progress);
        QVERIFY(result.cancelled);
        QVERIFY(result.steps < 1000);
        QVERIFY(result.history.size() >= 2);
        double best = 0;
        for (const QatCheckpoint& c : result.history)
            best = std::max(best, c.top1);
        QCOMPARE(result.top1, best);
        QCOMPARE(study.withModel(result.graph)->evaluate(result.config).metrics.top1, best);
    }

    // Abandoned (the window opened another model), the run stops without measuring anything more:
    // Cancelled, no result, no stage after the checkpoint it was in.
    void abandonStopsAtOnce()
    {
        QE_REQUIRE_PATH(kFashionTest);
        Study study(demoSources(500));
        QatOptions options;
        options.steps = 1000;
        options.trainImages = 6400;
        options.checkpointEvery = 10;
        std::atomic<bool> cancel{false}, abandon{false};
        std::vector<std::string> stages;
        QatProgress progress;
        progress.cancel = &cancel;
        progress.abandon = &abandon;
        progress.onStage = [&](const std::string& stage) { stages.push_back(stage); };
        progress.onCheckpoint = [&](const QatCheckpoint&) {
            cancel = true;
            abandon = true;
        };
        QVERIFY_THROWS_EXCEPTION(Cancelled, fineTuneWithQat(study, w4a4(), options, progress));
        QVERIFY(std::find(stages.begin(), stages.end(), "Measuring the fine-tuned model") == stages.end());
        QVERIFY2(stages.back().rfind("Measuring step", 0) == 0, stages.back().c_str());  // the checkpoint it was in
    }

    // An operator without a training path is an error naming the node, before anything runs.
    void unsupportedOperatorNamed()
    {
        Graph graph;
        graph.name = "erf";
        graph.opsetVersion = 13;
        graph.inputs.push_back({"x", DataType::Float32, {{1, ""}, {4, ""}}, true});
        graph.outputs.push_back({"y", DataType::Float32, {{1, ""}, {4, ""}}, true});
        graph.nodes.push_back({"the_erf", "Erf", "", {"x"}, {"y"}, {}});
        const Tensor x(DataType::Float32, {1, 4});
        try {
            torchForward(graph, x);
            QFAIL("no error");
        } catch (const Error& e) {
            const std::string message = e.what();
            QVERIFY2(message.find("the_erf") != std::string::npos && message.find("Erf") != std::string::npos, e.what());
        }
    }
};

QTEST_GUILESS_MAIN(TestQat)
#include "tst_qat.moc"
