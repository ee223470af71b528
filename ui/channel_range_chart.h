#pragma once
// The selected layer's weights channel by channel: each output channel's range of values as a
// band, the clipping range one per-tensor quantizer would give them all as dashed lines, and on
// the right axis the share of each channel's weights that round to zero, per tensor and under
// the parameters in force. It shows at a glance why per-tensor quantization breaks a
// MobileNet's depthwise layers: channels far narrower than the per-tensor range lose most of
// their weights to zero. Clicking a channel picks it for the weight histogram.

#include "charts.h"

namespace qe {

class ChannelRangeChart : public ChartView {
    Q_OBJECT
public:
    explicit ChannelRangeChart(QWidget* parent = nullptr);
    // nullopt: the layer has no weights (or none is selected); `message` says so.
    void setRanges(const std::optional<ChannelRanges>& ranges, const QString& message = {});
    const std::optional<ChannelRanges>& ranges() const { return ranges_; }
    // The channel under x on the channel axis, -1 outside.
    int channelAt(double x) const;
    // What hovering channel `channel` shows: its range and the shares that round to zero.
    QString channelDescription(int channel) const;

signals:
    void channelClicked(int channel);

private:
    void rebuild();
    std::optional<ChannelRanges> ranges_;
    QString message_;
};

}  // namespace qe
