#pragma once
// The selected layer's quantization explained: its parameters with the formula that produced
// them, filled in with the layer's own numbers (range, scale, zero-point, levels, clipped
// fraction), so a teacher can point at why a layer loses accuracy. Pure formatting of snapshot
// values: the numbers are the core's, only laid out here.

#include "session.h"

#include <QString>

namespace qe {

QString layerDetailsHtml(const SessionSnapshot& session, const EvaluationSnapshot& evaluation, std::size_t layer);

// How one tensor's parameters were derived, for block `block` (a channel or group);
// `rangeSearched`: min and max are the least-squared-error search's clip (searchesWeightRange),
// not the values' extremes.
QString quantFormulaHtml(const QuantParams& params, std::size_t block, bool rangeSearched = false);

}  // namespace qe
