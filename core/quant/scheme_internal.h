#pragma once
// Inside core/quant: how the scheme table's four files reach each other. scheme.cpp holds the
// table (kSchemes), the parameter fitting and the public functions; quantizers.cpp the fake
// quantization and levels of each kind that the rows point to; small_float.cpp the small
// floating-point formats; kmeans.cpp the k-means codebook fitting. Not part of core's interface:
// everything else goes through scheme.h.

#include "quant/scheme.h"
#include "tensor/tensor.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace qe::scheme_detail {

// A scale (or level) every quantizer can divide by: positive, finite, with a finite inverse.
// checkScales throws on the others; singleUniformRounding declines them.
inline bool usableScale(float scale) { return scale > 0.f && std::isfinite(scale) && std::isfinite(1.f / scale); }

// The small floating-point formats (small_float.cpp); the table's rows point to them.
inline constexpr FloatFormat kFp16{5, 10, 15, 65504.0, false, true, false};
inline constexpr FloatFormat kBf16{8, 7, 127, 3.38953139e38, false, true, false};
inline constexpr FloatFormat kFp8E4M3{4, 3, 7, 448.0, true, false, true};
inline constexpr FloatFormat kFp8E5M2{5, 2, 15, 57344.0, true, true, true};

// The value of `code`, or NaN when the code is not a finite number (small_float.cpp).
double decodeFloat(std::uint32_t code, const FloatFormat& format);

// Fits `levels` sorted centroids to `values` with Lloyd's algorithm and returns how many it fitted:
// `levels`, or the number of distinct values when that is smaller (they are then the codebook,
// padded with the largest). Sorts `values` in place and uses `prefix` (values.size() + 1 entries)
// as scratch. Allocates nothing, so it can run inside a parallel region (kmeans.cpp).
int fitCodebook(std::span<float> values, std::span<double> prefix, int levels, float* codebook);

// Which parameter block element i of a tensor belongs to, for a given granularity and shape.
struct BlockIndex {
    Granularity granularity = Granularity::PerTensor;
    std::int64_t inner = 1;     // elements after the channel axis
    std::int64_t channels = 1;
    std::int64_t groupSize = 1;
    std::int64_t groupsPerChannel = 1;
    std::int64_t count = 1;     // number of blocks

    std::int64_t operator()(std::int64_t i) const
    {
        switch (granularity) {
        case Granularity::PerTensor: return 0;
        case Granularity::PerChannel: return (i / inner) % channels;
        case Granularity::PerGroup: return (i / inner) * groupsPerChannel + (i % inner) / groupSize;
        case Granularity::PerToken: return i / inner;
        }
        return 0;
    }
};

// The block index of `params` over `values`; qe::Error when they do not fit (quantizers.cpp).
BlockIndex blockIndexFor(const QuantParams& params, const Tensor& values);

// Fake quantization, by kind: out[i] = the level in[i] quantizes to (quantizers.cpp).
void fakeQuantizeUniform(const QuantParams& params, const BlockIndex& blockOf, const float* in, float* out, std::int64_t n);
void fakeQuantizeLog2(const QuantParams& params, const BlockIndex& blockOf, const float* in, float* out, std::int64_t n);
void fakeQuantizeCodebook(const QuantParams& params, const BlockIndex& blockOf, const float* in, float* out, std::int64_t n);
void fakeQuantizeFloatFormat(const QuantParams& params, const BlockIndex& blockOf, const float* in, float* out, std::int64_t n);

// Every level of one block, ascending, by kind (quantizers.cpp).
std::vector<float> uniformLevels(const QuantParams& params, std::size_t block);
std::vector<float> log2LevelsOf(const QuantParams& params, std::size_t block);
std::vector<float> codebookLevels(const QuantParams& params, std::size_t block);
std::vector<float> floatFormatLevels(const QuantParams& params, std::size_t block);

// The format's rounding (the row's `round`), for floating-point schemes (scheme.cpp).
using Rounding = float (*)(float);
Rounding roundingOf(Scheme scheme);

}  // namespace qe::scheme_detail
