// Element-wise operators: the broadcasting arithmetic and the activations.

#include "engine/operator.h"
#include "engine/ops/broadcast.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

namespace qe {

namespace {

template <class Op> Tensor binary(const OpContext& context, Op op)
{
    const Tensor& a = context.input(0);
    const Tensor& b = context.input(1);
    if (a.dtype() != b.dtype())
        failNode(context, "input types differ: " + a.describe() + " and " + b.describe());
    const Shape shape = broadcastShapes(a.shape(), b.shape());
    Tensor out = Tensor::uninitialized(a.dtype(), shape);  // every element is written (or the node fails)
    dispatchType(a.dtype(), [&](auto v) {
        using T = decltype(v);
        if constexpr (std::is_same_v<T, bool>) {
            failNode(context, "boolean inputs are not supported");
        } else {
            const T* pa = a.data<T>();
            const T* pb = b.data<T>();
            T* po = out.mutableData<T>();
            if (a.shape() == b.shape()) {
                const std::int64_t n = out.size();
#pragma omp parallel for if (n > 65536)
                for (std::int64_t i = 0; i < n; ++i)
                    po[i] = op(pa[i], pb[i]);
            } else {
                forEachBroadcast(shape, a.shape(), b.shape(),
                                 [&](std::int64_t o, std::int64_t ia, std::int64_t ib) { po[o] = op(pa[ia], pb[ib]); });
            }
        }
    });
    return out;
}

// Float-only activation: y = fn(x).
template <class Fn> Tensor unaryFloat(const OpContext& context, Fn fn)
{
    const Tensor& x = context.input(0);
    if (x.dtype() != DataType::Float32 && x.dtype() != DataType::Float64)
        failNode(context, "expects a float input, got " + x.describe());
    Tensor out = Tensor::uninitialized(x.dtype(), x.shape());  // every element is written
    dispatchType(x.dtype(), [&](auto v) {
        using T = decltype(v);
        if constexpr (std::is_floating_point_v<T>) {
            const T* px = x.data<T>();
            T* po = out.mutableData<T>();
            const std::int64_t n = x.size();
#pragma omp parallel for if (n > 65536)
            for (std::int64_t i = 0; i < n; ++i)
                po[i] = static_cast<T>(fn(px[i]));
        }
    });
    return out;
}

// Numeric activation for every non-bool type: y = fn(x).
template <class Fn> Tensor unaryNumeric(const OpContext& context, Fn fn)
{
    const Tensor& x = context.input(0);
    Tensor out = Tensor::uninitialized(x.dtype(), x.shape());  // every element is written (or the node fails)
    dispatchType(x.dtype(), [&](auto v) {
        using T = decltype(v);
        if constexpr (std::is_same_v<T, bool>) {
            failNode(context, "boolean inputs are not supported");
        } else {
            const T* px = x.data<T>();
            T* po = out.mutableData<T>();
            for (std::int64_t i = 0; i < x.size(); ++i)
                po[i] = static_cast<T>(fn(px[i]));
        }
    });
    return out;
}

}  // namespace

std::vector<Tensor> runAdd(const OpContext& c) { return {binary(c, [](auto a, auto b) { return static_cast<decltype(a)>(a + b); })}; }
std::vector<Tensor> runSub(const OpContext& c) { return {binary(c, [](auto a, auto b) { return static_cast<decltype(a)>(a - b); })}; }
std::vector<Tensor> runMul(const OpContext& c) { return {binary(c, [](auto a, auto b) { return static_cast<decltype(a)>(a * b); })}; }

std::vector<Tensor> runDiv(const OpContext& c)
{
    // Checked before the (possibly parallel) loop: an exception must not leave an OpenMP region.
    const Tensor& divisor = c.input(1);
    if (divisor.dtype() != DataType::Float32 && divisor.dtype() != DataType::Float64) {
        bool minusOne = false;
        for (std::int64_t d : divisor.toInt64Vector()) {
            if (d == 0)
                failNode(c, "integer division by zero");
            minusOne = minusOne || d == -1;
        }
        // The one integer quotient that overflows (the minimum value / -1) traps on x86.
        const DataType type = c.input(0).dtype();
        if (minusOne && (type == DataType::Int32 || type == DataType::Int64))
            for (std::int64_t n : c.input(0).toInt64Vector())
                if (n == (type == DataType::Int32 ? std::numeric_limits<std::int32_t>::min() : std::numeric_limits<std::int64_t>::min()))
                    failNode(c, "integer division overflows (the minimum value divided by -1)");
    }
    return {binary(c, [](auto a, auto b) { return static_cast<decltype(a)>(a / b); })};
}

std::vector<Tensor> runPRelu(const OpContext& c)
{
    // Slope broadcasts unidirectionally onto x; as binary(x, slope) the output shape is x's.
    return {binary(c, [](auto x, auto slope) { return static_cast<decltype(x)>(x < 0 ? x * slope : x); })};
}

std::vector<Tensor> runRelu(const OpContext& c)
{
    return {unaryNumeric(c, [](auto x) { return x > 0 ? x : static_cast<decltype(x)>(0); })};
}

std::vector<Tensor> runLeakyRelu(const OpContext& c)
{
    const float alpha = c.node.floatAttribute("alpha", 0.01f);
    return {unaryFloat(c, [alpha](auto x) { return x >= 0 ? x : x * alpha; })};
}

std::vector<Tensor> runSigmoid(const OpContext& c)
{
    return {unaryFloat(c, [](auto x) { return 1 / (1 + std::exp(-x)); })};
}

std::vector<Tensor> runHardSigmoid(const OpContext& c)
{
    const float alpha = c.node.floatAttribute("alpha", 0.2f);
    const float beta = c.node.floatAttribute("beta", 0.5f);
    return {unaryFloat(c, [=](auto x) { return std::clamp<decltype(x)>(alpha * x + beta, 0, 1); })};
}

std::vector<Tensor> runHardSwish(const OpContext& c)
{
    // HardSwish(x) = x * HardSigmoid(x) with alpha = 1/6, beta = 0.5 (ONNX definition).
    return {unaryFloat(c, [](auto x) { return x * std::clamp<decltype(x)>(x / 6 + decltype(x)(0.5), 0, 1); })};
}

std::vector<Tensor> runTanh(const OpContext& c) { return {unaryFloat(c, [](auto x) { return std::tanh(x); })}; }
std::vector<Tensor> runExp(const OpContext& c) { return {unaryFloat(c, [](auto x) { return std::exp(x); })}; }
std::vector<Tensor> runSqrt(const OpContext& c) { return {unaryFloat(c, [](auto x) { return std::sqrt(x); })}; }
std::vector<Tensor> runErf(const OpContext& c) { return {unaryFloat(c, [](auto x) { return std::erf(x); })}; }

std::vector<Tensor> runGelu(const OpContext& c)
{
    const std::string approximate = c.node.stringAttribute("approximate", "none");
    if (approximate == "tanh")
        return {unaryFloat(c, [](auto x) {
            using T = decltype(x);
            const T k = static_cast<T>(0.7978845608028654);  // sqrt(2 / pi)
            return T(0.5) * x * (T(1) + std::tanh(k * (x + T(0.044715) * x * x * x)));
        })};
    if (approximate != "none")
        failNode(c, "attribute approximate is '" + approximate + "'; expected 'none' or 'tanh'");
    return {unaryFloat(c, [](auto x) {
        using T = decltype(x);
        return T(0.5) * x * (T(1) + std::erf(x * static_cast<T>(0.7071067811865476)));
    })};
}

std::vector<Tensor> runPow(const OpContext& c)
{
    // The exponent may have another type than the base (pow_types_float32_int64); the result has
    // the base's. Computed in double, as numpy's reference does for these types.
    const Tensor& base = c.input(0);
    const Tensor exponent = c.input(1).castTo(DataType::Float64);
    const Shape shape = broadcastShapes(base.shape(), exponent.shape());
    Tensor out(base.dtype(), shape);
    const double* pe = exponent.data<double>();
    dispatchType(base.dtype(), [&](auto v) {
        using T = decltype(v);
        if constexpr (std::is_same_v<T, bool>) {
            failNode(c, "boolean inputs are not supported");
        } else {
            const T* pb = base.data<T>();
            T* po = out.mutableData<T>();
            forEachBroadcast(shape, base.shape(), exponent.shape(), [&](std::int64_t o, std::int64_t ib, std::int64_t ie) {
                po[o] = static_cast<T>(std::pow(static_cast<double>(pb[ib]), pe[ie]));
            });
        }
    });
    return {out};
}

std::vector<Tensor> runEqual(const OpContext& c)
{
    const Tensor& a = c.input(0);
    const Tensor& b = c.input(1);
    if (a.dtype() != b.dtype())
        failNode(c, "input types differ: " + a.describe() + " and " + b.describe());
    const Shape shape = broadcastShapes(a.shape(), b.shape());
    Tensor out(DataType::Bool, shape);
    bool* po = out.mutableData<bool>();
    dispatchType(a.dtype(), [&](auto v) {
        using T = decltype(v);
        const T* pa = a.data<T>();
        const T* pb = b.data<T>();
        forEachBroadcast(shape, a.shape(), b.shape(), [&](std::int64_t o, std::int64_t ia, std::int64_t ib) { po[o] = pa[ia] == pb[ib]; });
    });
    return {out};
}

std::vector<Tensor> runWhere(const OpContext& c)
{
    const Tensor& condition = c.input(0);
    const Tensor& x = c.input(1);
    const Tensor& y = c.input(2);
    if (condition.dtype() != DataType::Bool)
        failNode(c, "condition must be bool, got " + condition.describe());
    if (x.dtype() != y.dtype())
        failNode(c, "input types differ: " + x.describe() + " and " + y.describe());
    const Shape shape = broadcastShapes(broadcastShapes(condition.shape(), x.shape()), y.shape());
    const Tensor pick = broadcastTo(condition, shape), a = broadcastTo(x, shape), b = broadcastTo(y, shape);
    Tensor out = Tensor::uninitialized(x.dtype(), shape);
    const std::size_t size = dataTypeSize(x.dtype());
    const bool* pc = pick.data<bool>();
    for (std::int64_t i = 0; i < out.size(); ++i)
        std::memcpy(out.mutableRawData() + i * size, (pc[i] ? a : b).rawData() + i * size, size);
    return {out};
}

std::vector<Tensor> runNeg(const OpContext& c) { return {unaryNumeric(c, [](auto x) { return -x; })}; }
std::vector<Tensor> runAbs(const OpContext& c)
{
    return {unaryNumeric(c, [](auto x) {
        if constexpr (std::is_unsigned_v<decltype(x)>)
            return x;
        else
            return x < 0 ? -x : x;
    })};
}

std::vector<Tensor> runClip(const OpContext& c)
{
    const Tensor& x = c.input(0);
    Tensor out = Tensor::uninitialized(x.dtype(), x.shape());  // every element is written (or the node fails)
    dispatchType(x.dtype(), [&](auto v) {
        using T = decltype(v);
        if constexpr (std::is_same_v<T, bool>) {
            failNode(c, "boolean inputs are not supported");
        } else {
            T lo = std::numeric_limits<T>::lowest();
            T hi = std::numeric_limits<T>::max();
            if (c.opset < 11) {  // min and max were attributes before opset 11
                lo = static_cast<T>(c.node.floatAttribute("min", static_cast<float>(lo)));
                hi = static_cast<T>(c.node.floatAttribute("max", static_cast<float>(hi)));
                if constexpr (std::is_floating_point_v<T>) {
                    if (!c.node.hasAttribute("min"))
                        lo = -std::numeric_limits<T>::infinity();
                    if (!c.node.hasAttribute("max"))
                        hi = std::numeric_limits<T>::infinity();
                }
            } else {
                for (std::size_t k : {std::size_t{1}, std::size_t{2}})
                    if (c.hasInput(k) && c.input(k).size() != 1)
                        failNode(c, "min and max must be scalars, got " + c.input(k).describe());
                if (c.hasInput(1))
                    lo = c.input(1).template data<T>()[0];
                if (c.hasInput(2))
                    hi = c.input(2).template data<T>()[0];
            }
            const T* px = x.data<T>();
            T* po = out.mutableData<T>();
            for (std::int64_t i = 0; i < x.size(); ++i)
                po[i] = std::min(std::max(px[i], lo), hi);  // min(max()) so that lo > hi gives hi, as ONNX says
        }
    });
    return {out};
}

}  // namespace qe
