// The configuration file format: reading a document into a QuantConfig (the Reader, whose errors
// name the file and the JSON path), writing one back (toJson, minimal and in a stable order), and
// load and save. The model it reads into, and the merging rules, are in config.cpp.

#include "quant/config.h"
#include "quant/config_internal.h"

#include "common/atomic_file.h"
#include "common/error.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <string_view>
#include <system_error>

#include <nlohmann/json.hpp>

namespace qe {
using namespace config_detail;  // kBiasCorrections and schemeNames from config.cpp; jsonQuoted and child, below

namespace {

using nlohmann::json;

constexpr std::string_view kFormat = "quantexplorer-config";
constexpr int kVersion = 1;
// A "no such layer" message lists at most this many of the model's layers.
constexpr std::size_t kMaxListedLayers = 10;

constexpr Granularity kGranularities[] = {Granularity::PerTensor, Granularity::PerChannel, Granularity::PerGroup, Granularity::PerToken};

}  // namespace

namespace config_detail {

// JSON text of a string, quoted and escaped; invalid UTF-8 (possible in a json built in code,
// never in a parsed file) is replaced rather than thrown about while reporting another error.
std::string jsonQuoted(std::string_view text)
{
    return json(std::string(text)).dump(-1, ' ', false, json::error_handler_t::replace);
}

// The path of `key` inside `path` as people write it: "layers.conv2.weights". ONNX names such as
// "/features/features.0/Conv" would make a dotted path ambiguous, so they are written in brackets.
std::string child(const std::string& path, std::string_view key)
{
    const bool plain = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    });
    if (!plain)
        return path + "[" + jsonQuoted(key) + "]";
    return path.empty() ? std::string(key) : path + "." + std::string(key);
}

}  // namespace config_detail

namespace {

// What a value is, for "expected X, got Y" messages.
std::string describe(const json& value)
{
    switch (value.type()) {
    case json::value_t::object:
        return "an object";
    case json::value_t::array:
        return "an array";
    case json::value_t::string: {
        std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
        if (text.size() > 60)
            text = text.substr(0, 56) + "...\"";
        return "the string " + text;
    }
    case json::value_t::null:
        return "null";
    default:  // numbers and booleans read best as themselves
        return value.dump();
    }
}

template <class Range, class Name>
std::string joined(const Range& range, Name name)
{
    std::string out;
    for (const auto& item : range) {
        if (!out.empty())
            out += ", ";
        out += name(item);
    }
    return out;
}

// Reads one document, remembering its name for the messages.
class Reader {
public:
    explicit Reader(const std::string& source) : source_(source) {}

    [[noreturn]] void fail(const std::string& path, const std::string& what) const
    {
        throw Error(source_ + ": " + (path.empty() ? "" : path + ": ") + what);
    }

    void requireObject(const json& value, const std::string& path) const
    {
        if (!value.is_object())
            fail(path, "expected an object, got " + describe(value));
    }

    void checkKeys(const json& object, const std::string& path, std::initializer_list<std::string_view> known,
                   std::string_view note = {}) const
    {
        for (const auto& item : object.items()) {
            if (std::find(known.begin(), known.end(), item.key()) != known.end())
                continue;
            fail(path, "unknown key " + jsonQuoted(item.key()) + " (expected one of: " +
                           joined(known, [](std::string_view k) { return std::string(k); }) + ")" +
                           std::string(note));
        }
    }

    bool readBool(const json& value, const std::string& path) const
    {
        if (!value.is_boolean())
            fail(path, "expected true or false, got " + describe(value));
        return value.get<bool>();
    }

    std::string readString(const json& value, const std::string& path) const
    {
        if (!value.is_string())
            fail(path, "expected a string, got " + describe(value));
        return value.get<std::string>();
    }

    // An integer that fits an int. Larger values cannot be meant and are reported with `expected`.
    int readInt(const json& value, const std::string& path, const std::string& expected) const
    {
        if (!value.is_number_integer())
            fail(path, "expected " + expected + ", got " + describe(value));
        constexpr auto lo = std::numeric_limits<int>::min(), hi = std::numeric_limits<int>::max();
        if (value.is_number_unsigned() ? value.get<std::uint64_t>() > static_cast<std::uint64_t>(hi)
                                       : (value.get<std::int64_t>() < lo || value.get<std::int64_t>() > hi))
            fail(path, "expected " + expected + ", got " + describe(value));
        return static_cast<int>(value.get<std::int64_t>());
    }

    int readPositiveInt(const json& value, const std::string& path) const
    {
        const int v = readInt(value, path, "an integer >= 1");
        if (v < 1)
            fail(path, "expected an integer >= 1, got " + describe(value));
        return v;
    }

    // A finite number in (0, max].
    double readFraction(const json& value, const std::string& path, double max, const std::string& range) const
    {
        if (!value.is_number())
            fail(path, "expected a number in " + range + ", got " + describe(value));
        const double v = value.get<double>();
        if (!std::isfinite(v) || !(v > 0.0 && v <= max))
            fail(path, "expected a number in " + range + ", got " + describe(value));
        return v;
    }

    TensorQuantOverride readTensor(const json& value, const std::string& path, bool forActivations) const
    {
        requireObject(value, path);
        if (!forActivations && value.contains("dynamic"))
            fail(child(path, "dynamic"), "only activations can be dynamic; weights are quantized ahead of time");
        if (forActivations && value.contains("range"))
            fail(child(path, "range"), "activations take their range from \"calibration\" (its \"method\"); \"range\" is "
                                       "for weights");
        if (forActivations)
            checkKeys(value, path, {"scheme", "bits", "granularity", "group_size", "signed", "dynamic", "float"});
        else
            checkKeys(value, path, {"scheme", "bits", "granularity", "group_size", "signed", "range", "float"});

        TensorQuantOverride o;
        if (auto it = value.find("float"); it != value.end())
            o.quantize = !readBool(*it, child(path, "float"));
        if (auto it = value.find("scheme"); it != value.end()) {
            const std::string name = readString(*it, child(path, "scheme"));
            o.scheme = schemeFromName(name);
            // A scheme that exists but does not suit this tensor (k-means for activations) is
            // reported by validateSpec with a message saying so, not as unknown.
            if (!o.scheme)
                fail(child(path, "scheme"),
                     "unknown scheme " + jsonQuoted(name) + " (expected one of: " + schemeNames(forActivations) + ")");
        }
        if (auto it = value.find("bits"); it != value.end())
            o.bits = readInt(*it, child(path, "bits"), "an integer (the bit width)");
        if (auto it = value.find("granularity"); it != value.end()) {
            const std::string name = readString(*it, child(path, "granularity"));
            o.granularity = granularityFromName(name);
            if (!o.granularity)
                fail(child(path, "granularity"),
                     "unknown granularity " + jsonQuoted(name) + " (expected one of: " +
                         joined(kGranularities, [](Granularity g) { return std::string(granularityName(g)); }) +
                         ")");
        }
        if (auto it = value.find("group_size"); it != value.end())
            o.groupSize = readPositiveInt(*it, child(path, "group_size"));
        if (auto it = value.find("signed"); it != value.end())
            o.isSigned = readBool(*it, child(path, "signed"));
        if (auto it = value.find("dynamic"); it != value.end())
            o.dynamic = readBool(*it, child(path, "dynamic"));
        if (auto it = value.find("range"); it != value.end()) {
            const std::string name = readString(*it, child(path, "range"));
            o.range = weightRangeFromName(name);
            if (!o.range)
                fail(child(path, "range"), "unknown weight range " + jsonQuoted(name) + " (expected \"minmax\" or \"mse\")");
        }
        return o;
    }

    // The override merged with `base`, validated as a whole: bits, k-means and per-group checks
    // depend on fields that may come from either side.
    TensorQuantSpec merged(const TensorQuantOverride& o, const TensorQuantSpec& base, bool forActivations,
                           const std::string& path) const
    {
        const TensorQuantSpec spec = o.appliedTo(base);
        try {
            validateSpec(spec, forActivations, path);
        } catch (const Error& e) {
            throw Error(source_ + ": " + e.what());
        }
        return spec;
    }

    // The global calibration (with `images`) or a layer's (without; based on the global one).
    CalibrationSpec readCalibration(const json& value, const std::string& path, CalibrationSpec base,
                                    int* images) const
    {
        requireObject(value, path);
        if (images && value.contains("range"))
            fail(child(path, "range"), "a fixed range is given per layer, in the layer's \"calibration\"");
        if (images)
            checkKeys(value, path, {"images", "method", "percentile", "moving_average_constant"});
        else
            checkKeys(value, path, {"method", "percentile", "moving_average_constant", "range"},
                      "; the number of calibration images is set once, in the top-level \"calibration\"");
        if (auto it = value.find("images"); images && it != value.end())
            *images = readPositiveInt(*it, child(path, "images"));
        if (auto it = value.find("method"); it != value.end()) {
            const std::string name = readString(*it, child(path, "method"));
            const auto method = calibrationMethodFromName(name);
            if (!method)
                fail(child(path, "method"),
                     "unknown calibration method " + jsonQuoted(name) + " (expected one of: " +
                         joined(calibrationMethodTable(),
                                [](const CalibrationMethodTraits& t) { return std::string(t.name); }) +
                         ")");
            base.method = *method;
        }
        if (auto it = value.find("percentile"); it != value.end())
            base.percentile = readFraction(*it, child(path, "percentile"), 100.0, "(0, 100]");
        if (auto it = value.find("moving_average_constant"); it != value.end())
            base.movingAverageConstant = readFraction(*it, child(path, "moving_average_constant"), 1.0, "(0, 1]");
        if (auto it = value.find("range"); it != value.end())
            base.fixedRange = readRange(*it, child(path, "range"));
        return base;
    }

    // [min, max]: two finite numbers, min <= 0 <= max (a uniform grid holds 0 exactly).
    std::pair<float, float> readRange(const json& value, const std::string& path) const
    {
        const std::string expected = "[min, max] with finite min <= 0 <= max";
        const std::string got = value.is_array() && value.size() <= 4 ? value.dump() : describe(value);
        if (!value.is_array() || value.size() != 2 || !value[0].is_number() || !value[1].is_number())
            fail(path, "expected " + expected + ", got " + got);
        const double lo = value[0].get<double>(), hi = value[1].get<double>();
        constexpr double largest = std::numeric_limits<float>::max();
        if (!(std::abs(lo) <= largest && std::abs(hi) <= largest && lo <= 0 && hi >= 0))
            fail(path, "expected " + expected + ", got " + got);
        return {static_cast<float>(lo), static_cast<float>(hi)};
    }

    // `global`: the top-level "repairs", where an AdaRound object without "enabled" switches it on.
    RepairOverride readRepairs(const json& value, const std::string& path, bool global) const
    {
        requireObject(value, path);
        checkKeys(value, path, {"equalization", "relu6_as_relu", "bias_correction", "adaround", "smoothquant", "smoothquant_alpha"});
        RepairOverride o;
        if (auto it = value.find("equalization"); it != value.end())
            o.equalization = readBool(*it, child(path, "equalization"));
        if (auto it = value.find("relu6_as_relu"); it != value.end())
            o.relu6AsRelu = readBool(*it, child(path, "relu6_as_relu"));
        if (auto it = value.find("bias_correction"); it != value.end()) {
            const std::string name = readString(*it, child(path, "bias_correction"));
            o.biasCorrection = biasCorrectionFromName(name);
            if (!o.biasCorrection)
                fail(child(path, "bias_correction"),
                     "unknown bias correction " + jsonQuoted(name) + " (expected one of: " +
                         joined(kBiasCorrections, [](const auto& row) { return std::string(row.second); }) + ")");
        }
        if (auto it = value.find("adaround"); it != value.end())
            readAdaRound(*it, child(path, "adaround"), global, o);
        if (auto it = value.find("smoothquant"); it != value.end())
            o.smoothQuant = readBool(*it, child(path, "smoothquant"));
        if (auto it = value.find("smoothquant_alpha"); it != value.end()) {
            if (!it->is_number() || it->get<double>() < 0 || it->get<double>() > 1)
                fail(child(path, "smoothquant_alpha"), "expected a number from 0 to 1 (the share of the activations' range "
                                                       "moved into the weights), got " + describe(*it));
            o.smoothQuantAlpha = it->get<float>();
        }
        return o;
    }

    // true | false, or { "enabled": bool, "iterations": N, "images": M }. Without "enabled" the
    // object switches AdaRound on at the top level (where inheriting would mean the built-in
    // "off", so giving parameters means wanting it), and inherits the switch in a layer, field by
    // field like every other override (so a layer can take other parameters without switching,
    // and toJson can write that back).
    void readAdaRound(const json& value, const std::string& path, bool global, RepairOverride& o) const
    {
        if (value.is_boolean()) {
            o.adaRound = value.get<bool>();
            return;
        }
        if (!value.is_object())
            fail(path, "expected true, false or an object with \"enabled\", \"iterations\" and \"images\", got " +
                           describe(value));
        checkKeys(value, path, {"enabled", "iterations", "images"});
        if (global)
            o.adaRound = true;
        if (auto it = value.find("enabled"); it != value.end())
            o.adaRound = readBool(*it, child(path, "enabled"));
        if (auto it = value.find("iterations"); it != value.end())
            o.adaRoundIterations = readPositiveInt(*it, child(path, "iterations"));
        if (auto it = value.find("images"); it != value.end())
            o.adaRoundImages = readPositiveInt(*it, child(path, "images"));
    }

    void checkLayerKnown(const std::string& name, const std::string& path,
                         const std::optional<std::set<std::string>>& layerNames) const
    {
        if (!layerNames || layerNames->count(name))
            return;
        if (layerNames->empty())
            fail(path, "the model has no layer " + jsonQuoted(name) + " (it has no quantizable layers)");
        std::string list;
        std::size_t listed = 0;
        for (const auto& layer : *layerNames) {
            if (listed == kMaxListedLayers)
                break;
            list += (listed++ ? ", " : "") + layer;
        }
        if (layerNames->size() > listed)
            list += ", and " + std::to_string(layerNames->size() - listed) + " more";
        fail(path, "the model has no layer " + jsonQuoted(name) + " (layers: " + list + ")");
    }

private:
    std::string source_;
};

json repairOverrideJson(const RepairOverride& o)
{
    json j = json::object();
    if (o.equalization)
        j["equalization"] = *o.equalization;
    if (o.relu6AsRelu)
        j["relu6_as_relu"] = *o.relu6AsRelu;
    if (o.biasCorrection)
        j["bias_correction"] = std::string(biasCorrectionName(*o.biasCorrection));
    if (o.smoothQuant)
        j["smoothquant"] = *o.smoothQuant;
    if (o.smoothQuantAlpha)
        j["smoothquant_alpha"] = *o.smoothQuantAlpha;
    // A bare switch when only that is set; else the object, with "enabled" whenever the switch is
    // set (always at the top level, whose spec is written whole).
    if (o.adaRoundIterations || o.adaRoundImages) {
        json a = json::object();
        if (o.adaRound)
            a["enabled"] = *o.adaRound;
        if (o.adaRoundIterations)
            a["iterations"] = *o.adaRoundIterations;
        if (o.adaRoundImages)
            a["images"] = *o.adaRoundImages;
        j["adaround"] = std::move(a);
    } else if (o.adaRound) {
        j["adaround"] = *o.adaRound;
    }
    return j;
}

json tensorOverrideJson(const TensorQuantOverride& o)
{
    json j = json::object();
    if (o.quantize)
        j["float"] = !*o.quantize;
    if (o.scheme)
        j["scheme"] = std::string(schemeTraits(*o.scheme).name);
    if (o.bits)
        j["bits"] = *o.bits;
    if (o.granularity)
        j["granularity"] = std::string(granularityName(*o.granularity));
    if (o.groupSize)
        j["group_size"] = *o.groupSize;
    if (o.isSigned)
        j["signed"] = *o.isSigned;
    if (o.dynamic)
        j["dynamic"] = *o.dynamic;
    if (o.range)
        j["range"] = std::string(weightRangeName(*o.range));
    return j;
}

// A default spec written in full. Fields that do not apply (group_size without per_group) are
// written only when they differ from the built-in value, so that nothing set is lost on a save.
json tensorSpecJson(const TensorQuantSpec& spec, const TensorQuantSpec& builtIn, bool forActivations)
{
    json j = json::object();
    j["scheme"] = std::string(schemeTraits(spec.scheme).name);
    j["bits"] = spec.bits;
    j["granularity"] = std::string(granularityName(spec.granularity));
    if (spec.granularity == Granularity::PerGroup || spec.groupSize != builtIn.groupSize)
        j["group_size"] = spec.groupSize;
    if (spec.isSigned)
        j["signed"] = *spec.isSigned;
    if (forActivations || spec.dynamic != builtIn.dynamic)
        j["dynamic"] = spec.dynamic;
    if (spec.range != builtIn.range)
        j["range"] = std::string(weightRangeName(spec.range));
    if (!spec.quantize)
        j["float"] = true;
    return j;
}

// The method always; a parameter when the method uses it or when it differs from `base`
// (the built-in defaults for the global calibration, the global one for a layer).
json calibrationJson(const CalibrationSpec& spec, const CalibrationSpec& base)
{
    json j = json::object();
    j["method"] = std::string(calibrationMethodName(spec.method));
    if (spec.method == CalibrationMethod::Percentile || spec.percentile != base.percentile)
        j["percentile"] = spec.percentile;
    if (spec.method == CalibrationMethod::MovingAverage || spec.movingAverageConstant != base.movingAverageConstant)
        j["moving_average_constant"] = spec.movingAverageConstant;
    if (spec.fixedRange)  // float -> double is exact, so the file reads back to the same floats
        j["range"] = {double(spec.fixedRange->first), double(spec.fixedRange->second)};
    return j;
}

}  // namespace

QuantConfig QuantConfig::fromJson(const nlohmann::json& json, const std::string& source,
                                  const std::optional<std::set<std::string>>& layerNames)
{
    const Reader r(source);
    if (!json.is_object())
        r.fail("", "expected a JSON object (a " + std::string(kFormat) + " document), got " + describe(json));

    // Format and version first: a file of another kind, or from a newer program, should say so
    // rather than complain about keys this version does not know.
    const auto format = json.find("format");
    if (format == json.end())
        r.fail("format", "missing; expected the string " + jsonQuoted(kFormat));
    if (!format->is_string() || format->get<std::string>() != kFormat)
        r.fail("format", "expected the string " + jsonQuoted(kFormat) + ", got " + describe(*format));
    const auto version = json.find("version");
    if (version == json.end())
        r.fail("version", "missing; expected " + std::to_string(kVersion));
    if (!version->is_number_integer())
        r.fail("version", "expected the integer " + std::to_string(kVersion) + ", got " + describe(*version));
    if (version->is_number_unsigned() ? version->get<std::uint64_t>() > kVersion
                                      : version->get<std::int64_t>() > kVersion)
        r.fail("version", "the file is version " + version->dump() +
                              ", newer than this program, which reads version " + std::to_string(kVersion) +
                              "; update Quantization Explorer to open it");
    if (version->get<std::int64_t>() != kVersion)
        r.fail("version", "expected " + std::to_string(kVersion) + ", got " + describe(*version));
    r.checkKeys(json, "", {"format", "version", "model", "calibration", "default", "repairs", "layers"});

    QuantConfig config;
    if (auto it = json.find("model"); it != json.end())
        config.model = r.readString(*it, "model");
    if (auto it = json.find("calibration"); it != json.end())
        config.calibration = r.readCalibration(*it, "calibration", config.calibration, &config.calibrationImages);
    if (auto it = json.find("default"); it != json.end()) {
        r.requireObject(*it, "default");
        r.checkKeys(*it, "default", {"weights", "activations"});
        if (auto w = it->find("weights"); w != it->end())
            config.defaultWeights = r.merged(r.readTensor(*w, "default.weights", false), config.defaultWeights,
                                             false, "default.weights");
        if (auto a = it->find("activations"); a != it->end())
            config.defaultActivations = r.merged(r.readTensor(*a, "default.activations", true),
                                                 config.defaultActivations, true, "default.activations");
    }
    if (auto it = json.find("repairs"); it != json.end())
        config.repairs = r.readRepairs(*it, "repairs", true).appliedTo(config.repairs);
    if (auto it = json.find("layers"); it != json.end()) {
        r.requireObject(*it, "layers");
        for (const auto& [name, value] : it->items()) {
            const std::string path = child("layers", name);
            r.checkLayerKnown(name, path, layerNames);
            r.requireObject(value, path);
            r.checkKeys(value, path, {"float", "weights", "activations", "calibration", "repairs"});
            LayerOverride layer;
            if (auto f = value.find("float"); f != value.end())
                layer.keepFloat = r.readBool(*f, child(path, "float"));
            if (auto w = value.find("weights"); w != value.end()) {
                layer.weights = r.readTensor(*w, child(path, "weights"), false);
                r.merged(layer.weights, config.defaultWeights, false, child(path, "weights"));
            }
            if (auto a = value.find("activations"); a != value.end()) {
                layer.activations = r.readTensor(*a, child(path, "activations"), true);
                r.merged(layer.activations, config.defaultActivations, true, child(path, "activations"));
            }
            if (auto c = value.find("calibration"); c != value.end())
                layer.calibration = r.readCalibration(*c, child(path, "calibration"), config.calibration, nullptr);
            if (auto rep = value.find("repairs"); rep != value.end())
                layer.repairs = r.readRepairs(*rep, child(path, "repairs"), false);
            // An empty override is the same as none; dropping it keeps toJson/fromJson exact inverses.
            if (!layer.empty())
                config.layers.emplace(name, std::move(layer));
        }
    }
    return config;
}

nlohmann::json QuantConfig::toJson() const
{
    const QuantConfig builtIn;
    json out = json::object();
    out["format"] = std::string(kFormat);
    out["version"] = kVersion;
    if (!model.empty())
        out["model"] = model;
    json cal = calibrationJson(calibration, builtIn.calibration);
    cal["images"] = calibrationImages;
    out["calibration"] = std::move(cal);
    out["default"] = {{"weights", tensorSpecJson(defaultWeights, builtIn.defaultWeights, false)},
                      {"activations", tensorSpecJson(defaultActivations, builtIn.defaultActivations, true)}};
    if (repairs != builtIn.repairs) {
        // The switches always, AdaRound's parameters only when they differ from the built-in ones.
        const AdaRoundSpec& a = repairs.adaRound;
        const AdaRoundSpec& builtInA = builtIn.repairs.adaRound;
        out["repairs"] = repairOverrideJson(
            {repairs.equalization, repairs.relu6AsRelu, repairs.biasCorrection, a.enabled,
             a.iterations != builtInA.iterations ? std::optional(a.iterations) : std::nullopt,
             a.images != builtInA.images ? std::optional(a.images) : std::nullopt, repairs.smoothQuant,
             repairs.smoothQuantAlpha != builtIn.repairs.smoothQuantAlpha ? std::optional(repairs.smoothQuantAlpha) : std::nullopt});
    }
    json layerJson = json::object();
    for (const auto& [name, layer] : layers) {
        if (layer.empty())
            continue;
        json entry = json::object();
        if (layer.keepFloat)
            entry["float"] = true;
        if (!layer.weights.empty())
            entry["weights"] = tensorOverrideJson(layer.weights);
        if (!layer.activations.empty())
            entry["activations"] = tensorOverrideJson(layer.activations);
        if (layer.calibration)
            entry["calibration"] = calibrationJson(*layer.calibration, calibration);
        if (!layer.repairs.empty())
            entry["repairs"] = repairOverrideJson(layer.repairs);
        layerJson[name] = std::move(entry);
    }
    out["layers"] = std::move(layerJson);
    return out;
}

QuantConfig QuantConfig::load(const std::filesystem::path& path, const std::optional<std::set<std::string>>& layerNames)
{
    const std::string name = path.string();
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
        throw Error(name + ": no such file");
    if (std::filesystem::is_directory(path, ec))
        throw Error(name + ": is a directory, not a configuration file");
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw Error(name + ": cannot be opened for reading");
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad())
        throw Error(name + ": read error");

    json document;
    try {
        document = json::parse(text.str());
    } catch (const json::parse_error& e) {
        // nlohmann's message starts with "[json.exception.parse_error.101] "; the rest (line,
        // column and what was expected) is what a person editing the file needs.
        std::string what = e.what();
        if (const auto end = what.find("] "); what.starts_with("[json.exception") && end != std::string::npos)
            what.erase(0, end + 2);
        throw Error(name + ": not valid JSON (byte " + std::to_string(e.byte) + "): " + what);
    } catch (const json::exception& e) {
        // A number too large for a double ("1E400") is valid JSON syntax that nlohmann refuses
        // with out_of_range rather than parse_error.
        std::string what = e.what();
        if (const auto end = what.find("] "); what.starts_with("[json.exception") && end != std::string::npos)
            what.erase(0, end + 2);
        throw Error(name + ": not valid JSON: " + what);
    }
    return fromJson(document, name, layerNames);
}

void QuantConfig::save(const std::filesystem::path& path) const
{
    writeFileAtomically(path, toJson().dump(2, ' ', false, json::error_handler_t::replace) + "\n");
}

}  // namespace qe
