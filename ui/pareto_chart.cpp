#include "pareto_chart.h"

#include "quant/layers.h"

#include <QChart>
#include <QLineSeries>
#include <QScatterSeries>
#include <QToolTip>
#include <QValueAxis>

#include <algorithm>
#include <cmath>
#include <map>

namespace qe {

using namespace colours;

ParetoChart::ParetoChart(QWidget* parent) : ChartView(tr("pareto"), parent) {}

QScatterSeries* ParetoChart::scatter(const QString& name, const QColor& colour, qreal size)
{
    auto* series = new QScatterSeries(chart());
    series->setName(name);
    series->setColor(colour);
    series->setBorderColor(colour.darker(130));
    series->setMarkerSize(size);
    return series;
}

void ParetoChart::setPoints(const QList<Point>& points, const QList<int>& front, const Point& floatModel, int current)
{
    points_ = points;
    front_ = front;
    float_ = floatModel;
    QChart* c = chart();
    prepareChart(c);
    c->setTitle(tr("Configurations evaluated: top-1 against size, and the Pareto front"));
    if (points.isEmpty())
        return;
    auto* byHand = scatter(tr("tried (evaluation images)"), blue, 9);
    auto* searched = scatter(tr("search candidates (search images)"), sky, 7);
    auto* frontSeries = new QLineSeries(c);
    frontSeries->setName(tr("Pareto front"));
    frontSeries->setPen(QPen(red, 2));
    auto* reference = scatter(tr("float"), green, 11);
    reference->setMarkerShape(QScatterSeries::MarkerShapeRectangle);
    auto* now = scatter(tr("current"), orange, 15);
    // The current point as a ring, so the point it marks (and its colour) shows through.
    now->setColor(Qt::transparent);
    now->setBorderColor(orange);
    now->setPen(QPen(orange, 3));

    double maxX = floatModel.sizeKiB, minY = floatModel.top1, maxY = floatModel.top1;
    for (const Point& p : points) {
        (p.source == Point::Search ? searched : byHand)->append(p.sizeKiB, p.top1);
        maxX = std::max(maxX, p.sizeKiB);
        minY = std::min(minY, p.top1), maxY = std::max(maxY, p.top1);
    }
    for (const QPointF& p : frontLine())
        frontSeries->append(p);
    reference->append(floatModel.sizeKiB, floatModel.top1);
    if (current >= 0 && current < points.size())
        now->append(points[current].sizeKiB, points[current].top1);
    for (QAbstractSeries* s : std::initializer_list<QAbstractSeries*>{frontSeries, searched, byHand, reference, now})
        c->addSeries(s);
    auto* x = new QValueAxis(c);
    x->setTitleText(tr("model size (KiB)"));
    x->setRange(0, maxX * 1.08);
    x->setLabelFormat("%.0f");
    auto* y = new QValueAxis(c);
    y->setTitleText(tr("top-1 (%)"));
    const double spread = std::max(1.0, maxY - minY);
    y->setRange(std::max(0.0, minY - 0.15 * spread), std::min(100.0, maxY + 0.15 * spread));
    y->setLabelFormat("%.1f");
    c->addAxis(x, Qt::AlignBottom);
    c->addAxis(y, Qt::AlignLeft);
    for (QAbstractSeries* s : c->series())
        s->attachAxis(x), s->attachAxis(y);
    auto describe = [this](const QPointF& point, bool on) {
        const QString text = on ? pointDescription(point) : QString();
        setToolTip(text);  // shown by the view's own tool-tip event, which would hide a bare showText
        if (on)
            QToolTip::showText(QCursor::pos(), text, this);
    };
    auto click = [this](const QPointF& point) {
        const int index = pointAt(point);
        if (index >= 0)
            emit pointClicked(index);
    };
    for (QScatterSeries* s : {byHand, searched, now, reference}) {
        connect(s, &QScatterSeries::hovered, this, describe);
        if (s != reference)
            connect(s, &QScatterSeries::clicked, this, click);
    }
}

QList<QPointF> ParetoChart::frontLine() const
{
    QList<QPointF> line;
    for (int index : front_)
        if (index >= 0 && index < points_.size())
            line << QPointF(points_[index].sizeKiB, points_[index].top1);
    std::sort(line.begin(), line.end(), [](const QPointF& a, const QPointF& b) { return a.x() < b.x(); });
    return line;
}

int ParetoChart::pointAt(const QPointF& point) const
{
    // The nearest point drawn, the latest when several share a place (the float model counts, so
    // that a click on it loads nothing).
    auto distance = [&](const Point& p) { return std::hypot(p.sizeKiB - point.x(), p.top1 - point.y()); };
    int nearest = -1;
    double best = distance(float_);
    for (int i = 0; i < points_.size(); ++i)
        if (distance(points_[i]) <= best)
            nearest = i, best = distance(points_[i]);
    return nearest;
}

QString ParetoChart::pointDescription(const QPointF& point) const
{
    const int index = pointAt(point);
    if (index < 0)
        return tr("float model: top-1 %1%, %2 KiB").arg(float_.top1, 0, 'f', 2).arg(float_.sizeKiB, 0, 'f', 1);
    const Point& p = points_[index];
    return tr("%1\n%2\ntop-1 %3% on the %4 images, %5 KiB%6\nclick to load it")
        .arg(p.description.isEmpty() ? tr("(configuration)") : p.description, p.bits)
        .arg(p.top1, 0, 'f', 2)
        .arg(p.source == Point::Search ? tr("search") : tr("evaluation"))
        .arg(p.sizeKiB, 0, 'f', 1)
        .arg(front_.contains(index) ? tr(", on the Pareto front") : QString());
}

PrecisionChoice precisionOf(const QuantConfig& config, const QuantLayer& layer)
{
    const LayerQuantConfig resolved = config.resolve(layer.name);
    const bool weights = !layer.weight.empty() && resolved.weights.quantize;
    if (resolved.keepFloat || (!weights && !resolved.activations.quantize))
        return {.keepFloat = true};
    return {.weightBits = weights ? resolved.weights.bits : 0, .activationBits = resolved.activations.quantize ? resolved.activations.bits : 0};
}

QString precisionSummary(const QuantConfig& config, const std::vector<QuantLayer>& layers)
{
    auto setting = [&](const QuantLayer& layer) { return QString::fromStdString(describePrecision(precisionOf(config, layer))); };
    // The setting most layers with weights share stands for "every other layer".
    std::map<QString, int> counts;
    for (const QuantLayer& layer : layers)
        if (!layer.weight.empty())
            ++counts[setting(layer)];
    QString common;
    int most = 0;
    for (const auto& [text, count] : counts)
        if (count > most)
            common = text, most = count;
    QStringList exceptions;
    for (const QuantLayer& layer : layers) {
        const QString s = setting(layer);
        // A layer without weights has only its activation's width ("a8"): it agrees with "w8a8".
        const bool same = s == common || (layer.weight.empty() && s != QLatin1String("float") && common.endsWith(s));
        if (!same)
            exceptions << QStringLiteral("%1 %2").arg(QString::fromStdString(layer.name), s);
    }
    if (common.isEmpty())
        return exceptions.join(", ");
    return exceptions.isEmpty() ? ParetoChart::tr("%1 everywhere").arg(common)
                                : ParetoChart::tr("%1 elsewhere; %2").arg(common, exceptions.join(", "));
}

}  // namespace qe
