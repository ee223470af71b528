#pragma once
// What the repairs did to the selected layer, channel by channel, from the evaluation's
// RepairReport (the numbers the core measured; nothing is computed here):
// - Equalization: each channel's weight range, max |w|, before and after; for the pair's first
//   layer its output channels, for the second (when it is not also a first) its input channels.
//   Equal ranges are what per-tensor quantization needs.
// - Bias shift: the mean output shift that weight quantization caused in each output channel,
//   which bias correction subtracted from the bias.
// - AdaRound: the share of each output channel's weights that AdaRound rounded the other way
//   from nearest rounding.
// Hovering a channel tells its numbers.

#include "charts.h"
#include "repair/repair.h"

#include <memory>

namespace qe {

class RepairChart : public ChartView {
    Q_OBJECT
public:
    enum Kind { Equalization, BiasShift, AdaRoundFlips };
    explicit RepairChart(Kind kind, QWidget* parent = nullptr);
    // The layer's repairs in `report` (null: the configuration asks for none).
    void setLayer(std::shared_ptr<const RepairReport> report, const QString& layer);

    Kind kind() const { return kind_; }
    // The values drawn, one per channel: for Equalization `before` and `after` are the ranges, for
    // BiasShift `after` is the shift, for AdaRoundFlips the flipped fraction (0 to 1). Empty when
    // the layer was not repaired this way.
    const std::vector<float>& before() const { return before_; }
    const std::vector<float>& after() const { return after_; }
    // What hovering channel `channel` shows.
    QString channelDescription(int channel) const;

private:
    void rebuild(const QString& title, const QString& axisTitle, const QString& channelAxis);
    Kind kind_;
    std::shared_ptr<const RepairReport> report_;
    QString layer_;
    std::vector<float> before_, after_, scales_;
};

}  // namespace qe
