#include "model/shape_inference.h"

#include "common/error.h"
#include "common/limits.h"
#include "model/graph_transforms.h"
#include "model/onnx_import.h"
#include "model/operator_traits.h"
#include "model/slice.h"
#include "model/window.h"

#include <algorithm>
#include <array>
#include <map>
#include <numeric>
#include <set>

namespace qe {

namespace {

// Thrown by a rule that needs the values of an input computed from the model's input: its
// outputs' shapes cannot be known without running the model, so inference leaves them unknown.
struct ValuesUnknown {};

// Shape chains hold a handful of integers (and flags, such as Dropout's training_mode); a larger
// integer tensor is data, not a shape.
constexpr std::int64_t kMaxPropagatedValues = 1024;

using Outputs = std::vector<TensorFacts>;

std::string describe(const TensorFacts& t) { return dataTypeName(t.dtype) + shapeToString(t.shape); }
int rankOf(const TensorFacts& t) { return static_cast<int>(t.shape.size()); }

void requireNotBool(const TensorFacts& t, const std::string& what)
{
    if (t.dtype == DataType::Bool)
        throw Error(what + ": boolean inputs are not supported");
}

void requireType(const TensorFacts& t, std::initializer_list<DataType> types, const std::string& what)
{
    if (std::find(types.begin(), types.end(), t.dtype) == types.end())
        throw Error(what + " has an unsupported type: " + describe(t));
}

bool isPropagated(DataType type, const Shape& shape)
{
    return (type == DataType::Int64 || type == DataType::Int32 || type == DataType::Bool) &&
           elementCount(shape) <= kMaxPropagatedValues;
}

// A tensor's facts; its values are kept when it is a small integer tensor.
TensorFacts factsOf(const Tensor& tensor)
{
    TensorFacts facts{tensor.dtype(), tensor.shape(), std::nullopt};
    if (isPropagated(tensor.dtype(), tensor.shape()))
        facts.value = tensor;
    return facts;
}

// Facts with values: kept only when the result is a small integer tensor.
TensorFacts withValues(DataType type, Shape shape, const std::vector<std::int64_t>& values)
{
    TensorFacts facts{type, shape, std::nullopt};
    if (isPropagated(type, shape))
        facts.value = Tensor::fromValues<std::int64_t>(std::move(shape), values).castTo(type);
    return facts;
}

// The same values under a new shape (Reshape, Flatten, Squeeze, Unsqueeze, Identity).
TensorFacts reshapedFacts(const TensorFacts& x, Shape shape)
{
    TensorFacts facts{x.dtype, shape, std::nullopt};
    if (x.value)
        facts.value = x.value->reshaped(std::move(shape));
    return facts;
}

std::int64_t normalizeAxis(std::int64_t axis, std::int64_t rank)
{
    if (axis < -rank || axis >= rank)
        throw Error("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
    return axis < 0 ? axis + rank : axis;
}

// An integer list from the opset-dependent place: an attribute in old opsets, an input in new ones.
std::vector<std::int64_t> attributeOrInput(const ShapeContext& c, const char* attribute, std::size_t input,
                                           std::int64_t inputSince)
{
    if (c.opset < inputSince)
        return c.node.intsAttribute(attribute);
    return c.hasInput(input) ? c.values(input) : std::vector<std::int64_t>{};
}

void requireOneOutput(const ShapeContext& c)
{
    if (c.outputCount() > 1)
        throw Error("has " + std::to_string(c.outputCount()) + " outputs; expected 1 (training outputs are not supported)");
}

// ---- Element-wise ----

Outputs sameShape(const ShapeContext& c)
{
    requireOneOutput(c);
    const TensorFacts& x = c.input(0);
    return {{x.dtype, x.shape, std::nullopt}};
}

Outputs identityShape(const ShapeContext& c) { return {c.input(0)}; }

Outputs dropoutShape(const ShapeContext& c)
{
    if (c.hasInput(2) && c.values(2).at(0) != 0)
        throw Error("training_mode=true is not supported; the engine runs inference");
    const TensorFacts& x = c.input(0);
    return {x, {DataType::Bool, x.shape, std::nullopt}};
}

std::int64_t arithmetic(const std::string& op, std::int64_t a, std::int64_t b)
{
    if (op == "Add")
        return a + b;
    if (op == "Sub")
        return a - b;
    if (op == "Mul")
        return a * b;
    if (op == "Div") {
        if (b == 0)
            throw Error("integer division by zero");
        return a / b;
    }
    throw ValuesUnknown{};  // PRelu: never part of a shape computation
}

// The values of a broadcast of small tensors, element by element; nullopt when a value is
// unknown. Shape computations broadcast only tensors of the output's element count (the same
// elements, perhaps with unit dimensions) or single values, so flat indexing is exact for both;
// anything else gives nullopt rather than a general broadcast nobody exports.
template <class Fn>
std::optional<std::vector<std::int64_t>> elementValues(const std::vector<const TensorFacts*>& inputs, const Shape& shape, Fn fn)
{
    std::vector<std::vector<std::int64_t>> values;
    for (const TensorFacts* t : inputs) {
        if (!t->value || (elementCount(t->shape) != elementCount(shape) && elementCount(t->shape) != 1))
            return std::nullopt;
        values.push_back(t->value->toInt64Vector());
    }
    std::vector<std::int64_t> out(static_cast<std::size_t>(elementCount(shape)));
    std::vector<std::int64_t> at(values.size());
    for (std::size_t i = 0; i < out.size(); ++i) {
        for (std::size_t k = 0; k < values.size(); ++k)
            at[k] = values[k][values[k].size() == 1 ? 0 : i];
        out[i] = fn(at);
    }
    return out;
}

Outputs broadcastShape(const ShapeContext& c)
{
    const TensorFacts& a = c.input(0);
    const TensorFacts& b = c.input(1);
    if (a.dtype != b.dtype)
        throw Error("input types differ: " + describe(a) + " and " + describe(b));
    if (a.dtype == DataType::Bool)
        throw Error("boolean inputs are not supported");
    const Shape shape = broadcastShapes(a.shape, b.shape);
    if (isPropagated(a.dtype, shape))
        if (auto v = elementValues({&a, &b}, shape, [&](const auto& x) { return arithmetic(c.node.opType, x[0], x[1]); }))
            return {withValues(a.dtype, shape, *v)};
    return {{a.dtype, shape, std::nullopt}};
}

Outputs powShape(const ShapeContext& c)
{
    const TensorFacts& base = c.input(0);
    requireNotBool(base, "base");
    requireNotBool(c.input(1), "exponent");
    return {{base.dtype, broadcastShapes(base.shape, c.input(1).shape), std::nullopt}};
}

Outputs equalShape(const ShapeContext& c)
{
    const TensorFacts& a = c.input(0);
    const TensorFacts& b = c.input(1);
    if (a.dtype != b.dtype)
        throw Error("input types differ: " + describe(a) + " and " + describe(b));
    const Shape shape = broadcastShapes(a.shape, b.shape);
    if (isPropagated(DataType::Bool, shape))
        if (auto v = elementValues({&a, &b}, shape, [](const auto& x) { return std::int64_t(x[0] == x[1]); }))
            return {withValues(DataType::Bool, shape, *v)};
    return {{DataType::Bool, shape, std::nullopt}};
}

Outputs whereShape(const ShapeContext& c)
{
    const TensorFacts& condition = c.input(0);
    const TensorFacts& x = c.input(1);
    const TensorFacts& y = c.input(2);
    if (condition.dtype != DataType::Bool)
        throw Error("condition must be bool, got " + describe(condition));
    if (x.dtype != y.dtype)
        throw Error("input types differ: " + describe(x) + " and " + describe(y));
    const Shape shape = broadcastShapes(broadcastShapes(condition.shape, x.shape), y.shape);
    if (isPropagated(x.dtype, shape))
        if (auto v = elementValues({&condition, &x, &y}, shape, [](const auto& v) { return v[0] ? v[1] : v[2]; }))
            return {withValues(x.dtype, shape, *v)};
    return {{x.dtype, shape, std::nullopt}};
}

Outputs constantOfShapeShape(const ShapeContext& c)
{
    const std::vector<std::int64_t> dims = c.values(0);
    const Shape shape(dims.begin(), dims.end());
    for (std::int64_t d : dims)
        if (d < 0)
            throw Error("shape " + shapeToString(shape) + " has a negative dimension");
    const Tensor* value = c.node.tensorAttribute("value");
    if (value && value->size() != 1)
        throw Error("attribute value must hold one element, got " + value->describe());
    const DataType type = value ? value->dtype() : DataType::Float32;
    if (!value || !isPropagated(type, shape))
        return {{type, shape, std::nullopt}};
    return {withValues(type, shape, std::vector<std::int64_t>(static_cast<std::size_t>(elementCount(shape)), value->toInt64Vector()[0]))};
}

Outputs expandShape(const ShapeContext& c)
{
    const TensorFacts& x = c.input(0);
    const std::vector<std::int64_t> dims = c.values(1);
    const Shape shape = broadcastShapes(x.shape, Shape(dims.begin(), dims.end()));
    if (isPropagated(x.dtype, shape))
        if (auto v = elementValues({&x}, shape, [](const auto& v) { return v[0]; }))
            return {withValues(x.dtype, shape, *v)};
    return {{x.dtype, shape, std::nullopt}};
}

Outputs layerNormalizationShape(const ShapeContext& c)
{
    const TensorFacts& x = c.input(0);
    requireType(x, {DataType::Float32}, "input");
    const std::int64_t rank = rankOf(x);
    const std::int64_t axis = normalizeAxis(c.node.intAttribute("axis", -1), rank);
    Shape statistics = x.shape;
    for (std::int64_t d = axis; d < rank; ++d)
        statistics[static_cast<std::size_t>(d)] = 1;
    Outputs outputs{{DataType::Float32, x.shape, std::nullopt},
                    {DataType::Float32, statistics, std::nullopt},
                    {DataType::Float32, statistics, std::nullopt}};
    outputs.resize(std::max<std::size_t>(1, std::min<std::size_t>(3, c.outputCount())));
    return outputs;
}

// ---- Windows: convolutions and pooling ----

// The output of a 1-D or 2-D convolution of input `xIndex` by weights `wIndex`, of type `type`.
Outputs convolution(const ShapeContext& c, std::size_t xIndex, std::size_t wIndex, DataType type)
{
    const TensorFacts& x = c.input(xIndex);
    const TensorFacts& w = c.input(wIndex);
    const int spatialRank = rankOf(x) - 2;
    if (spatialRank < 1 || spatialRank > 2)
        throw Error("only 1-D and 2-D convolutions are supported; input is " + describe(x));
    if (rankOf(w) != rankOf(x))
        throw Error("weights " + describe(w) + " do not match input " + describe(x) + " (expected rank " +
                    std::to_string(rankOf(x)) + ")");
    const std::int64_t inChannels = x.shape[1], outChannels = w.shape[0], groupChannels = w.shape[1];
    const std::int64_t group = c.node.intAttribute("group", 1);
    if (group < 1 || inChannels % group != 0 || outChannels % group != 0 || inChannels / group != groupChannels)
        throw Error("input " + describe(x) + " has " + std::to_string(inChannels) + " channels, but weights " +
                    describe(w) + " with group " + std::to_string(group) + " expect " +
                    std::to_string(groupChannels * group));
    const auto kernelShape = c.node.intsAttribute("kernel_shape");
    if (!kernelShape.empty() && kernelShape.back() != w.shape.back())
        throw Error("kernel_shape does not match the weights " + describe(w));
    const std::int64_t inH = spatialRank == 2 ? x.shape[2] : 1, inW = x.shape.back();
    const std::int64_t kernelH = spatialRank == 2 ? w.shape[2] : 1, kernelW = w.shape.back();
    const Window2D window = makeWindow(c.node, spatialRank, inH, inW, kernelH, kernelW, false);
    const Shape out = spatialRank == 2 ? Shape{x.shape[0], outChannels, window.outH, window.outW}
                                       : Shape{x.shape[0], outChannels, window.outW};
    return {{type, out, std::nullopt}};
}

Outputs convShape(const ShapeContext& c)
{
    requireType(c.input(0), {DataType::Float32}, "input");
    requireType(c.input(1), {DataType::Float32}, "weights");
    Outputs out = convolution(c, 0, 1, DataType::Float32);
    if (c.hasInput(2) && elementCount(c.input(2).shape) != out[0].shape[1])
        throw Error("bias " + describe(c.input(2)) + " has " + std::to_string(elementCount(c.input(2).shape)) +
                    " values for " + std::to_string(out[0].shape[1]) + " channels");
    return out;
}

void requireInteger8(const TensorFacts& t, const std::string& what)
{
    requireType(t, {DataType::Int8, DataType::UInt8}, what + " (expected int8 or uint8)");
}

Outputs convIntegerShape(const ShapeContext& c)
{
    requireInteger8(c.input(0), "x");
    requireInteger8(c.input(1), "w");
    return convolution(c, 0, 1, DataType::Int32);
}

// Inputs: x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B.
Outputs qlinearConvShape(const ShapeContext& c)
{
    requireInteger8(c.input(0), "x");
    requireInteger8(c.input(3), "w");
    Outputs out = convolution(c, 0, 3, c.input(7).dtype);
    if (c.hasInput(8) && elementCount(c.input(8).shape) != out[0].shape[1])
        throw Error("bias has " + std::to_string(elementCount(c.input(8).shape)) + " values for " +
                    std::to_string(out[0].shape[1]) + " channels");
    return out;
}

Outputs poolShape(const ShapeContext& c)
{
    const TensorFacts& x = c.input(0);
    if (c.node.opType == "AveragePool")
        requireType(x, {DataType::Float32}, "input");
    const int spatialRank = rankOf(x) - 2;
    if (spatialRank < 1 || spatialRank > 2)
        throw Error("only 1-D and 2-D pooling is supported; input is " + describe(x));
    const auto kernel = c.node.intsAttribute("kernel_shape");
    if (static_cast<int>(kernel.size()) != spatialRank)
        throw Error("kernel_shape must have " + std::to_string(spatialRank) + " values");
    const std::int64_t inH = spatialRank == 2 ? x.shape[2] : 1, inW = x.shape.back();
    const Window2D w = makeWindow(c.node, spatialRank, inH, inW, spatialRank == 2 ? kernel[0] : 1, kernel.back(),
                                  c.node.intAttribute("ceil_mode", 0) != 0);
    const Shape out = spatialRank == 2 ? Shape{x.shape[0], x.shape[1], w.outH, w.outW} : Shape{x.shape[0], x.shape[1], w.outW};
    // MaxPool's optional second output holds the indices of the maxima.
    return {{x.dtype, out, std::nullopt}, {DataType::Int64, out, std::nullopt}};
}

Outputs globalPoolShape(const ShapeContext& c)
{
    const TensorFacts& x = c.input(0);
    requireType(x, {DataType::Float32}, "input");
    if (rankOf(x) < 3)
        throw Error("expects an N x C x spatial input, got " + describe(x));
    Shape out = x.shape;
    std::fill(out.begin() + 2, out.end(), 1);
    return {{x.dtype, out, std::nullopt}};
}

// ---- Matrix products ----

Outputs gemmShape(const ShapeContext& c)
{
    const TensorFacts& a = c.input(0);
    const TensorFacts& b = c.input(1);
    requireType(a, {DataType::Float32, DataType::Float64}, "A");
    if (a.dtype != b.dtype || rankOf(a) != 2 || rankOf(b) != 2)
        throw Error("expects two matrices of the same float type, got " + describe(a) + " and " + describe(b));
    const bool transA = c.node.intAttribute("transA", 0) != 0, transB = c.node.intAttribute("transB", 0) != 0;
    const std::int64_t m = a.shape[transA ? 1 : 0], k = a.shape[transA ? 0 : 1];
    const std::int64_t kb = b.shape[transB ? 1 : 0], n = b.shape[transB ? 0 : 1];
    if (k != kb)
        throw Error("inner dimensions differ: " + describe(a) + (transA ? "^T" : "") + " x " + describe(b) +
                    (transB ? "^T" : "") + " (" + std::to_string(k) + " and " + std::to_string(kb) + ")");
    const Shape out{m, n};
    if (c.hasInput(2) && c.node.floatAttribute("beta", 1.f) != 0.f) {
        const TensorFacts& bias = c.input(2);
        if (bias.dtype != a.dtype || broadcastShapes(out, bias.shape) != out)
            throw Error("C " + describe(bias) + " does not broadcast to " + dataTypeName(a.dtype) + shapeToString(out));
    }
    return {{a.dtype, out, std::nullopt}};
}

Outputs matMulShape(const ShapeContext& c)
{
    const TensorFacts& a = c.input(0);
    const TensorFacts& b = c.input(1);
    requireType(a, {DataType::Float32, DataType::Float64}, "A");
    if (a.dtype != b.dtype || rankOf(a) < 1 || rankOf(b) < 1)
        throw Error("expects two float tensors of the same type, got " + describe(a) + " and " + describe(b));
    // numpy.matmul semantics: 1-D operands are promoted to matrices and the added axis removed.
    Shape sa = a.shape, sb = b.shape;
    const bool vectorA = sa.size() == 1, vectorB = sb.size() == 1;
    if (vectorA)
        sa.insert(sa.begin(), 1);
    if (vectorB)
        sb.push_back(1);
    if (sb[sb.size() - 2] != sa.back())
        throw Error("inner dimensions differ: " + describe(a) + " x " + describe(b) + " (" + std::to_string(sa.back()) +
                    " and " + std::to_string(sb[sb.size() - 2]) + ")");
    Shape out = broadcastShapes(Shape(sa.begin(), sa.end() - 2), Shape(sb.begin(), sb.end() - 2));
    if (!vectorA)
        out.push_back(sa[sa.size() - 2]);
    if (!vectorB)
        out.push_back(sb.back());
    return {{a.dtype, out, std::nullopt}};
}

// [..., M, N] of an integer matrix product; B is 2-D or has as many matrices as A.
Outputs integerMatMul(const TensorFacts& a, const TensorFacts& b, DataType type)
{
    requireInteger8(a, "A");
    requireInteger8(b, "B");
    if (rankOf(a) < 2 || rankOf(b) < 2)
        throw Error("expects matrices, got " + describe(a) + " and " + describe(b));
    const std::int64_t k = a.shape.back();
    if (b.shape[b.shape.size() - 2] != k)
        throw Error("inner dimensions differ: " + describe(a) + " x " + describe(b));
    const std::int64_t matrices = elementCount(Shape(a.shape.begin(), a.shape.end() - 2));
    if (rankOf(b) != 2 && elementCount(Shape(b.shape.begin(), b.shape.end() - 2)) != matrices)
        throw Error("batch dimensions of " + describe(a) + " and " + describe(b) + " differ");
    Shape out(a.shape.begin(), a.shape.end() - 1);
    out.push_back(b.shape.back());
    return {{type, out, std::nullopt}};
}

Outputs matMulIntegerShape(const ShapeContext& c) { return integerMatMul(c.input(0), c.input(1), DataType::Int32); }

// Inputs: a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point.
Outputs qlinearMatMulShape(const ShapeContext& c) { return integerMatMul(c.input(0), c.input(3), c.input(7).dtype); }

// ---- Reductions and normalization ----

Outputs reduceShape(const ShapeContext& c)
{
    const TensorFacts& x = c.input(0);
    requireType(x, {DataType::Float32}, "input");
    const auto rank = static_cast<std::int64_t>(x.shape.size());
    // Opset 18 moved the axes to an input.
    const std::vector<std::int64_t> axes = c.hasInput(1) ? c.values(1) : c.node.intsAttribute("axes");
    const bool keepDims = c.node.intAttribute("keepdims", 1) != 0;
    std::set<std::int64_t> reduced;
    for (std::int64_t a : axes)
        reduced.insert(normalizeAxis(a, rank));
    Shape out;
    for (std::int64_t d = 0; d < rank; ++d) {
        const bool r = axes.empty() || reduced.count(d) != 0;
        if (!r || keepDims)
            out.push_back(r ? 1 : x.shape[static_cast<std::size_t>(d)]);
    }
    return {{x.dtype, out, std::nullopt}};
}

// ---- Data movement ----

Outputs concatShape(const ShapeContext& c)
{
    const TensorFacts& first = c.input(0);
    const std::int64_t axis = normalizeAxis(c.node.intAttribute("axis", 0), rankOf(first));
    Shape out = first.shape;
    out[static_cast<std::size_t>(axis)] = 0;
    bool valuesKnown = true;
    std::vector<std::int64_t> values;
    for (std::size_t i = 0; i < c.inputs.size(); ++i) {
        const TensorFacts& t = c.input(i);
        if (t.dtype != first.dtype || rankOf(t) != rankOf(first))
            throw Error("input " + std::to_string(i) + " " + describe(t) + " does not match input 0 " + describe(first));
        for (int d = 0; d < rankOf(t); ++d)
            if (d != axis && t.shape[d] != first.shape[d])
                throw Error("input " + std::to_string(i) + " " + describe(t) + " differs from input 0 " + describe(first) +
                            " outside the concatenation axis " + std::to_string(axis));
        out[static_cast<std::size_t>(axis)] += t.shape[static_cast<std::size_t>(axis)];
        valuesKnown = valuesKnown && t.value && rankOf(t) == 1;
        if (valuesKnown) {
            const auto v = t.value->toInt64Vector();
            values.insert(values.end(), v.begin(), v.end());
        }
    }
    return {valuesKnown ? withValues(first.dtype, out, values) : TensorFacts{first.dtype, out, std::nullopt}};
}

Outputs reshapeShape(const ShapeContext& c)
{
    const TensorFacts& x = c.input(0);
    const std::vector<std::int64_t> requested = attributeOrInput(c, "shape", 1, 5);
    const bool allowZero = c.node.intAttribute("allowzero", 0) != 0;
    const std::int64_t size = elementCount(x.shape);
    Shape shape;
    std::int64_t inferred = -1, known = 1;
    for (std::size_t i = 0; i < requested.size(); ++i) {
        std::int64_t d = requested[i];
        if (d == 0 && !allowZero) {
            if (i >= x.shape.size())
                throw Error("shape value 0 at position " + std::to_string(i) + " has no input dimension to copy");
            d = x.shape[i];
        }
        if (d == -1) {
            if (inferred >= 0)
                throw Error("more than one -1 in the target shape " + shapeToString(requested));
            inferred = static_cast<std::int64_t>(i);
            d = 1;
        } else if (d < 0) {
            throw Error("invalid target dimension " + std::to_string(d) + " in " + shapeToString(requested));
        }
        known *= d;
        shape.push_back(d);
    }
    if (inferred >= 0) {
        if (known == 0 || size % known != 0)
            throw Error("cannot reshape " + describe(x) + " to " + shapeToString(requested) + ": " +
                        std::to_string(size) + " elements are not a multiple of " + std::to_string(known));
        shape[static_cast<std::size_t>(inferred)] = size / known;
    }
    if (elementCount(shape) != size)
        throw Error("cannot reshape " + describe(x) + " to " + shapeToString(requested) + ": expected a shape of " +
                    std::to_string(size) + " elements, not " + std::to_string(elementCount(shape)));
    return {reshapedFacts(x, shape)};
}

Outputs flattenShape(const ShapeContext& c)
{
    const TensorFacts& x = c.input(0);
    const int rank = rankOf(x);
    // Flatten accepts axis in [-rank, rank]; axis == rank puts everything in the outer dimension.
    std::int64_t axis = c.node.intAttribute("axis", 1);
    if (axis < -rank || axis > rank)
        throw Error("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
    if (axis < 0)
        axis += rank;
    const std::int64_t outer = elementCount(Shape(x.shape.begin(), x.shape.begin() + axis));
    return {reshapedFacts(x, {outer, outer == 0 ? 0 : elementCount(x.shape) / outer})};
}

Outputs transposeShape(const ShapeContext& c)
{
    const TensorFacts& x = c.input(0);
    const int rank = rankOf(x);
    std::vector<std::int64_t> perm = c.node.intsAttribute("perm");
    if (perm.empty())
        for (int d = rank; d-- > 0;)
            perm.push_back(d);
    if (static_cast<int>(perm.size()) != rank)
        throw Error("perm has " + std::to_string(perm.size()) + " entries for rank " + std::to_string(rank));
    std::vector<bool> seen(static_cast<std::size_t>(rank), false);
    Shape out;
    for (std::int64_t p : perm) {
        if (p < 0 || p >= rank || seen[static_cast<std::size_t>(p)])
            throw Error("perm is not a permutation of 0.." + std::to_string(rank - 1));
        seen[static_cast<std::size_t>(p)] = true;
        out.push_back(x.shape[static_cast<std::size_t>(p)]);
    }
    // Values are moved only when nothing moves (rank 0 or 1); shape chains never transpose more.
    return {rank <= 1 ? reshapedFacts(x, out) : TensorFacts{x.dtype, out, std::nullopt}};
}

Outputs squeezeShape(const ShapeContext& c)
{
    const TensorFacts& x = c.input(0);
    const std::vector<std::int64_t> axes = attributeOrInput(c, "axes", 1, 13);
    std::vector<bool> drop(x.shape.size(), false);
    for (std::int64_t a : axes) {
        const std::int64_t d = normalizeAxis(a, rankOf(x));
        if (x.shape[static_cast<std::size_t>(d)] != 1)
            throw Error("cannot squeeze axis " + std::to_string(a) + " of " + describe(x) + " (size is not 1)");
        drop[static_cast<std::size_t>(d)] = true;
    }
    Shape out;
    for (std::size_t d = 0; d < x.shape.size(); ++d)
        if (!(axes.empty() ? x.shape[d] == 1 : drop[d]))
            out.push_back(x.shape[d]);
    return {reshapedFacts(x, out)};
}

Outputs unsqueezeShape(const ShapeContext& c)
{
    const TensorFacts& x = c.input(0);
    const std::vector<std::int64_t> axes = attributeOrInput(c, "axes", 1, 13);
    const std::int64_t rank = rankOf(x) + static_cast<std::int64_t>(axes.size());
    std::vector<bool> inserted(static_cast<std::size_t>(rank), false);
    for (std::int64_t a : axes) {
        const std::int64_t d = normalizeAxis(a, rank);
        if (inserted[static_cast<std::size_t>(d)])
            throw Error("axis " + std::to_string(a) + " is given twice");
        inserted[static_cast<std::size_t>(d)] = true;
    }
    Shape out;
    std::size_t next = 0;
    for (std::int64_t d = 0; d < rank; ++d)
        out.push_back(inserted[static_cast<std::size_t>(d)] ? 1 : x.shape[next++]);
    return {reshapedFacts(x, out)};
}

Outputs sliceShape(const ShapeContext& c)
{
    const TensorFacts& x = c.input(0);
    std::vector<std::int64_t> starts, ends, axes, steps;
    if (c.opset < 10) {
        starts = c.node.intsAttribute("starts");
        ends = c.node.intsAttribute("ends");
        axes = c.node.intsAttribute("axes");
    } else {
        starts = c.values(1);
        ends = c.values(2);
        if (c.hasInput(3))
            axes = c.values(3);
        if (c.hasInput(4))
            steps = c.values(4);
    }
    const SliceGeometry g = sliceGeometry(x.shape, starts, ends, axes, steps);
    if (!x.value || rankOf(x) != 1)
        return {{x.dtype, g.shape, std::nullopt}};
    const auto v = x.value->toInt64Vector();
    std::vector<std::int64_t> picked;
    for (std::int64_t i = 0; i < g.shape[0]; ++i)
        picked.push_back(v[static_cast<std::size_t>(g.begin[0] + i * g.step[0])]);
    return {withValues(x.dtype, g.shape, picked)};
}

Outputs gatherShape(const ShapeContext& c)
{
    const TensorFacts& data = c.input(0);
    const TensorFacts& indices = c.input(1);
    if (rankOf(data) < 1)
        throw Error("data must have rank >= 1");
    const auto axis = static_cast<std::size_t>(normalizeAxis(c.node.intAttribute("axis", 0), rankOf(data)));
    const std::int64_t length = data.shape[axis];
    Shape out(data.shape.begin(), data.shape.begin() + static_cast<std::ptrdiff_t>(axis));
    out.insert(out.end(), indices.shape.begin(), indices.shape.end());
    out.insert(out.end(), data.shape.begin() + static_cast<std::ptrdiff_t>(axis) + 1, data.shape.end());
    if (!indices.value)
        return {{data.dtype, out, std::nullopt}};
    std::vector<std::int64_t> picks = indices.value->toInt64Vector();
    for (std::int64_t& i : picks) {
        if (i < -length || i >= length)
            throw Error("index " + std::to_string(i) + " is out of range for axis length " + std::to_string(length));
        if (i < 0)
            i += length;
    }
    if (!data.value || rankOf(data) != 1)
        return {{data.dtype, out, std::nullopt}};
    const auto v = data.value->toInt64Vector();
    std::vector<std::int64_t> picked;
    for (std::int64_t i : picks)
        picked.push_back(v[static_cast<std::size_t>(i)]);
    return {withValues(data.dtype, out, picked)};
}

Outputs splitShape(const ShapeContext& c)
{
    const TensorFacts& x = c.input(0);
    const auto axis = static_cast<std::size_t>(normalizeAxis(c.node.intAttribute("axis", 0), rankOf(x)));
    const std::int64_t length = x.shape[axis];
    std::vector<std::int64_t> sizes = attributeOrInput(c, "split", 1, 13);
    const auto parts = static_cast<std::int64_t>(c.outputCount());
    if (sizes.empty()) {
        if (length % parts != 0)
            throw Error("axis length " + std::to_string(length) + " does not split into " + std::to_string(parts) +
                        " equal parts");
        sizes.assign(static_cast<std::size_t>(parts), length / parts);
    }
    if (static_cast<std::int64_t>(sizes.size()) != parts ||
        std::accumulate(sizes.begin(), sizes.end(), std::int64_t{0}) != length)
        throw Error("split sizes " + shapeToString(sizes) + " do not add up to the axis length " + std::to_string(length));
    Outputs outputs;
    for (std::int64_t size : sizes) {
        Shape shape = x.shape;
        shape[axis] = size;
        outputs.push_back({x.dtype, shape, std::nullopt});
    }
    return outputs;
}

Outputs padShape(const ShapeContext& c)
{
    const TensorFacts& x = c.input(0);
    const int rank = rankOf(x);
    const std::string mode = c.node.stringAttribute("mode", "constant");
    if (mode != "constant" && mode != "reflect" && mode != "edge")
        throw Error("mode '" + mode + "' is not one of constant, reflect, edge");
    // Opset 1 called the attribute "paddings"; opset 11 moved it to an input.
    const std::vector<std::int64_t> pads =
        c.opset < 11 ? c.node.intsAttribute("pads", c.node.intsAttribute("paddings")) : c.values(1);
    std::vector<std::int64_t> axes;
    if (c.hasInput(3))
        for (std::int64_t a : c.values(3))
            axes.push_back(normalizeAxis(a, rank));
    else
        for (int d = 0; d < rank; ++d)
            axes.push_back(d);
    if (pads.size() != 2 * axes.size())
        throw Error("pads has " + std::to_string(pads.size()) + " values, expected " + std::to_string(2 * axes.size()));
    Shape out = x.shape;
    for (std::size_t i = 0; i < axes.size(); ++i) {
        const auto d = static_cast<std::size_t>(axes[i]);
        const std::int64_t before = pads[i], after = pads[i + axes.size()], n = x.shape[d];
        out[d] = n + before + after;
        if (out[d] < 0)
            throw Error("negative pads remove more than axis " + std::to_string(d) + " holds");
        if (mode == "reflect" && (before >= n || after >= n) && (before > 0 || after > 0))
            throw Error("reflect padding must be smaller than the axis length");
        if (mode == "edge" && n == 0 && out[d] > 0)
            throw Error("edge padding of an empty axis");
    }
    return {{x.dtype, out, std::nullopt}};
}

// ---- Constants, shapes and casts ----

Outputs constantShape(const ShapeContext& c)
{
    const Node& node = c.node;
    if (const Tensor* value = node.tensorAttribute("value"))
        return {factsOf(*value)};
    if (node.hasAttribute("value_float"))
        return {{DataType::Float32, {}, std::nullopt}};
    if (node.hasAttribute("value_floats"))
        return {{DataType::Float32, {static_cast<std::int64_t>(node.floatsAttribute("value_floats").size())}, std::nullopt}};
    if (node.hasAttribute("value_int"))
        return {withValues(DataType::Int64, {}, {node.intAttribute("value_int", 0)})};
    if (node.hasAttribute("value_ints")) {
        const auto v = node.intsAttribute("value_ints");
        return {withValues(DataType::Int64, {static_cast<std::int64_t>(v.size())}, v)};
    }
    throw Error("needs one of the attributes value, value_float(s), value_int(s) (sparse and string values are not supported)");
}

Outputs shapeOfShape(const ShapeContext& c)
{
    const Shape& shape = c.input(0).shape;
    const auto [start, end] = shapeNodeRange(c.node, static_cast<std::int64_t>(shape.size()));
    const std::vector<std::int64_t> dims(shape.begin() + start, shape.begin() + end);
    return {withValues(DataType::Int64, {static_cast<std::int64_t>(dims.size())}, dims)};
}

Outputs castShape(const ShapeContext& c)
{
    const TensorFacts& x = c.input(0);
    const DataType type = convertDataType(static_cast<int>(c.node.intAttribute("to", -1)), "attribute 'to'");
    TensorFacts out{type, x.shape, std::nullopt};
    if (x.value && isPropagated(type, x.shape))
        out.value = x.value->castTo(type);
    return {out};
}

Outputs quantizeShape(const ShapeContext& c)
{
    const TensorFacts& x = c.input(0);
    requireType(x, {DataType::Float32, DataType::Int32}, "input");
    const DataType type = c.hasInput(2) ? c.input(2).dtype : DataType::UInt8;
    if (type != DataType::UInt8 && type != DataType::Int8)
        throw Error("zero point type " + dataTypeName(type) + " is not supported (uint8 or int8)");
    return {{type, x.shape, std::nullopt}};
}

Outputs dequantizeShape(const ShapeContext& c)
{
    const TensorFacts& x = c.input(0);
    requireType(x, {DataType::UInt8, DataType::Int8, DataType::Int32}, "input");
    return {{DataType::Float32, x.shape, std::nullopt}};
}

Outputs dynamicQuantizeShape(const ShapeContext& c)
{
    const TensorFacts& x = c.input(0);
    requireType(x, {DataType::Float32}, "input");
    return {{DataType::UInt8, x.shape, std::nullopt}, {DataType::Float32, {}, std::nullopt}, {DataType::UInt8, {}, std::nullopt}};
}

struct ShapeRuleEntry {
    std::string_view name;
    ShapeRule rule;
};

#define QE_SHAPE_RULE_ENTRY(Name, Role, Weight, Bias, Fuses, Family, Rule) ShapeRuleEntry{#Name, &Rule},
constexpr std::array kShapeRules{QE_OPERATORS(QE_SHAPE_RULE_ENTRY)};
#undef QE_SHAPE_RULE_ENTRY

using FactsMap = std::map<std::string, TensorFacts>;

// Every tensor's facts with the model's symbolic leading axis set to `batch`; a tensor whose
// shape depends on values computed from the model's input is absent, and so is what follows it.
FactsMap inferAt(const Graph& graph, std::int64_t batch)
{
    FactsMap known;
    for (const auto& [name, tensor] : graph.initializers)
        known[name] = factsOf(tensor);
    for (const ValueInfo& input : graph.inputs) {
        Shape shape;
        for (const Dim& d : input.shape)
            shape.push_back(d.isDynamic() ? batch : d.value);
        known[input.name] = {input.dtype, shape, std::nullopt};
    }
    for (const Node& node : graph.nodes) {
        const std::string where = "node '" + node.name + "' (" + node.opType + "): ";
        const ShapeRule rule = findShapeRule(node.opType);
        if (!rule)
            throw Error(unsupportedOperatorMessage(node.name, node.opType, node.domain));
        ShapeContext context{node, graph.opsetVersion, {}};
        bool inputsKnown = true;
        for (const std::string& name : node.inputs) {
            const auto it = name.empty() ? known.end() : known.find(name);
            inputsKnown = inputsKnown && (name.empty() || it != known.end());
            context.inputs.push_back(it == known.end() ? nullptr : &it->second);
        }
        if (!inputsKnown)
            continue;
        Outputs outputs;
        try {
            outputs = rule(context);
            for (std::size_t o = 0; o < outputs.size() && o < node.outputs.size(); ++o) {
                // The engine would allocate this much; an absurd size is refused here, at load time.
                const std::uint64_t bytes =
                    static_cast<std::uint64_t>(elementCount(outputs[o].shape)) * dataTypeSize(outputs[o].dtype);
                checkMemoryBudget(bytes, "output '" + node.outputs[o] + "' " + describe(outputs[o]));
            }
        } catch (const ValuesUnknown&) {
            continue;
        } catch (const Error& e) {
            throw Error(where + e.what());
        }
        for (std::size_t o = 0; o < outputs.size() && o < node.outputs.size(); ++o)
            if (!node.outputs[o].empty())
                known[node.outputs[o]] = std::move(outputs[o]);
    }
    return known;
}

}  // namespace

const TensorFacts& ShapeContext::input(std::size_t i) const
{
    if (!hasInput(i))
        throw Error("input " + std::to_string(i) + " is required but missing");
    return *inputs[i];
}

std::vector<std::int64_t> ShapeContext::values(std::size_t i) const
{
    const TensorFacts& facts = input(i);
    if (!facts.value)
        throw ValuesUnknown{};
    return facts.value->toInt64Vector();
}

ShapeRule findShapeRule(std::string_view opType)
{
    for (const ShapeRuleEntry& entry : kShapeRules)
        if (entry.name == opType)
            return entry.rule;
    return nullptr;
}

std::pair<std::int64_t, std::int64_t> shapeNodeRange(const Node& node, std::int64_t rank)
{
    std::int64_t start = node.intAttribute("start", 0), end = node.intAttribute("end", rank);
    start = std::clamp<std::int64_t>(start < 0 ? start + rank : start, 0, rank);
    end = std::clamp<std::int64_t>(end < 0 ? end + rank : end, 0, rank);
    return {start, end};
}

void inferShapes(Graph& graph)
{
    for (const ValueInfo& input : graph.inputs) {
        if (!input.shapeKnown)
            return;
        for (std::size_t d = 1; d < input.shape.size(); ++d)
            if (input.shape[d].isDynamic())
                return;
    }
    bool hasDynamicBatch = false;
    std::string batchSymbol = "N";
    for (const ValueInfo& input : graph.inputs)
        if (!input.shape.empty() && input.shape[0].isDynamic()) {
            hasDynamicBatch = true;
            if (!input.shape[0].symbol.empty())
                batchSymbol = input.shape[0].symbol;
        }

    // Two batch sizes, so a dimension that follows the batch shows as one that changes. 2 and 3,
    // not 1: a batch of one is degenerate (a Squeeze without axes would drop it).
    const FactsMap first = inferAt(graph, hasDynamicBatch ? 2 : 1);
    const FactsMap second = hasDynamicBatch ? inferAt(graph, 3) : first;

    auto describeTensor = [&](const std::string& name) {
        const auto a = first.find(name), b = second.find(name);
        // Unknown (its shape needs the model's input values): the file's own declaration stays.
        if (a == first.end() || b == second.end())
            return;
        ValueInfo info;
        info.name = name;
        info.dtype = a->second.dtype;
        const Shape& shape = a->second.shape;
        const Shape& other = b->second.shape;
        // A rank that depends on the batch size cannot be described: leave the shape unknown.
        info.shapeKnown = other.size() == shape.size();
        for (std::size_t d = 0; info.shapeKnown && d < shape.size(); ++d) {
            Dim dim;
            if (other[d] != shape[d])
                dim.symbol = (shape[d] == 2 && other[d] == 3) ? batchSymbol : "?";
            else
                dim.value = shape[d];
            info.shape.push_back(dim);
        }
        graph.values[name] = info;
    };
    for (const ValueInfo& input : graph.inputs)
        describeTensor(input.name);
    for (const Node& node : graph.nodes)
        for (const std::string& output : node.outputs)
            if (!output.empty())
                describeTensor(output);
    for (ValueInfo& output : graph.outputs) {
        auto it = graph.values.find(output.name);
        if (it != graph.values.end())
            output = it->second;
    }
}

Graph foldStaticShapes(Graph graph)
{
    auto staticShape = [&](const std::string& tensor, std::vector<bool>& dynamic) -> std::optional<Shape> {
        auto it = graph.values.find(tensor);
        if (it == graph.values.end() || !it->second.shapeKnown)
            return std::nullopt;
        Shape shape;
        dynamic.clear();
        for (const Dim& d : it->second.shape) {
            shape.push_back(d.isDynamic() ? -1 : d.value);
            dynamic.push_back(d.isDynamic());
        }
        return shape;
    };

    for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
        Node& node = graph.nodes[i];
        if (node.opType != "Shape")
            continue;
        std::vector<bool> dynamic;
        auto shape = staticShape(node.input(0), dynamic);
        if (!shape)
            continue;
        const auto [start, end] = shapeNodeRange(node, static_cast<std::int64_t>(shape->size()));
        Shape dims;
        std::vector<bool> dims_dynamic;
        for (std::int64_t d = start; d < end; ++d) {
            dims.push_back((*shape)[static_cast<std::size_t>(d)]);
            dims_dynamic.push_back(dynamic[static_cast<std::size_t>(d)]);
        }
        const bool anyDynamic = std::find(dims_dynamic.begin(), dims_dynamic.end(), true) != dims_dynamic.end();
        if (!anyDynamic) {
            // Turn the Shape node into a Constant; foldConstants will take it from there.
            node.opType = "Constant";
            node.inputs.clear();
            node.attributes.clear();
            node.attributes["value"] = Tensor::fromValues<std::int64_t>({static_cast<std::int64_t>(dims.size())}, dims);
            continue;
        }
        // Partially dynamic: fold the Gathers that pick only static dimensions.
        for (Node& consumer : graph.nodes) {
            if (consumer.opType != "Gather" || consumer.input(0) != node.outputs[0] ||
                !graph.isInitializer(consumer.input(1)))
                continue;
            const Tensor& indices = graph.initializers.at(consumer.input(1));
            std::vector<std::int64_t> picked;
            bool ok = true;
            for (std::int64_t index : indices.toInt64Vector()) {
                const auto n = static_cast<std::int64_t>(dims.size());
                if (index < 0)
                    index += n;
                if (index < 0 || index >= n || dims_dynamic[static_cast<std::size_t>(index)]) {
                    ok = false;
                    break;
                }
                picked.push_back(dims[static_cast<std::size_t>(index)]);
            }
            if (!ok)
                continue;
            consumer.opType = "Constant";
            consumer.inputs.clear();
            consumer.attributes.clear();
            consumer.attributes["value"] = Tensor::fromValues<std::int64_t>(indices.shape(), picked);
        }
    }
    removeDeadCode(graph);
    return graph;
}

}  // namespace qe
