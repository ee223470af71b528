// Add, Mul, Add/Sub of a constant, Mul by a scalar constant and Concat on codes: each output code is one integer
// expression of the input codes, rounded once.
#include "engine/int8/steps.h"

#include "common/error.h"
#include "model/graph.h"

#include <algorithm>
#include <cmath>

namespace qe::int8_steps {

using int8::ActivationParams;
using int8::ChannelRequantization;
using int8::FixedPointMultiplier;
using int8::QuantizedTensor;

namespace {

// The power of two that scales rescale factors up to `largest` into integers below 2^31, so that
// a sum of terms (code difference <= 255) times them stays below 2^39 in 64 bits.
int sumShift(double largest)
{
    int shift = 30;
    while (shift > 1 && largest * std::ldexp(1.0, shift) >= 2147483648.0)
        --shift;
    return shift;
}

// From this many elements an Add of two code tensors looks its codes up in a table of all 65,536
// pairs (twice as many elements as entries: the table, computed on every core, pays for itself);
// below, it computes each element. Both give the same codes.
constexpr std::int64_t kAddTableUse = std::int64_t{2} << 16;

// Both inputs brought to one layout (channels-last when either is, for rank 4).
std::pair<QuantizedTensor, QuantizedTensor> sameLayout(const QuantizedTensor& a, const QuantizedTensor& b)
{
    if (a.channelsLast || b.channelsLast)
        return {int8::toChannelsLast(a), int8::toChannelsLast(b)};
    return {a, b};
}

// The two quantized operands of an elementwise step, in one layout and of one shape.
std::pair<QuantizedTensor, QuantizedTensor> elementwiseOperands(const Values& values, const Step& step, const Node& node)
{
    auto operands = sameLayout(*values.at(step.inputs[0]).codes, *values.at(step.inputs[1]).codes);
    if (operands.first.codes.shape() != operands.second.codes.shape())
        fail(node, "integer " + node.opType + " needs equal shapes, got " + operands.first.codes.describe() + " and " +
                       operands.second.codes.describe());
    return operands;
}

// Add: y = zy + round((a - za) * sa / sy + (b - zb) * sb / sy), both terms scaled by 2^shift into
// one 64-bit sum and rounded once (half to even).
struct AddStep final : Step {
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
        // Captured by value: the stores through py (bytes, which may alias anything) would
        // otherwise make every element load the parameters again.
        const auto requantizedSum = [za = a.params.zeroPoint, zb = b.params.zeroPoint, qa, qb, shift, zy = output.zeroPoint,
                                     lo = codeLo, hi = codeHi](std::int32_t ca, std::int32_t cb) {
            const std::int64_t sum = (ca - za) * qa + (cb - zb) * qb;
            const auto scaled = static_cast<std::int32_t>(int8::roundingShift(sum, shift));
            return static_cast<std::uint8_t>(std::clamp(scaled + zy, lo, hi));
        };
        const std::int64_t count = a.codes.size();
        if (count >= kAddTableUse) {
            // Each output code is a function of the two input codes: where there are many more
            // elements than the 65,536 pairs, a table computed with the same expression replaces
            // the 64-bit arithmetic (ResNet-18's residual Adds were a quarter of its int8 time at
            // batch 32 on the scalar loop).
            std::vector<std::uint8_t> table(std::size_t{1} << 16);
#pragma omp parallel for schedule(static)
            for (std::int32_t ca = 0; ca < 256; ++ca)
                for (std::int32_t cb = 0; cb < 256; ++cb)
                    table[static_cast<std::size_t>(ca << 8 | cb)] = requantizedSum(ca, cb);
#pragma omp parallel for schedule(static)
            for (std::int64_t i = 0; i < count; ++i)
                py[i] = table[static_cast<std::size_t>(pa[i] << 8 | pb[i])];
        } else {
            for (std::int64_t i = 0; i < count; ++i)
                py[i] = requantizedSum(pa[i], pb[i]);
        }
        values[outputs[0]] = std::move(y);
    }
};

// Add (or Sub) of a constant, e.g. a bias added after a Conv or MatMul that has none:
//     y = zy + round((a - za) * sa / sy + c / sy)
// with both terms scaled by 2^shift into one 64-bit integer (the constant prepared once per
// input scale) and rounded once, half to even. The constant is a scalar, one value per channel
// (axis 1 of a 4-D tensor) or one per column (the last axis of a tensor of another rank: a
// transformer's [batch, tokens, channels] takes its bias this way).
struct AddConstantStep final : Step {
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
        else if (broadcast == Broadcast::Column && logical.size() >= 2 && logical.size() != 4)
            channels = logical.back();
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
        const auto requantized = [&](std::int32_t code, std::int64_t channel) {
            const std::int64_t sum = (code - a.params.zeroPoint) * qa + qc[static_cast<std::size_t>(channel)];
            return static_cast<std::uint8_t>(std::clamp(static_cast<std::int32_t>(int8::roundingShift(sum, shift)) + output.zeroPoint, codeLo, codeHi));
        };
        IntegerEngine::Value y = newCodes(output, a.codes.shape(), a.channelsLast);
        const std::uint8_t* pa = a.codes.data<std::uint8_t>();
        std::uint8_t* py = y.codes->codes.mutableData<std::uint8_t>();
        // The elements run as [outer][channels][inner]: inner is 1 when channels-last (or a column
        // constant), else the plane of N C H W.
        const std::int64_t inner = a.channelsLast || logical.size() != 4 ? 1 : logical[2] * logical[3];
        const std::int64_t outer = a.codes.size() / std::max<std::int64_t>(1, channels * inner);
        // Each channel maps the 256 input codes to output codes: where there are more elements than
        // table entries, a table computed with the same expression replaces the 64-bit arithmetic.
        if (a.codes.size() >= channels * 256) {
            std::vector<std::uint8_t> table(static_cast<std::size_t>(channels * 256));
            for (std::int64_t c = 0; c < channels; ++c)
                for (std::int32_t code = 0; code < 256; ++code)
                    table[static_cast<std::size_t>(c * 256 + code)] = requantized(code, c);
            for (std::int64_t o = 0, i = 0; o < outer; ++o)
                for (std::int64_t c = 0; c < channels; ++c) {
                    const std::uint8_t* t = table.data() + c * 256;
                    for (std::int64_t k = 0; k < inner; ++k, ++i)
                        py[i] = t[pa[i]];
                }
        } else {
            for (std::int64_t o = 0, i = 0; o < outer; ++o)
                for (std::int64_t c = 0; c < channels; ++c)
                    for (std::int64_t k = 0; k < inner; ++k, ++i)
                        py[i] = requantized(pa[i], c);
        }
        values[outputs[0]] = std::move(y);
    }
};

// Mul by a scalar constant c (attention's 1/sqrt(d), GELU's 0.5), or Div by 1/c:
//     y = zy + round(sign(c) (a - za) * |c| sa / sy)
// with the fixed-point multiplier of |c| sa / sy.
struct MulConstantStep final : Step {
    const Node* node = nullptr;
    float constant = 1.f;
    ActivationParams output;
    std::int32_t codeLo = 0, codeHi = 255;
    void run(Values& values) const override
    {
        const QuantizedTensor& a = *values.at(inputs[0]).codes;
        const FixedPointMultiplier m =
            checkedMultiplier(std::abs(static_cast<double>(constant)) * a.params.scale / output.scale, *node);
        const std::int32_t sign = constant < 0 ? -1 : 1;
        // One output code per input code: a table of 256 replaces the 64-bit arithmetic per element.
        std::uint8_t table[256];
        for (std::int32_t code = 0; code < 256; ++code)
            table[code] = static_cast<std::uint8_t>(int8::requantize(sign * (code - a.params.zeroPoint), m, output.zeroPoint, codeLo, codeHi));
        IntegerEngine::Value y = newCodes(output, a.codes.shape(), a.channelsLast);
        const std::uint8_t* pa = a.codes.data<std::uint8_t>();
        std::uint8_t* py = y.codes->codes.mutableData<std::uint8_t>();
        for (std::int64_t i = 0; i < a.codes.size(); ++i)
            py[i] = table[pa[i]];
        values[outputs[0]] = std::move(y);
    }
};

// Mul: y = zy + round((a - za) * (b - zb) * sa * sb / sy).
struct MulStep final : Step {
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

struct ConcatStep final : Step {
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

}  // namespace

LoweredLayer lowerElementwise(const LayerLowering& l)
{
    const Node& node = l.node;
    const Graph& graph = l.graph;
    // The integer kernels do not broadcast two data inputs: both must certainly have one shape.
    const auto sameKnownShape = [&](const std::string& a, const std::string& b) {
        auto ia = graph.values.find(a), ib = graph.values.find(b);
        if (ia == graph.values.end() || ib == graph.values.end() || !ia->second.shapeKnown || !ib->second.shapeKnown ||
            ia->second.shape.size() != ib->second.shape.size())
            return false;
        for (std::size_t d = 0; d < ia->second.shape.size(); ++d) {
            const Dim &x = ia->second.shape[d], &y = ib->second.shape[d];
            if (x.isDynamic() != y.isDynamic() || (x.isDynamic() ? x.symbol != y.symbol : x.value != y.value))
                return false;
        }
        return true;
    };
    const auto knownRank = [&](const std::string& name) {
        auto it = graph.values.find(name);
        return it != graph.values.end() && it->second.shapeKnown ? static_cast<int>(it->second.shape.size()) : -1;
    };

    if ((node.opType == "Add" || node.opType == "Mul") && l.dataInputs.size() == 2 && node.inputs.size() == 2 &&
        sameKnownShape(node.inputs[0], node.inputs[1])) {
        if (node.opType == "Add") {
            auto s = std::make_unique<AddStep>();
            s->node = &node;
            s->output = l.output;
            s->codeLo = l.codeLo;
            s->codeHi = l.codeHi;
            return {std::move(s), ""};
        }
        auto s = std::make_unique<MulStep>();
        s->node = &node;
        s->output = l.output;
        s->codeLo = l.codeLo;
        s->codeHi = l.codeHi;
        return {std::move(s), ""};
    }
    // Mul by a scalar constant on either side, or Div by one (GELU's x / sqrt(2)): a rescale.
    const bool divide = node.opType == "Div" && node.inputs.size() == 2 && l.dataInputs.size() == 1 && node.inputs[0] == l.dataInputs[0];
    if ((node.opType == "Mul" || divide) && l.dataInputs.size() == 1 && node.inputs.size() == 2) {
        const std::string& other = node.inputs[0] == l.dataInputs[0] ? node.inputs[1] : node.inputs[0];
        auto c = graph.initializers.find(other);
        if (c == graph.initializers.end() || c->second.dtype() != DataType::Float32 || c->second.size() != 1 ||
            (divide && c->second.data<float>()[0] == 0.f))
            return {};
        auto s = std::make_unique<MulConstantStep>();
        s->node = &node;
        s->constant = divide ? 1.f / c->second.data<float>()[0] : c->second.data<float>()[0];
        s->output = l.output;
        s->codeLo = l.codeLo;
        s->codeHi = l.codeHi;
        return {std::move(s), ""};
    }
    // Add takes its constant on either side (PyTorch writes a Linear's bias first); Sub on the right.
    const bool constantFirst = node.opType == "Add" && node.inputs.size() == 2 && l.dataInputs.size() == 1 &&
                               node.inputs[1] == l.dataInputs[0] && graph.isInitializer(node.inputs[0]);
    const std::string constantName = node.inputs.size() == 2 ? node.inputs[constantFirst ? 0 : 1] : std::string();
    if ((node.opType == "Add" || node.opType == "Sub") && l.dataInputs.size() == 1 && node.inputs.size() == 2 &&
        (constantFirst || node.inputs[0] == l.dataInputs[0]) && graph.initializers.at(constantName).dtype() == DataType::Float32) {
        // The kernel handles a scalar, one value per channel of a 4-D input, or one per column
        // (last axis) of an input of another rank; anything else runs in float.
        const Tensor& c = graph.initializers.at(constantName);
        const Shape& shape = c.shape();
        const int rank = knownRank(l.dataInputs[0]);
        const bool channel = rank == 4 && ((shape.size() == 3 && shape[1] == 1 && shape[2] == 1) ||
                                           (shape.size() == 4 && shape[0] == 1 && shape[2] == 1 && shape[3] == 1));
        const bool column = rank >= 2 && rank != 4 && !shape.empty() && static_cast<int>(shape.size()) <= rank &&
                            elementCount(shape) == shape.back();  // [C] or [1, ..., 1, C]
        if (elementCount(shape) != 1 && !channel && !column)
            return {};
        auto s = std::make_unique<AddConstantStep>();
        s->node = &node;
        s->constant = c.toFloatVector();
        if (node.opType == "Sub")
            for (float& v : s->constant)
                v = -v;
        s->broadcast = c.size() == 1 ? AddConstantStep::Broadcast::Scalar
                       : rank == 4   ? AddConstantStep::Broadcast::Channel
                                     : AddConstantStep::Broadcast::Column;
        s->output = l.output;
        s->codeLo = l.codeLo;
        s->codeHi = l.codeHi;
        return {std::move(s), ""};
    }
    return {};
}

LoweredLayer lowerConcat(const LayerLowering& l)
{
    if (l.dataInputs.size() != l.node.inputs.size())
        return {};
    auto s = std::make_unique<ConcatStep>();
    s->node = &l.node;
    s->graph = &l.graph;
    s->output = l.output;
    s->codeLo = l.codeLo;
    s->codeHi = l.codeHi;
    return {std::move(s), ""};
}

}  // namespace qe::int8_steps
