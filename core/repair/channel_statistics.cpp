#include "repair/channel_statistics.h"

#include "common/error.h"
#include "quant/image_batches.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

namespace qe {

namespace {
constexpr std::size_t kBatchSize = 32;
}

void forEachCalibrationBatch(const Graph& graph, const std::set<std::string>& capture, const RepairImages& images,
                             const RepairProgress& progress, const std::string& stage,
                             const std::function<void(const Tensor& batch, const TensorMap& captured)>& visit)
{
    if (!images.available())
        throw Error(stage + " needs calibration images");
    const std::size_t total = images.first < images.dataset->size()
                                  ? std::min(images.images, images.dataset->size() - images.first)
                                  : 0;
    const Executor executor(graph);
    RunOptions run;
    run.capture = capture;
    run.cancel = progress.cancel;
    auto runBatch = [&](std::size_t done, const Tensor& batch) {
        visit(batch, executor.run({{graph.inputs.at(0).name, batch}}, run));
        if (progress.report)
            progress.report(stage, done + std::size_t(batch.dim(0)), total);
    };
    forEachImageBatch(graph, *images.dataset, *images.preprocess, images.first, total, kBatchSize, progress.cancel,
                      runBatch);
}

int activationChannelAxis(const Tensor& activation, bool convolution)
{
    return convolution ? 1 : activation.rank() - 1;
}

void accumulateChannelMoments(const Tensor& values, int axis, std::vector<double>& sum, std::vector<double>& sumSquares,
                              std::size_t& countPerChannel)
{
    const std::int64_t channels = values.dim(axis);
    std::int64_t inner = 1;
    for (int d = axis + 1; d < values.rank(); ++d)
        inner *= values.dim(d);
    const std::int64_t outer = values.size() / std::max<std::int64_t>(1, channels * inner);
    sum.resize(std::size_t(channels), 0.0);
    sumSquares.resize(std::size_t(channels), 0.0);
    const float* v = values.data<float>();
    for (std::int64_t o = 0; o < outer; ++o)
        for (std::int64_t c = 0; c < channels; ++c) {
            double s = 0, s2 = 0;
            const float* run = v + (o * channels + c) * inner;
            for (std::int64_t k = 0; k < inner; ++k) {
                s += run[k];
                s2 += double(run[k]) * run[k];
            }
            sum[std::size_t(c)] += s;
            sumSquares[std::size_t(c)] += s2;
        }
    countPerChannel += std::size_t(outer * inner);
}

std::map<std::string, ChannelStatistics> measureChannelStatistics(const Graph& graph, const std::map<std::string, bool>& tensors,
                                                                  const RepairImages& images, const RepairProgress& progress)
{
    std::set<std::string> capture;
    for (const auto& [name, convolution] : tensors)
        capture.insert(name);
    struct Moments {
        std::vector<double> sum, sumSquares;
        std::size_t count = 0;
    };
    std::map<std::string, Moments> moments;
    forEachCalibrationBatch(graph, capture, images, progress, "activation statistics", [&](const Tensor&, const TensorMap& run) {
        for (const auto& [name, convolution] : tensors) {
            const Tensor& t = run.at(name);
            Moments& m = moments[name];
            accumulateChannelMoments(t, activationChannelAxis(t, convolution), m.sum, m.sumSquares, m.count);
        }
    });
    std::map<std::string, ChannelStatistics> result;
    for (const auto& [name, m] : moments) {
        ChannelStatistics& s = result[name];
        for (std::size_t c = 0; c < m.sum.size(); ++c) {
            const double mean = m.sum[c] / double(std::max<std::size_t>(1, m.count));
            const double variance = std::max(0.0, m.sumSquares[c] / double(std::max<std::size_t>(1, m.count)) - mean * mean);
            s.mean.push_back(float(mean));
            s.stddev.push_back(float(std::sqrt(variance)));
        }
    }
    return result;
}

double clippedNormalMean(double mean, double stddev, double lo, double hi)
{
    if (!(stddev > 0))
        return std::clamp(mean, lo, hi);
    const auto cdf = [](double z) { return 0.5 * std::erfc(-z / std::numbers::sqrt2); };
    const auto pdf = [](double z) { return std::exp(-0.5 * z * z) / std::sqrt(2 * std::numbers::pi); };
    const double a = (lo - mean) / stddev, b = (hi - mean) / stddev;
    const double below = std::isinf(lo) ? 0.0 : lo * cdf(a);
    const double above = std::isinf(hi) ? 0.0 : hi * (1 - cdf(b));
    const double inside = mean * (cdf(b) - cdf(a)) + stddev * (pdf(a) - pdf(b));
    return below + above + inside;
}

}  // namespace qe
