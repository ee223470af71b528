// The training module's entry point (training_module.h): the float graph in torch, fake
// quantizers where the job says, and a plain training loop over shuffled mini-batches.

#include "common/error.h"
#include "train/torch_graph.h"
#include "train/training_module.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <random>

namespace qe {
namespace {

void runForward(TrainingJob& job)
{
    torch::NoGradGuard noGrad;
    const TorchGraph graph(*job.graph, job.trainable);
    const bool quantized = !job.quantizedWeights.empty() || !job.staticActivations.empty() || !job.dynamicActivations.empty();
    job.forwardOutput = fromTorch(graph.forward(toTorch(*job.forwardInput), quantized ? &job : nullptr, false));
}

// Weights and biases in one group; learned step sizes (LSQ) and BatchNormalization's parameters
// in another, without weight decay.
std::unique_ptr<torch::optim::Optimizer> makeOptimizer(const TrainingJob& job, const TorchGraph& graph)
{
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(graph.parameters());
    // Without weight decay: the learned steps and BatchNormalization's gamma and beta (decay
    // would pull the ranges and the channels' scales towards nothing).
    std::vector<torch::Tensor> scales = graph.scaleParameters();
    for (const torch::Tensor& p : graph.batchNormParameters())
        scales.push_back(p);
    if (job.optimizer == TrainingOptimizer::Sgd) {
        const auto options = torch::optim::SGDOptions(job.learningRate).momentum(job.momentum);
        if (!scales.empty())
            groups.emplace_back(scales, std::make_unique<torch::optim::SGDOptions>(options));
        return std::make_unique<torch::optim::SGD>(groups, torch::optim::SGDOptions(options).weight_decay(job.weightDecay));
    }
    const auto options = torch::optim::AdamOptions(job.learningRate);
    if (!scales.empty())
        groups.emplace_back(scales, std::make_unique<torch::optim::AdamOptions>(options));
    return std::make_unique<torch::optim::Adam>(groups, torch::optim::AdamOptions(options).weight_decay(job.weightDecay));
}

void setLearningRate(torch::optim::Optimizer& optimizer, double rate)
{
    for (auto& group : optimizer.param_groups())
        group.options().set_lr(rate);
}

// The images of `indices` as one batch.
torch::Tensor gatherImages(const torch::Tensor& images, const std::vector<std::int64_t>& indices)
{
    return images.index_select(0, torch::tensor(indices, torch::kInt64));
}

void runTraining(TrainingJob& job)
{
    if (!job.images || job.images->rank() < 1 || job.images->dim(0) == 0)
        throw Error("no training images");
    const std::int64_t count = job.images->dim(0);
    if (!job.labels.empty() && static_cast<std::int64_t>(job.labels.size()) != count)
        throw Error("the training images and their labels differ in number");
    torch::manual_seed(job.seed);
    if (torch::get_num_threads() != std::max(1, job.threads))
        torch::set_num_threads(std::max(1, job.threads));

    TorchGraph graph(*job.graph, job.trainable);
    const torch::Tensor images = toTorch(*job.images);
    const torch::Tensor labels = job.labels.empty() ? torch::Tensor()
                                                    : torch::tensor(std::vector<std::int64_t>(job.labels.begin(), job.labels.end()));
    // The float model (distillation's teacher): the same graph before any step.
    std::unique_ptr<TorchGraph> teacher;
    if (job.labels.empty())
        teacher = std::make_unique<TorchGraph>(*job.graph, std::vector<std::string>{});

    std::map<std::string, UniformQuant> learnedStart;
    for (const std::string& tensor : job.learnedActivations)
        learnedStart[tensor] = job.staticActivations.at(tensor);
    graph.learnActivationScales(learnedStart);
    graph.learnWeightScales(job.learnedWeights);
    if (job.batchNormEpochs > 0)
        graph.trainBatchNorms(job.batchNorms);
    std::unique_ptr<torch::optim::Optimizer> optimizer = makeOptimizer(job, graph);
    const std::int64_t batch = std::clamp<std::int64_t>(job.batchSize, 1, count);
    const std::int64_t stepsPerEpoch = (count + batch - 1) / batch;
    const std::int64_t totalSteps = job.steps > 0 ? job.steps : stepsPerEpoch * std::max(1, job.epochs);
    std::mt19937_64 random(job.seed);
    std::vector<std::int64_t> order(static_cast<std::size_t>(count));

    std::map<std::string, Tensor> lastGood = graph.parameterValues();
    std::map<std::string, UniformQuant> lastGoodLearned = graph.learnedQuantizers();
    double lossSinceCheckpoint = 0;
    int stepsSinceCheckpoint = 0;
    int epoch = 0;
    for (std::int64_t step = 0; step < totalSteps; ++step) {
        const std::int64_t inEpoch = step % stepsPerEpoch;
        if (inEpoch == 0) {
            epoch = static_cast<int>(step / stepsPerEpoch);
            if (epoch == job.batchNormEpochs)
                graph.freezeBatchNorms();
            std::iota(order.begin(), order.end(), 0);
            std::shuffle(order.begin(), order.end(), random);
        }
        if (job.cancel && job.cancel->load()) {
            job.cancelled = true;
            break;
        }
        if (job.cosineSchedule)
            setLearningRate(*optimizer, job.learningRate * 0.5 * (1 + std::cos(M_PI * double(step) / double(totalSteps))));

        const std::int64_t first = inEpoch * batch;
        const std::vector<std::int64_t> indices(order.begin() + first, order.begin() + std::min(first + batch, count));
        const torch::Tensor x = gatherImages(images, indices);
        const torch::Tensor logits = graph.forward(x, &job, true);
        torch::Tensor loss;
        if (teacher) {
            torch::Tensor target;
            {
                torch::NoGradGuard noGrad;
                target = torch::softmax(teacher->forward(x, nullptr, true), 1);
            }
            // Cross-entropy against the float model's probabilities (KL divergence up to a constant).
            loss = -(target * torch::log_softmax(logits, 1)).sum(1).mean();
        } else {
            loss = torch::nn::functional::cross_entropy(logits.reshape({logits.size(0), -1}),
                                                        labels.index_select(0, torch::tensor(indices, torch::kInt64)));
        }
        const double value = loss.item<double>();
        if (!std::isfinite(value)) {
            // Back to the weights whose loss was last finite: the update made from them diverged.
            job.diverged = true;
            job.stepsDone = std::max(0, job.stepsDone - 1);
            break;
        }
        lastGood = graph.parameterValues();
        lastGoodLearned = graph.learnedQuantizers();
        optimizer->zero_grad();
        loss.backward();
        optimizer->step();
        graph.limitWeightSteps();
        ++job.stepsDone;
        lossSinceCheckpoint += value;
        ++stepsSinceCheckpoint;
        if (job.onStep)
            job.onStep(static_cast<int>(step + 1), static_cast<int>(totalSteps), epoch, value);

        const bool endOfEpoch = inEpoch + 1 == stepsPerEpoch || step + 1 == totalSteps;
        const bool due = job.checkpointEvery > 0 && (step + 1) % job.checkpointEvery == 0;
        if ((endOfEpoch || due) && job.checkpoint) {
            const bool goOn = job.checkpoint(static_cast<int>(step + 1), epoch, graph.parameterValues(),
                                             graph.learnedQuantizers(), lossSinceCheckpoint / std::max(1, stepsSinceCheckpoint));
            lossSinceCheckpoint = 0;
            stepsSinceCheckpoint = 0;
            if (!goOn) {
                job.stopped = true;
                break;
            }
        }
    }
    job.trained = job.diverged ? lastGood : graph.parameterValues();
    job.learned = job.diverged ? lastGoodLearned : graph.learnedQuantizers();
}

}  // namespace
}  // namespace qe

// Exported by name (the module is built with hidden visibility otherwise).
extern "C" __attribute__((visibility("default"))) void qe_run_training_job(qe::TrainingJob& job)
{
    try {
        if (!job.graph)
            throw qe::Error("no graph");
        if (job.mode == qe::TrainingJob::Mode::Forward)
            qe::runForward(job);
        else
            qe::runTraining(job);
    } catch (const std::exception& e) {
        job.error = e.what();
    } catch (...) {
        job.error = "unknown error in the training module";
    }
}
