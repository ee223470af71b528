#pragma once
// Sensitivity: how much each layer's quantization costs the model on its own. For every
// quantizable layer, the model's top-1 and output SQNR when only that layer is quantized, at each
// candidate width (in the layer's scheme from the base configuration), and when every layer but
// that one is quantized as the base says. The mixed-precision search starts from these numbers,
// and the window draws them as a heat map.
//
// Every measurement is a Study::evaluate of a configuration that differs from the previous one in
// one or two layers, so the study's evaluator reuses its float activations and resumes at the
// first changed layer: a sweep costs about one forward pass of the layers after each layer per
// setting, not a full pass.

#include "quant/config.h"

#include <functional>
#include <string>
#include <vector>

namespace qe {

class Study;
struct EvaluationProgress;

// One layer's precision: weight and activation bits (0: what the configuration already has), or
// the whole layer kept in float.
struct PrecisionChoice {
    int weightBits = 0;
    int activationBits = 0;
    bool keepFloat = false;
    bool operator==(const PrecisionChoice&) const = default;
};

struct SensitivityOptions {
    std::vector<int> weightBits{2, 3, 4, 6, 8};
    std::vector<int> activationBits{4, 6, 8};
    std::vector<std::string> layers;  // the layers to measure; empty: every quantizable layer
    bool allButThis = true;  // also measure each layer left in float with the others as the base says
};

struct SensitivityPoint {
    int weightBits = 0;  // 0 for a layer without weights (only its activation is quantized)
    int activationBits = 0;
    double top1 = 0;
    double outputSqnrDb = 0;  // +inf when the output is exact
    // This layer's own cost at this setting: the bytes its weights take and its bit operations
    // (multiply-accumulates per image x weight bits x activation bits).
    double layerBytes = 0;
    double layerBitOperations = 0;
};

struct LayerSensitivity {
    std::string layer;
    std::vector<SensitivityPoint> onlyThis;  // weight bits outer, activation bits inner, as the options list them
    double allButThisTop1 = 0;  // every other layer as in the base configuration, this one in float (NaN when not measured)
};

struct SensitivityResult {
    double floatTop1 = 0;  // nothing quantized
    double baseTop1 = 0;   // the base configuration
    std::vector<LayerSensitivity> layers;  // in the model's layer order
    bool complete = true;  // false when cancelled: `layers` holds the layers that finished
};

// Measures every requested layer on the study's evaluation images. Throws qe::Error naming an
// unknown layer or a width the layer's scheme does not allow, before anything is measured.
// `onLayer` is called as each layer finishes (the window fills its heat map live). When cancelled
// it returns what it has with complete = false (it does not throw Cancelled).
SensitivityResult measureSensitivity(Study& study, const QuantConfig& base, const SensitivityOptions& options,
                                     const EvaluationProgress& progress,
                                     const std::function<void(const LayerSensitivity&)>& onLayer = {});

// `config` with one layer set to `choice`: kept in float, or quantized with the given widths
// (0: the width it has) in the scheme it has. What a heat-map click applies; the sensitivity and
// the search build every configuration they measure with it. Throws qe::Error naming the layer
// and the width when the layer's scheme does not allow that width.
QuantConfig withLayerPrecision(QuantConfig config, const std::string& layer, const PrecisionChoice& choice);

// "w4a8", "w4" (a layer without weights' activation: "a8"), "float": how reports and charts name a choice.
std::string describePrecision(const PrecisionChoice& choice);

}  // namespace qe
