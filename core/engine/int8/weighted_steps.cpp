// Conv and Gemm/MatMul in integers: int8 weight codes, int32 accumulators and a per-output-channel
// requantization, on our fused AVX-512 kernels, oneDNN's or the portable reference kernels.
#include "engine/int8/steps.h"

#include "common/error.h"
#include "engine/int8/kernels/fast_kernels.h"
#include "engine/int8/kernels/fused_kernels.h"
#include "engine/int8/kernels/reference_kernels.h"
#include "common/parallel.h"
#include "model/window.h"
#include "quant/integer_layers.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <tuple>

namespace qe::int8_steps {

using int8::ActivationParams;
using int8::ChannelRequantization;
using int8::FixedPointMultiplier;
using int8::QuantizedTensor;

namespace {

// Weight codes as the fast kernels take them: int8 codes and zero-points. Codes within int8 go
// as they are; uint8 codes (0..255, e.g. TensorFlow's asymmetric uint8 weights) are shifted by
// -128 together with their zero-points, which changes no (code - zero-point) difference.
struct FastWeights {
    Tensor codes;  // Int8
    std::vector<std::int32_t> zeroPoints;
};
std::optional<FastWeights> fastWeights(const std::vector<std::int32_t>& codes, const Shape& shape, std::vector<std::int32_t> zeroPoints)
{
    const auto [lo, hi] = std::minmax_element(codes.begin(), codes.end());
    std::int32_t shift = 0;
    if (codes.empty() || *lo < -128 || *hi > 255 || (*hi > 127 && *lo < 0))
        return std::nullopt;
    if (*hi > 127)
        shift = -128;
    FastWeights w;
    std::vector<std::int8_t> bytes(codes.size());
    for (std::size_t i = 0; i < codes.size(); ++i)
        bytes[i] = static_cast<std::int8_t>(codes[i] + shift);
    w.codes = Tensor::fromValues<std::int8_t>(shape, bytes);
    for (std::int32_t& z : zeroPoints)
        z += shift;
    w.zeroPoints = std::move(zeroPoints);
    return w;
}

// `reductionSize`: products summed into one accumulator (input channels per group x kernel size).
ChannelRequantization prepareChannels(const Node& node, float inputScale, const std::vector<float>& weightScales,
                                      const std::vector<float>& bias, float outputScale, std::int64_t reductionSize)
{
    std::string why;
    auto r = weightedLayerRequantization(inputScale, weightScales, bias, outputScale, reductionSize, &why);
    if (!r)
        fail(node, why);
    return std::move(*r);
}

// acc is [outer, channels] (channels innermost) or [outer, channels, inner] (the reference
// kernels' channels-first layout: the slow path).
void requantizeChannels(const std::int32_t* acc, std::uint8_t* out, std::int64_t outer, std::int64_t channels,
                        std::int64_t inner, const ChannelRequantization& r, std::int32_t zeroPoint, std::int32_t lo,
                        std::int32_t hi)
{
    if (inner == 1) {
        int8::requantizeChannelsLast(acc, out, outer, channels, r, zeroPoint, lo, hi);
        return;
    }
    for (std::int64_t o = 0; o < outer; ++o)
        for (std::int64_t c = 0; c < channels; ++c) {
            const std::int32_t bias = r.bias[static_cast<std::size_t>(c)];
            const FixedPointMultiplier m{r.multiplier[static_cast<std::size_t>(c)], static_cast<int>(r.rightShift[static_cast<std::size_t>(c)])};
            const std::int64_t base = (o * channels + c) * inner;
            for (std::int64_t i = 0; i < inner; ++i)
                out[base + i] = static_cast<std::uint8_t>(int8::requantize(acc[base + i] + bias, m, zeroPoint, lo, hi));
        }
}

// What Conv and Gemm/MatMul share: integer weight codes, a per-output-channel requantization
// (prepared once when the input scale is static, per batch when it is not) and the output.
struct WeightedLayerStep : Step {
    const Node* node = nullptr;
    Tensor weightCodes;                          // int32, output channels on the step's channel axis
    std::vector<std::int32_t> weightZeroPoints;  // 1 or one per output channel
    std::vector<float> weightScales, bias;       // per output channel
    std::int64_t reductionSize = 0;              // products summed into one accumulator
    ActivationParams output;
    std::int32_t codeLo = 0, codeHi = 255;
    std::optional<ChannelRequantization> prepared;  // for a static input scale
    std::optional<float> preparedFor;

    void setUp(const Node& layerNode, const Graph& graph, const QuantLayer& layer, const QuantParams& weights, Tensor codes,
               std::int64_t channels, std::int64_t summed, const ActivationParams& out, std::pair<std::int32_t, std::int32_t> clamp,
               const std::optional<ActivationParams>& staticInput)
    {
        node = &layerNode;
        weightCodes = std::move(codes);
        weightZeroPoints = weights.uniform().zeroPoint;
        for (std::int64_t c = 0; c < channels; ++c)
            weightScales.push_back(weights.uniform().scale.size() == 1 ? weights.uniform().scale[0] : weights.uniform().scale[static_cast<std::size_t>(c)]);
        if (!layer.bias.empty())
            bias = graph.initializers.at(layer.bias).toFloatVector();
        reductionSize = summed;
        output = out;
        std::tie(codeLo, codeHi) = clamp;
        if (staticInput) {
            prepared = prepareChannels(layerNode, staticInput->scale, weightScales, bias, output.scale, reductionSize);
            preparedFor = staticInput->scale;
        }
    }

    // The requantization for this input scale: the prepared one, else made into `local`.
    const ChannelRequantization& requantizationFor(float inputScale, std::optional<ChannelRequantization>& local) const
    {
        if (prepared && preparedFor == inputScale)
            return *prepared;
        return local.emplace(prepareChannels(*node, inputScale, weightScales, bias, output.scale, reductionSize));
    }
};

// Where two kernels can compute a layer, ours (requantization fused) and oneDNN's, the faster one
// for this input shape and thread count, found by timing both on the first input of that shape.
// Which one wins depends on the CPU (oneDNN uses AMX matrix units where there are any), the
// shape (our epilogue saves a pass over the accumulators, which dominates shallow products) and
// the threads (oneDNN parallelizes small products poorly) more than any rule we could write
// down; bench_engines --profile shows the effect. Both kernels give exactly the same codes, so
// the choice changes only the time, and the timing run checks that they do.
class TimedChoice {
public:
    // `ours` and `library` each write the whole output, `codes`.
    template <class Ours, class Library>
    void run(const Tensor& input, const Tensor& codes, const Node& node, Ours&& ours, Library&& library) const
    {
        const Shape& inputShape = input.shape();
        const Key key{inputShape, omp_get_max_threads()};
        {
            std::lock_guard lock(mutex_);
            if (auto it = libraryFaster_.find(key); it != libraryFaster_.end()) {
                it->second ? library() : ours();
                return;
            }
        }
        auto seconds = [](auto&& kernel) {
            const auto start = std::chrono::steady_clock::now();
            kernel();
            return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        };
        // Three rounds, alternating; the first is a warm-up (oneDNN creates its primitive then).
        double oursBest = 1e30, libraryBest = 1e30;
        for (int round = 0; round < 3; ++round) {
            const double o = seconds(ours);
            const Tensor oursCodes = round == 0 ? codes.clone() : Tensor{};
            const double l = seconds(library);
            if (round == 0 && !std::equal(codes.rawData(), codes.rawData() + codes.byteSize(), oursCodes.rawData()))
                fail(node, "our kernel and oneDNN's give different codes for the input " + input.describe());
            if (round > 0) {
                oursBest = std::min(oursBest, o);
                libraryBest = std::min(libraryBest, l);
            }
        }
        std::lock_guard lock(mutex_);
        libraryFaster_[key] = libraryBest < oursBest;
    }

private:
    using Key = std::pair<Shape, int>;
    mutable std::mutex mutex_;
    mutable std::map<Key, bool> libraryFaster_;
};

struct ConvStep final : WeightedLayerStep {
    const Graph* graph = nullptr;
    // The kernels when the weights fit int8: ours for depthwise convolutions; ours and oneDNN's,
    // whichever times faster (TimedChoice), for the others; the reference kernels else.
    std::unique_ptr<int8::DepthwiseConv> depthwise;
    std::unique_ptr<int8::Im2colConv> im2col;  // without groups
    std::unique_ptr<int8::FastConv> fast;
    TimedChoice choice;
    std::int64_t groups = 1;

    void run(Values& values) const override
    {
        const QuantizedTensor& x = *values.at(inputs[0]).codes;
        std::optional<ChannelRequantization> local;
        const ChannelRequantization& r = requantizationFor(x.params.scale, local);
        const Shape logical = x.logicalShape();
        const Window2D window = makeWindow(*node, 2, logical[2], logical[3], weightCodes.dim(2),
                                           weightCodes.dim(3), false);
        const std::int64_t oc = weightCodes.dim(0);
        IntegerEngine::Value y;
        y.codes.emplace();
        y.codes->params = output;
        const QuantizedTensor nhwc = depthwise || im2col || fast ? int8::toChannelsLast(x) : QuantizedTensor{};
        const bool library = fast && fast->supports(nhwc.codes.shape(), window, x.params.zeroPoint);
        if (depthwise || im2col || library) {
            y.codes->codes = Tensor::uninitialized(DataType::UInt8, {logical[0], window.outH, window.outW, oc});
            y.codes->channelsLast = true;
            const std::uint8_t* in = nhwc.codes.data<std::uint8_t>();
            std::uint8_t* out = y.codes->codes.mutableData<std::uint8_t>();
            const int8::OutputStage stage{&r, output.zeroPoint, codeLo, codeHi};
            auto ours = [&] {
                if (depthwise)
                    depthwise->run(in, logical[0], window, x.params.zeroPoint, stage, out);
                else
                    im2col->run(in, logical[0], window, x.params.zeroPoint, stage, out);
            };
            auto oneDnn = [&] {
                // The input zero-point's term goes into the bias rather than over every accumulator.
                const bool fold = x.params.zeroPoint != 0;
                const ChannelRequantization folded =
                    fold ? r.withBiasAdded(fast->inputZeroPointTerm(x.params.zeroPoint)) : ChannelRequantization{};
                const ChannelRequantization& rq = fold ? folded : r;
                fast->accumulateInChunks(
                    nhwc.codes, x.params.zeroPoint, window,
                    [&](const std::int32_t* acc, std::int64_t firstPixel, std::int64_t pixels) {
                        int8::requantizeChannelsLast(acc, out + firstPixel * oc, pixels, oc, rq, output.zeroPoint, codeLo, codeHi);
                    },
                    fold);
            };
            if (im2col && library)
                choice.run(nhwc.codes, y.codes->codes, *node, ours, oneDnn);
            else if (library)
                oneDnn();
            else
                ours();
            values[outputs[0]] = std::move(y);
            return;
        }
        const QuantizedTensor nchw = int8::toChannelsFirst(x);
        const Tensor acc = int8::convAccumulateReference(nchw.codes, x.params.zeroPoint, weightCodes, weightZeroPoints, window, groups);
        y.codes->codes = Tensor::uninitialized(DataType::UInt8, acc.shape());
        requantizeChannels(acc.data<std::int32_t>(), y.codes->codes.mutableData<std::uint8_t>(), acc.dim(0), oc,
                           acc.dim(2) * acc.dim(3), r, output.zeroPoint, codeLo, codeHi);
        values[outputs[0]] = std::move(y);
    }
};

struct GemmStep final : WeightedLayerStep {  // weightCodes: [K, N]
    std::unique_ptr<int8::PackedGemm> fused;  // ours, requantization fused (AVX-512 VNNI)
    std::unique_ptr<int8::FastMatMul> fast;   // oneDNN's
    TimedChoice choice;                       // between the two

    void run(Values& values) const override
    {
        QuantizedTensor x = int8::toChannelsFirst(*values.at(inputs[0]).codes);
        const Shape inputShape = x.codes.shape();
        if (x.codes.rank() < 2 || x.codes.dim(x.codes.rank() - 1) != weightCodes.dim(0))
            fail(*node, "expects a [..., M, " + std::to_string(weightCodes.dim(0)) + "] input, got " + x.codes.describe());
        // A MatMul over [batch, tokens, K]: one matrix product over all the rows.
        if (x.codes.rank() > 2)
            x.codes = x.codes.reshaped({x.codes.size() / weightCodes.dim(0), weightCodes.dim(0)});
        std::optional<ChannelRequantization> local;
        const ChannelRequantization& r = requantizationFor(x.params.scale, local);
        IntegerEngine::Value y = newCodes(output, {x.codes.dim(0), weightCodes.dim(1)});
        std::uint8_t* out = y.codes->codes.mutableData<std::uint8_t>();
        auto ours = [&] {
            fused->run(x.codes.data<std::uint8_t>(), x.codes.dim(0), x.codes.dim(1), x.params.zeroPoint,
                       int8::OutputStage{&r, output.zeroPoint, codeLo, codeHi}, out, fused->outputs());
        };
        auto accumulateThenRequantize = [&] {
            const Tensor acc = fast ? fast->accumulate(x.codes, x.params.zeroPoint)
                                    : int8::matmulAccumulateReference(x.codes, x.params.zeroPoint, weightCodes, weightZeroPoints);
            requantizeChannels(acc.data<std::int32_t>(), out, acc.dim(0), acc.dim(1), 1, r, output.zeroPoint, codeLo, codeHi);
        };
        if (fused && fast)
            choice.run(x.codes, y.codes->codes, *node, ours, accumulateThenRequantize);
        else if (fused)
            ours();
        else
            accumulateThenRequantize();
        if (inputShape.size() > 2) {
            Shape outputShape = inputShape;
            outputShape.back() = weightCodes.dim(1);
            y.codes->codes = y.codes->codes.reshaped(outputShape);
        }
        values[outputs[0]] = std::move(y);
    }
};

// Q.K^T and attention.V: a product of two quantized activations [..., M, K] x [..., K, N] with
// the same leading dimensions. Each accumulator is sum_k (a - za)(b - zb) in int32 (each factor
// within +-255, so K up to 33,000 cannot overflow), requantized by s_a s_b / s_out with the
// fixed-point multiplier every layer uses. Reference loops: the attention products are a sliver
// of a ViT's work. Leading dimensions that would need broadcasting run the float product instead.
struct ActivationProductStep final : Step {
    const Node* node = nullptr;
    const Graph* graph = nullptr;
    ActivationParams output;
    std::int32_t codeLo = 0, codeHi = 255;

    void run(Values& values) const override
    {
        const QuantizedTensor a = int8::toChannelsFirst(*values.at(inputs[0]).codes);
        const QuantizedTensor b = int8::toChannelsFirst(*values.at(inputs[1]).codes);
        const Shape& sa = a.codes.shape();
        const Shape& sb = b.codes.shape();
        const bool sameBatch = sa.size() >= 2 && sa.size() == sb.size() && std::equal(sa.begin(), sa.end() - 2, sb.begin()) &&
                               sa.back() == sb[sb.size() - 2];
        if (!sameBatch) {
            const Tensor ra = int8::dequantize(a), rb = int8::dequantize(b);
            values[outputs[0]].codes = int8::quantize(runNode(*node, graph->opsetVersion, {&ra, &rb}).at(0), output);
            return;
        }
        const std::int64_t m = sa[sa.size() - 2], k = sa.back(), n = sb.back();
        const std::int64_t batches = m * k > 0 ? a.codes.size() / (m * k) : 0;
        Shape outShape = sa;
        outShape.back() = n;
        IntegerEngine::Value y = newCodes(output, outShape);
        const int8::FixedPointMultiplier multiplier =
            int8::prepareMultiplier(double(a.params.scale) * double(b.params.scale) / double(output.scale));
        const std::uint8_t* pa = a.codes.data<std::uint8_t>();
        const std::uint8_t* pb = b.codes.data<std::uint8_t>();
        std::uint8_t* out = y.codes->codes.mutableData<std::uint8_t>();
        const std::int32_t za = a.params.zeroPoint, zb = b.params.zeroPoint;
        // One multiplier for every output column, requantized a whole batch at a time by the
        // weighted layers' vectorized (AVX-512 where present) kernel: exactly int8::requantize.
        int8::ChannelRequantization columns;
        for (std::int64_t j = 0; j < n; ++j)
            columns.add(0, multiplier);
        // Batches (heads x images) are independent products: one thread each when worth it.
#pragma omp parallel for schedule(static) if (worthParallel(batches * m * k * n))
        for (std::int64_t batch = 0; batch < batches; ++batch) {
            // B - zb once per batch, so that the inner loop is a plain multiply-add over int32 lanes.
            std::vector<std::int32_t> centered(static_cast<std::size_t>(k * n)), sums(static_cast<std::size_t>(m * n), 0);
            const std::uint8_t* B = pb + batch * k * n;
            for (std::int64_t e = 0; e < k * n; ++e)
                centered[static_cast<std::size_t>(e)] = std::int32_t(B[e]) - zb;
            const std::uint8_t* A = pa + batch * m * k;
            for (std::int64_t i = 0; i < m; ++i) {
                std::int32_t* acc = sums.data() + i * n;
                for (std::int64_t p = 0; p < k; ++p) {
                    const std::int32_t x = std::int32_t(A[i * k + p]) - za;
                    const std::int32_t* Bp = centered.data() + p * n;
                    for (std::int64_t j = 0; j < n; ++j)
                        acc[j] += x * Bp[j];
                }
            }
            int8::requantizeChannelsLast(sums.data(), out + batch * m * n, m, n, columns, output.zeroPoint, codeLo, codeHi);
        }
        values[outputs[0]] = std::move(y);
    }
};

// What runs a convolution or matrix product (TimedChoice picks between ours and oneDNN's).
std::string kernelName(bool fused, bool library)
{
    return fused && library ? "fused or onednn, timed" : fused ? "fused" : library ? "onednn" : "reference";
}

}  // namespace

LoweredLayer lowerConvolution(const LayerLowering& l)
{
    const QuantParams& wp = *l.plan.weightParams;
    const Tensor& w = l.graph.initializers.at(l.layer.weight);
    auto s = std::make_unique<ConvStep>();
    s->graph = &l.graph;
    s->groups = l.node.intAttribute("group", 1);
    const auto codes = uniformCodes(w, wp, 0);
    s->setUp(l.node, l.graph, l.layer, wp, Tensor::fromValues<std::int32_t>(w.shape(), codes), w.dim(0), w.size() / w.dim(0),
             l.output, {l.codeLo, l.codeHi}, l.inputParams.at(0));
    if (l.fastKernels)
        if (auto f = fastWeights(codes, w.shape(), wp.uniform().zeroPoint)) {
            const std::int64_t oc = w.dim(0), kh = w.dim(2), kw = w.dim(3);
            const std::int8_t* wc = f->codes.data<std::int8_t>();
            const bool ours = int8::fusedKernelsAvailable();
            if (ours && s->groups == oc && w.dim(1) == 1)
                s->depthwise = std::make_unique<int8::DepthwiseConv>(wc, oc, kh, kw, f->zeroPoints);
            else if (ours && s->groups == 1)
                s->im2col = std::make_unique<int8::Im2colConv>(wc, oc, w.dim(1), kh, kw, f->zeroPoints);
            if (!s->depthwise && int8::fastKernelsAvailable())
                s->fast = std::make_unique<int8::FastConv>(f->codes, f->zeroPoints, s->groups);
        }
    std::string kernel = kernelName(s->depthwise || s->im2col, s->fast != nullptr);
    return {std::move(s), std::move(kernel)};
}

LoweredLayer lowerActivationProduct(const LayerLowering& l)
{
    // Both factors need static parameters (a per-batch range would change the multiplier), and
    // the multiplier must be one the fixed-point requantization takes.
    if (l.node.opType != "MatMul" || l.dataInputs.size() != 2 || !l.inputParams.at(0) || !l.inputParams.at(1) ||
        !int8::isUsableMultiplier(double(l.inputParams[0]->scale) * double(l.inputParams[1]->scale) / double(l.output.scale)))
        return {};
    auto s = std::make_unique<ActivationProductStep>();
    s->node = &l.node;
    s->graph = &l.graph;
    s->output = l.output;
    s->codeLo = l.codeLo;
    s->codeHi = l.codeHi;
    return {std::move(s), "reference"};
}

LoweredLayer lowerMatrixProduct(const LayerLowering& l)
{
    const QuantParams& wp = *l.plan.weightParams;
    const Tensor& w = l.graph.initializers.at(l.layer.weight);
    const bool transB = l.node.opType == "Gemm" && l.node.intAttribute("transB", 0) != 0;
    // Codes in [K, N] whatever the stored layout.
    const Tensor kn = transB ? runNode(Node{"", "Transpose", "", {}, {}, {}}, l.graph.opsetVersion, {&w})[0] : w;
    const std::int64_t n = kn.dim(1);
    auto s = std::make_unique<GemmStep>();
    const auto codes = uniformCodes(kn, wp, 1);
    s->setUp(l.node, l.graph, l.layer, wp, Tensor::fromValues<std::int32_t>(kn.shape(), codes), n, kn.dim(0), l.output,
             {l.codeLo, l.codeHi}, l.inputParams.at(0));
    if (l.fastKernels)
        if (auto f = fastWeights(codes, kn.shape(), wp.uniform().zeroPoint)) {
            if (int8::fusedKernelsAvailable())
                s->fused = std::make_unique<int8::PackedGemm>(f->codes.data<std::int8_t>(), kn.dim(0), n, n, 1, f->zeroPoints);
            if (int8::fastKernelsAvailable())
                s->fast = std::make_unique<int8::FastMatMul>(f->codes, f->zeroPoints);
        }
    std::string kernel = kernelName(s->fused != nullptr, s->fast != nullptr);
    return {std::move(s), std::move(kernel)};
}

}  // namespace qe::int8_steps
