#include "eval/integer_trace.h"

#include "common/error.h"
#include "common/format.h"
#include "engine/int8/integer_engine.h"
#include "engine/int8/kernels/requantize.h"
#include "model/window.h"

#include <algorithm>
#include <cmath>

namespace qe {

namespace {

std::string describe(const std::vector<std::int64_t>& v)
{
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i)
        s += (i ? "," : "") + std::to_string(v[i]);
    return s + "]";
}

std::int64_t flatIndex(const std::vector<std::int64_t>& shape, const std::vector<std::int64_t>& position)
{
    std::int64_t index = 0;
    for (std::size_t d = 0; d < shape.size(); ++d)
        index = index * shape[d] + position[d];
    return index;
}

// A tensor's codes as a user sees them (int8 for signed tensors), widened, in NCHW order.
std::vector<std::int32_t> presentedCodeValues(const int8::QuantizedTensor& q)
{
    const Tensor codes = int8::presentedCodes(q);
    std::vector<std::int32_t> out(static_cast<std::size_t>(codes.size()));
    for (std::int64_t i = 0; i < codes.size(); ++i)
        out[static_cast<std::size_t>(i)] = q.params.isSigned ? codes.data<std::int8_t>()[i] : codes.data<std::uint8_t>()[i];
    return out;
}

std::int32_t presentedZeroPoint(const int8::ActivationParams& p) { return p.zeroPoint - (p.isSigned ? 128 : 0); }

}  // namespace

IntegerTrace traceIntegerOutput(const QuantPlan& plan, const TensorMap& feeds, const std::string& layerName,
                                const std::vector<std::int64_t>& requestedPosition)
{
    const auto layerIt = std::find_if(plan.layers.begin(), plan.layers.end(), [&](const QuantLayer& l) { return l.name == layerName; });
    if (layerIt == plan.layers.end())
        throw Error("there is no layer '" + layerName + "' to trace");
    const QuantLayer& layer = *layerIt;
    const LayerPlan& layerPlan = plan.plans[static_cast<std::size_t>(layerIt - plan.layers.begin())];
    const auto integerIt = plan.integerLayers.find(layer.nodeIndex);
    if (integerIt == plan.integerLayers.end() || !layerPlan.weightParams)
        throw Error("layer '" + layerName + "' (" + layer.opType +
                    ") does not run in integers under this configuration: only a Conv, Gemm or MatMul with integer "
                    "weights and 8-bit static input and output activations can be traced");
    const IntegerWeightedLayer& prepared = integerIt->second;
    const Node& node = plan.graph.nodes.at(static_cast<std::size_t>(layer.nodeIndex));

    IntegerTrace t;
    t.layer = layer.name;
    t.opType = layer.opType;

    // The engine's own run, keeping the layer's input and output codes.
    const IntegerEngine engine(plan);
    RunOptions options;
    options.capture = {layer.inputs.at(0), layer.output};
    const IntegerRunResult run = engine.run(feeds, options);
    const auto inputIt = run.codes.find(layer.inputs[0]);
    const auto outputIt = run.codes.find(layer.output);
    if (inputIt == run.codes.end() || outputIt == run.codes.end())
        throw Error("layer '" + layerName + "': the int8 engine did not keep its input and output codes");
    const int8::QuantizedTensor& x = inputIt->second;
    const int8::QuantizedTensor& y = outputIt->second;
    const Shape inputShape = x.logicalShape();
    const Shape outputShape = y.logicalShape();
    t.outputShape = outputShape;
    t.position = requestedPosition.empty() ? std::vector<std::int64_t>(outputShape.size(), 0) : requestedPosition;
    const std::vector<std::int64_t>& position = t.position;
    bool inside = position.size() == outputShape.size() && !position.empty() && position[0] == 0;
    for (std::size_t d = 0; inside && d < position.size(); ++d)
        inside = position[d] >= 0 && position[d] < outputShape[d];
    if (!inside)
        throw Error("layer '" + layerName + "': position " + describe(position) + " is not in its output, of shape " +
                    describe(outputShape) + " (batch index 0)");

    const std::vector<std::int32_t> inputCodes = presentedCodeValues(x);
    t.inputScale = x.params.scale;
    t.inputZeroPoint = presentedZeroPoint(x.params);
    t.inputSigned = x.params.isSigned;
    t.outputScale = y.params.scale;
    t.outputSigned = y.params.isSigned;

    const UniformParams& wp = layerPlan.weightParams->uniform();
    const Tensor& weights = prepared.weights;  // w_code - zw, in the model's layout
    const float* w = weights.data<float>();
    auto weightZeroPoint = [&](std::int64_t c) { return wp.zeroPoint[wp.zeroPoint.size() > 1 ? static_cast<std::size_t>(c) : 0]; };
    t.weightSigned = layerPlan.weightParams->qmin < 0;

    auto addTerm = [&](std::vector<std::int64_t> at, bool padding, std::int64_t inputIndex, std::int32_t weightInt) {
        IntegerTraceTerm term;
        term.input = std::move(at);
        term.padding = padding;
        term.inputCode = padding ? t.inputZeroPoint : inputCodes[static_cast<std::size_t>(inputIndex)];
        term.weightCode = weightInt + t.weightZeroPoint;
        term.product = static_cast<std::int64_t>(term.inputCode - t.inputZeroPoint) * weightInt;
        t.accumulator += term.product;
        t.terms.push_back(std::move(term));
    };

    if (layer.opType == "Conv") {
        if (outputShape.size() != 4 || inputShape.size() != 4)
            throw Error("layer '" + layerName + "': only 2-D convolutions can be traced");
        const std::int64_t oc = position[1], oy = position[2], ox = position[3];
        const std::int64_t outChannels = weights.dim(0), groupChannels = weights.dim(1);
        const std::int64_t groups = node.intAttribute("group", 1);
        const Window2D window = makeWindow(node, 2, inputShape[2], inputShape[3], weights.dim(2), weights.dim(3), false);
        t.channel = oc;
        t.weightZeroPoint = weightZeroPoint(oc);
        const std::int64_t group = oc / (outChannels / groups);
        for (std::int64_t icg = 0; icg < groupChannels; ++icg)
            for (std::int64_t ky = 0; ky < window.kernelH; ++ky)
                for (std::int64_t kx = 0; kx < window.kernelW; ++kx) {
                    const std::int64_t ic = group * groupChannels + icg;
                    const std::int64_t iy = oy * window.strideH - window.padTop + ky * window.dilationH;
                    const std::int64_t ix = ox * window.strideW - window.padLeft + kx * window.dilationW;
                    const bool padding = iy < 0 || iy >= inputShape[2] || ix < 0 || ix >= inputShape[3];
                    const auto weightInt = static_cast<std::int32_t>(w[((oc * groupChannels + icg) * window.kernelH + ky) * window.kernelW + kx]);
                    addTerm({0, ic, iy, ix}, padding, padding ? 0 : flatIndex(inputShape, {0, ic, iy, ix}), weightInt);
                }
    } else {
        // Gemm/MatMul: the output's last coordinate is the column; the rows are the input's rows.
        const bool transposed = layer.opType == "Gemm" && node.intAttribute("transB", 0) != 0;
        const bool transposedInput = layer.opType == "Gemm" && node.intAttribute("transA", 0) != 0;
        if (transposedInput || weights.rank() != 2)
            throw Error("layer '" + layerName + "': only products of an input by a 2-D weight matrix can be traced");
        const std::int64_t depth = transposed ? weights.dim(1) : weights.dim(0);
        const std::int64_t columns = transposed ? weights.dim(0) : weights.dim(1);
        const std::int64_t n = position.back();
        t.channel = n;
        t.weightZeroPoint = weightZeroPoint(n);
        if (inputShape.empty() || inputShape.back() != depth)
            throw Error("layer '" + layerName + "': its input " + describe(inputShape) + " does not end in " + std::to_string(depth));
        std::vector<std::int64_t> at(position.begin(), position.end());
        for (std::int64_t k = 0; k < depth; ++k) {
            at.back() = k;
            const auto weightInt = static_cast<std::int32_t>(transposed ? w[n * depth + k] : w[k * columns + n]);
            addTerm(at, false, flatIndex(inputShape, at), weightInt);
        }
    }

    t.weightScale = wp.scale[wp.scale.size() > 1 ? static_cast<std::size_t>(t.channel) : 0];
    if (!layer.bias.empty())
        t.bias = plan.graph.initializers.at(layer.bias).toFloatVector().at(static_cast<std::size_t>(t.channel));
    const int8::ChannelRequantization& r = prepared.requantization;
    const auto c = static_cast<std::size_t>(t.channel);
    t.biasCode = r.bias[c];
    t.biased = t.accumulator + t.biasCode;
    t.realMultiplier = double(t.inputScale) * double(t.weightScale) / double(t.outputScale);
    t.multiplier = r.multiplier[c];
    t.rightShift = static_cast<int>(r.rightShift[c]);
    t.product = t.biased * t.multiplier;
    // The engine's rounding, applied here exactly as it applies it (kernels/requantize.h).
    t.rounded = int8::applyMultiplier(static_cast<std::int32_t>(t.biased), {t.multiplier, t.rightShift});
    const std::int64_t mask = (std::int64_t{1} << t.rightShift) - 1;
    t.tie = t.multiplier != 0 && (t.product & mask) == (std::int64_t{1} << (t.rightShift - 1));
    t.exactRescaled = double(t.biased) * t.realMultiplier;
    t.outputZeroPoint = prepared.output.uniform().zeroPoint[0];
    t.withZeroPoint = t.rounded + t.outputZeroPoint;
    t.codeMin = prepared.codeMin;
    t.codeMax = prepared.codeMax;
    t.code = static_cast<std::int32_t>(std::clamp<std::int64_t>(t.withZeroPoint, t.codeMin, t.codeMax));
    t.clamped = t.code != t.withZeroPoint;
    t.engineCode = presentedCodeValues(y)[static_cast<std::size_t>(flatIndex(outputShape, position))];
    t.dequantized = t.outputScale * static_cast<float>(t.code - t.outputZeroPoint);
    return t;
}

std::vector<IntegerTraceStep> integerTraceSteps(const IntegerTrace& t)
{
    const std::string zx = std::to_string(t.inputZeroPoint), zw = std::to_string(t.weightZeroPoint);
    const std::string shift = std::to_string(t.rightShift);
    return {
        {"sum of " + std::to_string(t.terms.size()) + " products (x - " + zx + ") * (w - " + zw + ")", std::to_string(t.accumulator)},
        {"+ bias " + formatFixed(t.bias, 5) + " / (" + formatFixed(t.inputScale, 6) + " * " + formatFixed(t.weightScale, 6) + ") rounded",
         std::to_string(t.biasCode)},
        {"= int32 accumulator", std::to_string(t.biased)},
        {"x M = " + formatFixed(t.realMultiplier, 8) + " = " + std::to_string(t.multiplier) + " * 2^-" + shift, formatFixed(t.exactRescaled, 4)},
        {"rounded half to even (" + std::to_string(t.product) + " / 2^" + shift + (t.tie ? ", a tie" : "") + ")",
         std::to_string(t.rounded)},
        {"+ output zero-point " + std::to_string(t.outputZeroPoint), std::to_string(t.withZeroPoint)},
        {"clamped to [" + std::to_string(t.codeMin) + ", " + std::to_string(t.codeMax) + "]", std::to_string(t.code), true},
        {"the int8 engine's code", std::to_string(t.engineCode), false, true},
        {"as a real value " + formatFixed(t.outputScale, 6) + " * (" + std::to_string(t.code) + " - " + std::to_string(t.outputZeroPoint) + ")",
         formatFixed(t.dequantized, 6)},
    };
}

}  // namespace qe
