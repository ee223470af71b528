// The fp32 Conv and MaxPool operators on their fast paths (oneDNN convolutions in
// engine/ops/float_kernels.cpp, the branch-free max pooling in engine/ops/pool.cpp) against a
// direct, double-precision evaluation of the ONNX definitions written here: every geometry the
// models use (groups, depthwise, strides, dilations, asymmetric pads, 1-D, batch > 1, no bias).
// The packed-weight cache is checked too: a new weight tensor of the same shape must never be
// served the packing of an earlier one, also when it reuses the earlier one's memory.
// Runs of convolutions that the executor hands to oneDNN whole (engine/conv_chains.h) must give
// exactly, bit for bit, what their nodes give one by one: on a made-up run through Relu, Clip,
// depthwise and 1x1 convolutions, and on the demo and shared models.

#include "engine/conv_chains.h"
#include "engine/executor.h"
#include "engine/graph_preparation.h"
#include "engine/ops/float_kernels.h"
#include "model/graph.h"

#include "test_support.h"

#include <QtTest>

#include <cstring>

#include <cmath>
#include <random>

using namespace qe;

namespace {

struct ConvCase {
    const char* name;
    std::int64_t batch, channels, height, width, outChannels, groups, kernelH, kernelW;
    std::vector<std::int64_t> strides, pads, dilations;  // ONNX attributes (pads: top, left, bottom, right)
    bool bias = true;
    bool oneDimensional = false;  // then height must be 1 and the node is a 1-D Conv
};

Tensor randomTensor(Shape shape, std::mt19937& random)
{
    Tensor t(DataType::Float32, std::move(shape));
    std::normal_distribution<float> normal(0.f, 1.f);
    float* p = t.mutableData<float>();
    for (std::int64_t i = 0; i < t.size(); ++i)
        p[i] = normal(random);
    return t;
}

SymbolicShape symbolic(const Shape& shape)
{
    SymbolicShape s;
    for (std::int64_t d : shape)
        s.push_back({d, ""});
    return s;
}

Graph convGraph(const ConvCase& c, const Tensor& weights, const Tensor& bias, const Shape& inputShape)
{
    Graph graph;
    graph.name = c.name;
    graph.opsetVersion = 13;
    graph.inputs.push_back({"x", DataType::Float32, symbolic(inputShape), true});
    graph.outputs.push_back({"y", DataType::Float32, {}, false});
    graph.initializers["w"] = weights;
    Node node{"conv", "Conv", "", {"x", "w"}, {"y"}, {}};
    if (c.bias) {
        graph.initializers["b"] = bias;
        node.inputs.push_back("b");
    }
    node.attributes["group"] = c.groups;
    if (!c.strides.empty())
        node.attributes["strides"] = c.strides;
    if (!c.pads.empty())
        node.attributes["pads"] = c.pads;
    if (!c.dilations.empty())
        node.attributes["dilations"] = c.dilations;
    graph.nodes.push_back(node);
    return graph;
}

// The ONNX definition, directly, in double precision (2-D; a 1-D case is the same with height 1).
std::vector<double> directConv(const ConvCase& c, const Tensor& x, const Tensor& w, const Tensor& b, std::int64_t outH,
                               std::int64_t outW)
{
    const auto at = [](const std::vector<std::int64_t>& v, std::size_t i, std::int64_t fallback) {
        return v.empty() ? fallback : v[i];
    };
    const bool d1 = c.oneDimensional;
    const std::int64_t strideH = d1 ? 1 : at(c.strides, 0, 1), strideW = at(c.strides, d1 ? 0 : 1, 1);
    const std::int64_t dilH = d1 ? 1 : at(c.dilations, 0, 1), dilW = at(c.dilations, d1 ? 0 : 1, 1);
    const std::int64_t padT = d1 ? 0 : at(c.pads, 0, 0), padL = at(c.pads, d1 ? 0 : 1, 0);
    const std::int64_t perGroupIn = c.channels / c.groups, perGroupOut = c.outChannels / c.groups;
    std::vector<double> y(std::size_t(c.batch * c.outChannels * outH * outW));
    const float* px = x.data<float>();
    const float* pw = w.data<float>();
    for (std::int64_t n = 0; n < c.batch; ++n)
        for (std::int64_t o = 0; o < c.outChannels; ++o) {
            const std::int64_t g = o / perGroupOut;
            for (std::int64_t oy = 0; oy < outH; ++oy)
                for (std::int64_t ox = 0; ox < outW; ++ox) {
                    double sum = c.bias ? double(b.data<float>()[o]) : 0.0;
                    for (std::int64_t i = 0; i < perGroupIn; ++i)
                        for (std::int64_t ky = 0; ky < c.kernelH; ++ky)
                            for (std::int64_t kx = 0; kx < c.kernelW; ++kx) {
                                const std::int64_t iy = oy * strideH - padT + ky * dilH, ix = ox * strideW - padL + kx * dilW;
                                if (iy < 0 || iy >= c.height || ix < 0 || ix >= c.width)
                                    continue;
                                const std::int64_t channel = g * perGroupIn + i;
                                sum += double(px[((n * c.channels + channel) * c.height + iy) * c.width + ix]) *
                                       double(pw[((o * perGroupIn + i) * c.kernelH + ky) * c.kernelW + kx]);
                            }
                    y[std::size_t(((n * c.outChannels + o) * outH + oy) * outW + ox)] = sum;
                }
        }
    return y;
}

const std::vector<ConvCase>& convCases()
{
    static const std::vector<ConvCase> cases = {
        {"3x3 pad 1", 1, 16, 14, 14, 32, 1, 3, 3, {}, {1, 1, 1, 1}, {}},
        {"3x3 stride 2, batch 3", 3, 8, 15, 13, 24, 1, 3, 3, {2, 2}, {1, 1, 1, 1}, {}},
        {"first layer, 3 channels 7x7 stride 2", 2, 3, 32, 32, 16, 1, 7, 7, {2, 2}, {3, 3, 3, 3}, {}},
        {"pointwise", 2, 64, 7, 7, 48, 1, 1, 1, {}, {}, {}},
        {"pointwise stride 2, no bias", 1, 32, 9, 9, 16, 1, 1, 1, {2, 2}, {}, {}, false},
        {"depthwise 3x3", 2, 32, 12, 12, 32, 32, 3, 3, {}, {1, 1, 1, 1}, {}},
        {"depthwise 3x3 stride 2", 1, 48, 13, 13, 48, 48, 3, 3, {2, 2}, {1, 1, 1, 1}, {}},
        {"depthwise multiplier 2", 1, 8, 10, 10, 16, 8, 3, 3, {}, {1, 1, 1, 1}, {}},
        {"groups 4", 2, 16, 9, 9, 32, 4, 3, 3, {}, {0, 0, 0, 0}, {}},
        {"dilation 2", 1, 8, 16, 16, 8, 1, 3, 3, {}, {2, 2, 2, 2}, {2, 2}},
        {"asymmetric pads", 1, 4, 11, 9, 6, 1, 3, 2, {1, 2}, {0, 1, 2, 0}, {}},
        {"1-D", 2, 6, 1, 40, 10, 1, 1, 5, {2}, {2, 1}, {}, true, true},
    };
    return cases;
}

Shape inputShapeOf(const ConvCase& c)
{
    return c.oneDimensional ? Shape{c.batch, c.channels, c.width} : Shape{c.batch, c.channels, c.height, c.width};
}

Shape weightShapeOf(const ConvCase& c)
{
    const std::int64_t perGroup = c.channels / c.groups;
    return c.oneDimensional ? Shape{c.outChannels, perGroup, c.kernelW} : Shape{c.outChannels, perGroup, c.kernelH, c.kernelW};
}

// Runs case `c` with these weights and checks it against the direct evaluation.
void checkConv(const ConvCase& c, const Tensor& x, const Tensor& w, const Tensor& b)
{
    const Graph graph = convGraph(c, w, b, inputShapeOf(c));
    const Executor executor(graph);
    const Tensor y = executor.run({{"x", x}}).at("y");
    const std::int64_t outH = c.oneDimensional ? 1 : y.dim(2), outW = y.dim(y.rank() - 1);
    const std::vector<double> expected = directConv(c, x, w, b, outH, outW);
    QCOMPARE(std::size_t(y.size()), expected.size());
    // fp32 sums of at most a few hundred products of N(0,1) values: far inside 1e-4 relative to
    // the size of the terms.
    const double tolerance = 1e-4 * std::sqrt(double(c.channels / c.groups * c.kernelH * c.kernelW)) + 1e-5;
    for (std::size_t i = 0; i < expected.size(); ++i)
        if (std::abs(double(y.data<float>()[i]) - expected[i]) > tolerance)
            QFAIL(qPrintable(QStringLiteral("%1: output %2 is %3, expected %4").arg(c.name).arg(i).arg(y.data<float>()[i]).arg(expected[i])));
}

// `graph` run on `x` with its convolution runs (no capture) and node by node (every tensor inside
// a run captured, which the executor must then compute): the same outputs, bit for bit, and each
// run's output from runConvChain equal to its last node's.
void checkChainsMatchNodes(const Graph& graph, const Tensor& x, std::size_t expectedChains)
{
    const std::map<std::size_t, ConvChain> chains = findConvChains(graph);
    QCOMPARE(chains.size(), expectedChains);
    const Executor executor(graph);
    const std::string& input = graph.inputs[0].name;
    const TensorMap fused = executor.run({{input, x}});
    RunOptions oneByOne;
    for (const auto& [first, chain] : chains) {
        oneByOne.capture.insert(chain.inner.begin(), chain.inner.end());
        oneByOne.capture.insert(graph.nodes[first].input(0));
        oneByOne.capture.insert(graph.nodes[chain.last()].outputs[0]);
    }
    const TensorMap separate = executor.run({{input, x}}, oneByOne);
    auto sameBits = [](const Tensor& a, const Tensor& b) {
        return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.rawData(), b.rawData(), a.byteSize()) == 0;
    };
    for (const ValueInfo& output : graph.outputs)
        QVERIFY2(sameBits(fused.at(output.name), separate.at(output.name)), output.name.c_str());
    for (const auto& [first, chain] : chains) {
        const std::optional<Tensor> ran = runConvChain(graph, chain, separate.at(graph.nodes[first].input(0)));
        if (!floatKernelsAvailable()) {
            QVERIFY(!ran);
            continue;
        }
        QVERIFY2(ran, graph.nodes[first].name.c_str());
        QVERIFY2(sameBits(*ran, separate.at(graph.nodes[chain.last()].outputs[0])), graph.nodes[first].name.c_str());
    }
}

}  // namespace

class TestFloatConv : public QObject {
    Q_OBJECT
private slots:
    void initTestCase()
    {
        if (!floatKernelsAvailable())
            qInfo("built without oneDNN: this checks the im2col + Eigen convolutions");
    }

    void convMatchesTheDefinition_data()
    {
        QTest::addColumn<int>("index");
        for (std::size_t i = 0; i < convCases().size(); ++i)
            QTest::newRow(convCases()[i].name) << int(i);
    }

    void convMatchesTheDefinition()
    {
        QFETCH(int, index);
        const ConvCase& c = convCases()[std::size_t(index)];
        std::mt19937 random(std::uint32_t(100 + index));
        const Tensor x = randomTensor(inputShapeOf(c), random);
        const Tensor w = randomTensor(weightShapeOf(c), random);
        const Tensor b = randomTensor({c.outChannels}, random);
        checkConv(c, x, w, b);
    }

    // New weights of the same shape, one after another, each freed before the next is made (so
    // that the allocator may hand the next the same address): each run uses its own weights.
    void newWeightsAreNeverServedOldPacking()
    {
        const ConvCase& c = convCases()[0];
        std::mt19937 random(7);
        const Tensor x = randomTensor(inputShapeOf(c), random);
        const Tensor b = randomTensor({c.outChannels}, random);
        for (int round = 0; round < 6; ++round) {
            const Tensor w = randomTensor(weightShapeOf(c), random);
            checkConv(c, x, w, b);
        }
    }

    // Conv (stride 2, asymmetric pads) -> Relu -> depthwise Conv -> Clip(-1, 2) -> 1x1 Conv
    // without bias -> Clip(0, inf) -> 3x3 Conv, whose output the Relu after it and an Add both
    // read: the Relu stays out of the run.
    void convChainMatchesItsNodes()
    {
        std::mt19937 random(11);
        Graph graph;
        graph.name = "chain";
        graph.opsetVersion = 13;
        graph.inputs.push_back({"x", DataType::Float32, symbolic({2, 3, 17, 15}), true});
        graph.outputs.push_back({"out", DataType::Float32, {}, false});
        graph.initializers["w1"] = randomTensor({16, 3, 3, 3}, random);
        graph.initializers["b1"] = randomTensor({16}, random);
        graph.initializers["w2"] = randomTensor({16, 1, 3, 3}, random);
        graph.initializers["b2"] = randomTensor({16}, random);
        graph.initializers["w3"] = randomTensor({24, 16, 1, 1}, random);
        graph.initializers["w4"] = randomTensor({8, 24, 3, 3}, random);
        graph.initializers["lo"] = Tensor::fromValues<float>({}, {-1.f});
        graph.initializers["hi"] = Tensor::fromValues<float>({}, {2.f});
        graph.initializers["zero"] = Tensor::fromValues<float>({}, {0.f});
        Node conv1{"conv1", "Conv", "", {"x", "w1", "b1"}, {"c1"}, {}};
        conv1.attributes["strides"] = std::vector<std::int64_t>{2, 2};
        conv1.attributes["pads"] = std::vector<std::int64_t>{1, 1, 1, 0};
        Node dw{"dw", "Conv", "", {"r1", "w2", "b2"}, {"c2"}, {}};
        dw.attributes["group"] = std::int64_t{16};
        dw.attributes["pads"] = std::vector<std::int64_t>{1, 1, 1, 1};
        Node conv4{"conv4", "Conv", "", {"r3", "w4"}, {"c4"}, {}};
        conv4.attributes["pads"] = std::vector<std::int64_t>{1, 1, 1, 1};
        graph.nodes = {conv1,
                       {"relu1", "Relu", "", {"c1"}, {"r1"}, {}},
                       dw,
                       {"clip2", "Clip", "", {"c2", "lo", "hi"}, {"r2"}, {}},
                       {"pw", "Conv", "", {"r2", "w3"}, {"c3"}, {}},
                       {"clip3", "Clip", "", {"c3", "zero"}, {"r3"}, {}},
                       conv4,
                       {"relu4", "Relu", "", {"c4"}, {"r4"}, {}},
                       {"sum", "Add", "", {"r4", "c4"}, {"out"}, {}}};
        checkChainsMatchNodes(graph, randomTensor({2, 3, 17, 15}, random), 1);
        const ConvChain chain = findConvChains(graph).at(0);
        QCOMPARE(chain.stages.size(), std::size_t(4));
        QVERIFY(!chain.stages[3].activation);
        QCOMPARE(chain.last(), std::size_t(6));
    }

    void convChainsMatchTheirNodesOnModels_data()
    {
        QTest::addColumn<QString>("model");
        QTest::addColumn<int>("chains");  // -1: as many as found (at least one)
        QTest::newRow("demo") << QString::fromStdString((test::sourceDir() / "resources/models/fashion_cnn.onnx").string()) << -1;
        for (const char* name : {"mobilenet_v1_0.25_128_float.onnx", "resnet8_cifar10.onnx", "vww_96_mobilenetv1_025.onnx"})
            QTest::newRow(name) << QString::fromStdString((test::sharedDir() / "models" / name).string()) << -1;
    }

    void convChainsMatchTheirNodesOnModels()
    {
        QFETCH(QString, model);
        QFETCH(int, chains);
        const std::filesystem::path path = model.toStdString();
        QE_REQUIRE_PATH(path);
        const Graph graph = loadOnnx(path);
        const ImageInputGeometry g = imageInputGeometry(graph);
        std::mt19937 random(5);
        const std::size_t found = findConvChains(graph).size();
        QVERIFY2(found > 0, "no convolution run found");
        checkChainsMatchNodes(graph, randomTensor({2, g.channels, g.height, g.width}, random),
                              chains >= 0 ? std::size_t(chains) : found);
    }

    void maxPoolMatchesTheDefinition_data()
    {
        QTest::addColumn<QList<int>>("geometry");  // height, width, kernel h, w, stride h, w, pads t, l, b, r, dilation h, w
        QTest::newRow("3x3 stride 2 pad 1") << QList<int>{112, 112, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1};
        QTest::newRow("2x2 stride 2") << QList<int>{28, 28, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1};
        QTest::newRow("odd size, asymmetric pads") << QList<int>{13, 11, 3, 2, 2, 1, 0, 1, 2, 0, 1, 1};
        QTest::newRow("dilation 2") << QList<int>{15, 15, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2};
        QTest::newRow("kernel wider than the image with pads") << QList<int>{3, 3, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1};
    }

    void maxPoolMatchesTheDefinition()
    {
        QFETCH(QList<int>, geometry);
        const std::int64_t h = geometry[0], w = geometry[1], kh = geometry[2], kw = geometry[3], sh = geometry[4],
                           sw = geometry[5], pt = geometry[6], pl = geometry[7], pb = geometry[8], pr = geometry[9],
                           dh = geometry[10], dw = geometry[11];
        std::mt19937 random(3);
        const Tensor x = randomTensor({2, 3, h, w}, random);
        Graph graph;
        graph.name = "maxpool";
        graph.opsetVersion = 13;
        graph.inputs.push_back({"x", DataType::Float32, symbolic(x.shape()), true});
        graph.outputs.push_back({"y", DataType::Float32, {}, false});
        Node node{"pool", "MaxPool", "", {"x"}, {"y"}, {}};
        node.attributes["kernel_shape"] = std::vector<std::int64_t>{kh, kw};
        node.attributes["strides"] = std::vector<std::int64_t>{sh, sw};
        node.attributes["pads"] = std::vector<std::int64_t>{pt, pl, pb, pr};
        node.attributes["dilations"] = std::vector<std::int64_t>{dh, dw};
        graph.nodes.push_back(node);
        const Tensor y = Executor(graph).run({{"x", x}}).at("y");
        const std::int64_t outH = (h + pt + pb - ((kh - 1) * dh + 1)) / sh + 1, outW = (w + pl + pr - ((kw - 1) * dw + 1)) / sw + 1;
        QCOMPARE(y.shape(), (Shape{2, 3, outH, outW}));
        for (std::int64_t p = 0; p < 6; ++p)
            for (std::int64_t oy = 0; oy < outH; ++oy)
                for (std::int64_t ox = 0; ox < outW; ++ox) {
                    float best = -std::numeric_limits<float>::infinity();
                    for (std::int64_t ky = 0; ky < kh; ++ky)
                        for (std::int64_t kx = 0; kx < kw; ++kx) {
                            const std::int64_t iy = oy * sh - pt + ky * dh, ix = ox * sw - pl + kx * dw;
                            if (iy >= 0 && iy < h && ix >= 0 && ix < w)
                                best = std::max(best, x.data<float>()[(p * h + iy) * w + ix]);
                        }
                    QCOMPARE(y.data<float>()[(p * outH + oy) * outW + ox], best);
                }
    }
};

QTEST_GUILESS_MAIN(TestFloatConv)
#include "tst_float_conv.moc"
