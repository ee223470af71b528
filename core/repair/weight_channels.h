#pragma once
// Which output channel and which input channel each weight of a layer connects, for the repairs
// that rescale channels (equalization) or push a per-input-channel constant through a layer
// (bias correction, high-bias absorption). Conv weights are [O, I/groups, k...] with output
// channel o reading the input channels of its group; Gemm/MatMul weights are a [K, N] matrix (or
// [N, K] with transB) whose rows or columns are the input channels.

#include "model/graph.h"
#include "quant/layers.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace qe {

struct WeightChannels {
    enum class Kind { Convolution, Dense };
    Kind kind = Kind::Convolution;
    std::int64_t outputs = 0, inputs = 0;  // channels
    std::int64_t groups = 1;               // Conv's groups (a depthwise Conv has one per channel)
    std::int64_t kernelSize = 1;           // Conv's weights per (output, input) pair
    int outputAxis = 0;                    // Dense: the axis of the output channels (0 or 1)

    // Calls fn(output channel, input channel, flat index) for every weight.
    void forEach(const std::function<void(std::int64_t, std::int64_t, std::int64_t)>& fn) const;
};

// The channel layout of a weighted layer's weights; qe::Error naming the layer when the layer's
// operator or weight shape is not one the repairs handle (a MatMul with a 3-D weight).
WeightChannels weightChannels(const Graph& graph, const QuantLayer& layer);

// max |w| over the weights of each output channel, and over those reading each input channel.
std::vector<float> outputChannelRanges(const Tensor& weights, const WeightChannels& layout);
std::vector<float> inputChannelRanges(const Tensor& weights, const WeightChannels& layout);

// Multiplies each output channel's (or each input channel's) weights by factors[channel].
void scaleOutputChannels(Tensor& weights, const WeightChannels& layout, const std::vector<float>& factors);
void scaleInputChannels(Tensor& weights, const WeightChannels& layout, const std::vector<float>& factors);

// Per output channel o: sum over its weights w[o, i, ...] * value[i], i.e. what the layer adds to
// output o when every position of input channel i holds value[i] (borders with zero padding
// aside).
std::vector<double> responseToConstantInput(const Tensor& weights, const WeightChannels& layout,
                                            const std::vector<double>& value);

}  // namespace qe
