#include "repair/repair.h"

#include "common/error.h"
#include "model/operator_traits.h"
#include "quant/simulator.h"
#include "repair/adaround.h"
#include "repair/bias_correction.h"
#include "repair/layer_samples.h"
#include "repair/weight_channels.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

namespace qe {

namespace {

bool correctsBias(const LayerQuantConfig& c, const QuantLayer& layer)
{
    return c.repairs.biasCorrection != BiasCorrection::None && !layer.weight.empty() && !c.keepFloat && c.weights.quantize;
}

bool adaRounds(const LayerQuantConfig& c, const QuantLayer& layer)
{
    return c.repairs.adaRound.enabled && !layer.weight.empty() && layer.nodeIndex >= 0 && !c.keepFloat && c.weights.quantize;
}

// Why AdaRound cannot round this layer's weights as configured; "" when it can.
std::string adaRoundObstacle(const Graph& graph, const QuantLayer& layer, const LayerQuantConfig& c)
{
    const Node& node = graph.nodes.at(std::size_t(layer.nodeIndex));
    const IntegerFamily family = operatorTraits(node.name, node.opType).integer;
    if (family != IntegerFamily::Convolution && family != IntegerFamily::MatrixProduct)
        return "AdaRound takes Conv, Gemm and MatMul layers, not " + node.opType;
    const SchemeTraits& scheme = schemeTraits(c.weights.scheme);
    if (scheme.family != SchemeFamily::Uniform)
        return "AdaRound chooses between the two nearest levels of a uniform grid, not of '" + std::string(scheme.name) + "'";
    if (c.weights.granularity == Granularity::PerGroup)
        return "AdaRound takes per-tensor or per-channel weights, not per-group";
    return {};
}

// The fraction of each output channel's weights whose code differs between `a` and `b` (codes in
// the layout of the weights, channels on `axis`).
std::vector<float> differingPerChannel(const std::vector<std::int32_t>& a, const std::vector<std::int32_t>& b,
                                       const Shape& shape, int axis)
{
    const std::int64_t channels = shape.at(std::size_t(axis));
    std::int64_t inner = 1;
    for (std::size_t d = std::size_t(axis) + 1; d < shape.size(); ++d)
        inner *= shape[d];
    std::vector<std::int64_t> differing(std::size_t(channels), 0);
    for (std::size_t i = 0; i < a.size(); ++i)
        differing[std::size_t((std::int64_t(i) / inner) % channels)] += a[i] != b[i];
    const double perChannel = double(a.size()) / double(channels);
    std::vector<float> fractions;
    for (std::int64_t d : differing)
        fractions.push_back(float(double(d) / perChannel));
    return fractions;
}

// AdaRound on each layer that asks for it, in graph order. A layer learns on its input as the
// model quantized so far computes it (the earlier layers' weights as AdaRound rounded them,
// activations quantized with ranges calibrated on `graph`), against the float reference's output.
void adaRoundLayers(Graph& graph, const Graph& reference, const std::vector<QuantLayer>& layers, const QuantConfig& config,
                    const RepairImages& images, const RepairProgress& progress, RepairedModel& result)
{
    std::vector<const QuantLayer*> chosen;
    for (const QuantLayer& layer : layers) {
        const LayerQuantConfig c = config.resolve(layer.name);
        if (!adaRounds(c, layer))
            continue;
        if (const std::string obstacle = adaRoundObstacle(graph, layer, c); !obstacle.empty())
            result.report.skipped.push_back({layer.name, obstacle});
        else if (!images.available() || images.first >= images.dataset->size())
            result.report.skipped.push_back({layer.name, "AdaRound needs calibration images"});
        else
            chosen.push_back(&layer);
    }
    if (chosen.empty())
        return;

    CalibrationOptions calibrationOptions;
    calibrationOptions.images = images.images;
    calibrationOptions.cancel = progress.cancel;
    if (progress.report)
        calibrationOptions.progress = [&](std::size_t done, std::size_t total) { progress.report("AdaRound: calibrating", done, total); };
    const CalibrationData calibration = calibrate(graph, layers, *images.dataset, *images.preprocess, calibrationOptions);

    for (std::size_t k = 0; k < chosen.size(); ++k) {
        const QuantLayer& layer = *chosen[k];
        const LayerQuantConfig c = config.resolve(layer.name);
        const AdaRoundSpec& spec = c.repairs.adaRound;
        const std::string stage = "AdaRound layer " + std::to_string(k + 1) + " of " + std::to_string(chosen.size());
        const RepairProgress staged{progress.report ? [&](const std::string& step, std::size_t done, std::size_t total) {
                                        progress.report(stage + " (" + layer.name + "): " + step, done, total);
                                    } : std::function<void(const std::string&, std::size_t, std::size_t)>{},
                                    progress.cancel};
        // No previous plan is passed: its integer weights would be reused for a layer whose
        // weight parameters stayed the same while AdaRound changed its weights.
        const QuantPlan quantizedSoFar = makePlan(graph, layers, config, calibration, nullptr, &result.pinned);
        const std::size_t count = std::min<std::size_t>(std::size_t(spec.images), images.dataset->size() - images.first);
        const LayerSamples samples = collectLayerSamples(reference, {layer}, *images.dataset, *images.preprocess, images.first,
                                                         count, &quantizedSoFar, staged)
                                         .at(layer.name);
        Tensor nearest;
        const QuantParams params = quantizeLayerWeights(layer, c.weights, graph.initializers.at(layer.weight), nearest);
        AdaRoundOptions options;
        options.iterations = spec.iterations;
        options.progress = staged;
        options.stage = "rounding";
        AdaRoundResult rounded;
        try {
            rounded = adaRound(graph, layer, params, samples.inputs, samples.floatOutputs, options);
        } catch (const Cancelled&) {
            throw;
        } catch (const Error& e) {
            result.report.skipped.push_back({layer.name, e.what()});
            continue;
        }
        AdaRoundReport out;
        out.layer = layer.name;
        out.iterations = rounded.statistics.iterations;
        out.images = count;
        out.flippedFraction = rounded.statistics.flippedFraction;
        out.flippedPerChannel = differingPerChannel(rounded.codes, uniformCodes(nearest, params, layer.weightChannelAxis),
                                                    nearest.shape(), layer.weightChannelAxis);
        out.nearestError = rounded.statistics.nearestError;
        out.adaRoundError = rounded.statistics.adaRoundError;
        result.report.adaRounded.push_back(std::move(out));
        graph.initializers[layer.weight] = std::move(rounded.weights);
        result.pinned.weights[layer.name] = {c.weights, params};
    }
}

// The layer whose (activated) output is `tensor`, if a layer's output is.
const QuantLayer* producerOf(const std::vector<QuantLayer>& layers, const std::string& tensor)
{
    for (const QuantLayer& layer : layers)
        if (layer.nodeIndex >= 0 && layer.output == tensor)
            return &layer;
    return nullptr;
}

// The output of the layer's own node, before its fused activation: what a BatchNormalization
// folded into it described.
const std::string& preActivation(const Graph& graph, const QuantLayer& layer)
{
    return graph.nodes.at(std::size_t(layer.nodeIndex)).outputs.at(0);
}

std::string imagesNote(const RepairImages& images)
{
    return "calibration images (" + std::to_string(std::min(images.images, images.dataset->size())) + ")";
}

void equalize(Graph& graph, const std::vector<QuantLayer>& layers, const QuantConfig& config, const RepairImages& images,
              const RepairProgress& progress, RepairReport& report)
{
    std::vector<bool> enabled, relu6AsRelu;
    for (const QuantLayer& layer : layers) {
        const RepairSpec spec = config.resolve(layer.name).repairs;
        enabled.push_back(spec.equalization);
        relu6AsRelu.push_back(spec.relu6AsRelu);
    }
    if (progress.report)
        progress.report("equalization", 0, 0);
    const std::vector<EqualizationPair> pairs = findEqualizationPairs(graph, layers, enabled, relu6AsRelu, report.skipped);
    makeClipsRelu(graph, layers, pairs);
    Equalization equalized = equalizePairs(graph, layers, pairs);
    report.equalizationSweeps = equalized.sweeps;

    // High-bias absorption needs each first layer's pre-activation mean and deviation: from its
    // folded BatchNormalization (rescaled with it), else measured on the equalized model.
    std::map<std::string, bool> toMeasure;
    std::vector<std::string> obstacles(pairs.size());
    for (std::size_t p = 0; p < pairs.size(); ++p) {
        const QuantLayer& first = layers[pairs[p].first];
        obstacles[p] = absorptionObstacle(graph, first, layers[pairs[p].second]);
        if (obstacles[p].empty() && !graph.foldedNormalization.count(first.name) && images.available())
            toMeasure[preActivation(graph, first)] = first.opType == "Conv";
    }
    const auto measured = toMeasure.empty() ? std::map<std::string, ChannelStatistics>{}
                                            : measureChannelStatistics(graph, toMeasure, images, progress);
    for (std::size_t p = 0; p < pairs.size(); ++p) {
        const QuantLayer& first = layers[pairs[p].first];
        EqualizedPair& out = equalized.pairs[p];
        if (!obstacles[p].empty()) {
            out.absorptionStatistics = "no high-bias absorption: " + obstacles[p];
            continue;
        }
        const ChannelStatistics* stats = nullptr;
        if (auto bn = graph.foldedNormalization.find(first.name); bn != graph.foldedNormalization.end()) {
            stats = &bn->second;
            out.absorptionStatistics = "batch normalization folded into '" + first.name + "'";
        } else if (auto m = measured.find(preActivation(graph, first)); m != measured.end()) {
            stats = &m->second;
            out.absorptionStatistics = imagesNote(images);
        } else {
            out.absorptionStatistics = "no high-bias absorption: no folded batch normalization and no calibration images";
            continue;
        }
        out.absorbed = absorbHighBias(graph, first, layers[pairs[p].second], stats->mean, stats->stddev);
        // The pre-activation's mean moved down with the bias.
        if (auto bn = graph.foldedNormalization.find(first.name); bn != graph.foldedNormalization.end())
            for (std::size_t i = 0; i < out.absorbed.size() && i < bn->second.mean.size(); ++i)
                bn->second.mean[i] -= out.absorbed[i];
    }
    report.equalized = std::move(equalized.pairs);
}

void correctBiases(Graph& graph, const Graph& reference, const std::vector<QuantLayer>& layers, const QuantConfig& config,
                   const RepairImages& images, const RepairProgress& progress, RepairReport& report)
{
    std::vector<const QuantLayer*> empirical, analytical;
    std::map<std::string, Tensor> quantized;
    for (const QuantLayer& layer : layers) {
        const LayerQuantConfig c = config.resolve(layer.name);
        if (!correctsBias(c, layer))
            continue;
        const Node& node = graph.nodes.at(std::size_t(layer.nodeIndex));
        if (operatorTraits(node.name, node.opType).biasInput < 0) {
            report.skipped.push_back({layer.name, "bias correction: a " + node.opType + " has no bias to correct"});
            continue;
        }
        Tensor q;
        quantizeLayerWeights(layer, c.weights, reference.initializers.at(layer.weight), q);
        quantized[layer.name] = q;
        if (c.repairs.biasCorrection == BiasCorrection::Empirical && !images.available())
            report.skipped.push_back({layer.name, "empirical bias correction needs calibration images"});
        else
            (c.repairs.biasCorrection == BiasCorrection::Empirical ? empirical : analytical).push_back(&layer);
    }

    std::map<std::string, std::vector<double>> shifts;
    std::map<std::string, std::string> sources;
    if (!empirical.empty()) {
        std::vector<QuantLayer> measuredLayers;
        for (const QuantLayer* layer : empirical)
            measuredLayers.push_back(*layer);
        shifts = measureQuantizationShift(reference, measuredLayers, quantized, images, progress);
        for (const QuantLayer* layer : empirical)
            sources[layer->name] = imagesNote(images);
    }
    // Analytical: E[x] from the producing layer's folded BatchNormalization, else from its
    // pre-activation measured on the images (the same clipped-normal model, other statistics).
    std::map<std::string, bool> toMeasure;
    for (const QuantLayer* layer : analytical) {
        const QuantLayer* producer = producerOf(layers, reference.nodes.at(std::size_t(layer->nodeIndex)).input(0));
        if (producer && !reference.foldedNormalization.count(producer->name) && images.available())
            toMeasure[preActivation(reference, *producer)] = producer->opType == "Conv";
    }
    const auto measured = toMeasure.empty() ? std::map<std::string, ChannelStatistics>{}
                                            : measureChannelStatistics(reference, toMeasure, images, progress);
    for (const QuantLayer* layer : analytical) {
        const QuantLayer* producer = producerOf(layers, reference.nodes.at(std::size_t(layer->nodeIndex)).input(0));
        const ChannelStatistics* stats = nullptr;
        if (!producer) {
            report.skipped.push_back({layer->name, "analytical bias correction: its input is not a layer's output, so "
                                                   "nothing gives its statistics"});
            continue;
        }
        if (auto bn = reference.foldedNormalization.find(producer->name); bn != reference.foldedNormalization.end()) {
            stats = &bn->second;
            sources[layer->name] = "batch normalization folded into '" + producer->name + "'";
        } else if (auto m = measured.find(preActivation(reference, *producer)); m != measured.end()) {
            stats = &m->second;
            sources[layer->name] = "normal model of '" + producer->name + "' fitted on " + imagesNote(images);
        } else {
            report.skipped.push_back({layer->name, "analytical bias correction: '" + producer->name +
                                                   "' has no folded batch normalization and no calibration images were given"});
            continue;
        }
        const std::vector<double> expected = expectedActivation(reference, *producer, *stats);
        const WeightChannels layout = weightChannels(reference, *layer);
        if (std::int64_t(expected.size()) != layout.inputs) {
            report.skipped.push_back({layer->name, "analytical bias correction: " + std::to_string(expected.size()) +
                                                   " statistics for " + std::to_string(layout.inputs) + " input channels"});
            continue;
        }
        shifts[layer->name] = analyticalQuantizationShift(reference, *layer, quantized.at(layer->name), expected);
    }

    for (const QuantLayer& layer : layers) {
        auto shift = shifts.find(layer.name);
        if (shift == shifts.end())
            continue;
        subtractFromBias(graph, layer, shift->second);
        BiasCorrectionReport out;
        out.layer = layer.name;
        out.mode = config.resolve(layer.name).repairs.biasCorrection;
        out.statistics = sources[layer.name];
        out.shift.assign(shift->second.begin(), shift->second.end());
        report.biasCorrected.push_back(std::move(out));
    }
}

}  // namespace

std::vector<std::string> describeRepairs(const RepairReport& report)
{
    const auto percent = [](double f) {
        char text[32];
        std::snprintf(text, sizeof text, "%.1f%%", 100 * f);
        return std::string(text);
    };
    std::vector<std::string> lines;
    for (const SmoothedGroup& g : report.smoothed) {
        std::vector<float> after(g.activationMax.size());
        for (std::size_t j = 0; j < after.size(); ++j)
            after[j] = g.activationMax[j] / g.scales[j];
        char text[160];
        std::snprintf(text, sizeof text, " (alpha %.2f, %zu images): largest activation channel / median %.1f before, %.1f after",
                      double(g.alpha), g.images, double(outlierRatio(g.activationMax)), double(outlierRatio(after)));
        std::string consumers;
        for (const std::string& c : g.consumers)
            consumers += (consumers.empty() ? "" : ", ") + c;
        lines.push_back("SmoothQuant " + g.layerNorm + " -> " + consumers + text);
    }
    if (!report.equalized.empty()) {
        std::string pairs;
        for (const EqualizedPair& p : report.equalized)
            pairs += (pairs.empty() ? "" : ", ") + p.first + " -> " + p.second + (p.clipBecameRelu ? " (ReLU6 made ReLU)" : "") +
                     (p.absorbed.empty() ? "" : " (high bias absorbed)");
        lines.push_back("Cross-layer equalization (" + std::to_string(report.equalizationSweeps) + " sweeps): " + pairs);
    }
    for (const BiasCorrectionReport& b : report.biasCorrected) {
        double largest = 0;
        for (float shift : b.shift)
            largest = std::max(largest, double(std::abs(shift)));
        char text[32];
        std::snprintf(text, sizeof text, "%.3g", largest);
        lines.push_back("Bias correction (" + std::string(biasCorrectionName(b.mode)) + ") on " + b.layer + ": largest shift " + text +
                        ", statistics from " + b.statistics);
    }
    for (const AdaRoundReport& a : report.adaRounded) {
        char errors[96];
        std::snprintf(errors, sizeof errors, "reconstruction error %.4g with nearest rounding, %.4g with AdaRound", a.nearestError,
                      a.adaRoundError);
        lines.push_back("AdaRound on " + a.layer + " (" + std::to_string(a.iterations) + " iterations, " + std::to_string(a.images) +
                        " images): " + percent(a.flippedFraction) + " of the weights rounded the other way, " + errors);
    }
    for (const SkippedRepair& s : report.skipped)
        lines.push_back("Not repaired: " + s.layers + " (" + s.reason + ")");
    return lines;
}

LayerRepairs layerRepairs(const RepairReport& report, const std::string& layer)
{
    LayerRepairs found;
    for (const EqualizedPair& pair : report.equalized) {
        if (pair.first == layer)
            found.equalizedAsFirst = &pair;
        if (pair.second == layer)
            found.equalizedAsSecond = &pair;
    }
    for (const BiasCorrectionReport& b : report.biasCorrected)
        if (b.layer == layer)
            found.biasCorrection = &b;
    for (const AdaRoundReport& a : report.adaRounded)
        if (a.layer == layer)
            found.adaRound = &a;
    for (const SmoothedGroup& g : report.smoothed) {
        if (g.layerNorm == layer)
            found.smoothedLayerNorm = &g;
        if (std::find(g.consumers.begin(), g.consumers.end(), layer) != g.consumers.end())
            found.smoothedWeights = &g;
    }
    // A skipped pair is named "first -> second".
    const std::string asFirst = layer + " -> ", asSecond = " -> " + layer;
    for (const SkippedRepair& skipped : report.skipped)
        if (skipped.layers == layer || skipped.layers.starts_with(asFirst) || skipped.layers.ends_with(asSecond))
            found.skipped.push_back(&skipped);
    return found;
}

std::vector<std::string> describeLayerRepairs(const LayerRepairs& repairs)
{
    const auto number = [](double v) {
        char text[32];
        std::snprintf(text, sizeof text, "%.3g", v);
        return std::string(text);
    };
    // The smallest and largest non-zero scale (0 marks a dead channel).
    const auto scaleSpan = [&](const std::vector<float>& scales) {
        float lo = 0, hi = 0;
        for (float s : scales)
            if (s > 0) {
                lo = lo > 0 ? std::min(lo, s) : s;
                hi = std::max(hi, s);
            }
        return number(lo) + " to " + number(hi);
    };
    std::vector<std::string> lines;
    if (const SmoothedGroup* g = repairs.smoothedLayerNorm) {
        std::vector<float> after(g->activationMax.size());
        for (std::size_t j = 0; j < after.size(); ++j)
            after[j] = g->activationMax[j] / g->scales[j];
        lines.push_back("SmoothQuant (alpha " + number(g->alpha) + "): its output channels divided by s_j from " + scaleSpan(g->scales) +
                        "; largest channel range / median " + number(outlierRatio(g->activationMax)) + " before, " +
                        number(outlierRatio(after)) + " after");
    }
    if (const SmoothedGroup* g = repairs.smoothedWeights)
        lines.push_back("SmoothQuant from " + g->layerNorm + " (alpha " + number(g->alpha) +
                        "): its input channels multiplied by s_j from " + scaleSpan(g->scales));
    if (const EqualizedPair* p = repairs.equalizedAsFirst)
        lines.push_back("Equalized with " + p->second + ": its output channels divided by s_i from " + scaleSpan(p->scales) +
                        (p->clipBecameRelu ? "; the ReLU6 after it made a ReLU" : "") +
                        (p->absorbed.empty() ? "" : "; high bias absorbed into " + p->second));
    if (const EqualizedPair* p = repairs.equalizedAsSecond)
        lines.push_back("Equalized with " + p->first + ": its input channels multiplied by s_i from " + scaleSpan(p->scales));
    if (const BiasCorrectionReport* b = repairs.biasCorrection) {
        std::size_t largest = 0;
        for (std::size_t c = 0; c < b->shift.size(); ++c)
            if (std::abs(b->shift[c]) > std::abs(b->shift[largest]))
                largest = c;
        lines.push_back("Bias corrected (" + std::string(biasCorrectionName(b->mode)) + ", statistics from " + b->statistics + ")" +
                        (b->shift.empty() ? std::string()
                                          : ": largest shift " + number(b->shift[largest]) + " on channel " + std::to_string(largest)));
    }
    if (const AdaRoundReport* a = repairs.adaRound)
        lines.push_back("AdaRound (" + std::to_string(a->iterations) + " iterations, " + std::to_string(a->images) + " images): " +
                        number(100 * a->flippedFraction) + "% of the weights rounded the other way; reconstruction error " +
                        number(a->nearestError) + " with nearest rounding, " + number(a->adaRoundError) + " with AdaRound");
    for (const SkippedRepair* s : repairs.skipped)
        lines.push_back("Not repaired: " + s->layers + " (" + s->reason + ")");
    return lines;
}

bool RepairKey::any() const
{
    for (const RepairSpec& spec : layers)
        if (spec.any())
            return true;
    return false;
}

RepairKey repairKey(const QuantConfig& config, const std::vector<QuantLayer>& layers, std::size_t images)
{
    RepairKey key;
    int lastAdaRounded = -2;  // node index; graph inputs (-1) come before every node
    for (const QuantLayer& layer : layers) {
        const LayerQuantConfig c = config.resolve(layer.name);
        key.layers.push_back(c.repairs);
        key.correctedWeights.push_back(correctsBias(c, layer) ? std::optional(c.weights) : std::nullopt);
        key.adaRoundedWeights.push_back(adaRounds(c, layer) ? std::optional(c.weights) : std::nullopt);
        if (adaRounds(c, layer))
            lastAdaRounded = std::max(lastAdaRounded, layer.nodeIndex);
    }
    for (const QuantLayer& layer : layers)
        key.quantizedBeforeAdaRound.push_back(layer.nodeIndex < lastAdaRounded ? std::optional(config.resolve(layer.name))
                                                                               : std::nullopt);
    key.images = key.any() ? images : 0;
    return key;
}

RepairedModel repair(const Graph& original, const std::vector<QuantLayer>& layers, const QuantConfig& config,
                     const RepairImages& images, const RepairProgress& progress)
{
    RepairedModel result;
    Graph graph = original;
    bool smoothing = false, equalization = false, biasCorrection = false, adaRound = false;
    for (const QuantLayer& layer : layers) {
        const LayerQuantConfig c = config.resolve(layer.name);
        smoothing = smoothing || c.repairs.smoothQuant;
        equalization = equalization || c.repairs.equalization;
        biasCorrection = biasCorrection || correctsBias(c, layer);
        adaRound = adaRound || adaRounds(c, layer);
    }
    if (smoothing)
        result.report.smoothed = smoothQuant(graph, layers, config, images, progress, result.report.skipped);
    if (equalization)
        equalize(graph, layers, config, images, progress, result.report);
    if (progress.cancel && progress.cancel->load())
        throw Cancelled();
    auto reference = std::make_shared<const Graph>(graph);
    if (biasCorrection)
        correctBiases(graph, *reference, layers, config, images, progress, result.report);
    if (adaRound)
        adaRoundLayers(graph, *reference, layers, config, images, progress, result);
    result.reference = std::move(reference);
    result.graph = std::make_shared<const Graph>(std::move(graph));
    return result;
}

}  // namespace qe
