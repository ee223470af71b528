#pragma once
// The one table of operators. Each row says what an operator is to every part of the program:
// the importer accepts exactly these, the executor runs the kernel named after each (run<Name>,
// engine/operator.h), layer discovery and the simulation read its role and weight inputs, and the
// int8 engine lowers it by its integer family; shape inference (model/shape_inference.h) applies the
// shape rule it names. Adding an operator is one row here plus its kernel (and, for an integer form,
// its step), a shape rule where no existing one fits, and their tests. No other list of operator
// names exists.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qe {

// What an operator does to quantization.
enum class OpRole {
    Weighted,     // new values from an input and constant weights (weight and bias inputs below)
    Elementwise,  // new values from two tensors, element by element
    Lookup,       // new values from one, element by element: an integer engine uses a 256-entry table
    Averaging,    // new values averaged over a window or an axis
    Normalizing,  // new values normalized over an axis (Softmax) or by constants (an unfolded BatchNormalization)
    Joining,      // new values joined from several tensors, each with its own parameters (Concat)
    Moving,       // values moved or selected, never changed: the output keeps the input's parameters
    Float,        // computed in float and not a quantization point (a quantized input is dequantized)
    Shape,        // shapes, constants and casts: integer bookkeeping, never quantized
    Quantized,    // a quantized model's own operators (QuantizeLinear, QLinearConv, ...)
};

// Which family of the int8 engine's steps runs the operator in integers (engine/int8/steps.h).
enum class IntegerFamily {
    None,           // runs in float on dequantized inputs
    Convolution,    // Conv
    MatrixProduct,  // Gemm, MatMul
    Elementwise,    // Add and Mul of two codes; Add and Sub of a constant
    Concat,
    Pooling,        // AveragePool, GlobalAveragePool
    MaxPool,
    Softmax,
    Lookup,         // a 256-entry table (Relu too)
    Move,           // Reshape, Transpose, ...: codes moved as they are
};

struct OperatorTraits {
    std::string_view name;
    OpRole role;
    int weightInput;  // the input holding weights, -1 for none
    int biasInput;    // the input holding a bias, -1 for none
    // Fused into the layer before it as the clamp of its requantization (Relu, Clip), where it is
    // the only reader of that layer's output; the layer's quantization then comes after it.
    bool fusesIntoLayer;
    IntegerFamily integer;
};

// Every operator of the default ONNX domain that the engines run:
// X(name, role, weight input, bias input, fuses into the layer before, integer family, shape rule).
// The shape rule is the function of model/shape_inference.cpp that computes the operator's output
// types and shapes from its inputs' (and the values of small integer inputs).
#define QE_OPERATORS(X)                                                             \
    X(Conv, Weighted, 1, 2, false, Convolution, convShape)                          \
    X(Gemm, Weighted, 1, 2, false, MatrixProduct, gemmShape)                        \
    X(MatMul, Weighted, 1, -1, false, MatrixProduct, matMulShape)                   \
    X(Add, Elementwise, -1, -1, false, Elementwise, broadcastShape)                 \
    X(Sub, Elementwise, -1, -1, false, Elementwise, broadcastShape)                 \
    X(Mul, Elementwise, -1, -1, false, Elementwise, broadcastShape)                 \
    X(Div, Elementwise, -1, -1, false, Elementwise, broadcastShape)                 \
    X(PRelu, Elementwise, -1, -1, false, None, broadcastShape)                      \
    X(LeakyRelu, Lookup, -1, -1, false, Lookup, sameShape)                          \
    X(Sigmoid, Lookup, -1, -1, false, Lookup, sameShape)                            \
    X(HardSigmoid, Lookup, -1, -1, false, Lookup, sameShape)                        \
    X(HardSwish, Lookup, -1, -1, false, Lookup, sameShape)                          \
    X(Tanh, Lookup, -1, -1, false, Lookup, sameShape)                               \
    X(Erf, Lookup, -1, -1, false, Lookup, sameShape)                                \
    X(Gelu, Lookup, -1, -1, false, Lookup, sameShape)                               \
    X(AveragePool, Averaging, -1, -1, false, Pooling, poolShape)                    \
    X(GlobalAveragePool, Averaging, -1, -1, false, Pooling, globalPoolShape)        \
    X(ReduceMean, Averaging, -1, -1, false, None, reduceShape)                      \
    X(Softmax, Normalizing, -1, -1, false, Softmax, sameShape)                      \
    X(BatchNormalization, Normalizing, -1, -1, false, None, sameShape)              \
    X(LayerNormalization, Normalizing, -1, -1, false, None, layerNormalizationShape) \
    X(Concat, Joining, -1, -1, false, Concat, concatShape)                          \
    X(MaxPool, Moving, -1, -1, false, MaxPool, poolShape)                           \
    X(Reshape, Moving, -1, -1, false, Move, reshapeShape)                           \
    X(Flatten, Moving, -1, -1, false, Move, flattenShape)                           \
    X(Transpose, Moving, -1, -1, false, Move, transposeShape)                       \
    X(Squeeze, Moving, -1, -1, false, Move, squeezeShape)                           \
    X(Unsqueeze, Moving, -1, -1, false, Move, unsqueezeShape)                       \
    X(Identity, Moving, -1, -1, false, Move, identityShape)                         \
    X(Dropout, Moving, -1, -1, false, Move, dropoutShape)                           \
    X(Slice, Moving, -1, -1, false, Move, sliceShape)                               \
    X(Gather, Moving, -1, -1, false, Move, gatherShape)                             \
    X(Split, Moving, -1, -1, false, Move, splitShape)                               \
    X(Expand, Moving, -1, -1, false, Move, expandShape)                             \
    X(Relu, Moving, -1, -1, true, Lookup, sameShape)                                \
    X(Clip, Float, -1, -1, true, None, sameShape)                                   \
    X(Exp, Float, -1, -1, false, None, sameShape)                                   \
    X(Sqrt, Float, -1, -1, false, None, sameShape)                                  \
    X(Neg, Float, -1, -1, false, None, sameShape)                                   \
    X(Abs, Float, -1, -1, false, None, sameShape)                                   \
    X(Pow, Float, -1, -1, false, None, powShape)                                    \
    X(Where, Float, -1, -1, false, None, whereShape)                                \
    X(GlobalMaxPool, Float, -1, -1, false, None, globalPoolShape)                   \
    X(Pad, Float, -1, -1, false, None, padShape)                                    \
    X(Constant, Shape, -1, -1, false, None, constantShape)                          \
    X(Shape, Shape, -1, -1, false, None, shapeOfShape)                              \
    X(Cast, Shape, -1, -1, false, None, castShape)                                  \
    X(Equal, Shape, -1, -1, false, None, equalShape)                                \
    X(ConstantOfShape, Shape, -1, -1, false, None, constantOfShapeShape)            \
    X(QuantizeLinear, Quantized, -1, -1, false, None, quantizeShape)                \
    X(DequantizeLinear, Quantized, -1, -1, false, None, dequantizeShape)            \
    X(DynamicQuantizeLinear, Quantized, -1, -1, false, None, dynamicQuantizeShape)  \
    X(ConvInteger, Quantized, -1, -1, false, None, convIntegerShape)                \
    X(MatMulInteger, Quantized, -1, -1, false, None, matMulIntegerShape)            \
    X(QLinearConv, Quantized, -1, -1, false, None, qlinearConvShape)                \
    X(QLinearMatMul, Quantized, -1, -1, false, None, qlinearMatMulShape)

// The row of an operator of the default domain ("" or "ai.onnx"); nullopt for anything else.
std::optional<OperatorTraits> findOperator(std::string_view domain, std::string_view opType);
// The row of an operator known to be in the table (a graph that was imported); qe::Error naming
// the node otherwise.
const OperatorTraits& operatorTraits(const std::string& nodeName, const std::string& opType);
std::vector<std::string> supportedOperators();
// "node 'x': operator 'Foo' (domain 'd') is not supported"
std::string unsupportedOperatorMessage(const std::string& nodeName, const std::string& opType, const std::string& domain);

// Whether the operator's output is new values, so a layer with its own quantization parameters.
bool makesNewValues(OpRole role);
// Whether the output keeps its input's quantization parameters (values moved, not changed).
bool keepsInputParameters(OpRole role);

}  // namespace qe
