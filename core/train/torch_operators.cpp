#include "train/torch_operators.h"

#include "common/error.h"
#include "model/window.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>

namespace qe {

namespace {

std::int64_t normalizeAxis(std::int64_t axis, std::int64_t rank)
{
    if (axis < -rank || axis >= std::max<std::int64_t>(rank, 1))
        throw Error("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
    return axis < 0 ? axis + rank : axis;
}

// A 1-D window op runs as 2-D with height 1.
torch::Tensor as2d(const torch::Tensor& x, int spatialRank) { return spatialRank == 1 ? x.unsqueeze(2) : x; }
torch::Tensor from2d(const torch::Tensor& x, int spatialRank) { return spatialRank == 1 ? x.squeeze(2) : x; }

int spatialRankOf(const torch::Tensor& x)
{
    const int rank = static_cast<int>(x.dim()) - 2;
    if (rank != 1 && rank != 2)
        throw Error("takes 1-D or 2-D spatial input (rank 3 or 4), got rank " + std::to_string(x.dim()));
    return rank;
}

Outputs conv(const Node& node, const OpInputs& in, const Graph&)
{
    const torch::Tensor& x = in[0];
    const int rank = spatialRankOf(x);
    torch::Tensor w = as2d(in[1], rank);
    const torch::Tensor x2 = as2d(x, rank);
    const Window2D win = makeWindow(node, rank, x2.size(2), x2.size(3), w.size(2), w.size(3), false);
    const torch::Tensor padded = torch::constant_pad_nd(x2, {win.padLeft, win.padRight, win.padTop, win.padBottom}, 0.0);
    const torch::Tensor bias = in.has(2) ? in[2] : torch::Tensor();  // undefined: no bias
    const std::vector<std::int64_t> stride{win.strideH, win.strideW}, noPadding{0, 0}, dilation{win.dilationH, win.dilationW};
    const torch::Tensor y = torch::conv2d(padded, w, bias, stride, noPadding, dilation, node.intAttribute("group", 1));
    return {from2d(y, rank)};
}

Outputs gemm(const Node& node, const OpInputs& in, const Graph&)
{
    torch::Tensor a = in[0], b = in[1];
    if (node.intAttribute("transA", 0))
        a = a.t();
    if (node.intAttribute("transB", 0))
        b = b.t();
    torch::Tensor y = torch::matmul(a, b) * node.floatAttribute("alpha", 1.f);
    if (in.has(2))
        y = y + in[2] * node.floatAttribute("beta", 1.f);
    return {y};
}

Outputs matmul(const Node&, const OpInputs& in, const Graph&) { return {torch::matmul(in[0], in[1])}; }
Outputs add(const Node&, const OpInputs& in, const Graph&) { return {in[0] + in[1]}; }
Outputs sub(const Node&, const OpInputs& in, const Graph&) { return {in[0] - in[1]}; }
Outputs mul(const Node&, const OpInputs& in, const Graph&) { return {in[0] * in[1]}; }
Outputs div(const Node&, const OpInputs& in, const Graph&) { return {in[0] / in[1]}; }
Outputs relu(const Node&, const OpInputs& in, const Graph&) { return {torch::relu(in[0])}; }
Outputs sigmoid(const Node&, const OpInputs& in, const Graph&) { return {torch::sigmoid(in[0])}; }
Outputs tanh(const Node&, const OpInputs& in, const Graph&) { return {torch::tanh(in[0])}; }
Outputs exp(const Node&, const OpInputs& in, const Graph&) { return {torch::exp(in[0])}; }
Outputs sqrt(const Node&, const OpInputs& in, const Graph&) { return {torch::sqrt(in[0])}; }
Outputs neg(const Node&, const OpInputs& in, const Graph&) { return {-in[0]}; }
Outputs abs(const Node&, const OpInputs& in, const Graph&) { return {torch::abs(in[0])}; }
Outputs identity(const Node&, const OpInputs& in, const Graph&) { return {in[0]}; }

Outputs leakyRelu(const Node& node, const OpInputs& in, const Graph&)
{
    return {torch::leaky_relu(in[0], node.floatAttribute("alpha", 0.01f))};
}

Outputs prelu(const Node&, const OpInputs& in, const Graph&)
{
    return {torch::where(in[0] >= 0, in[0], in[0] * in[1])};
}

Outputs hardSigmoid(const Node& node, const OpInputs& in, const Graph&)
{
    const float alpha = node.floatAttribute("alpha", 0.2f), beta = node.floatAttribute("beta", 0.5f);
    return {torch::clamp(in[0] * alpha + beta, 0.0, 1.0)};
}

Outputs hardSwish(const Node&, const OpInputs& in, const Graph&)
{
    return {in[0] * torch::clamp(in[0] / 6.0 + 0.5, 0.0, 1.0)};
}

// Clip: bounds as attributes (opset < 11) or constant inputs.
Outputs clip(const Node& node, const OpInputs& in, const Graph& graph)
{
    double low = -std::numeric_limits<double>::infinity(), high = std::numeric_limits<double>::infinity();
    if (node.hasAttribute("min") || node.hasAttribute("max")) {
        low = node.floatAttribute("min", -std::numeric_limits<float>::infinity());
        high = node.floatAttribute("max", std::numeric_limits<float>::infinity());
    }
    auto bound = [&](std::size_t i, double& value) {
        if (!in.has(i))
            return;
        const auto it = graph.initializers.find(node.input(i));
        if (it == graph.initializers.end())
            throw Error("input " + std::to_string(i) + " must be a constant to train this model");
        value = it->second.toFloatVector().at(0);
    };
    bound(1, low);
    bound(2, high);
    return {torch::clamp(in[0], low, high)};
}

Outputs softmax(const Node& node, const OpInputs& in, const Graph& graph)
{
    const torch::Tensor& x = in[0];
    if (graph.opsetVersion >= 13)
        return {torch::softmax(x, normalizeAxis(node.intAttribute("axis", -1), x.dim()))};
    // Before opset 13: the input is seen as 2-D, [d0 * ... * d(axis-1), d(axis) * ... * dn].
    const std::int64_t axis = normalizeAxis(node.intAttribute("axis", 1), x.dim());
    const torch::Tensor flat = x.flatten(axis, x.dim() - 1).flatten(0, std::max<std::int64_t>(axis - 1, 0));
    return {torch::softmax(axis == 0 ? flat.reshape({1, -1}) : flat, 1).reshape(x.sizes())};
}

// Pooling through explicit padding: `padValue` in the ONNX pads, and `overhangValue` past them
// where ceil_mode asks for windows beyond the padded input.
torch::Tensor padForWindow(const torch::Tensor& x, const Window2D& w, double padValue, double overhangValue)
{
    auto overhang = [](std::int64_t out, std::int64_t stride, std::int64_t kernel, std::int64_t dilation, std::int64_t padded) {
        return std::max<std::int64_t>(0, (out - 1) * stride + (kernel - 1) * dilation + 1 - padded);
    };
    const std::int64_t extraH = overhang(w.outH, w.strideH, w.kernelH, w.dilationH, w.inH + w.padTop + w.padBottom);
    const std::int64_t extraW = overhang(w.outW, w.strideW, w.kernelW, w.dilationW, w.inW + w.padLeft + w.padRight);
    const torch::Tensor padded = torch::constant_pad_nd(x, {w.padLeft, w.padRight, w.padTop, w.padBottom}, padValue);
    return torch::constant_pad_nd(padded, {0, extraW, 0, extraH}, overhangValue);
}

Window2D poolWindow(const Node& node, const torch::Tensor& x2, int rank)
{
    const auto kernel = node.intsAttribute("kernel_shape");
    if (static_cast<int>(kernel.size()) != rank)
        throw Error("needs kernel_shape with " + std::to_string(rank) + " values");
    const std::int64_t kH = rank == 1 ? 1 : kernel[0], kW = kernel.back();
    return makeWindow(node, rank, x2.size(2), x2.size(3), kH, kW, node.intAttribute("ceil_mode", 0) != 0);
}

Outputs maxPool(const Node& node, const OpInputs& in, const Graph&)
{
    const int rank = spatialRankOf(in[0]);
    const torch::Tensor x2 = as2d(in[0], rank);
    const Window2D w = poolWindow(node, x2, rank);
    const double lowest = -std::numeric_limits<double>::infinity();
    const torch::Tensor y = torch::max_pool2d(padForWindow(x2, w, lowest, lowest), {w.kernelH, w.kernelW},
                                              {w.strideH, w.strideW}, {0, 0}, {w.dilationH, w.dilationW}, false);
    return {from2d(y, rank)};
}

Outputs averagePool(const Node& node, const OpInputs& in, const Graph&)
{
    const int rank = spatialRankOf(in[0]);
    const torch::Tensor x2 = as2d(in[0], rank);
    const Window2D w = poolWindow(node, x2, rank);
    // Each window's sum over the elements it counts: the ONNX pads only with count_include_pad,
    // the ceil_mode overhang never.
    auto windowSums = [&](const torch::Tensor& t) {
        return torch::avg_pool2d(t, {w.kernelH, w.kernelW}, {w.strideH, w.strideW}, {0, 0}, false, true) *
               double(w.kernelH * w.kernelW);
    };
    const double padCounts = node.intAttribute("count_include_pad", 0) ? 1.0 : 0.0;
    const torch::Tensor sums = windowSums(padForWindow(x2, w, 0.0, 0.0));
    const torch::Tensor counts = windowSums(padForWindow(torch::ones({1, 1, w.inH, w.inW}, x2.options()), w, padCounts, 0.0));
    return {from2d(sums / counts, rank)};
}

Outputs globalAveragePool(const Node&, const OpInputs& in, const Graph&)
{
    std::vector<std::int64_t> dims;
    for (std::int64_t d = 2; d < in[0].dim(); ++d)
        dims.push_back(d);
    return {in[0].mean(dims, true)};
}

Outputs globalMaxPool(const Node&, const OpInputs& in, const Graph&)
{
    std::vector<std::int64_t> dims;
    for (std::int64_t d = 2; d < in[0].dim(); ++d)
        dims.push_back(d);
    return {torch::amax(in[0], dims, true)};
}

// Inference-mode BatchNormalization (an unfolded one): its statistics are constants.
Outputs batchNormalization(const Node& node, const OpInputs& in, const Graph&)
{
    const torch::Tensor& x = in[0];
    std::vector<std::int64_t> shape(static_cast<std::size_t>(x.dim()), 1);
    shape[1] = x.size(1);
    const double eps = node.floatAttribute("epsilon", 1e-5f);
    const torch::Tensor scale = in[1].reshape(shape), bias = in[2].reshape(shape), mean = in[3].reshape(shape),
                        var = in[4].reshape(shape);
    return {(x - mean) / torch::sqrt(var + eps) * scale + bias};
}

std::vector<std::int64_t> axesOf(const Node& node, const OpInputs& in, std::size_t inputIndex)
{
    if (node.hasAttribute("axes"))
        return node.intsAttribute("axes");
    return in.has(inputIndex) ? in.ints(inputIndex) : std::vector<std::int64_t>{};
}

Outputs reduceMean(const Node& node, const OpInputs& in, const Graph&)
{
    std::vector<std::int64_t> axes = axesOf(node, in, 1);
    const bool keep = node.intAttribute("keepdims", 1) != 0;
    if (axes.empty()) {
        if (node.intAttribute("noop_with_empty_axes", 0))
            return {in[0]};
        for (std::int64_t d = 0; d < in[0].dim(); ++d)
            axes.push_back(d);
    }
    for (auto& a : axes)
        a = normalizeAxis(a, in[0].dim());
    return {in[0].mean(axes, keep)};
}

Outputs flatten(const Node& node, const OpInputs& in, const Graph&)
{
    const torch::Tensor& x = in[0];
    const std::int64_t axis = normalizeAxis(node.intAttribute("axis", 1), x.dim() + 1);
    std::int64_t outer = 1;
    for (std::int64_t d = 0; d < axis; ++d)
        outer *= x.size(d);
    return {x.reshape({outer, outer ? x.numel() / std::max<std::int64_t>(outer, 1) : 0})};
}

Outputs reshape(const Node& node, const OpInputs& in, const Graph&)
{
    std::vector<std::int64_t> shape = in.ints(1);
    const bool allowZero = node.intAttribute("allowzero", 0) != 0;
    for (std::size_t d = 0; d < shape.size(); ++d)
        if (shape[d] == 0 && !allowZero)
            shape[d] = in[0].size(static_cast<std::int64_t>(d));
    return {in[0].reshape(shape)};
}

Outputs transpose(const Node& node, const OpInputs& in, const Graph&)
{
    std::vector<std::int64_t> perm = node.intsAttribute("perm");
    if (perm.empty())
        for (std::int64_t d = in[0].dim() - 1; d >= 0; --d)
            perm.push_back(d);
    return {in[0].permute(perm)};
}

Outputs concat(const Node& node, const OpInputs& in, const Graph&)
{
    std::vector<torch::Tensor> parts;
    for (std::size_t i = 0; i < node.inputs.size(); ++i)
        if (in.has(i))
            parts.push_back(in[i]);
    return {torch::cat(parts, normalizeAxis(node.intAttribute("axis", 0), parts.at(0).dim()))};
}

Outputs squeeze(const Node& node, const OpInputs& in, const Graph&)
{
    std::vector<std::int64_t> axes = axesOf(node, in, 1);
    torch::Tensor x = in[0];
    if (axes.empty())
        return {x.squeeze()};
    for (auto& a : axes)
        a = normalizeAxis(a, x.dim());
    std::sort(axes.rbegin(), axes.rend());
    for (std::int64_t a : axes)
        x = x.squeeze(a);
    return {x};
}

Outputs unsqueeze(const Node& node, const OpInputs& in, const Graph&)
{
    std::vector<std::int64_t> axes = axesOf(node, in, 1);
    const std::int64_t outRank = in[0].dim() + static_cast<std::int64_t>(axes.size());
    for (auto& a : axes)
        a = normalizeAxis(a, outRank);
    std::sort(axes.begin(), axes.end());
    torch::Tensor x = in[0];
    for (std::int64_t a : axes)
        x = x.unsqueeze(a);
    return {x};
}

Outputs pad(const Node& node, const OpInputs& in, const Graph& graph)
{
    if (node.stringAttribute("mode", "constant") != "constant")
        throw Error("only mode 'constant' has a training path");
    const std::vector<std::int64_t> pads = node.hasAttribute("pads") ? node.intsAttribute("pads") : in.ints(1);
    const std::int64_t rank = in[0].dim();
    if (static_cast<std::int64_t>(pads.size()) != 2 * rank)
        throw Error("'pads' needs " + std::to_string(2 * rank) + " values");
    double value = node.floatAttribute("value", 0.f);
    if (in.has(2)) {
        const auto it = graph.initializers.find(node.input(2));
        if (it == graph.initializers.end())
            throw Error("the constant value must be a constant to train this model");
        value = it->second.toFloatVector().at(0);
    }
    // torch lists (begin, end) pairs from the last axis backwards; ONNX all begins, then all ends.
    std::vector<std::int64_t> torchPads;
    for (std::int64_t d = rank - 1; d >= 0; --d) {
        torchPads.push_back(pads[static_cast<std::size_t>(d)]);
        torchPads.push_back(pads[static_cast<std::size_t>(d + rank)]);
    }
    return {torch::constant_pad_nd(in[0], torchPads, value)};
}

struct TorchOperator {
    const char* opType;
    OpFunction run;
};

// The operators on the training path. The others our engines run (integer operators, Shape
// arithmetic that the importer folds away, ...) have no gradient to give.
constexpr TorchOperator kTorchOperators[] = {
    {"Conv", conv},
    {"Gemm", gemm},
    {"MatMul", matmul},
    {"Add", add},
    {"Sub", sub},
    {"Mul", mul},
    {"Div", div},
    {"Relu", relu},
    {"LeakyRelu", leakyRelu},
    {"PRelu", prelu},
    {"Clip", clip},
    {"Sigmoid", sigmoid},
    {"HardSigmoid", hardSigmoid},
    {"HardSwish", hardSwish},
    {"Tanh", tanh},
    {"Exp", exp},
    {"Sqrt", sqrt},
    {"Neg", neg},
    {"Abs", abs},
    {"Softmax", softmax},
    {"MaxPool", maxPool},
    {"AveragePool", averagePool},
    {"GlobalAveragePool", globalAveragePool},
    {"GlobalMaxPool", globalMaxPool},
    {"BatchNormalization", batchNormalization},
    {"ReduceMean", reduceMean},
    {"Flatten", flatten},
    {"Reshape", reshape},
    {"Transpose", transpose},
    {"Concat", concat},
    {"Squeeze", squeeze},
    {"Unsqueeze", unsqueeze},
    {"Pad", pad},
    {"Identity", identity},
    {"Dropout", identity},  // inference mode: the importer removes it; kept for unprepared graphs
};

}  // namespace

OpFunction findOperator(const Node& node)
{
    if (node.domain.empty() || node.domain == "ai.onnx")
        for (const TorchOperator& op : kTorchOperators)
            if (node.opType == op.opType)
                return op.run;
    return nullptr;
}

}  // namespace qe
