#include "repair/weight_channels.h"

#include "common/error.h"

#include <algorithm>
#include <cmath>

namespace qe {

void WeightChannels::forEach(const std::function<void(std::int64_t, std::int64_t, std::int64_t)>& fn) const
{
    if (kind == Kind::Convolution) {
        const std::int64_t inputsPerGroup = inputs / groups, outputsPerGroup = outputs / groups;
        for (std::int64_t o = 0; o < outputs; ++o) {
            const std::int64_t firstInput = (o / outputsPerGroup) * inputsPerGroup;
            for (std::int64_t j = 0; j < inputsPerGroup; ++j)
                for (std::int64_t k = 0; k < kernelSize; ++k)
                    fn(o, firstInput + j, (o * inputsPerGroup + j) * kernelSize + k);
        }
        return;
    }
    const std::int64_t rows = outputAxis == 0 ? outputs : inputs, columns = outputAxis == 0 ? inputs : outputs;
    for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t c = 0; c < columns; ++c)
            outputAxis == 0 ? fn(r, c, r * columns + c) : fn(c, r, r * columns + c);
}

WeightChannels weightChannels(const Graph& graph, const QuantLayer& layer)
{
    if (layer.weight.empty())
        throw Error("layer '" + layer.name + "' has no weights");
    const Tensor& w = graph.initializers.at(layer.weight);
    const Node& node = graph.nodes.at(static_cast<std::size_t>(layer.nodeIndex));
    WeightChannels c;
    if (layer.opType == "Conv" && w.rank() >= 3) {
        c.kind = WeightChannels::Kind::Convolution;
        c.groups = node.intAttribute("group", 1);
        c.outputs = w.dim(0);
        c.inputs = w.dim(1) * c.groups;
        c.kernelSize = w.size() / std::max<std::int64_t>(1, w.dim(0) * w.dim(1));
        if (c.groups < 1 || c.outputs % c.groups != 0)
            throw Error("layer '" + layer.name + "': " + std::to_string(c.outputs) + " output channels in " +
                        std::to_string(c.groups) + " groups");
        return c;
    }
    if ((layer.opType == "Gemm" || layer.opType == "MatMul") && w.rank() == 2) {
        c.kind = WeightChannels::Kind::Dense;
        c.outputAxis = layer.weightChannelAxis;
        c.outputs = w.dim(c.outputAxis);
        c.inputs = w.dim(1 - c.outputAxis);
        return c;
    }
    throw Error("layer '" + layer.name + "' (" + layer.opType + ", weights " + w.describe() +
                "): the repairs handle Conv weights and 2-D Gemm/MatMul weights");
}

std::vector<float> outputChannelRanges(const Tensor& weights, const WeightChannels& layout)
{
    std::vector<float> range(static_cast<std::size_t>(layout.outputs), 0.f);
    const float* w = weights.data<float>();
    layout.forEach([&](std::int64_t o, std::int64_t, std::int64_t k) { range[o] = std::max(range[o], std::abs(w[k])); });
    return range;
}

std::vector<float> inputChannelRanges(const Tensor& weights, const WeightChannels& layout)
{
    std::vector<float> range(static_cast<std::size_t>(layout.inputs), 0.f);
    const float* w = weights.data<float>();
    layout.forEach([&](std::int64_t, std::int64_t i, std::int64_t k) { range[i] = std::max(range[i], std::abs(w[k])); });
    return range;
}

void scaleOutputChannels(Tensor& weights, const WeightChannels& layout, const std::vector<float>& factors)
{
    float* w = weights.mutableData<float>();
    layout.forEach([&](std::int64_t o, std::int64_t, std::int64_t k) { w[k] *= factors[o]; });
}

void scaleInputChannels(Tensor& weights, const WeightChannels& layout, const std::vector<float>& factors)
{
    float* w = weights.mutableData<float>();
    layout.forEach([&](std::int64_t, std::int64_t i, std::int64_t k) { w[k] *= factors[i]; });
}

std::vector<double> responseToConstantInput(const Tensor& weights, const WeightChannels& layout,
                                            const std::vector<double>& value)
{
    std::vector<double> response(static_cast<std::size_t>(layout.outputs), 0.0);
    const float* w = weights.data<float>();
    layout.forEach([&](std::int64_t o, std::int64_t i, std::int64_t k) { response[o] += double(w[k]) * value[i]; });
    return response;
}

}  // namespace qe
