// The model of the quantization configuration: the names of the bias corrections, how an
// override applies to what it overrides (RepairOverride and TensorQuantOverride::appliedTo),
// validateSpec, and QuantConfig::resolve. Reading and writing the file is in config_json.cpp.

#include "quant/config.h"
#include "quant/config_internal.h"

#include "common/error.h"

#include <optional>
#include <string>
#include <string_view>

namespace qe {
using namespace config_detail;  // kBiasCorrections and the field paths of messages, shared with config_json.cpp
namespace {

bool bitsAllowed(const SchemeTraits& traits, int bits)
{
    return bits >= traits.minBits && bits <= traits.maxBits;
}

}  // namespace

std::string config_detail::schemeNames(bool forActivations)
{
    std::string out;
    for (const auto& t : schemeTable())
        if (forActivations ? t.forActivations : t.forWeights)
            out += (out.empty() ? "" : ", ") + std::string(t.name);
    return out;
}

std::string_view biasCorrectionName(BiasCorrection mode)
{
    for (const auto& [value, name] : kBiasCorrections)
        if (value == mode)
            return name;
    return "none";
}

std::optional<BiasCorrection> biasCorrectionFromName(std::string_view name)
{
    for (const auto& [value, text] : kBiasCorrections)
        if (text == name)
            return value;
    return std::nullopt;
}

RepairSpec RepairOverride::appliedTo(RepairSpec base) const
{
    if (equalization)
        base.equalization = *equalization;
    if (relu6AsRelu)
        base.relu6AsRelu = *relu6AsRelu;
    if (biasCorrection)
        base.biasCorrection = *biasCorrection;
    if (adaRound)
        base.adaRound.enabled = *adaRound;
    if (adaRoundIterations)
        base.adaRound.iterations = *adaRoundIterations;
    if (adaRoundImages)
        base.adaRound.images = *adaRoundImages;
    if (smoothQuant)
        base.smoothQuant = *smoothQuant;
    if (smoothQuantAlpha)
        base.smoothQuantAlpha = *smoothQuantAlpha;
    return base;
}

bool TensorQuantOverride::empty() const
{
    return !quantize && !scheme && !bits && !granularity && !groupSize && !isSigned && !dynamic && !range;
}

// Field by field, except for one coupling: a scheme set without bits keeps the inherited bit
// width when the new scheme allows it and takes the scheme's default width otherwise, so that
// switching an 8-bit default to "fp16" gives 16 bits rather than an error, while switching it to
// "kmeans" keeps 8 bits.
TensorQuantSpec TensorQuantOverride::appliedTo(TensorQuantSpec base) const
{
    if (quantize)
        base.quantize = *quantize;
    if (scheme) {
        base.scheme = *scheme;
        const SchemeTraits& traits = schemeTraits(*scheme);
        if (!bits && !bitsAllowed(traits, base.bits))
            base.bits = traits.defaultBits;
    }
    if (bits)
        base.bits = *bits;
    if (granularity)
        base.granularity = *granularity;
    if (groupSize)
        base.groupSize = *groupSize;
    if (isSigned)
        base.isSigned = *isSigned;
    if (dynamic)
        base.dynamic = *dynamic;
    if (range)
        base.range = *range;
    return base;
}

void validateSpec(const TensorQuantSpec& spec, bool forActivations, const std::string& field)
{
    const auto fail = [&](std::string_view key, const std::string& what) {
        throw Error(child(field, key) + ": " + what);
    };
    const SchemeTraits& traits = schemeTraits(spec.scheme);
    const std::string scheme = jsonQuoted(traits.name);
    if (forActivations && !traits.forActivations)
        fail("scheme", "scheme " + scheme + " is for weights only (activations use one of: " + schemeNames(true) + ")");
    if (!forActivations && !traits.forWeights)
        fail("scheme", "scheme " + scheme + " is for activations only (weights use one of: " + schemeNames(false) + ")");
    if (!bitsAllowed(traits, spec.bits)) {
        if (traits.minBits == traits.maxBits)
            fail("bits", "expected " + std::to_string(traits.minBits) + " for scheme " + scheme + ", got " +
                             std::to_string(spec.bits));
        fail("bits", "expected an integer from " + std::to_string(traits.minBits) + " to " +
                         std::to_string(traits.maxBits) + " for scheme " + scheme + ", got " +
                         std::to_string(spec.bits));
    }
    if (forActivations && spec.granularity == Granularity::PerToken && !spec.dynamic)
        fail("granularity", "\"per_token\" ranges are taken from each input at run time: it needs \"dynamic\": true");
    if (forActivations && spec.granularity != Granularity::PerTensor && spec.granularity != Granularity::PerToken)
        fail("granularity", "activations are quantized per tensor, or per token when dynamic; expected \"per_tensor\" or "
                            "\"per_token\", got " + jsonQuoted(granularityName(spec.granularity)));
    if (!forActivations && spec.granularity == Granularity::PerToken)
        fail("granularity", "\"per_token\" is for dynamic activations; weights are \"per_tensor\", \"per_channel\" or "
                            "\"per_group\"");
    if (spec.granularity == Granularity::PerGroup && spec.groupSize < 1)
        fail("group_size", "granularity \"per_group\" needs a group size, an integer >= 1; got " +
                               (spec.groupSize == 0 ? std::string("none") : std::to_string(spec.groupSize)));
    if (spec.groupSize < 0)
        fail("group_size", "expected an integer >= 1, got " + std::to_string(spec.groupSize));
    if (!forActivations && spec.dynamic)
        fail("dynamic", "only activations can be dynamic; weights are quantized ahead of time");
    if (forActivations && spec.range != WeightRange::MinMax)
        fail("range", "activations take their range from calibration; \"range\" is for weights");
}

LayerQuantConfig QuantConfig::resolve(const std::string& layer) const
{
    LayerQuantConfig out;
    out.weights = defaultWeights;
    out.activations = defaultActivations;
    out.calibration = calibration;
    out.repairs = repairs;
    if (const auto it = layers.find(layer); it != layers.end()) {
        const LayerOverride& o = it->second;
        out.keepFloat = o.keepFloat;
        out.weights = o.weights.appliedTo(defaultWeights);
        out.activations = o.activations.appliedTo(defaultActivations);
        if (o.calibration)
            out.calibration = *o.calibration;
        out.repairs = o.repairs.appliedTo(repairs);
    }
    return out;
}

}  // namespace qe
