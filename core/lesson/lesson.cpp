// The lessons' facts: one table of what a text may name ({model.top1}, {layer.isolated_sqnr_db},
// the teaching views' numbers), rendering texts with live numbers, and checking answers.
#include "lesson/lesson.h"
#include "lesson/lesson_internal.h"

#include "common/error.h"
#include "common/format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <set>

namespace qe {


const std::vector<std::string>& lessonViews()
{
    static const std::vector<std::string> views{"histograms", "details", "accuracy", "images", "channels",
                                                "repairs",    "graph",   "sensitivity", "pareto",
                                                "playground", "integer"};
    return views;
}

namespace {

// What a fact is computed from: the evaluation, and the selected layer's metrics and parameters
// (null when no layer is selected or the layer is not in the evaluation).
struct FactSources {
    const StudyResult& result;
    const LayerMetrics* layer = nullptr;
    const LayerPlan* plan = nullptr;
    const LessonViewFacts* views = nullptr;  // the teaching views' facts, when shown
};
using FactValue = std::function<std::optional<double>(const FactSources&)>;

struct FactDefinition {
    LessonFactInfo info;
    FactValue value;
};

std::optional<double> finite(double v)
{
    return std::isfinite(v) ? std::optional<double>(v) : std::nullopt;
}

std::optional<double> uniformScale(const std::optional<QuantParams>& p)
{
    if (!p || !std::holds_alternative<UniformParams>(p->values) || p->uniform().scale.empty())
        return std::nullopt;
    return p->uniform().scale.front();
}

// The teaching views' facts: key, meaning, decimals, and the value from what the view shows.
template <class Shown> struct ViewFactDefinition {
    LessonFactInfo info;
    std::function<std::optional<double>(const Shown&)> value;
};

const std::vector<ViewFactDefinition<Playground>>& playgroundFactTable()
{
    using P = Playground;
    static const std::vector<ViewFactDefinition<Playground>> table{
        {{"playground.scale", "the playground's step between levels (uniform schemes)", 4},
         [](const P& p) -> std::optional<double> { return p.scale ? std::optional<double>(*p.scale) : std::nullopt; }},
        {{"playground.zero_point", "the playground's zero-point (uniform schemes)", 0},
         [](const P& p) -> std::optional<double> { return p.zeroPoint ? std::optional<double>(*p.zeroPoint) : std::nullopt; }},
        {{"playground.bits", "the playground's bits", 0}, [](const P& p) { return std::optional<double>(p.params.bits); }},
        {{"playground.levels", "representable values inside the playground's range", 0},
         [](const P& p) { return std::optional<double>(double(p.levels.size())); }},
        {{"playground.range_min", "the low end of the playground's clipping range", 3}, [](const P& p) { return std::optional<double>(p.rangeMin); }},
        {{"playground.range_max", "the high end of the playground's clipping range", 3}, [](const P& p) { return std::optional<double>(p.rangeMax); }},
        {{"playground.clipped", "playground values outside the clipping range", 0}, [](const P& p) { return std::optional<double>(double(p.clipped)); }},
        {{"playground.max_error", "the largest |error| of the playground's values", 4}, [](const P& p) { return std::optional<double>(p.maxAbsError); }},
        {{"playground.rms_error", "the RMS error of the playground's values", 4}, [](const P& p) { return std::optional<double>(p.rmsError); }},
        {{"playground.sqnr_db", "SQNR of the playground's values, dB", 1},
         [](const P& p) { return std::isfinite(p.sqnrDb) ? std::optional<double>(p.sqnrDb) : std::nullopt; }},
    };
    return table;
}

const std::vector<ViewFactDefinition<IntegerTrace>>& traceFactTable()
{
    using T = IntegerTrace;
    auto number = [](auto f) { return [f](const T& t) { return std::optional<double>(double(f(t))); }; };
    static const std::vector<ViewFactDefinition<IntegerTrace>> table{
        {{"trace.terms", "products summed into the traced value's accumulator", 0}, number([](const T& t) { return t.terms.size(); })},
        {{"trace.input_zero_point", "the traced layer's input zero-point", 0}, number([](const T& t) { return t.inputZeroPoint; })},
        {{"trace.weight_zero_point", "the traced channel's weight zero-point", 0}, number([](const T& t) { return t.weightZeroPoint; })},
        {{"trace.accumulator", "the int32 sum of the products", 0}, number([](const T& t) { return t.accumulator; })},
        {{"trace.bias", "the traced channel's float bias", 5}, number([](const T& t) { return t.bias; })},
        {{"trace.bias_code", "the bias as an int32 in accumulator units", 0}, number([](const T& t) { return t.biasCode; })},
        {{"trace.biased", "accumulator plus bias", 0}, number([](const T& t) { return t.biased; })},
        {{"trace.real_multiplier", "M = input scale x weight scale / output scale", 8}, number([](const T& t) { return t.realMultiplier; })},
        {{"trace.multiplier", "M's Q0.31 mantissa (an int32)", 0}, number([](const T& t) { return t.multiplier; })},
        {{"trace.shift", "M's right shift", 0}, number([](const T& t) { return t.rightShift; })},
        {{"trace.exact", "accumulator plus bias, times M, in real arithmetic", 4}, number([](const T& t) { return t.exactRescaled; })},
        {{"trace.rounded", "the rescaled value rounded (half to even)", 0}, number([](const T& t) { return t.rounded; })},
        {{"trace.output_zero_point", "the traced layer's output zero-point", 0}, number([](const T& t) { return t.outputZeroPoint; })},
        {{"trace.code_min", "the lowest output code (a fused Relu raises it)", 0}, number([](const T& t) { return t.codeMin; })},
        {{"trace.code_max", "the highest output code", 0}, number([](const T& t) { return t.codeMax; })},
        {{"trace.code", "the traced output code", 0}, number([](const T& t) { return t.code; })},
        {{"trace.engine_code", "the int8 engine's code at the traced position", 0}, number([](const T& t) { return t.engineCode; })},
        {{"trace.dequantized", "the traced code as a real value", 5}, number([](const T& t) { return t.dequantized; })},
    };
    return table;
}

template <class Shown> LessonViewFacts viewFacts(const std::vector<ViewFactDefinition<Shown>>& table, const Shown& shown)
{
    LessonViewFacts facts;
    for (const auto& f : table)
        if (const std::optional<double> v = f.value(shown); v && std::isfinite(*v))
            facts[f.info.key] = *v;
    return facts;
}

// The one table of facts: key, meaning, decimals, and how the live value is found. A fact named
// in a lesson file is checked against it when the file loads.
const std::vector<FactDefinition>& factTable()
{
    static const std::vector<FactDefinition> table = [] {
        std::vector<FactDefinition> t;
        auto model = [&t](std::string key, std::string meaning, int decimals, std::function<double(const ModelMetrics&)> f) {
            t.push_back({{std::move(key), std::move(meaning), decimals},
                         [f](const FactSources& s) { return finite(f(s.result.metrics)); }});
        };
        auto layer = [&t](std::string key, std::string meaning, int decimals,
                          std::function<std::optional<double>(const LayerMetrics&, const LayerPlan*)> f) {
            t.push_back({{std::move(key), std::move(meaning), decimals}, [f](const FactSources& s) -> std::optional<double> {
                             if (!s.layer)
                                 return std::nullopt;
                             const std::optional<double> v = f(*s.layer, s.plan);
                             return v ? finite(*v) : std::nullopt;
                         }});
        };
        model("model.top1", "top-1 accuracy of the quantized model (simulation), percent", 2,
              [](const ModelMetrics& m) { return 100 * m.top1; });
        model("model.float_top1", "top-1 accuracy of the float model, percent", 2,
              [](const ModelMetrics& m) { return 100 * m.floatTop1; });
        model("model.top1_drop", "float top-1 minus quantized top-1, percentage points", 2,
              [](const ModelMetrics& m) { return 100 * (m.floatTop1 - m.top1); });
        model("model.agreement", "images where quantized and float predict the same class, percent", 2,
              [](const ModelMetrics& m) { return 100 * m.agreement; });
        model("model.output_sqnr_db", "signal-to-quantization-noise ratio of the model's output, dB", 1,
              [](const ModelMetrics& m) { return m.outputSqnrDb; });
        model("model.size_kib", "weight storage under the configuration, KiB", 1,
              [](const ModelMetrics& m) { return m.sizeBytes / 1024; });
        model("model.float_size_kib", "weight storage in float, KiB", 1,
              [](const ModelMetrics& m) { return m.floatSizeBytes / 1024; });
        model("model.bits_per_weight", "average bits per weight", 2, [](const ModelMetrics& m) { return m.bitsPerWeight; });
        model("model.images", "evaluation images", 0, [](const ModelMetrics& m) { return double(m.images); });
        t.push_back({{"engine.top1", "top-1 accuracy of the int8 engine, percent (when it ran)", 2},
                     [](const FactSources& s) -> std::optional<double> {
                         return s.result.integer ? std::optional<double>(100 * s.result.integer->top1) : std::nullopt;
                     }});
        t.push_back({{"engine.integer_layers", "layers the int8 engine runs in integers (when it ran)", 0},
                     [](const FactSources& s) -> std::optional<double> {
                         return s.result.integer ? std::optional<double>(double(s.result.integer->integerLayers)) : std::nullopt;
                     }});
        layer("layer.sqnr_db", "SQNR of the layer's output with everything before it quantized, dB", 1,
              [](const LayerMetrics& l, const LayerPlan*) { return l.accumulated.sqnrDb; });
        layer("layer.isolated_sqnr_db", "SQNR of the layer's output with only this layer quantized, dB", 1,
              [](const LayerMetrics& l, const LayerPlan*) { return l.isolated.sqnrDb; });
        layer("layer.weight_sqnr_db", "SQNR of the layer's quantized weights, dB", 1,
              [](const LayerMetrics& l, const LayerPlan*) -> std::optional<double> {
                  return l.weights ? std::optional<double>(l.weights->sqnrDb) : std::nullopt;
              });
        layer("layer.clipped_percent", "activations outside the clipping range, percent", 3,
              [](const LayerMetrics& l, const LayerPlan*) { return 100 * l.clippedFraction; });
        layer("layer.rounding_rms_steps", "RMS rounding error inside the range, in quantization steps (uniform noise: 0.289)", 3,
              [](const LayerMetrics& l, const LayerPlan*) { return l.rmseOverScale; });
        layer("layer.weight_count", "number of weights", 0,
              [](const LayerMetrics& l, const LayerPlan*) -> std::optional<double> {
                  return l.weightCount ? std::optional<double>(double(l.weightCount)) : std::nullopt;
              });
        layer("layer.weight_bits", "bits of the weights (absent when they stay float)", 0,
              [](const LayerMetrics&, const LayerPlan* p) -> std::optional<double> {
                  return p && p->weightParams ? std::optional<double>(p->weightParams->bits) : std::nullopt;
              });
        layer("layer.activation_bits", "bits of the output activation (absent when it stays float)", 0,
              [](const LayerMetrics&, const LayerPlan* p) -> std::optional<double> {
                  if (!p || !(p->activationParams || p->dynamicActivations))
                      return std::nullopt;
                  return p->activationParams ? p->activationParams->bits : p->config.activations.bits;
              });
        layer("layer.weight_scale", "step of the weights' first quantizer (per channel: channel 0)", 6,
              [](const LayerMetrics&, const LayerPlan* p) { return p ? uniformScale(p->weightParams) : std::nullopt; });
        layer("layer.activation_scale", "step of the output activation's quantizer", 6,
              [](const LayerMetrics&, const LayerPlan* p) { return p ? uniformScale(p->activationParams) : std::nullopt; });
        layer("layer.activation_zero_point", "zero-point of the output activation's quantizer", 0,
              [](const LayerMetrics&, const LayerPlan* p) -> std::optional<double> {
                  if (!p || !p->activationParams || !std::holds_alternative<UniformParams>(p->activationParams->values) ||
                      p->activationParams->uniform().zeroPoint.empty())
                      return std::nullopt;
                  return p->activationParams->uniform().zeroPoint.front();
              });
        layer("layer.macs", "multiply-accumulates per image", 0,
              [](const LayerMetrics& l, const LayerPlan*) -> std::optional<double> {
                  return l.macs > 0 ? std::optional<double>(l.macs) : std::nullopt;
              });
        // The views' facts are looked up in what the window (or the handout) passes.
        auto view = [&t](const LessonFactInfo& info) {
            t.push_back({info, [key = info.key](const FactSources& s) -> std::optional<double> {
                             if (!s.views)
                                 return std::nullopt;
                             const auto it = s.views->find(key);
                             return it != s.views->end() ? std::optional<double>(it->second) : std::nullopt;
                         }});
        };
        for (const auto& f : playgroundFactTable())
            view(f.info);
        for (const auto& f : traceFactTable())
            view(f.info);
        return t;
    }();
    return table;
}

// Words a text may name besides the numbers.
const std::set<std::string>& wordFacts()
{
    static const std::set<std::string> words{"layer.name", "layer.op"};
    return words;
}

const FactDefinition* findFact(const std::string& key)
{
    for (const FactDefinition& f : factTable())
        if (f.info.key == key)
            return &f;
    return nullptr;
}

FactSources sourcesFor(const StudyResult& result, const std::string& layer, const LessonViewFacts& views)
{
    FactSources s{result};
    s.views = &views;
    for (std::size_t i = 0; i < result.metrics.layers.size(); ++i)
        if (result.metrics.layers[i].name == layer) {
            s.layer = &result.metrics.layers[i];
            s.plan = i < result.plans.size() ? &result.plans[i] : nullptr;
        }
    return s;
}

// One placeholder of a text: the fact's key and the decimals asked for (-1: the fact's own).
struct Placeholder {
    std::string key;
    int decimals = -1;
};

// Calls `literal` for each run of plain text and `placeholder` for each {key} or {key:decimals}
// of `text`; qe::Error (without the file, which the caller adds) for an unclosed brace or a bad
// decimals count.
void scanText(const std::string& text, const std::function<void(const std::string&)>& literal,
              const std::function<void(const Placeholder&)>& placeholder)
{
    std::string run;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if ((c == '{' || c == '}') && i + 1 < text.size() && text[i + 1] == c) {
            run += c;
            ++i;
            continue;
        }
        if (c == '}')
            throw Error("a '}' without its '{' at character " + std::to_string(i + 1) + " (write '}}' for a brace)");
        if (c != '{') {
            run += c;
            continue;
        }
        const std::size_t end = text.find('}', i);
        if (end == std::string::npos)
            throw Error("a '{' without its '}' at character " + std::to_string(i + 1) + " (write '{{' for a brace)");
        std::string inside = text.substr(i + 1, end - i - 1);
        Placeholder p;
        if (const std::size_t colon = inside.find(':'); colon != std::string::npos) {
            const std::string digits = inside.substr(colon + 1);
            if (digits.empty() || digits.size() > 1 || !std::isdigit(static_cast<unsigned char>(digits[0])))
                throw Error("{" + inside + "}: expected a number of decimals from 0 to 9 after ':'");
            p.decimals = digits[0] - '0';
            inside.resize(colon);
        }
        p.key = inside;
        literal(run);
        run.clear();
        placeholder(p);
        i = end;
    }
    literal(run);
}

}  // namespace

namespace lesson_internal {

bool isNumericFact(const std::string& key) { return findFact(key) != nullptr; }

void checkText(const std::string& text, const std::function<void(const std::string&)>& fail)
{
    try {
        scanText(
            text, [](const std::string&) {},
            [&](const Placeholder& p) {
                if (!findFact(p.key) && !wordFacts().count(p.key))
                    fail("{" + p.key + "} is not a fact; expected one of those listed in resources/lessons/README.md (e.g. "
                         "{model.top1}, {layer.isolated_sqnr_db})");
            });
    } catch (const Error& e) {
        fail(e.what());
    }
}

}  // namespace lesson_internal

LessonViewFacts playgroundFacts(const Playground& playground) { return viewFacts(playgroundFactTable(), playground); }
LessonViewFacts integerTraceFacts(const IntegerTrace& trace) { return viewFacts(traceFactTable(), trace); }

const std::vector<LessonFactInfo>& lessonFactKeys()
{
    static const std::vector<LessonFactInfo> keys = [] {
        std::vector<LessonFactInfo> k;
        for (const FactDefinition& f : factTable())
            k.push_back(f.info);
        k.push_back({"layer.name", "the selected layer's name", 0});
        k.push_back({"layer.op", "the selected layer's operator", 0});
        return k;
    }();
    return keys;
}

std::map<std::string, double> lessonFacts(const StudyResult& result, const std::string& layer, const LessonViewFacts& views)
{
    const FactSources sources = sourcesFor(result, layer, views);
    std::map<std::string, double> facts;
    for (const FactDefinition& f : factTable())
        if (const std::optional<double> v = f.value(sources))
            facts[f.info.key] = *v;
    return facts;
}

std::map<std::string, std::map<std::string, double>> lessonLayerFacts(const StudyResult& result)
{
    std::map<std::string, std::map<std::string, double>> byLayer;
    for (const LayerMetrics& l : result.metrics.layers) {
        std::map<std::string, double> facts = lessonFacts(result, l.name);
        std::erase_if(facts, [](const auto& entry) { return entry.first.rfind("layer.", 0) != 0; });
        byLayer[l.name] = std::move(facts);
    }
    return byLayer;
}

std::string renderLessonText(const std::string& text, const StudyResult& result, const std::string& layer,
                             const LessonViewFacts& views)
{
    const FactSources sources = sourcesFor(result, layer, views);
    std::string out;
    scanText(
        text, [&](const std::string& run) { out += run; },
        [&](const Placeholder& p) {
            if (p.key == "layer.name") {
                out += sources.layer ? sources.layer->name : "n/a";
                return;
            }
            if (p.key == "layer.op") {
                out += sources.layer ? sources.layer->opType : "n/a";
                return;
            }
            const FactDefinition* f = findFact(p.key);
            const std::optional<double> v = f ? f->value(sources) : std::nullopt;
            out += v ? formatFixed(*v, p.decimals >= 0 ? p.decimals : f->info.decimals) : "n/a";
        });
    return out;
}

LessonAnswerCheck checkLessonAnswer(const LessonQuestion& question, const std::string& answer, const StudyResult& result,
                                    const std::string& layer, const LessonViewFacts& views)
{
    LessonAnswerCheck check;
    const FactDefinition* f = findFact(question.fact);
    if (!f)
        throw Error("lesson question: \"" + question.fact + "\" is not a fact");
    std::string given = answer;
    given.erase(0, given.find_first_not_of(" \t"));
    given.erase(given.find_last_not_of(" \t") + 1);
    if (question.answer == "number") {
        const std::optional<double> v = f->value(sourcesFor(result, layer, views));
        if (!v) {
            check.explanation = question.fact + " has no value for this evaluation.";
            return check;
        }
        check.expected = formatFixed(*v, f->info.decimals);
        double number = std::numeric_limits<double>::quiet_NaN();
        try {
            std::size_t used = 0;
            number = std::stod(given, &used);
            if (used != given.size())
                number = std::numeric_limits<double>::quiet_NaN();
        } catch (const std::exception&) {
        }
        check.correct = std::isfinite(number) && std::abs(number - *v) <= question.tolerance;
        check.explanation = "The live value is " + check.expected + " (" + f->info.meaning + ")" +
                            (std::isfinite(number) ? "; you answered " + given + "." : "; expected a number.");
        return check;
    }
    // Layers: the one with the lowest (highest) value of the fact among the layers that have it.
    const bool lowest = question.answer == "lowest_layer";
    std::optional<double> best;
    for (const auto& [name, facts] : lessonLayerFacts(result)) {
        const auto it = facts.find(question.fact);
        if (it == facts.end())
            continue;
        if (!best || (lowest ? it->second < *best : it->second > *best)) {
            best = it->second;
            check.expected = name;
        }
    }
    if (!best) {
        check.explanation = "No layer has a value of " + question.fact + " in this evaluation.";
        return check;
    }
    check.correct = given == check.expected;
    check.explanation = check.expected + " has the " + (lowest ? "lowest" : "highest") + " " + f->info.meaning + ": " +
                        formatFixed(*best, f->info.decimals) + ".";
    if (!check.correct && !given.empty()) {
        const std::map<std::string, double> facts = lessonFacts(result, given);
        const auto it = facts.find(question.fact);
        check.explanation += it != facts.end() ? " " + given + " has " + formatFixed(it->second, f->info.decimals) + "."
                                               : " \"" + given + "\" is not a layer with this number.";
    }
    return check;
}

}  // namespace qe
