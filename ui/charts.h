#pragma once
// The explorer's charts. Each one draws numbers it is given (a snapshot or the layer table
// model) and computes none of its own, so what a chart shows is what the core measured.
// Every chart can be saved as PNG or SVG from its context menu.

#include "eval/quant_evaluator.h"

#include <QChartView>
#include <QPointer>

#include <optional>

class QAbstractItemModel;
class QBarSeries;
class QBarSet;
class QBarCategoryAxis;

namespace qe {

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

private:
    QString name_;
};

// One tensor's histogram with what the configuration puts on it: the quantization levels (a rug
// of ticks, and lines when there are few), the clipping range, the clipped mass in red, and, for
// activations, the range each calibration method would choose, drawn side by side above it.
class HistogramChart : public ChartView {
    Q_OBJECT
public:
    explicit HistogramChart(const QString& name, QWidget* parent = nullptr);
    void setHistogram(const std::optional<TensorHistogram>& histogram, const QString& title);
    void setLogScale(bool on);
    const std::optional<TensorHistogram>& histogram() const { return histogram_; }

private:
    void rebuild();
    std::optional<TensorHistogram> histogram_;
    QString title_;
    bool logScale_ = false;
};

// Per-layer error from the layer table model: accumulated and isolated, as SQNR or MSE, or the
// activation rounding noise in steps against the 1/sqrt(12) of uniform noise. Clicking a bar
// selects its layer.
class ErrorChart : public ChartView {
    Q_OBJECT
public:
    enum Mode { SqnrDb, Mse, RoundingNoise };
    ErrorChart(QAbstractItemModel* layerModel, QWidget* parent = nullptr);
    void setMode(Mode mode);
    void setSelectedLayer(int row);
    // The drawn values, for the tests: set 0 is the accumulated error, set 1 the isolated one.
    QList<QBarSet*> barSets() const;

signals:
    void layerClicked(int row);

private:
    void rebuild();
    QAbstractItemModel* model_;
    Mode mode_ = SqnrDb;
    int selected_ = -1;
    QBarSeries* series_ = nullptr;
};

// Accuracy against model size for every configuration tried, in order, with the current one
// highlighted and the float model for reference.
class HistoryChart : public ChartView {
    Q_OBJECT
public:
    struct Entry {
        QString description;
        double sizeKiB = 0, top1 = 0, agreement = 0;
    };
    explicit HistoryChart(QWidget* parent = nullptr);
    void setHistory(const QList<Entry>& entries, const Entry& floatModel);
};

// One image's accumulated SQNR per layer next to the average over all evaluation images.
class ImageErrorChart : public ChartView {
    Q_OBJECT
public:
    explicit ImageErrorChart(QWidget* parent = nullptr);
    void setErrors(const QStringList& layers, const QList<double>& imageSqnr, const QList<double>& allSqnr,
                   const QString& title);
};

}  // namespace qe
