// BatchNormalization (inference), LayerNormalization, Softmax and ReduceMean.

#include "engine/operator.h"
#include "engine/ops/broadcast.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace qe {

std::vector<Tensor> runBatchNormalization(const OpContext& c)
{
    const Tensor& x = c.input(0);
    if (x.dtype() != DataType::Float32 || x.rank() < 2)
        failNode(c, "expects a float32 N x C x ... input, got " + x.describe());
    if (c.node.intAttribute("training_mode", 0) != 0 || c.outputCount() > 1)
        failNode(c, "training mode (running statistics as outputs) is not supported; only inference");
    const std::int64_t channels = x.dim(1);
    const auto scale = c.input(1).toFloatVector();
    const auto bias = c.input(2).toFloatVector();
    const auto mean = c.input(3).toFloatVector();
    const auto var = c.input(4).toFloatVector();
    for (const auto* v : {&scale, &bias, &mean, &var})
        if (static_cast<std::int64_t>(v->size()) != channels)
            failNode(c, "scale, bias, mean and var need " + std::to_string(channels) + " values each");
    const float epsilon = c.node.floatAttribute("epsilon", 1e-5f);
    std::int64_t plane = 1;
    for (int d = 2; d < x.rank(); ++d)
        plane *= x.dim(d);
    Tensor out(DataType::Float32, x.shape());
    const float* px = x.data<float>();
    float* po = out.mutableData<float>();
    for (std::int64_t n = 0; n < x.dim(0); ++n)
        for (std::int64_t ch = 0; ch < channels; ++ch) {
            const float factor = scale[ch] / std::sqrt(var[ch] + epsilon);
            const float shift = bias[ch] - mean[ch] * factor;
            const std::int64_t offset = (n * channels + ch) * plane;
            for (std::int64_t i = 0; i < plane; ++i)
                po[offset + i] = px[offset + i] * factor + shift;
        }
    return {out};
}

std::vector<Tensor> runSoftmax(const OpContext& c)
{
    const Tensor& x = c.input(0);
    if (x.dtype() != DataType::Float32)
        failNode(c, "expects float32 input, got " + x.describe());
    const std::int64_t rank = x.rank();
    const std::int64_t axis = normalizeAxis(c, c.node.intAttribute("axis", c.opset < 13 ? 1 : -1), rank);
    // Before opset 13 the input is flattened to 2-D at `axis` and normalised over the whole
    // trailing block; from 13 on, along the one axis.
    std::int64_t outer = 1, length = 1, inner = 1;
    for (std::int64_t d = 0; d < rank; ++d) {
        const std::int64_t size = x.dim(static_cast<int>(d));
        if (d < axis)
            outer *= size;
        else if (d == axis || c.opset < 13)
            length *= size;
        else
            inner *= size;
    }
    Tensor out(DataType::Float32, x.shape());
    const float* px = x.data<float>();
    float* po = out.mutableData<float>();
    for (std::int64_t o = 0; o < outer; ++o)
        for (std::int64_t i = 0; i < inner; ++i) {
            const float* src = px + o * length * inner + i;
            float* dst = po + o * length * inner + i;
            float maximum = -INFINITY;
            for (std::int64_t k = 0; k < length; ++k)
                maximum = std::max(maximum, src[k * inner]);
            double sum = 0;
            for (std::int64_t k = 0; k < length; ++k) {
                dst[k * inner] = std::exp(src[k * inner] - maximum);
                sum += dst[k * inner];
            }
            for (std::int64_t k = 0; k < length; ++k)
                dst[k * inner] = static_cast<float>(dst[k * inner] / sum);
        }
    return {out};
}

std::vector<Tensor> runLayerNormalization(const OpContext& c)
{
    // Y = (X - mean) / sqrt(var + epsilon) * Scale + B over the axes from `axis` on; the optional
    // outputs Mean and InvStdDev have X's shape with those axes set to 1. Statistics in double.
    const Tensor& x = c.input(0);
    if (x.dtype() != DataType::Float32)
        failNode(c, "expects float32 input, got " + x.describe());
    const std::int64_t rank = x.rank();
    const std::int64_t axis = normalizeAxis(c, c.node.intAttribute("axis", -1), rank);
    const float epsilon = c.node.floatAttribute("epsilon", 1e-5f);
    const Shape normalized(x.shape().begin() + axis, x.shape().end());
    const std::int64_t length = elementCount(normalized), rows = length == 0 ? 0 : x.size() / length;
    auto affine = [&](std::size_t input) -> Tensor {
        const Tensor& t = c.input(input);
        if (t.dtype() != DataType::Float32)
            failNode(c, "input " + std::to_string(input) + " must be float32, got " + t.describe());
        try {
            return broadcastTo(t, normalized);
        } catch (const Error&) {
            failNode(c, "input " + std::to_string(input) + " " + t.describe() + " does not broadcast to the normalized shape " +
                            shapeToString(normalized));
        }
    };
    const Tensor scale = affine(1);
    const Tensor bias = c.hasInput(2) ? affine(2) : Tensor(DataType::Float32, normalized);
    Shape statisticsShape = x.shape();
    for (std::int64_t d = axis; d < rank; ++d)
        statisticsShape[static_cast<std::size_t>(d)] = 1;
    Tensor y(DataType::Float32, x.shape()), mean(DataType::Float32, statisticsShape), inverse(DataType::Float32, statisticsShape);
    const float* px = x.data<float>();
    const float* ps = scale.data<float>();
    const float* pb = bias.data<float>();
    float* py = y.mutableData<float>();
    for (std::int64_t r = 0; r < rows; ++r) {
        const float* row = px + r * length;
        double sum = 0, squares = 0;
        for (std::int64_t i = 0; i < length; ++i)
            sum += row[i];
        const double mu = sum / double(length);
        for (std::int64_t i = 0; i < length; ++i)
            squares += (row[i] - mu) * (row[i] - mu);
        const double invStdDev = 1.0 / std::sqrt(squares / double(length) + double(epsilon));
        for (std::int64_t i = 0; i < length; ++i)
            py[r * length + i] = static_cast<float>((row[i] - mu) * invStdDev * ps[i] + pb[i]);
        mean.mutableData<float>()[r] = static_cast<float>(mu);
        inverse.mutableData<float>()[r] = static_cast<float>(invStdDev);
    }
    std::vector<Tensor> outputs{y, mean, inverse};
    outputs.resize(std::max<std::size_t>(1, std::min<std::size_t>(3, c.outputCount())));
    return outputs;
}

std::vector<Tensor> runReduceMean(const OpContext& c)
{
    const Tensor& x = c.input(0);
    if (x.dtype() != DataType::Float32)
        failNode(c, "expects float32 input, got " + x.describe());
    const std::int64_t rank = x.rank();
    std::vector<std::int64_t> axes = c.node.intsAttribute("axes");
    if (c.hasInput(1))  // opset 18 moved axes to an input
        axes = c.input(1).toInt64Vector();
    const bool keepDims = c.node.intAttribute("keepdims", 1) != 0;
    std::set<std::int64_t> reduced;
    for (std::int64_t a : axes)
        reduced.insert(normalizeAxis(c, a, rank));
    if (axes.empty())
        for (std::int64_t d = 0; d < rank; ++d)
            reduced.insert(d);

    Shape outShape, keptShape;
    for (std::int64_t d = 0; d < rank; ++d) {
        const bool r = reduced.count(d) != 0;
        keptShape.push_back(r ? 1 : x.dim(static_cast<int>(d)));
        if (!r || keepDims)
            outShape.push_back(r ? 1 : x.dim(static_cast<int>(d)));
    }
    // Accumulate in double into the kept-dims layout, then divide.
    std::vector<double> sums(static_cast<std::size_t>(elementCount(keptShape)), 0.0);
    const float* px = x.data<float>();
    std::vector<std::int64_t> index(static_cast<std::size_t>(rank), 0);
    for (std::int64_t i = 0; i < x.size(); ++i) {
        std::int64_t o = 0;
        for (std::int64_t d = 0; d < rank; ++d)
            o = o * keptShape[d] + (reduced.count(d) ? 0 : index[d]);
        sums[static_cast<std::size_t>(o)] += px[i];
        for (std::int64_t d = rank; d-- > 0;) {
            if (++index[d] < x.dim(static_cast<int>(d)))
                break;
            index[d] = 0;
        }
    }
    const double count = static_cast<double>(x.size()) / static_cast<double>(sums.size());
    Tensor out(DataType::Float32, outShape);
    float* po = out.mutableData<float>();
    for (std::size_t i = 0; i < sums.size(); ++i)
        po[i] = static_cast<float>(sums[i] / count);
    return {out};
}

}  // namespace qe
