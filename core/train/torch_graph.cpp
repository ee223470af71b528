#include "train/torch_graph.h"
#include "train/torch_operators.h"

#include "common/error.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <set>

namespace qe {

torch::Tensor toTorch(const Tensor& tensor)
{
    const Tensor f = tensor.dtype() == DataType::Float32 ? tensor : tensor.castTo(DataType::Float32);
    std::vector<std::int64_t> shape(f.shape().begin(), f.shape().end());
    return torch::from_blob(const_cast<float*>(f.data<float>()), shape, torch::kFloat32).clone();
}

Tensor fromTorch(const torch::Tensor& tensor)
{
    const torch::Tensor t = tensor.detach().to(torch::kFloat32).contiguous();
    Shape shape(t.sizes().begin(), t.sizes().end());
    return Tensor::fromValues<float>(shape, std::span<const float>(t.data_ptr<float>(), static_cast<std::size_t>(t.numel())));
}

namespace {

// Quantize-dequantize in the forward pass, identity in the backward pass (the straight-through
// estimator) for values the program quantized.
torch::Tensor straightThrough(const torch::Tensor& x, const torch::Tensor& quantized)
{
    return x + (quantized - x).detach();
}

torch::Tensor fakeQuantizeActivation(const torch::Tensor& x, const UniformQuant& q)
{
    // torch's fake quantization passes the gradient where the value is inside the clipping
    // range and stops it outside, as the STE of Jacob et al. and PyTorch's QAT do.
    return torch::fake_quantize_per_tensor_affine(x, q.scale, q.zeroPoint, q.qmin, q.qmax);
}

}  // namespace

TorchGraph::TorchGraph(const Graph& graph, const std::vector<std::string>& trainable) : graph_(graph)
{
    for (const Node& node : graph.nodes)
        if (!findOperator(node))
            throw Error("node '" + node.name + "' (" + node.opType + (node.domain.empty() ? "" : ", domain " + node.domain) +
                        "): the operator has no training path; the operators that have one are Conv, Gemm, MatMul, "
                        "elementwise arithmetic and activations, Softmax, pooling, BatchNormalization, ReduceMean and the "
                        "shape operators Flatten, Reshape, Transpose, Concat, Squeeze, Unsqueeze, Pad");
    for (const std::string& name : trainable) {
        const auto it = graph.initializers.find(name);
        if (it == graph.initializers.end() || it->second.dtype() != DataType::Float32)
            throw Error("'" + name + "' is not a float initializer of the model");
        parameters_[name] = toTorch(it->second).set_requires_grad(true);
    }
    for (const auto& [name, tensor] : graph.initializers)
        if (tensor.dtype() == DataType::Float32 && !parameters_.count(name))
            constants_[name] = toTorch(tensor);
}

std::vector<torch::Tensor> TorchGraph::parameters() const
{
    std::vector<torch::Tensor> result;
    for (const auto& [name, tensor] : parameters_)
        result.push_back(tensor);
    return result;
}

std::map<std::string, Tensor> TorchGraph::parameterValues() const
{
    std::map<std::string, Tensor> result;
    for (const auto& [name, tensor] : parameters_)
        result[name] = fromTorch(tensor);
    for (auto& [name, tensor] : foldedValues())
        result[name] = std::move(tensor);
    torch::NoGradGuard noGrad;
    for (const auto& [name, learned] : learnedWeights_)
        result[name] = fromTorch(clippedWeights(learned, toTorch(result.at(name))));
    return result;
}

namespace {

// [C] as a shape that broadcasts over axis 1 of a rank-`rank` tensor (or axis 0 when `axis` is 0).
torch::Tensor alongAxis(const torch::Tensor& perChannel, std::int64_t rank, std::int64_t axis)
{
    std::vector<std::int64_t> shape(static_cast<std::size_t>(rank), 1);
    shape[static_cast<std::size_t>(axis)] = perChannel.size(0);
    return perChannel.reshape(shape);
}

}  // namespace

torch::Tensor TorchGraph::normalizeWithBatch(const torch::Tensor& output, const torch::Tensor& bias, const TrainingBatchNorm& bn)
{
    const std::int64_t rank = output.dim();
    const torch::Tensor factor = foldFactor(bn);
    const torch::Tensor safeFactor = torch::where(factor != 0, factor, torch::ones_like(factor));
    // The layer's output as the unfolded layer computes it (before its normalization).
    const torch::Tensor b = alongAxis(bias, rank, 1);
    const torch::Tensor unfolded = (output - b) / alongAxis(safeFactor, rank, 1) + b;
    std::vector<std::int64_t> dims;
    for (std::int64_t d = 0; d < rank; ++d)
        if (d != 1)
            dims.push_back(d);
    const torch::Tensor mean = unfolded.mean(dims);
    const torch::Tensor variance = (unfolded - alongAxis(mean, rank, 1)).square().mean(dims);
    const double n = double(unfolded.numel()) / double(std::max<std::int64_t>(1, unfolded.size(1)));
    if (n >= 2) {  // one value per channel has no variance to learn from (PyTorch refuses such a batch)
        // PyTorch's update: momentum 0.1, the unbiased batch variance.
        torch::NoGradGuard noGrad;
        bn.runningMean.mul_(0.9).add_(0.1 * mean.detach());
        bn.runningVar.mul_(0.9).add_(0.1 * variance.detach() * (n / (n - 1)));
    }
    // epsilon relative to the channel's scale: the layer's output is in its own units, which an
    // absolute 1e-5 would swamp where a channel's spread is small.
    const torch::Tensor epsilon = (bn.runningVar * 1e-5).clamp_min(1e-30);
    return (unfolded - alongAxis(mean, rank, 1)) / alongAxis((variance + epsilon).sqrt(), rank, 1) * alongAxis(bn.gamma, rank, 1) +
           alongAxis(bn.beta, rank, 1);
}

namespace {

// The min-max step of symmetric weights: each channel's largest |w| (along every axis but the
// channel axis) over qmax, [channels]; or the tensor's, [1].
torch::Tensor minMaxStep(const torch::Tensor& w, const TrainingJob::LearnedWeights& spec)
{
    const torch::Tensor largest =
        spec.perChannel ? w.abs().transpose(0, spec.channelAxis).reshape({w.size(spec.channelAxis), -1}).amax(1) : w.abs().max().reshape({1});
    return (largest / double(spec.qmax)).clamp_min(1e-30);
}

}  // namespace

void TorchGraph::limitWeightSteps()
{
    torch::NoGradGuard noGrad;
    for (auto& [name, learned] : learnedWeights_) {
        torch::Tensor weights = parameters_.at(name);
        for (const auto& [node, bn] : batchNorms_)  // as forward() quantizes them
            if (bn.weight == name)
                weights = weights * alongAxis(foldFactor(bn), weights.dim(), 0);
        const torch::Tensor own = minMaxStep(weights, learned.spec);
        // A millionth below: exp() of the limit must stay under the min-max step, or torch::minimum
        // would pick that step and the learned one would get no gradient.
        learned.logScale.clamp_max_(own.log() - 1e-6);
    }
}

void TorchGraph::learnWeightScales(const std::map<std::string, TrainingJob::LearnedWeights>& weights)
{
    torch::NoGradGuard noGrad;
    for (const auto& [name, spec] : weights) {
        const auto it = parameters_.find(name);
        if (it == parameters_.end())
            throw Error("'" + name + "': only trainable weights can learn their step sizes");
        const torch::Tensor start = minMaxStep(it->second, spec);
        learnedWeights_[name] = LearnedWeightScale{spec, (start.log() - 1e-6).set_requires_grad(true), torch::zeros_like(start)};
    }
}

torch::Tensor TorchGraph::effectiveWeightScale(const LearnedWeightScale& learned, const torch::Tensor& weights)
{
    return torch::minimum(learned.logScale.exp(), minMaxStep(weights.detach(), learned.spec));
}

torch::Tensor TorchGraph::clippedWeights(const LearnedWeightScale& learned, const torch::Tensor& weights)
{
    torch::Tensor bound = effectiveWeightScale(learned, weights) * double(learned.spec.qmax);
    bound = learned.spec.perChannel ? alongAxis(bound, weights.dim(), learned.spec.channelAxis) : bound;
    return torch::max(torch::min(weights, bound), -bound);
}

void TorchGraph::trainBatchNorms(const std::vector<TrainingJob::FoldedBatchNorm>& layers)
{
    for (const TrainingJob::FoldedBatchNorm& layer : layers) {
        const auto weight = parameters_.find(layer.weight), bias = parameters_.find(layer.bias);
        if (weight == parameters_.end() || bias == parameters_.end())
            throw Error("layer '" + layer.node + "': its weights and bias must be trainable to train its BatchNormalization");
        const auto channels = static_cast<std::int64_t>(layer.mean.size());
        if (weight->second.size(0) != channels || layer.stddev.size() != layer.mean.size())
            throw Error("layer '" + layer.node + "': its BatchNormalization statistics have " + std::to_string(channels) +
                        " channels, its weights " + std::to_string(weight->second.size(0)));
        TrainingBatchNorm bn;
        bn.weight = layer.weight;
        bn.bias = layer.bias;
        bn.gamma = torch::tensor(layer.stddev, torch::kFloat32).set_requires_grad(true);
        bn.beta = torch::tensor(layer.mean, torch::kFloat32).set_requires_grad(true);
        bn.runningMean = torch::tensor(layer.mean, torch::kFloat32);
        bn.runningVar = torch::tensor(layer.stddev, torch::kFloat32).square();
        batchNorms_[layer.node] = std::move(bn);
    }
}

std::vector<torch::Tensor> TorchGraph::batchNormParameters() const
{
    std::vector<torch::Tensor> result;
    for (const auto& [node, bn] : batchNorms_) {
        result.push_back(bn.gamma);
        result.push_back(bn.beta);
    }
    return result;
}

torch::Tensor TorchGraph::foldFactor(const TrainingBatchNorm& bn)
{
    const torch::Tensor stddev = bn.runningVar.sqrt();
    // clamp_min keeps the unselected branch finite, so that its gradient is 0 and not NaN.
    return torch::where(stddev > 0, bn.gamma / stddev.clamp_min(1e-30), torch::ones_like(bn.gamma));
}

std::map<std::string, Tensor> TorchGraph::foldedValues() const
{
    torch::NoGradGuard noGrad;
    std::map<std::string, Tensor> result;
    for (const auto& [node, bn] : batchNorms_) {
        const torch::Tensor factor = foldFactor(bn);
        const torch::Tensor& w = parameters_.at(bn.weight);
        result[bn.weight] = fromTorch(w * alongAxis(factor, w.dim(), 0));
        result[bn.bias] = fromTorch((parameters_.at(bn.bias) - bn.runningMean) * factor + bn.beta);
    }
    return result;
}

void TorchGraph::freezeBatchNorms()
{
    const std::map<std::string, Tensor> folded = foldedValues();
    batchNorms_.clear();
    setParameterValues(folded);
}

void TorchGraph::setParameterValues(const std::map<std::string, Tensor>& values)
{
    torch::NoGradGuard noGrad;
    for (const auto& [name, value] : values)
        parameters_.at(name).copy_(toTorch(value));
}

void TorchGraph::learnActivationScales(const std::map<std::string, UniformQuant>& initial)
{
    for (const auto& [name, q] : initial)
        learned_[name] = LearnedQuantizer{torch::full({1}, std::log(q.scale), torch::kFloat32).set_requires_grad(true),
                                          torch::full({1}, float(q.zeroPoint), torch::kFloat32), q};
}

std::vector<torch::Tensor> TorchGraph::scaleParameters() const
{
    std::vector<torch::Tensor> result;
    for (const auto& [name, q] : learned_)
        result.push_back(q.logScale);
    for (const auto& [name, w] : learnedWeights_)
        result.push_back(w.logScale);
    return result;
}

std::map<std::string, UniformQuant> TorchGraph::learnedQuantizers() const
{
    std::map<std::string, UniformQuant> result;
    for (const auto& [name, q] : learned_) {
        UniformQuant value = q.initial;
        value.scale = q.logScale.exp().item<float>();
        result[name] = value;
    }
    return result;
}

torch::Tensor TorchGraph::forward(const torch::Tensor& input, const TrainingJob* quant, bool logits) const
{
    std::map<std::string, torch::Tensor> values;
    for (const auto& [name, tensor] : constants_)
        values[name] = tensor;
    for (const auto& [name, tensor] : parameters_)
        values[name] = tensor;
    // Layers training their BatchNormalization: the weights quantized are those folded with the
    // running statistics; the normalization by the batch's statistics follows the layer's output.
    std::set<std::string> normalizedBiases;
    for (const auto& [node, bn] : batchNorms_) {
        torch::Tensor& w = values.at(bn.weight);
        w = w * alongAxis(foldFactor(bn), w.dim(), 0);
        normalizedBiases.insert(bn.bias);
    }
    if (quant)  // biases first: their steps come from the float weights' scales
        for (const auto& [bias, weights] : quant->quantizedBiases) {
            if (normalizedBiases.count(bias))
                continue;  // the batch's mean removes it; it is quantized once the statistics freeze
            torch::Tensor& b = values.at(bias);
            // Learned weight steps: the clipped weights, whose min-max step is the learned one.
            const auto learned = learnedWeights_.find(weights);
            const torch::Tensor& w = values.at(weights);
            const Tensor stepsFrom = fromTorch(learned == learnedWeights_.end() ? w : clippedWeights(learned->second, w));
            b = straightThrough(b, toTorch(quant->quantizeBias(bias, fromTorch(b), stepsFrom)));
        }
    if (quant)
        for (const std::string& name : quant->quantizedWeights) {
            torch::Tensor& weights = values.at(name);
            if (const auto learned = learnedWeights_.find(name); learned != learnedWeights_.end()) {
                // LSQ: the gradient reaches the step too, scaled by 1 / sqrt(weights * Qp).
                const LearnedWeightScale& l = learned->second;
                const torch::Tensor step = effectiveWeightScale(l, weights);
                // N: the weights one step quantizes (a channel's, per channel).
                const double perStep = double(weights.numel()) / double(l.spec.perChannel ? weights.size(l.spec.channelAxis) : 1);
                const double gradFactor = 1.0 / std::sqrt(perStep * l.spec.qmax);
                weights = l.spec.perChannel
                              ? torch::_fake_quantize_learnable_per_channel_affine(weights, step, l.zeroPoint, l.spec.channelAxis,
                                                                                    -l.spec.qmax, l.spec.qmax, gradFactor)
                              : torch::_fake_quantize_learnable_per_tensor_affine(weights, step, l.zeroPoint, -l.spec.qmax,
                                                                                   l.spec.qmax, gradFactor);
                continue;
            }
            weights = straightThrough(weights, toTorch(quant->quantizeWeights(name, fromTorch(weights))));
        }
    auto quantizeActivation = [&](const std::string& name, torch::Tensor& value) {
        if (!quant)
            return;
        if (const auto it = learned_.find(name); it != learned_.end()) {
            // LSQ's gradient scale 1 / sqrt(N * Qp), N the values of one image (Esser et al., 2020,
            // section 2.2): the step's gradient then stays in proportion to the weights'.
            const double perImage = double(value.numel()) / double(std::max<std::int64_t>(1, value.size(0)));
            const double gradFactor = 1.0 / std::sqrt(perImage * std::max(1, it->second.initial.qmax));
            value = torch::_fake_quantize_learnable_per_tensor_affine(value, it->second.logScale.exp(), it->second.zeroPoint,
                                                                       it->second.initial.qmin, it->second.initial.qmax, gradFactor);
        } else if (const auto it = quant->staticActivations.find(name); it != quant->staticActivations.end()) {
            value = fakeQuantizeActivation(value, it->second);
        } else if (quant->dynamicActivations.count(name)) {
            const torch::Tensor detached = value.detach();
            const UniformQuant q = quant->dynamicQuant(name, detached.min().item<float>(), detached.max().item<float>());
            value = fakeQuantizeActivation(value, q);
        }
    };
    const std::string inputName = graph_.inputs.at(0).name;
    values[inputName] = input;
    quantizeActivation(inputName, values[inputName]);

    const std::string& outputName = graph_.outputs.at(0).name;
    for (const Node& node : graph_.nodes) {
        const OpInputs inputs(node, graph_, values);
        if (logits && node.opType == "Softmax" && node.outputs.size() == 1 && node.outputs[0] == outputName)
            return inputs[0];
        Outputs outputs;
        try {
            outputs = findOperator(node)(node, inputs, graph_);
        } catch (const std::exception& e) {
            throw Error("node '" + node.name + "' (" + node.opType + "): " + e.what());
        }
        if (const auto bn = batchNorms_.find(node.name); bn != batchNorms_.end() && !outputs.empty())
            outputs[0] = normalizeWithBatch(outputs[0], values.at(bn->second.bias), bn->second);
        for (std::size_t i = 0; i < outputs.size() && i < node.outputs.size(); ++i) {
            quantizeActivation(node.outputs[i], outputs[i]);
            values[node.outputs[i]] = std::move(outputs[i]);
        }
    }
    return values.at(outputName);
}

}  // namespace qe
