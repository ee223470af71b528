#pragma once
// The scale and zero-point playground (lesson 1): a handful of values a student types or drags,
// quantized by the same code as a layer's activations (paramsForRange, fakeQuantize), with every
// number a lesson explains: the step, the zero-point, the levels, each value's code and error,
// which values were clipped, and the error over all of them.

#include "quant/scheme.h"

#include <cstdint>
#include <optional>
#include <vector>

namespace qe {

struct PlaygroundSettings {
    std::vector<float> values;       // 1 to kMaxValues finite values
    Scheme scheme = Scheme::Affine;  // an activation scheme (uniform, log2 or a floating-point format)
    int bits = 4;
    // The clipping range; absent: the values' own minimum and maximum (min-max calibration).
    std::optional<float> rangeMin, rangeMax;
    static constexpr std::size_t kMaxValues = 64;
    bool operator==(const PlaygroundSettings&) const = default;
};

struct PlaygroundValue {
    float value = 0, dequantized = 0, error = 0;  // error = dequantized - value
    std::int32_t code = 0;  // the integer code (uniform and log2); the level's index for float formats
    bool clipped = false;   // outside the clipping range
};

struct Playground {
    QuantParams params;
    float rangeMin = 0, rangeMax = 0;  // the clipping range in force
    std::optional<float> scale;        // uniform schemes: the step between levels
    std::optional<std::int32_t> zeroPoint;
    std::vector<float> levels;         // every representable value inside the range (up to 4096)
    std::vector<PlaygroundValue> values;
    std::size_t clipped = 0;
    double maxAbsError = 0, rmsError = 0;
    double sqnrDb = 0;  // 10 log10(sum x^2 / sum e^2); +infinity when every value is exact
};

// qe::Error naming the field for no values, too many, a value that is not finite, a scheme that
// is not for activations (k-means), bits outside the scheme's range, or a range with min > max.
Playground quantizePlayground(const PlaygroundSettings& settings);

}  // namespace qe
