// QuantizeLinear and DequantizeLinear as ONNX defines them, per tensor or per axis:
//   q = saturate(round_half_to_even(x / scale) + zero_point),   x = (q - zero_point) * scale.
// These let already-quantized (QDQ) models load and run in the float engine.

#include "engine/operator.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace qe {

namespace {

// For element i of a tensor, the index into a per-axis parameter vector.
struct AxisIndexer {
    std::int64_t inner = 1, length = 1;
    bool perAxis = false;
    std::int64_t operator()(std::int64_t i) const { return perAxis ? (i / inner) % length : 0; }
};

AxisIndexer makeIndexer(const OpContext& c, const Tensor& x, const Tensor& scale)
{
    AxisIndexer indexer;
    // A single scale is per-tensor whatever its rank, as ONNX Runtime reads it.
    if (scale.size() == 1)
        return indexer;
    if (scale.rank() != 1)
        failNode(c, "scale must be a scalar or a 1-D tensor, got " + scale.describe());
    const std::int64_t axis = normalizeAxis(c, c.node.intAttribute("axis", 1), x.rank());
    indexer.perAxis = true;
    indexer.length = x.dim(static_cast<int>(axis));
    if (scale.size() != indexer.length)
        failNode(c, "scale has " + std::to_string(scale.size()) + " values for axis " + std::to_string(axis) +
                        " of length " + std::to_string(indexer.length));
    for (int d = static_cast<int>(axis) + 1; d < x.rank(); ++d)
        indexer.inner *= x.dim(d);
    return indexer;
}

}  // namespace

std::vector<Tensor> runQuantizeLinear(const OpContext& c)
{
    const Tensor& x = c.input(0);
    const Tensor& scaleTensor = c.input(1);
    if (x.dtype() != DataType::Float32 && x.dtype() != DataType::Int32)
        failNode(c, "expects float32 (or int32) input, got " + x.describe());
    const DataType outType = c.hasInput(2) ? c.input(2).dtype() : DataType::UInt8;
    if (outType != DataType::UInt8 && outType != DataType::Int8)
        failNode(c, "zero point type " + dataTypeName(outType) + " is not supported (uint8 or int8)");
    const auto scale = scaleTensor.toFloatVector();
    const auto zeroPoint = c.hasInput(2) ? c.input(2).toInt64Vector() : std::vector<std::int64_t>(scale.size(), 0);
    const AxisIndexer indexer = makeIndexer(c, x, scaleTensor);
    if (zeroPoint.size() != scale.size())
        failNode(c, "scale and zero point sizes differ");
    const Tensor xf = x.castTo(DataType::Float32);
    const float* px = xf.data<float>();
    Tensor out(outType, x.shape());
    dispatchType(outType, [&](auto v) {
        using T = decltype(v);
        if constexpr (std::is_same_v<T, std::int8_t> || std::is_same_v<T, std::uint8_t>) {
            T* po = out.mutableData<T>();
            constexpr float lo = std::numeric_limits<T>::min(), hi = std::numeric_limits<T>::max();
            for (std::int64_t i = 0; i < x.size(); ++i) {
                const std::int64_t k = indexer(i);
                // nearbyint rounds half to even in the default rounding mode, as ONNX requires.
                const float q = std::nearbyint(px[i] / scale[k]) + static_cast<float>(zeroPoint[k]);
                po[i] = static_cast<T>(std::clamp(q, lo, hi));
            }
        }
    });
    return {out};
}

std::vector<Tensor> runDequantizeLinear(const OpContext& c)
{
    const Tensor& x = c.input(0);
    const Tensor& scaleTensor = c.input(1);
    if (x.dtype() != DataType::UInt8 && x.dtype() != DataType::Int8 && x.dtype() != DataType::Int32)
        failNode(c, "expects int8, uint8 or int32 input, got " + x.describe());
    const auto scale = scaleTensor.toFloatVector();
    const auto zeroPoint = c.hasInput(2) ? c.input(2).toInt64Vector() : std::vector<std::int64_t>(scale.size(), 0);
    if (zeroPoint.size() != scale.size())
        failNode(c, "scale and zero point sizes differ");
    const AxisIndexer indexer = makeIndexer(c, x, scaleTensor);
    Tensor out(DataType::Float32, x.shape());
    float* po = out.mutableData<float>();
    dispatchType(x.dtype(), [&](auto v) {
        using T = decltype(v);
        if constexpr (std::is_same_v<T, std::int8_t> || std::is_same_v<T, std::uint8_t> || std::is_same_v<T, std::int32_t>) {
            const T* px = x.data<T>();
            for (std::int64_t i = 0; i < x.size(); ++i) {
                const std::int64_t k = indexer(i);
                po[i] = static_cast<float>(static_cast<std::int64_t>(px[i]) - zeroPoint[k]) * scale[k];
            }
        }
    });
    return {out};
}

}  // namespace qe
