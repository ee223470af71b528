// AdaRound (core/repair/adaround.h) on real layers: every weighted layer of the demo model, with
// the inputs the W4A8 simulation gives it, every weighted layer of MNIST-8, ResNet-8 and the VWW
// MobileNetV1 0.25, and a handful of MobileNetV1 0.5 layers (stride 2, depthwise, pointwise, the
// classifier), with float inputs. Each must (a) keep every code within
// one step of nearest rounding, on the weight's floor or ceiling, inside the code range, and
// (b) lower the layer's reconstruction error on held-out images below nearest rounding's at
// 4 bits. The held-out error is computed by our own fp32 engine (the node's kernel and its fused
// activation), not by AdaRound's unfolded products, so it checks those too. (c) Bad input is a
// qe::Error naming the layer and what was expected.

#include "common/error.h"
#include "data/dataset.h"
#include "engine/graph_preparation.h"
#include "engine/operator.h"
#include "quant/simulator.h"
#include "repair/adaround.h"
#include "repair/layer_samples.h"
#include "sanitizer.h"
#include "test_support.h"

#include <QtTest>

#include <chrono>
#include <cmath>
#include <random>
#include <span>

using namespace qe;
namespace fs = std::filesystem;

namespace {

const fs::path kDemo = test::sourceDir() / "resources/models/fashion_cnn.onnx";
const fs::path kFashionTrain = fs::path(QE_FASHION_MNIST_DIR) / "train-images-idx3-ubyte.gz";
const fs::path kMobileNet = test::sharedDir() / "models/mobilenet_v1_0.5_160_float.onnx";
const fs::path kImageNet = test::sharedDir() / "data/imagenet_val_227_300";

// AdaRound's defaults (10,000 iterations); with 3,000, a stride-2 depthwise layer of MobileNet
// ended 1% above nearest rounding on held-out images. Under a sanitizer every layer still runs,
// for 300 iterations, and (b), which needs the full optimisation, is left to the normal pass.
const int kIterations = test::unlessSanitized(AdaRoundOptions{}.iterations, 300);

const TensorQuantSpec kW4PerChannel{true, Scheme::Symmetric, 4, Granularity::PerChannel, 0, std::nullopt, false};

std::vector<QuantLayer> weightedLayers(const Graph& graph)
{
    std::vector<QuantLayer> layers;
    for (const QuantLayer& layer : findQuantLayers(graph))
        if (!layer.weight.empty())
            layers.push_back(layer);
    return layers;
}

// `values` through the layer's fused Relu/Clip, if it has one.
Tensor throughActivation(const Graph& graph, const QuantLayer& layer, const Tensor& values)
{
    if (layer.outputNodeIndex == layer.nodeIndex)
        return values;
    const Node& activation = graph.nodes.at(static_cast<std::size_t>(layer.outputNodeIndex));
    std::vector<const Tensor*> in{&values};
    for (std::size_t i = 1; i < activation.inputs.size(); ++i)
        in.push_back(activation.inputs[i].empty() ? nullptr : &graph.initializers.at(activation.inputs[i]));
    return runNode(activation, graph.opsetVersion, in).at(0);
}

// The layer's output through its fused activation, by the fp32 engine, with `weights` in place
// of the model's.
Tensor runLayer(const Graph& graph, const QuantLayer& layer, const Tensor& weights, const Tensor& inputs)
{
    const Node& node = graph.nodes.at(static_cast<std::size_t>(layer.nodeIndex));
    std::vector<const Tensor*> in;
    for (const std::string& name : node.inputs)
        in.push_back(name.empty() ? nullptr : name == layer.weight ? &weights : name == node.inputs[0] ? &inputs : &graph.initializers.at(name));
    Tensor out = runNode(node, graph.opsetVersion, in).at(0);
    return throughActivation(graph, layer, out);
}

// Mean squared difference per element.
double meanSquaredError(const Tensor& a, const Tensor& b)
{
    const float* pa = a.data<float>();
    const float* pb = b.data<float>();
    double sum = 0;
    for (std::int64_t i = 0; i < a.size(); ++i)
        sum += double(pa[i] - pb[i]) * double(pa[i] - pb[i]);
    return sum / double(a.size());
}

// (a) and (b) for one layer; prints the numbers the report quotes.
void checkLayer(const Graph& graph, const QuantLayer& layer, const LayerSamples& fit, const LayerSamples& heldOut,
                bool floatInputs, int iterations = kIterations)
{
    const Tensor& weights = graph.initializers.at(layer.weight);
    Tensor nearestWeights;
    const QuantParams params = quantizeLayerWeights(layer, kW4PerChannel, weights, nearestWeights);
    AdaRoundOptions options;
    options.iterations = iterations;
    const AdaRoundResult result = adaRound(graph, layer, params, fit.inputs, fit.floatOutputs, options);
    const AdaRoundStatistics& s = result.statistics;

    // (a) Every code is the floor or the ceiling of w/s (plus the zero-point), within one step of
    // nearest rounding's code, and inside the code range; the weights are those codes' values.
    const std::vector<std::int32_t> nearest = uniformCodes(nearestWeights, params, params.axis);
    QCOMPARE(result.codes.size(), nearest.size());
    QCOMPARE(result.weights.shape(), weights.shape());
    const UniformParams& u = params.uniform();
    std::int64_t inner = 1;
    for (int d = params.axis + 1; d < weights.rank(); ++d)
        inner *= weights.dim(d);
    const std::int64_t channels = weights.dim(params.axis);
    std::size_t flipped = 0;
    for (std::size_t i = 0; i < nearest.size(); ++i) {
        const std::size_t c = static_cast<std::size_t>((std::int64_t(i) / inner) % channels);
        const float scale = u.scale[c];
        const std::int32_t code = result.codes[i], zero = u.zeroPoint[c];
        const float lower = std::floor(weights.data<float>()[i] * (1.f / scale)) + float(zero);
        if (!(code >= params.qmin && code <= params.qmax && std::abs(code - nearest[i]) <= 1 &&
              (float(code) == std::clamp(lower, float(params.qmin), float(params.qmax)) ||
               float(code) == std::clamp(lower + 1, float(params.qmin), float(params.qmax)))))
            QFAIL(qPrintable(QString("%1: weight %2 = %3 got code %4; nearest %5, range %6..%7")
                                 .arg(QString::fromStdString(layer.name)).arg(i).arg(weights.data<float>()[i])
                                 .arg(code).arg(nearest[i]).arg(params.qmin).arg(params.qmax)));
        QCOMPARE(result.weights.data<float>()[i], float(code - zero) * scale);
        flipped += code != nearest[i];
    }
    QCOMPARE(s.flippedFraction, double(flipped) / double(nearest.size()));
    QCOMPARE(s.iterations, iterations);

    // The unfolded products reproduce the engine's layer: with float inputs the float weights
    // reconstruct the float outputs up to float rounding.
    if (floatInputs)
        QVERIFY2(s.floatError <= 1e-6 * s.nearestError, qPrintable(QString::number(s.floatError)));

    // (b) On images it was not optimised on, AdaRound's rounding reconstructs the float output
    // better than nearest rounding (through the fused activation, as it was optimised).
    const Tensor target = throughActivation(graph, layer, heldOut.floatOutputs);
    const double nearestHeldOut = meanSquaredError(runLayer(graph, layer, nearestWeights, heldOut.inputs), target);
    const double adaRoundHeldOut = meanSquaredError(runLayer(graph, layer, result.weights, heldOut.inputs), target);
    qInfo("%-40s %6.1f%% flipped  fit error %.4g -> %.4g  held-out MSE %.4g -> %.4g (%.0f%%)  %.1f s", layer.name.c_str(),
          100 * s.flippedFraction, s.nearestError, s.adaRoundError, nearestHeldOut, adaRoundHeldOut,
          100 * adaRoundHeldOut / nearestHeldOut, s.totalMs / 1000);
    if (test::kSanitizerBuild)
        return;
    QVERIFY2(s.adaRoundError < s.nearestError, layer.name.c_str());
    QVERIFY2(adaRoundHeldOut < nearestHeldOut, layer.name.c_str());
}

}  // namespace

class TestAdaRound : public QObject {
    Q_OBJECT

private slots:
    // Every weighted layer of the demo model, fed what the W4A8 simulation (nearest rounding)
    // gives it, 256 training images to optimise on and 256 others held out.
    void demoModelEveryLayer()
    {
        const Graph graph = loadOnnx(kDemo);
        const Preprocess preprocess = *Preprocess::loadSidecar(kDemo);
        const std::unique_ptr<Dataset> train = openDataset(kFashionTrain);
        const std::vector<QuantLayer> layers = weightedLayers(graph);
        QCOMPARE(layers.size(), std::size_t(5));

        QuantConfig w4a8;
        w4a8.defaultWeights = kW4PerChannel;
        const std::vector<QuantLayer> allLayers = findQuantLayers(graph);
        CalibrationOptions calibrationOptions;
        calibrationOptions.images = 256;
        const QuantPlan plan = makePlan(graph, allLayers, w4a8, calibrate(graph, allLayers, *train, preprocess, calibrationOptions));
        const auto fit = collectLayerSamples(graph, layers, *train, preprocess, 0, 256, &plan);
        const auto heldOut = collectLayerSamples(graph, layers, *train, preprocess, 10000, 256, &plan);
        for (const QuantLayer& layer : layers) {
            checkLayer(graph, layer, fit.at(layer.name), heldOut.at(layer.name), false);
            if (QTest::currentTestFailed())
                return;
        }
    }

    // Float inputs reconstruct exactly with float weights (the unfolding is the engine's Conv),
    // checked on the demo model's first layers too.
    void demoModelFloatInputs()
    {
        const Graph graph = loadOnnx(kDemo);
        const Preprocess preprocess = *Preprocess::loadSidecar(kDemo);
        const std::unique_ptr<Dataset> train = openDataset(kFashionTrain);
        std::vector<QuantLayer> layers = weightedLayers(graph);
        layers.resize(2);
        const auto fit = collectLayerSamples(graph, layers, *train, preprocess, 0, 128);
        const auto heldOut = collectLayerSamples(graph, layers, *train, preprocess, 20000, 128);
        for (const QuantLayer& layer : layers) {
            checkLayer(graph, layer, fit.at(layer.name), heldOut.at(layer.name), true);
            if (QTest::currentTestFailed())
                return;
        }
    }

    // MobileNetV1 0.5 at 160: the stride-2 first layer, depthwise layers with stride 1 and 2,
    // pointwise layers and the 1x1 classifier; float inputs, 48 images to optimise on, 48 held out.
    void mobileNetLayers()
    {
        QE_REQUIRE_PATH(kMobileNet);
        QE_REQUIRE_PATH(kImageNet);
        const Graph graph = loadOnnx(kMobileNet);
        const Preprocess preprocess = test::makePreprocess(ColorOrder::Rgb, 1.0, 128, 128, 0.875);
        const std::unique_ptr<Dataset> images = openDataset(kImageNet, std::nullopt, "label_1001");
        const std::vector<QuantLayer> all = weightedLayers(graph);
        QCOMPARE(all.size(), std::size_t(28));
        std::vector<QuantLayer> layers;
        for (std::size_t i : {0, 1, 2, 3, 12, 25, 27})
            layers.push_back(all[i]);
        const auto fit = collectLayerSamples(graph, layers, *images, preprocess, 0, 48);
        const auto heldOut = collectLayerSamples(graph, layers, *images, preprocess, 200, 48);
        for (const QuantLayer& layer : layers) {
            checkLayer(graph, layer, fit.at(layer.name), heldOut.at(layer.name), true);
            if (QTest::currentTestFailed())
                return;
        }
    }

    // MNIST-8 from ../shared: Convs with auto_pad SAME_UPPER and no bias input, and a MatMul
    // after a Reshape (the model takes one image per run); Fashion-MNIST images, float inputs.
    void mnistEveryLayer()
    {
        const fs::path model = test::sharedDir() / "models/mnist-8.onnx";
        QE_REQUIRE_PATH(model);
        const Graph graph = loadOnnx(model);
        const Preprocess preprocess = test::makePreprocess(ColorOrder::Gray, 1.0 / 255, 0, 1, 1.0);
        const std::unique_ptr<Dataset> train = openDataset(kFashionTrain);
        const std::vector<QuantLayer> layers = weightedLayers(graph);
        QCOMPARE(layers.size(), std::size_t(3));
        QCOMPARE(graph.nodes.at(static_cast<std::size_t>(layers[2].nodeIndex)).opType, std::string("MatMul"));
        const auto fit = collectLayerSamples(graph, layers, *train, preprocess, 0, 128);
        const auto heldOut = collectLayerSamples(graph, layers, *train, preprocess, 30000, 128);
        for (const QuantLayer& layer : layers) {
            checkLayer(graph, layer, fit.at(layer.name), heldOut.at(layer.name), true);
            if (QTest::currentTestFailed())
                return;
        }
    }

    // The other shared models, every weighted layer, float inputs: CIFAR-10's ResNet-8 (3x3
    // Convs with strides, 1x1 shortcut Convs, the classifier Gemm) and the VWW MobileNetV1 0.25
    // at 96 (depthwise and pointwise with ReLU6, stride 2). Their 200 shipped images: the first
    // 100 to optimise on, the other 100 held out.
    void sharedModelEveryLayer_data()
    {
        QTest::addColumn<QString>("model");
        QTest::addColumn<QString>("data");
        QTest::addColumn<double>("scale");  // the MANIFEST's preprocessing: RGB, pixel * scale
        QTest::addColumn<int>("layerCount");
        QTest::newRow("resnet8") << "resnet8_cifar10.onnx" << "cifar10_mlperf_tiny_200/test_200.bin" << 1.0 << 10;
        QTest::newRow("vww") << "vww_96_mobilenetv1_025.onnx" << "vww_coco_96_200" << 1.0 / 255 << 28;
    }

    void sharedModelEveryLayer()
    {
        QFETCH(QString, model);
        QFETCH(QString, data);
        QFETCH(double, scale);
        QFETCH(int, layerCount);
        const fs::path modelPath = test::sharedDir() / "models" / model.toStdString();
        const fs::path dataPath = test::sharedDir() / "data" / data.toStdString();
        QE_REQUIRE_PATH(modelPath);
        QE_REQUIRE_PATH(dataPath);
        const Graph graph = loadOnnx(modelPath);
        const Preprocess preprocess = test::makePreprocess(ColorOrder::Rgb, scale, 0, 1, 1.0);
        const std::unique_ptr<Dataset> images = openDataset(dataPath);
        const std::vector<QuantLayer> layers = weightedLayers(graph);
        QCOMPARE(int(layers.size()), layerCount);
        const auto fit = collectLayerSamples(graph, layers, *images, preprocess, 0, 100);
        const auto heldOut = collectLayerSamples(graph, layers, *images, preprocess, 100, 100);
        for (const QuantLayer& layer : layers) {
            checkLayer(graph, layer, fit.at(layer.name), heldOut.at(layer.name), true);
            if (QTest::currentTestFailed())
                return;
        }
    }

    // Forms no model here has: a grouped Conv with several outputs per group, strides,
    // dilations and asymmetric pads; a depthwise Conv with auto_pad; a 1-D Conv; a Gemm with
    // [K, N] weights; a MatMul on a 3-D input. Random weights; targets from our fp32 engine.
    // The inputs are correlated as activations are (a shared level per image plus noise): on
    // white noise the reconstruction error is the weights' squared error times a constant, and
    // nearest rounding is already the best there is (the paper's point about the Hessian).
    void geometry_data()
    {
        QTest::addColumn<QString>("form");
        for (const char* form : {"grouped", "depthwise auto_pad", "1-D", "gemm [K, N]", "matmul 3-D"})
            QTest::newRow(form) << form;
    }
    void geometry()
    {
        QFETCH(QString, form);
        Graph graph;
        graph.opsetVersion = 13;
        Node node;
        node.name = "layer";
        node.inputs = {"x", "w"};
        node.outputs = {"y"};
        Shape input, weights;
        if (form == "grouped") {
            node.opType = "Conv";
            node.attributes = {{"group", std::int64_t(2)}, {"strides", std::vector<std::int64_t>{2, 1}},
                               {"dilations", std::vector<std::int64_t>{1, 2}}, {"pads", std::vector<std::int64_t>{1, 0, 0, 2}}};
            input = {1, 4, 11, 9};
            weights = {6, 2, 3, 2};
        } else if (form == "depthwise auto_pad") {
            node.opType = "Conv";
            node.attributes = {{"group", std::int64_t(8)}, {"strides", std::vector<std::int64_t>{2, 2}},
                               {"auto_pad", std::string("SAME_UPPER")}};
            input = {1, 8, 10, 10};
            weights = {8, 1, 3, 3};
        } else if (form == "1-D") {
            node.opType = "Conv";
            node.attributes = {{"pads", std::vector<std::int64_t>{2, 1}}};
            input = {1, 3, 20};
            weights = {5, 3, 4};
        } else if (form == "gemm [K, N]") {
            node.opType = "Gemm";
            input = {1, 24};
            weights = {24, 7};
        } else {
            node.opType = "MatMul";
            input = {1, 5, 24};
            weights = {24, 7};
        }
        std::mt19937 random(7);
        std::normal_distribution<float> normal;
        auto randomTensor = [&](Shape shape) {
            Tensor t(DataType::Float32, std::move(shape));
            for (float& v : std::span(t.mutableData<float>(), static_cast<std::size_t>(t.size())))
                v = normal(random);
            return t;
        };
        graph.initializers["w"] = randomTensor(weights);
        if (node.opType != "MatMul") {
            node.inputs.push_back("b");
            graph.initializers["b"] = randomTensor({weights[node.opType == "Gemm" ? 1 : 0]});
        }
        graph.inputs.push_back({"x", DataType::Float32, {}, false});
        graph.outputs.push_back({"y", DataType::Float32, {}, false});
        graph.nodes.push_back(node);
        const QuantLayer layer = weightedLayers(graph).at(0);
        auto samples = [&](std::int64_t images) {
            Shape shape = input;
            shape[0] = images;
            LayerSamples s{randomTensor(shape), {}};
            const std::int64_t perImage = s.inputs.size() / images;
            float* x = s.inputs.mutableData<float>();
            for (std::int64_t n = 0; n < images; ++n) {
                const float level = std::abs(normal(random)) + 0.5f;
                for (std::int64_t i = n * perImage; i < (n + 1) * perImage; ++i)
                    x[i] = level + 0.3f * x[i];
            }
            std::vector<const Tensor*> in{&s.inputs, &graph.initializers.at("w")};
            if (node.inputs.size() > 2)
                in.push_back(&graph.initializers.at("b"));
            s.floatOutputs = runNode(node, graph.opsetVersion, in).at(0);
            return s;
        };
        checkLayer(graph, layer, samples(64), samples(64), true, test::unlessSanitized(2000, 300));
    }

    // (c) What AdaRound refuses, each naming the layer and what it expected.
    void badInput_data()
    {
        QTest::addColumn<QString>("what");
        QTest::addColumn<QString>("expected");
        QTest::newRow("input channels") << "input channels" << "does not fit weights";
        QTest::newRow("output shape") << "output shape" << "its float outputs should be [8,32,14,14]";
        QTest::newRow("gemm input") << "gemm input" << "its input should end in 576 values";
        QTest::newRow("k-means") << "k-means" << "not 'kmeans'";
        QTest::newRow("fp8") << "fp8" << "not 'fp8_e4m3'";
        QTest::newRow("per-group") << "per-group" << "not per-group";
        QTest::newRow("scale count") << "scale count" << "expected 1 or 32 weight scales";
        QTest::newRow("zero iterations") << "zero iterations" << "at least 1 iteration, got 0";
        QTest::newRow("zero batch") << "zero batch" << "a batch size";
        QTest::newRow("no weights") << "no weights" << "needs a layer with weights";
        QTest::newRow("no samples") << "no samples" << "needs input samples";
    }
    void badInput()
    {
        QFETCH(QString, what);
        QFETCH(QString, expected);
        const Graph graph = loadOnnx(kDemo);
        const std::vector<QuantLayer> all = findQuantLayers(graph);
        const std::vector<QuantLayer> layers = weightedLayers(graph);
        QuantLayer layer = layers.at(1);  // conv2: 16 -> 32 channels, 3x3, pad 1, at 14x14
        const Tensor& weights = graph.initializers.at(layer.weight);
        Tensor nearest;
        QuantParams params = quantizeLayerWeights(layer, kW4PerChannel, weights, nearest);
        Tensor inputs(DataType::Float32, {8, 16, 14, 14}), outputs(DataType::Float32, {8, 32, 14, 14});
        AdaRoundOptions options;
        options.iterations = 10;
        if (what == "input channels")
            inputs = Tensor(DataType::Float32, {8, 8, 14, 14});
        if (what == "output shape")
            outputs = Tensor(DataType::Float32, {8, 32, 7, 7});
        if (what == "gemm input") {
            layer = layers.at(3);  // fc1: 576 -> 128
            params = quantizeLayerWeights(layer, kW4PerChannel, graph.initializers.at(layer.weight), nearest);
            inputs = Tensor(DataType::Float32, {8, 575});
            outputs = Tensor(DataType::Float32, {8, 128});
        }
        if (what == "k-means")
            params = quantizeLayerWeights(layer, {true, Scheme::KMeans, 4, Granularity::PerChannel, 0, std::nullopt, false}, weights, nearest);
        if (what == "fp8")
            params = quantizeLayerWeights(layer, {true, Scheme::Fp8E4M3, 8, Granularity::PerChannel, 0, std::nullopt, false}, weights, nearest);
        if (what == "per-group")
            params = quantizeLayerWeights(layer, {true, Scheme::Symmetric, 4, Granularity::PerGroup, 16, std::nullopt, false}, weights, nearest);
        if (what == "scale count") {
            params.uniform().scale.resize(5);
            params.uniform().zeroPoint.resize(5);
        }
        if (what == "zero iterations")
            options.iterations = 0;
        if (what == "zero batch")
            options.batchSize = 0;
        if (what == "no weights")
            layer = all.front();  // the graph input
        if (what == "no samples") {
            inputs = Tensor(DataType::Float32, {0, 16, 14, 14});
            outputs = Tensor(DataType::Float32, {0, 32, 14, 14});
        }
        try {
            adaRound(graph, layer, params, inputs, outputs, options);
            QFAIL("no error");
        } catch (const Error& e) {
            const QString message = e.what();
            QVERIFY2(message.contains(QString::fromStdString("layer '" + layer.name + "'")), qPrintable(message));
            QVERIFY2(message.contains(expected), qPrintable(message));
        }
    }

    // Cancelling stops the optimisation with qe::Cancelled.
    void cancel()
    {
        const Graph graph = loadOnnx(kDemo);
        const QuantLayer layer = weightedLayers(graph).at(1);
        Tensor nearest;
        const QuantParams params = quantizeLayerWeights(layer, kW4PerChannel, graph.initializers.at(layer.weight), nearest);
        std::atomic<bool> cancelled{false};
        AdaRoundOptions options;
        options.progress.cancel = &cancelled;
        options.stage = "AdaRound layer 1 of 1";
        int reports = 0;
        options.progress.report = [&](const std::string& stage, std::size_t done, std::size_t total) {
            ++reports;
            QCOMPARE(stage, options.stage);
            QCOMPARE(total, std::size_t(options.iterations));
            if (done >= 1000)
                cancelled = true;
        };
        QVERIFY_THROWS_EXCEPTION(Cancelled, adaRound(graph, layer, params, Tensor(DataType::Float32, {4, 16, 14, 14}),
                                                     Tensor(DataType::Float32, {4, 32, 14, 14}), options));
        QCOMPARE(reports, 2);
    }
};

QTEST_GUILESS_MAIN(TestAdaRound)
#include "tst_adaround.moc"
