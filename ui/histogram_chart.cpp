#include "histogram_chart.h"

#include "quant/scheme.h"

#include <QAreaSeries>
#include <QLegendMarker>
#include <QLineSeries>
#include <QLogValueAxis>
#include <QScatterSeries>
#include <QValueAxis>

#include <algorithm>
#include <cmath>

namespace qe {

using namespace colours;

namespace {

// "8-bit affine per channel", from the parameters in force.
QString paramsSummary(const QuantParams& p)
{
    QString s = QStringLiteral("%1-bit %2").arg(p.bits).arg(QString::fromUtf8(schemeTraits(p.scheme).name.data(),
                                                                               qsizetype(schemeTraits(p.scheme).name.size())));
    if (p.blockCount() > 1)
        s += ' ' + QString::fromUtf8(granularityName(p.granularity).data(), qsizetype(granularityName(p.granularity).size())).replace('_', ' ');
    return s.replace('_', ' ');
}

}  // namespace

QString levelsLegend(const TensorHistogram& h)
{
    const bool ownChannel = h.params && h.params->blockCount() > 1 && h.channel >= 0;
    return ownChannel ? QObject::tr("%1 levels (channel %2)").arg(h.levels.size()).arg(h.channel)
                      : QObject::tr("%1 levels").arg(h.levels.size());
}

QString histogramTitle(const QString& what, const QString& layer, const std::optional<TensorHistogram>& h)
{
    if (!h)
        return QObject::tr("%1 has no weights").arg(layer);
    QString t = QObject::tr("%1 of %2").arg(what, layer);
    if (h->isWeight && h->channel >= 0)
        t += QObject::tr(", channel %1 of %2").arg(h->channel).arg(h->channelCount);
    if (!h->params)
        return t + QObject::tr(" (float)");
    t += QStringLiteral(" \u2014 ") + paramsSummary(*h->params);
    if (h->paramsFromModel)
        t += QObject::tr(", the model's own");
    if (!h->levels.empty())
        t += QObject::tr(": %1 levels, clipped %2").arg(h->levels.size()).arg(percentText(h->clippedFraction));
    else if (h->params->granularity == Granularity::PerGroup)
        t += QObject::tr(": %1 groups, each with its own levels and range").arg(h->params->blockCount());
    else
        t += QObject::tr(": %1 channels, each with its own levels and range; pick a channel to see them").arg(h->params->blockCount());
    return t;
}

QAbstractAxis* HistogramChart::countAxis() const
{
    const QList<QAbstractAxis*> axes = chart()->axes(Qt::Vertical);
    return axes.isEmpty() ? nullptr : axes.first();
}

// ---- HistogramChart ----------------------------------------------------------------------------

HistogramChart::HistogramChart(const QString& name, QWidget* parent) : ChartView(name, parent) {}

void HistogramChart::setHistogram(const std::optional<TensorHistogram>& histogram, const QString& title)
{
    histogram_ = histogram;
    title_ = title;
    rebuild();
}

void HistogramChart::setComparison(const std::optional<TensorHistogram>& b)
{
    if (!b && !comparison_)
        return;  // nothing to redraw
    comparison_ = b;
    rebuild();
}

void HistogramChart::setLogScale(bool on)
{
    logScale_ = on;
    rebuild();
}

void HistogramChart::rebuild()
{
    QChart* c = chart();
    prepareChart(c);
    c->setTitle(title_);
    if (!histogram_ || histogram_->histogram.counts.empty()) {
        c->legend()->hide();
        return;
    }
    c->legend()->show();
    const TensorHistogram& h = *histogram_;
    const Histogram& bins = h.histogram;
    const float width = bins.binWidth();
    // The observer's bins may extend past the data (see RangeObserver): draw the data's span, and
    // the clipping range and calibration ranges where they reach further.
    float lo = h.min, hi = h.max;
    if (h.clipRange) {
        lo = std::min(lo, h.clipRange->first);
        hi = std::max(hi, h.clipRange->second);
    }
    for (const auto& [method, range] : h.calibrationRanges) {
        lo = std::min(lo, range.first);
        hi = std::max(hi, range.second);
    }
    if (comparison_ && comparison_->clipRange) {
        lo = std::min(lo, comparison_->clipRange->first);
        hi = std::max(hi, comparison_->clipRange->second);
    }
    const float pad = std::max(1e-6f, 0.03f * (hi - lo));
    const double floor = logScale_ ? 0.5 : 0.0;  // log axes cannot show 0: empty bins sit on the floor
    // On a linear axis one spike (the exact zeros after a ReLU) would flatten everything else:
    // when the highest bin is over 4 times the next, the axis is scaled to the next one and the
    // spike runs off the top, with its count in the title.
    double peak = 1, second = 1;
    for (double count : bins.counts) {
        if (count > peak)
            second = peak, peak = count;
        else
            second = std::max(second, count);
    }
    QString title = title_;
    if (!logScale_ && peak > 4 * second) {
        title += tr("<br><small>the tallest bin (%1 values) runs off the scale; try the log scale</small>").arg(peak, 0, 'g', 3);
        peak = second;
    }
    c->setTitle(title);

    auto* all = new QLineSeries(c);
    auto* clipped = new QLineSeries(c);
    for (std::size_t k = 0; k < bins.counts.size(); ++k) {
        const double left = bins.low + float(k) * width, right = left + width;
        if (right < h.min - width || left > h.max + width)
            continue;
        const double count = std::max(floor, bins.counts[k]);
        const double centre = (left + right) / 2;
        const bool outside = h.clipRange && (centre < h.clipRange->first || centre > h.clipRange->second);
        all->append(left, count);
        all->append(right, count);
        clipped->append(left, outside ? count : floor);
        clipped->append(right, outside ? count : floor);
    }
    auto area = [&](QLineSeries* upper, QColor colour, const QString& name) {
        auto* base = new QLineSeries(c);
        for (const QPointF& p : upper->points())
            base->append(p.x(), floor);
        auto* series = new QAreaSeries(upper, base);
        QColor fill = colour;
        fill.setAlpha(150);
        series->setBrush(fill);
        series->setPen(QPen(colour, 1));
        series->setName(name);
        c->addSeries(series);
        return series;
    };
    area(all, blue, h.isWeight ? tr("weights") : tr("activations"));
    if (h.clipRange && h.clippedFraction > 0)
        area(clipped, red, tr("clipped %1").arg(percentText(h.clippedFraction)));
    else
        delete clipped;

    // The calibration ranges, one bar per method above the histogram.
    const double top = logScale_ ? peak * 3 : peak * 1.08;
    const QColor methodColours[] = {orange, green, purple, sky, grey};
    std::vector<QAbstractSeries*> lines;
    int k = 0;
    for (const auto& [method, range] : h.calibrationRanges) {
        const double y = logScale_ ? top * std::pow(1.6, k) : top + peak * 0.07 * k;
        QPen pen(methodColours[k % 5], 3);
        auto* bar = segment(c, {range.first, y}, {range.second, y}, pen,
                            QString::fromStdString(method == "moving_average" ? std::string("moving avg") : method));
        bar->setPointsVisible(true);
        lines.push_back(bar);
        ++k;
    }
    const double ceiling = logScale_ ? top * std::pow(1.6, k + 1) : top + peak * 0.07 * (k + 1);

    // A configuration's levels as a rug of ticks at height `y`, and its clipping range as two
    // vertical lines: A's grey and dashed red, B's (A/B comparison) purple, just above A's.
    auto levelRug = [&](const TensorHistogram& t, QColor colour, double y, const QString& name) {
        auto* rug = new QScatterSeries(c);
        rug->setMarkerShape(QScatterSeries::MarkerShapeRectangle);
        rug->setMarkerSize(5);
        rug->setColor(colour);
        rug->setBorderColor(colour);
        for (float level : t.levels)
            if (level >= lo - pad && level <= hi + pad)
                rug->append(level, y);
        rug->setName(name);
        lines.push_back(rug);
    };
    auto clipLines = [&](const std::pair<float, float>& range, const QPen& pen, const QString& prefix) {
        lines.push_back(segment(c, {range.first, floor}, {range.first, top}, pen,
                                prefix + tr("clip [%1, %2]").arg(range.first, 0, 'g', 3).arg(range.second, 0, 'g', 3)));
        lines.push_back(segment(c, {range.second, floor}, {range.second, top}, pen, {}));
    };
    // The levels: a rug of ticks on the floor, and full-height lines when there are few.
    if (!h.levels.empty()) {
        levelRug(h, grey, logScale_ ? 0.6 : peak * 0.01, levelsLegend(h));
        if (h.levels.size() <= 16)
            for (float level : h.levels) {
                QPen pen(QColor(90, 90, 90, 120), 1, Qt::DotLine);
                auto* line = segment(c, {level, floor}, {level, top}, pen, {});
                lines.push_back(line);
            }
    }
    if (h.clipRange)
        clipLines(*h.clipRange, QPen(red, 2, Qt::DashLine), {});
    if (comparison_) {
        const TensorHistogram& b = *comparison_;
        if (!b.levels.empty())
            levelRug(b, purple, logScale_ ? 1.2 : peak * 0.04, tr("B: %1").arg(levelsLegend(b)));
        if (b.clipRange)
            clipLines(*b.clipRange, QPen(purple, 2, Qt::DashDotLine), tr("B: "));
    }
    for (QAbstractSeries* s : lines)
        c->addSeries(s);

    auto* x = new QValueAxis(c);
    x->setRange(lo - pad, hi + pad);
    x->setLabelFormat("%.3g");
    x->setTickCount(7);
    x->setTitleText(h.isWeight ? tr("weight value") : tr("activation value"));
    x->setTruncateLabels(false);
    QAbstractAxis* y = nullptr;
    if (logScale_) {
        auto* log = new QLogValueAxis(c);
        log->setBase(10);
        log->setRange(floor, ceiling);
        // Counts are whole numbers: "%.0f" keeps 100000 readable where "%g" wrote 1e+05, and the
        // axis keeps its numbers whole rather than eliding them to "...".
        log->setLabelFormat("%.0f");
        log->setMinorTickCount(-1);
        y = log;
    } else {
        auto* linear = new QValueAxis(c);
        linear->setRange(0, ceiling);
        linear->applyNiceNumbers();
        linear->setLabelFormat("%.3g");
        y = linear;
    }
    y->setTitleText(tr("count"));
    y->setTruncateLabels(false);
    c->addAxis(x, Qt::AlignBottom);
    c->addAxis(y, Qt::AlignLeft);
    for (QAbstractSeries* s : c->series()) {
        s->attachAxis(x);
        s->attachAxis(y);
        if (s->name().isEmpty())
            hideFromLegend(c, s);
    }
}

}  // namespace qe
