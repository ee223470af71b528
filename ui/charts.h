#pragma once
// The explorer's charts. Each one draws numbers it is given (a snapshot or the layer table
// model) and computes none of its own, so what a chart shows is what the core measured.
// Every chart can be saved as PNG or SVG from its context menu.

#include "eval/quant_evaluator.h"

#include <QChartView>
#include <QColor>
#include <QPen>
#include <QPointer>

#include <optional>

class QAbstractItemModel;
class QAbstractSeries;
class QBarSet;
class QBarCategoryAxis;
class QChart;
class QHorizontalBarSeries;
class QLineSeries;

namespace qe {

// Colours that stay distinct on a projector and for the common colour-vision deficiencies
// (Okabe-Ito), shared by every chart. `red` is Okabe-Ito's vermillion; where a text says "red"
// about something that is not a chart series (the gallery's frames), `plainRed` is meant.
namespace colours {
inline const QColor blue(0, 114, 178), orange(230, 159, 0), red(213, 94, 0), green(0, 158, 115), purple(204, 121, 167),
    sky(86, 180, 233), yellow(240, 228, 66), grey(90, 90, 90), plainRed(210, 20, 20);
}

// Empties a chart (series and axes) before it is drawn again.
void prepareChart(QChart* chart);
// A straight line from a to b, for clipping ranges and reference lines.
QLineSeries* segment(QChart* chart, QPointF a, QPointF b, QPen pen, const QString& name);
void hideFromLegend(QChart* chart, QAbstractSeries* series);
// A fraction as a percentage with three significant digits in fixed notation, however small:
// 0.00000040 -> "0.0000400%" (never "4e-05").
QString percentText(double fraction);
// An accuracy (or any fraction of images) with two decimals: 0.9876 -> "98.76%".
QString accuracyText(double fraction);
// An SQNR in dB: "exact" for no error at all (+inf), "−∞" for no signal, empty for none
// measured (NaN); sqnrWithUnit adds " dB" to a number.
QString sqnrText(double db, int decimals = 1);
QString sqnrWithUnit(double db, int decimals = 1);

// Writes what `widget` shows as PNG (at twice the screen resolution) or SVG, chosen by the
// suffix of `path`, atomically; throws qe::Error naming the file on failure.
void saveWidgetImage(QWidget* widget, const QString& title, const QString& path);
// The "Save as PNG / SVG" context menu every chart has.
void showSaveImageMenu(QWidget* widget, const QString& name, const QPoint& globalPos);

// A layer name short enough for a chart axis: exporters name nodes "/conv1/Conv", and the path
// without the leading slash and the trailing operator ("conv1") says the same in a third of the
// width. Other names are kept.
QString shortLayerName(const QString& name);

class ChartView : public QChartView {
    Q_OBJECT
public:
    explicit ChartView(const QString& name, QWidget* parent = nullptr);
    void saveImage(const QString& path) { saveWidgetImage(this, name_, path); }
    QString name() const { return name_; }

protected:
    void contextMenuEvent(QContextMenuEvent* event) override;
    void paintEvent(QPaintEvent* event) override;

private:
    // Presentation mode (MainWindow::setPresentationMode) enlarges the window's font; the chart's
    // title, legend and axes (made again at every update) follow it here, and go back to the
    // chart's own fonts after.
    void matchWindowFont();
    QString name_;
    std::optional<QFont> ownTitleFont_, ownLegendFont_;
};

// Per-layer error from the layer table model: accumulated and isolated, as SQNR or MSE, or the
// activation rounding noise in steps against the 1/sqrt(12) of uniform noise. Horizontal bars,
// one row per layer named in full on the left, as the report draws them: the chart grows with
// the model (the window scrolls it). Hovering a bar tells its layer and value; clicking selects
// the layer.
class ErrorChart : public ChartView {
    Q_OBJECT
public:
    enum Mode { SqnrDb, Mse, RoundingNoise };
    ErrorChart(QAbstractItemModel* layerModel, QWidget* parent = nullptr);
    void setMode(Mode mode);
    void setSelectedLayer(int row);
    // The drawn values, for the tests: set 0 is the accumulated error, set 1 the isolated one.
    // Bar 0 is the bottom one, the last layer's: see barOfRow().
    QList<QBarSet*> barSets() const;
    // The layer names, one per bar group, from the bottom (the last layer) to the top (the first).
    QBarCategoryAxis* layerAxis() const;
    // The bar (and category) index of a layer's row, and the row of a bar: the same mapping.
    int barOfRow(int row) const;
    int rowOfBar(int bar) const { return barOfRow(bar); }
    // Where a layer's row of bars is drawn, in this widget's coordinates (empty when there is
    // none): the window scrolls it into view when the layer is selected.
    QRect layerBarRect(int row) const;
    // What hovering bar `index` of `set` shows: the layer's full name and the value.
    QString barDescription(int index, QBarSet* set) const;
    // A/B: while set, each layer has A's accumulated error (from the layer model) and B's (from
    // `b`, by layer name) side by side, in place of accumulated and isolated; nullopt: back to A.
    struct Comparison {
        QString nameA, nameB;
        std::vector<LayerMetrics> b;
    };
    void setComparison(std::optional<Comparison> comparison);

signals:
    void layerClicked(int row);

private:
    void rebuild();
    double comparisonValue(int row) const;  // B's metric of the layer in `row`, by the mode
    QAbstractItemModel* model_;
    Mode mode_ = SqnrDb;
    int selected_ = -1;
    std::optional<Comparison> comparison_;
    QHorizontalBarSeries* series_ = nullptr;
    QStringList fullNames_;
};

// One image's accumulated SQNR per layer next to the average over all evaluation images.
class ImageErrorChart : public ChartView {
    Q_OBJECT
public:
    explicit ImageErrorChart(QWidget* parent = nullptr);
    void setErrors(const QStringList& layers, const QList<double>& imageSqnr, const QList<double>& allSqnr,
                   const QString& title);
    // The layer axis: short layer names, or with more layers than this, their numbers.
    QBarCategoryAxis* layerAxis() const;
};
constexpr int kMaxNamedImageErrorLayers = 12;

}  // namespace qe
