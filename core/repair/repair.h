#pragma once
// The repairs of a float model before it is quantized, as its configuration asks ("repairs",
// quant/config.h): SmoothQuant (smoothquant.h), then cross-layer equalization with high-bias absorption (equalization.h), then bias
// correction (bias_correction.h), then AdaRound (adaround.h), layer by layer in graph order, each
// layer learning on the outputs of the layers before it as quantized (AdaRound's weights where it
// ran, activations as the configuration says) against the float reference's outputs. Each step
// takes the graph the previous one produced.
//
// The result is two graphs: `graph`, the repaired model that is calibrated, quantized, run by the
// int8 engine and exported; and `reference`, the same model before bias correction and AdaRound,
// whose float activations equal the original's up to the equalization's per-channel scales (and
// the absorbed bias), so that a layer's quantization error is measured against what that layer
// should output.
//
// AdaRound's result is pinned in two halves, and both are needed for exactness: `graph` holds
// its weights already fake-quantized, s * (code - z), and `pinned` holds the scale and zero-point
// they were rounded with. Quantizing s * (code - z) again with that same scale gives back `code`
// exactly (the error of (s * (code - z)) * (1/s) is a few ulps, far from the 0.5 that would change
// the rounding), so the simulation, the int8 engine and the QDQ export all see AdaRound's codes.
// Without the pinned scale a scale fitted to the rounded weights (their range moved by up to one
// step) would round them to other codes.

#include "model/graph.h"
#include "quant/config.h"
#include "quant/layers.h"
#include "quant/simulator.h"
#include "repair/channel_statistics.h"
#include "repair/equalization.h"
#include "repair/smoothquant.h"

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
    std::vector<SmoothedGroup> smoothed;
    std::vector<EqualizedPair> equalized;
    int equalizationSweeps = 0;
    std::vector<BiasCorrectionReport> biasCorrected;
    std::vector<AdaRoundReport> adaRounded;
    std::vector<SkippedRepair> skipped;  // pairs or layers a requested repair could not touch, and why
    bool operator==(const RepairReport&) const = default;
};

// The report in a few lines of Markdown list items (what ran on which layers, with the key
// numbers): report.md's "Repairs" section.
std::vector<std::string> describeRepairs(const RepairReport& report);

// What the repairs did to one layer: pointers into a report (null where a repair did not touch it).
struct LayerRepairs {
    const EqualizedPair* equalizedAsFirst = nullptr;   // its output channels were rescaled
    const EqualizedPair* equalizedAsSecond = nullptr;  // its input channels were rescaled
    const BiasCorrectionReport* biasCorrection = nullptr;
    const AdaRoundReport* adaRound = nullptr;
    const SmoothedGroup* smoothedLayerNorm = nullptr;  // it is the LayerNorm whose output was divided by s
    const SmoothedGroup* smoothedWeights = nullptr;    // its weight rows were multiplied by s
    std::vector<const SkippedRepair*> skipped;  // requested on it (or a pair with it) and not done
    bool any() const
    {
        return equalizedAsFirst || equalizedAsSecond || biasCorrection || adaRound || smoothedLayerNorm || smoothedWeights ||
               !skipped.empty();
    }
};
LayerRepairs layerRepairs(const RepairReport& report, const std::string& layer);
// The same as sentences with the numbers ("Equalized with conv2 ...", "AdaRound: 3.1% of the
// weights rounded the other way ...", "Not repaired: ..."), for the window's table and details.
std::vector<std::string> describeLayerRepairs(const LayerRepairs& repairs);

struct RepairedModel {
    std::shared_ptr<const Graph> graph, reference;
    RepairReport report;
    FixedParams pinned;  // the weight parameters of AdaRound's layers (see above), for the evaluator
};

// Everything repair()'s result depends on besides the model and the images: each layer's repair
// settings, the weight quantization of the layers whose bias is corrected or that AdaRound rounds
// (it pins their parameters), and the whole quantization of every layer before the last one
// AdaRound rounds (it learns on their quantized outputs). Two configurations with equal
// keys give the same repaired model; a change to a layer after the last AdaRounded one keeps it.
struct RepairKey {
    std::vector<RepairSpec> layers;                           // parallel to the layers
    std::vector<std::optional<TensorQuantSpec>> correctedWeights;  // parallel; set where the bias is corrected
    std::vector<std::optional<TensorQuantSpec>> adaRoundedWeights;  // parallel; set where AdaRound rounds
    // Parallel; set for the layers before the last AdaRounded one (its inputs' quantization).
    std::vector<std::optional<LayerQuantConfig>> quantizedBeforeAdaRound;
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
