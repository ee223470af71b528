#include "quant/integer_layers.h"

#include "model/operator_traits.h"

#include "common/error.h"
#include "engine/operator.h"
#include "quant/simulator.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

namespace qe {

bool isIntegerActivationParams(const QuantParams& p)
{
    return runsInIntegers(p) && p.granularity == Granularity::PerTensor &&
           p.uniform().scale.size() == 1 && p.uniform().zeroPoint.size() == 1;
}

bool isIntegerWeightParams(const QuantParams& p)
{
    return runsInIntegers(p) && p.granularity != Granularity::PerGroup;
}

std::string integerFormObstacle(const Graph& graph, const QuantLayer& layer, const QuantParams* weights)
{
    if (layer.weight.empty())
        return "its weights are not a constant of its own";
    if (!weights)
        return "its weights stay in float";
    if (!isIntegerWeightParams(*weights))
        return "weight scheme " + std::string(schemeTraits(weights->scheme).name) + " (" + std::to_string(weights->bits) + " bits, " +
               std::string(granularityName(weights->granularity)) + ") has no integer form here";
    const Node& node = graph.nodes.at(static_cast<std::size_t>(layer.nodeIndex));
    const Tensor& w = graph.initializers.at(layer.weight);
    // The bias joins the int32 accumulator, so it must be a constant of the layer.
    const OperatorTraits& traits = operatorTraits(node.name, node.opType);
    if (traits.biasInput >= 0 && !node.input(std::size_t(traits.biasInput)).empty() && layer.bias.empty())
        return "its bias is not a constant";
    if (traits.integer == IntegerFamily::Convolution)
        return w.rank() == 4 ? "" : "only 2-D convolutions run in integers";
    if (traits.integer != IntegerFamily::MatrixProduct)
        return "no integer kernel for " + node.opType + " with weights";
    // A MatMul's input may have leading (batch, token) dimensions: the product is then one
    // [M, K] x [K, N] matrix product over its rows. Gemm takes matrices only.
    const auto input = graph.values.find(node.input(0));
    const bool gemm = node.opType == "Gemm";
    const std::size_t inputRank = input != graph.values.end() && input->second.shapeKnown ? input->second.shape.size() : 0;
    if (w.rank() != 2)
        return "only 2-D weight matrices run in integers";
    if (gemm ? inputRank != 2 : inputRank < 2)
        return gemm ? "only 2-D (matrix) inputs run in integers" : "its input's rank is unknown or below 2";
    if (gemm && (node.intAttribute("transA", 0) != 0 || node.floatAttribute("alpha", 1.f) != 1.f || node.floatAttribute("beta", 1.f) != 1.f))
        return "Gemm with transA, alpha or beta runs in float";
    const std::int64_t outputs = w.dim(gemm && node.intAttribute("transB", 0) != 0 ? 0 : 1);
    if (!layer.bias.empty() && graph.initializers.at(layer.bias).size() != outputs)
        return "its bias does not have one value per output";
    return "";
}

std::optional<int8::ChannelRequantization> weightedLayerRequantization(float inputScale, const std::vector<float>& weightScales,
                                                                       const std::vector<float>& bias, float outputScale,
                                                                       std::int64_t reductionSize, std::string* why)
{
    int8::ChannelRequantization r;
    for (std::size_t c = 0; c < weightScales.size(); ++c) {
        const double accumulatorScale = static_cast<double>(inputScale) * weightScales[c];
        const double m = accumulatorScale / outputScale;
        if (!int8::isUsableMultiplier(m)) {
            if (why)
                *why = "the rescale factor " + std::to_string(m) + " (input scale x weight scale / output scale) is out of range";
            return std::nullopt;
        }
        r.add(bias.empty() ? 0 : int8::int32Bias(bias[c], accumulatorScale, reductionSize), int8::prepareMultiplier(m));
    }
    return r;
}

std::optional<std::pair<std::int32_t, std::int32_t>> fusedCodeRange(const Graph& graph, const Node* activation, const QuantParams& output)
{
    std::pair<std::int32_t, std::int32_t> range{output.qmin, output.qmax};
    if (!activation)
        return range;
    const auto bounds = activationBounds(graph, *activation, FLT_MAX);
    if (!bounds)
        return std::nullopt;  // a computed clip bound
    const Tensor ends = Tensor::fromValues<float>({2}, std::vector<float>{bounds->first, bounds->second});
    const std::vector<std::int32_t> codes = uniformCodes(fakeQuantize(ends, output), output, 0);
    range = {std::max(range.first, codes.at(0)), std::min(range.second, codes.at(1))};
    if (range.first > range.second)
        return std::nullopt;
    return range;
}

std::optional<IntegerWeightedLayer> prepareIntegerWeightedLayer(const Graph& graph, const QuantLayer& layer,
                                                                const QuantParams& input, const QuantParams& weights,
                                                                const QuantParams& output, const IntegerWeightedLayer* sameWeights)
{
    const Tensor& w = graph.initializers.at(layer.weight);
    const int axis = layer.weightChannelAxis;  // the output channels, in every layout
    const std::int64_t channels = w.dim(axis);
    const UniformParams& uniformWeights = weights.uniform();
    const bool perChannel = uniformWeights.scale.size() > 1;

    IntegerWeightedLayer layerPlan;
    layerPlan.input = input;
    layerPlan.output = output;
    if (sameWeights) {
        layerPlan.weights = sameWeights->weights;
        layerPlan.largestWeightSum = sameWeights->largestWeightSum;
    } else {
        std::int64_t inner = 1;
        for (int d = axis + 1; d < w.rank(); ++d)
            inner *= w.dim(d);
        const std::vector<std::int32_t> codes = uniformCodes(w, weights, perChannel ? axis : 0);
        layerPlan.weights = Tensor(DataType::Float32, w.shape());
        float* wi = layerPlan.weights.mutableData<float>();
        std::vector<double> absoluteSums(static_cast<std::size_t>(channels), 0.0);
        for (std::int64_t i = 0; i < w.size(); ++i) {
            const auto c = static_cast<std::size_t>((i / inner) % channels);
            const std::int32_t v = codes[static_cast<std::size_t>(i)] - uniformWeights.zeroPoint[perChannel ? c : 0];
            wi[i] = static_cast<float>(v);
            absoluteSums[c] += std::abs(v);
        }
        layerPlan.largestWeightSum = *std::max_element(absoluteSums.begin(), absoluteSums.end());
    }
    const std::int32_t zx = input.uniform().zeroPoint[0];
    layerPlan.accumulatorBound = layerPlan.largestWeightSum * std::max(std::abs(input.qmin - zx), std::abs(input.qmax - zx));

    std::vector<float> bias, weightScales;
    if (!layer.bias.empty())
        bias = graph.initializers.at(layer.bias).toFloatVector();
    for (std::int64_t c = 0; c < channels; ++c)
        weightScales.push_back(uniformWeights.scale[perChannel ? static_cast<std::size_t>(c) : 0]);
    auto requantization = weightedLayerRequantization(input.uniform().scale[0], weightScales, bias, output.uniform().scale[0], w.size() / channels);
    if (!requantization)
        return std::nullopt;  // the engine refuses such a layer
    layerPlan.requantization = std::move(*requantization);
    const auto range = fusedCodeRange(graph, layer.outputNodeIndex != layer.nodeIndex
                                                 ? &graph.nodes.at(static_cast<std::size_t>(layer.outputNodeIndex)) : nullptr,
                                      output);
    if (!range)
        return std::nullopt;
    std::tie(layerPlan.codeMin, layerPlan.codeMax) = *range;
    return layerPlan;
}

bool IntegerWeightedLayer::sameAs(const IntegerWeightedLayer& other) const
{
    const int8::ChannelRequantization& a = requantization;
    const int8::ChannelRequantization& b = other.requantization;
    return weights.rawData() == other.weights.rawData() && input == other.input && output == other.output &&
           codeMin == other.codeMin && codeMax == other.codeMax && a.bias == b.bias && a.multiplier == b.multiplier &&
           a.rightShift == b.rightShift;
}

namespace {

// int8::requantize(accumulator + bias, ...) in its branch-free form (int8::roundedProduct),
// returned as the float value of the code, computed as fakeQuantize computes it:
// (code - zero-point) * scale.
struct Requantizer {
    float scale, zeroPoint;
    std::int64_t codeMin, codeMax, outputZeroPoint;

    float operator()(float accumulator, std::int32_t bias, std::int32_t multiplier, std::uint64_t shift, std::uint64_t half,
                     std::uint64_t mask, std::int64_t offset) const
    {
        // The accumulator is an integer, so the conversion is exact.
        const std::int64_t rounded =
            int8::roundedProduct(static_cast<std::int32_t>(accumulator), bias, multiplier, shift, half, mask, offset);
        const auto code = static_cast<std::int32_t>(std::clamp(rounded + outputZeroPoint, codeMin, codeMax));
        return (static_cast<float>(code) - zeroPoint) * scale;
    }
};

}  // namespace

std::vector<Tensor> runIntegerWeightedLayer(const IntegerWeightedLayer& layer, const Node& node, std::int64_t opset,
                                            const std::vector<const Tensor*>& inputs, const int8::QuantizedTensor* inputCodes,
                                            int8::QuantizedTensor* outputCodes)
{
    if (layer.kernels)
        return {layer.kernels->run(*inputs.at(0), inputCodes, outputCodes)};
    const Tensor& x = *inputs.at(0);
    Tensor integers(DataType::Float32, x.shape());
    const float* px = x.data<float>();
    float* pi = integers.mutableData<float>();
    const float inverseScale = 1.0f / layer.input.uniform().scale[0];
    for (std::int64_t i = 0; i < x.size(); ++i)
        pi[i] = std::nearbyint(px[i] * inverseScale);
    // No bias here: it joins the accumulator in int32 below.
    Tensor acc = runNode(node, opset, {&integers, &layer.weights}).at(0);

    // Channels are axis 1 of a Conv's [N, C, H, W], the last axis of a Gemm's or MatMul's
    // [..., M, N] (a MatMul's leading dimensions are more rows).
    const int8::ChannelRequantization& r = layer.requantization;
    const bool channelsLast = node.opType != "Conv";
    const std::int64_t channels = channelsLast ? acc.dim(acc.rank() - 1) : acc.rank() > 1 ? acc.dim(1) : 1;
    const std::int64_t outer = channelsLast ? (channels > 0 ? acc.size() / channels : 0) : acc.dim(0);
    if (static_cast<std::size_t>(channels) != r.channels())
        throw Error("node '" + node.name + "': " + std::to_string(r.channels()) + " prepared channels for output " + acc.describe());
    const std::int64_t inner = outer * channels > 0 ? acc.size() / (outer * channels) : 0;
    const float outputScale = layer.output.uniform().scale[0];
    const std::int32_t outputZeroPoint = layer.output.uniform().zeroPoint[0];
    const Requantizer requantize{outputScale, static_cast<float>(outputZeroPoint), layer.codeMin, layer.codeMax, outputZeroPoint};
    float* a = acc.mutableData<float>();
    if (inner == 1) {
        const std::int32_t* bias = r.bias.data();
        const std::int32_t* multiplier = r.multiplier.data();
        const std::uint64_t* shift = r.rightShift.data();
        const std::uint64_t* half = r.half.data();
        const std::uint64_t* mask = r.lowMask.data();
        const std::int64_t* offset = r.offset.data();
        for (std::int64_t o = 0; o < outer; ++o) {
            float* row = a + o * channels;
            for (std::int64_t c = 0; c < channels; ++c)
                row[c] = requantize(row[c], bias[c], multiplier[c], shift[c], half[c], mask[c], offset[c]);
        }
    } else {
        for (std::int64_t o = 0; o < outer; ++o)
            for (std::int64_t c = 0; c < channels; ++c) {
                float* plane = a + (o * channels + c) * inner;
                const auto k = static_cast<std::size_t>(c);
                const std::int32_t bias = r.bias[k], multiplier = r.multiplier[k];
                const std::uint64_t shift = r.rightShift[k], half = r.half[k], mask = r.lowMask[k];
                const std::int64_t offset = r.offset[k];
                for (std::int64_t i = 0; i < inner; ++i)
                    plane[i] = requantize(plane[i], bias, multiplier, shift, half, mask, offset);
            }
    }
    return {acc};
}

}  // namespace qe
