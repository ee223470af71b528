// Average pooling (integer window sums and one rescale) and MaxPool on codes.
#include "engine/int8/steps.h"

#include "common/error.h"
#include "model/window.h"

#include <algorithm>

namespace qe::int8_steps {

using int8::ActivationParams;
using int8::ChannelRequantization;
using int8::FixedPointMultiplier;
using int8::QuantizedTensor;

namespace {

// Average pooling: integer window sums, then y = zy + round(sum(q - zq) * sq / (sy * count)).
struct AveragePoolStep final : Step {
    const Node* node = nullptr;
    const Graph* graph = nullptr;
    bool global = false;
    ActivationParams output;
    std::int32_t codeLo = 0, codeHi = 255;
    // A pool over the whole image (GlobalAveragePool, or an AveragePool whose window is the
    // image, as TensorFlow's MobileNets end) of a channels-last input: per image, the channels'
    // sums over the pixels in one pass (the loop over channels vectorizes), then the same
    // requantization as below.
    void runWholeImageChannelsLast(Values& values, const QuantizedTensor& x) const
    {
        const std::int64_t n = x.codes.dim(0), pixels = x.codes.dim(1) * x.codes.dim(2), c = x.codes.dim(3);
        const FixedPointMultiplier m =
            checkedMultiplier(static_cast<double>(x.params.scale) / (static_cast<double>(output.scale) * pixels), *node);
        IntegerEngine::Value y = newCodes(output, {n, c, 1, 1});
        std::vector<std::int32_t> sums(static_cast<std::size_t>(c));
        for (std::int64_t b = 0; b < n; ++b) {
            const std::uint8_t* px = x.codes.data<std::uint8_t>() + b * pixels * c;
            std::fill(sums.begin(), sums.end(), -x.params.zeroPoint * static_cast<std::int32_t>(pixels));
            for (std::int64_t p = 0; p < pixels; ++p)
                for (std::int64_t ch = 0; ch < c; ++ch)
                    sums[static_cast<std::size_t>(ch)] += px[p * c + ch];
            std::uint8_t* py = y.codes->codes.mutableData<std::uint8_t>() + b * c;
            for (std::int64_t ch = 0; ch < c; ++ch)
                py[ch] = static_cast<std::uint8_t>(int8::requantize(sums[static_cast<std::size_t>(ch)], m, output.zeroPoint, codeLo, codeHi));
        }
        values[outputs[0]] = std::move(y);
    }

    void run(Values& values) const override
    {
        const QuantizedTensor& input = *values.at(inputs[0]).codes;
        if (input.channelsLast && input.codes.rank() == 4) {
            const Shape in = input.logicalShape();
            bool wholeImage = global;
            if (!global) {
                const auto kernel = node->intsAttribute("kernel_shape");
                const Window2D w = makeWindow(*node, 2, in[2], in[3], kernel.size() == 2 ? kernel[0] : 0,
                                              kernel.size() == 2 ? kernel[1] : 0, node->intAttribute("ceil_mode", 0) != 0);
                wholeImage = kernel.size() == 2 && kernel[0] == in[2] && kernel[1] == in[3] && w.outH == 1 && w.outW == 1 &&
                             w.padTop == 0 && w.padLeft == 0 && w.padBottom == 0 && w.padRight == 0;
            }
            if (wholeImage) {
                runWholeImageChannelsLast(values, input);
                return;
            }
        }
        const QuantizedTensor x = int8::toChannelsFirst(input);
        if (x.codes.rank() != 4)
            fail(*node, "integer pooling supports 4-D inputs, got " + x.codes.describe());
        const std::int64_t n = x.codes.dim(0), c = x.codes.dim(1), h = x.codes.dim(2), w = x.codes.dim(3);
        Window2D window;
        bool includePad = false;
        if (global) {
            window.kernelH = window.inH = h;
            window.kernelW = window.inW = w;
        } else {
            const auto kernel = node->intsAttribute("kernel_shape");
            if (kernel.size() != 2)
                fail(*node, "integer AveragePool supports 2-D kernels");
            window = makeWindow(*node, 2, h, w, kernel[0], kernel[1], node->intAttribute("ceil_mode", 0) != 0);
            includePad = node->intAttribute("count_include_pad", 0) != 0;
        }
        std::vector<FixedPointMultiplier> byCount(static_cast<std::size_t>(window.kernelH * window.kernelW + 1));
        for (std::size_t k = 1; k < byCount.size(); ++k)
            byCount[k] = checkedMultiplier(static_cast<double>(x.params.scale) / (static_cast<double>(output.scale) * k), *node);
        IntegerEngine::Value y = newCodes(output, {n, c, window.outH, window.outW});
        const std::uint8_t* px = x.codes.data<std::uint8_t>();
        std::uint8_t* py = y.codes->codes.mutableData<std::uint8_t>();
        for (std::int64_t plane = 0; plane < n * c; ++plane)
            for (std::int64_t oy = 0; oy < window.outH; ++oy)
                for (std::int64_t ox = 0; ox < window.outW; ++ox) {
                    std::int32_t sum = 0, count = 0;
                    for (std::int64_t ky = 0; ky < window.kernelH; ++ky) {
                        const std::int64_t iy = oy * window.strideH - window.padTop + ky * window.dilationH;
                        for (std::int64_t kx = 0; kx < window.kernelW; ++kx) {
                            const std::int64_t ix = ox * window.strideW - window.padLeft + kx * window.dilationW;
                            const bool inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
                            // A padded position counts (as real 0) only with count_include_pad, and
                            // only inside the padded input, not past it (ceil_mode windows).
                            const bool inPaddedInput = iy < h + window.padBottom && ix < w + window.padRight;
                            if (inside)
                                sum += px[(plane * h + iy) * w + ix] - x.params.zeroPoint;
                            if (inside || (includePad && inPaddedInput))
                                ++count;
                        }
                    }
                    py[(plane * window.outH + oy) * window.outW + ox] = static_cast<std::uint8_t>(
                        int8::requantize(sum, byCount[static_cast<std::size_t>(std::max(count, 1))], output.zeroPoint, codeLo, codeHi));
                }
        values[outputs[0]] = std::move(y);
    }
};

// MaxPool on codes (the maximum commutes with an increasing affine map), channels-last.
struct MaxPoolStep final : Step {
    const Node* node = nullptr;
    const Graph* graph = nullptr;
    void run(Values& values) const override
    {
        const QuantizedTensor x = int8::toChannelsLast(*values.at(inputs[0]).codes);
        if (x.codes.rank() != 4)
            fail(*node, "integer MaxPool supports 4-D inputs, got " + x.codes.describe());
        const std::int64_t n = x.codes.dim(0), h = x.codes.dim(1), w = x.codes.dim(2), c = x.codes.dim(3);
        const auto kernel = node->intsAttribute("kernel_shape");
        if (kernel.size() != 2)
            fail(*node, "integer MaxPool supports 2-D kernels");
        const Window2D window =
            makeWindow(*node, 2, h, w, kernel[0], kernel[1], node->intAttribute("ceil_mode", 0) != 0);
        IntegerEngine::Value y = newCodes(x.params, {n, window.outH, window.outW, c}, true);
        const std::uint8_t* px = x.codes.data<std::uint8_t>();
        std::uint8_t* py = y.codes->codes.mutableData<std::uint8_t>();
        for (std::int64_t b = 0; b < n; ++b)
            for (std::int64_t oy = 0; oy < window.outH; ++oy)
                for (std::int64_t ox = 0; ox < window.outW; ++ox) {
                    std::uint8_t* out = py + ((b * window.outH + oy) * window.outW + ox) * c;
                    std::fill(out, out + c, std::uint8_t{0});
                    for (std::int64_t ky = 0; ky < window.kernelH; ++ky) {
                        const std::int64_t iy = oy * window.strideH - window.padTop + ky * window.dilationH;
                        if (iy < 0 || iy >= h)
                            continue;
                        for (std::int64_t kx = 0; kx < window.kernelW; ++kx) {
                            const std::int64_t ix = ox * window.strideW - window.padLeft + kx * window.dilationW;
                            if (ix < 0 || ix >= w)
                                continue;
                            const std::uint8_t* in = px + ((b * h + iy) * w + ix) * c;
                            for (std::int64_t ch = 0; ch < c; ++ch)
                                out[ch] = std::max(out[ch], in[ch]);
                        }
                    }
                }
        values[outputs[0]] = std::move(y);
    }
};

}  // namespace

LoweredLayer lowerAveragePool(const LayerLowering& l)
{
    auto s = std::make_unique<AveragePoolStep>();
    s->node = &l.node;
    s->graph = &l.graph;
    s->global = l.node.opType == "GlobalAveragePool";
    s->output = l.output;
    s->codeLo = l.codeLo;
    s->codeHi = l.codeHi;
    return {std::move(s), ""};
}

std::unique_ptr<Step> lowerMaxPool(const Graph& graph, const Node& node)
{
    if (node.outputs.size() != 1)
        return nullptr;
    auto s = std::make_unique<MaxPoolStep>();
    s->node = &node;
    s->graph = &graph;
    return s;
}

}  // namespace qe::int8_steps
