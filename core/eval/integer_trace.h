#pragma once
// One output value of an integer layer, computed step by step as the int8 engine computes it:
// the products of input and weight codes (each minus its zero-point), their int32 sum, the bias
// in accumulator units, the rescale M = sx * sw / sy as a Q0.31 mantissa and a right shift, the
// rounding (half to even), the output zero-point and the clamp (which is also a fused Relu/Clip).
// The trace then reads the engine's own output code at that position: the two are equal, which
// the tests check on real models. What lesson 10 (integer-only arithmetic) and the window's
// Integer arithmetic view show.
//
// Codes are presented as a user sees them: int8 for signed tensors, uint8 otherwise (the engine
// stores signed codes shifted by +128; differences of codes are the same either way).

#include "quant/simulator.h"
#include "tensor/tensor.h"

#include <cstdint>
#include <string>
#include <vector>

namespace qe {

struct IntegerTraceTerm {
    std::vector<std::int64_t> input;   // the input element's coordinates (for a padded position: outside the input)
    bool padding = false;              // a padded position: the input is the zero-point, the product 0
    std::int32_t inputCode = 0, weightCode = 0;
    std::int64_t product = 0;          // (inputCode - inputZeroPoint) * (weightCode - weightZeroPoint)
};

struct IntegerTrace {
    std::string layer, opType;
    std::vector<std::int64_t> position;  // the output element's coordinates (batch first)
    std::vector<std::int64_t> outputShape;
    std::int64_t channel = 0;            // its output channel (Conv) or column (Gemm/MatMul)

    float inputScale = 0, weightScale = 0, outputScale = 0;
    std::int32_t inputZeroPoint = 0, weightZeroPoint = 0, outputZeroPoint = 0;
    bool inputSigned = false, weightSigned = true, outputSigned = false;

    std::vector<IntegerTraceTerm> terms;  // every product summed, in the order of the sum
    std::int64_t accumulator = 0;         // sum of the products (an int32 in the engine)
    float bias = 0;                       // the layer's bias in float (0 without one)
    std::int32_t biasCode = 0;            // round(bias / (sx * sw)), the int32 the engine adds
    std::int64_t biased = 0;              // accumulator + biasCode

    double realMultiplier = 0;            // M = sx * sw / sy
    std::int32_t multiplier = 0;          // Q0.31 mantissa: M = multiplier * 2^-rightShift
    int rightShift = 0;
    std::int64_t product = 0;             // biased * multiplier (64 bits)
    bool tie = false;                     // product / 2^rightShift was exactly halfway: rounded to even
    std::int64_t rounded = 0;             // round_half_even(product / 2^rightShift)
    double exactRescaled = 0;             // biased * M in real arithmetic (what the rounding approximates)
    std::int64_t withZeroPoint = 0;       // rounded + output zero-point
    std::int32_t codeMin = 0, codeMax = 0;  // the output's code range (narrowed by a fused Relu/Clip)
    bool clamped = false;
    std::int32_t code = 0;                // the clamped code: the trace's result
    std::int32_t engineCode = 0;          // the engine's own output code at `position`
    float dequantized = 0;                // outputScale * (code - outputZeroPoint)
};

// Traces the output element `position` (full coordinates, batch index 0; empty: the first element) of the Conv (2-D), Gemm
// or MatMul layer `layer` of `plan` on `feeds` (one image). qe::Error when the layer does not run
// in integers under the plan, or the position is outside its output (naming the shape expected).
IntegerTrace traceIntegerOutput(const QuantPlan& plan, const TensorMap& feeds, const std::string& layer,
                                const std::vector<std::int64_t>& position);

// The trace's arithmetic as plain text, one step per row: what is computed with the trace's own
// numbers, and the value it gives (`result`: the step whose value is the layer's output code;
// `engine`: the int8 engine's own code at that position, which equals it).
// The CLI's `trace` prints these rows and a lesson handout tabulates them; the window's Integer
// arithmetic view shows the same steps with typeset formulas.
struct IntegerTraceStep {
    std::string what, value;
    bool result = false;
    bool engine = false;
};
std::vector<IntegerTraceStep> integerTraceSteps(const IntegerTrace& trace);

}  // namespace qe
