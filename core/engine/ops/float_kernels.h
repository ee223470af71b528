#pragma once
// Fast fp32 convolutions on oneDNN (Debian's libdnnl), which picks the CPU's widest vector
// instructions at run time (AVX-512 where there is AVX-512, whatever this library was compiled
// for) and uses every core. The fp32 Conv operator (engine/ops/conv.cpp) calls it when it can and
// keeps its own im2col + Eigen path for the rest (and for builds without oneDNN).
//
// Inputs and outputs stay NCHW, as every other operator has them. oneDNN computes in its own
// blocked layout; the input and output are reordered around the convolution (around a chain of
// convolutions, when the executor finds one: engine/conv_chains.h), and the weights are
// packed once per weight tensor and kept (a small cache keyed by the tensor's storage, which a
// cached entry keeps alive, so that a new tensor can never take its address).

#include "model/window.h"
#include "tensor/tensor.h"

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace qe {

bool floatKernelsAvailable();

// One convolution: w [OC, C / groups, KH, KW], bias [OC] (empty: none), and the bounds of a Relu
// or Clip applied to its output (oneDNN applies them as it writes the output: a post-op).
struct FloatConvStage {
    Tensor weights;
    Tensor bias;
    Window2D window;
    std::int64_t groups = 1;
    std::optional<std::pair<float, float>> clamp;
};

// y = conv(x, w) + bias for NCHW float x [N, C, H, W]. Nothing (std::nullopt) when oneDNN has no
// fast implementation for this geometry; the caller then computes it itself.
std::optional<Tensor> fastFloatConv(const Tensor& x, const Tensor& weights, const Tensor& bias, const Window2D& window,
                                    std::int64_t groups);

// The stages one after the other, each reading the one before, in oneDNN's layouts from the
// first input's reorder to the last output's: the tensors between the stages are never laid out
// as NCHW. Each stage computes exactly what fastFloatConv and the Relu/Clip after it would (the
// same primitive, the clamp fused). NCHW in and out; nothing when a stage has no fast
// implementation.
std::optional<Tensor> fastFloatConvChain(const Tensor& x, const std::vector<FloatConvStage>& stages);

}  // namespace qe
