#pragma once
// Fast integer convolutions and matrix products on oneDNN (Debian's libdnnl), which picks the
// CPU's best int8 instructions at run time (AVX-512 VNNI, AVX-VNNI, AVX2, ...) and uses every
// core. They compute the same exact int32 accumulators as engine/int8/reference_kernels (tested
// against them); requantization stays ours (engine/int8/kernels/requantize.h), so the rounding is the
// engine's, not the library's.
//
// Inputs are uint8 codes with a zero-point, weights int8 codes with per-channel zero-points
// (0 for symmetric weights; uint8 weights are passed as code - 128 with zero-point - 128): the
// u8 x s8 product is what vpdpbusd computes, and the zero-point terms are added exactly
// afterwards. Built without oneDNN, fastKernelsAvailable() is false and the engine uses the
// reference kernels.

#include "model/window.h"
#include "tensor/tensor.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace qe::int8 {

bool fastKernelsAvailable();
// Whether oneDNN runs its int8 products on matrix units (Intel AMX) on this CPU.
bool libraryHasMatrixUnits();

// One convolution layer. Primitives are created per input shape (batch size) on first use and
// cached; the weights are packed into the primitive's preferred layout once per shape.
class FastConv {
public:
    // `weights`: int8 [OC, IC / groups, KH, KW]; `weightZeroPoints`: 1 or OC values.
    FastConv(Tensor weights, std::vector<std::int32_t> weightZeroPoints, std::int64_t groups);
    ~FastConv();
    // Whether this geometry (with this input zero-point) runs on an optimized implementation,
    // not oneDNN's slow reference one.
    bool supports(const Shape& inputNhwc, const Window2D& window, std::int32_t inputZeroPoint) const;
    // `inputNhwc`: uint8 [N, H, W, C]. Returns int32 [N, OH, OW, OC] (channels-last).
    Tensor accumulate(const Tensor& inputNhwc, std::int32_t inputZeroPoint, const Window2D& window) const;
    // The same accumulators a few output pixels at a time (whole images, or image rows for
    // pointwise convolutions), each chunk handed to `consume` while it is still in cache: acc is
    // int32 [pixels, OC] for the output pixels [firstPixel, firstPixel + pixels) of the batch.
    // With `leaveInputZeroPointTerm`, the chunks lack the term -zx * sum(w) of every output
    // channel (inputZeroPointTerm), for a caller that adds it to its bias instead of paying a
    // pass over the accumulators.
    using ChunkConsumer = std::function<void(const std::int32_t* acc, std::int64_t firstPixel, std::int64_t pixels)>;
    void accumulateInChunks(const Tensor& inputNhwc, std::int32_t inputZeroPoint, const Window2D& window,
                            const ChunkConsumer& consume, bool leaveInputZeroPointTerm = false) const;
    // -zx * sum(w) per output channel, in two's-complement int32 (it may wrap; the sum with the
    // accumulator does not).
    std::vector<std::int32_t> inputZeroPointTerm(std::int32_t inputZeroPoint) const;

    struct Compiled;
private:
    // The shape and window the primitives see: pointwise convolutions run image rows as images.
    struct Geometry {
        Shape shape;
        Window2D window;
    };
    Geometry geometry(const Shape& inputNhwc, const Window2D& window) const;
    const Compiled& compiled(const Shape& inputNhwc, const Window2D& window, bool zeroPointIsZero) const;
    Tensor weights_;
    std::vector<std::int32_t> weightZeroPoints_;  // per output channel
    std::vector<std::int32_t> weightSums_;  // per output channel, for the input zero-point term
    std::int64_t groups_;
    bool hasWeightZeroPoints_ = false;
    Tensor ones_;  // [groups, IC / groups, KH, KW] of 1: window sums for the weight zero-point term
    mutable std::mutex mutex_;
    mutable std::map<std::string, std::shared_ptr<Compiled>> cache_;
};

// One matrix product by constant weights.
class FastMatMul {
public:
    // `weights`: int8 [K, N]; `weightZeroPoints`: 1 or N values.
    FastMatMul(Tensor weights, std::vector<std::int32_t> weightZeroPoints);
    ~FastMatMul();
    // `input`: uint8 [M, K]. Returns int32 [M, N] = sum_k (input - zeroPoint) * (weights - weightZeroPoint).
    Tensor accumulate(const Tensor& input, std::int32_t inputZeroPoint) const;

    struct Compiled;
private:
    const Compiled& compiled(std::int64_t rows) const;
    Tensor weights_;
    std::vector<std::int32_t> weightZeroPoints_;  // per column
    std::vector<std::int32_t> columnSums_;  // sum_k weights[k][n], for the input zero-point term
    mutable std::mutex mutex_;
    mutable std::map<std::pair<std::int64_t, int>, std::shared_ptr<Compiled>> cache_;  // by rows and threads
};

}  // namespace qe::int8
