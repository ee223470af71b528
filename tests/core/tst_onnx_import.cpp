// The importer on models built here with ONNX's own protobuf schema: every kind of bad input
// gives a qe::Error naming the file and the node, folding never changes what a model computes,
// dynamic batch axes work, and external-data initializers load.

#include "common/error.h"
#include "engine/executor.h"
#include "engine/graph_preparation.h"
#include "model/graph_layout.h"
#include "model/operator_traits.h"
#include "model/shape_inference.h"
#include "quant/layers.h"
#include "test_support.h"

#include <onnx/onnx_pb.h>

#include <QTemporaryDir>
#include <QtTest>

#include <fstream>
#include <random>

using namespace qe;
namespace fs = std::filesystem;

namespace {

void addFloatInitializer(onnx::GraphProto& g, const std::string& name, const std::vector<std::int64_t>& dims,
                         const std::vector<float>& values)
{
    auto* t = g.add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (auto d : dims)
        t->add_dims(d);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
}

void setTensorType(onnx::ValueInfoProto* v, const std::string& name, const std::vector<std::string>& dims)
{
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    for (const auto& d : dims) {
        auto* dim = tt->mutable_shape()->add_dim();
        if (std::isdigit(static_cast<unsigned char>(d[0])))
            dim->set_dim_value(std::stoll(d));
        else
            dim->set_dim_param(d);
    }
}

onnx::NodeProto* addNode(onnx::GraphProto& g, const std::string& op, const std::string& name,
                         const std::vector<std::string>& inputs, const std::vector<std::string>& outputs)
{
    auto* n = g.add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const auto& i : inputs)
        n->add_input(i);
    for (const auto& o : outputs)
        n->add_output(o);
    return n;
}

std::vector<float> randomValues(std::size_t n, unsigned seed, float lo = -1.f, float hi = 1.f)
{
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (float& x : v)
        x = dist(rng);
    return v;
}

// x[N,3,8,8] -> Conv(4, 3x3, pad 1) -> BatchNormalization -> Relu -> Identity -> Shape/Gather/
// Unsqueeze/Concat -> Reshape [N, -1] -> Gemm(5): the leftovers exporters write.
onnx::ModelProto exporterStyleModel()
{
    onnx::ModelProto model;
    model.set_ir_version(7);
    model.add_opset_import()->set_version(13);
    auto& g = *model.mutable_graph();
    g.set_name("exporter_style");
    setTensorType(g.add_input(), "x", {"N", "3", "8", "8"});
    setTensorType(g.add_output(), "y", {"N", "5"});
    addFloatInitializer(g, "conv.w", {4, 3, 3, 3}, randomValues(108, 1));
    addFloatInitializer(g, "conv.b", {4}, randomValues(4, 2));
    addFloatInitializer(g, "bn.scale", {4}, randomValues(4, 3, 0.5f, 1.5f));
    addFloatInitializer(g, "bn.bias", {4}, randomValues(4, 4));
    addFloatInitializer(g, "bn.mean", {4}, randomValues(4, 5));
    addFloatInitializer(g, "bn.var", {4}, randomValues(4, 6, 0.5f, 1.5f));
    addFloatInitializer(g, "fc.w", {5, 256}, randomValues(5 * 256, 7));
    addFloatInitializer(g, "fc.b", {5}, randomValues(5, 8));
    auto* conv = addNode(g, "Conv", "conv", {"x", "conv.w", "conv.b"}, {"c"});
    auto* pads = conv->add_attribute();
    pads->set_name("pads");
    pads->set_type(onnx::AttributeProto::INTS);
    for (int i = 0; i < 4; ++i)
        pads->add_ints(1);
    addNode(g, "BatchNormalization", "bn", {"c", "bn.scale", "bn.bias", "bn.mean", "bn.var"}, {"b"});
    addNode(g, "Relu", "relu", {"b"}, {"r"});
    addNode(g, "Identity", "identity", {"r"}, {"r2"});
    addNode(g, "Shape", "shape", {"r2"}, {"s"});
    auto* zero = addNode(g, "Constant", "zero", {}, {"zero"});
    auto* value = zero->add_attribute();
    value->set_name("value");
    value->set_type(onnx::AttributeProto::TENSOR);
    value->mutable_t()->set_data_type(onnx::TensorProto::INT64);
    value->mutable_t()->add_int64_data(0);
    addNode(g, "Gather", "gather", {"s", "zero"}, {"n"});
    auto* axes = addNode(g, "Constant", "axes", {}, {"axes"});
    auto* axesValue = axes->add_attribute();
    axesValue->set_name("value");
    axesValue->set_type(onnx::AttributeProto::TENSOR);
    axesValue->mutable_t()->set_data_type(onnx::TensorProto::INT64);
    axesValue->mutable_t()->add_dims(1);
    axesValue->mutable_t()->add_int64_data(0);
    addNode(g, "Unsqueeze", "unsqueeze", {"n", "axes"}, {"n1"});
    auto* minusOne = addNode(g, "Constant", "minus_one", {}, {"m1"});
    auto* m1 = minusOne->add_attribute();
    m1->set_name("value_ints");
    m1->set_type(onnx::AttributeProto::INTS);
    m1->add_ints(-1);
    auto* concat = addNode(g, "Concat", "concat", {"n1", "m1"}, {"target"});
    auto* axis = concat->add_attribute();
    axis->set_name("axis");
    axis->set_type(onnx::AttributeProto::INT);
    axis->set_i(0);
    addNode(g, "Reshape", "reshape", {"r2", "target"}, {"flat"});
    auto* gemm = addNode(g, "Gemm", "fc", {"flat", "fc.w", "fc.b"}, {"y"});
    auto* transB = gemm->add_attribute();
    transB->set_name("transB");
    transB->set_type(onnx::AttributeProto::INT);
    transB->set_i(1);
    return model;
}

std::string serialize(const onnx::ModelProto& model)
{
    std::string bytes;
    model.SerializeToString(&bytes);
    return bytes;
}

Graph load(const onnx::ModelProto& model, const ImportOptions& options = {})
{
    return loadOnnxFromMemory(serialize(model), "test.onnx", ".", options);
}

// Runs `f` and returns the qe::Error message it throws (failing the test when it does not).
template <class F> std::string errorOf(F&& f)
{
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    } catch (const std::exception& e) {
        return std::string("NOT qe::Error: ") + e.what();
    }
    return "no error";
}

Tensor input(std::int64_t batch)
{
    return Tensor::fromValues<float>({batch, 3, 8, 8}, randomValues(static_cast<std::size_t>(batch) * 192, 99));
}

}  // namespace

class TestOnnxImport : public QObject {
    Q_OBJECT
private slots:
    void foldingKeepsResults();
    void dynamicBatch();
    void shapesAreInferred();
    void badInput_data();
    void badInput();
    void truncatedFiles();
    void externalData();
    void shapeArithmeticIsNotALayer();
    void squeezeAfterPoolingKeepsTheBatch();
    void namesAreMadeUnique();
    void scalarConcatIsAnError();
    void operatorTable();
    void graphLayoutFlowsDown();
};

void TestOnnxImport::foldingKeepsResults()
{
    const onnx::ModelProto model = exporterStyleModel();
    ImportOptions raw;
    raw.foldConstants = false;
    raw.foldBatchNorm = false;
    const Graph unfolded = load(model, raw);
    const Graph folded = load(model);

    auto countOps = [](const Graph& g, const std::string& op) {
        return std::count_if(g.nodes.begin(), g.nodes.end(), [&](const Node& n) { return n.opType == op; });
    };
    QCOMPARE(countOps(unfolded, "BatchNormalization"), 1);
    QCOMPARE(countOps(folded, "BatchNormalization"), 0);
    QCOMPARE(countOps(folded, "Identity"), 0);
    QCOMPARE(countOps(folded, "Constant"), 0);
    // The Gather picks the batch axis, which is dynamic, so that part of the chain must stay.
    QCOMPARE(countOps(folded, "Shape"), 1);

    const Tensor x = input(3);
    const Tensor expected = runSingle(Executor(unfolded), x);
    const Tensor actual = runSingle(Executor(folded), x);
    const std::string diff = test::compareClose(actual, expected, 1e-5, 1e-5);
    QVERIFY2(diff.empty(), diff.c_str());
}

void TestOnnxImport::dynamicBatch()
{
    const Graph graph = load(exporterStyleModel());
    const Executor executor(graph);
    const Tensor batch = input(4);
    const Tensor all = runSingle(executor, batch);
    QCOMPARE(all.shape(), (Shape{4, 5}));
    // Image 0 alone gives the same row as in the batch.
    const Tensor first = Tensor::fromValues<float>({1, 3, 8, 8}, std::vector<float>(batch.data<float>(), batch.data<float>() + 192));
    const Tensor single = runSingle(executor, first);
    const std::string diff = test::compareClose(single, Tensor::fromValues<float>({1, 5}, std::vector<float>(all.data<float>(), all.data<float>() + 5)), 1e-6, 1e-6);
    QVERIFY2(diff.empty(), diff.c_str());
}

void TestOnnxImport::shapesAreInferred()
{
    const Graph graph = load(exporterStyleModel());
    const ValueInfo& relu = graph.values.at("r");
    QCOMPARE(symbolicShapeToString(relu.shape), std::string("[N,4,8,8]"));
    QCOMPARE(symbolicShapeToString(graph.outputs[0].shape), std::string("[N,5]"));
}

void TestOnnxImport::badInput_data()
{
    QTest::addColumn<int>("kind");
    QTest::addColumn<QString>("expectedFragment");
    QTest::newRow("unsupported operator") << 0 << "node 'relu': operator 'FancyRelu' is not supported";
    QTest::newRow("missing initializer") << 1 << "node 'conv' (Conv) reads 'conv.w'";
    QTest::newRow("cycle") << 2 << "cycle through node(s)";
    QTest::newRow("absurd initializer shape") << 3 << "initializer 'conv.w'";
    QTest::newRow("wrong raw data size") << 4 << "raw_data has";
    QTest::newRow("absurd reshape") << 5 << "node 'reshape' (Reshape)";
    QTest::newRow("no graph") << 6 << "no graph nodes";
    QTest::newRow("newer opset") << 7 << "opset 30";
}

void TestOnnxImport::badInput()
{
    QFETCH(int, kind);
    QFETCH(QString, expectedFragment);
    onnx::ModelProto model = exporterStyleModel();
    auto& g = *model.mutable_graph();
    switch (kind) {
    case 0: g.mutable_node(2)->set_op_type("FancyRelu"); break;
    case 1: g.mutable_initializer()->DeleteSubrange(0, 1); break;
    case 2: g.mutable_node(0)->set_input(0, "r"); break;  // conv reads relu's output, which reads conv's
    case 3: g.mutable_initializer(0)->set_dims(0, std::int64_t{1} << 40); break;
    case 4: g.mutable_initializer(1)->mutable_raw_data()->resize(3); break;
    case 5: {
        // Replace the computed target with a constant whose element count cannot match.
        addFloatInitializer(g, "unused", {1}, {0.f});
        auto* t = g.add_initializer();
        t->set_name("huge_target");
        t->set_data_type(onnx::TensorProto::INT64);
        t->add_dims(2);
        t->add_int64_data(1000000);
        t->add_int64_data(1000000);
        for (auto& node : *g.mutable_node())
            if (node.name() == "reshape")
                node.set_input(1, "huge_target");
        break;
    }
    case 6: g.clear_node(); break;
    case 7: model.mutable_opset_import(0)->set_version(30); break;
    }
    const std::string message = errorOf([&] { load(model); });
    QVERIFY2(message.find("test.onnx") != std::string::npos, message.c_str());
    QVERIFY2(message.find(expectedFragment.toStdString()) != std::string::npos, message.c_str());
}

void TestOnnxImport::truncatedFiles()
{
    const std::string bytes = serialize(exporterStyleModel());
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    // Every cut of the file must be either a clean error or (rarely, at field boundaries) a model
    // that loads: never a crash. Step through many cut points.
    int errors = 0;
    for (std::size_t cut = 0; cut < bytes.size(); cut += 37) {
        const fs::path path = fs::path(dir.path().toStdString()) / "cut.onnx";
        std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(cut));
        const std::string message = errorOf([&] { loadOnnx(path); });
        QVERIFY2(message.rfind("NOT qe::Error", 0) != 0, message.c_str());
        if (message != "no error") {
            ++errors;
            QVERIFY2(message.find("cut.onnx") != std::string::npos, message.c_str());
        }
    }
    QVERIFY(errors > 0);
    const std::string missing = errorOf([&] { loadOnnx("/nonexistent/model.onnx"); });
    QVERIFY2(missing.find("/nonexistent/model.onnx: cannot open") != std::string::npos, missing.c_str());
}

void TestOnnxImport::externalData()
{
    onnx::ModelProto model = exporterStyleModel();
    auto& g = *model.mutable_graph();
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const fs::path folder = dir.path().toStdString();
    // Move fc.w's bytes into an external file, after 16 bytes of other data.
    onnx::TensorProto* fc = nullptr;
    for (auto& init : *g.mutable_initializer())
        if (init.name() == "fc.w")
            fc = &init;
    QVERIFY(fc);
    const std::string raw = fc->raw_data();
    std::ofstream(folder / "weights.bin", std::ios::binary) << std::string(16, 'x') << raw;
    fc->clear_raw_data();
    fc->set_data_location(onnx::TensorProto::EXTERNAL);
    auto add = [&](const std::string& k, const std::string& v) {
        auto* e = fc->add_external_data();
        e->set_key(k);
        e->set_value(v);
    };
    add("location", "weights.bin");
    add("offset", "16");
    add("length", std::to_string(raw.size()));
    std::ofstream(folder / "model.onnx", std::ios::binary) << serialize(model);

    const Graph external = loadOnnx(folder / "model.onnx");
    const Graph embedded = load(exporterStyleModel());
    const Tensor x = input(2);
    const std::string diff = test::compareClose(runSingle(Executor(external), x), runSingle(Executor(embedded), x), 0, 0);
    QVERIFY2(diff.empty(), diff.c_str());

    fs::resize_file(folder / "weights.bin", 100);
    const std::string message = errorOf([&] { loadOnnx(folder / "model.onnx"); });
    QVERIFY2(message.find("weights.bin") != std::string::npos && message.find("too short") != std::string::npos,
             message.c_str());
}

void TestOnnxImport::shapeArithmeticIsNotALayer()
{
    // The exporter-style model keeps Shape -> Gather -> Unsqueeze -> Concat (int64) because it
    // reads the dynamic batch; that Concat must not become a quantizable layer.
    const Graph graph = load(exporterStyleModel());
    std::vector<std::string> names;
    for (const QuantLayer& layer : findQuantLayers(graph))
        names.push_back(layer.name);
    QCOMPARE(names, (std::vector<std::string>{"x", "conv", "fc"}));
}

void TestOnnxImport::squeezeAfterPoolingKeepsTheBatch()
{
    // x[N,3,8,8] -> GlobalAveragePool -> Squeeze (no axes) -> Gemm: valid for any N > 1, so shape
    // inference must not probe with a batch of one.
    onnx::ModelProto model;
    model.set_ir_version(7);
    model.add_opset_import()->set_version(11);
    auto& g = *model.mutable_graph();
    setTensorType(g.add_input(), "x", {"N", "3", "8", "8"});
    setTensorType(g.add_output(), "y", {"N", "2"});
    addFloatInitializer(g, "w", {3, 2}, randomValues(6, 3));
    addNode(g, "GlobalAveragePool", "gap", {"x"}, {"p"});
    addNode(g, "Squeeze", "squeeze", {"p"}, {"s"});
    addNode(g, "Gemm", "fc", {"s", "w"}, {"y"});
    const Graph graph = load(model);
    QCOMPARE(symbolicShapeToString(graph.outputs[0].shape), std::string("[N,2]"));
    QCOMPARE(runSingle(Executor(graph), input(4)).shape(), (Shape{4, 2}));
}

void TestOnnxImport::namesAreMadeUnique()
{
    onnx::ModelProto model = exporterStyleModel();
    auto& g = *model.mutable_graph();
    g.mutable_node(2)->set_name("a");     // relu
    g.mutable_node(3)->set_name("a");     // identity
    g.mutable_node(4)->set_name("a_1");   // shape
    ImportOptions raw;
    raw.foldConstants = false;
    const Graph graph = load(model, raw);
    std::set<std::string> names;
    for (const Node& node : graph.nodes)
        QVERIFY2(names.insert(node.name).second, node.name.c_str());
}

void TestOnnxImport::scalarConcatIsAnError()
{
    onnx::ModelProto model;
    model.set_ir_version(7);
    model.add_opset_import()->set_version(13);
    auto& g = *model.mutable_graph();
    setTensorType(g.add_input(), "x", {"2"});
    setTensorType(g.add_output(), "y", {});
    auto* reduce = addNode(g, "ReduceMean", "mean", {"x"}, {"m"});
    auto* keep = reduce->add_attribute();
    keep->set_name("keepdims");
    keep->set_type(onnx::AttributeProto::INT);
    keep->set_i(0);
    addNode(g, "Concat", "concat", {"m", "m"}, {"y"})->add_attribute()->set_name("axis");
    g.mutable_node(1)->mutable_attribute(0)->set_type(onnx::AttributeProto::INT);
    const std::string message = errorOf([&] { load(model); });
    QVERIFY2(message.find("node 'concat'") != std::string::npos, message.c_str());
}

// The one operator table: every row is one thing to quantization, and an operator it does not
// know is an error naming the node, never a layer silently left unquantized.
void TestOnnxImport::operatorTable()
{
    for (const std::string& name : supportedOperators()) {
        const auto traits = findOperator("", name);
        QVERIFY(traits);
        QVERIFY2(!(makesNewValues(traits->role) && keepsInputParameters(traits->role)), name.c_str());
        // Weighted operators name their weight input; nothing else has one.
        QCOMPARE(traits->role == OpRole::Weighted, traits->weightInput >= 0);
        // An integer step that keeps its input's codes exists only for operators that move values.
        if (traits->integer == IntegerFamily::Move || traits->integer == IntegerFamily::MaxPool)
            QVERIFY2(keepsInputParameters(traits->role), name.c_str());
        QVERIFY(findOperator("ai.onnx", name));
        QVERIFY(!findOperator("com.microsoft", name));
        // Shape inference reaches every operator through its row (model/shape_inference.h).
        QVERIFY2(findShapeRule(name) != nullptr, name.c_str());
    }
    QVERIFY(findShapeRule("NoSuchOperator") == nullptr);
    // Dropout moves values in the simulation and in the engine alike (it once did in one only).
    QVERIFY(keepsInputParameters(findOperator("", "Dropout")->role));
    QCOMPARE(findOperator("", "Dropout")->integer, IntegerFamily::Move);
    QVERIFY(findOperator("", "Relu")->fusesIntoLayer && findOperator("", "Clip")->fusesIntoLayer);
    QVERIFY(!findOperator("", "Conv ")); // names match exactly

    Graph graph;
    graph.inputs.push_back({"x", DataType::Float32, {Dim{1, ""}, Dim{4, ""}}, true});
    graph.nodes.push_back(Node{"mystery", "Frobnicate", "", {"x"}, {"y"}, {}});
    try {
        findQuantLayers(graph);
        QFAIL("an unknown operator was accepted");
    } catch (const Error& e) {
        QVERIFY2(QString(e.what()).contains("node 'mystery': operator 'Frobnicate'"), e.what());
    }
}

void TestOnnxImport::graphLayoutFlowsDown()
{
    // A residual block: stem -> conv -> relu -> add(relu, stem) -> mul(add, side(stem)). Every
    // edge points down (the graph view draws data flowing down), and the skip connection
    // stem -> add spans several rows beside the chain.
    onnx::ModelProto model;
    model.set_ir_version(8);
    model.add_opset_import()->set_version(13);
    onnx::GraphProto& g = *model.mutable_graph();
    setTensorType(g.add_input(), "x", {"1", "2", "4", "4"});
    setTensorType(g.add_output(), "out", {"1", "2", "4", "4"});
    addFloatInitializer(g, "w0", {2, 2, 1, 1}, randomValues(4, 1));
    addFloatInitializer(g, "w", {2, 2, 1, 1}, randomValues(4, 2));
    addNode(g, "Conv", "stem", {"x", "w0"}, {"c0"});
    addNode(g, "Conv", "conv", {"c0", "w"}, {"c"});
    addNode(g, "Relu", "relu", {"c"}, {"r"});
    addNode(g, "Add", "add", {"r", "c0"}, {"a"});
    addNode(g, "Sigmoid", "side", {"c0"}, {"s"});
    addNode(g, "Mul", "mul", {"a", "s"}, {"out"});
    ImportOptions raw;
    raw.foldConstants = false;
    const Graph graph = load(model, raw);
    const GraphLayout layout = layoutGraph(graph);
    QCOMPARE(layout.nodes.size(), graph.nodes.size());
    // stem->conv, conv->relu, relu->add, stem->add, stem->side, add->mul, side->mul (x and the
    // weights are no nodes).
    QCOMPARE(layout.edges.size(), std::size_t{7});
    auto row = [&](const std::string& name) {
        for (std::size_t i = 0; i < graph.nodes.size(); ++i)
            if (graph.nodes[i].name == name)
                return layout.nodes[i].row;
        return -1;
    };
    for (const GraphLayout::Edge& e : layout.edges)
        QVERIFY(layout.nodes[e.from].row < layout.nodes[e.to].row);
    QCOMPARE(row("stem"), 0);
    QCOMPARE(row("conv"), 1);
    QCOMPARE(row("side"), 1);
    QCOMPARE(row("add"), 3);  // after conv and relu: the skip edge from stem spans three rows
    QCOMPARE(row("mul"), 4);
    QCOMPARE(layout.rows, 5);
    QCOMPARE(layout.columns, 2);  // conv and side share row 1
}

QTEST_APPLESS_MAIN(TestOnnxImport)
#include "tst_onnx_import.moc"
