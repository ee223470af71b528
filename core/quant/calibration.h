#pragma once
// Calibration of activation ranges. An observer watches the float activations of one tensor
// batch after batch (streaming: it keeps running statistics and a histogram, never the values),
// and a calibration method turns what it saw into a clipping range [min, max].
// Observer state is kept apart from QuantParams on purpose: parameters are values, observers are
// accumulators.

#include "quant/scheme.h"
#include "tensor/tensor.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace qe {

enum class CalibrationMethod : std::uint8_t {
    MinMax,         // the extreme values seen
    MovingAverage,  // exponential moving average of each batch's min and max (PyTorch's
                    // MovingAverageMinMaxObserver, averaging constant 0.01)
    Percentile,     // the given percentile of |x| (or of x at both ends for signed data)
    Mse,            // the clipping range that minimises the expected quantization MSE
    Entropy,        // TensorRT's KL-divergence calibration
};
constexpr int kCalibrationMethodCount = 5;

struct CalibrationMethodTraits {
    CalibrationMethod method;
    std::string_view name;         // in configuration files: "minmax", "moving_average", "percentile", "mse", "entropy"
    std::string_view displayName;  // for the UI
    std::string_view tradeOff;     // tooltip
};
const std::array<CalibrationMethodTraits, kCalibrationMethodCount>& calibrationMethodTable();
std::optional<CalibrationMethod> calibrationMethodFromName(std::string_view name);
std::string_view calibrationMethodName(CalibrationMethod method);

struct CalibrationSpec {
    CalibrationMethod method = CalibrationMethod::MinMax;
    double percentile = 99.99;         // for Percentile, in (0, 100]
    double movingAverageConstant = 0.01;
    // A layer's range given rather than calibrated (learned by quantization-aware training with
    // LSQ, or set by hand): it replaces the method's range, and no calibration image is needed.
    std::optional<std::pair<float, float>> fixedRange;
    bool operator==(const CalibrationSpec&) const = default;
};

// A histogram with equal-width bins over [low, high].
struct Histogram {
    float low = 0.f, high = 0.f;
    std::vector<double> counts;
    double total() const;
    float binWidth() const { return counts.empty() ? 0.f : (high - low) / static_cast<float>(counts.size()); }
};

class RangeObserver {
public:
    // 8192 bins by default: the range grows by whole multiples of the bin width (up to about
    // twice what the data needs), and the entropy method re-bins this histogram onto 2048 bins of
    // |x|; with 2048 bins here, streamed 4-bit entropy thresholds drifted by 8% of max |x|.
    explicit RangeObserver(int bins = 8192);

    // One batch of activations. The histogram range grows as needed: when new data falls
    // outside it, the range is widened and the old counts are redistributed over the new bins
    // (mass-preserving), so the order of batches changes the result only within one bin width.
    // Old bins merge whole into new ones, so the histogram may span up to about twice
    // [min(), max()]; plot it clipped to that. Non-finite values are a qe::Error (batch rejected).
    void observe(const float* values, std::size_t count);
    void observe(const Tensor& batch);

    bool empty() const { return seen_ == 0; }
    float min() const { return min_; }
    float max() const { return max_; }
    std::uint64_t count() const { return seen_; }
    const Histogram& histogram() const { return histogram_; }

    // The clipping range the method chooses for quantizing with `spec` (the scheme and bit width
    // matter to MSE and entropy; the range always contains 0 for uniform schemes).
    std::pair<float, float> range(const CalibrationSpec& calibration, const TensorQuantSpec& spec) const;

private:
    // Counts `values` into histogram_ (whose range holds them all).
    void addToHistogram(const float* values, std::size_t count);
    int bins_;
    float min_ = 0.f, max_ = 0.f;
    // Each batch's min and max in order (two floats a batch, not the values), so that range() can
    // apply any moving-average constant: the UI changes it after calibration without re-running.
    std::vector<std::pair<float, float>> batchExtrema_;
    std::uint64_t seen_ = 0;
    // Exact zeros (half of a ReLU output) are counted apart: spread over their bin like the other
    // values, that spike would blur the low bins the entropy and MSE methods rely on.
    std::uint64_t zeros_ = 0;
    Histogram histogram_;
};

}  // namespace qe
