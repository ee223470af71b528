#pragma once
// The one table of operators. Each row says what an operator is to every part of the program:
// the importer accepts exactly these, the executor runs the kernel named after each (run<Name>,
// engine/operator.h), layer discovery and the simulation read its role and weight inputs, and the
// int8 engine lowers it by its integer family. Adding an operator is one row here plus its kernel
// (and, for an integer form, its step) and their tests. No other list of operator names exists.

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
// X(name, role, weight input, bias input, fuses into the layer before, integer family).
#define QE_OPERATORS(X)                                                \
    X(Conv, Weighted, 1, 2, false, Convolution)                        \
    X(Gemm, Weighted, 1, 2, false, MatrixProduct)                      \
    X(MatMul, Weighted, 1, -1, false, MatrixProduct)                   \
    X(Add, Elementwise, -1, -1, false, Elementwise)                    \
    X(Sub, Elementwise, -1, -1, false, Elementwise)                    \
    X(Mul, Elementwise, -1, -1, false, Elementwise)                    \
    X(Div, Elementwise, -1, -1, false, None)                           \
    X(PRelu, Elementwise, -1, -1, false, None)                         \
    X(LeakyRelu, Lookup, -1, -1, false, Lookup)                        \
    X(Sigmoid, Lookup, -1, -1, false, Lookup)                          \
    X(HardSigmoid, Lookup, -1, -1, false, Lookup)                      \
    X(HardSwish, Lookup, -1, -1, false, Lookup)                        \
    X(Tanh, Lookup, -1, -1, false, Lookup)                             \
    X(AveragePool, Averaging, -1, -1, false, Pooling)                  \
    X(GlobalAveragePool, Averaging, -1, -1, false, Pooling)            \
    X(ReduceMean, Averaging, -1, -1, false, None)                      \
    X(Softmax, Normalizing, -1, -1, false, Softmax)                    \
    X(BatchNormalization, Normalizing, -1, -1, false, None)            \
    X(Concat, Joining, -1, -1, false, Concat)                          \
    X(MaxPool, Moving, -1, -1, false, MaxPool)                         \
    X(Reshape, Moving, -1, -1, false, Move)                            \
    X(Flatten, Moving, -1, -1, false, Move)                            \
    X(Transpose, Moving, -1, -1, false, Move)                          \
    X(Squeeze, Moving, -1, -1, false, Move)                            \
    X(Unsqueeze, Moving, -1, -1, false, Move)                          \
    X(Identity, Moving, -1, -1, false, Move)                           \
    X(Dropout, Moving, -1, -1, false, Move)                            \
    X(Slice, Moving, -1, -1, false, Move)                              \
    X(Gather, Moving, -1, -1, false, Move)                             \
    X(Split, Moving, -1, -1, false, Move)                              \
    X(Relu, Moving, -1, -1, true, Lookup)                              \
    X(Clip, Float, -1, -1, true, None)                                 \
    X(Exp, Float, -1, -1, false, None)                                 \
    X(Sqrt, Float, -1, -1, false, None)                                \
    X(Neg, Float, -1, -1, false, None)                                 \
    X(Abs, Float, -1, -1, false, None)                                 \
    X(GlobalMaxPool, Float, -1, -1, false, None)                       \
    X(Pad, Float, -1, -1, false, None)                                 \
    X(Constant, Shape, -1, -1, false, None)                            \
    X(Shape, Shape, -1, -1, false, None)                               \
    X(Cast, Shape, -1, -1, false, None)                                \
    X(QuantizeLinear, Quantized, -1, -1, false, None)                  \
    X(DequantizeLinear, Quantized, -1, -1, false, None)                \
    X(DynamicQuantizeLinear, Quantized, -1, -1, false, None)           \
    X(ConvInteger, Quantized, -1, -1, false, None)                     \
    X(MatMulInteger, Quantized, -1, -1, false, None)                   \
    X(QLinearConv, Quantized, -1, -1, false, None)                     \
    X(QLinearMatMul, Quantized, -1, -1, false, None)

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
