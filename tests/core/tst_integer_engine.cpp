// The integer-only engine against the fake-quant simulation of the same plan, on the demo model
// (Fashion-MNIST) under several configurations and on every float model in ../shared/models,
// and on real int8 models from outside (MLPerf Tiny's ResNet-8 and Visual Wake Words,
// TensorFlow's uint8 MobileNetV1, with their original scales and zero-points) against the
// accuracy their MANIFEST measured.
//
// What is compared:
// - each layer alone: the engine's output codes against the simulation of that one layer fed
//   the engine's own inputs. This is the engine's arithmetic. The Conv, Gemm and MatMul layers
//   that run in integers the simulation computes exactly as the engine does, so all their codes
//   are equal; other layers it computes in float32, so >= 99.9% of their codes are equal (98% for
//   averages, see verifyLayersAlone) and all are within one step.
// - end to end: top-1 agreement and output steps, at the issue's thresholds (>= 99.9% of the
//   output elements within one step, the same top-1 on >= 99.5% of the images) on every model.

#include "data/dataset.h"
#include "eval/integer_evaluation.h"
#include "eval/quant_evaluator.h"
#include "engine/graph_preparation.h"
#include "engine/int8/kernels/fast_kernels.h"
#include "engine/int8/kernels/fused_kernels.h"
#include "model/graph_transforms.h"
#include "quant/qdq_import.h"
#include "sanitizer.h"
#include "test_support.h"

#include <QtTest>

#include <nlohmann/json.hpp>

#include <cmath>
#include <random>
#include <set>

using namespace qe;
namespace fs = std::filesystem;

Q_DECLARE_METATYPE(qe::Preprocess)

namespace {

// Normally distributed values (standard deviation 0.5) from one seeded generator: a synthetic
// test model's weights and inputs.
class RandomTensors {
public:
    explicit RandomTensors(unsigned seed) : rng_(seed) {}
    Tensor operator()(Shape shape)
    {
        Tensor t(DataType::Float32, std::move(shape));
        for (std::int64_t i = 0; i < t.size(); ++i)
            t.mutableData<float>()[i] = normal_(rng_);
        return t;
    }

private:
    std::mt19937 rng_;
    std::normal_distribution<float> normal_{0.f, 0.5f};
};

// The default plan of a small test graph, its min-max ranges observed on one batch of its input.
QuantPlan planCalibratedOn(const Graph& g, const Tensor& batch)
{
    const std::vector<QuantLayer> layers = findQuantLayers(g);
    RunOptions capture;
    for (const QuantLayer& l : layers)
        capture.capture.insert(l.output);
    const TensorMap out = Executor(g).run({{g.inputs[0].name, batch}}, capture);
    CalibrationData calibration;
    for (const QuantLayer& l : layers)
        calibration.observers[l.output].observe(out.at(l.output));
    calibration.images = std::size_t(batch.dim(0));
    return makePlan(g, layers, QuantConfig{}, calibration);
}

const fs::path kDemoModel = test::sourceDir() / "resources/models/fashion_cnn.onnx";
const fs::path kFashionTest = fs::path(QE_FASHION_MNIST_DIR) / "t10k-images-idx3-ubyte.gz";
const fs::path kFashionTrain = fs::path(QE_FASHION_MNIST_DIR) / "train-images-idx3-ubyte.gz";

// Every layer that ran in integers matches the simulation of that layer alone (`r` evaluated
// `plan`). The weighted layers the plan computes in integers match exactly, and their float32
// accumulation is exact for these weights (every partial sum below 2^24). The other layers
// compute in float32 in the simulation. Averaging layers hit exact ties often (a sum divided by
// 16 ends in .5 for one sum in 16); there the engine rounds the exact value half to even, while
// the simulation's float32 mean lands a hair either side of the tie, so a few percent of their
// codes may differ, by one step.
// Where every activation is static, the simulation computes in integers exactly the weighted
// layers the engine runs in integers. (With a dynamic input range the engine still does, with
// its requantization prepared per batch; the simulation then keeps the layer in float.)
void verifyLayersAlone(const IntegerEvaluation& r, const QuantPlan& plan, bool staticActivations = true)
{
    QCOMPARE(r.layers.size(), plan.layers.size());
    for (std::size_t i = 0; i < r.layers.size(); ++i) {
        const QuantLayer& layer = plan.layers[i];
        const auto integerLayer = plan.integerLayers.find(layer.nodeIndex);
        const bool simulatedInIntegers = integerLayer != plan.integerLayers.end();
        const bool weighted = layer.opType == "Conv" || layer.opType == "Gemm" || layer.opType == "MatMul";
        if (simulatedInIntegers) {
            QVERIFY2(r.layers[i].integer, layer.name.c_str());
            QVERIFY2(integerLayer->second.accumulatorBound < 16777216.0, layer.name.c_str());
        }
        if (weighted && staticActivations)
            QVERIFY2(simulatedInIntegers == r.layers[i].integer, layer.name.c_str());
        if (!r.layers[i].integer || std::isnan(r.isolatedExactFraction[i]))
            continue;
        const bool averages = r.layers[i].opType == "AveragePool" || r.layers[i].opType == "GlobalAveragePool";
        const QString what = QString::fromStdString(r.layers[i].layer) +
                             QString(": %1% of codes equal, %2% within one step")
                                 .arg(100 * r.isolatedExactFraction[i], 0, 'f', 4)
                                 .arg(100 * r.isolatedWithinOneLsbFraction[i], 0, 'f', 4);
        QVERIFY2(r.isolatedExactFraction[i] >= (simulatedInIntegers ? 1.0 : averages ? 0.98 : 0.999), qPrintable(what));
        QVERIFY2(r.isolatedWithinOneLsbFraction[i] == 1.0, qPrintable(what));
    }
}

QString summary(const IntegerEvaluation& r)
{
    return QString("int8 top-1 %1%, simulation %2%, agreement %3% (%4% up to ties), output within 1 step %5%, %6 of %7 layers integer")
        .arg(100 * r.top1, 0, 'f', 2)
        .arg(100 * r.simulatedTop1, 0, 'f', 2)
        .arg(100 * r.agreementWithSimulation, 0, 'f', 2)
        .arg(100 * r.agreementUpToTies, 0, 'f', 2)
        .arg(100 * r.outputWithinOneLsb, 0, 'f', 3)
        .arg(r.integerLayers)
        .arg(r.layers.size());
}

}  // namespace

class TestIntegerEngine : public QObject {
    Q_OBJECT
private slots:
    void demoModelMatchesSimulation_data();
    void demoModelMatchesSimulation();
    void unsupportedChoicesRunInFloatWithAReason();
    void shapesTheKernelsDoNotTakeRunInFloat();
    void attentionProductsRunInIntegers();
    void residualAddsGiveTheSameCodesAtEveryBatchSize();
    void integerLayersAreSimulatedExactly();
    void referenceKernelsGiveTheSameCodes_data();
    void referenceKernelsGiveTheSameCodes();
    void referenceKernelsGiveTheSameCodesOnMobileNets_data();
    void referenceKernelsGiveTheSameCodesOnMobileNets();
    void sharedFloatModelsMatchSimulation_data();
    void sharedFloatModelsMatchSimulation();
    void simulationOnEngineKernelsGivesTheSameCodes_data();
    void simulationOnEngineKernelsGivesTheSameCodes();
    void realInt8ModelsReachTheirAccuracy_data();
    void realInt8ModelsReachTheirAccuracy();
};

void TestIntegerEngine::demoModelMatchesSimulation_data()
{
    QTest::addColumn<QString>("configJson");
    QTest::newRow("W8A8 per-channel, uint8 activations") << "{}";
    QTest::newRow("W8A8 per-tensor") << R"({"default": {"weights": {"granularity": "per_tensor"}}})";
    QTest::newRow("int8 activations (symmetric)") << R"({"default": {"activations": {"scheme": "symmetric"}}})";
    QTest::newRow("power-of-two scales") << R"({"default": {"weights": {"scheme": "power_of_two"}, "activations": {"scheme": "power_of_two"}}})";
    QTest::newRow("W4A8") << R"({"default": {"weights": {"bits": 4}}})";
    QTest::newRow("W4A8, MSE weight ranges") << R"({"default": {"weights": {"bits": 4, "range": "mse"}}})";
    QTest::newRow("W8A6 affine weights") << R"({"default": {"weights": {"scheme": "affine"}, "activations": {"bits": 6}}})";
    QTest::newRow("entropy calibration") << R"({"calibration": {"method": "entropy"}})";
}

void TestIntegerEngine::demoModelMatchesSimulation()
{
    QFETCH(QString, configJson);
    QE_REQUIRE_PATH(kFashionTest);
    QE_REQUIRE_PATH(kFashionTrain);
    const auto graph = std::make_shared<const Graph>(loadOnnx(kDemoModel));
    const Preprocess preprocess = *Preprocess::loadSidecar(kDemoModel);
    const std::shared_ptr<const Dataset> test = openDataset(kFashionTest);
    const std::shared_ptr<const Dataset> train = openDataset(kFashionTrain);
    nlohmann::json json = nlohmann::json::parse(configJson.toStdString());
    json["format"] = "quantexplorer-config";
    json["version"] = 1;
    const QuantConfig config = QuantConfig::fromJson(json, "test");
    // 200 images under a sanitizer: each bar below then still allows one image or fewer.
    const std::size_t images = test::unlessSanitized<std::size_t>(1000, 200);
    QuantEvaluator evaluator(graph, test, preprocess, images);
    evaluator.calibrate(*train, 256);
    const QuantPlan plan = evaluator.plan(config);
    const IntegerEvaluation r = evaluateInteger(plan, *test, preprocess, images);
    qInfo("%s", qPrintable(summary(r)));
    QCOMPARE(r.integerLayers, r.layers.size());  // every layer of the demo model runs in integers
    verifyLayersAlone(r, plan);
    // The issue's thresholds: >= 99.9% of output elements within one step, >= 99.5% same top-1.
    QVERIFY2(r.outputWithinOneLsb >= 0.999, qPrintable(summary(r)));
    QVERIFY2(r.agreementWithSimulation >= 0.995, qPrintable(summary(r)));
    QVERIFY(std::abs(r.top1 - r.simulatedTop1) <= 0.005);
    QVERIFY(r.top1 > 0.85);  // and the quantized model still classifies (float: 91.8%)
    QVERIFY(r.msPerImage > 0);
}

void TestIntegerEngine::unsupportedChoicesRunInFloatWithAReason()
{
    QE_REQUIRE_PATH(kFashionTest);
    const auto graph = std::make_shared<const Graph>(loadOnnx(kDemoModel));
    const Preprocess preprocess = *Preprocess::loadSidecar(kDemoModel);
    const std::shared_ptr<const Dataset> test = openDataset(kFashionTest);
    QuantConfig config;
    config.layers["/conv1/Conv"].weights.scheme = Scheme::KMeans;
    config.layers["/conv1/Conv"].weights.bits = 4;
    config.layers["/conv1/Conv"].weights.granularity = Granularity::PerTensor;
    config.layers["/conv3/Conv"].activations.dynamic = true;
    config.layers["/fc2/Gemm"].keepFloat = true;
    QuantEvaluator evaluator(graph, test, preprocess, 300);
    evaluator.calibrate(*test, 128);
    const QuantPlan plan = evaluator.plan(config);
    const IntegerEvaluation r = evaluateInteger(plan, *test, preprocess, 300);
    qInfo("%s", qPrintable(summary(r)));
    std::map<std::string, LayerExecution> byName;
    for (const LayerExecution& e : r.layers)
        byName[e.layer] = e;
    auto reason = [&](const char* layer) { return QString::fromStdString(byName.at(layer).reason); };
    QVERIFY(byName.at("input").integer);
    QVERIFY(!byName.at("/conv1/Conv").integer);
    QVERIFY2(reason("/conv1/Conv").contains("kmeans"), qPrintable(reason("/conv1/Conv")));
    // conv1 computes in float, but its output is quantized as configured, so conv2 runs in integers.
    QVERIFY(byName.at("/conv2/Conv").integer);
    QVERIFY(!byName.at("/conv3/Conv").integer);
    QVERIFY2(reason("/conv3/Conv").contains("dynamic"), qPrintable(reason("/conv3/Conv")));
    // A run-time (dynamic) input scale: fc1 prepares its requantization per batch.
    QVERIFY(byName.at("/fc1/Gemm").integer);
    QVERIFY(!byName.at("/fc2/Gemm").integer);
    QVERIFY2(reason("/fc2/Gemm").contains("kept in float"), qPrintable(reason("/fc2/Gemm")));
    verifyLayersAlone(r, plan, false);
    // Float layers run as the simulation runs them, so the results still agree.
    QVERIFY2(r.agreementWithSimulation >= 0.99, qPrintable(summary(r)));
}

// Forms the integer kernels do not take are decided when the plan is lowered, never at run
// time: a broadcasting Mul (a squeeze-and-excitation gate), a constant that broadcasts along the
// width. They run in float, with the reason, and the model runs; a MatMul of a 3-D input runs in
// integers as one product of its rows.
void TestIntegerEngine::shapesTheKernelsDoNotTakeRunInFloat()
{
    RandomTensors randomTensor(1);
    Graph g;
    g.name = "shapes";
    g.opsetVersion = 13;
    g.inputs = {{"x", DataType::Float32, {{-1, "N"}, {4, ""}, {5, ""}, {5, ""}}, true}};
    g.outputs = {{"out", DataType::Float32, {}, false}};
    g.initializers["w"] = randomTensor({4, 4, 1, 1});
    g.initializers["wide"] = randomTensor({5});          // broadcasts along the width of a 4-D tensor
    g.initializers["m"] = randomTensor({5, 3});
    g.nodes = {Node{"conv", "Conv", "", {"x", "w"}, {"y"}, {}},
               Node{"pool", "GlobalAveragePool", "", {"y"}, {"p"}, {}},
               Node{"gate", "Sigmoid", "", {"p"}, {"s"}, {}},
               Node{"scale", "Mul", "", {"y", "s"}, {"z"}, {}},          // [N,4,5,5] x [N,4,1,1]
               Node{"shift", "Add", "", {"z", "wide"}, {"a"}, {}},
               Node{"rows", "Reshape", "", {"a", "shape"}, {"r"}, {}},  // [N, 20, 5]
               Node{"project", "MatMul", "", {"r", "m"}, {"out"}, {}}};
    g.initializers["shape"] = Tensor::fromValues<std::int64_t>({3}, std::vector<std::int64_t>{0, 20, 5});
    inferShapes(g);
    const QuantPlan plan = planCalibratedOn(g, randomTensor({8, 4, 5, 5}));
    const IntegerEngine engine(plan);
    std::map<std::string, LayerExecution> byName;
    for (const LayerExecution& e : engine.layerExecution())
        byName[e.layer] = e;
    QVERIFY(byName.at("conv").integer);
    QVERIFY(byName.at("gate").integer);
    QVERIFY(!byName.at("scale").integer);
    QVERIFY(!byName.at("shift").integer);
    // A MatMul over [N, 20, 5] rows is one matrix product of its 20N rows, in integers.
    QVERIFY2(byName.at("project").integer, byName.at("project").reason.c_str());
    // The simulation computes in integers the same weighted layers: the Conv and the MatMul.
    QVERIFY(plan.integerLayers.count(0));
    QVERIFY(plan.integerLayers.count(6));
    // And it runs, and agrees with the simulation within a step of the output.
    const Tensor x = randomTensor({3, 4, 5, 5});
    const Tensor ours = runIntegerSingle(engine, "x", x);
    const Tensor simulated = runSimulated(plan, Executor(plan.graph), {{"x", x}}).at("out");
    QCOMPARE(ours.shape(), (Shape{3, 20, 3}));
    const float step = plan.plans.back().activationParams->uniform().scale[0];
    for (std::int64_t i = 0; i < ours.size(); ++i)
        QVERIFY(std::abs(ours.data<float>()[i] - simulated.data<float>()[i]) <= step * 1.001f);
}

// An Add of two activations with different scales (a residual connection): a large batch looks
// its codes up in a table of all input pairs, a single image computes each one (engine/int8's
// elementwise steps); both must give the same codes, and both agree with the float simulation
// within one output step.
void TestIntegerEngine::residualAddsGiveTheSameCodesAtEveryBatchSize()
{
    RandomTensors randomTensor(7);
    Graph g;
    g.name = "residual";
    g.opsetVersion = 13;
    g.inputs = {{"x", DataType::Float32, {{-1, "N"}, {4, ""}, {64, ""}, {64, ""}}, true}};
    g.outputs = {{"sum", DataType::Float32, {}, false}};
    g.initializers["w1"] = randomTensor({4, 4, 1, 1});
    g.initializers["w2"] = randomTensor({4, 4, 3, 3});
    Node second{"second", "Conv", "", {"x", "w2"}, {"y2"}, {}};
    second.attributes["pads"] = std::vector<std::int64_t>{1, 1, 1, 1};
    g.nodes = {Node{"first", "Conv", "", {"x", "w1"}, {"y1"}, {}}, second, Node{"add", "Add", "", {"y1", "y2"}, {"sum"}, {}}};
    inferShapes(g);
    const QuantPlan plan = planCalibratedOn(g, randomTensor({4, 4, 64, 64}));
    const IntegerEngine engine(plan);
    for (const LayerExecution& e : engine.layerExecution())
        QVERIFY2(e.integer, e.layer.c_str());
    // 32 images: 524,288 sums (the table); one image: 16,384 (each computed).
    const std::int64_t images = 32, perImage = 4 * 64 * 64;
    const Tensor x = randomTensor({images, 4, 64, 64});
    RunOptions capture;
    capture.capture.insert("sum");
    const Tensor batch = int8::presentedCodes(engine.run({{"x", x}}, capture).codes.at("sum"));
    QCOMPARE(batch.size(), images * perImage);
    std::int64_t differentFromSimulation = 0;
    const Tensor simulated = runSimulated(plan, Executor(plan.graph), {{"x", x}}).at("sum");
    const Tensor ours = runIntegerSingle(engine, "x", x);
    const float step = plan.plans.back().activationParams->uniform().scale[0];
    for (std::int64_t i = 0; i < ours.size(); ++i) {
        QVERIFY(std::abs(ours.data<float>()[i] - simulated.data<float>()[i]) <= step * 1.001f);
        differentFromSimulation += ours.data<float>()[i] != simulated.data<float>()[i];
    }
    QVERIFY2(differentFromSimulation < ours.size() / 100, qPrintable(QString::number(differentFromSimulation)));
    for (std::int64_t image = 0; image < images; image += 7) {
        Tensor one(DataType::Float32, {1, 4, 64, 64});
        std::copy_n(x.data<float>() + image * perImage, perImage, one.mutableData<float>());
        const Tensor alone = int8::presentedCodes(engine.run({{"x", one}}, capture).codes.at("sum"));
        QCOMPARE(alone.size(), perImage);
        QVERIFY2(std::equal(alone.rawData(), alone.rawData() + alone.byteSize(), batch.rawData() + image * alone.byteSize()),
                 qPrintable(QString("image %1").arg(image)));
    }
}

// Attention's products of two activations, Q.K^T and attention.V, run in integers: int32 sums of
// (a - za)(b - zb), requantized by s_a s_b / s_out. The simulation computes the same products in
// float on the dequantized codes, so the two agree within one output step (the float sum's
// rounding), and nearly always exactly.
void TestIntegerEngine::attentionProductsRunInIntegers()
{
    RandomTensors randomTensor(7);
    Graph g;
    g.name = "attention";
    g.opsetVersion = 13;
    g.inputs = {{"x", DataType::Float32, {{-1, "N"}, {5, ""}, {8, ""}}, true}};
    g.outputs = {{"out", DataType::Float32, {}, false}};
    for (const char* w : {"wq", "wk", "wv"})
        g.initializers[w] = randomTensor({8, 8});
    g.nodes = {Node{"q", "MatMul", "", {"x", "wq"}, {"q_out"}, {}},
               Node{"k", "MatMul", "", {"x", "wk"}, {"k_out"}, {}},
               Node{"v", "MatMul", "", {"x", "wv"}, {"v_out"}, {}},
               Node{"kt", "Transpose", "", {"k_out"}, {"kt_out"}, {{"perm", std::vector<std::int64_t>{0, 2, 1}}}},
               Node{"scores", "MatMul", "", {"q_out", "kt_out"}, {"s_out"}, {}},  // [N, 5, 5]
               Node{"attention", "Softmax", "", {"s_out"}, {"a_out"}, {{"axis", std::int64_t{-1}}}},
               Node{"mix", "MatMul", "", {"a_out", "v_out"}, {"out"}, {}}};         // [N, 5, 8]
    inferShapes(g);
    const QuantPlan plan = planCalibratedOn(g, randomTensor({16, 5, 8}));
    const IntegerEngine engine(plan);
    std::map<std::string, LayerExecution> byName;
    for (const LayerExecution& e : engine.layerExecution())
        byName[e.layer] = e;
    for (const char* layer : {"q", "k", "v", "scores", "attention", "mix"})
        QVERIFY2(byName.at(layer).integer, (std::string(layer) + ": " + byName.at(layer).reason).c_str());
    const Tensor x = randomTensor({4, 5, 8});
    const Tensor ours = runIntegerSingle(engine, "x", x);
    const Tensor simulated = runSimulated(plan, Executor(plan.graph), {{"x", x}}).at("out");
    QCOMPARE(ours.shape(), (Shape{4, 5, 8}));
    const float step = plan.plans.back().activationParams->uniform().scale[0];
    std::int64_t exact = 0;
    for (std::int64_t i = 0; i < ours.size(); ++i) {
        const float d = std::abs(ours.data<float>()[i] - simulated.data<float>()[i]);
        QVERIFY(d <= step * 1.001f);
        exact += d < step * 0.5f;
    }
    QVERIFY2(exact >= ours.size() * 95 / 100, qPrintable(QString("%1 of %2 exact").arg(exact).arg(ours.size())));
}

namespace {

// The plain reference kernels (all a build without oneDNN and AVX-512 has) give the codes the
// fast kernels give, bit for bit, on every layer.
void compareKernels(const QuantPlan& plan, const std::string& inputName, const Tensor& batch)
{
    const IntegerEngine fast(plan), reference(plan, IntegerEngine::Kernels::Reference);
    for (const LayerExecution& e : reference.layerExecution())
        QVERIFY2(e.integer && !e.fastKernel, e.layer.c_str());
    if (int8::fastKernelsAvailable())  // and the other engine really ran the fast ones
        for (const LayerExecution& e : fast.layerExecution())
            QVERIFY2(e.fastKernel == (e.opType == "Conv" || e.opType == "Gemm"), e.layer.c_str());
    RunOptions capture;
    for (const QuantLayer& layer : plan.layers)
        capture.capture.insert(layer.output);
    const IntegerRunResult a = fast.run({{inputName, batch}}, capture);
    const IntegerRunResult b = reference.run({{inputName, batch}}, capture);
    for (const QuantLayer& layer : plan.layers) {
        const Tensor ca = int8::presentedCodes(a.codes.at(layer.output)), cb = int8::presentedCodes(b.codes.at(layer.output));
        QCOMPARE(ca.shape(), cb.shape());
        QVERIFY2(std::equal(ca.rawData(), ca.rawData() + ca.size(), cb.rawData()), layer.name.c_str());
    }
}

}  // namespace

// The simulation computes the Conv and Gemm layers that run in integers as the engine does: fed
// the engine's own input codes (on real images), it gives the engine's output codes on every
// element. The same layers in float32 on the same fake-quantized values, as the simulation
// computed them before, give other codes on some elements: the check can fail.
void TestIntegerEngine::integerLayersAreSimulatedExactly()
{
    QE_REQUIRE_PATH(kFashionTest);
    QE_REQUIRE_PATH(kFashionTrain);
    const auto graph = std::make_shared<const Graph>(loadOnnx(kDemoModel));
    const Preprocess preprocess = *Preprocess::loadSidecar(kDemoModel);
    const std::shared_ptr<const Dataset> test = openDataset(kFashionTest);
    const std::shared_ptr<const Dataset> train = openDataset(kFashionTrain);
    QuantEvaluator evaluator(graph, test, preprocess, 16);
    evaluator.calibrate(*train, 256);
    const QuantPlan plan = evaluator.plan(QuantConfig{});
    const IntegerEngine engine(plan);
    RunOptions capture;
    for (const QuantLayer& layer : plan.layers) {
        capture.capture.insert(layer.output);
        capture.capture.insert(layer.inputs.begin(), layer.inputs.end());
    }
    std::size_t elements = 0, floatDifferences = 0;
    std::set<std::string> layers;
    for (std::size_t first = 0; first < 4000; first += 500) {
        const Tensor batch = makeBatch(*test, first, 500, preprocess, 1, 28, 28);
        const IntegerRunResult integer = engine.run({{graph->inputs[0].name, batch}}, capture);
        for (std::size_t l = 0; l < plan.layers.size(); ++l) {
            const QuantLayer& layer = plan.layers[l];
            if (!plan.integerLayers.count(layer.nodeIndex))
                continue;
            layers.insert(layer.name);
            const auto nodeIndex = static_cast<std::size_t>(layer.nodeIndex);
            const Node& node = plan.graph.nodes[nodeIndex];
            std::vector<const Tensor*> inputs;
            for (const std::string& name : node.inputs)
                inputs.push_back(name.empty()                        ? nullptr
                                 : plan.graph.isInitializer(name) ? &plan.graph.initializers.at(name)
                                                                  : &integer.outputs.at(name));
            // The node, its fused Relu in float and the output's fake quantization.
            auto complete = [&](Tensor y) {
                if (layer.outputNodeIndex != layer.nodeIndex)
                    y = runNode(plan.graph.nodes[static_cast<std::size_t>(layer.outputNodeIndex)], plan.graph.opsetVersion, {&y}).at(0);
                return fakeQuantize(y, *plan.plans[l].activationParams);
            };
            const Tensor simulated = complete(runSimulatedNode(plan, nodeIndex, inputs).at(0));
            const Tensor float32 = complete(runNode(node, plan.graph.opsetVersion, inputs).at(0));
            const Tensor& engineValues = integer.outputs.at(layer.output);
            QCOMPARE(simulated.shape(), engineValues.shape());
            std::size_t differences = 0;
            for (std::int64_t i = 0; i < simulated.size(); ++i) {
                differences += simulated.data<float>()[i] != engineValues.data<float>()[i];
                floatDifferences += float32.data<float>()[i] != engineValues.data<float>()[i];
            }
            QVERIFY2(differences == 0,
                     qPrintable(QString("%1: %2 of %3 codes differ").arg(layer.name.c_str()).arg(differences).arg(simulated.size())));
            elements += static_cast<std::size_t>(simulated.size());
        }
    }
    QCOMPARE(layers.size(), std::size_t{5});  // conv1-3, fc1, fc2
    qInfo("float32 accumulation gives %zu of %zu codes differently", floatDifferences, elements);
    QVERIFY(floatDifferences > 0);
}

void TestIntegerEngine::referenceKernelsGiveTheSameCodes_data()
{
    QTest::addColumn<QString>("configJson");
    QTest::newRow("W8A8") << "{}";
    QTest::newRow("affine uint8 weights, int8 activations")
        << R"({"default": {"weights": {"scheme": "affine", "signed": false}, "activations": {"scheme": "symmetric"}}})";
}

// The portable path (a build without oneDNN runs only the reference kernels) gives the codes the
// fast kernels give, bit for bit, on every layer of the demo model.
void TestIntegerEngine::referenceKernelsGiveTheSameCodes()
{
    QFETCH(QString, configJson);
    QE_REQUIRE_PATH(kFashionTest);
    const auto graph = std::make_shared<const Graph>(loadOnnx(kDemoModel));
    const Preprocess preprocess = *Preprocess::loadSidecar(kDemoModel);
    const std::shared_ptr<const Dataset> test = openDataset(kFashionTest);
    nlohmann::json json = nlohmann::json::parse(configJson.toStdString());
    json["format"] = "quantexplorer-config";
    json["version"] = 1;
    QuantEvaluator evaluator(graph, test, preprocess, 64);
    evaluator.calibrate(*test, 64);
    const QuantPlan plan = evaluator.plan(QuantConfig::fromJson(json, "test"));
    compareKernels(plan, graph->inputs[0].name, makeBatch(*test, 0, 64, preprocess, 1, 28, 28));
}

void TestIntegerEngine::referenceKernelsGiveTheSameCodesOnMobileNets_data()
{
    QTest::addColumn<QString>("model");
    QTest::addColumn<bool>("qdq");
    // Our W8A8 (symmetric per-channel weights), and TensorFlow's own uint8 model, whose weights
    // have zero-points: the fused kernels' weight zero-point terms on real data.
    QTest::newRow("mobilenet 0.25 W8A8") << "mobilenet_v1_0.25_128_float.onnx" << false;
    QTest::newRow("mobilenet 0.25 uint8 QDQ") << "mobilenet_v1_0.25_128_qdq_uint8.onnx" << true;
}

// The same on MobileNets, whose depthwise, pointwise and strided convolutions, global average
// pool and classifier take every fast kernel (ours with the fused requantization, and oneDNN's).
void TestIntegerEngine::referenceKernelsGiveTheSameCodesOnMobileNets()
{
    QFETCH(QString, model);
    QFETCH(bool, qdq);
    const fs::path modelPath = test::sharedDir() / "models" / model.toStdString();
    const fs::path dataPath = test::sharedDir() / "data" / "imagenet_val_227_300";
    QE_REQUIRE_PATH(modelPath);
    QE_REQUIRE_PATH(dataPath);
    const Preprocess preprocess = test::makePreprocess(ColorOrder::Rgb, 1, 128, 128, 0.875);
    const std::shared_ptr<const Dataset> dataset = openDataset(dataPath, std::nullopt, "label_1001");
    std::optional<ImportedQuantization> imported;
    if (qdq)
        imported = importQdq(loadOnnx(modelPath));
    const auto graph = std::make_shared<const Graph>(qdq ? imported->floatGraph : loadOnnx(modelPath));
    QuantEvaluator evaluator(graph, dataset, preprocess, 8);
    if (qdq)
        evaluator.setFixedParams(imported->params);
    else
        evaluator.calibrate(*dataset, 32);
    const QuantPlan plan = evaluator.plan(qdq ? imported->config : QuantConfig{});
    compareKernels(plan, graph->inputs[0].name, makeBatch(*dataset, 0, 8, preprocess, 3, 128, 128));
}

void TestIntegerEngine::sharedFloatModelsMatchSimulation_data()
{
    QTest::addColumn<QString>("model");
    QTest::addColumn<QString>("data");
    QTest::addColumn<QString>("labelColumn");
    QTest::addColumn<Preprocess>("preprocess");
    QTest::newRow("mnist-8") << "mnist-8.onnx" << "mnist/t10k-images-idx3-ubyte.gz" << ""
                             << test::makePreprocess(ColorOrder::Gray, 1.0 / 255, 0, 1, 1);
    QTest::newRow("resnet8") << "resnet8_cifar10.onnx" << "cifar10_mlperf_tiny_200/test_200.bin" << ""
                             << test::makePreprocess(ColorOrder::Rgb, 1, 0, 1, 1);
    QTest::newRow("vww") << "vww_96_mobilenetv1_025.onnx" << "vww_coco_96_200" << ""
                         << test::makePreprocess(ColorOrder::Rgb, 1.0 / 255, 0, 1, 1);
    QTest::newRow("mobilenet 0.25") << "mobilenet_v1_0.25_128_float.onnx" << "imagenet_val_227_300" << "label_1001"
                                    << test::makePreprocess(ColorOrder::Rgb, 1, 128, 128, 0.875);
    QTest::newRow("mobilenet 0.5") << "mobilenet_v1_0.5_160_float.onnx" << "imagenet_val_227_300" << "label_1001"
                                   << test::makePreprocess(ColorOrder::Rgb, 1, 128, 128, 0.875);
}

void TestIntegerEngine::sharedFloatModelsMatchSimulation()
{
    QFETCH(QString, model);
    QFETCH(QString, data);
    QFETCH(QString, labelColumn);
    QFETCH(Preprocess, preprocess);
    const fs::path modelPath = test::sharedDir() / "models" / model.toStdString();
    const fs::path dataPath = test::sharedDir() / "data" / data.toStdString();
    QE_REQUIRE_PATH(modelPath);
    QE_REQUIRE_PATH(dataPath);
    const auto graph = std::make_shared<const Graph>(loadOnnx(modelPath));
    const std::shared_ptr<const Dataset> dataset = openDataset(dataPath, std::nullopt, labelColumn.toStdString());
    const std::size_t images = std::min<std::size_t>(dataset->size(), test::unlessSanitized(500, 100));
    QuantEvaluator evaluator(graph, dataset, preprocess, images);
    evaluator.calibrate(*dataset, 64);  // the shared sets have no separate calibration split
    const QuantPlan plan = evaluator.plan(QuantConfig{});
    const IntegerEvaluation r = evaluateInteger(plan, *dataset, preprocess, images);
    qInfo("%s: %s", qPrintable(model), qPrintable(summary(r)));
    QCOMPARE(r.integerLayers, r.layers.size());
    verifyLayersAlone(r, plan);
    // The issue's thresholds. What still differs: an AveragePool's exact ties, which the
    // simulation's float32 mean breaks either way (about 1% of MobileNet 0.25's pooled codes, by
    // one step), and what the layers after it make of that.
    if (test::kSanitizerBuild)
        return;  // on 100 images the bar would allow no tie at all
    QVERIFY2(r.outputWithinOneLsb >= 0.999, qPrintable(summary(r)));
    QVERIFY2(r.agreementWithSimulation >= 0.995, qPrintable(summary(r)));
}

// The simulation on the engine's own kernels (attachIntegerKernels, what the evaluator runs) and
// on the float kernel with integer-valued operands (checked against the engine above) give the
// same values at every layer's output, bit for bit, on real images of every model.
void TestIntegerEngine::simulationOnEngineKernelsGivesTheSameCodes_data()
{
    sharedFloatModelsMatchSimulation_data();
    QTest::newRow("demo model") << QString() << QString() << "" << Preprocess{};
}

void TestIntegerEngine::simulationOnEngineKernelsGivesTheSameCodes()
{
    QFETCH(QString, model);
    QFETCH(QString, data);
    QFETCH(QString, labelColumn);
    QFETCH(Preprocess, preprocess);
    const bool demo = model.isEmpty();
    const fs::path modelPath = demo ? kDemoModel : test::sharedDir() / "models" / model.toStdString();
    const fs::path dataPath = demo ? kFashionTest : test::sharedDir() / "data" / data.toStdString();
    QE_REQUIRE_PATH(modelPath);
    QE_REQUIRE_PATH(dataPath);
    if (demo)
        preprocess = *Preprocess::loadSidecar(kDemoModel);
    const auto graph = std::make_shared<const Graph>(loadOnnx(modelPath));
    const std::shared_ptr<const Dataset> dataset = openDataset(dataPath, std::nullopt, labelColumn.toStdString());
    const std::size_t images = std::min<std::size_t>(dataset->size(), test::unlessSanitized(64, 16));
    const std::vector<QuantLayer> layers = findQuantLayers(*graph);
    CalibrationOptions calibrationOptions;
    calibrationOptions.images = 64;
    const CalibrationData calibration = calibrate(*graph, layers, *dataset, preprocess, calibrationOptions);
    // Per-tensor affine weights too on the demo model: uint8 weight codes with zero-points.
    const QuantConfig config = demo ? QuantConfig::fromJson(nlohmann::json::parse(R"({"format": "quantexplorer-config", "version": 1,
        "default": {"weights": {"scheme": "affine", "granularity": "per_tensor"}}})"), "test")
                                    : QuantConfig{};
    const QuantPlan floatPath = makePlan(*graph, layers, config, calibration);
    QuantPlan enginePath = makePlan(*graph, layers, config, calibration);
    attachIntegerKernels(enginePath);
    const auto attached = std::count_if(enginePath.integerLayers.begin(), enginePath.integerLayers.end(),
                                        [](const auto& entry) { return entry.second.kernels != nullptr; });
    qInfo("%zu of %zu integer layers on the engine's kernels", std::size_t(attached), enginePath.integerLayers.size());
    if (!int8::fastKernelsAvailable() && !int8::fusedKernelsAvailable())
        QSKIP("no fast int8 kernels on this CPU: the simulation keeps the float path");
    QVERIFY(attached > 0);

    const ImageInputGeometry g = imageInputGeometry(*graph);
    // mnist-8 takes one image at a time.
    const std::size_t batchSize = g.fixedBatchOfOne ? 1 : images, batches = g.fixedBatchOfOne ? 8 : 1;
    RunOptions capture;
    for (const QuantLayer& layer : floatPath.layers)
        capture.capture.insert(layer.output);
    const Executor floatExecutor(floatPath.graph), engineExecutor(enginePath.graph);
    for (std::size_t b = 0; b < batches; ++b) {
        const Tensor batch = makeBatch(*dataset, b * batchSize, batchSize, preprocess, g.channels, g.height, g.width);
        const TensorMap x = runSimulated(floatPath, floatExecutor, {{graph->inputs[0].name, batch}}, capture);
        const TensorMap y = runSimulated(enginePath, engineExecutor, {{graph->inputs[0].name, batch}}, capture);
        for (const QuantLayer& layer : floatPath.layers) {
            const Tensor& fx = x.at(layer.output);
            const Tensor& ey = y.at(layer.output);
            QCOMPARE(ey.shape(), fx.shape());
            std::size_t differences = 0;
            for (std::int64_t i = 0; i < fx.size(); ++i)
                differences += fx.data<float>()[i] != ey.data<float>()[i];
            QVERIFY2(differences == 0,
                     qPrintable(QString("%1: %2 of %3 values differ").arg(layer.name.c_str()).arg(differences).arg(fx.size())));
        }
    }

    // A plan for the next edit keeps the kernels of the layers whose codes it does not change.
    QuantPlan next = makePlan(*graph, layers, config, calibration, &enginePath);
    attachIntegerKernels(next, &enginePath);
    QCOMPARE(next.integerLayers.size(), enginePath.integerLayers.size());
    for (const auto& [node, layer] : next.integerLayers)
        QCOMPARE(layer.kernels.get(), enginePath.integerLayers.at(node).kernels.get());
}

void TestIntegerEngine::realInt8ModelsReachTheirAccuracy_data()
{
    QTest::addColumn<QString>("model");
    QTest::addColumn<QString>("data");
    QTest::addColumn<QString>("labelColumn");
    QTest::addColumn<Preprocess>("preprocess");
    QTest::addColumn<double>("manifestTop1");
    QTest::newRow("resnet8 int8") << "resnet8_cifar10_qdq_int8.onnx" << "cifar10_mlperf_tiny_200/test_200.bin" << ""
                                  << test::makePreprocess(ColorOrder::Rgb, 1, 0, 1, 1) << 85.0;
    QTest::newRow("vww int8") << "vww_96_mobilenetv1_025_qdq_int8.onnx" << "vww_coco_96_200" << ""
                              << test::makePreprocess(ColorOrder::Rgb, 1.0 / 255, 0, 1, 1) << 84.5;
    QTest::newRow("mobilenet 0.25 uint8") << "mobilenet_v1_0.25_128_qdq_uint8.onnx" << "imagenet_val_227_300" << "label_1001"
                                          << test::makePreprocess(ColorOrder::Rgb, 1, 128, 128, 0.875) << 53.0;
    QTest::newRow("mobilenet 0.5 uint8") << "mobilenet_v1_0.5_160_qdq_uint8.onnx" << "imagenet_val_227_300" << "label_1001"
                                         << test::makePreprocess(ColorOrder::Rgb, 1, 128, 128, 0.875) << 70.7;
}

void TestIntegerEngine::realInt8ModelsReachTheirAccuracy()
{
    QFETCH(QString, model);
    QFETCH(QString, data);
    QFETCH(QString, labelColumn);
    QFETCH(Preprocess, preprocess);
    QFETCH(double, manifestTop1);
    const fs::path modelPath = test::sharedDir() / "models" / model.toStdString();
    const fs::path dataPath = test::sharedDir() / "data" / data.toStdString();
    QE_REQUIRE_PATH(modelPath);
    QE_REQUIRE_PATH(dataPath);
    const auto imported = importQdq(loadOnnx(modelPath));
    QVERIFY(imported.has_value());
    const std::shared_ptr<const Dataset> dataset = openDataset(dataPath, std::nullopt, labelColumn.toStdString());
    // The MANIFEST's top-1 is over every image; a sanitizer build runs the first 50 without it.
    const std::size_t images = test::unlessSanitized<std::size_t>(dataset->size(), 50);
    QuantEvaluator evaluator(std::make_shared<const Graph>(imported->floatGraph), dataset, preprocess, images);
    evaluator.setFixedParams(imported->params);
    const QuantPlan plan = evaluator.plan(imported->config);
    const IntegerEvaluation r = evaluateInteger(plan, *dataset, preprocess, images);
    qInfo("%s (MANIFEST %.1f%%): %s", qPrintable(model), manifestTop1, qPrintable(summary(r)));
    // The models' own parameters are uniform 8-bit: everything runs in integers.
    QCOMPARE(r.integerLayers, r.layers.size());
    verifyLayersAlone(r, plan);
    if (!test::kSanitizerBuild)
        QVERIFY2(std::abs(100 * r.top1 - manifestTop1) <= 1.0, qPrintable(summary(r)));
}

QTEST_APPLESS_MAIN(TestIntegerEngine)
#include "tst_integer_engine.moc"
