// Steps at the border of integers: graph inputs to codes (or fake-quantized), and nodes the
// integer kernels do not take, run by the fp32 kernels on dequantized values.
#include "engine/int8/steps.h"

#include "common/error.h"

#include <utility>

namespace qe::int8_steps {

using int8::ActivationParams;
using int8::ChannelRequantization;
using int8::FixedPointMultiplier;
using int8::QuantizedTensor;

namespace {

struct QuantizeInput final : Step {
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
struct FakeQuantizeInput final : Step {
    const LayerPlan* plan = nullptr;  // the engine's own copy
    void run(Values& values) const override
    {
        IntegerEngine::Value& v = values.at(inputs[0]);
        v.real = fakeQuantize(v.realValues(), activationParamsFor(*plan, v.realValues()));
    }
};

// A node run by the fp32 kernels on dequantized inputs; its output may then be quantized.
struct FloatStep final : Step {
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

}  // namespace

std::unique_ptr<Step> quantizeInputStep(const std::optional<ActivationParams>& params, const TensorQuantSpec& spec)
{
    auto step = std::make_unique<QuantizeInput>();
    step->params = params;
    step->spec = spec;
    return step;
}

std::unique_ptr<Step> fakeQuantizeInputStep(const LayerPlan& plan)
{
    auto step = std::make_unique<FakeQuantizeInput>();
    step->plan = &plan;
    return step;
}

std::unique_ptr<Step> floatStep(const Graph& graph, const Node& node, const LayerPlan* outputPlan, bool outputToCodes)
{
    auto step = std::make_unique<FloatStep>();
    step->node = &node;
    step->graph = &graph;
    step->outputPlan = outputPlan;
    step->outputToCodes = outputToCodes;
    return step;
}

ActivationParams toActivationParams(const QuantParams& p)
{
    const std::int32_t shift = p.isSigned ? 128 : 0;
    ActivationParams a;
    a.scale = p.uniform().scale.at(0);
    a.zeroPoint = p.uniform().zeroPoint.at(0) + shift;
    a.codeMin = p.qmin + shift;
    a.codeMax = p.qmax + shift;
    a.isSigned = p.isSigned;
    return a;
}

void fail(const Node& node, const std::string& message)
{
    throw Error("node '" + node.name + "' (" + node.opType + "): " + message);
}

FixedPointMultiplier checkedMultiplier(double m, const Node& node)
{
    if (!int8::isUsableMultiplier(m))
        fail(node, "the rescale factor " + std::to_string(m) + " (input scale x weight scale / output scale) is out of range");
    return int8::prepareMultiplier(m);
}

IntegerEngine::Value newCodes(const ActivationParams& params, Shape shape, bool channelsLast)
{
    IntegerEngine::Value y;
    y.codes.emplace();
    y.codes->params = params;
    y.codes->channelsLast = channelsLast;
    y.codes->codes = Tensor::uninitialized(DataType::UInt8, std::move(shape));
    return y;
}

}  // namespace qe::int8_steps
