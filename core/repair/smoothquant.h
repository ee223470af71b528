#pragma once
// SmoothQuant (Xiao et al. 2023, "SmoothQuant: Accurate and Efficient Post-Training Quantization
// for Large Language Models", section 4). A transformer's activations have outliers in a few
// channels, many times the others, so a per-tensor activation step is set by them and the other
// channels keep a few levels; the weights have no such outliers. For a matrix product X.W,
// (X diag(s)^-1) (diag(s) W) is the same product, so dividing input channel j of X by s_j and
// multiplying row j of W by s_j moves quantization difficulty from the activations into the
// weights. The paper's choice, s_j = max|X_j|^alpha / max|W_j|^(1 - alpha), with alpha = 0.5
// evens the two ranges out; a larger alpha moves more into the weights.
//
// The division must fold into something before the product, exactly: here the LayerNormalization
// whose output the products read (its scale and bias divided by s, as the paper does with each
// block's LayerNorms). A LayerNormalization is smoothed when every node reading its output is a
// weighted MatMul or Gemm layer whose weights no other node reads, all with SmoothQuant on and
// the same alpha; otherwise it is skipped with the reason. max|X_j| is measured on the
// calibration images.

#include "model/graph.h"
#include "quant/config.h"
#include "quant/layers.h"
#include "repair/channel_statistics.h"
#include "repair/equalization.h"

#include <string>
#include <vector>

namespace qe {

struct SmoothedGroup {
    std::string layerNorm;               // the LayerNormalization layer whose output was divided by s
    std::vector<std::string> consumers;  // the MatMul/Gemm layers whose weight rows were multiplied by s
    float alpha = 0.5f;
    // Per input channel j, before smoothing: max |x_j| over the calibration images, max |w_j|
    // over the consumers' weights; and s_j. After smoothing they are activationMax / s and
    // weightMax * s.
    std::vector<float> activationMax, weightMax, scales;
    std::size_t images = 0;
    bool operator==(const SmoothedGroup&) const = default;
};

// Smooths `graph` in place where `config` asks (RepairSpec::smoothQuant on the LayerNorm or a
// layer reading it; every reader must have it on):
// new scale and bias initializers for each smoothed LayerNormalization (the originals may be
// shared with other nodes), its consumers' weights rescaled in place. What could not be smoothed
// goes to `skipped`. Needs calibration images; without them every group is skipped.
std::vector<SmoothedGroup> smoothQuant(Graph& graph, const std::vector<QuantLayer>& layers, const QuantConfig& config,
                                       const RepairImages& images, const RepairProgress& progress,
                                       std::vector<SkippedRepair>& skipped);

// max_j over a group's channels divided by their median: how far the outlier channels stand out
// (1 when every channel has the same range).
float outlierRatio(const std::vector<float>& channelMax);

}  // namespace qe
