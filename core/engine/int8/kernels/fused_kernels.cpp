#include "engine/int8/kernels/fused_kernels.h"

#include "common/error.h"
#include "engine/int8/kernels/requantize_avx512.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <string>

// Only the functions marked with this attribute use AVX-512: the rest of the file (weight packing
// in the constructors) runs on any x86-64, and the engine calls run() only where
// fusedKernelsAvailable().
#define QE_AVX512_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")))

namespace qe::int8 {

bool fusedKernelsAvailable()
{
    static const bool available = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                                  __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
                                  __builtin_cpu_supports("avx512vbmi");
    return available;
}

namespace {

constexpr std::int64_t kLanes = 16;       // int32 lanes of a vector: output channels per requantization
constexpr int kTileRows = 6;              // GEMM register tile: 6 rows x 64 columns = 24 accumulators
constexpr std::int64_t kPanelColumns = 64;
constexpr std::int64_t kTilesPerBlock = 8;  // rows a task runs against one weight panel: 48

std::int64_t roundUp(std::int64_t v, std::int64_t multiple) { return (v + multiple - 1) / multiple * multiple; }

// The layer's requantization blocks with the zero-point terms folded into the bias: per channel
// n, bias[n] - zx * sum(w[n]) + zw[n] * zx * depth, so that the kernels only add it and subtract
// zw[n] * sum(x) (sum (x - zx)(w - zw) expanded). In uint32: the terms may wrap, their sum with
// the accumulator does not (int32BiasLimit). `weightZeroPoints` comes back padded to whole blocks.
std::vector<RequantizationBlock> prepareStage(const OutputStage& stage, std::int64_t channels, const std::int32_t* weightSums,
                                              const std::int32_t* weightZeroPoints, std::int64_t depth, std::int32_t inputZeroPoint,
                                              std::vector<std::int32_t>& paddedWeightZeroPoints)
{
    const ChannelRequantization& r = *stage.requantization;
    if (static_cast<std::int64_t>(r.channels()) != channels)
        throw Error("fused int8 kernel: requantization for " + std::to_string(r.channels()) + " channels, the layer has " +
                    std::to_string(channels));
    std::vector<RequantizationBlock> blocks = r.blocks;
    paddedWeightZeroPoints.assign(blocks.size() * kLanes, 0);
    for (std::int64_t c = 0; c < channels; ++c) {
        const auto i = static_cast<std::size_t>(c);
        const auto zx = static_cast<std::uint32_t>(inputZeroPoint), zw = static_cast<std::uint32_t>(weightZeroPoints[i]);
        blocks[i / kLanes].bias[i % kLanes] = static_cast<std::int32_t>(
            static_cast<std::uint32_t>(r.bias[i]) - zx * static_cast<std::uint32_t>(weightSums[i]) + zw * zx * static_cast<std::uint32_t>(depth));
        paddedWeightZeroPoints[i] = weightZeroPoints[i];
    }
    return blocks;
}

// The output stage from some channel on: its requantization blocks and weight zero-points.
struct Stage {
    const RequantizationBlock* blocks;
    const std::int32_t* weightZeroPoints;
    Stage from(std::int64_t channel) const { return {blocks + channel / kLanes, weightZeroPoints + channel}; }
};

QE_AVX512_VNNI inline VectorClamp makeClamp(const OutputStage& stage)
{
    return makeVectorClamp(stage.zeroPoint, stage.codeMin, stage.codeMax);
}

// One row's four bytes of k, broadcast to every lane; `bytes` < 4 only for the last group of a
// depth that is not a multiple of 4 (the packed weights are 0 beyond it, but reading past the
// row could leave the buffer). The fixed-size copy compiles to one vpbroadcastd from memory.
QE_AVX512_VNNI inline __m512i broadcastFour(const std::uint8_t* p, std::int64_t bytes)
{
    std::int32_t four = 0;
    if (bytes == 4) {
        std::memcpy(&four, p, 4);
        return _mm512_set1_epi32(four);
    }
    std::memcpy(&four, p, static_cast<std::size_t>(bytes));
    return _mm512_set1_epi32(four);
}

// The epilogue of one tile row: four vectors of 16 accumulators to the row's codes.
template <bool WeightZeroPoints>
QE_AVX512_VNNI inline void storeRow(__m512i a0, __m512i a1, __m512i a2, __m512i a3, const Stage& stage, std::int32_t rowSum,
                                    std::int64_t columns, const VectorClamp& clamp, std::uint8_t* y)
{
    const __m512i acc[4] = {a0, a1, a2, a3};
    for (int j = 0; j < 4; ++j) {
        const std::int64_t valid = std::min<std::int64_t>(kLanes, columns - j * kLanes);
        if (valid <= 0)
            break;
        __m512i a = acc[j];
        if constexpr (WeightZeroPoints)
            a = _mm512_sub_epi32(a, _mm512_mullo_epi32(_mm512_loadu_si512(stage.weightZeroPoints + j * kLanes), _mm512_set1_epi32(rowSum)));
        _mm_mask_storeu_epi8(y + j * kLanes, static_cast<__mmask16>((1u << valid) - 1), requantize16(a, stage.blocks[j], clamp));
    }
}

// One register tile: `Rows` (1..6) rows of x times one 64-column weight panel (of which only
// the first 32 columns when Vectors is 2: a panel with at most 32 columns left), then the
// requantized codes of the panel's first `columns` columns. The accumulators are named
// variables so that the compiler keeps them in registers (an array spills); those of rows
// beyond `Rows` are never touched. `rowSums` (the sum of each row's codes) only with weight
// zero-points.
template <int Vectors, int Rows, bool WeightZeroPoints>
QE_AVX512_VNNI void gemmTile(const std::uint8_t* x, std::int64_t xStride, std::int64_t depth, const std::int8_t* panel,
                             const Stage& stage, const std::int32_t* rowSums, std::int64_t columns, const VectorClamp& clamp,
                             std::uint8_t* y, std::int64_t yStride)
{
    static_assert((Vectors == 2 || Vectors == 4) && Rows >= 1 && Rows <= kTileRows);
    const std::uint8_t* x0 = x;
    const std::uint8_t* x1 = x0 + xStride;
    const std::uint8_t* x2 = x1 + xStride;
    const std::uint8_t* x3 = x2 + xStride;
    const std::uint8_t* x4 = x3 + xStride;
    const std::uint8_t* x5 = x4 + xStride;
    __m512i c00 = _mm512_setzero_si512(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    __m512i c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00;
    __m512i c40 = c00, c41 = c00, c42 = c00, c43 = c00, c50 = c00, c51 = c00, c52 = c00, c53 = c00;
    // Full groups of four k, then the last partial group (a depth not a multiple of 4).
    const std::int64_t fullDepth = depth / 4 * 4;
    for (std::int64_t k = 0; k < depth; k += 4) {
        const std::int64_t bytes = k < fullDepth ? 4 : depth - k;
        const std::int8_t* w = panel + k * kPanelColumns;
        const __m512i w0 = _mm512_loadu_si512(w), w1 = _mm512_loadu_si512(w + 64);
        const __m512i w2 = Vectors == 4 ? _mm512_loadu_si512(w + 128) : w0, w3 = Vectors == 4 ? _mm512_loadu_si512(w + 192) : w0;
        __m512i a = broadcastFour(x0 + k, bytes);
        c00 = _mm512_dpbusd_epi32(c00, a, w0); c01 = _mm512_dpbusd_epi32(c01, a, w1);
        if constexpr (Vectors == 4) { c02 = _mm512_dpbusd_epi32(c02, a, w2); c03 = _mm512_dpbusd_epi32(c03, a, w3); }
        if constexpr (Rows > 1) {
            a = broadcastFour(x1 + k, bytes);
            c10 = _mm512_dpbusd_epi32(c10, a, w0); c11 = _mm512_dpbusd_epi32(c11, a, w1);
            if constexpr (Vectors == 4) { c12 = _mm512_dpbusd_epi32(c12, a, w2); c13 = _mm512_dpbusd_epi32(c13, a, w3); }
        }
        if constexpr (Rows > 2) {
            a = broadcastFour(x2 + k, bytes);
            c20 = _mm512_dpbusd_epi32(c20, a, w0); c21 = _mm512_dpbusd_epi32(c21, a, w1);
            if constexpr (Vectors == 4) { c22 = _mm512_dpbusd_epi32(c22, a, w2); c23 = _mm512_dpbusd_epi32(c23, a, w3); }
        }
        if constexpr (Rows > 3) {
            a = broadcastFour(x3 + k, bytes);
            c30 = _mm512_dpbusd_epi32(c30, a, w0); c31 = _mm512_dpbusd_epi32(c31, a, w1);
            if constexpr (Vectors == 4) { c32 = _mm512_dpbusd_epi32(c32, a, w2); c33 = _mm512_dpbusd_epi32(c33, a, w3); }
        }
        if constexpr (Rows > 4) {
            a = broadcastFour(x4 + k, bytes);
            c40 = _mm512_dpbusd_epi32(c40, a, w0); c41 = _mm512_dpbusd_epi32(c41, a, w1);
            if constexpr (Vectors == 4) { c42 = _mm512_dpbusd_epi32(c42, a, w2); c43 = _mm512_dpbusd_epi32(c43, a, w3); }
        }
        if constexpr (Rows > 5) {
            a = broadcastFour(x5 + k, bytes);
            c50 = _mm512_dpbusd_epi32(c50, a, w0); c51 = _mm512_dpbusd_epi32(c51, a, w1);
            if constexpr (Vectors == 4) { c52 = _mm512_dpbusd_epi32(c52, a, w2); c53 = _mm512_dpbusd_epi32(c53, a, w3); }
        }
    }
    storeRow<WeightZeroPoints>(c00, c01, c02, c03, stage, rowSums[0], columns, clamp, y);
    if constexpr (Rows > 1) storeRow<WeightZeroPoints>(c10, c11, c12, c13, stage, rowSums[1], columns, clamp, y + yStride);
    if constexpr (Rows > 2) storeRow<WeightZeroPoints>(c20, c21, c22, c23, stage, rowSums[2], columns, clamp, y + 2 * yStride);
    if constexpr (Rows > 3) storeRow<WeightZeroPoints>(c30, c31, c32, c33, stage, rowSums[3], columns, clamp, y + 3 * yStride);
    if constexpr (Rows > 4) storeRow<WeightZeroPoints>(c40, c41, c42, c43, stage, rowSums[4], columns, clamp, y + 4 * yStride);
    if constexpr (Rows > 5) storeRow<WeightZeroPoints>(c50, c51, c52, c53, stage, rowSums[5], columns, clamp, y + 5 * yStride);
}

// gemmTile for a row count known at run time.
template <int Vectors, bool WeightZeroPoints, class... Args>
QE_AVX512_VNNI inline void gemmTileOf(int rows, Args... args)
{
    switch (rows) {
    case 6: gemmTile<Vectors, 6, WeightZeroPoints>(args...); break;
    case 5: gemmTile<Vectors, 5, WeightZeroPoints>(args...); break;
    case 4: gemmTile<Vectors, 4, WeightZeroPoints>(args...); break;
    case 3: gemmTile<Vectors, 3, WeightZeroPoints>(args...); break;
    case 2: gemmTile<Vectors, 2, WeightZeroPoints>(args...); break;
    default: gemmTile<Vectors, 1, WeightZeroPoints>(args...); break;
    }
}

template <bool WeightZeroPoints>
QE_AVX512_VNNI void gemmRows(const std::uint8_t* x, std::int64_t rows, std::int64_t xStride, std::int64_t depth,
                             const std::int8_t* panel, const Stage& stage, std::int64_t columns, const OutputStage& output,
                             std::uint8_t* y, std::int64_t yStride)
{
    const VectorClamp clamp = makeClamp(output);
    std::int32_t rowSums[kTileRows] = {};
    for (std::int64_t first = 0; first < rows; first += kTileRows) {
        const int count = static_cast<int>(std::min<std::int64_t>(kTileRows, rows - first));
        const std::uint8_t* xt = x + first * xStride;
        if constexpr (WeightZeroPoints)
            for (int r = 0; r < count; ++r) {
                std::int32_t sum = 0;
                for (std::int64_t k = 0; k < depth; ++k)
                    sum += xt[r * xStride + k];
                rowSums[r] = sum;
            }
        std::uint8_t* yt = y + first * yStride;
        if (columns <= 2 * kLanes)
            gemmTileOf<2, WeightZeroPoints>(count, xt, xStride, depth, panel, stage, rowSums, columns, clamp, yt, yStride);
        else
            gemmTileOf<4, WeightZeroPoints>(count, xt, xStride, depth, panel, stage, rowSums, columns, clamp, yt, yStride);
    }
}

// One output row of a depthwise convolution: per output pixel, the window's input pixels (or
// the zero-point row where the window leaves the image), then sixteen channels at a time.
template <bool WeightZeroPoints>
QE_AVX512_VNNI void depthwiseRow(const std::uint8_t* image, std::int64_t channels, const Window2D& w, std::int64_t oy,
                                 const std::int32_t* taps, std::int64_t tapStride, const std::uint8_t* zeroRow,
                                 const Stage& stage, const OutputStage& output, std::uint8_t* y,
                                 std::vector<const std::uint8_t*>& inputs)
{
    const VectorClamp clamp = makeClamp(output);
    const std::int64_t tapCount = w.kernelH * w.kernelW;
    for (std::int64_t ox = 0; ox < w.outW; ++ox) {
        for (std::int64_t ky = 0; ky < w.kernelH; ++ky) {
            const std::int64_t iy = oy * w.strideH - w.padTop + ky * w.dilationH;
            for (std::int64_t kx = 0; kx < w.kernelW; ++kx) {
                const std::int64_t ix = ox * w.strideW - w.padLeft + kx * w.dilationW;
                const bool inside = iy >= 0 && iy < w.inH && ix >= 0 && ix < w.inW;
                inputs[static_cast<std::size_t>(ky * w.kernelW + kx)] = inside ? image + (iy * w.inW + ix) * channels : zeroRow;
            }
        }
        std::uint8_t* out = y + ox * channels;
        for (std::int64_t c = 0; c < channels; c += kLanes) {
            const std::int64_t valid = std::min<std::int64_t>(kLanes, channels - c);
            const auto mask = static_cast<__mmask16>((1u << valid) - 1);
            __m512i acc = _mm512_setzero_si512(), sum = _mm512_setzero_si512();
            for (std::int64_t t = 0; t < tapCount; ++t) {
                const __m512i xv = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, inputs[static_cast<std::size_t>(t)] + c));
                acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(xv, _mm512_loadu_si512(taps + t * tapStride + c)));
                if constexpr (WeightZeroPoints)
                    sum = _mm512_add_epi32(sum, xv);
            }
            const Stage& s = stage.from(c);
            if constexpr (WeightZeroPoints)
                acc = _mm512_sub_epi32(acc, _mm512_mullo_epi32(_mm512_loadu_si512(s.weightZeroPoints), sum));
            _mm_mask_storeu_epi8(out + c, mask, requantize16(acc, *s.blocks, clamp));
        }
    }
}

// Sixteen input codes widened to int32 lanes; fewer (masked) in the last block of a channel
// count that is not a multiple of 16, so that nothing past the tensor is read.
template <bool Partial>
QE_AVX512_VNNI inline __m512i widen16(const std::uint8_t* p, __mmask16 mask)
{
    if constexpr (Partial)
        return _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, p));
    else
        return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// Four taps of 16 channels, 16 input bytes each (masked in a partial block), gathered into one
// vector and transposed so that each 32-bit lane holds one channel's four taps: the layout
// vpdpbusd multiplies by the channel's four weights. A null pointer is a tap with weight 0.
template <bool Partial>
QE_AVX512_VNNI inline __m512i fourTaps(const std::uint8_t* t0, const std::uint8_t* t1, const std::uint8_t* t2,
                                       const std::uint8_t* t3, __mmask16 mask)
{
    auto load = [mask](const std::uint8_t* p) QE_AVX512_VNNI {
        if (!p)
            return _mm_setzero_si128();
        if constexpr (Partial)
            return _mm_maskz_loadu_epi8(mask, p);
        else
            return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    };
    __m512i v = _mm512_zextsi128_si512(load(t0));
    if (t1)
        v = _mm512_inserti32x4(v, load(t1), 1);
    if (t2)
        v = _mm512_inserti32x4(v, load(t2), 2);
    if (t3)
        v = _mm512_inserti32x4(v, load(t3), 3);
    // Byte 4c + t of the result is byte c of tap t (byte 16t + c of v).
    const __m512i transpose = _mm512_set_epi8(63, 47, 31, 15, 62, 46, 30, 14, 61, 45, 29, 13, 60, 44, 28, 12, 59, 43, 27, 11, 58, 42,
                                              26, 10, 57, 41, 25, 9, 56, 40, 24, 8, 55, 39, 23, 7, 54, 38, 22, 6, 53, 37, 21, 5, 52,
                                              36, 20, 4, 51, 35, 19, 3, 50, 34, 18, 2, 49, 33, 17, 1, 48, 32, 16, 0);
    return _mm512_permutexvar_epi8(transpose, v);
}

// One 3x3 window of 16 channels: the nine taps' inputs (p) times the weights, packed four taps
// per channel and lane (w: taps 0-3, 4-7, 8), then the output codes.
template <bool WeightZeroPoints, bool Partial>
QE_AVX512_VNNI inline __m128i depthwise3x3Pixel(const std::uint8_t* const (&p)[9], __mmask16 mask, const __m512i (&w)[3],
                                                const Stage& s, const VectorClamp& clamp)
{
    const __m512i x0 = fourTaps<Partial>(p[0], p[1], p[2], p[3], mask);
    const __m512i x1 = fourTaps<Partial>(p[4], p[5], p[6], p[7], mask);
    const __m512i x2 = fourTaps<Partial>(p[8], nullptr, nullptr, nullptr, mask);
    __m512i acc = _mm512_dpbusd_epi32(_mm512_setzero_si512(), x0, w[0]);
    acc = _mm512_dpbusd_epi32(acc, x1, w[1]);
    acc = _mm512_dpbusd_epi32(acc, x2, w[2]);
    if constexpr (WeightZeroPoints) {
        const __m512i ones = _mm512_set1_epi8(1);  // the window sum of each channel, by the same instruction
        const __m512i sum = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), x0, ones), x1, ones), x2, ones);
        acc = _mm512_sub_epi32(acc, _mm512_mullo_epi32(_mm512_loadu_si512(s.weightZeroPoints), sum));
    }
    return requantize16(acc, *s.blocks, clamp);
}

// One output row of a 3x3 depthwise convolution, the common case, channel block by channel
// block: a block's weights (three vectors of four taps per channel) stay in registers across the
// row. Window rows above or below the image read the zero-point row with a pixel step of 0; only
// the few pixels at the left and right edges check each tap.
template <bool WeightZeroPoints, bool Partial>
QE_AVX512_VNNI void depthwise3x3Block(const std::uint8_t* const (&rows)[3], const std::int64_t (&steps)[3], std::int64_t c,
                                      std::int64_t channels, const Window2D& w, const std::int8_t* quads,
                                      const std::uint8_t* zeroRow, const Stage& s, const VectorClamp& clamp, std::uint8_t* y)
{
    const auto mask = static_cast<__mmask16>((1u << std::min<std::int64_t>(kLanes, channels - c)) - 1);
    const std::int8_t* q = quads + c / kLanes * 3 * 64;
    const __m512i weights[3] = {_mm512_loadu_si512(q), _mm512_loadu_si512(q + 64), _mm512_loadu_si512(q + 128)};
    // Output columns whose three taps are all inside the image: [interiorBegin, interiorEnd).
    const std::int64_t interiorBegin = std::min(w.outW, (w.padLeft + w.strideW - 1) / w.strideW);
    const std::int64_t lastStart = w.inW - 1 - 2 * w.dilationW + w.padLeft;  // the largest ox * strideW allowed
    const std::int64_t interiorEnd = std::max(interiorBegin, std::min(w.outW, lastStart < 0 ? 0 : lastStart / w.strideW + 1));
    auto edgePixel = [&](std::int64_t ox) QE_AVX512_VNNI {
        const std::int64_t ix = ox * w.strideW - w.padLeft;
        const std::uint8_t* p[9];
        for (int ky = 0; ky < 3; ++ky)
            for (int kx = 0; kx < 3; ++kx) {
                const std::int64_t ixk = ix + kx * w.dilationW;
                p[ky * 3 + kx] = (ixk >= 0 && ixk < w.inW ? rows[ky] + ixk * steps[ky] : zeroRow) + c;
            }
        _mm_mask_storeu_epi8(y + ox * channels + c, mask, depthwise3x3Pixel<WeightZeroPoints, Partial>(p, mask, weights, s, clamp));
    };
    for (std::int64_t ox = 0; ox < interiorBegin; ++ox)
        edgePixel(ox);
    if (interiorBegin < interiorEnd) {
        const std::int64_t ix = interiorBegin * w.strideW - w.padLeft;
        const std::uint8_t* q0 = rows[0] + ix * steps[0] + c;
        const std::uint8_t* q1 = rows[1] + ix * steps[1] + c;
        const std::uint8_t* q2 = rows[2] + ix * steps[2] + c;
        const std::int64_t d0 = w.dilationW * steps[0], d1 = w.dilationW * steps[1], d2 = w.dilationW * steps[2];
        const std::int64_t m0 = w.strideW * steps[0], m1 = w.strideW * steps[1], m2 = w.strideW * steps[2];
        for (std::int64_t ox = interiorBegin; ox < interiorEnd; ++ox, q0 += m0, q1 += m1, q2 += m2) {
            const std::uint8_t* const p[9] = {q0, q0 + d0, q0 + 2 * d0, q1, q1 + d1, q1 + 2 * d1, q2, q2 + d2, q2 + 2 * d2};
            _mm_mask_storeu_epi8(y + ox * channels + c, mask, depthwise3x3Pixel<WeightZeroPoints, Partial>(p, mask, weights, s, clamp));
        }
    }
    for (std::int64_t ox = interiorEnd; ox < w.outW; ++ox)
        edgePixel(ox);
}

template <bool WeightZeroPoints>
QE_AVX512_VNNI void depthwise3x3Row(const std::uint8_t* image, std::int64_t channels, const Window2D& w, std::int64_t oy,
                                    const std::int8_t* quads, const std::uint8_t* zeroRow,
                                    const Stage& stage, const OutputStage& output, std::uint8_t* y)
{
    const VectorClamp clamp = makeClamp(output);
    const std::uint8_t* rows[3];
    std::int64_t steps[3];
    for (int ky = 0; ky < 3; ++ky) {
        const std::int64_t iy = oy * w.strideH - w.padTop + ky * w.dilationH;
        const bool inside = iy >= 0 && iy < w.inH;
        rows[ky] = inside ? image + iy * w.inW * channels : zeroRow;
        steps[ky] = inside ? channels : 0;
    }
    std::int64_t c = 0;
    for (; c + kLanes <= channels; c += kLanes)
        depthwise3x3Block<WeightZeroPoints, false>(rows, steps, c, channels, w, quads, zeroRow, stage.from(c), clamp, y);
    if (c < channels)
        depthwise3x3Block<WeightZeroPoints, true>(rows, steps, c, channels, w, quads, zeroRow, stage.from(c), clamp, y);
}

// OpenMP threads for `work` multiply-adds: one below about 2^17 (some 10 us of work, where the
// fork and join would cost a noticeable share).
int threadsFor(double work) { return work >= double(1 << 17) ? omp_get_max_threads() : 1; }

std::vector<std::int32_t> perChannel(std::vector<std::int32_t> values, std::int64_t channels, const char* what)
{
    if (values.size() == 1)
        values.assign(static_cast<std::size_t>(channels), values[0]);
    if (static_cast<std::int64_t>(values.size()) != channels)
        throw Error(std::string("fused int8 kernel: expected 1 or ") + std::to_string(channels) + " " + what + ", got " +
                    std::to_string(values.size()));
    return values;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

PackedGemm::PackedGemm(const std::int8_t* weights, std::int64_t k, std::int64_t n, std::int64_t kStride, std::int64_t nStride,
                       std::vector<std::int32_t> weightZeroPoints)
    : k_(k), n_(n), weightZeroPoints_(perChannel(std::move(weightZeroPoints), n, "weight zero-points"))
{
    if (k < 1 || n < 1)
        throw Error("fused int8 matrix product: empty weights " + std::to_string(k) + " x " + std::to_string(n));
    hasWeightZeroPoints_ = std::any_of(weightZeroPoints_.begin(), weightZeroPoints_.end(), [](std::int32_t z) { return z != 0; });
    const std::int64_t panels = roundUp(n, kPanelColumns) / kPanelColumns, groups = roundUp(k, 4) / 4;
    packed_.assign(static_cast<std::size_t>(panels * groups * 4 * kPanelColumns), 0);
    weightSums_.assign(static_cast<std::size_t>(n), 0);
    for (std::int64_t column = 0; column < n; ++column) {
        const std::int64_t panel = column / kPanelColumns, lane = column % kPanelColumns;
        for (std::int64_t i = 0; i < k; ++i) {
            const std::int8_t v = weights[i * kStride + column * nStride];
            // vpdpbusd sums bytes 4l..4l+3 of lane l: four consecutive k of one column.
            packed_[static_cast<std::size_t>(((panel * groups + i / 4) * kPanelColumns + lane) * 4 + i % 4)] = v;
            weightSums_[static_cast<std::size_t>(column)] += v;
        }
    }
}

void PackedGemm::run(const std::uint8_t* x, std::int64_t rows, std::int64_t xStride, std::int32_t inputZeroPoint,
                     const OutputStage& stage, std::uint8_t* y, std::int64_t yStride) const
{
    if (!fusedKernelsAvailable())
        throw Error("fused int8 matrix product: this CPU lacks AVX-512 VNNI");
    if (rows <= 0)
        return;
    std::vector<std::int32_t> weightZeroPoints;
    const std::vector<RequantizationBlock> blocks =
        prepareStage(stage, n_, weightSums_.data(), weightZeroPoints_.data(), k_, inputZeroPoint, weightZeroPoints);
    const Stage all{blocks.data(), weightZeroPoints.data()};
    const std::int64_t panels = roundUp(n_, kPanelColumns) / kPanelColumns;
    const std::int64_t panelBytes = roundUp(k_, 4) * kPanelColumns;
    // Tasks: a block of up to 48 rows against one panel. Row blocks outside when there are many
    // (each thread keeps its rows in cache across the panels), panels outside when rows are few
    // (the last layers of a network at batch 1), so that both threads get equal shares.
    const std::int64_t tiles = roundUp(rows, kTileRows) / kTileRows;
    const std::int64_t rowBlocks = roundUp(tiles, kTilesPerBlock) / kTilesPerBlock;
    const std::int64_t rowsPerBlock = roundUp(tiles, rowBlocks) / rowBlocks * kTileRows;
    const bool rowsOutside = rowBlocks >= panels;
    const std::int64_t tasks = rowBlocks * panels;
    const int threads = threadsFor(double(rows) * double(k_) * double(n_));
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (std::int64_t task = 0; task < tasks; ++task) {
        const std::int64_t block = rowsOutside ? task / panels : task % rowBlocks;
        const std::int64_t panel = rowsOutside ? task % panels : task / rowBlocks;
        const std::int64_t first = block * rowsPerBlock, count = std::min(rowsPerBlock, rows - first);
        if (count <= 0)
            continue;
        const std::int64_t columns = std::min(kPanelColumns, n_ - panel * kPanelColumns);
        const std::int8_t* p = packed_.data() + panel * panelBytes;
        const Stage s = all.from(panel * kPanelColumns);
        std::uint8_t* out = y + first * yStride + panel * kPanelColumns;
        if (hasWeightZeroPoints_)
            gemmRows<true>(x + first * xStride, count, xStride, k_, p, s, columns, stage, out, yStride);
        else
            gemmRows<false>(x + first * xStride, count, xStride, k_, p, s, columns, stage, out, yStride);
    }
}

// ---------------------------------------------------------------------------------------------

namespace {

// [OC, C, KH, KW] to [OC, KH, KW, C]: each output channel's weights in im2col row order.
std::vector<std::int8_t> toOhwi(const std::int8_t* oihw, std::int64_t oc, std::int64_t c, std::int64_t kh, std::int64_t kw)
{
    std::vector<std::int8_t> ohwi(static_cast<std::size_t>(oc * c * kh * kw));
    for (std::int64_t o = 0; o < oc; ++o)
        for (std::int64_t i = 0; i < c; ++i)
            for (std::int64_t t = 0; t < kh * kw; ++t)
                ohwi[static_cast<std::size_t>((o * kh * kw + t) * c + i)] = oihw[(o * c + i) * kh * kw + t];
    return ohwi;
}

}  // namespace

Im2colConv::Im2colConv(const std::int8_t* weights, std::int64_t outChannels, std::int64_t channels, std::int64_t kernelH,
                       std::int64_t kernelW, std::vector<std::int32_t> weightZeroPoints)
    : channels_(channels), kernelH_(kernelH), kernelW_(kernelW),
      gemm_(toOhwi(weights, outChannels, channels, kernelH, kernelW).data(), kernelH * kernelW * channels, outChannels, 1,
            kernelH * kernelW * channels, std::move(weightZeroPoints))
{
}

void Im2colConv::run(const std::uint8_t* x, std::int64_t batch, const Window2D& w, std::int32_t inputZeroPoint,
                     const OutputStage& stage, std::uint8_t* y) const
{
    if (w.kernelH != kernelH_ || w.kernelW != kernelW_)
        throw Error("fused convolution: a " + std::to_string(w.kernelH) + "x" + std::to_string(w.kernelW) + " window for " +
                    std::to_string(kernelH_) + "x" + std::to_string(kernelW_) + " weights");
    const std::int64_t outChannels = gemm_.outputs(), depth = gemm_.depth(), pixels = batch * w.outH * w.outW;
    const bool pointwise = kernelH_ == 1 && kernelW_ == 1 && w.strideH == 1 && w.strideW == 1 && w.padTop == 0 &&
                           w.padLeft == 0 && w.outH == w.inH && w.outW == w.inW;
    if (pointwise) {
        gemm_.run(x, pixels, channels_, inputZeroPoint, stage, y, outChannels);
        return;
    }
    // Whole output rows, about 256 KiB of im2col rows at a time, so that they are still in cache
    // for the product.
    const std::int64_t outputRows = batch * w.outH;
    const std::int64_t rowsPerChunk = std::clamp<std::int64_t>((std::int64_t{1} << 18) / (depth * w.outW), 1, outputRows);
    thread_local std::vector<std::uint8_t> columns;
    columns.resize(static_cast<std::size_t>(rowsPerChunk * w.outW * depth));
    const std::int64_t windowRowBytes = kernelW_ * channels_;  // contiguous in the input when inside and undilated
    for (std::int64_t firstRow = 0; firstRow < outputRows; firstRow += rowsPerChunk) {
        const std::int64_t rowCount = std::min(rowsPerChunk, outputRows - firstRow);
        std::uint8_t* cols = columns.data();
#pragma omp parallel for schedule(static) if (rowCount * w.outW * depth >= (1 << 16))
        for (std::int64_t row = firstRow; row < firstRow + rowCount; ++row) {
            const std::int64_t image = row / w.outH, oy = row % w.outH;
            const std::uint8_t* in = x + image * w.inH * w.inW * channels_;
            std::uint8_t* dst = cols + (row - firstRow) * w.outW * depth;
            for (std::int64_t ox = 0; ox < w.outW; ++ox) {
                const std::int64_t ix0 = ox * w.strideW - w.padLeft;
                const bool rowInside = w.dilationW == 1 && ix0 >= 0 && ix0 + kernelW_ <= w.inW;
                for (std::int64_t ky = 0; ky < kernelH_; ++ky, dst += windowRowBytes) {
                    const std::int64_t iy = oy * w.strideH - w.padTop + ky * w.dilationH;
                    if (iy < 0 || iy >= w.inH) {
                        std::memset(dst, inputZeroPoint, static_cast<std::size_t>(windowRowBytes));
                    } else if (rowInside) {
                        const std::uint8_t* __restrict src = in + (iy * w.inW + ix0) * channels_;
                        std::uint8_t* __restrict to = dst;
                        if (windowRowBytes < 64) {  // e.g. 9 bytes of an RGB input: a call to memcpy costs more than the copy
                            std::int64_t b = 0;
                            for (; b + 8 <= windowRowBytes; b += 8)
                                std::memcpy(to + b, src + b, 8);  // one 8-byte move
                            for (; b < windowRowBytes; ++b)
                                to[b] = src[b];
                        } else {
                            std::memcpy(to, src, static_cast<std::size_t>(windowRowBytes));
                        }
                    } else {
                        for (std::int64_t kx = 0; kx < kernelW_; ++kx) {
                            const std::int64_t ix = ix0 + kx * w.dilationW;
                            if (ix < 0 || ix >= w.inW)
                                std::memset(dst + kx * channels_, inputZeroPoint, static_cast<std::size_t>(channels_));
                            else
                                std::memcpy(dst + kx * channels_, in + (iy * w.inW + ix) * channels_, static_cast<std::size_t>(channels_));
                        }
                    }
                }
            }
        }
        gemm_.run(cols, rowCount * w.outW, depth, inputZeroPoint, stage, y + firstRow * w.outW * outChannels, outChannels);
    }
}

// ---------------------------------------------------------------------------------------------

DepthwiseConv::DepthwiseConv(const std::int8_t* weights, std::int64_t channels, std::int64_t kernelH, std::int64_t kernelW,
                             std::vector<std::int32_t> weightZeroPoints)
    : channels_(channels), kernelH_(kernelH), kernelW_(kernelW),
      weightZeroPoints_(perChannel(std::move(weightZeroPoints), channels, "weight zero-points"))
{
    if (channels < 1 || kernelH < 1 || kernelW < 1)
        throw Error("fused depthwise convolution: empty weights");
    hasWeightZeroPoints_ = std::any_of(weightZeroPoints_.begin(), weightZeroPoints_.end(), [](std::int32_t z) { return z != 0; });
    const std::int64_t taps = kernelH * kernelW, stride = roundUp(channels, kLanes);
    const bool threeByThree = kernelH == 3 && kernelW == 3;
    // 3x3: per block of 16 channels, three vectors: taps 0-3, 4-7 and 8 (then zeros), each
    // channel's four taps in its 32-bit lane (byte 4c + t). Other windows: widened tap by tap.
    if (threeByThree)
        quads_.assign(static_cast<std::size_t>(stride / kLanes * 3 * 64), 0);
    else
        taps_.assign(static_cast<std::size_t>(taps * stride), 0);
    weightSums_.assign(static_cast<std::size_t>(channels), 0);
    for (std::int64_t c = 0; c < channels; ++c)
        for (std::int64_t t = 0; t < taps; ++t) {
            const std::int8_t v = weights[c * taps + t];  // [C, 1, KH, KW]
            if (threeByThree)
                quads_[static_cast<std::size_t>((c / kLanes * 3 + t / 4) * 64 + c % kLanes * 4 + t % 4)] = v;
            else
                taps_[static_cast<std::size_t>(t * stride + c)] = v;
            weightSums_[static_cast<std::size_t>(c)] += v;
        }
}

void DepthwiseConv::run(const std::uint8_t* x, std::int64_t batch, const Window2D& window, std::int32_t inputZeroPoint,
                        const OutputStage& stage, std::uint8_t* y) const
{
    if (!fusedKernelsAvailable())
        throw Error("fused depthwise convolution: this CPU lacks AVX-512");
    if (window.kernelH != kernelH_ || window.kernelW != kernelW_)
        throw Error("fused depthwise convolution: a " + std::to_string(window.kernelH) + "x" + std::to_string(window.kernelW) +
                    " window for " + std::to_string(kernelH_) + "x" + std::to_string(kernelW_) + " weights");
    const std::int64_t taps = kernelH_ * kernelW_, tapStride = roundUp(channels_, kLanes);
    std::vector<std::int32_t> weightZeroPoints;
    const std::vector<RequantizationBlock> blocks =
        prepareStage(stage, channels_, weightSums_.data(), weightZeroPoints_.data(), taps, inputZeroPoint, weightZeroPoints);
    const Stage all{blocks.data(), weightZeroPoints.data()};
    // Padded positions read a row of zero-points, padded to whole vectors.
    const std::vector<std::uint8_t> zeroRow(static_cast<std::size_t>(tapStride), static_cast<std::uint8_t>(inputZeroPoint));
    const std::int64_t rows = batch * window.outH;
    const std::int64_t imageBytes = window.inH * window.inW * channels_, rowBytes = window.outW * channels_;
    const int threads = threadsFor(double(rows) * double(rowBytes) * double(taps));
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        std::vector<const std::uint8_t*> inputs(static_cast<std::size_t>(taps));
#pragma omp for schedule(static)
        for (std::int64_t row = 0; row < rows; ++row) {
            const std::int64_t image = row / window.outH, oy = row % window.outH;
            const std::uint8_t* in = x + image * imageBytes;
            std::uint8_t* out = y + row * rowBytes;
            if (!quads_.empty() && hasWeightZeroPoints_)
                depthwise3x3Row<true>(in, channels_, window, oy, quads_.data(), zeroRow.data(), all, stage, out);
            else if (!quads_.empty())
                depthwise3x3Row<false>(in, channels_, window, oy, quads_.data(), zeroRow.data(), all, stage, out);
            else if (hasWeightZeroPoints_)
                depthwiseRow<true>(in, channels_, window, oy, taps_.data(), tapStride, zeroRow.data(), all, stage,
                                   y + row * rowBytes, inputs);
            else
                depthwiseRow<false>(in, channels_, window, oy, taps_.data(), tapStride, zeroRow.data(), all, stage,
                                    y + row * rowBytes, inputs);
        }
    }
}

}  // namespace qe::int8
