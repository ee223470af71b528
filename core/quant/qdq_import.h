#pragma once
// Opening an already-quantized (QDQ) model as a float model plus the quantization it carries:
// its own scales and zero-points become the configuration, so a user can inspect a real int8
// model (MLPerf Tiny's, TensorFlow's) and then change it layer by layer.

#include "quant/config.h"
#include "quant/layers.h"
#include "quant/simulator.h"

#include <optional>

namespace qe {

struct ImportedQuantization {
    Graph floatGraph;        // QuantizeLinear/DequantizeLinear pairs removed, weights dequantized
    QuantConfig config;      // the schemes and bit widths that describe the model's parameters
    FixedParams params;      // the model's own scales and zero-points, by layer
    std::size_t weightTensors = 0, activationTensors = 0;  // how many were imported
};

// nullopt when the graph has no QuantizeLinear/DequantizeLinear nodes. Throws qe::Error for QDQ
// structures it cannot map onto layers (naming the node).
std::optional<ImportedQuantization> importQdq(const Graph& graph);

}  // namespace qe
