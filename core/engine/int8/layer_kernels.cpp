// The simulation's integer layers on the engine's own steps (attachIntegerKernels).
#include "engine/int8/integer_engine.h"

#include "engine/int8/kernels/fast_kernels.h"
#include "engine/int8/kernels/fused_kernels.h"
#include "engine/int8/steps.h"
#include "model/operator_traits.h"
#include "quant/integer_layers.h"

namespace qe {

using namespace int8_steps;

namespace {

// One Conv, Gemm or MatMul lowered exactly as the engine lowers it, on a graph of its own: the
// node, its fused activation and their constants (the step keeps pointers into it; the tensors
// share their storage with the plan's).
class EngineLayerKernels final : public IntegerLayerKernels {
public:
    static std::shared_ptr<const EngineLayerKernels> make(const QuantPlan& plan, const QuantLayer& layer, const LayerPlan& layerPlan,
                                                         const IntegerWeightedLayer& prepared)
    {
        auto k = std::shared_ptr<EngineLayerKernels>(new EngineLayerKernels);
        k->graph_.name = plan.graph.name;
        k->graph_.sourcePath = plan.graph.sourcePath;
        k->graph_.opsetVersion = plan.graph.opsetVersion;
        k->graph_.nodes.push_back(plan.graph.nodes.at(static_cast<std::size_t>(layer.nodeIndex)));
        const bool fused = layer.outputNodeIndex != layer.nodeIndex;
        if (fused)
            k->graph_.nodes.push_back(plan.graph.nodes.at(static_cast<std::size_t>(layer.outputNodeIndex)));
        for (const Node& node : k->graph_.nodes)
            for (const std::string& in : node.inputs)
                if (plan.graph.isInitializer(in))
                    k->graph_.initializers[in] = plan.graph.initializers.at(in);
        k->layer_ = layer;
        k->plan_ = layerPlan;
        k->input_ = toActivationParams(prepared.input);
        k->output_ = toActivationParams(prepared.output);
        const std::int32_t shift = k->output_.zeroPoint - prepared.output.uniform().zeroPoint.at(0);  // +128 for int8 codes
        const Node& node = k->graph_.nodes.front();
        const LayerLowering lowering{.graph = k->graph_,
                                     .node = node,
                                     .layer = k->layer_,
                                     .plan = k->plan_,
                                     .fusedActivation = fused ? &k->graph_.nodes.back() : nullptr,
                                     .output = k->output_,
                                     .codeLo = prepared.codeMin + shift,
                                     .codeHi = prepared.codeMax + shift,
                                     .dataInputs = {node.input(0)},
                                     .inputParams = {k->input_},
                                     .fastKernels = int8::fastKernelsAvailable() || int8::fusedKernelsAvailable()};
        LoweredLayer lowered = lowerLayer(operatorTraits(node.name, node.opType).integer, lowering);
        // The reference kernels are slower than the float kernel the simulation would use.
        if (!lowered.step || lowered.kernel == "reference")
            return nullptr;
        k->step_ = std::move(lowered.step);
        k->step_->inputs = {"x"};
        k->step_->outputs = {"y"};
        return k;
    }

    Tensor run(const Tensor& input, const int8::QuantizedTensor* inputCodes, int8::QuantizedTensor* outputCodes) const override
    {
        Values values;
        // The input holds values on its grid, (code - zero-point) * scale: quantizing them again
        // gives back their codes exactly, which the previous layer may have given. Images go
        // channels-last, as the convolutions read them.
        const bool image = input.rank() == 4;
        if (inputCodes && inputCodes->params == input_ && inputCodes->channelsLast == image && inputCodes->logicalShape() == input.shape())
            values["x"].codes = *inputCodes;
        else
            values["x"].codes = image ? int8::quantizeToChannelsLast(input, input_) : int8::quantize(input, input_);
        step_->run(values);
        IntegerEngine::Value& y = values.at("y");
        if (outputCodes && y.codes)
            *outputCodes = *y.codes;
        return y.realValues();
    }

private:
    EngineLayerKernels() = default;
    Graph graph_;
    QuantLayer layer_;
    LayerPlan plan_;
    int8::ActivationParams input_, output_;
    std::unique_ptr<Step> step_;
};

}  // namespace

void attachIntegerKernels(QuantPlan& plan, const QuantPlan* previous)
{
    std::map<int, std::size_t> layerAtNode;
    for (std::size_t i = 0; i < plan.layers.size(); ++i)
        if (plan.layers[i].nodeIndex >= 0)
            layerAtNode[plan.layers[i].nodeIndex] = i;
    for (auto& [node, prepared] : plan.integerLayers) {
        if (previous) {
            auto old = previous->integerLayers.find(node);
            if (old != previous->integerLayers.end() && old->second.kernels && old->second.sameAs(prepared)) {
                prepared.kernels = old->second.kernels;
                continue;
            }
        }
        const std::size_t index = layerAtNode.at(node);
        prepared.kernels = EngineLayerKernels::make(plan, plan.layers[index], plan.plans[index], prepared);
    }
}

}  // namespace qe
