// Operators that move data without arithmetic: reshapes, transposes, joins and splits, padding,
// gathers and slices, plus Constant, ConstantOfShape, Expand, Shape, Cast, Identity and inference-mode Dropout.
// They work on raw bytes, so every element type is supported by the same code.

#include "engine/operator.h"
#include "engine/ops/broadcast.h"
#include "model/onnx_import.h"
#include "model/shape_inference.h"
#include "model/slice.h"

#include <algorithm>
#include <cstring>
#include <numeric>

namespace qe {

namespace {

std::vector<std::int64_t> stridesOf(const Shape& shape)
{
    std::vector<std::int64_t> strides(shape.size(), 1);
    for (std::size_t d = shape.size(); d-- > 1;)
        strides[d - 1] = strides[d] * shape[d];
    return strides;
}

// An integer list from the opset-dependent place: an attribute in old opsets, an input in new ones.
std::vector<std::int64_t> attributeOrInput(const OpContext& c, const char* attribute, std::size_t input,
                                           std::int64_t inputSince, bool* present = nullptr)
{
    if (c.opset < inputSince) {
        if (present)
            *present = c.node.hasAttribute(attribute);
        return c.node.intsAttribute(attribute);
    }
    if (present)
        *present = c.hasInput(input);
    return c.hasInput(input) ? c.input(input).toInt64Vector() : std::vector<std::int64_t>{};
}

}  // namespace

std::vector<Tensor> runIdentity(const OpContext& c) { return {c.input(0)}; }

std::vector<Tensor> runDropout(const OpContext& c)
{
    if (c.hasInput(2) && c.input(2).toInt64Vector().at(0) != 0)
        failNode(c, "training_mode=true is not supported; the engine runs inference");
    std::vector<Tensor> outputs{c.input(0)};
    if (c.outputCount() > 1) {
        Tensor mask(DataType::Bool, c.input(0).shape());
        std::fill(mask.mutableData<bool>(), mask.mutableData<bool>() + mask.size(), true);
        outputs.push_back(mask);
    }
    return outputs;
}

std::vector<Tensor> runConstant(const OpContext& c)
{
    const Node& node = c.node;
    if (const Tensor* value = node.tensorAttribute("value"))
        return {*value};
    if (node.hasAttribute("value_float"))
        return {Tensor::scalar<float>(node.floatAttribute("value_float", 0.f))};
    if (node.hasAttribute("value_floats")) {
        const auto v = node.floatsAttribute("value_floats");
        return {Tensor::fromValues<float>({static_cast<std::int64_t>(v.size())}, v)};
    }
    if (node.hasAttribute("value_int"))
        return {Tensor::scalar<std::int64_t>(node.intAttribute("value_int", 0))};
    if (node.hasAttribute("value_ints")) {
        const auto v = node.intsAttribute("value_ints");
        return {Tensor::fromValues<std::int64_t>({static_cast<std::int64_t>(v.size())}, v)};
    }
    failNode(c, "needs one of the attributes value, value_float(s), value_int(s) (sparse and string values are not supported)");
}

std::vector<Tensor> runConstantOfShape(const OpContext& c)
{
    const std::vector<std::int64_t> dims = c.input(0).toInt64Vector();
    for (std::int64_t d : dims)
        if (d < 0)
            failNode(c, "shape " + shapeToString(Shape(dims.begin(), dims.end())) + " has a negative dimension");
    Tensor value = Tensor::scalar<float>(0.f);  // ONNX's default: a float 0
    if (const Tensor* given = c.node.tensorAttribute("value")) {
        if (given->size() != 1)
            failNode(c, "attribute value must hold one element, got " + given->describe());
        value = *given;
    }
    return {broadcastTo(value.reshaped({}), Shape(dims.begin(), dims.end()))};
}

std::vector<Tensor> runExpand(const OpContext& c)
{
    const std::vector<std::int64_t> dims = c.input(1).toInt64Vector();
    const Shape shape = broadcastShapes(c.input(0).shape(), Shape(dims.begin(), dims.end()));
    return {broadcastTo(c.input(0), shape)};
}

std::vector<Tensor> runShape(const OpContext& c)
{
    const Shape& shape = c.input(0).shape();
    const auto [start, end] = shapeNodeRange(c.node, static_cast<std::int64_t>(shape.size()));
    std::vector<std::int64_t> dims;
    for (std::int64_t d = start; d < end; ++d)
        dims.push_back(shape[static_cast<std::size_t>(d)]);
    return {Tensor::fromValues<std::int64_t>({static_cast<std::int64_t>(dims.size())}, dims)};
}

std::vector<Tensor> runCast(const OpContext& c)
{
    // ONNX TensorProto.DataType numbering.
    const DataType type = convertDataType(static_cast<int>(c.node.intAttribute("to", -1)), "attribute 'to'");
    return {c.input(0).castTo(type)};
}

std::vector<Tensor> runFlatten(const OpContext& c)
{
    const Tensor& x = c.input(0);
    // Flatten accepts axis in [-rank, rank]; axis == rank puts everything in the outer dimension.
    std::int64_t axis = c.node.intAttribute("axis", 1);
    if (axis < -x.rank() || axis > x.rank())
        failNode(c, "axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(x.rank()));
    if (axis < 0)
        axis += x.rank();
    std::int64_t outer = 1;
    for (std::int64_t d = 0; d < axis; ++d)
        outer *= x.dim(static_cast<int>(d));
    return {x.reshaped({outer, outer == 0 ? 0 : x.size() / outer})};
}

std::vector<Tensor> runReshape(const OpContext& c)
{
    const Tensor& x = c.input(0);
    const std::vector<std::int64_t> requested = attributeOrInput(c, "shape", 1, 5);
    const bool allowZero = c.node.intAttribute("allowzero", 0) != 0;
    Shape shape;
    std::int64_t inferred = -1, known = 1;
    for (std::size_t i = 0; i < requested.size(); ++i) {
        std::int64_t d = requested[i];
        if (d == 0 && !allowZero) {
            if (static_cast<int>(i) >= x.rank())
                failNode(c, "shape value 0 at position " + std::to_string(i) + " has no input dimension to copy");
            d = x.dim(static_cast<int>(i));
        }
        if (d == -1) {
            if (inferred >= 0)
                failNode(c, "more than one -1 in the target shape");
            inferred = static_cast<std::int64_t>(i);
            d = 1;
        } else if (d < 0) {
            failNode(c, "invalid target dimension " + std::to_string(d));
        }
        known *= d;
        shape.push_back(d);
    }
    if (inferred >= 0) {
        if (known == 0 || x.size() % known != 0)
            failNode(c, "cannot infer -1 when reshaping " + x.describe() + " to " + shapeToString(requested));
        shape[static_cast<std::size_t>(inferred)] = x.size() / known;
    }
    if (elementCount(shape) != x.size())
        failNode(c, "cannot reshape " + x.describe() + " to " + shapeToString(requested));
    return {x.reshaped(shape)};
}

// Copies a transposed tensor's elements in output order; stepIn is the input stride along each
// output axis. When the innermost axis stays innermost its rows are contiguous on both sides and
// go in one memcpy each (attention's head split moves rows of 16 to 64 values); otherwise one
// element at a time, with a copy of fixed size (a variable-size memcpy per element was the cost).
template <std::size_t Elem>
void copyTransposed(const std::byte* src, std::byte* dst, const Shape& outShape, const std::vector<std::int64_t>& stepIn,
                    bool innermostStays)
{
    const int loopRank = static_cast<int>(outShape.size()) - (innermostStays ? 1 : 0);
    const std::int64_t run = innermostStays ? outShape.back() : 1;
    const std::int64_t runs = elementCount(outShape) / run;
    std::vector<std::int64_t> index(static_cast<std::size_t>(loopRank), 0);
    std::int64_t offset = 0;
    for (std::int64_t o = 0; o < runs; ++o) {
        if (innermostStays)
            std::memcpy(dst + o * run * Elem, src + offset * Elem, static_cast<std::size_t>(run) * Elem);
        else
            std::memcpy(dst + o * Elem, src + offset * Elem, Elem);
        for (int d = loopRank; d-- > 0;) {
            offset += stepIn[d];
            if (++index[d] < outShape[d])
                break;
            offset -= stepIn[d] * index[d];
            index[d] = 0;
        }
    }
}

std::vector<Tensor> runTranspose(const OpContext& c)
{
    const Tensor& x = c.input(0);
    const int rank = x.rank();
    std::vector<std::int64_t> perm = c.node.intsAttribute("perm");
    if (perm.empty())
        for (int d = rank; d-- > 0;)
            perm.push_back(d);
    if (static_cast<int>(perm.size()) != rank)
        failNode(c, "perm has " + std::to_string(perm.size()) + " entries for rank " + std::to_string(rank));
    std::vector<bool> seen(static_cast<std::size_t>(rank), false);
    Shape outShape;
    for (std::int64_t p : perm) {
        if (p < 0 || p >= rank || seen[static_cast<std::size_t>(p)])
            failNode(c, "perm is not a permutation of 0.." + std::to_string(rank - 1));
        seen[static_cast<std::size_t>(p)] = true;
        outShape.push_back(x.dim(static_cast<int>(p)));
    }
    Tensor out(x.dtype(), outShape);
    if (out.size() == 0)
        return {out};
    const auto inStrides = stridesOf(x.shape());
    std::vector<std::int64_t> stepIn(static_cast<std::size_t>(rank));  // input stride along each output axis
    for (int d = 0; d < rank; ++d)
        stepIn[d] = inStrides[static_cast<std::size_t>(perm[d])];
    const bool innermostStays = rank > 0 && perm.back() == rank - 1;
    switch (dataTypeSize(x.dtype())) {
    case 1: copyTransposed<1>(x.rawData(), out.mutableRawData(), outShape, stepIn, innermostStays); break;
    case 2: copyTransposed<2>(x.rawData(), out.mutableRawData(), outShape, stepIn, innermostStays); break;
    case 4: copyTransposed<4>(x.rawData(), out.mutableRawData(), outShape, stepIn, innermostStays); break;
    case 8: copyTransposed<8>(x.rawData(), out.mutableRawData(), outShape, stepIn, innermostStays); break;
    default: failNode(c, "cannot transpose elements of " + std::to_string(dataTypeSize(x.dtype())) + " bytes");
    }
    return {out};
}

std::vector<Tensor> runConcat(const OpContext& c)
{
    const Tensor& first = c.input(0);
    const std::int64_t axis = normalizeAxis(c, c.node.intAttribute("axis", 0), first.rank());
    Shape outShape = first.shape();
    outShape[axis] = 0;
    for (std::size_t i = 0; i < c.inputCount(); ++i) {
        const Tensor& t = c.input(i);
        if (t.dtype() != first.dtype() || t.rank() != first.rank())
            failNode(c, "input " + std::to_string(i) + " " + t.describe() + " does not match " + first.describe());
        for (int d = 0; d < t.rank(); ++d)
            if (d != axis && t.dim(d) != first.dim(d))
                failNode(c, "input " + std::to_string(i) + " " + t.describe() + " differs from " + first.describe() +
                                " outside the concatenation axis");
        outShape[axis] += t.dim(static_cast<int>(axis));
    }
    Tensor out(first.dtype(), outShape);
    std::int64_t outer = 1;
    for (std::int64_t d = 0; d < axis; ++d)
        outer *= outShape[d];
    const std::size_t elem = dataTypeSize(first.dtype());
    const std::int64_t outBlock = out.size() / std::max<std::int64_t>(outer, 1);
    std::int64_t position = 0;
    for (std::size_t i = 0; i < c.inputCount(); ++i) {
        const Tensor& t = c.input(i);
        const std::int64_t block = outer ? t.size() / outer : 0;
        for (std::int64_t o = 0; o < outer; ++o)
            std::memcpy(out.mutableRawData() + (o * outBlock + position) * elem, t.rawData() + o * block * elem,
                        static_cast<std::size_t>(block) * elem);
        position += block;
    }
    return {out};
}

std::vector<Tensor> runSplit(const OpContext& c)
{
    const Tensor& x = c.input(0);
    const std::int64_t axis = normalizeAxis(c, c.node.intAttribute("axis", 0), x.rank());
    const std::int64_t length = x.dim(static_cast<int>(axis));
    std::vector<std::int64_t> sizes = attributeOrInput(c, "split", 1, 13);
    const auto parts = static_cast<std::int64_t>(c.outputCount());
    if (sizes.empty()) {
        if (length % parts != 0)
            failNode(c, "axis length " + std::to_string(length) + " does not split into " + std::to_string(parts) +
                            " equal parts");
        sizes.assign(static_cast<std::size_t>(parts), length / parts);
    }
    if (static_cast<std::int64_t>(sizes.size()) != parts ||
        std::accumulate(sizes.begin(), sizes.end(), std::int64_t{0}) != length)
        failNode(c, "split sizes do not add up to the axis length " + std::to_string(length));
    std::int64_t outer = 1, inner = 1;
    for (int d = 0; d < x.rank(); ++d)
        (d < axis ? outer : inner) *= d == axis ? 1 : x.dim(d);
    const std::size_t elem = dataTypeSize(x.dtype());
    std::vector<Tensor> outputs;
    std::int64_t begin = 0;
    for (std::int64_t size : sizes) {
        Shape shape = x.shape();
        shape[axis] = size;
        Tensor part(x.dtype(), shape);
        for (std::int64_t o = 0; o < outer; ++o)
            std::memcpy(part.mutableRawData() + o * size * inner * elem,
                        x.rawData() + (o * length + begin) * inner * elem, static_cast<std::size_t>(size * inner) * elem);
        outputs.push_back(part);
        begin += size;
    }
    return outputs;
}

std::vector<Tensor> runSqueeze(const OpContext& c)
{
    const Tensor& x = c.input(0);
    const std::vector<std::int64_t> axes = attributeOrInput(c, "axes", 1, 13);
    std::vector<bool> drop(static_cast<std::size_t>(x.rank()), false);
    for (std::int64_t a : axes) {
        const std::int64_t d = normalizeAxis(c, a, x.rank());
        if (x.dim(static_cast<int>(d)) != 1)
            failNode(c, "cannot squeeze axis " + std::to_string(a) + " of " + x.describe() + " (size is not 1)");
        drop[d] = true;
    }
    Shape shape;
    for (int d = 0; d < x.rank(); ++d)
        if (!(axes.empty() ? x.dim(d) == 1 : drop[d]))
            shape.push_back(x.dim(d));
    return {x.reshaped(shape)};
}

std::vector<Tensor> runUnsqueeze(const OpContext& c)
{
    const Tensor& x = c.input(0);
    const std::vector<std::int64_t> axes = attributeOrInput(c, "axes", 1, 13);
    const std::int64_t rank = x.rank() + static_cast<std::int64_t>(axes.size());
    std::vector<bool> inserted(static_cast<std::size_t>(rank), false);
    for (std::int64_t a : axes) {
        const std::int64_t d = normalizeAxis(c, a, rank);
        if (inserted[d])
            failNode(c, "axis " + std::to_string(a) + " is given twice");
        inserted[d] = true;
    }
    Shape shape;
    int next = 0;
    for (std::int64_t d = 0; d < rank; ++d)
        shape.push_back(inserted[d] ? 1 : x.dim(next++));
    return {x.reshaped(shape)};
}

std::vector<Tensor> runPad(const OpContext& c)
{
    const Tensor& x = c.input(0);
    const int rank = x.rank();
    const std::string mode = c.node.stringAttribute("mode", "constant");
    if (mode != "constant" && mode != "reflect" && mode != "edge")
        failNode(c, "mode '" + mode + "' is not one of constant, reflect, edge");
    // Opset 1 called the attribute "paddings"; opset 11 moved it to an input.
    const std::vector<std::int64_t> pads =
        c.opset < 11 ? c.node.intsAttribute("pads", c.node.intsAttribute("paddings")) : c.input(1).toInt64Vector();
    std::vector<std::int64_t> axes;
    if (c.hasInput(3))
        for (std::int64_t a : c.input(3).toInt64Vector())
            axes.push_back(normalizeAxis(c, a, rank));
    else
        for (int d = 0; d < rank; ++d)
            axes.push_back(d);
    if (pads.size() != 2 * axes.size())
        failNode(c, "pads has " + std::to_string(pads.size()) + " values, expected " + std::to_string(2 * axes.size()));
    std::vector<std::int64_t> before(static_cast<std::size_t>(rank), 0), after(static_cast<std::size_t>(rank), 0);
    for (std::size_t i = 0; i < axes.size(); ++i) {
        before[axes[i]] = pads[i];
        after[axes[i]] = pads[i + axes.size()];
    }
    Shape outShape;
    for (int d = 0; d < rank; ++d) {
        const std::int64_t size = x.dim(d) + before[d] + after[d];
        if (size < 0)
            failNode(c, "negative pads remove more than axis " + std::to_string(d) + " holds");
        if (mode == "reflect" && (before[d] >= x.dim(d) || after[d] >= x.dim(d)) && (before[d] > 0 || after[d] > 0))
            failNode(c, "reflect padding must be smaller than the axis length");
        if (mode == "edge" && x.dim(d) == 0 && size > 0)
            failNode(c, "edge padding of an empty axis");
        outShape.push_back(size);
    }

    Tensor out(x.dtype(), outShape);
    const std::size_t elem = dataTypeSize(x.dtype());
    // The constant, converted to the tensor's type, as raw bytes.
    Tensor fill = c.opset < 11 ? Tensor::scalar<float>(c.node.floatAttribute("value", 0.f)).castTo(x.dtype())
                               : (c.hasInput(2) ? c.input(2).castTo(x.dtype()) : Tensor(x.dtype(), {}));
    const auto inStrides = stridesOf(x.shape());
    std::vector<std::int64_t> index(static_cast<std::size_t>(rank), 0);
    for (std::int64_t o = 0; o < out.size(); ++o) {
        std::int64_t source = 0;
        bool constant = false;
        for (int d = 0; d < rank && !constant; ++d) {
            std::int64_t i = index[d] - before[d];
            const std::int64_t n = x.dim(d);
            if (i < 0 || i >= n) {
                if (mode == "constant")
                    constant = true;
                else if (mode == "edge")
                    i = i < 0 ? 0 : n - 1;
                else  // reflect, without repeating the edge element
                    i = i < 0 ? -i : 2 * (n - 1) - i;
            }
            source += i * inStrides[d];
        }
        std::memcpy(out.mutableRawData() + o * elem, constant ? fill.rawData() : x.rawData() + source * elem, elem);
        for (int d = rank; d-- > 0;) {
            if (++index[d] < outShape[d])
                break;
            index[d] = 0;
        }
    }
    return {out};
}

std::vector<Tensor> runGather(const OpContext& c)
{
    const Tensor& data = c.input(0);
    const Tensor& indicesTensor = c.input(1);
    if (data.rank() < 1)
        failNode(c, "data must have rank >= 1");
    const std::int64_t axis = normalizeAxis(c, c.node.intAttribute("axis", 0), data.rank());
    const std::int64_t length = data.dim(static_cast<int>(axis));
    std::vector<std::int64_t> indices = indicesTensor.toInt64Vector();
    for (std::int64_t& i : indices) {
        if (i < -length || i >= length)
            failNode(c, "index " + std::to_string(i) + " is out of range for axis length " + std::to_string(length));
        if (i < 0)
            i += length;
    }
    Shape outShape(data.shape().begin(), data.shape().begin() + axis);
    outShape.insert(outShape.end(), indicesTensor.shape().begin(), indicesTensor.shape().end());
    outShape.insert(outShape.end(), data.shape().begin() + axis + 1, data.shape().end());
    std::int64_t outer = 1, inner = 1;
    for (int d = 0; d < data.rank(); ++d)
        if (d < axis)
            outer *= data.dim(d);
        else if (d > axis)
            inner *= data.dim(d);
    Tensor out(data.dtype(), outShape);
    const std::size_t elem = dataTypeSize(data.dtype());
    const auto count = static_cast<std::int64_t>(indices.size());
    for (std::int64_t o = 0; o < outer; ++o)
        for (std::int64_t k = 0; k < count; ++k)
            std::memcpy(out.mutableRawData() + ((o * count + k) * inner) * elem,
                        data.rawData() + ((o * length + indices[k]) * inner) * elem, static_cast<std::size_t>(inner) * elem);
    return {out};
}

std::vector<Tensor> runSlice(const OpContext& c)
{
    const Tensor& x = c.input(0);
    const int rank = x.rank();
    std::vector<std::int64_t> starts, ends, axes, steps;
    if (c.opset < 10) {
        starts = c.node.intsAttribute("starts");
        ends = c.node.intsAttribute("ends");
        axes = c.node.intsAttribute("axes");
    } else {
        starts = c.input(1).toInt64Vector();
        ends = c.input(2).toInt64Vector();
        if (c.hasInput(3))
            axes = c.input(3).toInt64Vector();
        if (c.hasInput(4))
            steps = c.input(4).toInt64Vector();
    }
    SliceGeometry g;
    try {
        g = sliceGeometry(x.shape(), starts, ends, axes, steps);
    } catch (const Error& e) {
        failNode(c, e.what());
    }
    const Shape& outShape = g.shape;
    const std::vector<std::int64_t>& begin = g.begin;
    const std::vector<std::int64_t>& step = g.step;
    Tensor out(x.dtype(), outShape);
    const std::size_t elem = dataTypeSize(x.dtype());
    const auto inStrides = stridesOf(x.shape());
    std::vector<std::int64_t> index(static_cast<std::size_t>(rank), 0);
    for (std::int64_t o = 0; o < out.size(); ++o) {
        std::int64_t source = 0;
        for (int d = 0; d < rank; ++d)
            source += (begin[d] + index[d] * step[d]) * inStrides[d];
        std::memcpy(out.mutableRawData() + o * elem, x.rawData() + source * elem, elem);
        for (int d = rank; d-- > 0;) {
            if (++index[d] < outShape[d])
                break;
            index[d] = 0;
        }
    }
    return {out};
}

}  // namespace qe
