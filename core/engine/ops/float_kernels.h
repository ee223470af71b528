#pragma once
// Fast fp32 convolutions on oneDNN (Debian's libdnnl), which picks the CPU's widest vector
// instructions at run time (AVX-512 where there is AVX-512, whatever this library was compiled
// for) and uses every core. The fp32 Conv operator (engine/ops/conv.cpp) calls it when it can and
// keeps its own im2col + Eigen path for the rest (and for builds without oneDNN).
//
// Inputs and outputs stay NCHW, as every other operator has them. oneDNN computes in its own
// blocked layout; the input and output are reordered around the convolution, and the weights are
// packed once per weight tensor and kept (a small cache keyed by the tensor's storage, which a
// cached entry keeps alive, so that a new tensor can never take its address).

#include "model/window.h"
#include "tensor/tensor.h"

#include <cstdint>
#include <optional>

namespace qe {

bool floatKernelsAvailable();

// y = conv(x, w) + bias for NCHW float x [N, C, H, W], w [OC, C / groups, KH, KW] and bias [OC]
// (empty: none). Nothing (std::nullopt) when oneDNN has no fast implementation for this geometry;
// the caller then computes it itself.
std::optional<Tensor> fastFloatConv(const Tensor& x, const Tensor& weights, const Tensor& bias, const Window2D& window,
                                    std::int64_t groups);

}  // namespace qe
