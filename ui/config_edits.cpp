#include "config_edits.h"

#include "common/error.h"

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
        case LayerField::Calibration: {
            CalibrationSpec spec = before.calibration;
            spec.method = std::get<CalibrationMethod>(value);
            o.calibration = spec;
            break;
        }
        case LayerField::KeepFloat: o.keepFloat = std::get<bool>(value); break;
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
    case LayerField::Calibration:
        return who + ": calibration " + std::string(calibrationMethodName(std::get<CalibrationMethod>(value)));
    case LayerField::KeepFloat: return who + (std::get<bool>(value) ? ": keep in float" : ": quantize");
    }
    return who;
}

}  // namespace qe
