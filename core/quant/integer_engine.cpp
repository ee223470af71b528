#include "quant/integer_engine.h"

#include "model/operator_traits.h"

#include "common/error.h"
#include "engine/int8/fast_kernels.h"
#include "engine/int8/fused_kernels.h"
#include "engine/int8/reference_kernels.h"
#include "engine/int8/requantize.h"
#include "engine/ops/window.h"
#include "quant/integer_layers.h"

#include <cxxabi.h>
#include <omp.h>

#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <tuple>
#include <typeinfo>

namespace qe {

using int8::ActivationParams;
using int8::ChannelRequantization;
using int8::FixedPointMultiplier;
using int8::QuantizedTensor;

// A tensor while the engine runs: codes when quantized, float otherwise (or both, once a
// quantized tensor has been dequantized for a float step).
struct IntegerEngine::Value {
    std::optional<QuantizedTensor> codes;
    std::optional<Tensor> real;  // for quantized values: made when some float step needs them
    const Tensor& realValues()
    {
        if (!real)
            real = int8::dequantize(*codes);
        return *real;
    }
};

using Values = std::map<std::string, IntegerEngine::Value>;

struct IntegerEngine::Step {
    virtual ~Step() = default;
    virtual void run(Values& values) const = 0;
    std::vector<std::string> inputs;   // tensors read (besides constants)
    std::vector<std::string> outputs;  // tensors written
};

namespace {

// ---------------------------------------------------------------------------------------------
// What may run in integers

// Signed codes are stored shifted by +128 (quantized_tensor.h).
ActivationParams toActivationParams(const QuantParams& p)
{
    const std::int32_t shift = p.isSigned ? 128 : 0;
    ActivationParams a;
    a.scale = p.scale.at(0);
    a.zeroPoint = p.zeroPoint.at(0) + shift;
    a.codeMin = p.qmin + shift;
    a.codeMax = p.qmax + shift;
    a.isSigned = p.isSigned;
    return a;
}

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

OpContext contextFor(const Node& node, const Graph& graph) { return OpContext{node, graph.opsetVersion, {}}; }

[[noreturn]] void fail(const Node& node, const std::string& message)
{
    throw Error("node '" + node.name + "' (" + node.opType + "): " + message);
}

// ---------------------------------------------------------------------------------------------
// Requantization of accumulators, prepared once per input scale

FixedPointMultiplier checkedMultiplier(double m, const Node& node)
{
    if (!int8::isUsableMultiplier(m))
        fail(node, "the rescale factor " + std::to_string(m) + " (input scale x weight scale / output scale) is out of range");
    return int8::prepareMultiplier(m);
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

// ---------------------------------------------------------------------------------------------
// Steps

// A new quantized value with freshly allocated codes of `shape` under `params`.
IntegerEngine::Value newCodes(const ActivationParams& params, Shape shape, bool channelsLast = false)
{
    IntegerEngine::Value y;
    y.codes.emplace();
    y.codes->params = params;
    y.codes->channelsLast = channelsLast;
    y.codes->codes = Tensor::uninitialized(DataType::UInt8, std::move(shape));
    return y;
}

// The power of two that scales rescale factors up to `largest` into integers below 2^31, so that
// a sum of terms (code difference <= 255) times them stays below 2^39 in 64 bits.
int sumShift(double largest)
{
    int shift = 30;
    while (shift > 1 && largest * std::ldexp(1.0, shift) >= 2147483648.0)
        --shift;
    return shift;
}

struct QuantizeInput final : IntegerEngine::Step {
    std::optional<ActivationParams> params;  // static; else from each batch's range
    TensorQuantSpec spec;
    void run(Values& values) const override
    {
        IntegerEngine::Value& v = values.at(inputs[0]);
        ActivationParams p;
        if (params) {
            p = *params;
        } else {
            LayerPlan dynamicPlan;
            dynamicPlan.config.activations = spec;
            p = toActivationParams(activationParamsFor(dynamicPlan, v.realValues()));
        }
        IntegerEngine::Value q;
        // Images go channels-last at once, as the convolutions read them.
        const Tensor& real = v.realValues();
        q.codes = real.rank() == 4 ? int8::quantizeToChannelsLast(real, p) : int8::quantize(real, p);
        values[outputs[0]] = std::move(q);
    }
};

// A graph input quantized to a format without integer codes (fp8, log2, ...): fake quantization.
struct FakeQuantizeInput final : IntegerEngine::Step {
    const LayerPlan* plan = nullptr;  // the engine's own copy
    void run(Values& values) const override
    {
        IntegerEngine::Value& v = values.at(inputs[0]);
        v.real = fakeQuantize(v.realValues(), activationParamsFor(*plan, v.realValues()));
    }
};

// A node run by the fp32 kernels on dequantized inputs; its output may then be quantized.
struct FloatStep final : IntegerEngine::Step {
    const Node* node = nullptr;
    const Graph* graph = nullptr;
    // Quantization of output 0 afterwards, as the plan says.
    const LayerPlan* outputPlan = nullptr;
    bool outputToCodes = false;  // uniform <= 8 bits: becomes codes; else fake-quantized float
    void run(Values& values) const override
    {
        std::vector<const Tensor*> in;
        for (const std::string& name : node->inputs) {
            if (name.empty())
                in.push_back(nullptr);
            else if (graph->isInitializer(name))
                in.push_back(&graph->initializers.at(name));
            else
                in.push_back(&values.at(name).realValues());
        }
        std::vector<Tensor> out = runNode(*node, graph->opsetVersion, in);
        for (std::size_t i = 0; i < out.size() && i < node->outputs.size(); ++i) {
            IntegerEngine::Value v;
            if (i == 0 && outputPlan && out[0].dtype() == DataType::Float32) {
                const QuantParams p = activationParamsFor(*outputPlan, out[0]);
                if (outputToCodes)
                    v.codes = int8::quantize(out[0], toActivationParams(p));
                else
                    v.real = fakeQuantize(out[0], p);
            } else {
                v.real = std::move(out[i]);
            }
            values[node->outputs[i]] = std::move(v);
        }
    }
};

// What Conv and Gemm/MatMul share: integer weight codes, a per-output-channel requantization
// (prepared once when the input scale is static, per batch when it is not) and the output.
struct WeightedLayerStep : IntegerEngine::Step {
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
        weightZeroPoints = weights.zeroPoint;
        for (std::int64_t c = 0; c < channels; ++c)
            weightScales.push_back(weights.scale.size() == 1 ? weights.scale[0] : weights.scale[static_cast<std::size_t>(c)]);
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
        const Window2D window = makeWindow(contextFor(*node, *graph), 2, logical[2], logical[3], weightCodes.dim(2),
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
        const QuantizedTensor x = int8::toChannelsFirst(*values.at(inputs[0]).codes);
        if (x.codes.rank() != 2 || x.codes.dim(1) != weightCodes.dim(0))
            fail(*node, "expects a [M, " + std::to_string(weightCodes.dim(0)) + "] input, got " + x.codes.describe());
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
        values[outputs[0]] = std::move(y);
    }
};

// Both inputs brought to one layout (channels-last when either is, for rank 4).
std::pair<QuantizedTensor, QuantizedTensor> sameLayout(const QuantizedTensor& a, const QuantizedTensor& b)
{
    if (a.channelsLast || b.channelsLast)
        return {int8::toChannelsLast(a), int8::toChannelsLast(b)};
    return {a, b};
}

// The two quantized operands of an elementwise step, in one layout and of one shape.
std::pair<QuantizedTensor, QuantizedTensor> elementwiseOperands(const Values& values, const IntegerEngine::Step& step, const Node& node)
{
    auto operands = sameLayout(*values.at(step.inputs[0]).codes, *values.at(step.inputs[1]).codes);
    if (operands.first.codes.shape() != operands.second.codes.shape())
        fail(node, "integer " + node.opType + " needs equal shapes, got " + operands.first.codes.describe() + " and " +
                       operands.second.codes.describe());
    return operands;
}

// Add: y = zy + round((a - za) * sa / sy + (b - zb) * sb / sy), both terms scaled by 2^shift into
// one 64-bit sum and rounded once (half to even).
struct AddStep final : IntegerEngine::Step {
    const Node* node = nullptr;
    ActivationParams output;
    std::int32_t codeLo = 0, codeHi = 255;
    void run(Values& values) const override
    {
        const auto [a, b] = elementwiseOperands(values, *this, *node);
        const double ma = static_cast<double>(a.params.scale) / output.scale, mb = static_cast<double>(b.params.scale) / output.scale;
        const double largest = std::max(ma, mb);
        if (!int8::isUsableMultiplier(largest))
            fail(*node, "the input/output scale ratio is out of range");
        const int shift = sumShift(largest);
        const auto qa = static_cast<std::int64_t>(std::llround(std::ldexp(ma, shift)));
        const auto qb = static_cast<std::int64_t>(std::llround(std::ldexp(mb, shift)));
        IntegerEngine::Value y = newCodes(output, a.codes.shape(), a.channelsLast);
        const std::uint8_t* pa = a.codes.data<std::uint8_t>();
        const std::uint8_t* pb = b.codes.data<std::uint8_t>();
        std::uint8_t* py = y.codes->codes.mutableData<std::uint8_t>();
        for (std::int64_t i = 0; i < a.codes.size(); ++i) {
            const std::int64_t sum = (pa[i] - a.params.zeroPoint) * qa + (pb[i] - b.params.zeroPoint) * qb;
            const auto scaled = static_cast<std::int32_t>(int8::roundingShift(sum, shift));
            py[i] = static_cast<std::uint8_t>(std::clamp(scaled + output.zeroPoint, codeLo, codeHi));
        }
        values[outputs[0]] = std::move(y);
    }
};

// Add (or Sub) of a constant, e.g. a bias added after a Conv or MatMul that has none:
//     y = zy + round((a - za) * sa / sy + c / sy)
// with both terms scaled by 2^shift into one 64-bit integer (the constant prepared once per
// input scale) and rounded once, half to even. The constant is a scalar, one value per channel
// (axis 1 of a 4-D tensor) or one per column (last axis of a 2-D tensor).
struct AddConstantStep final : IntegerEngine::Step {
    enum class Broadcast { Scalar, Channel, Column };
    const Node* node = nullptr;
    std::vector<float> constant;  // already negated for Sub
    Broadcast broadcast = Broadcast::Scalar;
    ActivationParams output;
    std::int32_t codeLo = 0, codeHi = 255;
    void run(Values& values) const override
    {
        const QuantizedTensor& a = *values.at(inputs[0]).codes;
        const Shape logical = a.logicalShape();
        std::int64_t channels = 1;
        if (broadcast == Broadcast::Channel && logical.size() == 4)
            channels = logical[1];
        else if (broadcast == Broadcast::Column && logical.size() == 2)
            channels = logical[1];
        else if (broadcast != Broadcast::Scalar)
            fail(*node, "the constant operand does not broadcast over " + shapeToString(logical) + " per channel");
        if (static_cast<std::int64_t>(constant.size()) != channels)
            fail(*node, "the constant has " + std::to_string(constant.size()) + " values for " + std::to_string(channels) + " channels");
        const double ma = static_cast<double>(a.params.scale) / output.scale;
        double largest = ma;
        for (float c : constant)
            largest = std::max(largest, std::abs(static_cast<double>(c)) / output.scale / 255.0);
        if (!int8::isUsableMultiplier(largest))
            fail(*node, "the input/output scale ratio is out of range");
        const int shift = sumShift(largest);
        const auto qa = static_cast<std::int64_t>(std::llround(std::ldexp(ma, shift)));
        std::vector<std::int64_t> qc;
        for (float c : constant)
            qc.push_back(std::llround(std::ldexp(static_cast<double>(c) / output.scale, shift)));
        IntegerEngine::Value y = newCodes(output, a.codes.shape(), a.channelsLast);
        const std::uint8_t* pa = a.codes.data<std::uint8_t>();
        std::uint8_t* py = y.codes->codes.mutableData<std::uint8_t>();
        // The channel of element i: innermost when channels-last, else axis 1 of N C (H W).
        const std::int64_t inner = a.channelsLast || logical.size() == 2 ? 1 : logical[2] * logical[3];
        for (std::int64_t i = 0; i < a.codes.size(); ++i) {
            const std::int64_t channel = channels == 1 ? 0 : (i / inner) % channels;
            const std::int64_t sum = (pa[i] - a.params.zeroPoint) * qa + qc[static_cast<std::size_t>(channel)];
            py[i] = static_cast<std::uint8_t>(std::clamp(static_cast<std::int32_t>(int8::roundingShift(sum, shift)) + output.zeroPoint, codeLo, codeHi));
        }
        values[outputs[0]] = std::move(y);
    }
};

// Mul: y = zy + round((a - za) * (b - zb) * sa * sb / sy).
struct MulStep final : IntegerEngine::Step {
    const Node* node = nullptr;
    ActivationParams output;
    std::int32_t codeLo = 0, codeHi = 255;
    void run(Values& values) const override
    {
        const auto [a, b] = elementwiseOperands(values, *this, *node);
        const FixedPointMultiplier m =
            checkedMultiplier(static_cast<double>(a.params.scale) * b.params.scale / output.scale, *node);
        IntegerEngine::Value y = newCodes(output, a.codes.shape(), a.channelsLast);
        const std::uint8_t* pa = a.codes.data<std::uint8_t>();
        const std::uint8_t* pb = b.codes.data<std::uint8_t>();
        std::uint8_t* py = y.codes->codes.mutableData<std::uint8_t>();
        for (std::int64_t i = 0; i < a.codes.size(); ++i)
            py[i] = static_cast<std::uint8_t>(int8::requantize((pa[i] - a.params.zeroPoint) * (pb[i] - b.params.zeroPoint), m,
                                                               output.zeroPoint, codeLo, codeHi));
        values[outputs[0]] = std::move(y);
    }
};

// Codes moved to other parameters: y = zy + round((q - zq) * sq / sy).
Tensor rescaleCodes(const QuantizedTensor& q, const ActivationParams& to, std::int32_t lo, std::int32_t hi, const Node& node)
{
    const FixedPointMultiplier m = checkedMultiplier(static_cast<double>(q.params.scale) / to.scale, node);
    Tensor out(DataType::UInt8, q.codes.shape());
    const std::uint8_t* src = q.codes.data<std::uint8_t>();
    std::uint8_t* dst = out.mutableData<std::uint8_t>();
    for (std::int64_t i = 0; i < out.size(); ++i)
        dst[i] = static_cast<std::uint8_t>(int8::requantize(src[i] - q.params.zeroPoint, m, to.zeroPoint, lo, hi));
    return out;
}

struct ConcatStep final : IntegerEngine::Step {
    const Node* node = nullptr;
    const Graph* graph = nullptr;
    ActivationParams output;
    std::int32_t codeLo = 0, codeHi = 255;
    void run(Values& values) const override
    {
        std::vector<Tensor> parts;
        for (const std::string& name : inputs) {
            const QuantizedTensor q = int8::toChannelsFirst(*values.at(name).codes);
            parts.push_back(q.params == output && codeLo == output.codeMin && codeHi == output.codeMax
                                ? q.codes
                                : rescaleCodes(q, output, codeLo, codeHi, *node));
        }
        std::vector<const Tensor*> in;
        for (const Tensor& t : parts)
            in.push_back(&t);
        IntegerEngine::Value y;
        y.codes.emplace();
        y.codes->params = output;
        y.codes->codes = runNode(*node, graph->opsetVersion, in)[0];
        values[outputs[0]] = std::move(y);
    }
};

// Average pooling: integer window sums, then y = zy + round(sum(q - zq) * sq / (sy * count)).
struct AveragePoolStep final : IntegerEngine::Step {
    const Node* node = nullptr;
    const Graph* graph = nullptr;
    bool global = false;
    ActivationParams output;
    std::int32_t codeLo = 0, codeHi = 255;
    // A pool over the whole image (GlobalAveragePool, or an AveragePool whose window is the
    // image, as TensorFlow's MobileNets end) of a channels-last input: per image, the channels'
    // sums over the pixels in one pass (the loop over channels vectorizes), then the same
    // requantization as below.
    void runWholeImageChannelsLast(Values& values, const QuantizedTensor& x) const
    {
        const std::int64_t n = x.codes.dim(0), pixels = x.codes.dim(1) * x.codes.dim(2), c = x.codes.dim(3);
        const FixedPointMultiplier m =
            checkedMultiplier(static_cast<double>(x.params.scale) / (static_cast<double>(output.scale) * pixels), *node);
        IntegerEngine::Value y = newCodes(output, {n, c, 1, 1});
        std::vector<std::int32_t> sums(static_cast<std::size_t>(c));
        for (std::int64_t b = 0; b < n; ++b) {
            const std::uint8_t* px = x.codes.data<std::uint8_t>() + b * pixels * c;
            std::fill(sums.begin(), sums.end(), -x.params.zeroPoint * static_cast<std::int32_t>(pixels));
            for (std::int64_t p = 0; p < pixels; ++p)
                for (std::int64_t ch = 0; ch < c; ++ch)
                    sums[static_cast<std::size_t>(ch)] += px[p * c + ch];
            std::uint8_t* py = y.codes->codes.mutableData<std::uint8_t>() + b * c;
            for (std::int64_t ch = 0; ch < c; ++ch)
                py[ch] = static_cast<std::uint8_t>(int8::requantize(sums[static_cast<std::size_t>(ch)], m, output.zeroPoint, codeLo, codeHi));
        }
        values[outputs[0]] = std::move(y);
    }

    void run(Values& values) const override
    {
        const QuantizedTensor& input = *values.at(inputs[0]).codes;
        if (input.channelsLast && input.codes.rank() == 4) {
            const Shape in = input.logicalShape();
            bool wholeImage = global;
            if (!global) {
                const auto kernel = node->intsAttribute("kernel_shape");
                const Window2D w = makeWindow(contextFor(*node, *graph), 2, in[2], in[3], kernel.size() == 2 ? kernel[0] : 0,
                                              kernel.size() == 2 ? kernel[1] : 0, node->intAttribute("ceil_mode", 0) != 0);
                wholeImage = kernel.size() == 2 && kernel[0] == in[2] && kernel[1] == in[3] && w.outH == 1 && w.outW == 1 &&
                             w.padTop == 0 && w.padLeft == 0 && w.padBottom == 0 && w.padRight == 0;
            }
            if (wholeImage) {
                runWholeImageChannelsLast(values, input);
                return;
            }
        }
        const QuantizedTensor x = int8::toChannelsFirst(input);
        if (x.codes.rank() != 4)
            fail(*node, "integer pooling supports 4-D inputs, got " + x.codes.describe());
        const std::int64_t n = x.codes.dim(0), c = x.codes.dim(1), h = x.codes.dim(2), w = x.codes.dim(3);
        Window2D window;
        bool includePad = false;
        if (global) {
            window.kernelH = window.inH = h;
            window.kernelW = window.inW = w;
        } else {
            const auto kernel = node->intsAttribute("kernel_shape");
            if (kernel.size() != 2)
                fail(*node, "integer AveragePool supports 2-D kernels");
            window = makeWindow(contextFor(*node, *graph), 2, h, w, kernel[0], kernel[1], node->intAttribute("ceil_mode", 0) != 0);
            includePad = node->intAttribute("count_include_pad", 0) != 0;
        }
        std::vector<FixedPointMultiplier> byCount(static_cast<std::size_t>(window.kernelH * window.kernelW + 1));
        for (std::size_t k = 1; k < byCount.size(); ++k)
            byCount[k] = checkedMultiplier(static_cast<double>(x.params.scale) / (static_cast<double>(output.scale) * k), *node);
        IntegerEngine::Value y = newCodes(output, {n, c, window.outH, window.outW});
        const std::uint8_t* px = x.codes.data<std::uint8_t>();
        std::uint8_t* py = y.codes->codes.mutableData<std::uint8_t>();
        for (std::int64_t plane = 0; plane < n * c; ++plane)
            for (std::int64_t oy = 0; oy < window.outH; ++oy)
                for (std::int64_t ox = 0; ox < window.outW; ++ox) {
                    std::int32_t sum = 0, count = 0;
                    for (std::int64_t ky = 0; ky < window.kernelH; ++ky) {
                        const std::int64_t iy = oy * window.strideH - window.padTop + ky * window.dilationH;
                        for (std::int64_t kx = 0; kx < window.kernelW; ++kx) {
                            const std::int64_t ix = ox * window.strideW - window.padLeft + kx * window.dilationW;
                            const bool inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
                            // A padded position counts (as real 0) only with count_include_pad, and
                            // only inside the padded input, not past it (ceil_mode windows).
                            const bool inPaddedInput = iy < h + window.padBottom && ix < w + window.padRight;
                            if (inside)
                                sum += px[(plane * h + iy) * w + ix] - x.params.zeroPoint;
                            if (inside || (includePad && inPaddedInput))
                                ++count;
                        }
                    }
                    py[(plane * window.outH + oy) * window.outW + ox] = static_cast<std::uint8_t>(
                        int8::requantize(sum, byCount[static_cast<std::size_t>(std::max(count, 1))], output.zeroPoint, codeLo, codeHi));
                }
        values[outputs[0]] = std::move(y);
    }
};

// MaxPool on codes (the maximum commutes with an increasing affine map), channels-last.
struct MaxPoolStep final : IntegerEngine::Step {
    const Node* node = nullptr;
    const Graph* graph = nullptr;
    void run(Values& values) const override
    {
        const QuantizedTensor x = int8::toChannelsLast(*values.at(inputs[0]).codes);
        if (x.codes.rank() != 4)
            fail(*node, "integer MaxPool supports 4-D inputs, got " + x.codes.describe());
        const std::int64_t n = x.codes.dim(0), h = x.codes.dim(1), w = x.codes.dim(2), c = x.codes.dim(3);
        const auto kernel = node->intsAttribute("kernel_shape");
        if (kernel.size() != 2)
            fail(*node, "integer MaxPool supports 2-D kernels");
        const Window2D window =
            makeWindow(contextFor(*node, *graph), 2, h, w, kernel[0], kernel[1], node->intAttribute("ceil_mode", 0) != 0);
        IntegerEngine::Value y = newCodes(x.params, {n, window.outH, window.outW, c}, true);
        const std::uint8_t* px = x.codes.data<std::uint8_t>();
        std::uint8_t* py = y.codes->codes.mutableData<std::uint8_t>();
        for (std::int64_t b = 0; b < n; ++b)
            for (std::int64_t oy = 0; oy < window.outH; ++oy)
                for (std::int64_t ox = 0; ox < window.outW; ++ox) {
                    std::uint8_t* out = py + ((b * window.outH + oy) * window.outW + ox) * c;
                    std::fill(out, out + c, std::uint8_t{0});
                    for (std::int64_t ky = 0; ky < window.kernelH; ++ky) {
                        const std::int64_t iy = oy * window.strideH - window.padTop + ky * window.dilationH;
                        if (iy < 0 || iy >= h)
                            continue;
                        for (std::int64_t kx = 0; kx < window.kernelW; ++kx) {
                            const std::int64_t ix = ox * window.strideW - window.padLeft + kx * window.dilationW;
                            if (ix < 0 || ix >= w)
                                continue;
                            const std::uint8_t* in = px + ((b * h + iy) * w + ix) * c;
                            for (std::int64_t ch = 0; ch < c; ++ch)
                                out[ch] = std::max(out[ch], in[ch]);
                        }
                    }
                }
        values[outputs[0]] = std::move(y);
    }
};

// An elementwise function of one quantized input as a table of its 256 codes, built by running
// the float kernels on the dequantized codes: the same float arithmetic as the simulation.
struct LookupStep final : IntegerEngine::Step {
    const Node* node = nullptr;
    const Node* activation = nullptr;  // fused Relu/Clip, if any
    const Graph* graph = nullptr;
    std::optional<ActivationParams> output;  // empty: keep the input's parameters (Relu)
    std::optional<std::vector<std::uint8_t>> prepared;
    std::optional<ActivationParams> preparedFor;

    std::vector<std::uint8_t> table(const ActivationParams& in) const
    {
        std::vector<float> reals(256);
        for (int code = 0; code < 256; ++code)
            reals[static_cast<std::size_t>(code)] = static_cast<float>(code - in.zeroPoint) * in.scale;
        Tensor t = Tensor::fromValues<float>({256}, reals);
        for (const Node* f : {node, activation}) {
            if (!f)
                continue;
            std::vector<const Tensor*> inputs{&t};
            for (std::size_t i = 1; i < f->inputs.size(); ++i)
                inputs.push_back(f->inputs[i].empty() ? nullptr : &graph->initializers.at(f->inputs[i]));
            t = runNode(*f, graph->opsetVersion, inputs)[0];
        }
        const Tensor codes = int8::quantize(t, output ? *output : in).codes;
        return {codes.data<std::uint8_t>(), codes.data<std::uint8_t>() + 256};
    }
    void run(Values& values) const override
    {
        const QuantizedTensor& x = *values.at(inputs[0]).codes;
        const std::vector<std::uint8_t> local = prepared && preparedFor == x.params ? std::vector<std::uint8_t>{} : table(x.params);
        const std::vector<std::uint8_t>& lut = prepared && preparedFor == x.params ? *prepared : local;
        IntegerEngine::Value y = newCodes(output ? *output : x.params, x.codes.shape(), x.channelsLast);
        const std::uint8_t* px = x.codes.data<std::uint8_t>();
        std::uint8_t* py = y.codes->codes.mutableData<std::uint8_t>();
        for (std::int64_t i = 0; i < x.codes.size(); ++i)
            py[i] = lut[px[i]];
        values[outputs[0]] = std::move(y);
    }
};

// Operators that only move values (Reshape, Transpose, ...): the fp32 engine's kernels are
// type-generic, so they run on the codes in the channels-first layout ONNX describes.
struct MoveStep final : IntegerEngine::Step {
    const Node* node = nullptr;
    const Graph* graph = nullptr;
    void run(Values& values) const override
    {
        const QuantizedTensor x = int8::toChannelsFirst(*values.at(node->inputs[0]).codes);
        std::vector<const Tensor*> in{&x.codes};
        std::vector<Tensor> realInputs;
        realInputs.reserve(node->inputs.size());
        for (std::size_t i = 1; i < node->inputs.size(); ++i) {
            const std::string& name = node->inputs[i];
            if (name.empty())
                in.push_back(nullptr);
            else if (graph->isInitializer(name))
                in.push_back(&graph->initializers.at(name));
            else {
                realInputs.push_back(values.at(name).realValues());
                in.push_back(&realInputs.back());
            }
        }
        std::vector<Tensor> out = runNode(*node, graph->opsetVersion, in);
        for (std::size_t i = 0; i < out.size() && i < node->outputs.size(); ++i) {
            IntegerEngine::Value y;
            y.codes.emplace();
            y.codes->params = x.params;
            y.codes->codes = std::move(out[i]);
            values[node->outputs[i]] = std::move(y);
        }
    }
};

// Softmax along the last axis in integers (as TFLite's int8 softmax does, with a table of
// exponentials): with d = max(q) - q, e(d) = round(2^24 exp(-scale d)) from a 256-entry table,
//     y = zy + round(e / (sum(e) * sy))
// computed as (e * round(2^16 / sy)) / (sum(e) * 2^16) in 64-bit integers, ties to even.
struct SoftmaxStep final : IntegerEngine::Step {
    const Node* node = nullptr;
    ActivationParams output;
    std::int32_t codeLo = 0, codeHi = 255;
    std::optional<std::vector<std::uint32_t>> prepared;
    std::optional<float> preparedFor;

    static std::vector<std::uint32_t> exponentials(float inputScale)
    {
        std::vector<std::uint32_t> table(256);
        for (int d = 0; d < 256; ++d)
            table[static_cast<std::size_t>(d)] = static_cast<std::uint32_t>(std::llround(std::ldexp(std::exp(-static_cast<double>(inputScale) * d), 24)));
        return table;
    }
    void run(Values& values) const override
    {
        const QuantizedTensor x = int8::toChannelsFirst(*values.at(inputs[0]).codes);
        const std::vector<std::uint32_t> local = prepared && preparedFor == x.params.scale ? std::vector<std::uint32_t>{} : exponentials(x.params.scale);
        const std::vector<std::uint32_t>& table = prepared && preparedFor == x.params.scale ? *prepared : local;
        const std::int64_t length = x.codes.dim(x.codes.rank() - 1), rows = x.codes.size() / std::max<std::int64_t>(1, length);
        const auto inverseOutputScale = static_cast<std::uint64_t>(std::llround(std::ldexp(1.0 / output.scale, 16)));
        IntegerEngine::Value y = newCodes(output, x.codes.shape());
        const std::uint8_t* px = x.codes.data<std::uint8_t>();
        std::uint8_t* py = y.codes->codes.mutableData<std::uint8_t>();
        for (std::int64_t r = 0; r < rows; ++r) {
            const std::uint8_t* in = px + r * length;
            const std::uint8_t top = *std::max_element(in, in + length);
            std::uint64_t sum = 0;
            for (std::int64_t i = 0; i < length; ++i)
                sum += table[static_cast<std::size_t>(top - in[i])];
            const std::uint64_t denominator = sum << 16;
            for (std::int64_t i = 0; i < length; ++i) {
                const std::uint64_t numerator = table[static_cast<std::size_t>(top - in[i])] * inverseOutputScale;
                std::uint64_t q64 = numerator / denominator;
                const std::uint64_t remainder = numerator % denominator;
                if (2 * remainder > denominator || (2 * remainder == denominator && (q64 & 1)))
                    ++q64;
                const auto q = static_cast<std::int32_t>(q64);
                py[r * length + i] = static_cast<std::uint8_t>(std::clamp(q + output.zeroPoint, codeLo, codeHi));
            }
        }
        values[outputs[0]] = std::move(y);
    }
};

// Whether every output of a node that moves values is a float tensor (Dropout's optional mask is
// not, and stays in float).
bool allOutputsFloat(const Graph& graph, const Node& node)
{
    for (const std::string& out : node.outputs) {
        auto it = graph.values.find(out);
        if (!out.empty() && (it == graph.values.end() || it->second.dtype != DataType::Float32))
            return false;
    }
    return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Lowering

IntegerEngine::IntegerEngine(const QuantPlan& plan, Kernels kernels) : graph_(plan.graph), plans_(plan.plans)
{
    // Steps point into graph_ and plans_, the engine's own copies, so the plan may go away.
    const bool fastKernels = kernels == Kernels::Fast && (int8::fastKernelsAvailable() || int8::fusedKernelsAvailable());
    for (const Node& node : graph_.nodes)
        if (!findKernel(node.domain, node.opType))
            throw Error(unsupportedOperatorMessage(node.name, node.opType, node.domain));

    // Which tensors hold codes, and with which parameters when those are known before running.
    std::map<std::string, std::optional<ActivationParams>> quantized;
    std::map<int, std::size_t> layerAtNode, layerAtOutputNode;
    for (std::size_t i = 0; i < plan.layers.size(); ++i) {
        if (plan.layers[i].nodeIndex >= 0)
            layerAtNode[plan.layers[i].nodeIndex] = i;
        if (plan.layers[i].outputNodeIndex >= 0)
            layerAtOutputNode[plan.layers[i].outputNodeIndex] = i;
    }
    std::map<std::string, LayerExecution> executionByLayer;
    auto record = [&](std::size_t layerIndex, bool integer, std::string reason, std::string kernel = "") {
        const QuantLayer& layer = plan.layers[layerIndex];
        const bool fast = integer && !kernel.empty() && kernel != "reference";
        executionByLayer[layer.name] = {layer.name, layer.opType, integer, fast, integer ? std::move(kernel) : "",
                                        integer ? "" : std::move(reason)};
    };
    // What runs a convolution or matrix product (TimedChoice picks between ours and oneDNN's).
    auto kernelName = [](bool fused, bool library) -> std::string {
        return fused && library ? "fused or onednn, timed" : fused ? "fused" : library ? "onednn" : "reference";
    };

    // The static integer output of a layer, or why it has none.
    auto staticOutput = [&](std::size_t layerIndex, std::string& why) -> std::optional<ActivationParams> {
        const LayerPlan& lp = plan.plans[layerIndex];
        if (lp.config.keepFloat) {
            why = "kept in float by the configuration";
            return std::nullopt;
        }
        if (lp.dynamicActivations) {
            why = "dynamic output range: computed in float, quantized at run time";
            return std::nullopt;
        }
        if (!lp.activationParams) {
            why = "output activations are not quantized";
            return std::nullopt;
        }
        if (!isIntegerActivationParams(*lp.activationParams)) {
            why = "output scheme " + std::string(schemeTraits(lp.activationParams->scheme).name) + " with " +
                  std::to_string(lp.activationParams->bits) + " bits has no integer form";
            return std::nullopt;
        }
        return toActivationParams(*lp.activationParams);
    };
    auto isQuantized = [&](const std::string& name) { return quantized.count(name) > 0; };
    // What shape inference knows of a tensor: its rank (-1 when unknown), and whether two tensors
    // certainly have one shape (the integer elementwise kernels do not broadcast).
    auto knownRank = [&](const std::string& name) {
        auto it = graph_.values.find(name);
        return it != graph_.values.end() && it->second.shapeKnown ? static_cast<int>(it->second.shape.size()) : -1;
    };
    auto sameKnownShape = [&](const std::string& a, const std::string& b) {
        auto ia = graph_.values.find(a), ib = graph_.values.find(b);
        if (ia == graph_.values.end() || ib == graph_.values.end() || !ia->second.shapeKnown || !ib->second.shapeKnown ||
            ia->second.shape.size() != ib->second.shape.size())
            return false;
        for (std::size_t d = 0; d < ia->second.shape.size(); ++d) {
            const Dim &x = ia->second.shape[d], &y = ib->second.shape[d];
            if (x.isDynamic() != y.isDynamic() || (x.isDynamic() ? x.symbol != y.symbol : x.value != y.value))
                return false;
        }
        return true;
    };
    auto staticParams = [&](const std::string& name) { return quantized.at(name); };
    auto allQuantized = [&](const std::vector<std::string>& names) {
        return std::all_of(names.begin(), names.end(), [&](const std::string& n) { return isQuantized(n); });
    };
    auto activationNode = [&](const QuantLayer& layer) -> const Node* {
        return layer.outputNodeIndex != layer.nodeIndex ? &graph_.nodes[static_cast<std::size_t>(layer.outputNodeIndex)] : nullptr;
    };

    // Graph inputs.
    for (std::size_t i = 0; i < plan.layers.size(); ++i) {
        const QuantLayer& layer = plan.layers[i];
        if (layer.nodeIndex >= 0)
            continue;
        const LayerPlan& lp = plan.plans[i];
        const bool dynamicUniform = lp.dynamicActivations && schemeTraits(lp.config.activations.scheme).family == SchemeFamily::Uniform &&
                                    lp.config.activations.bits <= 8;
        std::string why;
        auto params = staticOutput(i, why);
        if (params || dynamicUniform) {
            auto step = std::make_unique<QuantizeInput>();
            step->params = params;
            step->spec = lp.config.activations;
            step->inputs = {layer.output};
            step->outputs = {layer.output};
            quantized[layer.output] = params;
            steps_.push_back(std::move(step));
            record(i, true, "");
        } else {
            if (lp.activationParams || lp.dynamicActivations) {
                // Quantized, but not to integers (e.g. fp8): the float input is fake-quantized.
                auto step = std::make_unique<FakeQuantizeInput>();
                step->plan = &plans_[i];
                step->inputs = {layer.output};
                step->outputs = {layer.output};
                steps_.push_back(std::move(step));
            }
            record(i, false, why);
        }
    }

    std::set<int> skipped;  // fused activation nodes folded into their layer's requantization
    for (int index = 0; index < static_cast<int>(graph_.nodes.size()); ++index) {
        if (skipped.count(index))
            continue;
        const Node& node = graph_.nodes[static_cast<std::size_t>(index)];
        std::vector<std::string> dataInputs;
        for (const std::string& in : node.inputs)
            if (!in.empty() && !graph_.isInitializer(in))
                dataInputs.push_back(in);

        std::unique_ptr<Step> step;
        std::string why;
        auto layerIt = layerAtNode.find(index);
        if (layerIt != layerAtNode.end()) {
            const std::size_t li = layerIt->second;
            const QuantLayer& layer = plan.layers[li];
            const LayerPlan& lp = plan.plans[li];
            const auto output = staticOutput(li, why);
            const Node* fused = activationNode(layer);
            if (output && !allQuantized(dataInputs))
                why = "its input is not quantized (the layer before it runs in float)";
            else if (output) {
                const auto range = fusedCodeRange(graph_, fused, *lp.activationParams);
                const std::int32_t shift = output->zeroPoint - lp.activationParams->zeroPoint.at(0);  // +128 for int8 codes
                const std::int32_t lo = range ? range->first + shift : 0, hi = range ? range->second + shift : 0;
                const IntegerFamily family = operatorTraits(node.name, node.opType).integer;
                const bool hasWeights = family == IntegerFamily::Convolution || family == IntegerFamily::MatrixProduct;
                const QuantParams* wp = lp.weightParams ? &*lp.weightParams : nullptr;
                if (!range)
                    why = "its fused " + fused->opType + " has computed bounds";
                else if (hasWeights)
                    why = integerFormObstacle(graph_, layer, wp);  // one rule for the engine and the simulation
                if (!why.empty()) {
                    // runs in float, for `why` (below)
                } else if (family == IntegerFamily::Convolution) {
                    const Tensor& w = graph_.initializers.at(layer.weight);
                    auto s = std::make_unique<ConvStep>();
                    s->graph = &graph_;
                    s->groups = node.intAttribute("group", 1);
                    const auto codes = uniformCodes(w, *wp, 0);
                    s->setUp(node, graph_, layer, *wp, Tensor::fromValues<std::int32_t>(w.shape(), codes), w.dim(0),
                             w.size() / w.dim(0), *output, {lo, hi}, staticParams(dataInputs[0]));
                    if (fastKernels)
                        if (auto f = fastWeights(codes, w.shape(), wp->zeroPoint)) {
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
                    record(li, true, "", kernelName(s->depthwise || s->im2col, s->fast != nullptr));
                    step = std::move(s);
                } else if (family == IntegerFamily::MatrixProduct) {
                    const Tensor& w = graph_.initializers.at(layer.weight);
                    const bool transB = node.opType == "Gemm" && node.intAttribute("transB", 0) != 0;
                    // Codes in [K, N] whatever the stored layout.
                    const Tensor kn = transB ? runNode(Node{"", "Transpose", "", {}, {}, {}}, graph_.opsetVersion, {&w})[0] : w;
                    const std::int64_t n = kn.dim(1);
                    auto s = std::make_unique<GemmStep>();
                    const auto codes = uniformCodes(kn, *wp, 1);
                    s->setUp(node, graph_, layer, *wp, Tensor::fromValues<std::int32_t>(kn.shape(), codes), n, kn.dim(0), *output,
                             {lo, hi}, staticParams(dataInputs[0]));
                    if (fastKernels)
                        if (auto f = fastWeights(codes, kn.shape(), wp->zeroPoint)) {
                            if (int8::fusedKernelsAvailable())
                                s->fused = std::make_unique<int8::PackedGemm>(f->codes.data<std::int8_t>(), kn.dim(0), n, n, 1,
                                                                               f->zeroPoints);
                            if (int8::fastKernelsAvailable())
                                s->fast = std::make_unique<int8::FastMatMul>(f->codes, f->zeroPoints);
                        }
                    record(li, true, "", kernelName(s->fused != nullptr, s->fast != nullptr));
                    step = std::move(s);
                } else if (family == IntegerFamily::Elementwise && (node.opType == "Add" || node.opType == "Mul") && dataInputs.size() == 2 && node.inputs.size() == 2 &&
                           sameKnownShape(node.inputs[0], node.inputs[1])) {
                    if (node.opType == "Add") {
                        auto s = std::make_unique<AddStep>();
                        s->node = &node;
                        s->output = *output;
                        s->codeLo = lo;
                        s->codeHi = hi;
                        step = std::move(s);
                    } else {
                        auto s = std::make_unique<MulStep>();
                        s->node = &node;
                        s->output = *output;
                        s->codeLo = lo;
                        s->codeHi = hi;
                        step = std::move(s);
                    }
                    record(li, true, "");
                } else if (family == IntegerFamily::Elementwise && (node.opType == "Add" || node.opType == "Sub") && dataInputs.size() == 1 && node.inputs.size() == 2 &&
                           node.inputs[0] == dataInputs[0] && graph_.initializers.at(node.inputs[1]).dtype() == DataType::Float32 &&
                           [&] {
                               // The kernel handles a scalar, one value per channel of a 4-D input, or
                               // one per column of a 2-D input; anything else runs in float.
                               const Shape& c = graph_.initializers.at(node.inputs[1]).shape();
                               const int rank = knownRank(node.inputs[0]);
                               const bool channel = rank == 4 && ((c.size() == 3 && c[1] == 1 && c[2] == 1) ||
                                                                  (c.size() == 4 && c[0] == 1 && c[2] == 1 && c[3] == 1));
                               const bool column = rank == 2 && (c.size() == 1 || (c.size() == 2 && c[0] == 1));
                               return elementCount(c) == 1 || channel || column;
                           }()) {
                    auto s = std::make_unique<AddConstantStep>();
                    const Tensor& c = graph_.initializers.at(node.inputs[1]);
                    s->node = &node;
                    s->constant = c.toFloatVector();
                    if (node.opType == "Sub")
                        for (float& v : s->constant)
                            v = -v;
                    s->broadcast = c.size() == 1 ? AddConstantStep::Broadcast::Scalar
                                   : knownRank(node.inputs[0]) == 4 ? AddConstantStep::Broadcast::Channel
                                                                    : AddConstantStep::Broadcast::Column;
                    s->output = *output;
                    s->codeLo = lo;
                    s->codeHi = hi;
                    step = std::move(s);
                    record(li, true, "");
                } else if (family == IntegerFamily::Concat && dataInputs.size() == node.inputs.size()) {
                    auto s = std::make_unique<ConcatStep>();
                    s->node = &node;
                    s->graph = &graph_;
                    s->output = *output;
                    s->codeLo = lo;
                    s->codeHi = hi;
                    step = std::move(s);
                    record(li, true, "");
                } else if (family == IntegerFamily::Pooling) {
                    auto s = std::make_unique<AveragePoolStep>();
                    s->node = &node;
                    s->graph = &graph_;
                    s->global = node.opType == "GlobalAveragePool";
                    s->output = *output;
                    s->codeLo = lo;
                    s->codeHi = hi;
                    step = std::move(s);
                    record(li, true, "");
                } else if (family == IntegerFamily::Lookup && dataInputs.size() == 1 && node.inputs.size() == 1) {
                    auto s = std::make_unique<LookupStep>();
                    s->node = &node;
                    s->activation = fused;
                    s->graph = &graph_;
                    s->output = *output;
                    if (const auto in = staticParams(dataInputs[0])) {
                        s->prepared = s->table(*in);
                        s->preparedFor = *in;
                    }
                    step = std::move(s);
                    record(li, true, "");
                } else if (family == IntegerFamily::Softmax && dataInputs.size() == 1 && staticParams(dataInputs[0]) &&
                           output->scale >= 1.0 / 32768 && [&] {
                               // The last axis (opset 13's default; before 13 the default axis 1 is
                               // the last one for the 2-D score matrices classifiers produce).
                               const auto shape = graph_.values.count(node.inputs[0]) ? graph_.values.at(node.inputs[0]).shape : SymbolicShape{};
                               const std::int64_t rank = static_cast<std::int64_t>(shape.size());
                               const std::int64_t axis = node.intAttribute("axis", graph_.opsetVersion >= 13 ? -1 : 1);
                               return rank > 0 && (axis == -1 || axis == rank - 1);
                           }()) {
                    auto s = std::make_unique<SoftmaxStep>();
                    s->node = &node;
                    s->output = *output;
                    s->codeLo = lo;
                    s->codeHi = hi;
                    s->prepared = SoftmaxStep::exponentials(staticParams(dataInputs[0])->scale);
                    s->preparedFor = staticParams(dataInputs[0])->scale;
                    step = std::move(s);
                    record(li, true, "");
                } else {
                    why = "no integer kernel for this form of " + node.opType;
                }
                if (step) {
                    step->inputs = dataInputs;
                    step->outputs = {layer.output};
                    quantized[layer.output] = *output;
                    if (fused)
                        skipped.insert(layer.outputNodeIndex);
                }
            }
            if (!step)
                record(li, false, why);
        } else if (!dataInputs.empty() && isQuantized(node.inputs[0])) {
            // Operators that are not layers keep their input's parameters.
            const auto params = staticParams(node.inputs[0]);
            const OperatorTraits& traits = operatorTraits(node.name, node.opType);
            const IntegerFamily family = traits.integer;
            if (family == IntegerFamily::MaxPool && node.outputs.size() == 1) {
                auto s = std::make_unique<MaxPoolStep>();
                s->node = &node;
                s->graph = &graph_;
                step = std::move(s);
            } else if (family == IntegerFamily::Lookup && keepsInputParameters(traits.role)) {
                // A lone Relu: its table on the input's codes, whose parameters it keeps.
                auto s = std::make_unique<LookupStep>();
                s->node = &node;
                s->graph = &graph_;
                if (params) {
                    s->prepared = s->table(*params);
                    s->preparedFor = *params;
                }
                step = std::move(s);
            } else if (family == IntegerFamily::Move && allOutputsFloat(graph_, node)) {
                auto s = std::make_unique<MoveStep>();
                s->node = &node;
                s->graph = &graph_;
                step = std::move(s);
            }
            if (step) {
                step->inputs = dataInputs;
                step->outputs = node.outputs;
                for (const std::string& out : node.outputs)
                    quantized[out] = params;
            }
        }

        if (!step) {
            auto s = std::make_unique<FloatStep>();
            s->node = &node;
            s->graph = &graph_;
            auto out = layerAtOutputNode.find(index);
            if (out != layerAtOutputNode.end()) {
                const LayerPlan& lp = plans_[out->second];
                if (!lp.config.keepFloat && (lp.activationParams || lp.dynamicActivations)) {
                    s->outputPlan = &lp;
                    const TensorQuantSpec& spec = lp.config.activations;
                    s->outputToCodes = lp.activationParams ? isIntegerActivationParams(*lp.activationParams)
                                                           : schemeTraits(spec.scheme).family == SchemeFamily::Uniform && spec.bits <= 8;
                    if (s->outputToCodes)
                        quantized[node.outputs[0]] = lp.activationParams ? std::optional(toActivationParams(*lp.activationParams))
                                                                         : std::nullopt;
                }
            }
            s->inputs = dataInputs;
            s->outputs = node.outputs;
            step = std::move(s);
        }
        steps_.push_back(std::move(step));
    }

    for (const QuantLayer& layer : plan.layers)
        execution_.push_back(executionByLayer.count(layer.name) ? executionByLayer.at(layer.name)
                                                                 : LayerExecution{layer.name, layer.opType, false, false, "", "not reached"});
    for (std::size_t i = 0; i < steps_.size(); ++i)
        for (const std::string& in : steps_[i]->inputs)
            lastUse_[in] = i;
}

IntegerEngine::~IntegerEngine() = default;

std::size_t IntegerEngine::integerLayerCount() const
{
    return static_cast<std::size_t>(std::count_if(execution_.begin(), execution_.end(), [](const LayerExecution& e) { return e.integer; }));
}

IntegerRunResult IntegerEngine::run(const TensorMap& feeds, const RunOptions& options, bool timeSteps) const
{
    IntegerRunResult result;
    Values values;
    for (const ValueInfo& input : graph_.inputs) {
        auto it = feeds.find(input.name);
        if (it == feeds.end())
            throw Error("graph input '" + input.name + "' was not given");
        values[input.name].real = it->second;
    }
    std::set<std::string> keep = options.capture;
    for (const ValueInfo& output : graph_.outputs)
        keep.insert(output.name);
    for (std::size_t i = 0; i < steps_.size(); ++i) {
        if (options.cancel && options.cancel->load())
            throw Cancelled();
        const auto start = std::chrono::steady_clock::now();
        steps_[i]->run(values);
        if (timeSteps) {
            const Step& step = *steps_[i];
            int status = 0;
            char* kind = abi::__cxa_demangle(typeid(step).name(), nullptr, nullptr, &status);
            std::string name = status == 0 && kind ? kind : typeid(step).name();
            std::free(kind);
            name = name.substr(name.rfind(':') == std::string::npos ? 0 : name.rfind(':') + 1);  // no namespaces
            result.profile.push_back({name, step.outputs.empty() ? "" : step.outputs[0],
                                      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count()});
        }
        for (const std::string& in : steps_[i]->inputs) {
            auto last = lastUse_.find(in);
            if (last != lastUse_.end() && last->second == i && !keep.count(in))
                values.erase(in);
        }
    }
    for (const std::string& name : keep) {
        auto it = values.find(name);
        if (it == values.end())
            continue;
        if (it->second.codes)
            result.codes[name] = *it->second.codes;
        result.outputs[name] = it->second.realValues();
    }
    return result;
}

Tensor runIntegerSingle(const IntegerEngine& engine, const std::string& inputName, const Tensor& input)
{
    IntegerRunResult r = engine.run({{inputName, input}});
    if (r.outputs.size() != 1)
        throw Error("expected a model with one output");
    return r.outputs.begin()->second;
}

}  // namespace qe
