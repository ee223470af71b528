#include "eval/integer_evaluation.h"

#include "common/error.h"
#include "eval/accuracy.h"
#include "quant/image_batches.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace qe {

IntegerEvaluation evaluateInteger(const QuantPlan& plan, const Dataset& dataset, const Preprocess& preprocess,
                                  std::size_t limit, const EvaluationProgress& progress)
{
    const Graph& graph = plan.graph;
    if (graph.outputs.size() != 1)
        throw Error(graph.sourcePath + ": expected one output (class scores), the model has " + std::to_string(graph.outputs.size()));
    const std::string& inputName = graph.inputs[0].name;
    const std::string& outputName = graph.outputs[0].name;
    const IntegerEngine engine(plan);
    const Executor simulator(graph);

    IntegerEvaluation result;
    result.layers = engine.layerExecution();
    result.integerLayers = engine.integerLayerCount();
    const std::size_t total = limit ? std::min(limit, dataset.size()) : dataset.size();
    // The layers whose outputs are compared step by step.
    std::vector<double> layerSteps(plan.layers.size(), 0.0);
    RunOptions capture;
    for (std::size_t i = 0; i < plan.layers.size(); ++i) {
        const auto& p = plan.plans[i].activationParams;
        if (!plan.plans[i].config.keepFloat && p && schemeTraits(p->scheme).integerForm && p->uniform().scale.size() == 1) {
            layerSteps[i] = p->uniform().scale[0];
            capture.capture.insert(plan.layers[i].output);
        }
    }
    // The output's quantization step, when the plan quantizes the output.
    double outputStep = 0;
    for (std::size_t i = 0; i < plan.layers.size(); ++i)
        if (plan.layers[i].output == outputName)
            outputStep = layerSteps[i];
    std::vector<std::size_t> layerElements(plan.layers.size(), 0), layerExact(plan.layers.size(), 0), layerWithinOne(plan.layers.size(), 0);
    std::vector<std::size_t> isolatedElements(plan.layers.size(), 0), isolatedExact(plan.layers.size(), 0),
        isolatedWithinOne(plan.layers.size(), 0);
    for (std::size_t i = 0; i < plan.layers.size(); ++i)
        if (layerSteps[i] != 0)
            for (const std::string& in : plan.layers[i].inputs)
                capture.capture.insert(in);
    auto countSteps = [](const Tensor& a, const Tensor& b, double step, std::size_t& elements, std::size_t& exact, std::size_t& withinOne) {
        if (a.shape() != b.shape())
            return;
        for (std::int64_t e = 0; e < a.size(); ++e) {
            const double steps = std::abs(static_cast<double>(a.data<float>()[e]) - b.data<float>()[e]) / step;
            exact += steps < 1e-3;
            withinOne += steps <= 1.0 + 1e-3;
        }
        elements += static_cast<std::size_t>(a.size());
    };
    TopKTally integerTally, simulatedTally;
    std::size_t agree = 0, agreeUpToTies = 0, elements = 0, withinOne = 0;
    double seconds = 0;
    auto compareBatch = [&](std::size_t first, const Tensor& batch) {
        const std::size_t count = std::size_t(batch.dim(0));
        // Timed on its own: the comparison run below also dequantizes every tensor it captures.
        const auto start = std::chrono::steady_clock::now();
        const Tensor integer = runIntegerSingle(engine, inputName, batch);
        seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const IntegerRunResult integerLayers = engine.run({{inputName, batch}}, capture);
        const TensorMap simulatedLayers = runSimulated(plan, simulator, {{inputName, batch}}, capture);
        const Tensor simulated = simulatedLayers.at(outputName);
        for (std::size_t l = 0; l < plan.layers.size(); ++l) {
            if (layerSteps[l] == 0 || !integerLayers.outputs.count(plan.layers[l].output) || !simulatedLayers.count(plan.layers[l].output))
                continue;
            const QuantLayer& layer = plan.layers[l];
            const Tensor& a = integerLayers.outputs.at(layer.output);
            countSteps(a, simulatedLayers.at(layer.output), layerSteps[l], layerElements[l], layerExact[l], layerWithinOne[l]);
            // The layer alone: its node as the simulation computes it (and its fused activation in
            // float) on the engine's inputs.
            if (layer.nodeIndex < 0)
                continue;
            const Node& node = graph.nodes[static_cast<std::size_t>(layer.nodeIndex)];
            std::vector<const Tensor*> in;
            bool complete = true;
            for (const std::string& name : node.inputs) {
                if (name.empty())
                    in.push_back(nullptr);
                else if (graph.isInitializer(name))
                    in.push_back(&graph.initializers.at(name));
                else if (integerLayers.outputs.count(name))
                    in.push_back(&integerLayers.outputs.at(name));
                else
                    complete = false;
            }
            if (!complete)
                continue;
            Tensor alone = runSimulatedNode(plan, static_cast<std::size_t>(layer.nodeIndex), in)[0];
            if (layer.outputNodeIndex != layer.nodeIndex) {
                const Node& activation = graph.nodes[static_cast<std::size_t>(layer.outputNodeIndex)];
                std::vector<const Tensor*> activationInputs{&alone};
                for (std::size_t i = 1; i < activation.inputs.size(); ++i)
                    activationInputs.push_back(activation.inputs[i].empty() ? nullptr : &graph.initializers.at(activation.inputs[i]));
                alone = runNode(activation, graph.opsetVersion, activationInputs)[0];
            }
            alone = fakeQuantize(alone, *plan.plans[l].activationParams);
            countSteps(a, alone, layerSteps[l], isolatedElements[l], isolatedExact[l], isolatedWithinOne[l]);
        }
        if (integer.shape() != simulated.shape() || integer.dim(0) != static_cast<std::int64_t>(count))
            throw Error("integer engine output " + integer.describe() + " does not match the simulation's " + simulated.describe());
        const int classes = static_cast<int>(integer.size() / static_cast<std::int64_t>(count));
        const float* pi = integer.data<float>();
        const float* ps = simulated.data<float>();
        double step = outputStep;
        if (step == 0) {
            const auto [lo, hi] = std::minmax_element(ps, ps + simulated.size());
            step = (*hi - *lo) / 255.0;
        }
        for (std::int64_t e = 0; e < integer.size(); ++e) {
            const double lsb = step > 0 ? std::abs(static_cast<double>(pi[e]) - ps[e]) / step : (pi[e] == ps[e] ? 0.0 : INFINITY);
            // Dequantized values of codes one step apart differ by the step up to float rounding.
            withinOne += lsb <= 1.0 + 1e-3;
            result.maxOutputLsbDifference = std::max(result.maxOutputLsbDifference, lsb);
        }
        elements += static_cast<std::size_t>(integer.size());
        for (std::size_t i = 0; i < count; ++i) {
            const int label = dataset.label(first + i);
            const int a = integerTally.add(pi + i * static_cast<std::size_t>(classes), classes, label);
            const int b = simulatedTally.add(ps + i * static_cast<std::size_t>(classes), classes, label);
            result.predictions.push_back(a);
            result.simulatedPredictions.push_back(b);
            result.labels.push_back(label);
            agree += a == b;
            // A quantized output often has several classes on the same top code; then either
            // is the output's answer, and picking the lower index is only a convention.
            const float* ri = pi + i * static_cast<std::size_t>(classes);
            const float* rs = ps + i * static_cast<std::size_t>(classes);
            agreeUpToTies += a == b || ri[a] == ri[b] || rs[a] == rs[b];
        }
        if (progress.report)
            progress.report("integer engine", first + count, total);
    };
    forEachImageBatch(graph, dataset, preprocess, 0, total, 32, progress.cancel, compareBatch);
    for (std::size_t l = 0; l < plan.layers.size(); ++l) {
        const double n = static_cast<double>(layerElements[l]);
        result.layerExactFraction.push_back(n > 0 ? double(layerExact[l]) / n : std::nan(""));
        result.layerWithinOneLsbFraction.push_back(n > 0 ? double(layerWithinOne[l]) / n : std::nan(""));
        const double m = static_cast<double>(isolatedElements[l]);
        result.isolatedExactFraction.push_back(m > 0 ? double(isolatedExact[l]) / m : std::nan(""));
        result.isolatedWithinOneLsbFraction.push_back(m > 0 ? double(isolatedWithinOne[l]) / m : std::nan(""));
    }
    result.images = total;
    result.top1 = integerTally.top1();
    result.top5 = integerTally.top5();
    result.simulatedTop1 = simulatedTally.top1();
    result.agreementWithSimulation = total ? double(agree) / double(total) : 0;
    result.agreementUpToTies = total ? double(agreeUpToTies) / double(total) : 0;
    result.outputWithinOneLsb = elements ? double(withinOne) / double(elements) : 0;
    result.msPerImage = total ? 1000.0 * seconds / double(total) : 0;
    return result;
}

}  // namespace qe
