#pragma once
// Plain integer kernels: obviously correct, written as the ONNX operator definitions read, and
// the yardstick the fast kernels (engine/int8/dnnl_kernels) are tested against. They also run the
// ONNX integer operators (ConvInteger, MatMulInteger, QLinearConv, QLinearMatMul) and any layer
// whose weights the fast kernels cannot take.
//
// Accumulators are exact int32 sums of (x - x_zero_point) * (w - w_zero_point); padded input
// positions hold the input's zero-point (real 0.0), so they add nothing.

#include "model/window.h"
#include "tensor/tensor.h"

#include <cstdint>
#include <vector>

namespace qe::int8 {

// `input` [N, C, H, W] and `weights` [OC, C / groups, KH, KW] of any integer type (int8, uint8,
// int32); `weightZeroPoints` has 1 or OC entries. Returns int32 [N, OC, OH, OW].
Tensor convAccumulateReference(const Tensor& input, std::int32_t inputZeroPoint, const Tensor& weights,
                               const std::vector<std::int32_t>& weightZeroPoints, const Window2D& window,
                               std::int64_t groups);

// `a` [M, K] and `b` [K, N] of any integer type; `bZeroPoints` has 1 or N entries (per column).
// Returns int32 [M, N].
Tensor matmulAccumulateReference(const Tensor& a, std::int32_t aZeroPoint, const Tensor& b,
                                 const std::vector<std::int32_t>& bZeroPoints);

}  // namespace qe::int8
