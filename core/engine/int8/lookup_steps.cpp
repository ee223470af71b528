// Functions of one quantized input by a table of its 256 codes, and Softmax in integers.
#include "engine/int8/steps.h"

#include "common/error.h"

#include <algorithm>
#include <cmath>

namespace qe::int8_steps {

using int8::ActivationParams;
using int8::ChannelRequantization;
using int8::FixedPointMultiplier;
using int8::QuantizedTensor;

namespace {

// An elementwise function of one quantized input as a table of its 256 codes, built by running
// the float kernels on the dequantized codes: the same float arithmetic as the simulation.
struct LookupStep final : Step {
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

// Softmax along the last axis in integers (as TFLite's int8 softmax does, with a table of
// exponentials): with d = max(q) - q, e(d) = round(2^24 exp(-scale d)) from a 256-entry table,
//     y = zy + round(e / (sum(e) * sy))
// computed as (e * round(2^16 / sy)) / (sum(e) * 2^16) in 64-bit integers, ties to even.
struct SoftmaxStep final : Step {
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
        // Locals, not members: a store through the byte pointer could alias them, so the compiler
        // would load the members again for every element.
        const std::int32_t zeroPoint = output.zeroPoint, lo = codeLo, hi = codeHi;
        for (std::int64_t r = 0; r < rows; ++r) {
            const std::uint8_t* in = px + r * length;
            const std::uint8_t top = *std::max_element(in, in + length);
            std::uint64_t sum = 0;
            for (std::int64_t i = 0; i < length; ++i)
                sum += table[static_cast<std::size_t>(top - in[i])];
            const std::uint64_t denominator = sum << 16;
            // The quotient from a double reciprocal, corrected to the exact one: it is small (the
            // denominator is at least 2^40), so the reciprocal's rounding leaves it off by at most
            // one, and a 64-bit division per element cost more than the rest of the row. Signed
            // 64-bit values (all below 2^63) convert to and from double in one instruction each.
            const auto den = static_cast<std::int64_t>(denominator);
            const double reciprocal = 1.0 / static_cast<double>(den);
            for (std::int64_t i = 0; i < length; ++i) {
                const auto numerator = static_cast<std::int64_t>(table[static_cast<std::size_t>(top - in[i])] * inverseOutputScale);
                auto q64 = static_cast<std::int64_t>(static_cast<double>(numerator) * reciprocal);
                std::int64_t remainder = numerator - q64 * den;
                if (remainder < 0) {
                    --q64;
                    remainder += den;
                } else if (remainder >= den) {
                    ++q64;
                    remainder -= den;
                }
                // Half to even, without a branch: the rounding direction is a coin toss per element.
                q64 += static_cast<std::int64_t>((2 * remainder > den) | ((2 * remainder == den) & (q64 & 1)));
                const auto q = static_cast<std::int32_t>(q64);
                py[r * length + i] = static_cast<std::uint8_t>(std::clamp(q + zeroPoint, lo, hi));
            }
        }
        values[outputs[0]] = std::move(y);
    }
};

}  // namespace

LoweredLayer lowerLookup(const LayerLowering& l)
{
    if (l.dataInputs.size() != 1 || l.node.inputs.size() != 1)
        return {};
    auto s = std::make_unique<LookupStep>();
    s->node = &l.node;
    s->activation = l.fusedActivation;
    s->graph = &l.graph;
    s->output = l.output;
    if (const auto& in = l.inputParams.at(0)) {
        s->prepared = s->table(*in);
        s->preparedFor = *in;
    }
    return {std::move(s), ""};
}

LoweredLayer lowerSoftmax(const LayerLowering& l)
{
    if (l.dataInputs.size() != 1 || !l.inputParams.at(0) || l.output.scale < 1.0 / 32768)
        return {};
    // The last axis (opset 13's default; before 13 the default axis 1 is the last one for the
    // 2-D score matrices classifiers produce).
    const Graph& graph = l.graph;
    const auto shape = graph.values.count(l.node.inputs[0]) ? graph.values.at(l.node.inputs[0]).shape : SymbolicShape{};
    const std::int64_t rank = static_cast<std::int64_t>(shape.size());
    const std::int64_t axis = l.node.intAttribute("axis", graph.opsetVersion >= 13 ? -1 : 1);
    if (rank == 0 || (axis != -1 && axis != rank - 1))
        return {};
    auto s = std::make_unique<SoftmaxStep>();
    s->node = &l.node;
    s->output = l.output;
    s->codeLo = l.codeLo;
    s->codeHi = l.codeHi;
    s->prepared = SoftmaxStep::exponentials(l.inputParams[0]->scale);
    s->preparedFor = l.inputParams[0]->scale;
    return {std::move(s), ""};
}

std::unique_ptr<Step> lowerLookupKeepingParameters(const Graph& graph, const Node& node, const std::optional<ActivationParams>& input)
{
    // A lone Relu: its table on the input's codes, whose parameters it keeps.
    auto s = std::make_unique<LookupStep>();
    s->node = &node;
    s->graph = &graph;
    if (input) {
        s->prepared = s->table(*input);
        s->preparedFor = *input;
    }
    return s;
}

}  // namespace qe::int8_steps
