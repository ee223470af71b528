#pragma once
// Runs of fp32 convolutions that the executor hands to oneDNN whole (fastFloatConvChain in
// engine/ops/float_kernels.h): a Conv; the Relu or Clip right after it when nothing else reads the
// convolution's output; then the next Conv when nothing else reads that; and so on. Inside a run
// the activations stay in oneDNN's layout and are never NCHW tensors: MobileNetV1's body is one
// run, ResNet's blocks are runs between their Adds. Each convolution computes exactly what it
// computes alone, so a run gives the values of its nodes run one by one.

#include "model/graph.h"
#include "tensor/tensor.h"

#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace qe {

struct ConvChain {
    struct Stage {
        std::size_t conv;                       // node index
        std::optional<std::size_t> activation;  // the Relu/Clip node after it
    };
    std::vector<Stage> stages;
    std::vector<std::string> inner;  // tensors made and read only inside the run

    std::size_t first() const { return stages.front().conv; }
    std::size_t last() const { return stages.back().activation.value_or(stages.back().conv); }
};

// The runs of `graph` of at least two nodes (a Conv and its activation, or two Convs), by their
// first node. Only convolutions whose weights and bias are float initializers take part.
std::map<std::size_t, ConvChain> findConvChains(const Graph& graph);

// The longest part of `chain` that starts at its stage `firstStage`, ends before node `endNode` and
// whose inner tensors are not in `kept`: a run that must hand some of its tensors to the caller
// (the evaluator captures every layer's output) goes to oneDNN in such parts, each Conv at least
// with its Relu/Clip. Nothing when the part would be a lone Conv.
std::optional<ConvChain> convChainPart(const Graph& graph, const ConvChain& chain, std::size_t firstStage,
                                       const std::set<std::string>& kept, std::size_t endNode);

// The run of one Conv and the Relu/Clip `activation` that reads its output, whatever else reads
// that (a caller that wants only the activated output, as a layer measured alone); nothing when
// the two cannot go to oneDNN as one.
std::optional<ConvChain> convWithActivation(const Graph& graph, std::size_t conv, std::size_t activation);

// The run's output (its last node's) for `input` (its first Conv's data input); nothing when the
// run cannot go to oneDNN whole (a geometry without a fast kernel, a shape that does not fit): the
// executor then runs its nodes one by one, which also names any error.
std::optional<Tensor> runConvChain(const Graph& graph, const ConvChain& chain, const Tensor& input);

}  // namespace qe
