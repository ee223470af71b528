#include "engine/int8/kernels/quantized_tensor.h"

#include "common/error.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace qe::int8 {

Shape QuantizedTensor::logicalShape() const
{
    const Shape& s = codes.shape();
    if (!channelsLast)
        return s;
    return {s[0], s[3], s[1], s[2]};
}

namespace {

// clamp(nearbyint(x * inverseScale) + zeroPoint) for `count` values. Rounding half to even
// (nearbyint's) by adding and subtracting 1.5 * 2^23: exact for |v| < 2^22, which the bounds one
// step beyond the code range guarantee, and it vectorizes where a call to nearbyint does not.
// The bounds change no result: anything beyond them is clamped to codeMin or codeMax anyway.
void quantizeValues(const float* x, std::int64_t count, const ActivationParams& params, std::uint8_t* out)
{
    const float inverseScale = 1.f / params.scale;
    const auto zeroPoint = static_cast<float>(params.zeroPoint);
    const auto lo = static_cast<float>(params.codeMin), hi = static_cast<float>(params.codeMax);
    const float below = lo - zeroPoint - 1.f, above = hi - zeroPoint + 1.f, magic = 12582912.f;
    for (std::int64_t i = 0; i < count; ++i) {
        const float v = x[i] * inverseScale;
        const float bounded = std::min(std::max(v, below), above);
        const float code = std::min(std::max((bounded + magic) - magic + zeroPoint, lo), hi);
        // NaN becomes the zero-point (real 0): an integer has no NaN.
        out[i] = static_cast<std::uint8_t>(static_cast<std::int32_t>(v == v ? code : zeroPoint));
    }
}

// out[p * channels + c] = planes[c * planeStride + p]; Channels != 0 fixes the count at compile time.
template <int Channels>
void interleave(const std::uint8_t* planes, std::int64_t planeStride, std::int64_t count, std::uint8_t* out, std::int64_t channels = Channels)
{
    const std::int64_t c = Channels != 0 ? Channels : channels;
    for (std::int64_t p = 0; p < count; ++p)
        for (std::int64_t ch = 0; ch < c; ++ch)
            out[p * c + ch] = planes[ch * planeStride + p];
}

// out[i][y][x] = convert(in[i][x][y]) for an [N, A, B] array `in` into [N, B, A], in tiles of
// 32 x 32 that stay in cache.
template <typename In, typename Out, typename Convert>
void transposeInner(const In* in, std::int64_t n, std::int64_t a, std::int64_t b, Out* out, Convert convert)
{
    constexpr std::int64_t kTile = 32;
    for (std::int64_t i = 0; i < n; ++i) {
        const In* s = in + i * a * b;
        Out* d = out + i * a * b;
        for (std::int64_t a0 = 0; a0 < a; a0 += kTile)
            for (std::int64_t b0 = 0; b0 < b; b0 += kTile)
                for (std::int64_t x = a0; x < std::min(a, a0 + kTile); ++x)
                    for (std::int64_t y = b0; y < std::min(b, b0 + kTile); ++y)
                        d[y * a + x] = convert(s[x * b + y]);
    }
}

// Copies a [N, A, B] array of bytes into [N, B, A].
Tensor transposeInner(const Tensor& in, std::int64_t n, std::int64_t a, std::int64_t b, Shape outShape)
{
    Tensor out = Tensor::uninitialized(DataType::UInt8, std::move(outShape));
    transposeInner(in.data<std::uint8_t>(), n, a, b, out.mutableData<std::uint8_t>(), [](std::uint8_t v) { return v; });
    return out;
}

void requireFloat(const Tensor& values)
{
    if (values.dtype() != DataType::Float32)
        throw Error("quantize: expected a float32 tensor, got " + values.describe());
}

}  // namespace

QuantizedTensor quantize(const Tensor& values, const ActivationParams& params)
{
    requireFloat(values);
    QuantizedTensor q;
    q.params = params;
    q.codes = Tensor::uninitialized(DataType::UInt8, values.shape());
    const float* x = values.data<float>();
    std::uint8_t* out = q.codes.mutableData<std::uint8_t>();
    constexpr std::int64_t kBlock = 1 << 14;
    const std::int64_t blocks = (values.size() + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (blocks > 4)
    for (std::int64_t b = 0; b < blocks; ++b)
        quantizeValues(x + b * kBlock, std::min(kBlock, values.size() - b * kBlock), params, out + b * kBlock);
    return q;
}

QuantizedTensor quantizeToChannelsLast(const Tensor& nchw, const ActivationParams& params)
{
    requireFloat(nchw);
    if (nchw.rank() != 4)
        throw Error("quantize: expected a 4-D (NCHW) tensor, got " + nchw.describe());
    const std::int64_t n = nchw.dim(0), c = nchw.dim(1), pixels = nchw.dim(2) * nchw.dim(3);
    QuantizedTensor q;
    q.params = params;
    q.channelsLast = true;
    q.codes = Tensor::uninitialized(DataType::UInt8, {n, nchw.dim(2), nchw.dim(3), c});
    const float* x = nchw.data<float>();
    std::uint8_t* out = q.codes.mutableData<std::uint8_t>();
    // Tiles of 256 pixels: each channel's run quantized into a small buffer, then interleaved.
    constexpr std::int64_t kTile = 256;
    const std::int64_t tilesPerImage = (pixels + kTile - 1) / kTile;
#pragma omp parallel if (n * c * pixels >= (1 << 16))
    {
        std::vector<std::uint8_t> tile(static_cast<std::size_t>(c * kTile));
#pragma omp for schedule(static)
        for (std::int64_t t = 0; t < n * tilesPerImage; ++t) {
            const std::int64_t image = t / tilesPerImage, first = t % tilesPerImage * kTile, count = std::min(kTile, pixels - first);
            for (std::int64_t ch = 0; ch < c; ++ch)
                quantizeValues(x + (image * c + ch) * pixels + first, count, params, tile.data() + ch * kTile);
            std::uint8_t* o = out + (image * pixels + first) * c;
            if (c == 3)  // RGB, the common case: a constant count the compiler unrolls
                interleave<3>(tile.data(), kTile, count, o);
            else
                interleave<0>(tile.data(), kTile, count, o, c);
        }
    }
    return q;
}

Tensor dequantize(const QuantizedTensor& q)
{
    Tensor out = Tensor::uninitialized(DataType::Float32, q.logicalShape());  // every element written below
    const std::uint8_t* codes = q.codes.data<std::uint8_t>();
    float* y = out.mutableData<float>();
    const std::int32_t zeroPoint = q.params.zeroPoint;
    const float scale = q.params.scale;
    auto value = [&](std::uint8_t code) { return static_cast<float>(static_cast<std::int32_t>(code) - zeroPoint) * scale; };
    const Shape& s = q.codes.shape();  // N H W C when channels-last
    if (!q.channelsLast || s[1] * s[2] == 1 || s[3] == 1) {  // the codes are already in NCHW order
        for (std::int64_t i = 0; i < out.size(); ++i)
            y[i] = value(codes[i]);
        return out;
    }
    // Back to NCHW in the same pass (a byte transpose into a second tensor and then a pass over it
    // cost twice the memory traffic).
    transposeInner(codes, s[0], s[1] * s[2], s[3], y, value);
    return out;
}

QuantizedTensor toChannelsLast(const QuantizedTensor& q)
{
    if (q.channelsLast || q.codes.rank() != 4)
        return q;
    const Shape& s = q.codes.shape();  // N C H W
    QuantizedTensor out;
    out.params = q.params;
    out.channelsLast = true;
    if (s[2] * s[3] == 1)
        out.codes = q.codes.reshaped({s[0], 1, 1, s[1]});
    else
        out.codes = transposeInner(q.codes, s[0], s[1], s[2] * s[3], {s[0], s[2], s[3], s[1]});
    return out;
}

QuantizedTensor toChannelsFirst(const QuantizedTensor& q)
{
    if (!q.channelsLast)
        return q;
    const Shape& s = q.codes.shape();  // N H W C
    QuantizedTensor out;
    out.params = q.params;
    if (s[1] * s[2] == 1)
        out.codes = q.codes.reshaped({s[0], s[3], 1, 1});
    else
        out.codes = transposeInner(q.codes, s[0], s[1] * s[2], s[3], {s[0], s[3], s[1], s[2]});
    return out;
}

Tensor presentedCodes(const QuantizedTensor& q)
{
    const QuantizedTensor nchw = toChannelsFirst(q);
    if (!q.params.isSigned)
        return nchw.codes;
    Tensor out(DataType::Int8, nchw.codes.shape());
    const std::uint8_t* src = nchw.codes.data<std::uint8_t>();
    std::int8_t* dst = out.mutableData<std::int8_t>();
    for (std::int64_t i = 0; i < out.size(); ++i)
        dst[i] = static_cast<std::int8_t>(static_cast<int>(src[i]) - 128);
    return out;
}

}  // namespace qe::int8
