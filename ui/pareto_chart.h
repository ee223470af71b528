#pragma once
// The Pareto view: top-1 against model size for every configuration evaluated, those tried by hand
// and those a mixed-precision search measured, with the front among them drawn as a line, the
// float model and the current configuration marked. Hovering a point names its configuration
// (the edit or search step that made it and its per-layer bits); clicking it asks for that
// configuration (pointClicked), which the window loads as one undo step.
//
// The chart draws what it is given: the points and which of them are on the front (the core's
// paretoFront, computed by the window), never a number of its own.

#include "charts.h"
#include "quant/config.h"
#include "study/sensitivity.h"

#include <QList>

class QScatterSeries;

namespace qe {

struct QuantLayer;

class ParetoChart : public ChartView {
    Q_OBJECT
public:
    struct Point {
        enum Source { ByHand, Search };
        Source source = ByHand;
        QString description;  // the edit that made it, or the search step that measured it
        QString bits;         // its per-layer bits, in a few words (precisionSummary)
        double sizeKiB = 0;
        double top1 = 0;      // percent: on the evaluation images (by hand) or the search images
        QuantConfig config;
    };
    explicit ParetoChart(QWidget* parent = nullptr);

    // `front`: indexes into `points` of the Pareto front; `current`: the index of the configuration
    // in the document, -1 when it has not been evaluated yet.
    void setPoints(const QList<Point>& points, const QList<int>& front, const Point& floatModel, int current);
    const QList<Point>& points() const { return points_; }
    const QList<int>& front() const { return front_; }
    // The front as drawn, by size (what the line joins).
    QList<QPointF> frontLine() const;
    // The index of the point drawn nearest `point` (-1 for the float model or when there is none).
    int pointAt(const QPointF& point) const;
    // What hovering the point at `point` shows: the configuration's description and numbers.
    QString pointDescription(const QPointF& point) const;

signals:
    void pointClicked(int index);

private:
    QScatterSeries* scatter(const QString& name, const QColor& colour, qreal size);
    QList<Point> points_;
    QList<int> front_;
    Point float_;
};

// The setting `config` gives `layer`, as the sensitivity and the search name settings.
PrecisionChoice precisionOf(const QuantConfig& config, const QuantLayer& layer);
// A configuration's per-layer precision in a few words: the setting most layers share, then
// the layers that differ ("w8a8 elsewhere; conv2 w4a8, fc2 float"). `layers` are the model's,
// in order.
QString precisionSummary(const QuantConfig& config, const std::vector<QuantLayer>& layers);

}  // namespace qe
