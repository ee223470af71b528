#include "engine/int8/kernels/reference_kernels.h"

#include "common/error.h"

namespace qe::int8 {

namespace {

std::int32_t zeroPointAt(const std::vector<std::int32_t>& zeroPoints, std::int64_t index)
{
    return zeroPoints.size() == 1 ? zeroPoints[0] : zeroPoints.at(static_cast<std::size_t>(index));
}

}  // namespace

Tensor convAccumulateReference(const Tensor& input, std::int32_t inputZeroPoint, const Tensor& weights,
                               const std::vector<std::int32_t>& weightZeroPoints, const Window2D& w,
                               std::int64_t groups)
{
    if (input.rank() != 4 || weights.rank() != 4)
        throw Error("integer convolution: expected 4-D input and weights, got " + input.describe() + " and " + weights.describe());
    const std::int64_t batch = input.dim(0), channels = input.dim(1), outChannels = weights.dim(0);
    const std::int64_t groupIn = weights.dim(1);
    if (groups < 1 || channels != groupIn * groups || outChannels % groups != 0)
        throw Error("integer convolution: " + std::to_string(channels) + " input channels do not match weights " +
                    weights.describe() + " with " + std::to_string(groups) + " groups");
    const std::int64_t groupOut = outChannels / groups;
    const Tensor x = input.castTo(DataType::Int32);
    const Tensor k = weights.castTo(DataType::Int32);
    const std::int32_t* px = x.data<std::int32_t>();
    const std::int32_t* pk = k.data<std::int32_t>();
    Tensor out(DataType::Int32, {batch, outChannels, w.outH, w.outW});
    std::int32_t* py = out.mutableData<std::int32_t>();
    for (std::int64_t n = 0; n < batch; ++n)
        for (std::int64_t oc = 0; oc < outChannels; ++oc) {
            const std::int64_t g = oc / groupOut;
            const std::int32_t wzp = zeroPointAt(weightZeroPoints, oc);
            std::int32_t* plane = py + (n * outChannels + oc) * w.outH * w.outW;
            for (std::int64_t oy = 0; oy < w.outH; ++oy)
                for (std::int64_t ox = 0; ox < w.outW; ++ox) {
                    std::int32_t sum = 0;
                    for (std::int64_t ic = 0; ic < groupIn; ++ic) {
                        const std::int32_t* xPlane = px + (n * channels + g * groupIn + ic) * w.inH * w.inW;
                        const std::int32_t* kernel = pk + (oc * groupIn + ic) * w.kernelH * w.kernelW;
                        for (std::int64_t ky = 0; ky < w.kernelH; ++ky) {
                            const std::int64_t iy = oy * w.strideH - w.padTop + ky * w.dilationH;
                            if (iy < 0 || iy >= w.inH)
                                continue;
                            for (std::int64_t kx = 0; kx < w.kernelW; ++kx) {
                                const std::int64_t ix = ox * w.strideW - w.padLeft + kx * w.dilationW;
                                if (ix >= 0 && ix < w.inW)
                                    sum += (xPlane[iy * w.inW + ix] - inputZeroPoint) * (kernel[ky * w.kernelW + kx] - wzp);
                            }
                        }
                    }
                    plane[oy * w.outW + ox] = sum;
                }
        }
    return out;
}

Tensor matmulAccumulateReference(const Tensor& a, std::int32_t aZeroPoint, const Tensor& b,
                                 const std::vector<std::int32_t>& bZeroPoints)
{
    if (a.rank() != 2 || b.rank() != 2 || a.dim(1) != b.dim(0))
        throw Error("integer matrix product: shapes " + a.describe() + " and " + b.describe() + " do not fit [M, K] x [K, N]");
    const std::int64_t m = a.dim(0), kDim = a.dim(1), n = b.dim(1);
    const Tensor a32 = a.castTo(DataType::Int32), b32 = b.castTo(DataType::Int32);
    const std::int32_t* pa = a32.data<std::int32_t>();
    const std::int32_t* pb = b32.data<std::int32_t>();
    Tensor out(DataType::Int32, {m, n});
    std::int32_t* py = out.mutableData<std::int32_t>();
    for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; ++j) {
            const std::int32_t bzp = zeroPointAt(bZeroPoints, j);
            std::int32_t sum = 0;
            for (std::int64_t k = 0; k < kDim; ++k)
                sum += (pa[i * kDim + k] - aZeroPoint) * (pb[k * n + j] - bzp);
            py[i * n + j] = sum;
        }
    return out;
}

}  // namespace qe::int8
