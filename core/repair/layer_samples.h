#pragma once
// What a layer-wise repair (AdaRound, empirical bias correction) learns from: a weighted layer's
// data input and the float model's output of its node, over some images.

#include "data/dataset.h"
#include "data/preprocess.h"
#include "model/graph.h"
#include "quant/layers.h"
#include "quant/simulator.h"
#include "repair/channel_statistics.h"
#include "tensor/tensor.h"

#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace qe {

struct LayerSamples {
    Tensor inputs;        // the layer node's data input (input 0), images stacked on axis 0
    Tensor floatOutputs;  // the float model's output of the layer node, before a fused activation
};

// For each of `layers` (weighted layers of `floatGraph`), over images [first, first + count) of
// `images`, in batches of 32. The inputs come from `quantized` when given: the simulation of that
// plan (of the same model), so each layer sees what the quantized layers before it produce; else
// from the float model. By layer name. Progress is reported as "layer samples"; qe::Cancelled
// when cancelled.
std::map<std::string, LayerSamples> collectLayerSamples(const Graph& floatGraph, const std::vector<QuantLayer>& layers,
                                                        const Dataset& images, const Preprocess& preprocess,
                                                        std::size_t first, std::size_t count,
                                                        const QuantPlan* quantized = nullptr,
                                                        const RepairProgress& progress = {});

}  // namespace qe
