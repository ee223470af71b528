#include "eval/integer_evaluation.h"

#include "common/error.h"
#include "eval/accuracy.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace qe {

IntegerEvaluation evaluateInteger(const QuantPlan& plan, const Dataset& dataset, const Preprocess& preprocess,
                                  std::size_t limit, const EvaluationProgress& progress)
{
    const Graph& graph = plan.graph;
    const ImageInputGeometry g = imageInputGeometry(graph);
    if (graph.outputs.size() != 1)
        throw Error(graph.sourcePath + ": expected one output (class scores), the model has " + std::to_string(graph.outputs.size()));
    const std::string& inputName = graph.inputs[0].name;
    const std::string& outputName = graph.outputs[0].name;
    const IntegerEngine engine(plan);
    const Executor simulator(graph);

    // The output's quantization step, when the plan quantizes the output.
    double outputStep = 0;
    for (std::size_t i = 0; i < plan.layers.size(); ++i)
        if (plan.layers[i].output == outputName && plan.plans[i].activationParams && plan.plans[i].activationParams->scale.size() == 1 &&
            schemeTraits(plan.plans[i].activationParams->scheme).family == SchemeFamily::Uniform)
            outputStep = plan.plans[i].activationParams->scale[0];

    IntegerEvaluation result;
    result.layers = engine.layerExecution();
    result.integerLayers = engine.integerLayerCount();
    const std::size_t total = limit ? std::min(limit, dataset.size()) : dataset.size();
    const std::size_t batchSize = g.fixedBatchOfOne ? 1 : 32;
    TopKTally integerTally, simulatedTally;
    std::size_t agree = 0, elements = 0, withinOne = 0;
    double seconds = 0;
    for (std::size_t first = 0; first < total; first += batchSize) {
        if (progress.cancel && progress.cancel->load())
            throw Cancelled();
        const std::size_t count = std::min(batchSize, total - first);
        const Tensor batch = makeBatch(dataset, first, count, preprocess, g.channels, g.height, g.width);
        const auto start = std::chrono::steady_clock::now();
        const Tensor integer = runIntegerSingle(engine, inputName, batch);
        seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const Tensor simulated = runSimulated(plan, simulator, {{inputName, batch}}).at(outputName);
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
        }
        if (progress.report)
            progress.report("integer engine", first + count, total);
    }
    result.images = total;
    result.top1 = integerTally.top1();
    result.top5 = integerTally.top5();
    result.simulatedTop1 = simulatedTally.top1();
    result.agreementWithSimulation = total ? double(agree) / double(total) : 0;
    result.outputWithinOneLsb = elements ? double(withinOne) / double(elements) : 0;
    result.msPerImage = total ? 1000.0 * seconds / double(total) : 0;
    return result;
}

}  // namespace qe
