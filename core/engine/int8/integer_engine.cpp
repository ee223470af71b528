// The lowering: the plan's graph walked node by node, each node given to the step family the
// operator table names (steps.h), or run in float where no family takes it.
#include "engine/int8/integer_engine.h"

#include "common/error.h"
#include "engine/int8/kernels/fast_kernels.h"
#include "engine/int8/kernels/fused_kernels.h"
#include "engine/int8/steps.h"
#include "model/operator_traits.h"
#include "quant/integer_layers.h"

#include <cxxabi.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <set>
#include <typeinfo>

namespace qe {

using int8::ActivationParams;
using namespace int8_steps;

LoweredLayer int8_steps::lowerLayer(IntegerFamily family, const LayerLowering& layer)
{
    switch (family) {
    case IntegerFamily::Convolution: return lowerConvolution(layer);
    case IntegerFamily::MatrixProduct: return lowerMatrixProduct(layer);
    case IntegerFamily::Elementwise: return lowerElementwise(layer);
    case IntegerFamily::Concat: return lowerConcat(layer);
    case IntegerFamily::Pooling: return lowerAveragePool(layer);
    case IntegerFamily::Lookup: return lowerLookup(layer);
    case IntegerFamily::Softmax: return lowerSoftmax(layer);
    case IntegerFamily::None:
    case IntegerFamily::MaxPool:  // keeps its input's parameters: not a layer of its own
    case IntegerFamily::Move: return {};
    }
    return {};
}

namespace {

// The family's lowering for a node that is no layer of its own and keeps its input's parameters.
std::unique_ptr<IntegerEngine::Step> lowerKeepingParameters(const OperatorTraits& traits, const Graph& graph, const Node& node,
                                                            const std::optional<ActivationParams>& input)
{
    switch (traits.integer) {
    case IntegerFamily::MaxPool: return lowerMaxPool(graph, node);
    case IntegerFamily::Lookup: return keepsInputParameters(traits.role) ? lowerLookupKeepingParameters(graph, node, input) : nullptr;
    case IntegerFamily::Move: return lowerMove(graph, node);
    default: return nullptr;
    }
}

}  // namespace

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

    // The static integer output of a layer, or why it has none.
    auto staticOutput = [&](std::size_t layerIndex, std::string& why) -> std::optional<ActivationParams> {
        const LayerPlan& lp = plan.plans[layerIndex];
        if (lp.config.keepFloat) {
            why = "kept in float by the configuration";
            return std::nullopt;
        }
        if (lp.dynamicActivations) {
            why = lp.config.activations.granularity == Granularity::PerToken
                      ? "dynamic per-token ranges: computed in float, each row quantized at run time (an integer kernel would need a scale per row)"
                      : "dynamic output range: computed in float, quantized at run time";
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
    auto allQuantized = [&](const std::vector<std::string>& names) {
        return std::all_of(names.begin(), names.end(), [&](const std::string& n) { return isQuantized(n); });
    };

    // Graph inputs.
    for (std::size_t i = 0; i < plan.layers.size(); ++i) {
        const QuantLayer& layer = plan.layers[i];
        if (layer.nodeIndex >= 0)
            continue;
        const LayerPlan& lp = plan.plans[i];
        const bool dynamicUniform = dynamicActivationCodes(lp);
        std::string why;
        auto params = staticOutput(i, why);
        std::unique_ptr<Step> step;
        if (params || dynamicUniform) {
            step = quantizeInputStep(params, lp.config.activations);
            quantized[layer.output] = params;
            record(i, true, "");
        } else {
            if (lp.activationParams || lp.dynamicActivations)
                step = fakeQuantizeInputStep(plans_[i]);  // quantized, but not to integers (e.g. fp8)
            record(i, false, why);
        }
        if (step) {
            step->inputs = {layer.output};
            step->outputs = {layer.output};
            steps_.push_back(std::move(step));
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
            const Node* fused = layer.outputNodeIndex != layer.nodeIndex ? &graph_.nodes[static_cast<std::size_t>(layer.outputNodeIndex)] : nullptr;
            if (output && !allQuantized(dataInputs))
                why = "its input is not quantized (the layer before it runs in float)";
            else if (output) {
                const auto range = fusedCodeRange(graph_, fused, *lp.activationParams);
                const std::int32_t shift = output->zeroPoint - lp.activationParams->uniform().zeroPoint.at(0);  // +128 for int8 codes
                const IntegerFamily family = operatorTraits(node.name, node.opType).integer;
                // A MatMul of two activations (attention) has no weights: a product of codes.
                const bool activationProduct = family == IntegerFamily::MatrixProduct && layer.weight.empty() && dataInputs.size() == 2;
                const bool hasWeights = (family == IntegerFamily::Convolution || family == IntegerFamily::MatrixProduct) && !activationProduct;
                if (!range)
                    why = "its fused " + fused->opType + " has computed bounds";
                else if (hasWeights)
                    why = integerFormObstacle(graph_, layer, lp.weightParams ? &*lp.weightParams : nullptr);  // one rule for the engine and the simulation
                if (why.empty()) {
                    std::vector<std::optional<ActivationParams>> inputParams;
                    for (const std::string& in : dataInputs)
                        inputParams.push_back(quantized.at(in));
                    const LayerLowering lowering{.graph = graph_,
                                                 .node = node,
                                                 .layer = layer,
                                                 .plan = lp,
                                                 .fusedActivation = fused,
                                                 .output = *output,
                                                 .codeLo = range->first + shift,
                                                 .codeHi = range->second + shift,
                                                 .dataInputs = dataInputs,
                                                 .inputParams = std::move(inputParams),
                                                 .fastKernels = fastKernels};
                    LoweredLayer lowered = activationProduct ? lowerActivationProduct(lowering) : lowerLayer(family, lowering);
                    if (lowered.step) {
                        step = std::move(lowered.step);
                        record(li, true, "", lowered.kernel);
                    } else if (node.opType == "LayerNormalization") {
                        why = "LayerNormalization runs in float: a row's mean and variance need wider arithmetic than 8 bits "
                              "(an I-BERT-style integer square root is not implemented); its output is quantized again";
                    } else if (family == IntegerFamily::None) {
                        why = node.opType + " has no integer kernel: it runs in float on dequantized inputs, its output "
                                            "quantized again";
                    } else {
                        why = "no integer kernel for this form of " + node.opType;
                    }
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
            const auto params = quantized.at(node.inputs[0]);
            step = lowerKeepingParameters(operatorTraits(node.name, node.opType), graph_, node, params);
            if (step) {
                step->inputs = dataInputs;
                step->outputs = node.outputs;
                for (const std::string& out : node.outputs)
                    quantized[out] = params;
            }
        }

        if (!step) {
            const LayerPlan* outputPlan = nullptr;
            bool outputToCodes = false;
            auto out = layerAtOutputNode.find(index);
            if (out != layerAtOutputNode.end()) {
                const LayerPlan& lp = plans_[out->second];
                if (!lp.config.keepFloat && (lp.activationParams || lp.dynamicActivations)) {
                    outputPlan = &lp;
                    outputToCodes = lp.activationParams ? isIntegerActivationParams(*lp.activationParams)
                                                        : dynamicActivationCodes(lp);
                    if (outputToCodes)
                        quantized[node.outputs[0]] = lp.activationParams ? std::optional(toActivationParams(*lp.activationParams))
                                                                         : std::nullopt;
                }
            }
            step = floatStep(graph_, node, outputPlan, outputToCodes);
            step->inputs = dataInputs;
            step->outputs = node.outputs;
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

