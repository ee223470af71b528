#pragma once
// What the user chose, written for other runtimes: a QDQ ONNX model (QuantizeLinear /
// DequantizeLinear pairs around activations, integer weight initializers behind
// DequantizeLinear, int32 biases), the form ONNX Runtime and TensorRT turn into integer kernels;
// and the table of every quantized tensor's parameters ("encodings").
//
// Nothing is changed silently: a choice ONNX's 8-bit QDQ cannot express (k-means, log2, fp8/fp16/
// bf16, per-group weights, dynamic activation ranges) is written in float, the weights as their
// dequantized values, and listed in `warnings`.

#include "quant/simulator.h"

#include <string>
#include <vector>

namespace qe {

// One quantized tensor: real = scale * (code - zero_point), per tensor or along `axis`. A tensor
// whose quantization has no 8-bit QDQ form (k-means, log2, fp8/fp16/bf16, per-group, more than 8
// bits) is listed too, with inQdqModel false: the model holds its dequantized float values, and
// its own parameters are here (levels for log2 and k-means, pre-scales for the float formats,
// scale and zero-point for uniform ones), so that nothing the user chose is dropped.
struct TensorEncoding {
    std::string tensor, layer;
    std::string kind;  // "activation", "weight" or "bias"
    std::string scheme;
    int bits = 8;
    bool isSigned = false;
    std::string granularity;  // "per_tensor" or "per_channel"
    int axis = 0;
    std::int32_t codeMin = 0, codeMax = 255;
    std::vector<float> scale;
    std::vector<std::int32_t> zeroPoint;
    bool inQdqModel = true;
    std::vector<std::vector<float>> levels;  // log2, k-means: each block's levels
    std::vector<float> preScale;             // floating-point formats: each block's pre-scale
};

struct QdqModel {
    Graph graph;  // opset >= 13 (per-channel DequantizeLinear)
    std::vector<TensorEncoding> encodings;
    std::vector<std::string> warnings;  // one per tensor whose choice was written in float
};

// `plan` comes from makePlan on the float graph (its graph holds the fake-quantized weights).
QdqModel exportQdq(const QuantPlan& plan);

std::string encodingsJson(const std::vector<TensorEncoding>& encodings);  // {"tensors": [...]}
// One row per tensor; lists joined by ';', the levels' blocks by '|'.
std::string encodingsCsv(const std::vector<TensorEncoding>& encodings);

}  // namespace qe
