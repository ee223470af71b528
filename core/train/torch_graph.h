#pragma once
// Inside the training module only (it includes libtorch): a qe::Graph run as torch operations, so
// that autograd can train it. Each ONNX operator on the training path is one function in
// torch_operators.cpp's table, following the ONNX semantics of our fp32 kernels (tst_training checks
// the two agree on every model of resources/ and ../shared). An operator without a torch form is
// a qe::Error naming the node and the operator.

#include "model/graph.h"
#include "train/training_module.h"

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace qe {

torch::Tensor toTorch(const Tensor& tensor);  // float32 copy
Tensor fromTorch(const torch::Tensor& tensor);

class TorchGraph {
public:
    // `trainable` initializers become parameters (requires_grad); the other float initializers
    // are constants. Checks every node has a torch form before anything runs.
    TorchGraph(const Graph& graph, const std::vector<std::string>& trainable);

    std::vector<torch::Tensor> parameters() const;
    std::map<std::string, Tensor> parameterValues() const;
    void setParameterValues(const std::map<std::string, Tensor>& values);

    // LSQ: the step sizes of these activation quantizers become parameters too, starting from the
    // given ones; forward() then uses them in place of the job's static parameters.
    void learnActivationScales(const std::map<std::string, UniformQuant>& initial);
    void learnWeightScales(const std::map<std::string, TrainingJob::LearnedWeights>& weights);
    // After each optimizer step: no learned weight step above the weights' own min-max step (one
    // there would coarsen the grid and, without a gradient, never come back).
    void limitWeightSteps();
    std::vector<torch::Tensor> scaleParameters() const;
    std::map<std::string, UniformQuant> learnedQuantizers() const;

    // Training-mode BatchNormalization on these layers (TrainingJob::batchNorms) until
    // freezeBatchNorms(), which folds the running statistics into the weights. Meanwhile
    // parameterValues() gives the weights folded with the running statistics of the moment.
    void trainBatchNorms(const std::vector<TrainingJob::FoldedBatchNorm>& layers);
    std::vector<torch::Tensor> batchNormParameters() const;
    void freezeBatchNorms();

    // The graph's first output for `input`. With `quant`, weights and activations are fake
    // quantized as the job says (straight-through gradients); without, it is the float model.
    // `logits`: when the graph ends in Softmax, its input instead (what cross-entropy takes).
    torch::Tensor forward(const torch::Tensor& input, const TrainingJob* quant, bool logits) const;

private:
    const Graph& graph_;
    std::map<std::string, torch::Tensor> parameters_;  // trainable, by initializer name
    std::map<std::string, torch::Tensor> constants_;   // the other float initializers
    struct LearnedQuantizer {
        // [1], a parameter: the step's logarithm, so that an optimizer step changes the step
        // size by a fraction of itself (Adam's steps are about the learning rate whatever the
        // gradient: on the step itself that would be 12% of an 8-bit weight step of 0.0008).
        torch::Tensor logScale;
        torch::Tensor zeroPoint;  // [1], a constant (float, as torch's learnable fake quantizer takes it)
        UniformQuant initial;
    };
    std::map<std::string, LearnedQuantizer> learned_;  // by tensor name
    struct LearnedWeightScale {
        TrainingJob::LearnedWeights spec;
        torch::Tensor logScale;   // [channels] or [1], a parameter (the step's logarithm, as above)
        torch::Tensor zeroPoint;  // zeros like scale
    };
    std::map<std::string, LearnedWeightScale> learnedWeights_;  // by initializer
    // The step in use for `weights`: the learned one, at most the weights' own min-max step.
    static torch::Tensor effectiveWeightScale(const LearnedWeightScale& learned, const torch::Tensor& weights);
    // `weights` clipped to +-step * qmax, the saved form of learned steps.
    static torch::Tensor clippedWeights(const LearnedWeightScale& learned, const torch::Tensor& weights);
    struct TrainingBatchNorm {
        std::string weight, bias;
        torch::Tensor gamma, beta;                // [C] parameters, starting at |gamma| and beta of the folded one
        torch::Tensor runningMean, runningVar;    // [C] of the layer's (unfolded) output
    };
    std::map<std::string, TrainingBatchNorm> batchNorms_;  // by node name
    // Per channel: gamma / sqrt(running variance), 1 where that variance is 0 (a dead channel).
    static torch::Tensor foldFactor(const TrainingBatchNorm& bn);
    std::map<std::string, Tensor> foldedValues() const;  // weights and biases of the batch-norm layers
    // A layer's output normalized with its batch's statistics, which update the running ones.
    static torch::Tensor normalizeWithBatch(const torch::Tensor& output, const torch::Tensor& bias, const TrainingBatchNorm& bn);
};

}  // namespace qe
