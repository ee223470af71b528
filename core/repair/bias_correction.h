#pragma once
// Bias correction (Nagel et al. 2019, section 4.2). Quantizing a layer's weights W to W_q moves
// the mean of its output channel o by E[(W_q - W) x]_o, which nothing downstream undoes; it adds
// up through the network. Subtracting that shift from the layer's bias removes it.
// - Empirical: the shift is measured, by running the layer with W and with W_q on its inputs over
//   the calibration images and averaging the difference per output channel (exact, borders of
//   padded convolutions included). The inputs are those of the float model, as in the paper's
//   formula E[W_q x] - E[W x] = (W_q - W) E[x]; no quantization of earlier layers is fed forward.
// - Analytical: (W_q - W) E[x] with E[x] from the statistics of the layer that produces x (its
//   folded BatchNormalization: x = act(y), y ~ N(beta, gamma^2), E[x] the clipped normal mean),
//   for when no images are given.

#include "model/graph.h"
#include "quant/config.h"
#include "quant/layers.h"
#include "repair/channel_statistics.h"

#include <map>
#include <string>
#include <vector>

namespace qe {

// The shift E[layer with W_q] - E[layer with W] per output channel of each layer, measured on the
// calibration images; `quantizedWeights` by layer name.
std::map<std::string, std::vector<double>> measureQuantizationShift(const Graph& graph, const std::vector<QuantLayer>& layers,
                                                                    const std::map<std::string, Tensor>& quantizedWeights,
                                                                    const RepairImages& images, const RepairProgress& progress);

// (W_q - W) E[x] per output channel, E[x] given per input channel.
std::vector<double> analyticalQuantizationShift(const Graph& graph, const QuantLayer& layer, const Tensor& quantizedWeights,
                                                const std::vector<double>& expectedInput);

// The expected value of each channel of `producer`'s output (after its fused activation), when
// its pre-activation has the given statistics: the activation's bounds are read by running it.
std::vector<double> expectedActivation(const Graph& graph, const QuantLayer& producer, const ChannelStatistics& preActivation);

// b -= shift, on a bias only this layer reads (created when the layer has none).
void subtractFromBias(Graph& graph, const QuantLayer& layer, const std::vector<double>& shift);

}  // namespace qe
