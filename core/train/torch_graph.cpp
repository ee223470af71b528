#include "train/torch_graph.h"

#include "common/error.h"
#include "model/window.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <set>

namespace qe {

torch::Tensor toTorch(const Tensor& tensor)
{
    const Tensor f = tensor.dtype() == DataType::Float32 ? tensor : tensor.castTo(DataType::Float32);
    std::vector<std::int64_t> shape(f.shape().begin(), f.shape().end());
    return torch::from_blob(const_cast<float*>(f.data<float>()), shape, torch::kFloat32).clone();
}

Tensor fromTorch(const torch::Tensor& tensor)
{
    const torch::Tensor t = tensor.detach().to(torch::kFloat32).contiguous();
    Shape shape(t.sizes().begin(), t.sizes().end());
    return Tensor::fromValues<float>(shape, std::span<const float>(t.data_ptr<float>(), static_cast<std::size_t>(t.numel())));
}

namespace {

// What an operator sees: its inputs as torch tensors, and constant inputs as integers.
class OpInputs {
public:
    OpInputs(const Node& node, const Graph& graph, const std::map<std::string, torch::Tensor>& values)
        : node_(node), graph_(graph), values_(values)
    {
    }
    bool has(std::size_t i) const { return !node_.input(i).empty(); }
    const torch::Tensor& operator[](std::size_t i) const
    {
        const auto it = values_.find(node_.input(i));
        if (it == values_.end())
            throw Error("input " + std::to_string(i) + " ('" + node_.input(i) + "') is not available");
        return it->second;
    }
    // A constant integer input (shapes, axes, pads): an initializer.
    std::vector<std::int64_t> ints(std::size_t i) const
    {
        const auto it = graph_.initializers.find(node_.input(i));
        if (it == graph_.initializers.end())
            throw Error("input " + std::to_string(i) + " ('" + node_.input(i) +
                        "') must be a constant to train this model (it is computed at run time)");
        return it->second.toInt64Vector();
    }

private:
    const Node& node_;
    const Graph& graph_;
    const std::map<std::string, torch::Tensor>& values_;
};

using Outputs = std::vector<torch::Tensor>;
using OpFunction = Outputs (*)(const Node&, const OpInputs&, const Graph&);

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

OpFunction findOperator(const Node& node)
{
    if (node.domain.empty() || node.domain == "ai.onnx")
        for (const TorchOperator& op : kTorchOperators)
            if (node.opType == op.opType)
                return op.run;
    return nullptr;
}

// Quantize-dequantize in the forward pass, identity in the backward pass (the straight-through
// estimator) for values the program quantized.
torch::Tensor straightThrough(const torch::Tensor& x, const torch::Tensor& quantized)
{
    return x + (quantized - x).detach();
}

torch::Tensor fakeQuantizeActivation(const torch::Tensor& x, const UniformQuant& q)
{
    // torch's fake quantization passes the gradient where the value is inside the clipping
    // range and stops it outside, as the STE of Jacob et al. and PyTorch's QAT do.
    return torch::fake_quantize_per_tensor_affine(x, q.scale, q.zeroPoint, q.qmin, q.qmax);
}

}  // namespace

TorchGraph::TorchGraph(const Graph& graph, const std::vector<std::string>& trainable) : graph_(graph)
{
    for (const Node& node : graph.nodes)
        if (!findOperator(node))
            throw Error("node '" + node.name + "' (" + node.opType + (node.domain.empty() ? "" : ", domain " + node.domain) +
                        "): the operator has no training path; the operators that have one are Conv, Gemm, MatMul, "
                        "elementwise arithmetic and activations, Softmax, pooling, BatchNormalization, ReduceMean and the "
                        "shape operators Flatten, Reshape, Transpose, Concat, Squeeze, Unsqueeze, Pad");
    for (const std::string& name : trainable) {
        const auto it = graph.initializers.find(name);
        if (it == graph.initializers.end() || it->second.dtype() != DataType::Float32)
            throw Error("'" + name + "' is not a float initializer of the model");
        parameters_[name] = toTorch(it->second).set_requires_grad(true);
    }
    for (const auto& [name, tensor] : graph.initializers)
        if (tensor.dtype() == DataType::Float32 && !parameters_.count(name))
            constants_[name] = toTorch(tensor);
}

std::vector<torch::Tensor> TorchGraph::parameters() const
{
    std::vector<torch::Tensor> result;
    for (const auto& [name, tensor] : parameters_)
        result.push_back(tensor);
    return result;
}

std::map<std::string, Tensor> TorchGraph::parameterValues() const
{
    std::map<std::string, Tensor> result;
    for (const auto& [name, tensor] : parameters_)
        result[name] = fromTorch(tensor);
    for (auto& [name, tensor] : foldedValues())
        result[name] = std::move(tensor);
    torch::NoGradGuard noGrad;
    for (const auto& [name, learned] : learnedWeights_)
        result[name] = fromTorch(clippedWeights(learned, toTorch(result.at(name))));
    return result;
}

namespace {

// [C] as a shape that broadcasts over axis 1 of a rank-`rank` tensor (or axis 0 when `axis` is 0).
torch::Tensor alongAxis(const torch::Tensor& perChannel, std::int64_t rank, std::int64_t axis)
{
    std::vector<std::int64_t> shape(static_cast<std::size_t>(rank), 1);
    shape[static_cast<std::size_t>(axis)] = perChannel.size(0);
    return perChannel.reshape(shape);
}

}  // namespace

torch::Tensor TorchGraph::normalizeWithBatch(const torch::Tensor& output, const torch::Tensor& bias, const TrainingBatchNorm& bn)
{
    const std::int64_t rank = output.dim();
    const torch::Tensor factor = foldFactor(bn);
    const torch::Tensor safeFactor = torch::where(factor != 0, factor, torch::ones_like(factor));
    // The layer's output as the unfolded layer computes it (before its normalization).
    const torch::Tensor b = alongAxis(bias, rank, 1);
    const torch::Tensor unfolded = (output - b) / alongAxis(safeFactor, rank, 1) + b;
    std::vector<std::int64_t> dims;
    for (std::int64_t d = 0; d < rank; ++d)
        if (d != 1)
            dims.push_back(d);
    const torch::Tensor mean = unfolded.mean(dims);
    const torch::Tensor variance = (unfolded - alongAxis(mean, rank, 1)).square().mean(dims);
    const double n = double(unfolded.numel()) / double(std::max<std::int64_t>(1, unfolded.size(1)));
    if (n >= 2) {  // one value per channel has no variance to learn from (PyTorch refuses such a batch)
        // PyTorch's update: momentum 0.1, the unbiased batch variance.
        torch::NoGradGuard noGrad;
        bn.runningMean.mul_(0.9).add_(0.1 * mean.detach());
        bn.runningVar.mul_(0.9).add_(0.1 * variance.detach() * (n / (n - 1)));
    }
    // epsilon relative to the channel's scale: the layer's output is in its own units, which an
    // absolute 1e-5 would swamp where a channel's spread is small.
    const torch::Tensor epsilon = (bn.runningVar * 1e-5).clamp_min(1e-30);
    return (unfolded - alongAxis(mean, rank, 1)) / alongAxis((variance + epsilon).sqrt(), rank, 1) * alongAxis(bn.gamma, rank, 1) +
           alongAxis(bn.beta, rank, 1);
}

namespace {

// The min-max step of symmetric weights: each channel's largest |w| (along every axis but the
// channel axis) over qmax, [channels]; or the tensor's, [1].
torch::Tensor minMaxStep(const torch::Tensor& w, const TrainingJob::LearnedWeights& spec)
{
    const torch::Tensor largest =
        spec.perChannel ? w.abs().transpose(0, spec.channelAxis).reshape({w.size(spec.channelAxis), -1}).amax(1) : w.abs().max().reshape({1});
    return (largest / double(spec.qmax)).clamp_min(1e-30);
}

}  // namespace

void TorchGraph::limitWeightSteps()
{
    torch::NoGradGuard noGrad;
    for (auto& [name, learned] : learnedWeights_) {
        torch::Tensor weights = parameters_.at(name);
        for (const auto& [node, bn] : batchNorms_)  // as forward() quantizes them
            if (bn.weight == name)
                weights = weights * alongAxis(foldFactor(bn), weights.dim(), 0);
        const torch::Tensor own = minMaxStep(weights, learned.spec);
        // A millionth below: exp() of the limit must stay under the min-max step, or torch::minimum
        // would pick that step and the learned one would get no gradient.
        learned.logScale.clamp_max_(own.log() - 1e-6);
    }
}

void TorchGraph::learnWeightScales(const std::map<std::string, TrainingJob::LearnedWeights>& weights)
{
    torch::NoGradGuard noGrad;
    for (const auto& [name, spec] : weights) {
        const auto it = parameters_.find(name);
        if (it == parameters_.end())
            throw Error("'" + name + "': only trainable weights can learn their step sizes");
        const torch::Tensor start = minMaxStep(it->second, spec);
        learnedWeights_[name] = LearnedWeightScale{spec, (start.log() - 1e-6).set_requires_grad(true), torch::zeros_like(start)};
    }
}

torch::Tensor TorchGraph::effectiveWeightScale(const LearnedWeightScale& learned, const torch::Tensor& weights)
{
    return torch::minimum(learned.logScale.exp(), minMaxStep(weights.detach(), learned.spec));
}

torch::Tensor TorchGraph::clippedWeights(const LearnedWeightScale& learned, const torch::Tensor& weights)
{
    torch::Tensor bound = effectiveWeightScale(learned, weights) * double(learned.spec.qmax);
    bound = learned.spec.perChannel ? alongAxis(bound, weights.dim(), learned.spec.channelAxis) : bound;
    return torch::max(torch::min(weights, bound), -bound);
}

void TorchGraph::trainBatchNorms(const std::vector<TrainingJob::FoldedBatchNorm>& layers)
{
    for (const TrainingJob::FoldedBatchNorm& layer : layers) {
        const auto weight = parameters_.find(layer.weight), bias = parameters_.find(layer.bias);
        if (weight == parameters_.end() || bias == parameters_.end())
            throw Error("layer '" + layer.node + "': its weights and bias must be trainable to train its BatchNormalization");
        const auto channels = static_cast<std::int64_t>(layer.mean.size());
        if (weight->second.size(0) != channels || layer.stddev.size() != layer.mean.size())
            throw Error("layer '" + layer.node + "': its BatchNormalization statistics have " + std::to_string(channels) +
                        " channels, its weights " + std::to_string(weight->second.size(0)));
        TrainingBatchNorm bn;
        bn.weight = layer.weight;
        bn.bias = layer.bias;
        bn.gamma = torch::tensor(layer.stddev, torch::kFloat32).set_requires_grad(true);
        bn.beta = torch::tensor(layer.mean, torch::kFloat32).set_requires_grad(true);
        bn.runningMean = torch::tensor(layer.mean, torch::kFloat32);
        bn.runningVar = torch::tensor(layer.stddev, torch::kFloat32).square();
        batchNorms_[layer.node] = std::move(bn);
    }
}

std::vector<torch::Tensor> TorchGraph::batchNormParameters() const
{
    std::vector<torch::Tensor> result;
    for (const auto& [node, bn] : batchNorms_) {
        result.push_back(bn.gamma);
        result.push_back(bn.beta);
    }
    return result;
}

torch::Tensor TorchGraph::foldFactor(const TrainingBatchNorm& bn)
{
    const torch::Tensor stddev = bn.runningVar.sqrt();
    // clamp_min keeps the unselected branch finite, so that its gradient is 0 and not NaN.
    return torch::where(stddev > 0, bn.gamma / stddev.clamp_min(1e-30), torch::ones_like(bn.gamma));
}

std::map<std::string, Tensor> TorchGraph::foldedValues() const
{
    torch::NoGradGuard noGrad;
    std::map<std::string, Tensor> result;
    for (const auto& [node, bn] : batchNorms_) {
        const torch::Tensor factor = foldFactor(bn);
        const torch::Tensor& w = parameters_.at(bn.weight);
        result[bn.weight] = fromTorch(w * alongAxis(factor, w.dim(), 0));
        result[bn.bias] = fromTorch((parameters_.at(bn.bias) - bn.runningMean) * factor + bn.beta);
    }
    return result;
}

void TorchGraph::freezeBatchNorms()
{
    const std::map<std::string, Tensor> folded = foldedValues();
    batchNorms_.clear();
    setParameterValues(folded);
}

void TorchGraph::setParameterValues(const std::map<std::string, Tensor>& values)
{
    torch::NoGradGuard noGrad;
    for (const auto& [name, value] : values)
        parameters_.at(name).copy_(toTorch(value));
}

void TorchGraph::learnActivationScales(const std::map<std::string, UniformQuant>& initial)
{
    for (const auto& [name, q] : initial)
        learned_[name] = LearnedQuantizer{torch::full({1}, std::log(q.scale), torch::kFloat32).set_requires_grad(true),
                                          torch::full({1}, float(q.zeroPoint), torch::kFloat32), q};
}

std::vector<torch::Tensor> TorchGraph::scaleParameters() const
{
    std::vector<torch::Tensor> result;
    for (const auto& [name, q] : learned_)
        result.push_back(q.logScale);
    for (const auto& [name, w] : learnedWeights_)
        result.push_back(w.logScale);
    return result;
}

std::map<std::string, UniformQuant> TorchGraph::learnedQuantizers() const
{
    std::map<std::string, UniformQuant> result;
    for (const auto& [name, q] : learned_) {
        UniformQuant value = q.initial;
        value.scale = q.logScale.exp().item<float>();
        result[name] = value;
    }
    return result;
}

torch::Tensor TorchGraph::forward(const torch::Tensor& input, const TrainingJob* quant, bool logits) const
{
    std::map<std::string, torch::Tensor> values;
    for (const auto& [name, tensor] : constants_)
        values[name] = tensor;
    for (const auto& [name, tensor] : parameters_)
        values[name] = tensor;
    // Layers training their BatchNormalization: the weights quantized are those folded with the
    // running statistics; the normalization by the batch's statistics follows the layer's output.
    std::set<std::string> normalizedBiases;
    for (const auto& [node, bn] : batchNorms_) {
        torch::Tensor& w = values.at(bn.weight);
        w = w * alongAxis(foldFactor(bn), w.dim(), 0);
        normalizedBiases.insert(bn.bias);
    }
    if (quant)  // biases first: their steps come from the float weights' scales
        for (const auto& [bias, weights] : quant->quantizedBiases) {
            if (normalizedBiases.count(bias))
                continue;  // the batch's mean removes it; it is quantized once the statistics freeze
            torch::Tensor& b = values.at(bias);
            // Learned weight steps: the clipped weights, whose min-max step is the learned one.
            const auto learned = learnedWeights_.find(weights);
            const torch::Tensor& w = values.at(weights);
            const Tensor stepsFrom = fromTorch(learned == learnedWeights_.end() ? w : clippedWeights(learned->second, w));
            b = straightThrough(b, toTorch(quant->quantizeBias(bias, fromTorch(b), stepsFrom)));
        }
    if (quant)
        for (const std::string& name : quant->quantizedWeights) {
            torch::Tensor& weights = values.at(name);
            if (const auto learned = learnedWeights_.find(name); learned != learnedWeights_.end()) {
                // LSQ: the gradient reaches the step too, scaled by 1 / sqrt(weights * Qp).
                const LearnedWeightScale& l = learned->second;
                const torch::Tensor step = effectiveWeightScale(l, weights);
                // N: the weights one step quantizes (a channel's, per channel).
                const double perStep = double(weights.numel()) / double(l.spec.perChannel ? weights.size(l.spec.channelAxis) : 1);
                const double gradFactor = 1.0 / std::sqrt(perStep * l.spec.qmax);
                weights = l.spec.perChannel
                              ? torch::_fake_quantize_learnable_per_channel_affine(weights, step, l.zeroPoint, l.spec.channelAxis,
                                                                                    -l.spec.qmax, l.spec.qmax, gradFactor)
                              : torch::_fake_quantize_learnable_per_tensor_affine(weights, step, l.zeroPoint, -l.spec.qmax,
                                                                                   l.spec.qmax, gradFactor);
                continue;
            }
            weights = straightThrough(weights, toTorch(quant->quantizeWeights(name, fromTorch(weights))));
        }
    auto quantizeActivation = [&](const std::string& name, torch::Tensor& value) {
        if (!quant)
            return;
        if (const auto it = learned_.find(name); it != learned_.end()) {
            // LSQ's gradient scale 1 / sqrt(N * Qp), N the values of one image (Esser et al., 2020,
            // section 2.2): the step's gradient then stays in proportion to the weights'.
            const double perImage = double(value.numel()) / double(std::max<std::int64_t>(1, value.size(0)));
            const double gradFactor = 1.0 / std::sqrt(perImage * std::max(1, it->second.initial.qmax));
            value = torch::_fake_quantize_learnable_per_tensor_affine(value, it->second.logScale.exp(), it->second.zeroPoint,
                                                                       it->second.initial.qmin, it->second.initial.qmax, gradFactor);
        } else if (const auto it = quant->staticActivations.find(name); it != quant->staticActivations.end()) {
            value = fakeQuantizeActivation(value, it->second);
        } else if (quant->dynamicActivations.count(name)) {
            const torch::Tensor detached = value.detach();
            const UniformQuant q = quant->dynamicQuant(name, detached.min().item<float>(), detached.max().item<float>());
            value = fakeQuantizeActivation(value, q);
        }
    };
    const std::string inputName = graph_.inputs.at(0).name;
    values[inputName] = input;
    quantizeActivation(inputName, values[inputName]);

    const std::string& outputName = graph_.outputs.at(0).name;
    for (const Node& node : graph_.nodes) {
        const OpInputs inputs(node, graph_, values);
        if (logits && node.opType == "Softmax" && node.outputs.size() == 1 && node.outputs[0] == outputName)
            return inputs[0];
        Outputs outputs;
        try {
            outputs = findOperator(node)(node, inputs, graph_);
        } catch (const std::exception& e) {
            throw Error("node '" + node.name + "' (" + node.opType + "): " + e.what());
        }
        if (const auto bn = batchNorms_.find(node.name); bn != batchNorms_.end() && !outputs.empty())
            outputs[0] = normalizeWithBatch(outputs[0], values.at(bn->second.bias), bn->second);
        for (std::size_t i = 0; i < outputs.size() && i < node.outputs.size(); ++i) {
            quantizeActivation(node.outputs[i], outputs[i]);
            values[node.outputs[i]] = std::move(outputs[i]);
        }
    }
    return values.at(outputName);
}

}  // namespace qe
