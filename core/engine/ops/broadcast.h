#pragma once
// Multidirectional (numpy-style) broadcasting, shared by the binary operators.

#include "common/error.h"
#include "tensor/tensor.h"

#include <cstring>
#include <vector>

namespace qe {

// (broadcastShapes, the output shape, is in tensor/tensor.h.)

// Calls fn(outIndex, aIndex, bIndex) for every output element, in row-major order.
// The innermost dimension runs in a tight loop with constant strides (0 or 1).
template <class Fn> void forEachBroadcast(const Shape& out, const Shape& a, const Shape& b, Fn&& fn)
{
    const std::size_t rank = out.size();
    std::vector<std::int64_t> strideA(rank, 0), strideB(rank, 0);
    {
        std::int64_t sa = 1, sb = 1;
        for (std::size_t k = 0; k < rank; ++k) {
            const std::size_t d = rank - 1 - k;
            const std::int64_t da = k < a.size() ? a[a.size() - 1 - k] : 1;
            const std::int64_t db = k < b.size() ? b[b.size() - 1 - k] : 1;
            strideA[d] = da == 1 ? 0 : sa;
            strideB[d] = db == 1 ? 0 : sb;
            sa *= da;
            sb *= db;
        }
    }
    const std::int64_t total = elementCount(out);
    if (total == 0)
        return;
    if (rank == 0) {
        fn(0, 0, 0);
        return;
    }
    const std::int64_t inner = out[rank - 1];
    const std::int64_t stepA = strideA[rank - 1], stepB = strideB[rank - 1];
    std::vector<std::int64_t> counter(rank, 0);
    std::int64_t ia = 0, ib = 0;
    for (std::int64_t o = 0; o < total; o += inner) {
        for (std::int64_t i = 0; i < inner; ++i)
            fn(o + i, ia + i * stepA, ib + i * stepB);
        // Advance the odometer over the outer dimensions.
        for (std::size_t d = rank - 1; d-- > 0;) {
            ++counter[d];
            ia += strideA[d];
            ib += strideB[d];
            if (counter[d] < out[d])
                break;
            ia -= strideA[d] * counter[d];
            ib -= strideB[d] * counter[d];
            counter[d] = 0;
        }
    }
}

// The tensor repeated along its size-1 (and missing leading) dimensions to `shape`, which must
// be a broadcast of its shape (Expand, Where). Any element type: elements are copied as bytes.
inline Tensor broadcastTo(const Tensor& x, const Shape& shape)
{
    if (broadcastShapes(x.shape(), shape) != shape)
        throw Error("cannot broadcast " + x.describe() + " to " + shapeToString(shape));
    Tensor out = Tensor::uninitialized(x.dtype(), shape);
    const std::size_t size = dataTypeSize(x.dtype());
    const std::byte* px = x.rawData();
    std::byte* po = out.mutableRawData();
    forEachBroadcast(shape, x.shape(), shape, [&](std::int64_t o, std::int64_t i, std::int64_t) {
        std::memcpy(po + o * size, px + i * size, size);
    });
    return out;
}

}  // namespace qe
