#pragma once
// Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization Through Weight
// Equalization and Bias Correction", section 4.1). Two weighted layers in a row, with only
// operators f that satisfy f(x / s) = f(x) / s for s > 0 between them (ReLU, a Clip that is a
// ReLU, Identity, MaxPool), compute the same function when output channel i of the first is
// divided by s_i and input channel i of the second multiplied by s_i. Choosing
// s_i = sqrt(r1_i * r2_i) / r2_i (r1_i: the range of the first layer's output channel i, r2_i: of
// the second's input channel i) makes both ranges sqrt(r1_i * r2_i), so that a per-tensor
// quantizer no longer wastes its levels on the channels with small ranges.
//
// A Clip with an upper bound (ReLU6) is not positively homogeneous: clip(x / s, 0, 6) differs
// from clip(x, 0, 6) / s, and ONNX's Clip takes one bound per tensor, so the bound cannot be
// rescaled per channel. Such pairs are skipped, with the reason in the result, unless the caller
// allows making the ReLU6 a ReLU (`relu6AsRelu`), as the paper and AIMET do for MobileNets: that
// changes the float model (activations above 6 are no longer cut), and the pair says so.

#include "model/graph.h"
#include "quant/layers.h"

#include <cstddef>
#include <string>
#include <vector>

namespace qe {

struct EqualizationPair {
    std::size_t first = 0, second = 0;  // indices into the layers
    std::string between;                // the operators between them, "Relu", "Relu, MaxPool", "" (none)
    bool clipBecomesRelu = false;       // the first layer's fused Clip(0, c) must become a Relu
    bool zeroesNegatives = false;       // the activation between them is a ReLU (a dead channel outputs 0)
};

struct SkippedRepair {
    std::string layers;  // "conv1 -> conv2" or one layer's name
    std::string reason;
    bool operator==(const SkippedRepair&) const = default;
};

// The pairs of `layers` that can be equalized exactly, each with both layers in `enabled`
// (parallel to layers), or with a Clip(0, c) after the first layer when relu6AsRelu[first]; the
// pairs that could not, with the reason, go to `skipped`.
std::vector<EqualizationPair> findEqualizationPairs(const Graph& graph, const std::vector<QuantLayer>& layers,
                                                    const std::vector<bool>& enabled, const std::vector<bool>& relu6AsRelu,
                                                    std::vector<SkippedRepair>& skipped);
// Makes the fused Clip of each pair that needs it a Relu (same node name and tensors).
void makeClipsRelu(Graph& graph, const std::vector<QuantLayer>& layers, const std::vector<EqualizationPair>& pairs);

struct EqualizedPair {
    std::string first, second, between;
    bool clipBecameRelu = false;  // the ReLU6 between them was made a ReLU (the float model changed)
    // max |w| per channel: the first layer's output channels and the second's input channels.
    std::vector<float> firstRangesBefore, secondRangesBefore, firstRangesAfter, secondRangesAfter;
    // s_i, the product over all sweeps: the first layer's channel i was divided by it. 0 marks a
    // dead channel (no weights, and an activation that makes its bias 0): the second layer's
    // weights on it were cleared, since they only ever multiply zeros.
    std::vector<float> scales;
    // High-bias absorption: c_i taken out of the first layer's bias and added, through the
    // second layer's weights, to its bias (empty when not absorbed).
    std::vector<float> absorbed;
    std::string absorptionStatistics;  // where the mean and deviation came from, or why none was absorbed
    bool operator==(const EqualizedPair&) const = default;
};

struct Equalization {
    std::vector<EqualizedPair> pairs;  // parallel to the pairs given
    int sweeps = 0;
};

// Equalizes the pairs in place, sweeping over all of them until no scale moves by more than
// `tolerance` (relative) or `maxSweeps` are done (a MobileNetV1 chain of 26 pairs takes about 430
// sweeps): in a chain, the second layer of one pair is the
// first of the next, so equalizing one pair changes the ranges of its neighbours. The graph's
// foldedNormalization statistics of a first layer are rescaled with its channels.
Equalization equalizePairs(Graph& graph, const std::vector<QuantLayer>& layers, const std::vector<EqualizationPair>& pairs,
                           int maxSweeps = 1000, float tolerance = 1e-4f);

// High-bias absorption (section 4.1.1): where the first layer's pre-activation channel i is
// mostly above c_i = max(0, mean_i - 3 * stddev_i), ReLU(x) - c_i = ReLU(x - c_i), so c_i can leave
// the first layer's bias and enter the second's as W2[:, i] * c_i: the activation's range
// shrinks by c_i. `mean` and `stddev` are of the first layer's output before its activation.
// Returns c (all zero when nothing was absorbed). The second layer must not pad its input (a
// padded border would not carry c_i); the caller checks with absorbsExactlyThrough.
std::vector<float> absorbHighBias(Graph& graph, const QuantLayer& first, const QuantLayer& second,
                                  const std::vector<float>& mean, const std::vector<float>& stddev);
// Why the pair cannot absorb bias ("" when it can): the second layer pads, or the activation between
// is not a ReLU.
std::string absorptionObstacle(const Graph& graph, const QuantLayer& first, const QuantLayer& second);

// The layer's bias as a per-output-channel initializer only this layer reads: created (zeros)
// when it has none, copied when shared or broadcast. Returns its name; qe::Error when the
// operator has no bias input (MatMul).
std::string ownBias(Graph& graph, const QuantLayer& layer, std::int64_t channels);

}  // namespace qe
