#pragma once
// Runs a quantization plan the way a device does: activations are 8-bit codes, weights int8,
// accumulators int32, and every quantized layer ends in an integer requantization (a fixed-point
// multiplier and shift prepared once per layer, engine/int8/kernels/requantize.h). No float arithmetic
// happens inside an integer layer.
//
// The plan is lowered node by node. A layer runs in integer arithmetic when its inputs are
// quantized, its weights use a uniform scheme of at most 8 bits (per tensor or per channel) and
// its output has static uniform parameters of at most 8 bits; anything else (a layer the
// configuration keeps in float, a log2/k-means/fp8 scheme, a dynamic range, an operator without
// an integer kernel) runs in float on dequantized inputs, exactly as the simulation does, and
// its output is quantized again where the plan says so. layerExecution() says which way every
// layer ran and why.
//
// Integer kernels:  Conv (grouped, depthwise), Gemm/MatMul, Add, Mul, Add/Sub of a constant
//                   (scalar, per channel or per column), Concat, Softmax, AveragePool,
//                   GlobalAveragePool (integer sums and a rescale), MaxPool and Relu on codes,
//                   Sigmoid/HardSigmoid/HardSwish/Tanh/LeakyRelu by 256-entry lookup tables,
//                   Reshape/Flatten/Transpose/Squeeze/Unsqueeze/Slice/Gather/Split moving codes.
// Fused Relu/Clip become the clamp of the requantization.

#include "engine/executor.h"
#include "engine/int8/kernels/quantized_tensor.h"
#include "quant/simulator.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace qe {

struct LayerExecution {
    std::string layer, opType;
    bool integer = false;
    bool fastKernel = false;  // integer and on fast kernels (else the reference kernels)
    // For convolutions and matrix products: "fused" (ours, requantization in the kernel),
    // "onednn", "fused or onednn, timed" (the faster on the first input of each shape) or "reference".
    std::string kernel;
    std::string reason;       // why it ran in float ("" when integer)
};

// Where a run's time went, step by step (bench_engines --profile).
struct StepTime {
    std::string kind;    // the step's type, e.g. "ConvStep"
    std::string output;  // the tensor it writes
    double milliseconds = 0;
};

struct IntegerRunResult {
    TensorMap outputs;  // graph outputs and captured tensors, in float (dequantized where quantized)
    std::map<std::string, int8::QuantizedTensor> codes;  // the same tensors' codes where quantized
    std::vector<StepTime> profile;  // only when run() was asked to time its steps
};

class IntegerEngine {
public:
    enum class Kernels { Fast, Reference };
    // Throws qe::Error for models it cannot lower (an unsupported operator, as the fp32 engine).
    // Kernels::Reference uses only the plain reference kernels (what a build without oneDNN
    // runs); the results are the same codes.
    explicit IntegerEngine(const QuantPlan& plan, Kernels kernels = Kernels::Fast);
    ~IntegerEngine();
    IntegerEngine(const IntegerEngine&) = delete;
    IntegerEngine& operator=(const IntegerEngine&) = delete;

    // `feeds` holds the float graph inputs; RunOptions' capture and cancel are honoured.
    // Thread-safe: several batches may run at once.
    IntegerRunResult run(const TensorMap& feeds, const RunOptions& options = {}, bool timeSteps = false) const;

    const std::vector<LayerExecution>& layerExecution() const { return execution_; }
    std::size_t integerLayerCount() const;

    struct Step;
    struct Value;

private:
    Graph graph_;  // the plan's graph (fake-quantized weights for the float steps)
    std::vector<LayerPlan> plans_;
    std::vector<std::unique_ptr<Step>> steps_;
    std::vector<LayerExecution> execution_;
    std::map<std::string, std::size_t> lastUse_;  // tensor -> last step reading it
};

// Gives each integer weighted layer of `plan` (QuantPlan::integerLayers) the engine's own
// convolution and product kernels, lowered as the engine lowers them, so that runSimulated computes
// those layers on int8 kernels: the same codes as the float kernel on integer-valued operands
// (quant/integer_layers.h), several times faster. A layer `previous` had with the same weights,
// parameters and requantization keeps its kernels (packed weights, oneDNN primitives, the timed
// choice between kernels). Layers whose kernels would be the slow reference ones keep the float path.
void attachIntegerKernels(QuantPlan& plan, const QuantPlan* previous = nullptr);

// The engine's output for a single-input, single-output classifier batch.
Tensor runIntegerSingle(const IntegerEngine& engine, const std::string& inputName, const Tensor& input);

}  // namespace qe
