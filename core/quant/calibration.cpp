#include "quant/calibration.h"

#include "common/error.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <utility>

namespace qe {

namespace {

constexpr std::array<CalibrationMethodTraits, kCalibrationMethodCount> kMethods{{
    {CalibrationMethod::MinMax, "minmax", "Min-max",
     "Keeps every outlier in range, so one extreme value can waste most of the levels."},
    {CalibrationMethod::MovingAverage, "moving_average", "Moving-average min-max",
     "Averages the extremes of each batch so rare outliers weigh less, but the range depends on the batch size "
     "and order and clips values that only a few batches reach."},
    {CalibrationMethod::Percentile, "percentile", "Percentile",
     "Clips the rarest values to spend the levels on the bulk of the data, but the percentile needs tuning and "
     "clipped outliers that carry information are lost."},
    {CalibrationMethod::Mse, "mse", "Minimum MSE",
     "Picks the range with the smallest expected squared quantization error, which clips more at low bit widths, "
     "but squared error is not always what the accuracy depends on."},
    {CalibrationMethod::Entropy, "entropy", "Entropy (KL divergence)",
     "Keeps the quantized distribution closest to the float one, which suits ReLU-like activations, but it can "
     "clip large values that matter and searches the whole histogram."},
}};

constexpr bool tableInEnumOrder()
{
    for (int i = 0; i < kCalibrationMethodCount; ++i)
        if (static_cast<int>(kMethods[static_cast<std::size_t>(i)].method) != i)
            return false;
    return true;
}
static_assert(static_cast<int>(CalibrationMethod::Entropy) + 1 == kCalibrationMethodCount,
              "a calibration method was added: add its row to kMethods");
static_assert(tableInEnumOrder(), "kMethods rows must follow the enum order");

// The width of the |x| histogram TensorRT's entropy calibration works on.
constexpr int kEntropyBins = 2048;
// Probability given to a bin where the candidate Q is empty but P is not. 1e-4 is the smoothing
// constant of MXNet's and ONNX Runtime's entropy calibration (smooth_distribution); here it is
// only ever needed for the last kept bin, which alone receives the clipped outliers in P.
constexpr double kKlEpsilon = 1e-4;
// Candidate clipping ranges of the MSE search: fractions k/kMseCandidates of the data range.
constexpr int kMseCandidates = 1024;

std::string toString(double v)
{
    std::ostringstream s;
    s << v;
    return s.str();
}

// A piece of the observed distribution: `mass` values spread evenly over [lo, hi], or sitting
// exactly at lo when lo == hi.
struct Bin {
    double lo, hi, mass;
    double centre() const { return 0.5 * (lo + hi); }
};

// The occupied histogram bins in ascending order, each narrowed to the observed [min, max] (the
// data cannot lie outside it, so the edge bins do not claim values that were never seen). The
// exact zeros become a point mass at 0, splitting the bin that counted them at 0.
std::vector<Bin> occupiedBins(const Histogram& h, float min, float max, double zeros)
{
    std::vector<Bin> bins;
    const int n = static_cast<int>(h.counts.size());
    const double width = (double(h.high) - double(h.low)) / n;
    // The bin the zeros were counted in (as observe() bins them; grown bins nest, so it stays so).
    int zeroBin = -1;
    if (zeros > 0) {
        zeroBin = std::clamp(static_cast<int>(-double(h.low) * (n / (double(h.high) - double(h.low)))), 0, n - 1);
        for (int k : {zeroBin, zeroBin - 1, zeroBin + 1})  // an edge within rounding of 0
            if (k >= 0 && k < n && h.counts[static_cast<std::size_t>(k)] >= zeros) {
                zeroBin = k;
                break;
            }
    }
    for (int k = 0; k < n; ++k) {
        double mass = h.counts[static_cast<std::size_t>(k)];
        if (mass == 0)
            continue;
        double lo = double(h.low) + k * width, hi = lo + width;
        lo = std::clamp(lo, double(min), double(max));
        hi = std::clamp(hi, double(min), double(max));
        if (k != zeroBin) {
            bins.push_back({lo, hi, mass});
            continue;
        }
        mass = std::max(0.0, mass - zeros);
        const double left = lo < 0 && hi > lo ? (std::min(hi, 0.0) - lo) / (hi - lo) : 0.0;
        if (mass * left > 0)
            bins.push_back({lo, std::min(hi, 0.0), mass * left});
        bins.push_back({0.0, 0.0, zeros});
        if (mass * (1 - left) > 0)
            bins.push_back({std::max(lo, 0.0), hi, mass * (1 - left)});
    }
    return bins;
}

// The value below which a fraction q of the histogram's mass lies, interpolating linearly inside
// the bin (the values of a bin are taken as spread evenly over it).
double histogramQuantile(const std::vector<Bin>& bins, double total, double q)
{
    const double target = q * total;
    double cumulative = 0;
    for (const Bin& b : bins) {
        if (cumulative + b.mass >= target) {
            const double fraction = std::clamp((target - cumulative) / b.mass, 0.0, 1.0);
            return b.lo + fraction * (b.hi - b.lo);
        }
        cumulative += b.mass;
    }
    return bins.back().hi;
}

// The uniform grid the MSE search scores a candidate range with. Affine spends 2^b levels on
// [lo, hi]; symmetric (and power-of-two) puts qmax = 2^(b-1)-1 (signed, narrow) or 2^b-1
// (unsigned) steps on [0, max(|lo|, hi)] and mirrors them if signed. The non-uniform schemes
// (log2, k-means) and the floating-point formats are scored with the symmetric uniform grid of
// the same bit width: a proxy, not their real error. Each scheme's row names its grid.
struct GridModel {
    using Kind = CalibrationGrid;  // the scheme table's row says which
    Kind kind = Kind::Symmetric;
    bool isSigned = true;
    double steps = 127;  // intervals between the extreme levels (affine) or from 0 to the top (symmetric)

    struct Grid {
        double clampLow, clampHigh, step;
    };
    Grid grid(double lo, double hi) const
    {
        if (kind == Kind::Affine)
            return {lo, hi, (hi - lo) / steps};
        const double top = std::max(-lo, hi);
        double step = top / steps;
        if (kind == Kind::PowerOfTwo && step > 0)
            step = std::exp2(std::ceil(std::log2(step)));
        const double clampHigh = step * steps;
        return {isSigned ? -clampHigh : 0.0, clampHigh, step};
    }
};

GridModel gridModel(const TensorQuantSpec& spec)
{
    if (spec.bits < 1 || spec.bits > 32)
        throw Error("calibration: " + std::to_string(spec.bits) + " bits is out of range (1 to 32)");
    GridModel model;
    model.kind = schemeTraits(spec.scheme).calibrationGrid;
    model.isSigned = model.kind == GridModel::Kind::Affine || spec.isSigned.value_or(true);
    if (model.kind == GridModel::Kind::Affine || !model.isSigned)
        model.steps = std::exp2(spec.bits) - 1;
    else
        model.steps = std::exp2(spec.bits - 1) - 1;
    if (model.steps < 1)
        throw Error("calibration: a signed symmetric grid of " + std::to_string(spec.bits) +
                    " bit has no nonzero level (it needs at least 2 bits)");
    return model;
}

// Expected squared error of quantizing the histogram mass with the grid of [lo, hi]: clipped mass
// costs its distance to the clamp bound squared, mass inside the rounding noise step^2/12.
double expectedSquaredError(const std::vector<Bin>& bins, const GridModel::Grid& g)
{
    const double noise = g.step * g.step / 12.0;
    double error = 0;
    for (const Bin& b : bins) {
        if (b.lo == 0 && b.hi == 0)
            continue;  // exact zeros: 0 is on every grid these ranges make
        const double v = b.centre();
        if (v < g.clampLow)
            error += b.mass * (v - g.clampLow) * (v - g.clampLow);
        else if (v > g.clampHigh)
            error += b.mass * (v - g.clampHigh) * (v - g.clampHigh);
        else
            error += b.mass * noise;
    }
    return error;
}

// The histogram of |x| over [0, maxAbs] with kEntropyBins bins, folded and re-binned from the
// observer's histogram: each bin's mass is spread evenly over its interval (split at 0 by length)
// and given to the new bins in proportion to the overlap. Aligned grids map bin to bin exactly.
std::vector<double> absoluteHistogram(const std::vector<Bin>& bins, double maxAbs)
{
    std::vector<double> out(kEntropyBins, 0.0);
    const double width = maxAbs / kEntropyBins;
    // Positions in units of the new bins, snapped to a whole bin when within rounding of one.
    auto position = [&](double v) {
        const double p = v / width;
        const double r = std::round(p);
        return std::abs(p - r) <= 1e-9 * std::max(1.0, std::abs(p)) ? r : p;
    };
    auto spread = [&](double a, double b, double mass) {  // 0 <= a <= b
        const double pa = position(a), pb = position(b);
        if (pb - pa <= 0) {
            out[static_cast<std::size_t>(std::clamp(static_cast<int>(pa), 0, kEntropyBins - 1))] += mass;
            return;
        }
        const int first = std::clamp(static_cast<int>(std::floor(pa)), 0, kEntropyBins - 1);
        const int last = std::clamp(static_cast<int>(std::ceil(pb)) - 1, first, kEntropyBins - 1);
        for (int k = first; k <= last; ++k) {
            const double overlap = std::min(pb, double(k + 1)) - std::max(pa, double(k));
            if (overlap > 0)
                out[static_cast<std::size_t>(k)] += mass * overlap / (pb - pa);
        }
        // Rounding at the clamped ends can leave a sliver unassigned; keep the mass exact.
    };
    for (const Bin& b : bins) {
        if (b.hi <= 0)
            spread(-b.hi, -b.lo, b.mass);
        else if (b.lo >= 0)
            spread(b.lo, b.hi, b.mass);
        else {
            const double negative = -b.lo / (b.hi - b.lo);
            spread(0, -b.lo, b.mass * negative);
            spread(0, b.hi, b.mass * (1 - negative));
        }
    }
    // Mass lost to slivers outside [0, maxAbs] (only through rounding) goes back to the end bins.
    double assigned = 0, total = 0;
    for (double c : out)
        assigned += c;
    for (const Bin& b : bins)
        total += b.mass;
    if (assigned != total)
        out.back() += total - assigned;
    return out;
}

// TensorRT's entropy calibration (Szymon Migacz, "8-bit Inference with TensorRT", GTC 2017; the
// same loop as NVIDIA pytorch-quantization's _compute_amax_entropy). For each candidate i, the
// number of |x| bins kept:
//   P = bins[0 .. i-1] with the outliers sum(bins[i ..]) added to bins[i-1], normalised;
//   Q = bins[0 .. i-1] (without the outliers) merged into `quantBins` levels, source bin j going to
//       level floor(j * quantBins / i), then expanded back by giving each level's mass evenly to
//       its source bins that are non-zero; normalised;
//   KL(P || Q) = sum over P_j > 0 of P_j ln(P_j / Q_j), with Q_j = kKlEpsilon where Q_j is 0.
// Candidates run from i = quantBins to 2048; ties go to the larger i (the last argmin, as in
// pytorch-quantization). Also as there, the first bin's count is replaced by the second's before
// anything else: it holds the exact zeros (half of a ReLU output), which every grid represents
// without error, and left alone that spike rather than the tail would decide the threshold. Returns the chosen i; the threshold is the upper edge of the last kept
// bin, i * bin width (pytorch-quantization's calib_bin_edges[i]; the GTC slides write (i + 0.5) *
// width, half a bin more, which would put i = 2048 beyond the largest value seen).
int entropyBinsKept(std::vector<double> hist, int quantBins)
{
    const int n = static_cast<int>(hist.size());
    hist[0] = hist[1];
    std::vector<double> suffix(static_cast<std::size_t>(n) + 1, 0.0);
    for (int j = n - 1; j >= 0; --j)
        suffix[static_cast<std::size_t>(j)] = suffix[static_cast<std::size_t>(j) + 1] + hist[static_cast<std::size_t>(j)];
    const double total = suffix[0];
    std::vector<double> levelMass(static_cast<std::size_t>(quantBins));
    std::vector<int> levelNonZero(static_cast<std::size_t>(quantBins));
    int best = n;
    double bestDivergence = std::numeric_limits<double>::infinity();
    for (int i = std::min(quantBins, n); i <= n; ++i) {
        std::fill(levelMass.begin(), levelMass.end(), 0.0);
        std::fill(levelNonZero.begin(), levelNonZero.end(), 0);
        for (int j = 0; j < i; ++j) {
            const double c = hist[static_cast<std::size_t>(j)];
            if (c == 0)
                continue;
            const auto level = static_cast<std::size_t>(std::int64_t(j) * quantBins / i);
            levelMass[level] += c;
            ++levelNonZero[level];
        }
        const double kept = total - suffix[static_cast<std::size_t>(i)];
        double divergence = 0;
        for (int j = 0; j < i; ++j) {
            const double c = hist[static_cast<std::size_t>(j)];
            const double pMass = j == i - 1 ? c + suffix[static_cast<std::size_t>(i)] : c;
            if (pMass == 0)
                continue;
            const double p = pMass / total;
            double q = 0;
            if (c != 0) {
                const auto level = static_cast<std::size_t>(std::int64_t(j) * quantBins / i);
                q = levelMass[level] / levelNonZero[level] / kept;
            }
            divergence += p * std::log(p / (q > 0 ? q : kKlEpsilon));
        }
        if (divergence <= bestDivergence) {
            bestDivergence = divergence;
            best = i;
        }
    }
    return best;
}

// How many levels the grid has above zero for non-negative data, or on each side for signed data
// (TensorRT's 128 at 8 bits signed; 256 for unsigned or affine grids on non-negative data).
int entropyQuantBins(const TensorQuantSpec& spec, bool signedData)
{
    const GridModel model = gridModel(spec);  // validates the bit width
    const bool allLevelsPositive = !signedData && (model.kind == GridModel::Kind::Affine || !model.isSigned);
    const int exponent = allLevelsPositive ? spec.bits : spec.bits - 1;
    return exponent >= 11 ? kEntropyBins : (1 << exponent);
}

}  // namespace

const std::array<CalibrationMethodTraits, kCalibrationMethodCount>& calibrationMethodTable()
{
    return kMethods;
}

std::optional<CalibrationMethod> calibrationMethodFromName(std::string_view name)
{
    for (const CalibrationMethodTraits& t : kMethods)
        if (t.name == name)
            return t.method;
    return std::nullopt;
}

std::string_view calibrationMethodName(CalibrationMethod method)
{
    return kMethods.at(static_cast<std::size_t>(method)).name;
}

double Histogram::total() const
{
    double sum = 0;
    for (double c : counts)
        sum += c;
    return sum;
}

RangeObserver::RangeObserver(int bins) : bins_(bins)
{
    if (bins < 1 || bins > (1 << 24))
        throw Error("RangeObserver: " + std::to_string(bins) + " histogram bins (expected 1 to 2^24)");
}

void RangeObserver::observe(const Tensor& batch)
{
    if (batch.dtype() != DataType::Float32)
        throw Error("calibration observes float32 activations, got " + batch.describe());
    if (batch.size() == 0)
        return;
    observe(batch.data<float>(), static_cast<std::size_t>(batch.size()));
}

void RangeObserver::addToHistogram(const float* values, std::size_t count)
{
    // The bins of a block of values first (vector instructions), then their counts in four
    // integer sub-histograms, value i in sub-histogram i % 4: one bin's increments (ReLU's zeros
    // all go to one) no longer wait on each other, as they did one after another on one double.
    const int n = bins_;
    const double low = histogram_.low;
    const double scale = n / (double(histogram_.high) - low);
    // Clamped before the conversion (to the same bin as truncating first: values below 0 and in
    // (n - 1, n) truncate to the ends too), so that it converts to int32, which vector
    // instructions do without AVX-512. max(0, min(x, last)) rather than std::clamp: a NaN
    // (there is none unless the range has no width) goes to bin 0, not to a wild index.
    const double lastBin = n - 1;
    auto binOf = [&](float v) { return static_cast<std::int32_t>(std::max(0.0, std::min((double(v) - low) * scale, lastBin))); };
    constexpr std::size_t kBlock = 1024, kWays = 4;
    if (count < kWays * std::size_t(n)) {  // few values (one channel's weights): not worth the sub-histograms
        for (std::size_t i = 0; i < count; ++i)
            histogram_.counts[std::size_t(binOf(values[i]))] += 1;
        return;
    }
    std::vector<std::uint32_t> sub(kWays * std::size_t(n), 0);
    std::array<std::int32_t, kBlock> bins;
    std::size_t sinceFlush = 0;
    auto flush = [&] {
        for (std::size_t j = 0; j < std::size_t(n); ++j) {
            std::uint64_t total = 0;
            for (std::size_t w = 0; w < kWays; ++w)
                total += std::exchange(sub[w * std::size_t(n) + j], 0u);
            histogram_.counts[j] += double(total);
        }
        sinceFlush = 0;
    };
    for (std::size_t start = 0; start < count; start += kBlock) {
        const std::size_t m = std::min(kBlock, count - start);
        const float* block = values + start;
#pragma omp simd
        for (std::size_t i = 0; i < m; ++i)
            bins[i] = binOf(block[i]);
        for (std::size_t i = 0; i < m; ++i)
            ++sub[(i % kWays) * std::size_t(n) + std::size_t(bins[i])];
        sinceFlush += m;
        if (sinceFlush >= (std::size_t(1) << 31))  // before a sub-histogram's count could overflow
            flush();
    }
    flush();
}

void RangeObserver::observe(const float* values, std::size_t count)
{
    if (count == 0)
        return;
    // Branch-free reductions that the compiler vectorises; a value that is not finite is looked
    // for again only to name it.
    float batchMin = values[0], batchMax = values[0];
    std::uint64_t zeros = 0;
    int notFinite = 0;
#pragma omp simd reduction(min : batchMin) reduction(max : batchMax) reduction(+ : zeros) reduction(| : notFinite)
    for (std::size_t i = 0; i < count; ++i) {
        const float v = values[i];
        notFinite |= !(std::abs(v) <= std::numeric_limits<float>::max());
        batchMin = std::min(batchMin, v);
        batchMax = std::max(batchMax, v);
        zeros += v == 0;
    }
    if (notFinite)
        for (std::size_t i = 0; i < count; ++i)
            if (!std::isfinite(values[i]))
                throw Error("calibration: activation " + std::to_string(i) + " of the batch is " + toString(values[i]) +
                            " (a finite value was expected)");
    const int n = bins_;
    if (seen_ == 0) {
        min_ = batchMin;
        max_ = batchMax;
        histogram_.low = batchMin;
        histogram_.high = batchMax;
        if (batchMin == batchMax) {  // a constant batch: give the bins a width to grow from
            float halfWidth = batchMin != 0 ? std::abs(batchMin) * 0x1p-10f : 0x1p-40f;
            if (!(halfWidth > 0))  // a subnormal value's 2^-10 underflows
                halfWidth = 0x1p-40f;
            histogram_.low = batchMin - halfWidth;
            histogram_.high = batchMax + halfWidth;
        }
        histogram_.counts.assign(static_cast<std::size_t>(n), 0.0);
    } else {
        const float newMin = std::min(min_, batchMin), newMax = std::max(max_, batchMax);
        if (newMin < histogram_.low || newMax > histogram_.high) {
            // Grow the histogram so that its old bins nest in the new ones: the new width is a whole
            // number f of old widths and the new edges are old edges, so the old counts move into
            // the new bins exactly (mass-preserving, no smearing). f is the smallest that fits, so
            // the histogram spans at most about twice what the data needs; the spare room goes to
            // the side that grew (both sides if both did).
            const double low = histogram_.low, width = (double(histogram_.high) - low) / n;
            std::int64_t firstOld = 0, lastOld = n - 1;
            while (histogram_.counts[static_cast<std::size_t>(firstOld)] == 0)
                ++firstOld;
            while (histogram_.counts[static_cast<std::size_t>(lastOld)] == 0)
                --lastOld;
            const double pMin = std::floor((double(newMin) - low) / width);
            const double pMax = std::floor((double(newMax) - low) / width);
            std::vector<double> counts(static_cast<std::size_t>(n), 0.0);
            double newLow = 0, newWidth = 0;
            if (std::max(std::abs(pMin), std::abs(pMax)) < 0x1p50) {
                const std::int64_t a = std::min(static_cast<std::int64_t>(pMin), firstOld);
                const std::int64_t b = std::max(static_cast<std::int64_t>(pMax), lastOld);
                const std::int64_t f = (b - a + 1 + n - 1) / n;  // ceil((b - a + 1) / n)
                const std::int64_t slack = std::int64_t(n) * f - (b - a + 1);
                const bool grewDown = batchMin < min_, grewUp = batchMax > max_;
                const std::int64_t below = grewDown && grewUp ? slack / 2 : grewDown ? slack : 0;
                const std::int64_t origin = a - below;  // in old bins
                for (std::int64_t j = firstOld; j <= lastOld; ++j)
                    counts[static_cast<std::size_t>((j - origin) / f)] += histogram_.counts[static_cast<std::size_t>(j)];
                newLow = low + double(origin) * width;
                newWidth = double(f) * width;
            } else {
                // The old histogram is a speck (a constant first batch) next to the new data: its
                // bins go by their centres, which cannot move mass by more than a new bin.
                newLow = newMin;
                newWidth = (double(newMax) - newMin) / n;
                for (std::int64_t j = firstOld; j <= lastOld; ++j) {
                    const double centre = low + (double(j) + 0.5) * width;
                    const auto k = std::clamp<std::int64_t>(static_cast<std::int64_t>((centre - newLow) / newWidth), 0, n - 1);
                    counts[static_cast<std::size_t>(k)] += histogram_.counts[static_cast<std::size_t>(j)];
                }
            }
            histogram_.counts = std::move(counts);
            // The edges are stored as float; never let rounding put an observed value outside.
            histogram_.low = std::min(static_cast<float>(newLow), newMin);
            histogram_.high = std::max(static_cast<float>(newLow + n * newWidth), newMax);
        }
        min_ = newMin;
        max_ = newMax;
    }
    addToHistogram(values, count);
    batchExtrema_.emplace_back(batchMin, batchMax);
    seen_ += count;
    zeros_ += zeros;
}

std::pair<float, float> RangeObserver::range(const CalibrationSpec& calibration, const TensorQuantSpec& spec) const
{
    const std::string methodName(calibrationMethodName(calibration.method));
    if (seen_ == 0)
        throw Error("no activations observed: run calibration before asking for a " + methodName + " range");
    // Every method returns a range containing 0 (the uniform grids need 0 exactly representable).
    auto withZero = [](double lo, double hi) {
        return std::pair<float, float>(static_cast<float>(std::min(lo, 0.0)), static_cast<float>(std::max(hi, 0.0)));
    };
    const double maxAbs = std::max(std::abs(double(min_)), std::abs(double(max_)));
    switch (calibration.method) {
    case CalibrationMethod::MinMax:
        return withZero(min_, max_);

    case CalibrationMethod::MovingAverage: {
        const double c = calibration.movingAverageConstant;
        if (!(c > 0 && c <= 1))
            throw Error("moving_average_constant " + toString(c) + " is outside (0, 1]");
        // PyTorch's MovingAverageMinMaxObserver: the first batch initialises, then
        // avg += c * (batch - avg), in float32 like its min_val/max_val buffers.
        const float cf = static_cast<float>(c);
        float averageMin = batchExtrema_.front().first, averageMax = batchExtrema_.front().second;
        for (std::size_t i = 1; i < batchExtrema_.size(); ++i) {
            averageMin = averageMin + cf * (batchExtrema_[i].first - averageMin);
            averageMax = averageMax + cf * (batchExtrema_[i].second - averageMax);
        }
        return withZero(averageMin, averageMax);
    }

    case CalibrationMethod::Percentile: {
        const double p = calibration.percentile;
        if (!(p > 0 && p <= 100))
            throw Error("percentile " + toString(p) + " is outside (0, 100]");
        if (maxAbs == 0)
            return {0.f, 0.f};
        const std::vector<Bin> bins = occupiedBins(histogram_, min_, max_, double(zeros_));
        const double total = double(seen_);
        const double upper = std::clamp(histogramQuantile(bins, total, p / 100), double(min_), double(max_));
        if (min_ >= 0)
            return withZero(min_, upper);
        // Signed data: the same fraction is clipped at both ends.
        const double lower = std::clamp(histogramQuantile(bins, total, 1 - p / 100), double(min_), double(max_));
        return withZero(std::min(lower, upper), std::max(lower, upper));
    }

    case CalibrationMethod::Mse: {
        const GridModel model = gridModel(spec);
        if (maxAbs == 0)
            return {0.f, 0.f};
        const std::vector<Bin> bins = occupiedBins(histogram_, min_, max_, double(zeros_));
        // Candidates shrink [min, max] (with 0 included) towards 0 by a common factor: [0, t] for
        // non-negative data; for symmetric grids this is [-t, t] with t = max |x| times the factor.
        const double lo = std::min(double(min_), 0.0), hi = std::max(double(max_), 0.0);
        double bestError = std::numeric_limits<double>::infinity(), bestFactor = 1;
        for (int k = kMseCandidates; k >= 1; --k) {  // from the full range down: ties keep the wider
            const double factor = double(k) / kMseCandidates;
            const double error = expectedSquaredError(bins, model.grid(factor * lo, factor * hi));
            if (error < bestError) {
                bestError = error;
                bestFactor = factor;
            }
        }
        return withZero(bestFactor * lo, bestFactor * hi);
    }

    case CalibrationMethod::Entropy: {
        const bool signedData = min_ < 0;
        const int quantBins = entropyQuantBins(spec, signedData);
        if (maxAbs == 0)
            return {0.f, 0.f};
        const std::vector<double> absHist = absoluteHistogram(occupiedBins(histogram_, min_, max_, double(zeros_)), maxAbs);
        const double threshold = entropyBinsKept(absHist, quantBins) * (maxAbs / kEntropyBins);
        return withZero(signedData ? -threshold : 0.0, max_ > 0 ? threshold : 0.0);
    }
    }
    throw Error("unknown calibration method " + std::to_string(static_cast<int>(calibration.method)));
}

}  // namespace qe
