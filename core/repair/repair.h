#pragma once
// The repairs of a float model before it is quantized, as its configuration asks ("repairs",
// quant/config.h): cross-layer equalization with high-bias absorption (equalization.h), then bias
// correction (bias_correction.h). Each step takes the graph the previous one produced; a later
// step (AdaRound, which pins weight values and scales: quant/simulator.h's FixedParams) is one
// more step at the end of repair().
//
// The result is two graphs: `graph`, the repaired model that is calibrated, quantized, run by the
// int8 engine and exported; and `reference`, the same model before bias correction, whose float
// activations equal the original's up to the equalization's per-channel scales (and the absorbed
// bias), so that a layer's quantization error is measured against what that layer should output.

#include "model/graph.h"
#include "quant/config.h"
#include "quant/layers.h"
#include "repair/channel_statistics.h"
#include "repair/equalization.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qe {

struct BiasCorrectionReport {
    std::string layer;
    BiasCorrection mode = BiasCorrection::None;
    std::string statistics;    // where E[x] came from: "calibration images (N)", "batch normalization of 'conv1'"
    std::vector<float> shift;  // per output channel, subtracted from the bias
    bool operator==(const BiasCorrectionReport&) const = default;
};

struct AdaRoundReport {
    std::string layer;
    int iterations = 0;
    std::size_t images = 0;
    double flippedFraction = 0;             // weights whose code differs from nearest rounding's
    std::vector<float> flippedPerChannel;   // the same per output channel
    // The layer's output reconstruction error (adaround.h's AdaRoundStatistics) on its images.
    double nearestError = 0, adaRoundError = 0;
    bool operator==(const AdaRoundReport&) const = default;
};

// What the repairs did, layer by layer, in numbers a reader can check.
struct RepairReport {
    std::vector<EqualizedPair> equalized;
    int equalizationSweeps = 0;
    std::vector<BiasCorrectionReport> biasCorrected;
    std::vector<AdaRoundReport> adaRounded;
    std::vector<SkippedRepair> skipped;  // pairs or layers a requested repair could not touch, and why
    bool operator==(const RepairReport&) const = default;
};

struct RepairedModel {
    std::shared_ptr<const Graph> graph, reference;
    RepairReport report;
};

// Everything repair()'s result depends on besides the model and the images: each layer's repair
// settings, and the weight quantization of the layers whose bias is corrected. Two
// configurations with equal keys give the same repaired model.
struct RepairKey {
    std::vector<RepairSpec> layers;                           // parallel to the layers
    std::vector<std::optional<TensorQuantSpec>> correctedWeights;  // parallel; set where the bias is corrected
    std::size_t images = 0;
    bool any() const;
    bool operator==(const RepairKey&) const = default;
};
RepairKey repairKey(const QuantConfig& config, const std::vector<QuantLayer>& layers, std::size_t images);

// The repairs `config` asks for, on a copy of `graph` (whose tensors it shares where it changes
// nothing). `images` may be empty: equalization needs none, high-bias absorption and analytical
// bias correction use folded BatchNormalization statistics, and what needs data it lacks is
// skipped and said in the report. Throws Cancelled when cancelled.
RepairedModel repair(const Graph& graph, const std::vector<QuantLayer>& layers, const QuantConfig& config,
                     const RepairImages& images, const RepairProgress& progress = {});

}  // namespace qe
