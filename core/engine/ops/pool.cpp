// Pooling: MaxPool (with optional Indices), AveragePool, GlobalAveragePool, GlobalMaxPool.

#include "engine/operator.h"
#include "engine/ops/parallel_gemm.h"
#include "model/window.h"

#include <algorithm>
#include <limits>

namespace qe {

namespace {

struct PoolGeometry {
    std::int64_t batch, channels;
    int spatialRank;
    Window2D window;
    Shape outShape;
};

PoolGeometry poolGeometry(const OpContext& c, const Tensor& x)
{
    const int spatialRank = x.rank() - 2;
    if (spatialRank < 1 || spatialRank > 2)
        failNode(c, "only 1-D and 2-D pooling is supported; input is " + x.describe());
    const auto kernel = c.node.intsAttribute("kernel_shape");
    if (static_cast<int>(kernel.size()) != spatialRank)
        failNode(c, "kernel_shape must have " + std::to_string(spatialRank) + " values");
    const std::int64_t inH = spatialRank == 2 ? x.dim(2) : 1, inW = x.dim(x.rank() - 1);
    const std::int64_t kernelH = spatialRank == 2 ? kernel[0] : 1, kernelW = kernel.back();
    PoolGeometry g{x.dim(0), x.dim(1), spatialRank,
                   makeWindow(c.node, spatialRank, inH, inW, kernelH, kernelW, c.node.intAttribute("ceil_mode", 0) != 0),
                   {}};
    g.outShape = spatialRank == 2 ? Shape{g.batch, g.channels, g.window.outH, g.window.outW}
                                  : Shape{g.batch, g.channels, g.window.outW};
    return g;
}

// Max pooling of one float plane without indices, a row of outputs at a time: for each tap of the
// window, the outputs whose tap falls inside the image are one run of ox (its bounds computed once),
// so the innermost loop has no branch. The general loop below, with its per-tap checks, was 15% of
// ResNet-18's fp32 time.
void maxPoolPlane(const float* plane, const Window2D& w, float* out)
{
    auto firstInside = [](std::int64_t offset, std::int64_t stride) {  // smallest ox with ox * stride + offset >= 0
        return offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    };
    for (std::int64_t oy = 0; oy < w.outH; ++oy) {
        float* row = out + oy * w.outW;
        std::fill(row, row + w.outW, -std::numeric_limits<float>::infinity());
        for (std::int64_t ky = 0; ky < w.kernelH; ++ky) {
            const std::int64_t iy = oy * w.strideH - w.padTop + ky * w.dilationH;
            if (iy < 0 || iy >= w.inH)
                continue;
            const float* in = plane + iy * w.inW;
            for (std::int64_t kx = 0; kx < w.kernelW; ++kx) {
                const std::int64_t offset = kx * w.dilationW - w.padLeft;  // ix = ox * strideW + offset
                const std::int64_t begin = firstInside(offset, w.strideW);
                const std::int64_t end = std::min(w.outW, offset >= w.inW ? 0 : (w.inW - 1 - offset) / w.strideW + 1);
                for (std::int64_t ox = begin; ox < end; ++ox)
                    row[ox] = std::max(row[ox], in[ox * w.strideW + offset]);
            }
        }
    }
}

}  // namespace

std::vector<Tensor> runMaxPool(const OpContext& c)
{
    const Tensor& x = c.input(0);
    const PoolGeometry g = poolGeometry(c, x);
    const Window2D& w = g.window;
    const bool columnMajorIndices = c.node.intAttribute("storage_order", 0) != 0;
    const bool wantIndices = c.outputCount() > 1 && !c.node.outputs[1].empty();
    Tensor out = Tensor::uninitialized(x.dtype(), g.outShape);  // every output is written (or the node fails)
    if (x.dtype() == DataType::Float32 && !wantIndices) {
        const float* px = x.data<float>();
        float* po = out.mutableData<float>();
        const std::int64_t planes = g.batch * g.channels;
#pragma omp parallel for if (worthParallel(out.size() * w.kernelH * w.kernelW))
        for (std::int64_t p = 0; p < planes; ++p)
            maxPoolPlane(px + p * w.inH * w.inW, w, po + p * w.outH * w.outW);
        return {out};
    }
    Tensor indices(DataType::Int64, wantIndices ? g.outShape : Shape{0});
    dispatchType(x.dtype(), [&](auto v) {
        using T = decltype(v);
        if constexpr (std::is_same_v<T, bool>) {
            failNode(c, "boolean inputs are not supported");
        } else {
            const T* px = x.data<T>();
            T* po = out.mutableData<T>();
            std::int64_t* pi = wantIndices ? indices.mutableData<std::int64_t>() : nullptr;
            const std::int64_t planes = g.batch * g.channels;
#pragma omp parallel for if (worthParallel(out.size() * w.kernelH * w.kernelW))
            for (std::int64_t p = 0; p < planes; ++p) {
                const T* plane = px + p * w.inH * w.inW;
                for (std::int64_t oy = 0; oy < w.outH; ++oy)
                    for (std::int64_t ox = 0; ox < w.outW; ++ox) {
                        T best = std::numeric_limits<T>::lowest();
                        std::int64_t bestIndex = -1;
                        for (std::int64_t ky = 0; ky < w.kernelH; ++ky) {
                            const std::int64_t iy = oy * w.strideH - w.padTop + ky * w.dilationH;
                            if (iy < 0 || iy >= w.inH)
                                continue;
                            for (std::int64_t kx = 0; kx < w.kernelW; ++kx) {
                                const std::int64_t ix = ox * w.strideW - w.padLeft + kx * w.dilationW;
                                if (ix < 0 || ix >= w.inW)
                                    continue;
                                const T value = plane[iy * w.inW + ix];
                                if (bestIndex < 0 || value > best) {
                                    best = value;
                                    bestIndex = columnMajorIndices ? ix * w.inH + iy : iy * w.inW + ix;
                                }
                            }
                        }
                        const std::int64_t o = (p * w.outH + oy) * w.outW + ox;
                        po[o] = best;
                        if (pi)
                            pi[o] = p * w.inH * w.inW + bestIndex;
                    }
            }
        }
    });
    if (wantIndices)
        return {out, indices};
    return {out};
}

std::vector<Tensor> runAveragePool(const OpContext& c)
{
    const Tensor& x = c.input(0);
    if (x.dtype() != DataType::Float32)
        failNode(c, "expects float32 input, got " + x.describe());
    const PoolGeometry g = poolGeometry(c, x);
    const Window2D& w = g.window;
    const bool countPadding = c.node.intAttribute("count_include_pad", 0) != 0;
    Tensor out(DataType::Float32, g.outShape);
    const float* px = x.data<float>();
    float* po = out.mutableData<float>();
    const std::int64_t planes = g.batch * g.channels;
#pragma omp parallel for if (worthParallel(out.size() * w.kernelH * w.kernelW))
    for (std::int64_t p = 0; p < planes; ++p) {
        const float* plane = px + p * w.inH * w.inW;
        for (std::int64_t oy = 0; oy < w.outH; ++oy)
            for (std::int64_t ox = 0; ox < w.outW; ++ox) {
                // The window, clipped to the padded input (for count_include_pad) and to the input.
                const std::int64_t y0 = oy * w.strideH - w.padTop, x0 = ox * w.strideW - w.padLeft;
                const std::int64_t y1 = std::min(y0 + w.kernelH, w.inH + w.padBottom);
                const std::int64_t x1 = std::min(x0 + w.kernelW, w.inW + w.padRight);
                const std::int64_t paddedCount = (y1 - y0) * (x1 - x0);
                const std::int64_t ya = std::max<std::int64_t>(y0, 0), yb = std::min(y1, w.inH);
                const std::int64_t xa = std::max<std::int64_t>(x0, 0), xb = std::min(x1, w.inW);
                float sum = 0.f;
                for (std::int64_t iy = ya; iy < yb; ++iy)
                    for (std::int64_t ix = xa; ix < xb; ++ix)
                        sum += plane[iy * w.inW + ix];
                const std::int64_t count = countPadding ? paddedCount : (yb - ya) * (xb - xa);
                po[(p * w.outH + oy) * w.outW + ox] = count > 0 ? sum / static_cast<float>(count) : 0.f;
            }
    }
    return {out};
}

namespace {
template <bool Max> Tensor globalPool(const OpContext& c)
{
    const Tensor& x = c.input(0);
    if (x.dtype() != DataType::Float32 || x.rank() < 3)
        failNode(c, "expects a float32 N x C x spatial input, got " + x.describe());
    Shape outShape = x.shape();
    std::int64_t plane = 1;
    for (int d = 2; d < x.rank(); ++d) {
        plane *= x.dim(d);
        outShape[static_cast<std::size_t>(d)] = 1;
    }
    Tensor out(DataType::Float32, outShape);
    const float* px = x.data<float>();
    float* po = out.mutableData<float>();
    const std::int64_t planes = x.dim(0) * x.dim(1);
    for (std::int64_t p = 0; p < planes; ++p) {
        const float* src = px + p * plane;
        if constexpr (Max) {
            po[p] = *std::max_element(src, src + plane);
        } else {
            double sum = 0;
            for (std::int64_t i = 0; i < plane; ++i)
                sum += src[i];
            po[p] = static_cast<float>(sum / static_cast<double>(plane));
        }
    }
    return out;
}
}  // namespace

std::vector<Tensor> runGlobalAveragePool(const OpContext& c) { return {globalPool<false>(c)}; }
std::vector<Tensor> runGlobalMaxPool(const OpContext& c) { return {globalPool<true>(c)}; }

}  // namespace qe
