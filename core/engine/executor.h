#pragma once
// Runs a Graph in fp32 (and whatever integer kernels the operators provide), batched NCHW.
// Intermediate tensors are released as soon as no later node needs them; tensors that a caller
// asks to capture are kept (and only those: capturing costs no copy, since tensors share storage).

#include "engine/operator.h"
#include "engine/conv_chains.h"
#include "model/graph.h"
#include "tensor/tensor.h"

#include <atomic>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace qe {

using TensorMap = std::map<std::string, Tensor>;

// Called after each node with its outputs; it may replace them (the simulation engine inserts
// fake quantization here). Its index is the node's position in graph.nodes.
using NodeHook = std::function<void(std::size_t nodeIndex, const Node& node, std::vector<Tensor>& outputs)>;

// Called before each node with its inputs (nullptr where an optional input is omitted). Outputs it
// returns replace the kernel, which then does not run (the simulation computes its integer layers
// this way); std::nullopt runs the kernel as usual.
using NodeOverride = std::function<std::optional<std::vector<Tensor>>(std::size_t nodeIndex, const Node& node,
                                                                      const std::vector<const Tensor*>& inputs)>;

struct RunOptions {
    std::set<std::string> capture;     // tensor names to return besides the graph outputs
    bool captureAll = false;           // return every tensor (shape inference, debugging)
    NodeOverride computeNode;          // optional
    NodeHook afterNode;                // optional, also after a computeNode
    const std::atomic<bool>* cancel = nullptr;  // polled between nodes
    // Resume a run from this node: `feeds` must then hold every tensor that nodes from here on
    // read and earlier nodes produced (the incremental recompute keeps them from a previous run).
    std::size_t startNode = 0;
    // Stop before this node: only the captured tensors made before it are returned, not the graph
    // outputs (the evaluator recomputes the float activations before its caches start).
    std::size_t endNode = std::numeric_limits<std::size_t>::max();
};

class Cancelled : public std::exception {
public:
    const char* what() const noexcept override { return "cancelled"; }
};

class Executor {
public:
    // Throws qe::Error naming the node when an operator is not supported.
    explicit Executor(const Graph& graph);

    // `feeds` must hold every graph input. Returns the graph outputs plus the captured tensors.
    // Errors inside a kernel come back as qe::Error prefixed with the node name and operator.
    TensorMap run(const TensorMap& feeds, const RunOptions& options = {}) const;

    const Graph& graph() const { return graph_; }
    // Tensor name -> index of the last node that reads it (tensors no node reads are absent).
    const std::map<std::string, std::size_t>& lastReaders() const { return lastUse_; }

private:
    const Graph& graph_;
    std::vector<Kernel> kernels_;
    std::map<std::string, std::size_t> lastUse_;  // tensor name -> index of the last node reading it
    // Convolution runs that go to oneDNN whole when nothing asks for the tensors inside them
    // (engine/conv_chains.h), else in parts between the tensors asked for: by first node, and
    // every stage's Conv node to its run's first node and its stage index.
    std::map<std::size_t, ConvChain> convChains_;
    std::map<std::size_t, std::pair<std::size_t, std::size_t>> chainStageAt_;
};

// Convenience for the single-input, single-output models that classification uses.
Tensor runSingle(const Executor& executor, const Tensor& input);

}  // namespace qe
