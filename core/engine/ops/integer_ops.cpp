// The ONNX integer operators, on the plain reference kernels:
//   ConvInteger / MatMulInteger   y = sum (x - x_zero_point) * (w - w_zero_point)        (int32)
//   QLinearConv / QLinearMatMul   y = saturate(round(accumulator * x_scale * w_scale / y_scale) + y_zero_point)
//   DynamicQuantizeLinear         uint8 codes with a scale and zero-point taken from x's range
// QLinear* rescale in double precision and round half to even, as the operator definitions do
// (the engine's own layers requantize with fixed-point multipliers instead: engine/int8/kernels/requantize.h).

#include "engine/int8/kernels/reference_kernels.h"
#include "engine/operator.h"
#include "model/window.h"

#include <algorithm>
#include <cmath>

namespace qe {

namespace {

std::vector<std::int32_t> zeroPoints(const OpContext& c, std::size_t index)
{
    if (!c.hasInput(index))
        return {0};
    std::vector<std::int32_t> values;
    for (std::int64_t v : c.input(index).toInt64Vector())
        values.push_back(static_cast<std::int32_t>(v));
    if (values.empty())
        failNode(c, "zero point input " + std::to_string(index) + " is empty");
    return values;
}

std::int32_t scalarZeroPoint(const OpContext& c, std::size_t index)
{
    const auto values = zeroPoints(c, index);
    if (values.size() != 1)
        failNode(c, "zero point input " + std::to_string(index) + " must be a scalar here, it has " +
                        std::to_string(values.size()) + " values");
    return values[0];
}

void requireInteger8(const OpContext& c, const Tensor& t, const char* what)
{
    if (t.dtype() != DataType::Int8 && t.dtype() != DataType::UInt8)
        failNode(c, std::string(what) + " must be int8 or uint8, got " + t.describe());
}

// int32 [N, OC, OH, OW] accumulators of a 1-D or 2-D integer convolution.
Tensor convAccumulate(const OpContext& c, const Tensor& x, std::int32_t xZeroPoint, const Tensor& w,
                      const std::vector<std::int32_t>& wZeroPoints)
{
    requireInteger8(c, x, "x");
    requireInteger8(c, w, "w");
    if (x.rank() != 3 && x.rank() != 4)
        failNode(c, "supports 1-D and 2-D convolutions; input is " + x.describe());
    if (w.rank() != x.rank())
        failNode(c, "weights " + w.describe() + " do not match input " + x.describe());
    const bool oneD = x.rank() == 3;
    const Tensor x4 = oneD ? x.reshaped({x.dim(0), x.dim(1), 1, x.dim(2)}) : x;
    const Tensor w4 = oneD ? w.reshaped({w.dim(0), w.dim(1), 1, w.dim(2)}) : w;
    const Window2D window = makeWindow(c.node, oneD ? 1 : 2, x4.dim(2), x4.dim(3), w4.dim(2), w4.dim(3), false);
    if (wZeroPoints.size() != 1 && static_cast<std::int64_t>(wZeroPoints.size()) != w.dim(0))
        failNode(c, "w_zero_point has " + std::to_string(wZeroPoints.size()) + " values for " + std::to_string(w.dim(0)) +
                        " output channels");
    Tensor acc = int8::convAccumulateReference(x4, xZeroPoint, w4, wZeroPoints, window, c.node.intAttribute("group", 1));
    return oneD ? acc.reshaped({acc.dim(0), acc.dim(1), acc.dim(3)}) : acc;
}

// int32 [..., M, N] accumulators of a (batched) integer matrix product; B is 2-D or has A's batch dims.
Tensor matmulAccumulate(const OpContext& c, const Tensor& a, std::int32_t aZeroPoint, const Tensor& b,
                        const std::vector<std::int32_t>& bZeroPoints)
{
    requireInteger8(c, a, "A");
    requireInteger8(c, b, "B");
    if (a.rank() < 2 || b.rank() < 2)
        failNode(c, "expects matrices, got " + a.describe() + " and " + b.describe());
    const std::int64_t m = a.dim(a.rank() - 2), k = a.dim(a.rank() - 1), n = b.dim(b.rank() - 1);
    if (b.dim(b.rank() - 2) != k)
        failNode(c, "inner dimensions differ: " + a.describe() + " x " + b.describe());
    const std::int64_t batches = a.size() / (m * k);
    const bool sharedB = b.rank() == 2;
    if (!sharedB && b.size() / (k * n) != batches)
        failNode(c, "batch dimensions of " + a.describe() + " and " + b.describe() + " differ");
    Shape outShape(a.shape().begin(), a.shape().end() - 1);
    outShape.push_back(n);
    Tensor out(DataType::Int32, outShape);
    const std::size_t aBytes = static_cast<std::size_t>(m * k) * dataTypeSize(a.dtype());
    const std::size_t bBytes = static_cast<std::size_t>(k * n) * dataTypeSize(b.dtype());
    for (std::int64_t i = 0; i < batches; ++i) {
        Tensor ai(a.dtype(), {m, k}), bi(b.dtype(), {k, n});
        std::copy_n(a.rawData() + i * aBytes, aBytes, ai.mutableRawData());
        std::copy_n(b.rawData() + (sharedB ? 0 : i * bBytes), bBytes, bi.mutableRawData());
        const Tensor yi = int8::matmulAccumulateReference(ai, aZeroPoint, bi, bZeroPoints);
        std::copy_n(yi.data<std::int32_t>(), m * n, out.mutableData<std::int32_t>() + i * m * n);
    }
    return out;
}

// saturate(round_half_even(acc * multiplier[channel]) + zero_point) into y's type.
Tensor requantizeOutput(const OpContext& c, const Tensor& acc, const std::vector<double>& multipliers,
                        std::int64_t channelAxis, std::int32_t yZeroPoint, DataType yType)
{
    std::int64_t inner = 1;
    for (int d = static_cast<int>(channelAxis) + 1; d < acc.rank(); ++d)
        inner *= acc.dim(d);
    const std::int64_t channels = acc.dim(static_cast<int>(channelAxis));
    if (multipliers.size() != 1 && static_cast<std::int64_t>(multipliers.size()) != channels)
        failNode(c, "has " + std::to_string(multipliers.size()) + " weight scales for " + std::to_string(channels) + " channels");
    const double lo = yType == DataType::Int8 ? -128 : 0, hi = yType == DataType::Int8 ? 127 : 255;
    Tensor out(yType, acc.shape());
    const std::int32_t* a = acc.data<std::int32_t>();
    dispatchType(yType, [&](auto v) {
        using T = decltype(v);
        if constexpr (std::is_same_v<T, std::int8_t> || std::is_same_v<T, std::uint8_t>) {
            T* y = out.mutableData<T>();
            for (std::int64_t i = 0; i < acc.size(); ++i) {
                const double multiplier = multipliers.size() == 1 ? multipliers[0] : multipliers[static_cast<std::size_t>((i / inner) % channels)];
                y[i] = static_cast<T>(std::clamp(std::nearbyint(a[i] * multiplier) + yZeroPoint, lo, hi));
            }
        } else {
            failNode(c, "y_zero_point must be int8 or uint8");
        }
    });
    return out;
}

std::vector<double> rescaleMultipliers(const OpContext& c, std::size_t xScale, std::size_t wScale, std::size_t yScale)
{
    const double sx = c.input(xScale).toFloatVector().at(0), sy = c.input(yScale).toFloatVector().at(0);
    std::vector<double> multipliers;
    for (float sw : c.input(wScale).toFloatVector())
        multipliers.push_back(sx * static_cast<double>(sw) / sy);
    return multipliers;
}

}  // namespace

std::vector<Tensor> runConvInteger(const OpContext& c)
{
    return {convAccumulate(c, c.input(0), c.hasInput(2) ? scalarZeroPoint(c, 2) : 0, c.input(1), zeroPoints(c, 3))};
}

std::vector<Tensor> runMatMulInteger(const OpContext& c)
{
    return {matmulAccumulate(c, c.input(0), c.hasInput(2) ? scalarZeroPoint(c, 2) : 0, c.input(1), zeroPoints(c, 3))};
}

// Inputs: x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B (int32, optional).
std::vector<Tensor> runQLinearConv(const OpContext& c)
{
    Tensor acc = convAccumulate(c, c.input(0), scalarZeroPoint(c, 2), c.input(3), zeroPoints(c, 5));
    if (c.hasInput(8)) {
        const auto bias = c.input(8).toInt64Vector();
        if (static_cast<std::int64_t>(bias.size()) != acc.dim(1))
            failNode(c, "bias has " + std::to_string(bias.size()) + " values for " + std::to_string(acc.dim(1)) + " channels");
        std::int64_t inner = acc.size() / (acc.dim(0) * acc.dim(1));
        std::int32_t* a = acc.mutableData<std::int32_t>();
        for (std::int64_t i = 0; i < acc.size(); ++i)
            a[i] += static_cast<std::int32_t>(bias[static_cast<std::size_t>((i / inner) % acc.dim(1))]);
    }
    return {requantizeOutput(c, acc, rescaleMultipliers(c, 1, 4, 6), 1, scalarZeroPoint(c, 7), c.input(7).dtype())};
}

// Inputs: a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point.
std::vector<Tensor> runQLinearMatMul(const OpContext& c)
{
    const Tensor acc = matmulAccumulate(c, c.input(0), scalarZeroPoint(c, 2), c.input(3), zeroPoints(c, 5));
    return {requantizeOutput(c, acc, rescaleMultipliers(c, 1, 4, 6), acc.rank() - 1, scalarZeroPoint(c, 7), c.input(7).dtype())};
}

// y_scale = (max(0, max x) - min(0, min x)) / 255, y_zero_point = saturate(round(-min / y_scale)),
// y = saturate(round(x / y_scale) + y_zero_point), all rounding half to even (the operator's definition).
std::vector<Tensor> runDynamicQuantizeLinear(const OpContext& c)
{
    const Tensor& x = c.input(0);
    if (x.dtype() != DataType::Float32)
        failNode(c, "expects float32 input, got " + x.describe());
    const auto v = x.values<float>();
    float lo = 0.f, hi = 0.f;
    for (float f : v) {
        lo = std::min(lo, f);
        hi = std::max(hi, f);
    }
    const float scale = (hi - lo) / 255.f;
    const float zeroPoint = scale == 0.f ? 0.f : std::clamp(std::nearbyint(-lo / scale), 0.f, 255.f);
    Tensor y(DataType::UInt8, x.shape());
    std::uint8_t* py = y.mutableData<std::uint8_t>();
    for (std::size_t i = 0; i < v.size(); ++i)
        py[i] = static_cast<std::uint8_t>(scale == 0.f ? zeroPoint : std::clamp(std::nearbyint(v[i] / scale) + zeroPoint, 0.f, 255.f));
    return {y, Tensor::fromValues<float>({}, std::vector<float>{scale}),
            Tensor::fromValues<std::uint8_t>({}, std::vector<std::uint8_t>{static_cast<std::uint8_t>(zeroPoint)})};
}

}  // namespace qe
