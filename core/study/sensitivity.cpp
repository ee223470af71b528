#include "study/sensitivity.h"

#include "common/error.h"
#include "study/study.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace qe {

namespace {

bool hasWeights(const Study& study, const std::string& layer)
{
    for (const QuantLayer& l : study.layers())
        if (l.name == layer)
            return !l.weight.empty();
    throw Error("unknown layer '" + layer + "': the model's quantizable layers are " + [&] {
        std::string names;
        for (const QuantLayer& l : study.layers())
            names += (names.empty() ? "" : ", ") + l.name;
        return names;
    }());
}

// The settings measured for one layer: every weight width with every activation width (a layer
// without weights: the activation widths alone).
std::vector<PrecisionChoice> choicesFor(bool weighted, const SensitivityOptions& options)
{
    std::vector<PrecisionChoice> choices;
    for (int w : weighted ? options.weightBits : std::vector<int>{0})
        for (int a : options.activationBits)
            choices.push_back({w, a, false});
    return choices;
}

}  // namespace

std::string describePrecision(const PrecisionChoice& choice)
{
    if (choice.keepFloat)
        return "float";
    std::string text;
    // Appended piece by piece: GCC 12 warns (wrongly, -Wrestrict) about "w" + std::to_string(...).
    if (choice.weightBits > 0)
        text.append("w").append(std::to_string(choice.weightBits));
    if (choice.activationBits > 0)
        text.append("a").append(std::to_string(choice.activationBits));
    return text.empty() ? "base" : text;
}

QuantConfig withLayerPrecision(QuantConfig config, const std::string& layer, const PrecisionChoice& choice)
{
    LayerOverride& o = config.layers[layer];
    o.keepFloat = choice.keepFloat;
    if (!choice.keepFloat) {
        // A width asks for that tensor to be quantized, in the scheme the layer already has.
        if (choice.weightBits > 0) {
            o.weights.quantize = true;
            o.weights.bits = choice.weightBits;
        }
        if (choice.activationBits > 0) {
            o.activations.quantize = true;
            o.activations.bits = choice.activationBits;
        }
        const LayerQuantConfig resolved = config.resolve(layer);
        try {
            validateSpec(resolved.weights, false, "weights");
            validateSpec(resolved.activations, true, "activations");
        } catch (const Error& e) {
            throw Error("layer '" + layer + "' at " + describePrecision(choice) + ": " + e.what());
        }
    }
    if (o.empty())
        config.layers.erase(layer);
    return config;
}

SensitivityResult measureSensitivity(Study& study, const QuantConfig& base, const SensitivityOptions& options,
                                     const EvaluationProgress& progress,
                                     const std::function<void(const LayerSensitivity&)>& onLayer)
{
    std::vector<std::string> layers = options.layers;
    if (layers.empty())
        for (const QuantLayer& l : study.layers())
            layers.push_back(l.name);
    // Everything is checked before the first (long) evaluation.
    QuantConfig allFloat = base;
    for (const QuantLayer& l : study.layers())
        allFloat = withLayerPrecision(allFloat, l.name, {.keepFloat = true});
    std::vector<std::vector<PrecisionChoice>> choices;
    for (const std::string& layer : layers) {
        choices.push_back(choicesFor(hasWeights(study, layer), options));
        for (const PrecisionChoice& c : choices.back())
            withLayerPrecision(allFloat, layer, c);
    }
    // The evaluations report nothing themselves; the sweep reports each one done.
    const EvaluationProgress quiet = cancellationOnly(progress);
    std::size_t done = 0, total = 2 + (options.allButThis ? layers.size() : 0);
    for (const auto& c : choices)
        total += c.size();
    auto measure = [&](const QuantConfig& config) {
        const ModelMetrics m = study.evaluate(config, kCostOnlyRequest, quiet).metrics;
        if (progress.report)
            progress.report("sensitivity", ++done, total);
        return m;
    };

    SensitivityResult result;
    std::vector<double> allButThis(layers.size(), std::numeric_limits<double>::quiet_NaN());
    try {
        // The base first (it calibrates), then each layer in float in turn: consecutive
        // configurations differ in two layers, so each evaluation resumes at the earlier one.
        result.baseTop1 = measure(base).top1;
        if (options.allButThis)
            for (std::size_t i = 0; i < layers.size(); ++i)
                allButThis[i] = measure(withLayerPrecision(base, layers[i], {.keepFloat = true})).top1;
        result.floatTop1 = measure(allFloat).top1;
        // Then one layer quantized at a time, each setting of a layer resuming at that layer.
        for (std::size_t i = 0; i < layers.size(); ++i) {
            LayerSensitivity layer{.layer = layers[i], .onlyThis = {}, .allButThisTop1 = allButThis[i]};
            for (const PrecisionChoice& c : choices[i]) {
                const ModelMetrics m = measure(withLayerPrecision(allFloat, layers[i], c));
                const auto own = std::find_if(m.layers.begin(), m.layers.end(), [&](const LayerMetrics& l) { return l.name == layers[i]; });
                layer.onlyThis.push_back({.weightBits = c.weightBits, .activationBits = c.activationBits, .top1 = m.top1,
                                          .outputSqnrDb = m.outputSqnrDb, .layerBytes = own->weightBytes,
                                          .layerBitOperations = own->bitOperations});
            }
            result.layers.push_back(layer);
            if (onLayer)
                onLayer(result.layers.back());
        }
    } catch (const Cancelled&) {
        result.complete = false;
    }
    return result;
}

}  // namespace qe
