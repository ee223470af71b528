// Conv (1-D and 2-D, groups, depthwise, dilations, strides, pads, auto_pad) in fp32.
// General case: im2col and one Eigen GEMM per image and group. 1x1 convolutions without stride
// or padding skip im2col; depthwise convolutions use a direct loop (im2col would only copy).

#include "engine/operator.h"
#include "common/parallel.h"
#include "engine/ops/float_kernels.h"
#include "engine/ops/parallel_gemm.h"
#include "model/window.h"

#include <algorithm>
#include <Eigen/Core>

#include <vector>

namespace qe {

namespace {

// Unfolds one group of one image into columns: rows (c, kh, kw), columns (oh, ow).
void im2col(const float* input, std::int64_t channels, const Window2D& w, float* columns)
{
    const std::int64_t outPlane = w.outH * w.outW;
    for (std::int64_t c = 0; c < channels; ++c)
        for (std::int64_t ky = 0; ky < w.kernelH; ++ky)
            for (std::int64_t kx = 0; kx < w.kernelW; ++kx) {
                float* row = columns + ((c * w.kernelH + ky) * w.kernelW + kx) * outPlane;
                const float* plane = input + c * w.inH * w.inW;
                for (std::int64_t oy = 0; oy < w.outH; ++oy) {
                    const std::int64_t iy = oy * w.strideH - w.padTop + ky * w.dilationH;
                    float* dst = row + oy * w.outW;
                    if (iy < 0 || iy >= w.inH) {
                        std::fill(dst, dst + w.outW, 0.f);
                        continue;
                    }
                    const float* src = plane + iy * w.inW;
                    for (std::int64_t ox = 0; ox < w.outW; ++ox) {
                        const std::int64_t ix = ox * w.strideW - w.padLeft + kx * w.dilationW;
                        dst[ox] = (ix >= 0 && ix < w.inW) ? src[ix] : 0.f;
                    }
                }
            }
}

void depthwise(const float* input, const float* weight, float bias, const Window2D& w, float* output)
{
    for (std::int64_t oy = 0; oy < w.outH; ++oy)
        for (std::int64_t ox = 0; ox < w.outW; ++ox) {
            float sum = bias;
            for (std::int64_t ky = 0; ky < w.kernelH; ++ky) {
                const std::int64_t iy = oy * w.strideH - w.padTop + ky * w.dilationH;
                if (iy < 0 || iy >= w.inH)
                    continue;
                for (std::int64_t kx = 0; kx < w.kernelW; ++kx) {
                    const std::int64_t ix = ox * w.strideW - w.padLeft + kx * w.dilationW;
                    if (ix >= 0 && ix < w.inW)
                        sum += input[iy * w.inW + ix] * weight[ky * w.kernelW + kx];
                }
            }
            output[oy * w.outW + ox] = sum;
        }
}

}  // namespace

std::vector<Tensor> runConv(const OpContext& c)
{
    const Tensor& x = c.input(0);
    const Tensor& weight = c.input(1);
    if (x.dtype() != DataType::Float32 || weight.dtype() != DataType::Float32)
        failNode(c, "expects float32 input and weights, got " + x.describe() + " and " + weight.describe());
    const int spatialRank = x.rank() - 2;
    if (spatialRank < 1 || spatialRank > 2)
        failNode(c, "only 1-D and 2-D convolutions are supported; input is " + x.describe());
    if (weight.rank() != x.rank())
        failNode(c, "weights " + weight.describe() + " do not match input " + x.describe());

    const std::int64_t batch = x.dim(0), inChannels = x.dim(1);
    const std::int64_t inH = spatialRank == 2 ? x.dim(2) : 1, inW = x.dim(x.rank() - 1);
    const std::int64_t outChannels = weight.dim(0), groupChannels = weight.dim(1);
    const std::int64_t kernelH = spatialRank == 2 ? weight.dim(2) : 1, kernelW = weight.dim(weight.rank() - 1);
    const std::int64_t group = c.node.intAttribute("group", 1);
    if (group < 1 || inChannels % group != 0 || outChannels % group != 0 || inChannels / group != groupChannels)
        failNode(c, "group " + std::to_string(group) + " does not fit input " + x.describe() + " and weights " +
                        weight.describe());
    const auto kernelShape = c.node.intsAttribute("kernel_shape");
    if (!kernelShape.empty() && kernelShape.back() != kernelW)
        failNode(c, "kernel_shape does not match the weights " + weight.describe());

    const Window2D w = makeWindow(c.node, spatialRank, inH, inW, kernelH, kernelW, false);
    std::vector<float> bias(static_cast<std::size_t>(outChannels), 0.f);
    if (c.hasInput(2)) {
        bias = c.input(2).toFloatVector();
        if (static_cast<std::int64_t>(bias.size()) != outChannels)
            failNode(c, "bias has " + std::to_string(bias.size()) + " values for " + std::to_string(outChannels) + " channels");
    }

    Shape outShape = spatialRank == 2 ? Shape{batch, outChannels, w.outH, w.outW} : Shape{batch, outChannels, w.outW};
    {
        // oneDNN first (1-D convolutions as 2-D ones of height 1); our own loops where it has no
        // fast implementation.
        Tensor biasTensor;
        if (c.hasInput(2))
            biasTensor = c.input(2).dtype() == DataType::Float32 ? c.input(2) : Tensor::fromValues<float>({outChannels}, bias);
        if (auto fast = fastFloatConv(x.reshaped({batch, inChannels, inH, inW}),
                                      weight.reshaped({outChannels, groupChannels, kernelH, kernelW}), biasTensor, w, group))
            return {fast->reshaped(outShape)};
    }
    // Every output is written below (an empty patch, which writes nothing, keeps the zeros):
    // skipping the zero fill saved a tenth of the sensitivity sweep's time.
    Tensor out = groupChannels * kernelH * kernelW > 0 ? Tensor::uninitialized(DataType::Float32, outShape)
                                                       : Tensor(DataType::Float32, outShape);
    const float* px = x.data<float>();
    const float* pw = weight.data<float>();
    float* po = out.mutableData<float>();
    const std::int64_t inPlane = inH * inW, outPlane = w.outH * w.outW;
    const std::int64_t outPerGroup = outChannels / group;
    const std::int64_t patch = groupChannels * kernelH * kernelW;

    if (groupChannels == 1 && outPerGroup == 1) {
        // Depthwise: one input channel per output channel.
        const std::int64_t tasks = batch * outChannels;
#pragma omp parallel for schedule(static) if (worthParallel(tasks * outPlane * kernelH * kernelW))
        for (std::int64_t t = 0; t < tasks; ++t) {
            const std::int64_t n = t / outChannels, ch = t % outChannels;
            depthwise(px + (n * inChannels + ch) * inPlane, pw + ch * kernelH * kernelW, bias[ch], w,
                      po + (n * outChannels + ch) * outPlane);
        }
        return {out};
    }

    const bool pointwise = kernelH == 1 && kernelW == 1 && w.strideH == 1 && w.strideW == 1 && w.padTop == 0 &&
                           w.padLeft == 0 && w.padBottom == 0 && w.padRight == 0;
    auto convolveImage = [&](std::int64_t n, std::vector<float>& columns) {
        for (std::int64_t g = 0; g < group; ++g) {
            const float* input = px + (n * inChannels + g * groupChannels) * inPlane;
            const float* cols = input;
            if (!pointwise) {
                columns.resize(static_cast<std::size_t>(patch * outPlane));
                im2col(input, groupChannels, w, columns.data());
                cols = columns.data();
            }
            Eigen::Map<const RowMajorMatrix<float>> W(pw + g * outPerGroup * patch, outPerGroup, patch);
            Eigen::Map<const RowMajorMatrix<float>> X(cols, patch, outPlane);
            Eigen::Map<RowMajorMatrix<float>> Y(po + (n * outChannels + g * outPerGroup) * outPlane, outPerGroup, outPlane);
            parallelGemm<float>(W, X, Y);
            for (std::int64_t m = 0; m < outPerGroup; ++m)
                Y.row(m).array() += bias[g * outPerGroup + m];
        }
    };
    const std::int64_t macsPerImage = outChannels * patch * outPlane;
    if (batch == 1 || !worthParallel(batch * macsPerImage)) {
        std::vector<float> columns;
        for (std::int64_t n = 0; n < batch; ++n)
            convolveImage(n, columns);  // parallelGemm splits each large GEMM instead
    } else {
        // One im2col buffer per thread, reused for its images.
        const int threads = omp_get_max_threads();
        parallelFor(threads, [&](std::int64_t t) {
            std::vector<float> columns;
            for (std::int64_t n = t; n < batch; n += threads)
                convolveImage(n, columns);
        });
    }
    return {out};
}

}  // namespace qe
