#include "repair_charts.h"

#include <QAreaSeries>
#include <QLineSeries>
#include <QToolTip>
#include <QValueAxis>

#include <algorithm>
#include <cmath>

namespace qe {

using namespace colours;

namespace {

QString text(const std::string& s)
{
    return QString::fromStdString(s).toHtmlEscaped();
}

// One bar per channel from 0 to its value, as one area whose outline rises and falls at each
// channel's edges (a bar series with a category per channel is unreadable and slow past a few
// dozen channels).
QAreaSeries* channelBars(QChart* chart, const std::vector<float>& values, double factor, QColor colour, const QString& name)
{
    auto* top = new QLineSeries(chart);
    for (std::size_t k = 0; k < values.size(); ++k) {
        const double x = double(k), v = factor * values[k];
        top->append(x - 0.4, 0);
        top->append(x - 0.4, v);
        top->append(x + 0.4, v);
        top->append(x + 0.4, 0);
    }
    auto* zero = new QLineSeries(chart);  // the area is filled between the bars and 0, above or below
    zero->append(-0.4, 0);
    zero->append(double(values.size()) - 0.6, 0);
    auto* band = new QAreaSeries(top, zero);
    QColor fill = colour;
    fill.setAlpha(150);
    band->setBrush(fill);
    band->setPen(QPen(colour, 1));
    band->setName(name);
    chart->addSeries(band);
    return band;
}

}  // namespace

RepairChart::RepairChart(Kind kind, QWidget* parent)
    : ChartView(kind == Equalization ? tr("equalization_ranges") : kind == BiasShift ? tr("bias_shift") : tr("adaround_flips"), parent),
      kind_(kind)
{
    setLayer(nullptr, {});
}

void RepairChart::setLayer(std::shared_ptr<const RepairReport> report, const QString& layer)
{
    report_ = std::move(report);
    layer_ = layer;
    before_.clear();
    after_.clear();
    scales_.clear();
    const QString name = layer.toHtmlEscaped();
    if (!report_ || layer.isEmpty()) {
        const QString what = kind_ == Equalization ? tr("equalization") : kind_ == BiasShift ? tr("bias correction") : tr("AdaRound");
        rebuild(layer.isEmpty() ? tr("Select a layer to see what %1 did to it").arg(what)
                                : tr("No repairs: switch %1 on in the Repairs bar above the table").arg(what),
                {}, {});
        return;
    }
    const LayerRepairs repairs = layerRepairs(*report_, layer.toStdString());
    switch (kind_) {
    case Equalization: {
        const EqualizedPair* pair = repairs.equalizedAsFirst ? repairs.equalizedAsFirst : repairs.equalizedAsSecond;
        if (!pair) {
            rebuild(tr("%1 was not equalized (the Repaired column's tooltip says why when it was asked for)").arg(name), {}, {});
            return;
        }
        const bool first = pair == repairs.equalizedAsFirst;
        before_ = first ? pair->firstRangesBefore : pair->secondRangesBefore;
        after_ = first ? pair->firstRangesAfter : pair->secondRangesAfter;
        scales_ = pair->scales;
        const auto spread = [](const std::vector<float>& r) {
            float lo = 0, hi = 0;
            for (float v : r)
                if (v > 0)
                    lo = lo > 0 ? std::min(lo, v) : v, hi = std::max(hi, v);
            return lo > 0 ? hi / lo : 0.f;
        };
        QString title = first ? tr("Weight range of each output channel of %1, equalized with %2").arg(name, text(pair->second))
                              : tr("Weight range of each input channel of %1, equalized with %2").arg(name, text(pair->first));
        title += tr("<br><small>largest / smallest channel range: %1 before, %2 after; s_i = \u221a(r1_i \u00b7 r2_i) / r2_i</small>")
                     .arg(spread(before_), 0, 'g', 3)
                     .arg(spread(after_), 0, 'g', 3);
        rebuild(title, tr("max |w|"), first ? tr("output channel") : tr("input channel"));
        return;
    }
    case BiasShift: {
        const BiasCorrectionReport* b = repairs.biasCorrection;
        if (!b) {
            rebuild(tr("The bias of %1 was not corrected").arg(name), {}, {});
            return;
        }
        after_ = b->shift;
        const std::string_view mode = biasCorrectionName(b->mode);
        rebuild(tr("Mean output shift of each channel of %1, subtracted from its bias<br><small>%2 bias correction, statistics "
                   "from %3: b'_c = b_c \u2212 ((W\u0303 \u2212 W) E[x])_c</small>")
                    .arg(name, QString::fromUtf8(mode.data(), qsizetype(mode.size())), text(b->statistics)),
                tr("shift"), tr("output channel"));
        return;
    }
    case AdaRoundFlips: {
        const AdaRoundReport* a = repairs.adaRound;
        if (!a) {
            rebuild(tr("AdaRound did not round %1").arg(name), {}, {});
            return;
        }
        after_ = a->flippedPerChannel;
        rebuild(tr("Weights of each output channel of %1 that AdaRound rounded the other way<br><small>%2 of all its weights; "
                   "reconstruction error %3 with nearest rounding, %4 with AdaRound (%5 iterations, %6 images)</small>")
                    .arg(name, percentText(a->flippedFraction))
                    .arg(a->nearestError, 0, 'g', 4)
                    .arg(a->adaRoundError, 0, 'g', 4)
                    .arg(a->iterations)
                    .arg(a->images),
                tr("flipped"), tr("output channel"));
        return;
    }
    }
}

QString RepairChart::channelDescription(int channel) const
{
    if (channel < 0 || std::size_t(channel) >= after_.size())
        return {};
    const std::size_t c = std::size_t(channel);
    switch (kind_) {
    case Equalization: {
        QString line = tr("channel %1: max |w| %2 before, %3 after").arg(channel).arg(before_[c], 0, 'g', 4).arg(after_[c], 0, 'g', 4);
        if (c < scales_.size())
            line += scales_[c] > 0 ? tr("\ns_i = %1").arg(scales_[c], 0, 'g', 4) : tr("\ndead channel: its weights were cleared");
        return line;
    }
    case BiasShift: return tr("channel %1: bias shift %2").arg(channel).arg(after_[c], 0, 'g', 4);
    case AdaRoundFlips: return tr("channel %1: %2 of its weights rounded the other way").arg(channel).arg(percentText(after_[c]));
    }
    return {};
}

void RepairChart::rebuild(const QString& title, const QString& axisTitle, const QString& channelAxis)
{
    QChart* c = chart();
    prepareChart(c);
    setToolTip({});
    c->setTitle(title);
    if (after_.empty()) {
        c->legend()->hide();
        return;
    }
    // Beside the plot, not under it: the three charts share the tab's height.
    c->legend()->setVisible(kind_ == Equalization);
    c->legend()->setAlignment(Qt::AlignRight);
    const int channels = int(after_.size());
    const double factor = kind_ == AdaRoundFlips ? 100.0 : 1.0;
    QList<QAreaSeries*> bands;
    if (kind_ == Equalization) {
        bands << channelBars(c, before_, 1, orange, tr("before equalization"));
        bands << channelBars(c, after_, 1, blue, tr("after"));
    } else {
        bands << channelBars(c, after_, factor, kind_ == BiasShift ? purple : green,
                             kind_ == BiasShift ? tr("shift subtracted from the bias") : tr("% rounded the other way"));
    }
    double lo = 0, hi = 0;
    for (const std::vector<float>* values : {&before_, &after_})
        for (float v : *values)
            lo = std::min(lo, factor * v), hi = std::max(hi, factor * v);
    if (kind_ == AdaRoundFlips)
        hi = std::max(hi, 1.0);

    auto* x = new QValueAxis(c);
    x->setRange(-0.5, channels - 0.5);
    x->setLabelFormat("%.0f");
    x->setTitleText(channelAxis);
    x->setTruncateLabels(false);
    auto* y = new QValueAxis(c);
    const double pad = std::max(1e-9, 0.05 * (hi - lo));
    y->setRange(lo < 0 ? lo - pad : 0, hi + pad);
    y->applyNiceNumbers();
    y->setLabelFormat(kind_ == AdaRoundFlips ? "%.0f%%" : "%.3g");
    y->setTitleText(axisTitle);
    y->setTruncateLabels(false);
    c->addAxis(x, Qt::AlignBottom);
    c->addAxis(y, Qt::AlignLeft);
    for (QAreaSeries* band : bands) {
        band->attachAxis(x);
        band->attachAxis(y);
        connect(band, &QAreaSeries::hovered, this, [this](const QPointF& point, bool on) {
            const QString description = on ? channelDescription(int(std::lround(point.x()))) : QString();
            setToolTip(description);
            if (on)
                QToolTip::showText(QCursor::pos(), description, this);
        });
    }
}

}  // namespace qe
