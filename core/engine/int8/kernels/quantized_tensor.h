#pragma once
// An activation as the integer engine holds it: 8-bit codes plus the affine parameters that give
// them meaning, real = scale * (code - zeroPoint).
//
// Codes are always stored as uint8. A signed (int8) activation is stored shifted by +128 with its
// zero-point and code range shifted alike, which changes no value:
//     scale * (q - zp) == scale * ((q + 128) - (zp + 128)).
// So every integer kernel has one input type (u8, which is also what the VNNI instruction
// vpdpbusd multiplies with s8 weights), and `isSigned` only says how to present codes to a user.
//
// Rank-4 activations may be stored channels-last (NHWC), the layout the fast convolutions want.

#include "tensor/tensor.h"

#include <cstdint>

namespace qe::int8 {

struct ActivationParams {
    float scale = 1.f;
    std::int32_t zeroPoint = 0;           // in the stored (uint8) domain
    std::int32_t codeMin = 0, codeMax = 255;  // the code range in the stored domain (narrower below 8 bits)
    bool isSigned = false;                // presented as int8 (stored + 128)
    bool operator==(const ActivationParams&) const = default;
};

struct QuantizedTensor {
    Tensor codes;       // UInt8; shape [N, H, W, C] when channelsLast, else the logical shape
    bool channelsLast = false;
    ActivationParams params;

    // The shape ONNX sees (NCHW for rank 4).
    Shape logicalShape() const;
};

// q = clamp(nearbyint(x * (1 / scale)) + zeroPoint): the same float operations, in the same order,
// as the simulation's fake quantization, so the engine's input codes equal the simulation's.
QuantizedTensor quantize(const Tensor& values, const ActivationParams& params);
// The same codes of an NCHW float tensor, stored channels-last: quantized and transposed in one
// pass, tile by tile (a model's input, read by a convolution that wants NHWC).
QuantizedTensor quantizeToChannelsLast(const Tensor& nchw, const ActivationParams& params);
Tensor dequantize(const QuantizedTensor& q);  // float, NCHW

// Layout changes (no-ops when already in that layout or when H * W == 1, where both agree).
QuantizedTensor toChannelsLast(const QuantizedTensor& q);
QuantizedTensor toChannelsFirst(const QuantizedTensor& q);

// The codes as a user sees them: int8 for signed activations, uint8 otherwise; NCHW.
Tensor presentedCodes(const QuantizedTensor& q);

}  // namespace qe::int8
