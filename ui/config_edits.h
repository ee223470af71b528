#pragma once
// The edits a user makes to a configuration from the layer table, as pure functions on
// QuantConfig values: the table, the undo stack and the tests all go through them, so there is
// one place that knows how "set conv2's weight bits to 4" changes the document.

#include "quant/config.h"

#include <string>
#include <variant>
#include <vector>

namespace qe {

enum class LayerField {
    WeightScheme, WeightBits, WeightGranularity,
    WeightRange,   // each block's extremes or the clipping with the least squared error
    ActivationScheme, ActivationBits,
    Calibration,   // a static range, calibrated by this method (a dynamic layer becomes static)
    DynamicRange,  // a range taken at run time, per tensor or per token (the value is the granularity)
    KeepFloat,
    // The layer's repairs (quant/config.h "repairs"): overrides of the configuration's switches.
    Equalization, BiasCorrection, AdaRound
};

using LayerFieldValue = std::variant<Scheme, int, Granularity, CalibrationMethod, bool, BiasCorrection, qe::WeightRange>;

// `config` with `field` set to `value` on every layer in `layers`. A scheme change drops a bit
// width the new scheme does not allow (the layer then inherits or takes the scheme's default);
// per-group granularity without a group size takes kDefaultGroupSize. A repair set to what the
// configuration's switch already says drops the layer's override, so that the layer follows the
// switch again. Overrides that end up empty are removed. Throws qe::Error naming the layer when
// the result is not a valid configuration.
QuantConfig withLayerEdit(QuantConfig config, const std::vector<std::string>& layers, LayerField field,
                          const LayerFieldValue& value);

constexpr int kDefaultGroupSize = 32;

// "conv2 weights 4 bits", for the undo history and the status bar.
std::string describeLayerEdit(const std::vector<std::string>& layers, LayerField field, const LayerFieldValue& value);

// `config` with its repair switches (the top-level "repairs", which every layer inherits unless
// it overrides a field) set to `repairs`. Throws qe::Error naming the field when AdaRound's
// iterations or images are below 1.
QuantConfig withRepairSwitches(QuantConfig config, const RepairSpec& repairs);
// "repairs: equalization on, AdaRound 2000 iterations", naming what changed from `before`.
std::string describeRepairSwitches(const RepairSpec& before, const RepairSpec& after);

}  // namespace qe
