#include "config_edits.h"

#include "common/error.h"

#include <cstdio>

namespace qe {

namespace {

bool bitsAllowed(Scheme scheme, int bits)
{
    const SchemeTraits& traits = schemeTraits(scheme);
    return bits >= traits.minBits && bits <= traits.maxBits;
}

void setScheme(TensorQuantOverride& o, Scheme scheme)
{
    o.scheme = scheme;
    o.quantize = true;
    if (o.bits && !bitsAllowed(scheme, *o.bits))
        o.bits.reset();  // inherit, or take the scheme's default (TensorQuantOverride::appliedTo)
}

}  // namespace

QuantConfig withLayerEdit(QuantConfig config, const std::vector<std::string>& layers, LayerField field,
                          const LayerFieldValue& value)
{
    for (const std::string& layer : layers) {
        LayerOverride& o = config.layers[layer];
        const LayerQuantConfig before = config.resolve(layer);
        switch (field) {
        case LayerField::WeightScheme: setScheme(o.weights, std::get<Scheme>(value)); break;
        case LayerField::ActivationScheme: setScheme(o.activations, std::get<Scheme>(value)); break;
        case LayerField::WeightBits: o.weights.bits = std::get<int>(value); break;
        case LayerField::ActivationBits: o.activations.bits = std::get<int>(value); break;
        case LayerField::WeightGranularity: {
            const Granularity g = std::get<Granularity>(value);
            o.weights.granularity = g;
            if (g == Granularity::PerGroup && before.weights.groupSize <= 0)
                o.weights.groupSize = kDefaultGroupSize;
            break;
        }
        case LayerField::WeightRange: o.weights.range = std::get<qe::WeightRange>(value); break;
        case LayerField::Calibration: {
            CalibrationSpec spec = before.calibration;
            spec.method = std::get<CalibrationMethod>(value);
            spec.fixedRange.reset();  // a method picked is a range calibrated again
            o.calibration = spec;
            if (before.activations.dynamic) {
                o.activations.dynamic = false;
                o.activations.granularity = Granularity::PerTensor;
            }
            break;
        }
        case LayerField::DynamicRange:
            o.activations.dynamic = true;
            o.activations.granularity = std::get<Granularity>(value);
            break;
        case LayerField::KeepFloat: o.keepFloat = std::get<bool>(value); break;
        // A repair equal to the switch is no override: the layer follows the switch again.
        case LayerField::Equalization: {
            const bool on = std::get<bool>(value);
            o.repairs.equalization = on == config.repairs.equalization ? std::nullopt : std::optional(on);
            break;
        }
        case LayerField::BiasCorrection: {
            const BiasCorrection mode = std::get<BiasCorrection>(value);
            o.repairs.biasCorrection = mode == config.repairs.biasCorrection ? std::nullopt : std::optional(mode);
            break;
        }
        case LayerField::AdaRound: {
            const bool on = std::get<bool>(value);
            o.repairs.adaRound = on == config.repairs.adaRound.enabled ? std::nullopt : std::optional(on);
            break;
        }
        }
        const LayerQuantConfig after = config.resolve(layer);
        validateSpec(after.weights, false, "layers[\"" + layer + "\"].weights");
        validateSpec(after.activations, true, "layers[\"" + layer + "\"].activations");
        if (o.empty())
            config.layers.erase(layer);
    }
    return config;
}

std::string describeLayerEdit(const std::vector<std::string>& layers, LayerField field, const LayerFieldValue& value)
{
    std::string who = layers.size() == 1 ? layers[0] : std::to_string(layers.size()) + " layers";
    switch (field) {
    case LayerField::WeightScheme: return who + ": weights " + std::string(schemeTraits(std::get<Scheme>(value)).name);
    case LayerField::ActivationScheme:
        return who + ": activations " + std::string(schemeTraits(std::get<Scheme>(value)).name);
    case LayerField::WeightBits: return who + ": weights " + std::to_string(std::get<int>(value)) + " bits";
    case LayerField::ActivationBits: return who + ": activations " + std::to_string(std::get<int>(value)) + " bits";
    case LayerField::WeightGranularity:
        return who + ": weights " + std::string(granularityName(std::get<Granularity>(value)));
    case LayerField::WeightRange:
        return who + ": weight ranges " + std::string(weightRangeName(std::get<qe::WeightRange>(value)));
    case LayerField::Calibration:
        return who + ": calibration " + std::string(calibrationMethodName(std::get<CalibrationMethod>(value)));
    case LayerField::DynamicRange:
        return who + ": dynamic activations " + std::string(granularityName(std::get<Granularity>(value)));
    case LayerField::KeepFloat: return who + (std::get<bool>(value) ? ": keep in float" : ": quantize");
    case LayerField::Equalization: return who + (std::get<bool>(value) ? ": equalization on" : ": equalization off");
    case LayerField::BiasCorrection:
        return who + ": bias correction " + std::string(biasCorrectionName(std::get<BiasCorrection>(value)));
    case LayerField::AdaRound: return who + (std::get<bool>(value) ? ": AdaRound on" : ": AdaRound off");
    }
    return who;
}

QuantConfig withRepairSwitches(QuantConfig config, const RepairSpec& repairs)
{
    if (repairs.adaRound.iterations < 1)
        throw Error("repairs.adaround.iterations: expected at least 1, got " + std::to_string(repairs.adaRound.iterations));
    if (repairs.adaRound.images < 1)
        throw Error("repairs.adaround.images: expected at least 1, got " + std::to_string(repairs.adaRound.images));
    config.repairs = repairs;
    // A layer override that now says what the switch says is no override any more.
    for (auto it = config.layers.begin(); it != config.layers.end();) {
        RepairOverride& o = it->second.repairs;
        if (o.equalization == repairs.equalization)
            o.equalization.reset();
        if (o.biasCorrection == repairs.biasCorrection)
            o.biasCorrection.reset();
        if (o.adaRound == repairs.adaRound.enabled)
            o.adaRound.reset();
        if (o.smoothQuant == repairs.smoothQuant)
            o.smoothQuant.reset();
        it = it->second.empty() ? config.layers.erase(it) : std::next(it);
    }
    return config;
}

std::string describeRepairSwitches(const RepairSpec& before, const RepairSpec& after)
{
    std::vector<std::string> changes;
    auto onOff = [](bool on) { return on ? std::string(" on") : std::string(" off"); };
    if (before.equalization != after.equalization)
        changes.push_back("equalization" + onOff(after.equalization));
    if (before.relu6AsRelu != after.relu6AsRelu)
        changes.push_back("ReLU6 as ReLU" + onOff(after.relu6AsRelu));
    if (before.biasCorrection != after.biasCorrection)
        changes.push_back("bias correction " + std::string(biasCorrectionName(after.biasCorrection)));
    if (before.adaRound.enabled != after.adaRound.enabled)
        changes.push_back("AdaRound" + onOff(after.adaRound.enabled));
    if (before.adaRound.iterations != after.adaRound.iterations)
        changes.push_back("AdaRound " + std::to_string(after.adaRound.iterations) + " iterations");
    if (before.adaRound.images != after.adaRound.images)
        changes.push_back("AdaRound on " + std::to_string(after.adaRound.images) + " images");
    if (before.smoothQuant != after.smoothQuant)
        changes.push_back("SmoothQuant" + onOff(after.smoothQuant));
    if (before.smoothQuantAlpha != after.smoothQuantAlpha) {
        char alpha[32];
        std::snprintf(alpha, sizeof alpha, "%.2f", double(after.smoothQuantAlpha));
        changes.push_back("SmoothQuant alpha " + std::string(alpha));
    }
    std::string text = "repairs: ";
    for (std::size_t i = 0; i < changes.size(); ++i)
        text += (i ? ", " : "") + changes[i];
    return changes.empty() ? "repairs unchanged" : text;
}

}  // namespace qe
