#include "layer_details.h"

#include "charts.h"

#include <QFileInfo>

#include <algorithm>
#include <cmath>

namespace qe {

namespace {

QString num(double v)
{
    return QString::number(v, 'g', 6);
}

QString text(std::string_view s)
{
    return QString::fromUtf8(s.data(), qsizetype(s.size())).toHtmlEscaped();
}

QString row(const QString& name, const QString& value)
{
    return QStringLiteral("<tr><td><b>%1</b></td><td>%2</td></tr>").arg(name, value);
}

QString specSummary(const TensorQuantSpec& spec, bool weights)
{
    if (!spec.quantize)
        return QStringLiteral("float");
    QString s = QStringLiteral("%1, %2 bits").arg(text(schemeTraits(spec.scheme).displayName)).arg(spec.bits);
    if (weights) {
        s += ", " + text(granularityName(spec.granularity)).replace('_', ' ');
        if (spec.granularity == Granularity::PerGroup)
            s += QStringLiteral(" (groups of %1)").arg(spec.groupSize);
        if (searchesWeightRange(spec))
            s += QStringLiteral(", ranges clipped to the least squared error");
    }
    if (spec.dynamic)
        s += ", dynamic";
    return s;
}

// What each block of parameters was fitted with, by kind, and its name.
std::pair<QString, std::vector<float>> perBlockScales(const QuantParams& p)
{
    if (const auto* u = std::get_if<UniformParams>(&p.values))
        return {QStringLiteral("scales"), u->scale};
    if (const auto* l = std::get_if<Log2Params>(&p.values))
        return {QStringLiteral("largest levels"), l->largest};
    if (const auto* f = std::get_if<FloatFormatParams>(&p.values))
        return {QStringLiteral("pre-scales"), f->preScale};
    std::vector<float> widths;  // a codebook: each block's value range
    for (std::size_t b = 0; b < p.rangeMin.size(); ++b)
        widths.push_back(p.rangeMax[b] - p.rangeMin[b]);
    return {QStringLiteral("value ranges"), widths};
}

// The spread of the per-block scales, for per-channel tensors.
QString scaleSpread(const QuantParams& p)
{
    if (p.blockCount() <= 1)
        return {};
    const auto [name, scales] = perBlockScales(p);
    if (scales.empty())
        return {};
    const auto [lo, hi] = std::minmax_element(scales.begin(), scales.end());
    return QStringLiteral("<br>%1 blocks; %2 from %3 to %4 (%5× apart)")
        .arg(p.blockCount())
        .arg(name, num(*lo), num(*hi))
        .arg(*lo > 0 ? *hi / *lo : 0.0, 0, 'f', 1);
}

// How far the least-squared-error search clipped the weights: against the weights' own extremes
// where the tensor has one block and its weights are the model's (no repair rescaled them).
QString searchedRangeHtml(const SessionSnapshot& session, const EvaluationSnapshot& evaluation, const QuantLayer& layer,
                          const QuantParams& p)
{
    QString html = QStringLiteral("<br>The range was searched: of the clipping ranges [f · min, f · max], the one with the least "
                                  "squared error between the weights and their quantized values (weights beyond it saturate; "
                                  "a smaller step for the many weights near 0 pays for it).");
    const LayerRepairs repairs = evaluation.repairs ? layerRepairs(*evaluation.repairs, layer.name) : LayerRepairs{};
    const bool rescaled = repairs.equalizedAsFirst || repairs.equalizedAsSecond || repairs.smoothedWeights;
    if (p.blockCount() != 1 || rescaled || !session.graph || !session.graph->isInitializer(layer.weight))
        return html;
    const Tensor& weights = session.graph->initializers.at(layer.weight);
    if (weights.dtype() != DataType::Float32)
        return html;
    const auto values = weights.values<float>();
    if (values.empty())
        return html;
    const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
    const std::size_t outside = std::size_t(std::count_if(values.begin(), values.end(), [&](float v) {
        return v < p.rangeMin[0] || v > p.rangeMax[0];
    }));
    html += QStringLiteral("<br>The weights span [%1, %2]; the search kept %3% of that width and saturates %4 of %5 weights.")
                .arg(num(*lo), num(*hi))
                .arg(*hi > *lo ? 100.0 * (p.rangeMax[0] - p.rangeMin[0]) / (*hi - *lo) : 100.0, 0, 'f', 1)
                .arg(outside)
                .arg(values.size());
    return html;
}

}  // namespace

QString quantFormulaHtml(const QuantParams& p, std::size_t block, bool rangeSearched)
{
    const double lo = p.rangeMin.at(block), hi = p.rangeMax.at(block);
    // With a searched range, min and max are the search's clip, not the values' extremes.
    const QString minMax = rangeSearched ? QStringLiteral("the clipped [min, max]") : QStringLiteral("[min, max]");
    const double amax = std::max(std::abs(lo), std::abs(hi));
    const SchemeTraits& traits = schemeTraits(p.scheme);
    const QString where = p.blockCount() > 1 ? QStringLiteral("block %1: ").arg(block) : QString();
    QString html;
    if (const auto* u = std::get_if<UniformParams>(&p.values)) {
        const double scale = u->scale.at(block);
        // Counted as the histograms count them: the representable values.
        const std::size_t levels = quantizationLevels(p, block).size();
        if (p.scheme == Scheme::Affine) {
            const int zp = u->zeroPoint.at(block);
            html += QStringLiteral("%1range %2 = [%3, %4] (always includes 0, so that 0 is exact)<br>").arg(where, minMax, num(lo), num(hi));
            html += QStringLiteral("scale = (max − min) / (q<sub>max</sub> − q<sub>min</sub>) = (%1 − %2) / (%3 − %4) = <b>%5</b><br>")
                        .arg(num(hi), num(lo)).arg(p.qmax).arg(p.qmin).arg(num(scale));
            html += QStringLiteral("zero-point = q<sub>min</sub> − round(min / scale) = %1 − round(%2 / %3) = <b>%4</b><br>")
                        .arg(p.qmin).arg(num(lo), num(scale)).arg(zp);
            html += QStringLiteral("real = scale · (q − zero-point), q ∈ [%1, %2]: %3 levels, step %4")
                        .arg(p.qmin).arg(p.qmax).arg(levels).arg(num(scale));
        } else {
            html += QStringLiteral("%1amax = max(|min|, |max|) of %2 = %3<br>").arg(where, minMax, num(amax));
            if (traits.calibrationGrid == CalibrationGrid::PowerOfTwo)
                html += QStringLiteral("scale = 2<sup>⌈log₂(amax / q<sub>max</sub>)⌉</sup> = 2<sup>⌈log₂(%1 / %2)⌉</sup> = <b>%3</b> "
                                       "(rounded up to a power of two: a shift on fixed-point hardware)<br>")
                            .arg(num(amax)).arg(p.qmax).arg(num(scale));
            else
                html += QStringLiteral("scale = amax / q<sub>max</sub> = %1 / %2 = <b>%3</b><br>").arg(num(amax)).arg(p.qmax).arg(num(scale));
            html += QStringLiteral("zero-point = 0; real = scale · q, q ∈ [%1, %2]: %3 levels, step %4")
                        .arg(p.qmin).arg(p.qmax).arg(levels).arg(num(scale));
        }
    } else if (const auto* l = std::get_if<Log2Params>(&p.values)) {
        const double largest = l->largest.at(block);
        html += QStringLiteral("%1largest level = amax = <b>%2</b><br>").arg(where, num(largest));
        html += QStringLiteral("levels: 0 and ±amax · 2<sup>−k</sup>, k = 0 … %1; smallest non-zero level %2<br>")
                    .arg(p.qmax - 1).arg(num(largest * std::ldexp(1.0, -(p.qmax - 1))));
        html += QStringLiteral("rounded in the log domain: fine steps near 0, coarse steps near amax");
    } else if (const auto* c = std::get_if<CodebookParams>(&p.values)) {
        const int levels = 1 << p.bits;
        const int fitted = block < c->fitted.size() ? c->fitted[block] : levels;
        if (fitted < levels)
            html += QStringLiteral("%1range [%2, %3]; the block has only %4 distinct weights, fewer than the 2<sup>%5</sup> = %6 "
                                   "centroids allowed, so they are the codebook, exactly:<br>")
                        .arg(where, num(lo), num(hi)).arg(fitted).arg(p.bits).arg(levels);
        else
            html += QStringLiteral("%1range [%2, %3]; a codebook of 2<sup>%4</sup> = %5 centroids fitted by Lloyd's algorithm:<br>")
                        .arg(where, num(lo), num(hi)).arg(p.bits).arg(levels);
        QStringList centroids;
        for (int k = 0; k < std::min(fitted, 16); ++k)
            centroids << num(c->centroids.at(block * std::size_t(levels) + std::size_t(k)));
        html += "{" + centroids.join(", ") + (fitted > 16 ? ", …}" : "}");
        html += QStringLiteral("<br>storage: %1 bits per weight plus the codebook").arg(p.bits);
    } else {
        const FloatFormat& format = *traits.format;
        if (format.preScaled) {
            html += QStringLiteral("%1amax = %2; pre-scale = amax / %3 = <b>%4</b><br>")
                        .arg(where, num(amax), num(format.maxFinite), num(p.floatFormat().preScale.at(block)));
            html += QStringLiteral("real = pre-scale · %1(x / pre-scale): relative step about 2<sup>−%2</sup>")
                        .arg(text(traits.name)).arg(format.mantissaBits);
        } else {
            html += QStringLiteral("round to the nearest %1 value (nearest even): relative step 2<sup>−%2</sup>")
                        .arg(text(traits.displayName)).arg(format.mantissaBits);
        }
    }
    return html;
}

// The channels a formula table shows: the `count` with the smallest and the largest `key`
// (ties in channel order), in channel order, so that both ends of the spread are on the page.
std::vector<std::size_t> extremeChannels(const std::vector<float>& key, std::size_t count)
{
    std::vector<std::size_t> order(key.size());
    for (std::size_t i = 0; i < order.size(); ++i)
        order[i] = i;
    if (order.size() <= 2 * count)
        return order;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return key[a] < key[b]; });
    std::vector<std::size_t> picked(order.begin(), order.begin() + std::ptrdiff_t(count));
    picked.insert(picked.end(), order.end() - std::ptrdiff_t(count), order.end());
    std::sort(picked.begin(), picked.end());
    return picked;
}

QString equalizationHtml(const EqualizedPair& p, int sweeps)
{
    QString html = QStringLiteral("<h4>Cross-layer equalization with %1</h4><p>").arg(text(p.second));
    html += QStringLiteral(
                "r1<sub>i</sub> = max |W1<sub>i,\u00b7</sub>| is this layer's output channel i, r2<sub>i</sub> = max "
                "|W2<sub>\u00b7,i</sub>| the input channel i of %1. Channel i of this layer (weights and bias) is divided by "
                "s<sub>i</sub> = \u221a(r1<sub>i</sub> \u00b7 r2<sub>i</sub>) / r2<sub>i</sub> and %1's input channel i "
                "multiplied by it, which leaves both ranges at \u221a(r1<sub>i</sub> \u00b7 r2<sub>i</sub>) and the float "
                "outputs unchanged (ReLU is positively homogeneous: ReLU(x / s) = ReLU(x) / s). Along a chain the pairs are "
                "swept %2 times; s<sub>i</sub> applied is the product of the sweeps'.")
                .arg(text(p.second))
                .arg(sweeps);
    if (p.clipBecameRelu)
        html += QStringLiteral(" The ReLU6 after this layer was made a ReLU (Repairs: ReLU6 as ReLU), which changes the float model.");
    html += "</p><table cellspacing=3><tr><th>channel</th><th>r1 before</th><th>r2 before</th><th>\u221a(r1\u00b7r2)/r2</th>"
            "<th>s applied</th><th>r1 after</th><th>r2 after</th></tr>";
    // The live channels with the smallest and largest s (dead ones, s = 0, are counted below).
    std::vector<std::size_t> live;
    for (std::size_t i = 0; i < p.scales.size(); ++i)
        if (p.scales[i] > 0)
            live.push_back(i);
    const std::size_t dead = p.scales.size() - live.size();
    std::vector<float> liveScales;
    for (std::size_t i : live)
        liveScales.push_back(p.scales[i]);
    std::vector<std::size_t> shown;
    for (std::size_t k : extremeChannels(liveScales, 4))
        shown.push_back(live[k]);
    for (std::size_t i : shown) {
        const double r1 = p.firstRangesBefore[i], r2 = p.secondRangesBefore[i];
        html += QStringLiteral("<tr><td>%1</td><td>%2</td><td>%3</td><td>%4</td><td>%5</td><td>%6</td><td>%7</td></tr>")
                    .arg(i)
                    .arg(num(r1), num(r2), r2 > 0 ? num(std::sqrt(r1 * r2) / r2) : QStringLiteral("\u2014"),
                         p.scales[i] > 0 ? num(p.scales[i]) : QStringLiteral("dead"), num(p.firstRangesAfter[i]),
                         num(p.secondRangesAfter[i]));
    }
    html += QStringLiteral("</table><p><small>The channels with the smallest and largest s; the Repairs tab charts all %1.")
                .arg(p.scales.size());
    if (dead > 0)
        html += QStringLiteral(" %1 dead channels (no weights, never activated): %2's weights on them were cleared.").arg(dead).arg(text(p.second));
    html += "</small></p>";
    if (!p.absorbed.empty()) {
        float largest = 0;
        std::size_t at = 0;
        for (std::size_t i = 0; i < p.absorbed.size(); ++i)
            if (p.absorbed[i] > largest)
                largest = p.absorbed[i], at = i;
        html += QStringLiteral("<p>High-bias absorption: c<sub>i</sub> = max(0, \u03b2<sub>i</sub> \u2212 3\u03b3<sub>i</sub>) (the "
                               "channel's mean minus three deviations, %1) is taken out of this layer's bias and added to %2's "
                               "through its weights, b2 += W2 c; largest c = %3 on channel %4.</p>")
                    .arg(text(p.absorptionStatistics), text(p.second), num(largest))
                    .arg(at);
    } else if (!p.absorptionStatistics.empty()) {
        html += QStringLiteral("<p>No high bias absorbed: %1.</p>").arg(text(p.absorptionStatistics));
    }
    return html;
}

QString biasCorrectionHtml(const BiasCorrectionReport& b)
{
    QString html = QStringLiteral("<h4>Bias correction (%1)</h4><p>").arg(text(biasCorrectionName(b.mode)));
    html += QStringLiteral("Quantizing the weights shifts each output channel's mean by \u03b5 = (W\u0303 \u2212 W) E[x]; the bias "
                           "becomes b'<sub>c</sub> = b<sub>c</sub> \u2212 \u03b5<sub>c</sub>. E[x], the layer's mean input, from %1.")
                .arg(text(b.statistics));
    double sumAbs = 0;
    std::vector<float> magnitude;
    for (float shift : b.shift)
        sumAbs += std::abs(shift), magnitude.push_back(std::abs(shift));
    if (!b.shift.empty()) {
        html += QStringLiteral(" Mean |\u03b5| over the %1 channels: %2.</p><table cellspacing=3><tr><th>channel</th>"
                               "<th>\u03b5 subtracted</th></tr>")
                    .arg(b.shift.size())
                    .arg(num(sumAbs / double(b.shift.size())));
        for (std::size_t i : extremeChannels(magnitude, 3))
            html += QStringLiteral("<tr><td>%1</td><td>%2</td></tr>").arg(i).arg(num(b.shift[i]));
        html += "</table>";
    } else {
        html += "</p>";
    }
    return html;
}

QString adaRoundHtml(const AdaRoundReport& a)
{
    QString html = QStringLiteral("<h4>AdaRound</h4><p>");
    html += QStringLiteral(
        "Each weight rounds down or up: W\u0303 = s \u00b7 (clamp(\u230aW / s\u230b + h(V), q<sub>min</sub>, q<sub>max</sub>) "
        "\u2212 z), with h(V) = clamp(\u03c3(V)(\u03b6 \u2212 \u03b3) + \u03b3, 0, 1), \u03b6 = 1.1, \u03b3 = \u22120.1. Adam "
        "learns V to minimise \u2016f(W x) \u2212 f(W\u0303 x)\u2016\u00b2 + \u03bb \u03a3 (1 \u2212 |2h(V) \u2212 1|<sup>\u03b2</sup>) "
        "on the layer's inputs from the quantized layers before it (f: its fused activation), \u03b2 annealed from 20 to 2 so "
        "that every h ends at 0 or 1. So no weight moves more than one step from nearest rounding.");
    html += QStringLiteral("<br>%1 iterations on %2 images: <b>%3</b> of the weights rounded the other way; reconstruction error "
                           "%4 with nearest rounding, <b>%5</b> with AdaRound (%6 of it).</p>")
                .arg(a.iterations)
                .arg(a.images)
                .arg(percentText(a.flippedFraction), num(a.nearestError), num(a.adaRoundError),
                     a.nearestError > 0 ? percentText(a.adaRoundError / a.nearestError) : QStringLiteral("\u2014"));
    return html;
}

QString repairsHtml(const RepairReport& report, const std::string& layer)
{
    const LayerRepairs repairs = layerRepairs(report, layer);
    QString html;
    if (repairs.equalizedAsFirst)
        html += equalizationHtml(*repairs.equalizedAsFirst, report.equalizationSweeps);
    if (const EqualizedPair* p = repairs.equalizedAsSecond)
        html += QStringLiteral("<h4>Cross-layer equalization with %1</h4><p>Its input channels were multiplied by the s<sub>i</sub> "
                               "of the pair %1 \u2192 %2 (the formula is in %1's details).</p>")
                    .arg(text(p->first), text(p->second));
    if (repairs.biasCorrection)
        html += biasCorrectionHtml(*repairs.biasCorrection);
    if (repairs.adaRound)
        html += adaRoundHtml(*repairs.adaRound);
    for (const SkippedRepair* s : repairs.skipped)
        html += QStringLiteral("<p><b>Not repaired:</b> %1 \u2014 %2</p>").arg(text(s->layers), text(s->reason));
    return html;
}

QString layerDetailsHtml(const SessionSnapshot& session, const EvaluationSnapshot& evaluation, std::size_t index)
{
    if (index >= session.layers.size() || index >= evaluation.plans.size() || index >= evaluation.metrics.layers.size())
        return {};
    const QuantLayer& layer = session.layers[index];
    const LayerPlan& plan = evaluation.plans[index];
    const LayerMetrics& m = evaluation.metrics.layers[index];
    QString html = QStringLiteral("<h3>%1 <small>(%2%3)</small></h3>")
                       .arg(text(layer.name), text(layer.opType),
                            layer.fusedActivation.empty() ? QString() : " + " + text(layer.fusedActivation));
    html += "<table cellspacing=4>";
    if (plan.config.keepFloat) {
        html += row(QStringLiteral("Configuration"), QStringLiteral("kept in float"));
    } else {
        if (!layer.weight.empty())
            html += row(QStringLiteral("Weights"), specSummary(plan.config.weights, true));
        html += row(QStringLiteral("Activations"), specSummary(plan.config.activations, false) +
                                                       (plan.activationsFromModel ? QStringLiteral(", range from the model file")
                                                        : !plan.config.activations.quantize || plan.config.activations.dynamic
                                                            ? QString()
                                                        : plan.config.calibration.fixedRange
                                                            ? QStringLiteral(", fixed range from the configuration")
                                                            : ", calibrated by " + text(calibrationMethodName(plan.config.calibration.method))));
    }
    html += row(QStringLiteral("Accumulated error"), QStringLiteral("SQNR %1, cosine %2, MSE %3")
                                                         .arg(sqnrWithUnit(m.accumulated.sqnrDb, 2))
                                                         .arg(m.accumulated.cosine, 0, 'f', 5)
                                                         .arg(num(m.accumulated.mse)));
    html += row(QStringLiteral("Isolated error"),
                QStringLiteral("SQNR %1 (this layer alone quantized, on float input)").arg(sqnrWithUnit(m.isolated.sqnrDb, 2)));
    html += "</table>";

    if (plan.weightParams) {
        const QuantParams& p = *plan.weightParams;
        html += QStringLiteral("<h4>Weights %1</h4><p>").arg(text(layer.weight));
        if (plan.weightsFromModel)
            html += QStringLiteral("Scales and zero-points from the model file (its DequantizeLinear), not computed here.<br>");
        const bool rangeSearched = !plan.weightsFromModel && searchesWeightRange(plan.config.weights);
        html += quantFormulaHtml(p, 0, rangeSearched) + scaleSpread(p);
        if (rangeSearched)
            html += searchedRangeHtml(session, evaluation, layer, p);
        html += "</p><p>";
        if (m.weights) {
            html += QStringLiteral("Weight SQNR %1").arg(sqnrWithUnit(m.weights->sqnrDb, 2));
            if (schemeTraits(p.scheme).family == SchemeFamily::Uniform)
                html += QStringLiteral(" (a uniform quantizer on uniformly spread values gives 6.02·b + 1.76 = %1 dB; "
                                       "real weights concentrate near 0 and lose more)")
                            .arg(6.02 * p.bits + 1.76, 0, 'f', 1);
        }
        html += QStringLiteral("<br>Storage %1 KiB for %2 weights (%3 bits each with the scales)</p>")
                    .arg(m.weightBytes / 1024.0, 0, 'f', 2)
                    .arg(m.weightCount)
                    .arg(m.weightCount ? 8.0 * m.weightBytes / double(m.weightCount) : 0.0, 0, 'f', 2);
    }
    if (plan.activationParams) {
        const QuantParams& p = *plan.activationParams;
        html += QStringLiteral("<h4>Output activation %1</h4><p>").arg(text(layer.output));
        // Where the range comes from, truly: the file's own scale, or the images the calibration
        // observed (the configuration asks for up to `images`; a smaller set gives fewer).
        if (plan.activationsFromModel)
            html += QStringLiteral("Range from the model file (its QuantizeLinear scale and zero-point), not calibrated.<br>");
        else if (plan.config.calibration.fixedRange)
            html += QStringLiteral("Range [%1, %2] fixed in the configuration (learned by quantization-aware training with LSQ, "
                                   "or set by hand), not calibrated.<br>")
                        .arg(num(plan.config.calibration.fixedRange->first), num(plan.config.calibration.fixedRange->second));
        else
            html += QStringLiteral("Clipping range from %1 calibration on %2 images of %3.<br>")
                        .arg(text(calibrationMethodName(plan.config.calibration.method)))
                        .arg(evaluation.calibrationImages)
                        .arg(QFileInfo(session.calibrationPath).fileName().toHtmlEscaped());
        html += quantFormulaHtml(p, 0) + "</p><p>";
        html += QStringLiteral("Clipped: <b>%1%</b> of the evaluation activations fall outside [%2, %3] and are saturated.")
                    .arg(100.0 * m.clippedFraction, 0, 'f', 4)
                    .arg(num(p.rangeMin[0]), num(p.rangeMax[0]));
        if (!std::isnan(m.rmseOverScale))
            html += QStringLiteral("<br>Rounding noise inside the range: %1 steps RMS (uniform noise: 1/√12 = 0.289).")
                        .arg(m.rmseOverScale, 0, 'f', 3);
        html += "</p>";
    } else if (plan.dynamicActivations) {
        html += plan.config.activations.granularity == Granularity::PerToken
                    ? QStringLiteral("<h4>Output activation</h4><p>Dynamic, per token: each row of the last axis (each token) "
                                     "gets its own min and max at run time, so one outlier token does not coarsen the others. "
                                     "The int8 engine computes this layer in float.</p>")
                    : QStringLiteral("<h4>Output activation</h4><p>Dynamic: each input's own min and max set the range at run time.</p>");
    }
    if (evaluation.repairs)
        html += repairsHtml(*evaluation.repairs, layer.name);
    return html;
}

}  // namespace qe
