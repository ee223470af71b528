#pragma once
// Fast integer convolutions and matrix products on oneDNN (Debian's libdnnl), which picks the
// CPU's best int8 instructions at run time (AVX-512 VNNI, AVX-VNNI, AVX2, ...) and uses every
// core. They compute the same exact int32 accumulators as engine/int8/reference_kernels (tested
// against them); requantization stays ours (engine/int8/requantize.h), so the rounding is the
// engine's, not the library's.
//
// Inputs are uint8 codes with a zero-point, weights symmetric int8 (zero-point 0): the u8 x s8
// product is what vpdpbusd computes. Built without oneDNN, available() is false and the engine
// uses the reference kernels.

#include "engine/ops/window.h"
#include "tensor/tensor.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace qe::int8 {

bool fastKernelsAvailable();

// One convolution layer. Primitives are created per input shape (batch size) on first use and
// cached; the weights are packed into the primitive's preferred layout once per shape.
class FastConv {
public:
    // `weights`: int8 [OC, IC / groups, KH, KW].
    FastConv(Tensor weights, std::int64_t groups);
    ~FastConv();
    // Whether this geometry runs on an optimized implementation (not oneDNN's slow reference).
    bool supports(const Shape& inputNhwc, const Window2D& window) const;
    // `inputNhwc`: uint8 [N, H, W, C]. Returns int32 [N, OH, OW, OC] (channels-last).
    Tensor accumulate(const Tensor& inputNhwc, std::int32_t inputZeroPoint, const Window2D& window) const;
    // The same accumulators a few images at a time, each chunk handed to `consume` while it is
    // still in cache: acc is int32 [imageCount, OH, OW, OC] for images [firstImage, firstImage + imageCount).
    using ChunkConsumer = std::function<void(const std::int32_t* acc, std::int64_t firstImage, std::int64_t imageCount)>;
    void accumulateInChunks(const Tensor& inputNhwc, std::int32_t inputZeroPoint, const Window2D& window,
                            const ChunkConsumer& consume) const;

    struct Compiled;
private:
    const Compiled& compiled(const Shape& inputNhwc, const Window2D& window) const;
    Tensor weights_;
    std::vector<std::int32_t> weightSums_;  // per output channel, for the zero-point term
    std::int64_t groups_;
    mutable std::mutex mutex_;
    mutable std::map<std::string, std::shared_ptr<Compiled>> cache_;
};

// One matrix product by constant weights.
class FastMatMul {
public:
    // `weights`: int8 [K, N].
    explicit FastMatMul(Tensor weights);
    ~FastMatMul();
    // `input`: uint8 [M, K]. Returns int32 [M, N] = sum_k (input - zeroPoint) * weights.
    Tensor accumulate(const Tensor& input, std::int32_t inputZeroPoint) const;

    struct Compiled;
private:
    const Compiled& compiled(std::int64_t rows) const;
    Tensor weights_;
    std::vector<std::int32_t> columnSums_;  // sum_k weights[k][n], for the zero-point term
    mutable std::mutex mutex_;
    mutable std::map<std::pair<std::int64_t, int>, std::shared_ptr<Compiled>> cache_;  // by rows and threads
};

}  // namespace qe::int8
