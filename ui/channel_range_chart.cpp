#include "channel_range_chart.h"

#include "quant/scheme.h"

#include <QAreaSeries>
#include <QLineSeries>
#include <QScatterSeries>
#include <QToolTip>
#include <QValueAxis>

#include <algorithm>
#include <cmath>

namespace qe {

using namespace colours;

namespace {

QString granularityText(Granularity g)
{
    const std::string_view name = granularityName(g);
    return QString::fromUtf8(name.data(), qsizetype(name.size())).replace('_', ' ');
}

}  // namespace

ChannelRangeChart::ChannelRangeChart(QWidget* parent) : ChartView(tr("channel_ranges"), parent) {}

void ChannelRangeChart::setRanges(const std::optional<ChannelRanges>& ranges, const QString& message)
{
    ranges_ = ranges;
    message_ = message;
    rebuild();
}

int ChannelRangeChart::channelAt(double x) const
{
    if (!ranges_)
        return -1;
    const int channel = int(std::lround(x));
    return channel >= 0 && channel < int(ranges_->min.size()) ? channel : -1;
}

QString ChannelRangeChart::channelDescription(int channel) const
{
    if (!ranges_ || channel < 0 || channel >= int(ranges_->min.size()))
        return {};
    const ChannelRanges& r = *ranges_;
    const std::size_t c = std::size_t(channel);
    QString text = tr("channel %1: values in [%2, %3]").arg(channel).arg(r.min[c], 0, 'g', 4).arg(r.max[c], 0, 'g', 4);
    text += tr("\nrounds to 0 per tensor: %1").arg(percentText(r.perTensorZeroFraction[c]));
    if (r.granularity && !r.zeroFraction.empty())
        text += tr("\nrounds to 0 as configured (%1): %2").arg(granularityText(*r.granularity), percentText(r.zeroFraction[c]));
    return text;
}

void ChannelRangeChart::rebuild()
{
    QChart* c = chart();
    prepareChart(c);
    setToolTip({});
    if (!ranges_ || ranges_->min.empty()) {
        c->setTitle(message_.isEmpty() ? tr("Select a layer with weights to see its channels") : message_);
        c->legend()->hide();
        return;
    }
    c->legend()->show();
    const ChannelRanges& r = *ranges_;
    const int channels = int(r.min.size());
    const QString layer = QString::fromStdString(r.layer);
    int starved = 0;  // channels that lose over half their values to zero per tensor
    for (double f : r.perTensorZeroFraction)
        starved += f > 0.5;
    if (r.activations) {
        // How far the largest channel stands out: the median channel's range against the largest.
        std::vector<float> spans;
        for (int k = 0; k < channels; ++k)
            spans.push_back(std::max(std::abs(r.min[std::size_t(k)]), std::abs(r.max[std::size_t(k)])));
        std::vector<float> sorted = spans;
        std::nth_element(sorted.begin(), sorted.begin() + channels / 2, sorted.end());
        const float median = sorted[std::size_t(channels / 2)], largest = *std::max_element(spans.begin(), spans.end());
        c->setTitle(tr("Activation range of each channel of %1 (%2 channels, %3 images)<br><small>largest channel %4x the median; "
                       "per tensor, %5 channels lose over half their values to zero</small>")
                        .arg(layer.toHtmlEscaped())
                        .arg(channels)
                        .arg(r.images)
                        .arg(median > 0 ? largest / median : 1.f, 0, 'f', 1)
                        .arg(starved));
    } else {
        c->setTitle(tr("Weight range of each output channel of %1 (%2 channels)<br><small>per tensor, %3 of them lose over "
                       "half their weights to zero</small>")
                        .arg(layer.toHtmlEscaped())
                        .arg(channels)
                        .arg(starved));
    }

    // Each channel's range as a band, one step wide per channel.
    auto* upper = new QLineSeries(c);
    auto* lower = new QLineSeries(c);
    float lo = r.perTensorRange.first, hi = r.perTensorRange.second;
    for (int k = 0; k < channels; ++k) {
        const std::size_t i = std::size_t(k);
        upper->append(k - 0.45, r.max[i]);
        upper->append(k + 0.45, r.max[i]);
        lower->append(k - 0.45, r.min[i]);
        lower->append(k + 0.45, r.min[i]);
        lo = std::min(lo, r.min[i]);
        hi = std::max(hi, r.max[i]);
    }
    auto* band = new QAreaSeries(upper, lower);
    QColor fill = blue;
    fill.setAlpha(170);
    band->setBrush(fill);
    band->setPen(QPen(blue, 1));
    band->setName(tr("each channel's values"));
    c->addSeries(band);

    QPen dashed(red, 2, Qt::DashLine);
    auto* tensorTop = segment(c, {-0.5, r.perTensorRange.second}, {channels - 0.5, r.perTensorRange.second}, dashed,
                              tr("per-tensor range [%1, %2]").arg(r.perTensorRange.first, 0, 'g', 3).arg(r.perTensorRange.second, 0, 'g', 3));
    auto* tensorBottom = segment(c, {-0.5, r.perTensorRange.first}, {channels - 0.5, r.perTensorRange.first}, dashed, {});
    c->addSeries(tensorTop);
    c->addSeries(tensorBottom);

    // The share that rounds to zero, on the right axis.
    const double marker = std::clamp(700.0 / channels, 4.0, 9.0);
    auto zeros = [&](const std::vector<double>& fractions, QColor colour, const QString& name) {
        auto* points = new QScatterSeries(c);
        points->setMarkerSize(marker);
        points->setColor(colour);
        points->setBorderColor(colour.darker(120));
        points->setName(name);
        for (int k = 0; k < channels; ++k)
            points->append(k, 100.0 * fractions[std::size_t(k)]);
        c->addSeries(points);
        return points;
    };
    const bool inForcePerTensor = r.granularity == Granularity::PerTensor && !r.fromModel;
    QList<QScatterSeries*> zeroSeries;
    zeroSeries << zeros(r.perTensorZeroFraction, red,
                        inForcePerTensor ? tr("% rounding to 0, per tensor (as configured)") : tr("% rounding to 0 if per tensor"));
    if (r.granularity && !inForcePerTensor && !r.zeroFraction.empty())
        zeroSeries << zeros(r.zeroFraction, green,
                            tr("% rounding to 0 as configured (%1%2)")
                                .arg(granularityText(*r.granularity), r.fromModel ? tr(", the model's own") : QString()));

    auto* x = new QValueAxis(c);
    x->setRange(-0.5, channels - 0.5);
    x->setLabelFormat("%.0f");
    x->setTitleText(r.activations ? tr("channel") : tr("output channel"));
    x->setTruncateLabels(false);
    auto* values = new QValueAxis(c);
    const float pad = std::max(1e-6f, 0.05f * (hi - lo));
    values->setRange(lo - pad, hi + pad);
    values->setLabelFormat("%.3g");
    values->setTitleText(r.activations ? tr("activation value") : tr("weight value"));
    values->setTruncateLabels(false);
    auto* percent = new QValueAxis(c);
    percent->setRange(0, 100);
    percent->setLabelFormat("%.0f%%");
    percent->setTitleText(r.activations ? tr("% of the channel's values rounding to 0") : tr("% of the channel's weights rounding to 0"));
    percent->setTruncateLabels(false);
    c->addAxis(x, Qt::AlignBottom);
    c->addAxis(values, Qt::AlignLeft);
    c->addAxis(percent, Qt::AlignRight);
    for (QAbstractSeries* s : std::initializer_list<QAbstractSeries*>{band, tensorTop, tensorBottom}) {
        s->attachAxis(x);
        s->attachAxis(values);
    }
    hideFromLegend(c, tensorBottom);
    for (QScatterSeries* s : zeroSeries) {
        s->attachAxis(x);
        s->attachAxis(percent);
    }

    auto describe = [this](const QPointF& point, bool on) {
        const QString text = on ? channelDescription(channelAt(point.x())) : QString();
        setToolTip(text);
        if (on)
            QToolTip::showText(QCursor::pos(), text, this);
    };
    connect(band, &QAreaSeries::hovered, this, [describe](const QPointF& point, bool on) { describe(point, on); });
    for (QScatterSeries* s : zeroSeries)
        connect(s, &QScatterSeries::hovered, this, describe);
    auto click = [this](const QPointF& point) {
        if (const int channel = channelAt(point.x()); channel >= 0)
            emit channelClicked(channel);
    };
    connect(band, &QAreaSeries::clicked, this, click);
    for (QScatterSeries* s : zeroSeries)
        connect(s, &QScatterSeries::clicked, this, click);
}

}  // namespace qe
