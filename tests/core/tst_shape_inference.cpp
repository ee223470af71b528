// Static shape inference (model/shape_inference.h) against outside truth:
// - on every real model (ours, /work/shared's float and int8 QDQ models, torchvision's exports),
//   as read and as prepared, each tensor's type and shape equal those of a probe run of the graph
//   with the fp32 kernels (engine/graph_preparation.h's probeShapes);
// - on ONNX's backend node tests (Debian's libonnx-testdata), each output's inferred shape equals
//   the shape of the expected output stored with the test;
// - inconsistent models are refused at load time with an error naming the node and what was
//   expected.

#include "common/error.h"
#include "engine/graph_preparation.h"
#include "model/onnx_import.h"
#include "model/shape_inference.h"
#include "test_support.h"

#include <QtTest>

#include <nlohmann/json.hpp>

using namespace qe;
namespace fs = std::filesystem;

namespace {

const fs::path kTorchvisionDir = test::referenceDir("torchvision_models");

// Every tensor the probe describes (the inputs and every node's outputs) must be described the
// same way by static inference. Returns the first difference, empty when there is none.
std::string compareWithProbe(Graph graph, int& compared)
{
    graph.values.clear();
    Graph probed = graph;
    inferShapes(graph);
    probeShapes(probed);
    std::vector<std::string> names;
    for (const ValueInfo& input : probed.inputs)
        names.push_back(input.name);
    for (const Node& node : probed.nodes)
        for (const std::string& output : node.outputs)
            if (!output.empty())
                names.push_back(output);
    for (const std::string& name : names) {
        const auto expected = probed.values.find(name);
        const auto actual = graph.values.find(name);
        if (expected == probed.values.end())
            return "the probe did not describe '" + name + "'";
        if (actual == graph.values.end())
            return "'" + name + "' has no inferred shape; the probe gives " + dataTypeName(expected->second.dtype) +
                   symbolicShapeToString(expected->second.shape);
        const ValueInfo& e = expected->second;
        const ValueInfo& a = actual->second;
        bool same = a.dtype == e.dtype && a.shapeKnown == e.shapeKnown && a.shape.size() == e.shape.size();
        for (std::size_t d = 0; same && d < a.shape.size(); ++d)
            same = a.shape[d].value == e.shape[d].value && a.shape[d].symbol == e.shape[d].symbol;
        if (!same)
            return "'" + name + "': inferred " + dataTypeName(a.dtype) + symbolicShapeToString(a.shape) + (a.shapeKnown ? "" : " (unknown)") +
                   ", the probe gives " + dataTypeName(e.dtype) + symbolicShapeToString(e.shape) + (e.shapeKnown ? "" : " (unknown)");
        ++compared;
    }
    for (std::size_t o = 0; o < graph.outputs.size(); ++o)
        if (symbolicShapeToString(graph.outputs[o].shape) != symbolicShapeToString(probed.outputs[o].shape))
            return "graph output '" + graph.outputs[o].name + "' differs";
    return {};
}

struct NodeTestSummary {
    int compared = 0, skipped = 0;
} nodeTests;

// A Graph written by hand: x (float32, `inputShape`) into one node whose other inputs are the given
// initializers, with output "y".
Graph oneNodeGraph(const std::string& opType, const Shape& inputShape, const std::vector<std::pair<std::string, Tensor>>& constants,
                   std::map<std::string, AttributeValue> attributes = {})
{
    Graph graph;
    graph.sourcePath = "handmade.onnx";
    graph.opsetVersion = 13;
    ValueInfo x;
    x.name = "x";
    x.shapeKnown = true;
    for (std::int64_t d : inputShape)
        x.shape.push_back(Dim{d, {}});
    graph.inputs.push_back(x);
    Node node;
    node.name = "the_" + opType;
    node.opType = opType;
    node.inputs = {"x"};
    for (const auto& [name, tensor] : constants) {
        graph.initializers[name] = tensor;
        node.inputs.push_back(name);
    }
    node.outputs = {"y"};
    node.attributes = std::move(attributes);
    graph.nodes.push_back(node);
    ValueInfo y;
    y.name = "y";
    graph.outputs.push_back(y);
    return graph;
}

}  // namespace

class TestShapeInference : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void matchesTheProbeRun_data();
    void matchesTheProbeRun();
    void matchesOnnxNodeTests_data();
    void matchesOnnxNodeTests();
    void exporterShapeChainsResolve();
    void inconsistentModelsAreRefused_data();
    void inconsistentModelsAreRefused();
    void cleanupTestCase();

private:
    QString torchvisionSkip_;
};

void TestShapeInference::initTestCase()
{
    torchvisionSkip_ = test::ensureTorchvisionModels(kTorchvisionDir);
}

void TestShapeInference::matchesTheProbeRun_data()
{
    QTest::addColumn<QString>("model");  // a path, or torchvision:<name>
    QTest::newRow("fashion_cnn") << QString::fromStdString((test::sourceDir() / "resources/models/fashion_cnn.onnx").string());
    for (const char* name : {"mnist-8", "resnet8_cifar10", "resnet8_cifar10_qdq_int8", "vww_96_mobilenetv1_025",
                             "vww_96_mobilenetv1_025_qdq_int8", "mobilenet_v1_0.25_128_float", "mobilenet_v1_0.25_128_qdq_uint8",
                             "mobilenet_v1_0.5_160_float", "mobilenet_v1_0.5_160_qdq_uint8"})
        QTest::newRow(name) << QString::fromStdString((test::sharedDir() / "models" / (std::string(name) + ".onnx")).string());
    for (const std::string& name : test::kTorchvisionModels)
        QTest::newRow(name.c_str()) << QString::fromStdString("torchvision:" + name);
}

void TestShapeInference::matchesTheProbeRun()
{
    QFETCH(QString, model);
    fs::path path;
    if (model.startsWith("torchvision:")) {
        if (!torchvisionSkip_.isEmpty())
            QSKIP(qPrintable(torchvisionSkip_));
        if (const QString skip = test::torchvisionSanitizerSkip(model.mid(12)); !skip.isEmpty())
            QSKIP(qPrintable(skip));
        const nlohmann::json manifest = nlohmann::json::parse(std::ifstream(kTorchvisionDir / "manifest.json"));
        for (const auto& m : manifest["models"])
            if (m["name"] == model.mid(12).toStdString())
                path = kTorchvisionDir / m["file"].get<std::string>();
        QVERIFY2(!path.empty(), "model missing from the manifest");
    } else {
        path = model.toStdString();
    }
    QE_REQUIRE_PATH(path);

    // Exactly as exported (Shape chains, Constant nodes, unfolded BatchNormalization) and as prepared.
    const Graph asRead = readOnnx(path);
    const Graph prepared = loadOnnx(path);
    int compared = 0;
    const std::string readDiff = compareWithProbe(asRead, compared);
    QVERIFY2(readDiff.empty(), qPrintable(QString::fromStdString("as read: " + readDiff)));
    const std::string preparedDiff = compareWithProbe(prepared, compared);
    QVERIFY2(preparedDiff.empty(), qPrintable(QString::fromStdString("as prepared: " + preparedDiff)));
    QVERIFY(compared >= static_cast<int>(asRead.nodes.size() + prepared.nodes.size()));
}

void TestShapeInference::matchesOnnxNodeTests_data()
{
    test::addOnnxNodeTestRows(/*needsTestData=*/true);
}

void TestShapeInference::matchesOnnxNodeTests()
{
    if (!fs::exists(fs::path(QE_ONNX_TESTDATA_DIR)))
        QSKIP("needs Debian's libonnx-testdata (" QE_ONNX_TESTDATA_DIR ")");
    QFETCH(QString, dir);
    const fs::path path = dir.toStdString();
    const fs::path data = path / "test_data_set_0";
    Graph graph;
    try {
        graph = readOnnx(path / "model.onnx");
    } catch (const Error&) {
        // Other operators and element types: tst_onnx_conformance checks those errors.
        ++nodeTests.skipped;
        QSKIP("not loadable by the engine (see tst_onnx_conformance)");
    }
    // Integer inputs are the operators' shapes, axes and indices (boolean ones their flags): as an
    // exporter would, make them constants, so the rules see their values.
    std::vector<ValueInfo> dataInputs;
    for (std::size_t i = 0; i < graph.inputs.size(); ++i) {
        const fs::path file = data / ("input_" + std::to_string(i) + ".pb");
        const ValueInfo& input = graph.inputs[i];
        const bool isInteger = input.dtype == DataType::Int64 || input.dtype == DataType::Int32 || input.dtype == DataType::Bool;
        if (isInteger && fs::exists(file))
            graph.initializers[input.name] = loadTensorProtoFile(file);
        else
            dataInputs.push_back(input);
    }
    graph.inputs = dataInputs;
    try {
        inferShapes(graph);
    } catch (const Error& e) {
        // Features the engine refuses (training mode, 3-D pooling) are refused at load time too.
        const std::string message = e.what();
        const bool deliberate = message.find("training") != std::string::npos || message.find("1-D and 2-D") != std::string::npos;
        QVERIFY2(deliberate, e.what());
        ++nodeTests.skipped;
        QSKIP(e.what());
    }
    for (std::size_t o = 0; o < graph.outputs.size(); ++o) {
        const fs::path file = data / ("output_" + std::to_string(o) + ".pb");
        if (!fs::exists(file))
            continue;
        const Tensor expected = loadTensorProtoFile(file);
        const ValueInfo& output = graph.outputs[o];
        const auto inferred = graph.values.find(output.name);
        QVERIFY2(inferred != graph.values.end() && inferred->second.shapeKnown,
                 qPrintable(QString::fromStdString("no shape inferred for output '" + output.name + "'")));
        Shape shape;
        for (const Dim& d : inferred->second.shape)
            shape.push_back(d.value);
        QCOMPARE(QString::fromStdString(shapeToString(shape)), QString::fromStdString(shapeToString(expected.shape())));
        QCOMPARE(QString::fromStdString(dataTypeName(inferred->second.dtype)), QString::fromStdString(dataTypeName(expected.dtype())));
    }
    ++nodeTests.compared;
}

void TestShapeInference::exporterShapeChainsResolve()
{
    // x[N,8,4,4] -> Shape -> Gather(0) -> Unsqueeze -> Concat with [-1] -> Reshape: the target is
    // computed from the batch, as PyTorch writes x.view(x.size(0), -1).
    Graph graph = oneNodeGraph("Shape", {1, 8, 4, 4}, {});
    graph.inputs[0].shape[0] = Dim{-1, "batch"};
    graph.nodes[0].outputs = {"shape"};
    graph.initializers["zero"] = Tensor::scalar<std::int64_t>(0);
    graph.initializers["axes"] = Tensor::fromValues<std::int64_t>({1}, std::vector<std::int64_t>{0});
    graph.initializers["minus_one"] = Tensor::fromValues<std::int64_t>({1}, std::vector<std::int64_t>{-1});
    auto add = [&](const std::string& op, std::vector<std::string> inputs, const std::string& output) {
        Node node;
        node.name = output + "_node";
        node.opType = op;
        node.inputs = std::move(inputs);
        node.outputs = {output};
        graph.nodes.push_back(node);
    };
    add("Gather", {"shape", "zero"}, "batch_size");
    add("Unsqueeze", {"batch_size", "axes"}, "batch_1d");
    add("Concat", {"batch_1d", "minus_one"}, "target");
    graph.nodes.back().attributes["axis"] = std::int64_t{0};
    add("Reshape", {"x", "target"}, "y");
    inferShapes(graph);
    QVERIFY(graph.values.at("y").shapeKnown);
    QCOMPARE(QString::fromStdString(symbolicShapeToString(graph.values.at("y").shape)), QString("[batch,128]"));
    int compared = 0;
    const std::string diff = compareWithProbe(graph, compared);
    QVERIFY2(diff.empty(), diff.c_str());
}

void TestShapeInference::inconsistentModelsAreRefused_data()
{
    QTest::addColumn<QString>("which");
    QTest::addColumn<QString>("fragment");
    QTest::newRow("Conv weights for 5 channels on 3") << "conv"
                                                      << "handmade.onnx: node 'the_Conv' (Conv): input float32[1,3,8,8] has 3 channels, "
                                                         "but weights float32[4,5,3,3] with group 1 expect 5";
    QTest::newRow("MatMul inner dimensions") << "matmul"
                                             << "handmade.onnx: node 'the_MatMul' (MatMul): inner dimensions differ: "
                                                "float32[2,6] x float32[5,3] (6 and 5)";
    QTest::newRow("Gemm inner dimensions") << "gemm" << "node 'the_Gemm' (Gemm): inner dimensions differ";
    QTest::newRow("Reshape to another element count") << "reshape"
                                                      << "handmade.onnx: node 'the_Reshape' (Reshape): cannot reshape float32[2,6] to "
                                                         "[5,-1]: 12 elements are not a multiple of 5";
    QTest::newRow("Reshape with a fixed count") << "reshape_fixed"
                                                << "node 'the_Reshape' (Reshape): cannot reshape float32[2,6] to [4,4]: expected a "
                                                   "shape of 12 elements, not 16";
    QTest::newRow("Add that cannot broadcast") << "add" << "node 'the_Add' (Add): shapes [2,6] and [5] cannot be broadcast together";
    QTest::newRow("Concat of different heights") << "concat" << "node 'the_Concat' (Concat): input 1 float32[3,5] differs from input 0 "
                                                                "float32[2,6] outside the concatenation axis 1";
    QTest::newRow("absurd size") << "absurd" << "node 'the_MatMul' (MatMul): shape [1048576,1048576] is absurdly large";
}

void TestShapeInference::inconsistentModelsAreRefused()
{
    QFETCH(QString, which);
    QFETCH(QString, fragment);
    auto floats = [](Shape shape) { return Tensor(DataType::Float32, std::move(shape)); };
    auto ints = [](std::vector<std::int64_t> v) {
        return Tensor::fromValues<std::int64_t>({static_cast<std::int64_t>(v.size())}, v);
    };
    Graph graph;
    if (which == "conv")
        graph = oneNodeGraph("Conv", {1, 3, 8, 8}, {{"w", floats({4, 5, 3, 3})}});
    else if (which == "matmul")
        graph = oneNodeGraph("MatMul", {2, 6}, {{"w", floats({5, 3})}});
    else if (which == "gemm")
        graph = oneNodeGraph("Gemm", {2, 6}, {{"w", floats({3, 5})}}, {{"transB", std::int64_t{1}}});
    else if (which == "reshape")
        graph = oneNodeGraph("Reshape", {2, 6}, {{"shape", ints({5, -1})}});
    else if (which == "reshape_fixed")
        graph = oneNodeGraph("Reshape", {2, 6}, {{"shape", ints({4, 4})}});
    else if (which == "add")
        graph = oneNodeGraph("Add", {2, 6}, {{"b", floats({5})}});
    else if (which == "concat")
        graph = oneNodeGraph("Concat", {2, 6}, {{"b", floats({3, 5})}}, {{"axis", std::int64_t{1}}});
    else if (which == "absurd")  // 2^20 x 2^20 floats: a 4 TiB product of two 4 MiB inputs
        graph = oneNodeGraph("MatMul", {1 << 20, 1}, {{"w", floats({1, 1 << 20})}});
    ImportOptions options;
    options.foldConstants = false;  // the inconsistency must be found by shape inference itself
    try {
        prepareGraph(graph, options);
        QFAIL("the inconsistent model was accepted");
    } catch (const Error& e) {
        QVERIFY2(QString(e.what()).contains(fragment), e.what());
    }
}

void TestShapeInference::cleanupTestCase()
{
    qInfo("ONNX backend node tests: output shapes compared for %d, %d skipped (not loadable, or refused on purpose)",
          nodeTests.compared, nodeTests.skipped);
}

QTEST_APPLESS_MAIN(TestShapeInference)
#include "tst_shape_inference.moc"
