#pragma once
// One tensor's histogram with what the configuration puts on it: the quantization levels (a rug
// of ticks, and lines when there are few), the clipping range, the clipped mass in red, and, for
// activations, the range each calibration method would choose, drawn side by side above it.
// The levels and the range are those of the parameters in force (a QDQ model's own while the
// configuration keeps them) and of the block shown: for per-channel weights, of the channel the
// user picked; the whole tensor shows none, since each channel has its own.

#include "charts.h"

namespace qe {

// The chart's title: which tensor, its quantization, how many levels and how much is clipped.
// `what` is "Weights" or "Activations".
QString histogramTitle(const QString& what, const QString& layer, const std::optional<TensorHistogram>& histogram);
// The legend's name of the levels: "256 levels", "256 levels (channel 3)".
QString levelsLegend(const TensorHistogram& histogram);

class HistogramChart : public ChartView {
    Q_OBJECT
public:
    explicit HistogramChart(const QString& name, QWidget* parent = nullptr);
    void setHistogram(const std::optional<TensorHistogram>& histogram, const QString& title);
    void setLogScale(bool on);
    // A/B: configuration B's levels and clipping range on the same tensor, drawn over A's in a
    // second colour (purple) and named "B" in the legend; nullopt: A alone.
    void setComparison(const std::optional<TensorHistogram>& b);
    const std::optional<TensorHistogram>& comparison() const { return comparison_; }
    const std::optional<TensorHistogram>& histogram() const { return histogram_; }
    QAbstractAxis* countAxis() const;  // the vertical axis (logarithmic or linear)

private:
    void rebuild();
    std::optional<TensorHistogram> histogram_, comparison_;
    QString title_;
    bool logScale_ = false;
};

}  // namespace qe
