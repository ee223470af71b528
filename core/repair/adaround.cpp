// AdaRound on libtorch tensors (float32, CPU). The only file of the project that includes torch:
// its headers are slow to compile and stay out of every header. Torch unfolds the inputs
// (constant_pad_nd + im2col), draws the random numbers, and runs Adam; the step's arithmetic runs
// on the tensors' memory in Eigen (below).
//
// The layer becomes G independent matrix products (G = the Conv's groups, 1 for Gemm/MatMul):
//     Y_g [rows, Mg] = X_g [rows, Kg] * W_g^T [Kg, Mg] + b_g
// X holds unfolded inputs (im2col with the layer's pads, strides and dilations), so one row is one
// output position of one image; the rows are shuffled once and a step's batch is a window of
// them at a random offset. The gradient is written out by hand (no autograd graph per step):
//     loss  = 1/B sum_rows,channels (act(Y) - act(T))^2 + lambda sum(1 - |2h - 1|^beta)
//     dY    = 2/B (act(Y) - act(T)) * [lo < Y < hi]            (act = the fused clamp, if any)
//     dW_g  = dY_g^T X_g
//     dh    = s dW [code not clamped] - lambda beta |2h - 1|^(beta - 1) sign(2h - 1) 2
//     dV    = dh (zeta - gamma) sigmoid(V) (1 - sigmoid(V)) [0 < h_unclamped < 1]
// Why not torch's operators for the step: Debian's libtorch multiplies through whatever
// libblas.so.3 is installed, the reference BLAS by default (5 GFLOP/s measured on a
// [1024 x 288] x [288 x 64] product, several times below Eigen), and each of the step's ~20
// element-wise operators would be one pass over the weights with a temporary; as fused Eigen
// expressions they are one pass each for the forward and the backward step.

#include "repair/adaround.h"

#include "common/error.h"
#include "engine/executor.h"
#include "engine/operator.h"
#include "model/operator_traits.h"
#include "model/window.h"
#include "quant/simulator.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/optim/adam.h>

#include <Eigen/Core>

#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <optional>
#include <random>
#include <string>

namespace qe {
namespace {

// The rectified sigmoid's stretch (Louizos et al., as the paper uses it).
constexpr float kZeta = 1.1f, kGamma = -0.1f;

using Clock = std::chrono::steady_clock;
double msSince(Clock::time_point start) { return std::chrono::duration<double, std::milli>(Clock::now() - start).count(); }

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const RowMatrix>;
using Map = Eigen::Map<RowMatrix>;

// A qe::Tensor's float32 values as a torch tensor that shares its memory (read only by us).
at::Tensor borrow(const Tensor& t)
{
    std::vector<std::int64_t> sizes(t.shape().begin(), t.shape().end());
    return at::from_blob(const_cast<float*>(t.data<float>()), sizes, at::TensorOptions().dtype(at::kFloat));
}

// Restores torch's thread count when AdaRound returns, so the caller's OpenMP regions (which
// share libgomp's setting with torch) keep theirs.
class TorchThreads {
public:
    explicit TorchThreads(int threads) : previous_(at::get_num_threads())
    {
        if (threads > 0)
            at::set_num_threads(threads);
    }
    ~TorchThreads() { at::set_num_threads(previous_); }
    TorchThreads(const TorchThreads&) = delete;
    TorchThreads& operator=(const TorchThreads&) = delete;

private:
    int previous_;
};

// The layer as G matrix products, with the rows it is optimised on, in random order: a step's
// batch is a window at a random offset, a view rather than a gather. A row holds all groups'
// reductions side by side ([G, Kg], as im2col lays them out), and the products read each
// group's columns with a stride; a depthwise layer's rows (Mg = 1) are transposed to [Kg, G] so
// that each tap is a contiguous vector over the channels.
struct Problem {
    std::int64_t groups = 1, outputsPerGroup = 0, reduction = 0, rows = 0, rowsPerStep = 0;
    at::Tensor inputs;   // [rows, G * Kg], depthwise [rows, Kg * G]
    at::Tensor targets;  // [rows, G * Mg], through the fused activation when reconstructing after it
    at::Tensor bias;     // [G * Mg]
    std::optional<std::pair<float, float>> activation;  // the fused clamp's bounds
    bool weightsTransposed = false;  // the model stores [K, M] (Gemm without transB, MatMul)
};

using StridedMap = Eigen::Map<RowMatrix, 0, Eigen::OuterStride<>>;
using ConstStridedMap = Eigen::Map<const RowMatrix, 0, Eigen::OuterStride<>>;
using ArrayMap = Eigen::Map<Eigen::ArrayXf>;
using ConstArrayMap = Eigen::Map<const Eigen::ArrayXf>;

// Below this many multiply-adds a second thread costs more than it saves (as in
// engine/ops/parallel_gemm.h), and on a busy machine a parallel region can wait milliseconds
// for a descheduled thread.
constexpr std::int64_t kParallelWork = 4'000'000;

// Row blocks for the threads: [begin, end) of block `b` of `blocks`.
std::pair<std::int64_t, std::int64_t> rowBlock(std::int64_t rows, int b, int blocks)
{
    return {rows * b / blocks, rows * (b + 1) / blocks};
}

int blocksFor(std::int64_t work, int threads) { return work >= kParallelWork ? std::max(1, threads) : 1; }

// Y = X W^T + b for each group: x [rows, G * Kg], w [G, Mg, Kg], into `out` [rows, G * Mg].
// A depthwise layer (Mg = 1) streams through the rows once, every group at a time; other layers
// multiply each group's (strided) columns. Rows are split among the threads.
void multiply(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias, at::Tensor& out, int threads)
{
    const std::int64_t groups = w.size(0), m = w.size(1), k = w.size(2), rows = x.size(0);
    const float* px = x.data_ptr<float>();
    const float* pw = w.data_ptr<float>();
    const float* pb = bias.data_ptr<float>();
    float* py = out.data_ptr<float>();
    const int blocks = blocksFor(rows * groups * m * k, threads);
#pragma omp parallel for schedule(static) num_threads(blocks) if (blocks > 1)
    for (int block = 0; block < blocks; ++block) {
        const auto [begin, end] = rowBlock(rows, block, blocks);
        if (m == 1 && groups > 1) {  // depthwise: rows are [Kg, G], so each tap is a vector over the channels
            const RowMatrix taps = ConstMap(pw, groups, k).transpose();
            for (std::int64_t r = begin; r < end; ++r) {
                Eigen::Map<Eigen::ArrayXf> yr(py + r * groups, groups);
                yr = Eigen::Map<const Eigen::ArrayXf>(pb, groups);
                for (std::int64_t tap = 0; tap < k; ++tap)
                    yr += Eigen::Map<const Eigen::ArrayXf>(px + (r * k + tap) * groups, groups) * taps.row(tap).transpose().array();
            }
            continue;
        }
        for (std::int64_t g = 0; g < groups; ++g) {
            ConstStridedMap xg(px + begin * groups * k + g * k, end - begin, k, Eigen::OuterStride<>(groups * k));
            StridedMap yg(py + begin * groups * m + g * m, end - begin, m, Eigen::OuterStride<>(groups * m));
            yg.noalias() = xg * ConstMap(pw + g * m * k, m, k).transpose();
        }
        Map(py + begin * groups * m, end - begin, groups * m).rowwise() += ConstMap(pb, 1, groups * m).row(0);
    }
}

// dW = dY^T X for each group, into `out` [G, Mg, Kg]: each thread sums its rows' share into
// `partial` [threads, G, Mg, Kg], then the shares are added.
void weightGradient(const at::Tensor& dy, const at::Tensor& x, at::Tensor& partial, at::Tensor& out, int threads)
{
    const std::int64_t groups = out.size(0), m = out.size(1), k = out.size(2), rows = x.size(0);
    const float* pdy = dy.data_ptr<float>();
    const float* px = x.data_ptr<float>();
    const int blocks = std::min<int>(blocksFor(rows * groups * m * k, threads), static_cast<int>(partial.size(0)));
#pragma omp parallel for schedule(static) num_threads(blocks) if (blocks > 1)
    for (int block = 0; block < blocks; ++block) {
        const auto [begin, end] = rowBlock(rows, block, blocks);
        float* pw = (blocks == 1 ? out : partial[block]).data_ptr<float>();
        if (m == 1 && groups > 1) {  // depthwise: rows are [Kg, G]
            RowMatrix taps = RowMatrix::Zero(k, groups);
            for (std::int64_t r = begin; r < end; ++r) {
                const Eigen::Map<const Eigen::ArrayXf> dyr(pdy + r * groups, groups);
                for (std::int64_t tap = 0; tap < k; ++tap)
                    taps.row(tap).transpose().array() += dyr * Eigen::Map<const Eigen::ArrayXf>(px + (r * k + tap) * groups, groups);
            }
            Map(pw, groups, k) = taps.transpose();
            continue;
        }
        for (std::int64_t g = 0; g < groups; ++g) {
            ConstStridedMap dyg(pdy + begin * groups * m + g * m, end - begin, m, Eigen::OuterStride<>(groups * m));
            ConstStridedMap xg(px + begin * groups * k + g * k, end - begin, k, Eigen::OuterStride<>(groups * k));
            Map(pw + g * m * k, m, k).noalias() = dyg.transpose() * xg;
        }
    }
    if (blocks > 1)
        at::sum_out(out, partial.narrow(0, 0, blocks), {0});
}

// Mean over rows of the squared error summed over output channels: the loss's first term.
double reconstructionError(const Problem& p, const at::Tensor& weights)
{
    at::Tensor y = at::empty({p.rows, p.groups * p.outputsPerGroup}, at::kFloat);
    multiply(p.inputs, weights, p.bias, y, at::get_num_threads());
    if (p.activation)
        y.clamp_(p.activation->first, p.activation->second);
    return (y - p.targets).pow(2).sum().item<double>() / static_cast<double>(p.rows);
}

std::string describeShape(const Tensor& t) { return shapeToString(t.shape()); }

// The fused Relu/Clip's bounds: the activation node run on the extremes of float (as
// fusedCodeRange finds its code range); nullopt without one, or when a bound is computed.
std::optional<std::pair<float, float>> fusedBounds(const Graph& graph, const QuantLayer& layer)
{
    if (layer.outputNodeIndex == layer.nodeIndex || layer.outputNodeIndex < 0)
        return std::nullopt;
    const Node& activation = graph.nodes.at(static_cast<std::size_t>(layer.outputNodeIndex));
    const Tensor extremes = Tensor::fromValues<float>({2}, std::vector<float>{-FLT_MAX, FLT_MAX});
    std::vector<const Tensor*> in{&extremes};
    for (std::size_t i = 1; i < activation.inputs.size(); ++i) {
        const std::string& name = activation.inputs[i];
        if (!name.empty() && !graph.isInitializer(name))
            return std::nullopt;
        in.push_back(name.empty() ? nullptr : &graph.initializers.at(name));
    }
    const Tensor ends = runNode(activation, graph.opsetVersion, in).at(0);
    return std::pair{ends.data<float>()[0], ends.data<float>()[1]};
}

// Conv: unfolds each image (padding first, so asymmetric and auto_pad pads work) and keeps at
// most `maxPositions` random output positions of it; the targets at the same positions.
void unfoldConvolution(const Node& node, const std::string& name, const Tensor& weights, const Tensor& inputs,
                       const Tensor& targets, int maxPositions, at::Generator& generator, Problem& p)
{
    if (inputs.rank() != 4 && inputs.rank() != 3)
        throw Error("layer '" + name + "': AdaRound expects its input as N x C x H x W (or N x C x W), got " + describeShape(inputs));
    if (weights.rank() != inputs.rank())
        throw Error("layer '" + name + "': weights " + describeShape(weights) + " do not match an input of rank " +
                    std::to_string(inputs.rank()));
    const int spatial = inputs.rank() - 2;
    const std::int64_t n = inputs.dim(0), channels = inputs.dim(1);
    const std::int64_t inH = spatial == 2 ? inputs.dim(2) : 1, inW = inputs.dim(inputs.rank() - 1);
    const std::int64_t kernelH = spatial == 2 ? weights.dim(2) : 1, kernelW = weights.dim(weights.rank() - 1);
    const std::int64_t groups = node.intAttribute("group", 1), outputs = weights.dim(0);
    if (groups < 1 || channels != weights.dim(1) * groups || outputs % groups != 0)
        throw Error("layer '" + name + "': an input of " + std::to_string(channels) + " channels does not fit weights " +
                    describeShape(weights) + " in " + std::to_string(groups) + " groups");
    Window2D w;
    try {
        w = makeWindow(node, spatial, inH, inW, kernelH, kernelW, false);
    } catch (const Error& e) {
        throw Error("layer '" + name + "': " + e.what());
    }
    const Shape expected = spatial == 2 ? Shape{n, outputs, w.outH, w.outW} : Shape{n, outputs, w.outW};
    if (targets.shape() != expected)
        throw Error("layer '" + name + "': its float outputs should be " + shapeToString(expected) + " for an input of " +
                    describeShape(inputs) + ", got " + describeShape(targets));

    const std::int64_t positions = w.outH * w.outW, kept = std::min<std::int64_t>(positions, maxPositions);
    const std::int64_t unfoldedWidth = channels * kernelH * kernelW;
    const at::Tensor x = borrow(inputs).reshape({n, channels, inH, inW});
    const at::Tensor y = borrow(targets).reshape({n, outputs, positions});
    at::Tensor rows = at::empty({n, kept, unfoldedWidth}, at::kFloat);
    at::Tensor rowTargets = at::empty({n, kept, outputs}, at::kFloat);
    for (std::int64_t i = 0; i < n; ++i) {
        const at::Tensor padded = at::constant_pad_nd(x.narrow(0, i, 1), {w.padLeft, w.padRight, w.padTop, w.padBottom}, 0);
        const at::Tensor columns = at::im2col(padded, {kernelH, kernelW}, {w.dilationH, w.dilationW}, {0, 0},
                                              {w.strideH, w.strideW})[0];  // [C * kh * kw, positions]
        const at::Tensor picked = kept == positions ? at::arange(positions, at::kLong)
                                                    : at::randperm(positions, generator, at::kLong).narrow(0, 0, kept);
        rows[i].copy_(columns.index_select(1, picked).t());
        rowTargets[i].copy_(y[i].index_select(1, picked).t());
    }
    p.groups = groups;
    p.outputsPerGroup = outputs / groups;
    p.reduction = unfoldedWidth / groups;  // im2col's columns are (channel, ky, kx), so each group's are contiguous
    p.rows = n * kept;
    p.inputs = rows.reshape({p.rows, unfoldedWidth});
    p.targets = rowTargets.reshape({p.rows, outputs});
}

// Gemm/MatMul: every leading index of the input is a row.
void rowsOfMatrixProduct(const Node& node, const std::string& name, const Tensor& weights, const Tensor& inputs,
                         const Tensor& targets, Problem& p)
{
    if (weights.rank() != 2)
        throw Error("layer '" + name + "': AdaRound takes matrix weights, got " + describeShape(weights));
    const bool gemm = node.opType == "Gemm";
    if (gemm && (node.intAttribute("transA", 0) != 0 || node.floatAttribute("alpha", 1.f) != 1.f ||
                 node.floatAttribute("beta", 1.f) != 1.f))
        throw Error("layer '" + name + "': AdaRound takes a Gemm without transA, alpha or beta");
    p.weightsTransposed = !(gemm && node.intAttribute("transB", 0) != 0);
    const std::int64_t reduction = weights.dim(p.weightsTransposed ? 0 : 1), outputs = weights.dim(p.weightsTransposed ? 1 : 0);
    if (inputs.rank() < 2 || inputs.dim(inputs.rank() - 1) != reduction)
        throw Error("layer '" + name + "': its input should end in " + std::to_string(reduction) + " values (weights " +
                    describeShape(weights) + "), got " + describeShape(inputs));
    Shape expected = inputs.shape();
    expected.back() = outputs;
    if (targets.shape() != expected)
        throw Error("layer '" + name + "': its float outputs should be " + shapeToString(expected) + " for an input of " +
                    describeShape(inputs) + ", got " + describeShape(targets));
    p.groups = 1;
    p.outputsPerGroup = outputs;
    p.reduction = reduction;
    p.rows = inputs.size() / reduction;
    p.inputs = borrow(inputs).reshape({p.rows, reduction}).clone();
    p.targets = borrow(targets).reshape({p.rows, outputs}).clone();
}

// The weights as [G, Mg, Kg], output channel m = g * Mg + j.
at::Tensor weightMatrices(const Problem& p, const Tensor& weights)
{
    at::Tensor w = borrow(weights);
    if (p.weightsTransposed)
        w = w.t();
    return w.reshape({p.groups, p.outputsPerGroup, p.reduction}).contiguous();
}

// Back to the model's layout, from [G, Mg, Kg].
at::Tensor modelLayout(const Problem& p, const at::Tensor& matrices, const Tensor& weights)
{
    at::Tensor w = matrices.reshape({p.groups * p.outputsPerGroup, p.reduction});
    if (p.weightsTransposed)
        w = w.t();
    std::vector<std::int64_t> sizes(weights.shape().begin(), weights.shape().end());
    return w.contiguous().reshape(sizes);
}

void checkParams(const std::string& name, const QuantParams& params, std::int64_t outputs)
{
    const SchemeTraits& traits = schemeTraits(params.scheme);
    if (traits.family != SchemeFamily::Uniform || !std::holds_alternative<UniformParams>(params.values))
        throw Error("layer '" + name + "': AdaRound chooses between the two nearest levels of a uniform grid, so it needs "
                    "affine, symmetric or power-of-two weights, not '" + std::string(traits.name) + "'");
    if (params.granularity == Granularity::PerGroup)
        throw Error("layer '" + name + "': AdaRound takes per-tensor or per-channel weight parameters, not per-group");
    const UniformParams& u = params.uniform();
    const auto blocks = static_cast<std::int64_t>(u.scale.size());
    if ((blocks != 1 && blocks != outputs) || u.zeroPoint.size() != u.scale.size())
        throw Error("layer '" + name + "': expected 1 or " + std::to_string(outputs) + " weight scales with as many zero-points, got " +
                    std::to_string(blocks) + " scales and " + std::to_string(u.zeroPoint.size()) + " zero-points");
    for (float s : u.scale)
        if (!(s > 0.f) || !std::isfinite(1.f / s))
            throw Error("layer '" + name + "': weight scales must be positive and finite, got " + std::to_string(s));
}

void checkOptions(const std::string& name, const AdaRoundOptions& o)
{
    auto fail = [&](const std::string& what) { throw Error("layer '" + name + "': AdaRound needs " + what); };
    if (o.iterations < 1)
        fail("at least 1 iteration, got " + std::to_string(o.iterations));
    if (o.batchSize < 1 || o.positionsPerImage < 1 || o.maxPositionsPerImage < 1)
        fail("a batch size and positions per image of at least 1, got " + std::to_string(o.batchSize) + ", " +
             std::to_string(o.positionsPerImage) + " and " + std::to_string(o.maxPositionsPerImage));
    if (!(o.warmup >= 0.f && o.warmup < 1.f))
        fail("a warm-up fraction in [0, 1), got " + std::to_string(o.warmup));
    if (!(o.learningRate > 0.f) || !(o.regularization >= 0.f) || !(o.betaStart >= o.betaEnd && o.betaEnd > 0.f))
        fail("a positive learning rate, a non-negative regularisation and beta annealing downwards to a positive value");
}

// The rows in random order, once, so that a window of them is a random batch; a depthwise
// layer's rows tap-major (see Problem).
void shuffleRows(Problem& p, at::Generator& generator)
{
    const at::Tensor order = at::randperm(p.rows, generator, at::kLong);
    p.inputs = p.inputs.index_select(0, order);
    p.targets = p.targets.index_select(0, order);
    if (p.outputsPerGroup == 1 && p.groups > 1)
        p.inputs = p.inputs.reshape({p.rows, p.groups, p.reduction}).transpose(1, 2).contiguous().reshape({p.rows, p.groups * p.reduction});
}

// The regulariser's exponent at `iteration` of the annealing phase: cosine from betaStart to betaEnd.
float annealedBeta(const AdaRoundOptions& o, int iteration, int warmupIterations)
{
    const double progress = double(iteration - warmupIterations) / double(std::max(1, o.iterations - warmupIterations));
    return static_cast<float>(o.betaEnd + 0.5 * (o.betaStart - o.betaEnd) * (1 + std::cos(progress * M_PI)));
}

}  // namespace

AdaRoundResult adaRound(const Graph& graph, const QuantLayer& layer, const QuantParams& weightParams, const Tensor& inputs,
                        const Tensor& targets, const AdaRoundOptions& options)
{
    const Clock::time_point start = Clock::now();
    const std::string& name = layer.name;
    if (layer.nodeIndex < 0 || layer.weight.empty())
        throw Error("layer '" + name + "': AdaRound needs a layer with weights (Conv, Gemm or MatMul)");
    const Node& node = graph.nodes.at(static_cast<std::size_t>(layer.nodeIndex));
    const IntegerFamily family = operatorTraits(node.name, node.opType).integer;
    if (family != IntegerFamily::Convolution && family != IntegerFamily::MatrixProduct)
        throw Error("layer '" + name + "': AdaRound takes a Conv, Gemm or MatMul layer, not " + node.opType);
    const Tensor& weights = graph.initializers.at(layer.weight);
    if (weights.dtype() != DataType::Float32 || inputs.dtype() != DataType::Float32 || targets.dtype() != DataType::Float32)
        throw Error("layer '" + name + "': AdaRound takes float32 weights, inputs and outputs");
    if (inputs.empty() || inputs.size() == 0)
        throw Error("layer '" + name + "': AdaRound needs input samples, got none");
    checkOptions(name, options);
    const std::int64_t outputs = weights.dim(family == IntegerFamily::Convolution ? 0 : layer.weightChannelAxis);
    checkParams(name, weightParams, outputs);

    TorchThreads torchThreads(options.threads);
    at::NoGradGuard noGradients;
    at::Generator generator = at::detail::createCPUGenerator(options.seed);

    Problem p;
    if (family == IntegerFamily::Convolution)
        unfoldConvolution(node, name, weights, inputs, targets, options.maxPositionsPerImage, generator, p);
    else
        rowsOfMatrixProduct(node, name, weights, inputs, targets, p);
    shuffleRows(p, generator);
    const std::int64_t rowsPerImage = p.rows / inputs.dim(0);
    p.rowsPerStep = std::min<std::int64_t>(p.rows, options.batchSize * std::min<std::int64_t>(options.positionsPerImage, rowsPerImage));
    p.bias = at::zeros({outputs}, at::kFloat);
    if (!layer.bias.empty()) {
        const Tensor& bias = graph.initializers.at(layer.bias);
        if (bias.dtype() != DataType::Float32 || bias.size() != outputs)
            throw Error("layer '" + name + "': expected a float32 bias of " + std::to_string(outputs) + " values, got " +
                        bias.describe());
        p.bias.copy_(borrow(bias).reshape({outputs}));
    }
    if (options.throughFusedActivation)
        p.activation = fusedBounds(graph, layer);
    if (p.activation)
        p.targets.clamp_(p.activation->first, p.activation->second);

    // The rounding problem: each weight's two neighbouring codes, per output channel's scale.
    const UniformParams& u = weightParams.uniform();
    at::Tensor scale = at::empty({outputs}, at::kFloat), zeroPoint = at::empty({outputs}, at::kFloat);
    for (std::int64_t m = 0; m < outputs; ++m) {
        const std::size_t block = u.scale.size() == 1 ? 0 : static_cast<std::size_t>(m);
        scale[m] = u.scale[block];
        zeroPoint[m] = static_cast<float>(u.zeroPoint[block]);
    }
    const at::Tensor floatWeights = weightMatrices(p, weights);
    // Per weight (the step's loops are flat over all weights): its channel's scale and zero-point.
    scale = scale.reshape({p.groups, p.outputsPerGroup, 1}).expand_as(floatWeights).contiguous();
    zeroPoint = zeroPoint.reshape({p.groups, p.outputsPerGroup, 1}).expand_as(floatWeights).contiguous();
    const float qmin = static_cast<float>(weightParams.qmin), qmax = static_cast<float>(weightParams.qmax);
    // x * (1/s), as fakeQuantize computes it, so that nearest rounding here is fakeQuantize's.
    const at::Tensor ratio = floatWeights * scale.reciprocal();
    const at::Tensor lower = ratio.floor() + zeroPoint;  // the code below (or at) each weight
    // Weights whose both neighbours are codes; the others are clamped either way and stay fixed.
    const at::Tensor movable = ((lower >= qmin) & (lower + 1 <= qmax)).to(at::kFloat);
    auto weightsFor = [&](const at::Tensor& up) { return scale * ((lower + up).clamp(qmin, qmax) - zeroPoint); };

    // h(V) = frac(w/s) at the start: V = -log((zeta - gamma) / (frac - gamma) - 1).
    const at::Tensor fraction = ratio - ratio.floor();
    at::Tensor v = -at::log((kZeta - kGamma) / (fraction - kGamma) - 1);
    v.set_requires_grad(true);
    v.mutable_grad() = at::zeros_like(v);  // written in place by each step
    torch::optim::Adam adam(std::vector<at::Tensor>{v}, torch::optim::AdamOptions(options.learningRate));

    AdaRoundStatistics stats;
    stats.rows = p.rows;
    stats.rowsPerStep = p.rowsPerStep;
    stats.floatError = reconstructionError(p, floatWeights);
    stats.nearestError = reconstructionError(p, weightsFor(ratio.round() + zeroPoint - lower));

    // Buffers reused by every step.
    const int threads = at::get_num_threads();
    const std::int64_t batch = p.rowsPerStep, count = v.numel();
    std::mt19937_64 offsets(options.seed);
    std::uniform_int_distribution<std::int64_t> offset(0, p.rows - batch);
    at::Tensor y = at::empty({batch, outputs}, at::kFloat);
    at::Tensor dy = at::empty({batch, outputs}, at::kFloat);
    at::Tensor soft = at::empty_like(floatWeights), sigmoid = at::empty_like(floatWeights);
    at::Tensor weightGrad = at::empty_like(floatWeights);
    at::Tensor partialGrads = at::empty({threads, p.groups, p.outputsPerGroup, p.reduction}, at::kFloat);
    // The per-weight arithmetic runs as fused Eigen array expressions (one pass over the weights
    // each, instead of a torch operator and a temporary per term).
    const ConstArrayMap S(scale.data_ptr<float>(), count), Z(zeroPoint.data_ptr<float>(), count),
        L(lower.data_ptr<float>(), count), movableMask(movable.data_ptr<float>(), count);
    const ConstArrayMap V(v.data_ptr<float>(), count), dW(weightGrad.data_ptr<float>(), count);
    ArrayMap soft_(soft.data_ptr<float>(), count), sig(sigmoid.data_ptr<float>(), count), dV(v.mutable_grad().data_ptr<float>(), count);
    const int warmupIterations = static_cast<int>(std::lround(options.warmup * options.iterations));
    const float reconstructionScale = 2.f / static_cast<float>(batch);
    const float lo = p.activation ? p.activation->first : -FLT_MAX, hi = p.activation ? p.activation->second : FLT_MAX;
    const ConstArrayMap Y(y.data_ptr<float>(), y.numel());
    ArrayMap dY(dy.data_ptr<float>(), dy.numel());
    stats.setupMs = msSince(start);

    for (int iteration = 0; iteration < options.iterations; ++iteration) {
        if (options.cancel && options.cancel->load(std::memory_order_relaxed))
            throw Cancelled();
        Clock::time_point phase = Clock::now();
        const std::int64_t first = offset(offsets);
        const at::Tensor x = p.inputs.narrow(0, first, batch);
        const ConstArrayMap T(p.targets.data_ptr<float>() + first * outputs, batch * outputs);
        sig = (1.f + (-V).exp()).inverse();
        soft_ = S * ((L + (sig * (kZeta - kGamma) + kGamma).max(0.f).min(1.f)).max(qmin).min(qmax) - Z);
        multiply(x, soft, p.bias, y, threads);
        stats.forwardMs += msSince(phase);

        phase = Clock::now();
        // The targets are already through the clamp; where the clamp cuts Y, no gradient passes.
        // Masks are written as ceil(clamp(a, 0, 1)), 1 where a > 0 and else 0, rather than as
        // comparisons: Eigen vectorises the whole expression only when every term has a packet form.
        dY = (Y.max(lo).min(hi) - T) * reconstructionScale * (Y - lo).max(0.f).min(1.f).ceil() * (hi - Y).max(0.f).min(1.f).ceil();
        weightGradient(dy, x, partialGrads, weightGrad, threads);
        const auto stretched = sig * (kZeta - kGamma) + kGamma;
        const auto chain = (kZeta - kGamma) * sig * (1.f - sig) * stretched.max(0.f).min(1.f).ceil() * (1.f - stretched).max(0.f).min(1.f).ceil();
        if (iteration >= warmupIterations && options.regularization > 0.f) {
            // d/dh of lambda (1 - |2h - 1|^beta) = -2 lambda beta |2h - 1|^(beta - 1) sign(2h - 1)
            //                                    = -2 lambda beta c |c|^(beta - 2), c = 2h - 1;
            // the tiny offset makes 0^0 (beta = 2 at the end) 1 instead of NaN.
            const float beta = annealedBeta(options, iteration, warmupIterations);
            const auto centred = 2.f * stretched.max(0.f).min(1.f) - 1.f;
            dV = (dW * S * movableMask - (2.f * options.regularization * beta) * centred * ((beta - 2.f) * (centred.abs() + 1e-30f).log()).exp()) * chain;
        } else {
            dV = dW * S * movableMask * chain;
        }
        stats.backwardMs += msSince(phase);

        phase = Clock::now();
        adam.step();
        stats.adamMs += msSince(phase);
        stats.iterations = iteration + 1;
        if (options.progress && (iteration + 1) % 500 == 0)
            options.progress(iteration + 1, options.iterations);
    }

    // Round up where h(V) >= 0.5.
    const at::Tensor up = (v.detach().sigmoid() * (kZeta - kGamma) + kGamma).clamp(0, 1).ge(0.5f).to(at::kFloat);
    const at::Tensor rounded = weightsFor(up);
    stats.adaRoundError = reconstructionError(p, rounded);
    const at::Tensor codes = (lower + up).clamp(qmin, qmax);
    const at::Tensor nearestCodes = (ratio.round() + zeroPoint).clamp(qmin, qmax);
    stats.flippedFraction = codes.ne(nearestCodes).sum().item<double>() / static_cast<double>(codes.numel());

    AdaRoundResult result;
    const at::Tensor codesInModelLayout = modelLayout(p, codes, weights).to(at::kInt);
    result.codes.assign(codesInModelLayout.data_ptr<std::int32_t>(), codesInModelLayout.data_ptr<std::int32_t>() + codesInModelLayout.numel());
    result.weights = Tensor(DataType::Float32, weights.shape());
    const at::Tensor roundedInModelLayout = modelLayout(p, rounded, weights);
    std::copy_n(roundedInModelLayout.data_ptr<float>(), roundedInModelLayout.numel(), result.weights.mutableData<float>());
    if (options.progress)
        options.progress(options.iterations, options.iterations);
    stats.totalMs = msSince(start);
    result.statistics = stats;
    return result;
}

}  // namespace qe
