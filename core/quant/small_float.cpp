// The small floating-point formats (fp16, bf16, OCP fp8): rounding a float32 to each, and
// decoding a format's codes for quantizationLevels(). The FP8 conversions follow the OCP tables:
// tests/core/tst_quantizer.cpp checks them against references produced by
// scripts/make_quantizer_references.py. The formats' constants are in scheme_internal.h, where the
// table's rows see them too.

#include "quant/scheme.h"
#include "quant/scheme_internal.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace qe {
namespace {

float roundToFormat(float x, const FloatFormat& format)
{
    if (std::isnan(x))
        return x;
    if (std::isinf(x))
        return format.saturate ? static_cast<float>(std::copysign(format.maxFinite, x)) : x;
    const double magnitude = std::fabs(static_cast<double>(x));
    if (magnitude == 0.0)
        return x;  // keeps the sign of -0
    // Representable values around `magnitude` are multiples of 2^(e - mantissaBits), e being its
    // binade (or the smallest normal binade, 1 - bias, for subnormals). Everything here is exact
    // in double. nearbyint rounds half to even, and an even multiple is a code with an even
    // mantissa (a carry into the next binade gives mantissa 0), so this is the format's
    // round-to-nearest-even.
    const int exponent = std::max(std::ilogb(magnitude), 1 - format.bias);
    const double quantum = std::ldexp(1.0, exponent - format.mantissaBits);
    double rounded = std::nearbyint(magnitude / quantum) * quantum;
    if (rounded > format.maxFinite)
        rounded = format.saturate ? format.maxFinite : std::numeric_limits<double>::infinity();
    // Sign-magnitude: a negative value that rounds to zero becomes -0, as in IEEE conversions.
    return static_cast<float>(std::copysign(rounded, static_cast<double>(x)));
}

}  // namespace

double scheme_detail::decodeFloat(std::uint32_t code, const FloatFormat& e)
{
    const std::uint32_t mantissaMask = (1u << e.mantissaBits) - 1;
    const std::uint32_t exponentMask = (1u << e.exponentBits) - 1;
    const std::uint32_t mantissa = code & mantissaMask;
    const std::uint32_t exponent = (code >> e.mantissaBits) & exponentMask;
    const bool negative = (code >> (e.mantissaBits + e.exponentBits)) & 1u;
    if (exponent == exponentMask && (e.ieeeSpecials || mantissa == mantissaMask))
        return std::numeric_limits<double>::quiet_NaN();  // inf is not a level either
    const double magnitude = exponent == 0
        ? std::ldexp(static_cast<double>(mantissa), 1 - e.bias - e.mantissaBits)
        : std::ldexp(static_cast<double>(mantissa | (mantissaMask + 1)), static_cast<int>(exponent) - e.bias - e.mantissaBits);
    return negative ? -magnitude : magnitude;
}

float roundToFp16(float x) { return roundToFormat(x, scheme_detail::kFp16); }

float roundToBf16(float x)
{
    if (std::isnan(x))
        return std::bit_cast<float>(0x7FC00000u);  // PyTorch's c10::BFloat16 also makes every NaN 0x7FC0
    // Round to nearest, ties to even, on the 16 bits that are dropped; a carry may run into the
    // exponent, which is correct (up to infinity on overflow, as PyTorch's .bfloat16()).
    std::uint32_t bits = std::bit_cast<std::uint32_t>(x);
    bits += 0x7FFFu + ((bits >> 16) & 1u);
    return std::bit_cast<float>(bits & 0xFFFF0000u);
}

// OCP E4M3 has no infinity (S.1111.111 is NaN), so saturation is the only sensible overflow.
float roundToFp8E4M3(float x) { return roundToFormat(x, scheme_detail::kFp8E4M3); }

// OCP E5M2 has infinities, but we saturate finite overflow and infinity alike to +-57344 (OCP's
// "saturating" conversion mode): the pre-scale in fakeQuantize() is meant to prevent overflow, and
// an inf would poison every later layer's statistics.
float roundToFp8E5M2(float x) { return roundToFormat(x, scheme_detail::kFp8E5M2); }

}  // namespace qe
