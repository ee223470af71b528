// AdaRound in plain C++ and Eigen (float32, CPU). It needs no more than an unfold (im2col), a
// shuffle, matrix products and Adam, so it does not load libtorch: linking libtorch_cpu made every
// executable that can reach repair() pay about 0.8 s and 100 MB at start-up (bench/README.md).
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
// The per-weight arithmetic is fused Eigen array expressions: one pass over the weights each for
// the forward and the backward step, and one for Adam.

#include "repair/adaround.h"

#include "common/error.h"
#include "engine/executor.h"
#include "engine/operator.h"
#include "model/operator_traits.h"
#include "model/window.h"
#include "quant/simulator.h"

#include <Eigen/Core>
#include <omp.h>

#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <numeric>
#include <optional>
#include <random>
#include <string>

namespace qe {
namespace {

// The rectified sigmoid's stretch (Louizos et al., as the paper uses it).
constexpr float kZeta = 1.1f, kGamma = -0.1f;
// Adam's defaults (Kingma and Ba, as torch.optim.Adam has them).
constexpr double kAdamBeta1 = 0.9, kAdamBeta2 = 0.999, kAdamEpsilon = 1e-8;

using Clock = std::chrono::steady_clock;
double msSince(Clock::time_point start) { return std::chrono::duration<double, std::milli>(Clock::now() - start).count(); }

using Floats = std::vector<float>;
using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const RowMatrix>;
using Map = Eigen::Map<RowMatrix>;
using StridedMap = Eigen::Map<RowMatrix, 0, Eigen::OuterStride<>>;
using ConstStridedMap = Eigen::Map<const RowMatrix, 0, Eigen::OuterStride<>>;
using ArrayMap = Eigen::Map<Eigen::ArrayXf>;
using ConstArrayMap = Eigen::Map<const Eigen::ArrayXf>;

// The layer as G matrix products, with the rows it is optimised on, in random order: a step's
// batch is a window at a random offset. A row holds all groups' reductions side by side ([G, Kg],
// as im2col lays them out), and the products read each group's columns with a stride; a depthwise
// layer's rows (Mg = 1) are transposed to [Kg, G] so that each tap is a contiguous vector over
// the channels.
struct Problem {
    std::int64_t groups = 1, outputsPerGroup = 0, reduction = 0, rows = 0, rowsPerStep = 0;
    Floats inputs;   // [rows, G * Kg], depthwise [rows, Kg * G]
    Floats targets;  // [rows, G * Mg], through the fused activation when reconstructing after it
    Floats bias;     // [G * Mg]
    std::optional<std::pair<float, float>> activation;  // the fused clamp's bounds
    bool weightsTransposed = false;  // the model stores [K, M] (Gemm without transB, MatMul)
    std::int64_t outputs() const { return groups * outputsPerGroup; }
    std::int64_t width() const { return groups * reduction; }
    bool depthwise() const { return outputsPerGroup == 1 && groups > 1; }
};

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

// Y = X W^T + b for each group: x [rows, G * Kg] (`rows` of them from `x`), w [G, Mg, Kg], into
// `y` [rows, G * Mg]. A depthwise layer streams through the rows once, every group at a time;
// other layers multiply each group's (strided) columns. Rows are split among the threads.
void multiply(const Problem& p, const float* x, std::int64_t rows, const float* w, float* y, int threads)
{
    const std::int64_t groups = p.groups, m = p.outputsPerGroup, k = p.reduction;
    const float* pb = p.bias.data();
    const int blocks = blocksFor(rows * groups * m * k, threads);
#pragma omp parallel for schedule(static) num_threads(blocks) if (blocks > 1)
    for (int block = 0; block < blocks; ++block) {
        const auto [begin, end] = rowBlock(rows, block, blocks);
        if (p.depthwise()) {  // rows are [Kg, G], so each tap is a vector over the channels
            const RowMatrix taps = ConstMap(w, groups, k).transpose();
            for (std::int64_t r = begin; r < end; ++r) {
                ArrayMap yr(y + r * groups, groups);
                yr = ConstArrayMap(pb, groups);
                for (std::int64_t tap = 0; tap < k; ++tap)
                    yr += ConstArrayMap(x + (r * k + tap) * groups, groups) * taps.row(tap).transpose().array();
            }
            continue;
        }
        for (std::int64_t g = 0; g < groups; ++g) {
            ConstStridedMap xg(x + begin * groups * k + g * k, end - begin, k, Eigen::OuterStride<>(groups * k));
            StridedMap yg(y + begin * groups * m + g * m, end - begin, m, Eigen::OuterStride<>(groups * m));
            yg.noalias() = xg * ConstMap(w + g * m * k, m, k).transpose();
        }
        Map(y + begin * groups * m, end - begin, groups * m).rowwise() += ConstMap(pb, 1, groups * m).row(0);
    }
}

// dW = dY^T X for each group, into `out` [G, Mg, Kg]: each thread sums its rows' share into its
// slice of `partial` [threads, G, Mg, Kg], then the shares are added.
void weightGradient(const Problem& p, const float* dy, const float* x, std::int64_t rows, Floats& partial, float* out, int threads)
{
    const std::int64_t groups = p.groups, m = p.outputsPerGroup, k = p.reduction, size = groups * m * k;
    const int blocks = blocksFor(rows * size, threads);
    partial.resize(std::size_t(blocks > 1 ? blocks * size : 0));
#pragma omp parallel for schedule(static) num_threads(blocks) if (blocks > 1)
    for (int block = 0; block < blocks; ++block) {
        const auto [begin, end] = rowBlock(rows, block, blocks);
        float* pw = blocks == 1 ? out : partial.data() + block * size;
        if (p.depthwise()) {  // rows are [Kg, G]
            RowMatrix taps = RowMatrix::Zero(k, groups);
            for (std::int64_t r = begin; r < end; ++r) {
                const ConstArrayMap dyr(dy + r * groups, groups);
                for (std::int64_t tap = 0; tap < k; ++tap)
                    taps.row(tap).transpose().array() += dyr * ConstArrayMap(x + (r * k + tap) * groups, groups);
            }
            Map(pw, groups, k) = taps.transpose();
            continue;
        }
        for (std::int64_t g = 0; g < groups; ++g) {
            ConstStridedMap dyg(dy + begin * groups * m + g * m, end - begin, m, Eigen::OuterStride<>(groups * m));
            ConstStridedMap xg(x + begin * groups * k + g * k, end - begin, k, Eigen::OuterStride<>(groups * k));
            Map(pw + g * m * k, m, k).noalias() = dyg.transpose() * xg;
        }
    }
    if (blocks > 1) {
        ArrayMap sum(out, size);
        sum = ConstArrayMap(partial.data(), size);
        for (int block = 1; block < blocks; ++block)
            sum += ConstArrayMap(partial.data() + block * size, size);
    }
}

// Mean over rows of the squared error summed over output channels: the loss's first term.
double reconstructionError(const Problem& p, const Eigen::ArrayXf& weights, int threads)
{
    Floats y(std::size_t(p.rows * p.outputs()));
    multiply(p, p.inputs.data(), p.rows, weights.data(), y.data(), threads);
    ArrayMap values(y.data(), Eigen::Index(y.size()));
    if (p.activation)
        values = values.max(p.activation->first).min(p.activation->second);
    return (values - ConstArrayMap(p.targets.data(), Eigen::Index(p.targets.size()))).cast<double>().square().sum() / double(p.rows);
}

std::string describeShape(const Tensor& t) { return shapeToString(t.shape()); }

// The fused Relu/Clip's bounds: the activation node run on the extremes of float (as
// fusedCodeRange finds its code range); nullopt without one, or when a bound is computed.
std::optional<std::pair<float, float>> fusedBounds(const Graph& graph, const QuantLayer& layer)
{
    if (layer.outputNodeIndex == layer.nodeIndex || layer.outputNodeIndex < 0)
        return std::nullopt;
    return activationBounds(graph, graph.nodes.at(static_cast<std::size_t>(layer.outputNodeIndex)), FLT_MAX);
}

// Conv: unfolds at most `maxPositions` random output positions of each image (im2col: one row
// per position, columns (channel, ky, kx) with zeros where the window reaches into the padding);
// the targets at the same positions.
void unfoldConvolution(const Node& node, const std::string& name, const Tensor& weights, const Tensor& inputs,
                       const Tensor& targets, int maxPositions, std::mt19937_64& random, Problem& p)
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
    const std::int64_t width = channels * kernelH * kernelW;
    const float* x = inputs.data<float>();
    const float* y = targets.data<float>();
    p.inputs.assign(std::size_t(n * kept * width), 0.f);
    p.targets.resize(std::size_t(n * kept * outputs));
    std::vector<std::int64_t> picked(static_cast<std::size_t>(positions));
    for (std::int64_t i = 0; i < n; ++i) {
        std::iota(picked.begin(), picked.end(), 0);
        if (kept < positions)
            std::shuffle(picked.begin(), picked.end(), random);
        for (std::int64_t j = 0; j < kept; ++j) {
            const std::int64_t position = picked[std::size_t(j)], oy = position / w.outW, ox = position % w.outW;
            float* row = p.inputs.data() + (i * kept + j) * width;
            for (std::int64_t c = 0; c < channels; ++c)
                for (std::int64_t ky = 0; ky < kernelH; ++ky) {
                    const std::int64_t iy = oy * w.strideH - w.padTop + ky * w.dilationH;
                    if (iy < 0 || iy >= inH)
                        continue;  // padding: the row stays 0
                    const float* line = x + ((i * channels + c) * inH + iy) * inW;
                    for (std::int64_t kx = 0; kx < kernelW; ++kx) {
                        const std::int64_t ix = ox * w.strideW - w.padLeft + kx * w.dilationW;
                        if (ix >= 0 && ix < inW)
                            row[(c * kernelH + ky) * kernelW + kx] = line[ix];
                    }
                }
            float* target = p.targets.data() + (i * kept + j) * outputs;
            for (std::int64_t o = 0; o < outputs; ++o)
                target[o] = y[(i * outputs + o) * positions + position];
        }
    }
    p.groups = groups;
    p.outputsPerGroup = outputs / groups;
    p.reduction = width / groups;  // the columns are (channel, ky, kx), so each group's are contiguous
    p.rows = n * kept;
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
    p.inputs.assign(inputs.data<float>(), inputs.data<float>() + inputs.size());
    p.targets.assign(targets.data<float>(), targets.data<float>() + targets.size());
}

// The weights as [G, Mg, Kg], output channel m = g * Mg + j.
Eigen::ArrayXf weightMatrices(const Problem& p, const Tensor& weights)
{
    Eigen::ArrayXf w(Eigen::Index(weights.size()));
    const float* source = weights.data<float>();
    if (p.weightsTransposed)  // [K, M] -> [M, K]
        Map(w.data(), p.outputs(), p.reduction) = ConstMap(source, p.reduction, p.outputs()).transpose();
    else
        std::copy_n(source, weights.size(), w.data());
    return w;
}

// Back to the model's layout, from [G, Mg, Kg].
template <typename T>
std::vector<T> modelLayout(const Problem& p, const Eigen::Array<T, Eigen::Dynamic, 1>& matrices)
{
    std::vector<T> out(std::size_t(matrices.size()));
    using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    if (p.weightsTransposed)
        Eigen::Map<Matrix>(out.data(), p.reduction, p.outputs()) = Eigen::Map<const Matrix>(matrices.data(), p.outputs(), p.reduction).transpose();
    else
        std::copy_n(matrices.data(), matrices.size(), out.data());
    return out;
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
void shuffleRows(Problem& p, std::mt19937_64& random)
{
    std::vector<std::int64_t> order(static_cast<std::size_t>(p.rows));
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), random);
    const std::int64_t width = p.width(), outputs = p.outputs();
    Floats inputs(p.inputs.size()), targets(p.targets.size());
    for (std::int64_t r = 0; r < p.rows; ++r) {
        const std::int64_t from = order[std::size_t(r)];
        if (p.depthwise())  // [G, Kg] -> [Kg, G]
            Map(inputs.data() + r * width, p.reduction, p.groups) = ConstMap(p.inputs.data() + from * width, p.groups, p.reduction).transpose();
        else
            std::copy_n(p.inputs.data() + from * width, width, inputs.data() + r * width);
        std::copy_n(p.targets.data() + from * outputs, outputs, targets.data() + r * outputs);
    }
    p.inputs = std::move(inputs);
    p.targets = std::move(targets);
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
    const int threads = options.threads > 0 ? options.threads : std::max(1, omp_get_max_threads());
    std::mt19937_64 random(options.seed);

    Problem p;
    if (family == IntegerFamily::Convolution)
        unfoldConvolution(node, name, weights, inputs, targets, options.maxPositionsPerImage, random, p);
    else
        rowsOfMatrixProduct(node, name, weights, inputs, targets, p);
    shuffleRows(p, random);
    const std::int64_t rowsPerImage = p.rows / inputs.dim(0);
    p.rowsPerStep = std::min<std::int64_t>(p.rows, options.batchSize * std::min<std::int64_t>(options.positionsPerImage, rowsPerImage));
    p.bias.assign(std::size_t(outputs), 0.f);
    if (!layer.bias.empty()) {
        const Tensor& bias = graph.initializers.at(layer.bias);
        if (bias.dtype() != DataType::Float32 || bias.size() != outputs)
            throw Error("layer '" + name + "': expected a float32 bias of " + std::to_string(outputs) + " values, got " +
                        bias.describe());
        std::copy_n(bias.data<float>(), outputs, p.bias.data());
    }
    if (options.throughFusedActivation)
        p.activation = fusedBounds(graph, layer);
    if (p.activation)
        for (float& t : p.targets)
            t = std::clamp(t, p.activation->first, p.activation->second);

    // The rounding problem, per weight (the step's loops are flat over all weights, [G, Mg, Kg]):
    // its channel's scale and zero-point, and the code below it.
    const UniformParams& u = weightParams.uniform();
    const Eigen::ArrayXf floatWeights = weightMatrices(p, weights);
    const Eigen::Index count = floatWeights.size();
    Eigen::ArrayXf S(count), Z(count);
    for (std::int64_t m = 0; m < outputs; ++m) {
        const std::size_t block = u.scale.size() == 1 ? 0 : static_cast<std::size_t>(m);
        S.segment(m * p.reduction, p.reduction).setConstant(u.scale[block]);
        Z.segment(m * p.reduction, p.reduction).setConstant(static_cast<float>(u.zeroPoint[block]));
    }
    const float qmin = static_cast<float>(weightParams.qmin), qmax = static_cast<float>(weightParams.qmax);
    // x * (1/s), as fakeQuantize computes it, so that nearest rounding here is fakeQuantize's
    // (rint: half to even, as its nearbyint).
    const Eigen::ArrayXf ratio = floatWeights * S.inverse();
    const Eigen::ArrayXf L = ratio.floor() + Z;  // the code below (or at) each weight
    // Weights whose both neighbours are codes; the others are clamped either way and stay fixed.
    const Eigen::ArrayXf movable = ((L >= qmin) && (L + 1 <= qmax)).cast<float>();
    auto weightsFor = [&](const Eigen::ArrayXf& up) -> Eigen::ArrayXf { return S * ((L + up).max(qmin).min(qmax) - Z); };

    // h(V) = frac(w/s) at the start: V = -log((zeta - gamma) / (frac - gamma) - 1).
    Eigen::ArrayXf V = -((kZeta - kGamma) / (ratio - ratio.floor() - kGamma) - 1).log();
    Eigen::ArrayXf adamMean = Eigen::ArrayXf::Zero(count), adamSquares = Eigen::ArrayXf::Zero(count);

    AdaRoundStatistics stats;
    stats.rows = p.rows;
    stats.rowsPerStep = p.rowsPerStep;
    stats.floatError = reconstructionError(p, floatWeights, threads);
    const Eigen::ArrayXf nearestCodes = (ratio.rint() + Z).max(qmin).min(qmax);
    stats.nearestError = reconstructionError(p, S * (nearestCodes - Z), threads);

    // Buffers reused by every step.
    const std::int64_t batch = p.rowsPerStep;
    std::mt19937_64 offsets(options.seed);
    std::uniform_int_distribution<std::int64_t> offset(0, p.rows - batch);
    Floats y(std::size_t(batch * outputs)), dy(std::size_t(batch * outputs)), partialGrads;
    Eigen::ArrayXf soft(count), sig(count), dW(count), dV(count);
    const int warmupIterations = static_cast<int>(std::lround(options.warmup * options.iterations));
    const float reconstructionScale = 2.f / static_cast<float>(batch);
    const float lo = p.activation ? p.activation->first : -FLT_MAX, hi = p.activation ? p.activation->second : FLT_MAX;
    const ConstArrayMap Y(y.data(), Eigen::Index(y.size()));
    ArrayMap dY(dy.data(), Eigen::Index(dy.size()));
    stats.setupMs = msSince(start);

    for (int iteration = 0; iteration < options.iterations; ++iteration) {
        if (options.progress.cancel && options.progress.cancel->load(std::memory_order_relaxed))
            throw Cancelled();
        Clock::time_point phase = Clock::now();
        const std::int64_t first = offset(offsets);
        const float* x = p.inputs.data() + first * p.width();
        const ConstArrayMap T(p.targets.data() + first * outputs, batch * outputs);
        sig = (1.f + (-V).exp()).inverse();
        soft = S * ((L + (sig * (kZeta - kGamma) + kGamma).max(0.f).min(1.f)).max(qmin).min(qmax) - Z);
        multiply(p, x, batch, soft.data(), y.data(), threads);
        stats.forwardMs += msSince(phase);

        phase = Clock::now();
        // The targets are already through the clamp; where the clamp cuts Y, no gradient passes.
        // Masks are written as ceil(clamp(a, 0, 1)), 1 where a > 0 and else 0, rather than as
        // comparisons: Eigen vectorises the whole expression only when every term has a packet form.
        dY = (Y.max(lo).min(hi) - T) * reconstructionScale * (Y - lo).max(0.f).min(1.f).ceil() * (hi - Y).max(0.f).min(1.f).ceil();
        weightGradient(p, dy.data(), x, batch, partialGrads, dW.data(), threads);
        const auto stretched = sig * (kZeta - kGamma) + kGamma;
        const auto chain = (kZeta - kGamma) * sig * (1.f - sig) * stretched.max(0.f).min(1.f).ceil() * (1.f - stretched).max(0.f).min(1.f).ceil();
        if (iteration >= warmupIterations && options.regularization > 0.f) {
            // d/dh of lambda (1 - |2h - 1|^beta) = -2 lambda beta |2h - 1|^(beta - 1) sign(2h - 1)
            //                                    = -2 lambda beta c |c|^(beta - 2), c = 2h - 1;
            // the tiny offset makes 0^0 (beta = 2 at the end) 1 instead of NaN.
            const float beta = annealedBeta(options, iteration, warmupIterations);
            const auto centred = 2.f * stretched.max(0.f).min(1.f) - 1.f;
            dV = (dW * S * movable - (2.f * options.regularization * beta) * centred * ((beta - 2.f) * (centred.abs() + 1e-30f).log()).exp()) * chain;
        } else {
            dV = dW * S * movable * chain;
        }
        stats.backwardMs += msSince(phase);

        // Adam, as torch.optim.Adam computes it: V -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
        phase = Clock::now();
        const int step = iteration + 1;
        const float stepSize = float(options.learningRate / (1 - std::pow(kAdamBeta1, step)));
        const float squaresCorrection = float(1 / std::sqrt(1 - std::pow(kAdamBeta2, step)));
        adamMean = float(kAdamBeta1) * adamMean + float(1 - kAdamBeta1) * dV;
        adamSquares = float(kAdamBeta2) * adamSquares + float(1 - kAdamBeta2) * dV.square();
        V -= stepSize * adamMean / (adamSquares.sqrt() * squaresCorrection + float(kAdamEpsilon));
        stats.adamMs += msSince(phase);
        stats.iterations = step;
        if (options.progress.report && step % 500 == 0)
            options.progress.report(options.stage, std::size_t(step), std::size_t(options.iterations));
    }

    // Round up where h(V) >= 0.5.
    const Eigen::ArrayXf up = ((V.logistic() * (kZeta - kGamma) + kGamma).max(0.f).min(1.f) >= 0.5f).cast<float>();
    const Eigen::ArrayXf rounded = weightsFor(up);
    stats.adaRoundError = reconstructionError(p, rounded, threads);
    const Eigen::ArrayXf codes = (L + up).max(qmin).min(qmax);
    stats.flippedFraction = double((codes != nearestCodes).count()) / double(count);

    AdaRoundResult result;
    const Eigen::ArrayXi integerCodes = codes.cast<int>();
    result.codes = modelLayout<std::int32_t>(p, integerCodes);
    result.weights = Tensor(DataType::Float32, weights.shape());
    const Floats roundedInModelLayout = modelLayout<float>(p, rounded);
    std::copy(roundedInModelLayout.begin(), roundedInModelLayout.end(), result.weights.mutableData<float>());
    if (options.progress.report)
        options.progress.report(options.stage, std::size_t(options.iterations), std::size_t(options.iterations));
    stats.totalMs = msSince(start);
    result.statistics = stats;
    return result;
}

}  // namespace qe
