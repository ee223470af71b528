#pragma once
// Per-channel statistics of activations, from calibration images or from a folded
// BatchNormalization, for the repairs that need E[x] (bias correction, high-bias absorption).

#include "data/dataset.h"
#include "engine/executor.h"
#include "model/graph.h"

#include <atomic>
#include <cstddef>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace qe {

// The calibration images the data-driven repairs run on (none: only the data-free ones run):
// `images` of them from `first` on.
struct RepairImages {
    const Dataset* dataset = nullptr;
    const Preprocess* preprocess = nullptr;
    std::size_t images = 0;
    std::size_t first = 0;
    bool available() const { return dataset && preprocess && images > 0; }
};

struct RepairProgress {
    std::function<void(const std::string& stage, std::size_t done, std::size_t total)> report;
    const std::atomic<bool>* cancel = nullptr;
};

// Runs `graph` on the calibration images batch by batch and hands each batch and the run's
// captured tensors (`capture`) to `visit`. Throws Cancelled when cancelled.
void forEachCalibrationBatch(const Graph& graph, const std::set<std::string>& capture, const RepairImages& images,
                             const RepairProgress& progress, const std::string& stage,
                             const std::function<void(const Tensor& batch, const TensorMap& captured)>& visit);

// The channel axis of an activation read or written by a Conv (1, NCHW) or a Gemm/MatMul (the last).
int activationChannelAxis(const Tensor& activation, bool convolution);

// Adds each channel's sum and sum of squares of `values` (channels on `axis`) to the running totals.
void accumulateChannelMoments(const Tensor& values, int axis, std::vector<double>& sum, std::vector<double>& sumSquares,
                              std::size_t& countPerChannel);

// Mean and standard deviation per channel of each tensor over the calibration images.
std::map<std::string, ChannelStatistics> measureChannelStatistics(const Graph& graph, const std::map<std::string, bool>& tensors,
                                                                  const RepairImages& images, const RepairProgress& progress);

// E[clamp(y, lo, hi)] for y ~ N(mean, stddev^2): the mean a ReLU (lo 0, hi +inf) or ReLU6 (0, 6)
// leaves of a normally distributed pre-activation (the paper's appendix, generalised to two
// bounds): lo * P(y < lo) + hi * P(y > hi) + mean * P(lo <= y <= hi) + stddev * (phi(a) - phi(b)),
// with a, b the standardized bounds.
double clippedNormalMean(double mean, double stddev, double lo, double hi);

}  // namespace qe
