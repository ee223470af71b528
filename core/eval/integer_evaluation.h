#pragma once
// The integer engine on a labelled data set, side by side with the fake-quant simulation of the
// same plan: accuracy, agreement, how far the outputs are apart (in quantization steps of the
// output), which layers ran in integers, and the time the engine took.

#include "data/dataset.h"
#include "eval/quant_evaluator.h"
#include "engine/int8/integer_engine.h"

#include <vector>

namespace qe {

struct IntegerEvaluation {
    std::size_t images = 0;
    double top1 = 0, top5 = 0;
    double simulatedTop1 = 0;
    double agreementWithSimulation = 0;  // images where both give the same top-1
    // ... or where the two top-1 classes have equal scores in either output (quantized outputs
    // tie often, and the lower class index wins a tie only by convention)
    double agreementUpToTies = 0;
    // Output elements within one quantization step (LSB) of the simulation's. The step is the
    // output layer's scale; when the output is not quantized, 1/255 of the simulated output range.
    double outputWithinOneLsb = 0;
    double maxOutputLsbDifference = 0;
    double msPerImage = 0;  // the integer engine's run time only (no image decoding)
    std::vector<int> predictions, simulatedPredictions, labels;
    std::vector<LayerExecution> layers;
    std::size_t integerLayers = 0;
    // Per layer (parallel to `layers`): how the engine's output codes compare with the
    // simulation's fake-quantized values, in steps of the layer's output scale. NaN where the
    // layer's output is not a static integer quantization.
    std::vector<double> layerExactFraction, layerWithinOneLsbFraction;
    // The same for each layer on its own: the simulation of the layer alone, fed the engine's own
    // input codes. This separates the engine's arithmetic from the drift that one-step
    // differences accumulate over many layers (the simulation computes integer Conv/Gemm/MatMul
    // layers exactly, but averages, Add, Softmax and lookups in float32).
    std::vector<double> isolatedExactFraction, isolatedWithinOneLsbFraction;
};

// `limit` 0 means every image.
IntegerEvaluation evaluateInteger(const QuantPlan& plan, const Dataset& dataset, const Preprocess& preprocess,
                                  std::size_t limit, const EvaluationProgress& progress = {});

}  // namespace qe
