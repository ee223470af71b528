#include "quant/playground.h"

#include "common/error.h"
#include "tensor/tensor.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace qe {

Playground quantizePlayground(const PlaygroundSettings& s)
{
    if (s.values.empty() || s.values.size() > PlaygroundSettings::kMaxValues)
        throw Error("values: expected 1 to " + std::to_string(PlaygroundSettings::kMaxValues) + " values, got " +
                    std::to_string(s.values.size()));
    for (std::size_t i = 0; i < s.values.size(); ++i)
        if (!std::isfinite(s.values[i]))
            throw Error("values: value " + std::to_string(i + 1) + " is not a finite number");
    const SchemeTraits& traits = schemeTraits(s.scheme);
    if (!traits.forActivations)
        throw Error("scheme: \"" + std::string(traits.name) + "\" is for weights only; expected an activation scheme");
    if (s.bits < traits.minBits || s.bits > traits.maxBits)
        throw Error("bits: " + std::to_string(s.bits) + " bits; \"" + std::string(traits.name) + "\" takes " +
                    std::to_string(traits.minBits) + " to " + std::to_string(traits.maxBits));
    const auto [lo, hi] = std::minmax_element(s.values.begin(), s.values.end());
    Playground p;
    p.rangeMin = s.rangeMin.value_or(*lo);
    p.rangeMax = s.rangeMax.value_or(*hi);
    if (!std::isfinite(p.rangeMin) || !std::isfinite(p.rangeMax) || p.rangeMin > p.rangeMax)
        throw Error("range: expected finite numbers with min <= max, got [" + std::to_string(p.rangeMin) + ", " +
                    std::to_string(p.rangeMax) + "]");
    TensorQuantSpec spec;
    spec.scheme = s.scheme;
    spec.bits = s.bits;
    p.params = paramsForRange(spec, p.rangeMin, p.rangeMax);
    if (std::holds_alternative<UniformParams>(p.params.values)) {
        p.scale = p.params.uniform().scale.front();
        p.zeroPoint = p.params.uniform().zeroPoint.front();
    }
    p.levels = quantizationLevels(p.params);
    const Tensor input = Tensor::fromValues<float>({static_cast<std::int64_t>(s.values.size())}, s.values);
    const Tensor output = fakeQuantize(input, p.params);
    double signal = 0, noise = 0;
    for (std::size_t i = 0; i < s.values.size(); ++i) {
        PlaygroundValue v;
        v.value = s.values[i];
        v.dequantized = output.data<float>()[i];
        v.error = v.dequantized - v.value;
        v.clipped = v.value < p.rangeMin || v.value > p.rangeMax;
        if (p.scale)
            v.code = static_cast<std::int32_t>(std::lround(v.dequantized / *p.scale)) + *p.zeroPoint;
        else  // the level's index, counted from the lowest; log2 codes are signed around 0
            v.code = static_cast<std::int32_t>(std::lower_bound(p.levels.begin(), p.levels.end(), v.dequantized) - p.levels.begin()) +
                     (p.params.scheme == Scheme::Log2 ? p.params.qmin : 0);
        p.clipped += v.clipped;
        p.maxAbsError = std::max(p.maxAbsError, double(std::abs(v.error)));
        signal += double(v.value) * v.value;
        noise += double(v.error) * v.error;
        p.values.push_back(v);
    }
    p.rmsError = std::sqrt(noise / double(s.values.size()));
    p.sqnrDb = noise > 0 ? 10 * std::log10(signal / noise) : std::numeric_limits<double>::infinity();
    return p;
}

}  // namespace qe
