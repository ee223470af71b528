// Gemm and MatMul in float with Eigen.

#include "engine/operator.h"
#include "engine/ops/broadcast.h"
#include "engine/ops/parallel_gemm.h"

#include <Eigen/Core>

namespace qe {

namespace {
void requireFloat(const OpContext& c, const Tensor& t)
{
    if (t.dtype() != DataType::Float32 && t.dtype() != DataType::Float64)
        failNode(c, "expects float inputs, got " + t.describe());
}
}  // namespace

std::vector<Tensor> runGemm(const OpContext& c)
{
    // Y = alpha * A' * B' + beta * C, where A' and B' are optionally transposed.
    const Tensor& a = c.input(0);
    const Tensor& b = c.input(1);
    requireFloat(c, a);
    if (a.dtype() != b.dtype() || a.rank() != 2 || b.rank() != 2)
        failNode(c, "expects two matrices of the same float type, got " + a.describe() + " and " + b.describe());
    const bool transA = c.node.intAttribute("transA", 0) != 0;
    const bool transB = c.node.intAttribute("transB", 0) != 0;
    const float alpha = c.node.floatAttribute("alpha", 1.f);
    const float beta = c.node.floatAttribute("beta", 1.f);
    const std::int64_t m = transA ? a.dim(1) : a.dim(0);
    const std::int64_t k = transA ? a.dim(0) : a.dim(1);
    const std::int64_t kb = transB ? b.dim(1) : b.dim(0);
    const std::int64_t n = transB ? b.dim(0) : b.dim(1);
    if (k != kb)
        failNode(c, "inner dimensions differ: " + a.describe() + (transA ? "^T" : "") + " x " + b.describe() +
                        (transB ? "^T" : ""));
    Tensor out(a.dtype(), {m, n});
    dispatchType(a.dtype(), [&](auto v) {
        using T = decltype(v);
        if constexpr (std::is_floating_point_v<T>) {
            Eigen::Map<const RowMajorMatrix<T>> A(a.data<T>(), a.dim(0), a.dim(1));
            Eigen::Map<const RowMajorMatrix<T>> B(b.data<T>(), b.dim(0), b.dim(1));
            Eigen::Map<RowMajorMatrix<T>> Y(out.mutableData<T>(), m, n);
            parallelGemm<T>(A, transA, B, transB, Y);
            if (alpha != 1.f)
                Y *= static_cast<T>(alpha);
            if (c.hasInput(2) && beta != 0.f) {
                const Tensor& bias = c.input(2);
                if (bias.dtype() != a.dtype())
                    failNode(c, "C has type " + bias.describe() + ", expected " + dataTypeName(a.dtype()));
                const Shape shape{m, n};
                if (broadcastShapes(shape, bias.shape()) != shape)
                    failNode(c, "C " + bias.describe() + " does not broadcast to [" + std::to_string(m) + "," +
                                    std::to_string(n) + "]");
                const T* pc = bias.data<T>();
                T* py = out.mutableData<T>();
                forEachBroadcast(shape, shape, bias.shape(),
                                 [&](std::int64_t o, std::int64_t, std::int64_t ic) { py[o] += static_cast<T>(beta) * pc[ic]; });
            }
        }
    });
    return {out};
}

std::vector<Tensor> runMatMul(const OpContext& c)
{
    const Tensor& a = c.input(0);
    const Tensor& b = c.input(1);
    requireFloat(c, a);
    if (a.dtype() != b.dtype() || a.rank() < 1 || b.rank() < 1)
        failNode(c, "expects two float tensors of the same type, got " + a.describe() + " and " + b.describe());
    // numpy.matmul semantics: 1-D operands are promoted to matrices and the added axis removed.
    Shape sa = a.shape(), sb = b.shape();
    const bool vectorA = sa.size() == 1, vectorB = sb.size() == 1;
    if (vectorA)
        sa.insert(sa.begin(), 1);
    if (vectorB)
        sb.push_back(1);
    const std::int64_t m = sa[sa.size() - 2], k = sa.back(), n = sb.back();
    if (sb[sb.size() - 2] != k)
        failNode(c, "inner dimensions differ: " + a.describe() + " x " + b.describe());
    const Shape batchA(sa.begin(), sa.end() - 2), batchB(sb.begin(), sb.end() - 2);
    const Shape batch = broadcastShapes(batchA, batchB);
    Shape outShape = batch;
    if (!vectorA)
        outShape.push_back(m);
    if (!vectorB)
        outShape.push_back(n);
    Tensor out(a.dtype(), outShape);
    dispatchType(a.dtype(), [&](auto v) {
        using T = decltype(v);
        if constexpr (std::is_floating_point_v<T>) {
            const T* pa = a.data<T>();
            const T* pb = b.data<T>();
            T* py = out.mutableData<T>();
            std::vector<std::int64_t> offsetsA, offsetsB;
            forEachBroadcast(batch, batchA, batchB, [&](std::int64_t, std::int64_t ia, std::int64_t ib) {
                offsetsA.push_back(ia);
                offsetsB.push_back(ib);
            });
            if (batch.empty()) {
                offsetsA = {0};
                offsetsB = {0};
            }
            for (std::size_t i = 0; i < offsetsA.size(); ++i) {
                Eigen::Map<const RowMajorMatrix<T>> A(pa + offsetsA[i] * m * k, m, k);
                Eigen::Map<const RowMajorMatrix<T>> B(pb + offsetsB[i] * k * n, k, n);
                Eigen::Map<RowMajorMatrix<T>> Y(py + static_cast<std::int64_t>(i) * m * n, m, n);
                parallelGemm<T>(A, B, Y);
            }
        }
    });
    return {out};
}

}  // namespace qe
