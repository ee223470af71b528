#include "train/qat.h"

#include "common/error.h"
#include "common/limits.h"
#include "engine/executor.h"
#include "model/onnx_export.h"
#include "train/training_module_loader.h"

#include <chrono>
#include <cmath>
#include <optional>

namespace qe {
namespace {

// Per-tensor uniform parameters as the training module's quantizer takes them.
UniformQuant uniformQuant(const QuantParams& params)
{
    const UniformParams& uniform = params.uniform();
    return UniformQuant{uniform.scale.at(0), uniform.zeroPoint.at(0), params.qmin, params.qmax};
}

// The static activation parameters a plan gives, as the training module's uniform quantizers;
// every layer whose activations the plan quantizes must be uniform (QAT's fake quantizers are).
void setActivationQuantizers(const QuantPlan& plan, TrainingJob& job)
{
    job.staticActivations.clear();
    job.dynamicActivations.clear();
    for (std::size_t i = 0; i < plan.layers.size(); ++i) {
        const LayerPlan& layer = plan.plans[i];
        const std::string& tensor = plan.layers[i].output;
        if (layer.dynamicActivations) {
            if (layer.config.activations.granularity == Granularity::PerToken)
                throw Error("layer '" + plan.layers[i].name + "': quantization-aware training fakes dynamic activations "
                            "with one range per tensor; per-token ranges are not trained (choose \"per_tensor\")");
            job.dynamicActivations.insert(tensor);
            continue;
        }
        if (!layer.activationParams)
            continue;
        const QuantParams& params = *layer.activationParams;
        if (!std::holds_alternative<UniformParams>(params.values))
            throw Error("layer '" + plan.layers[i].name + "': its activations are " +
                        std::string(schemeTraits(params.scheme).name) +
                        "; quantization-aware training fake-quantizes activations with the uniform schemes only "
                        "(affine, symmetric, power of two)");
        job.staticActivations[tensor] = uniformQuant(params);
    }
    job.biasInputScales.clear();
    for (std::size_t i = 0; i < plan.layers.size(); ++i)
        if (!plan.layers[i].bias.empty())
            job.biasInputScales[plan.layers[i].bias] = plan.plans[i].biasInputScale;
}

// The model with `weights` in place of its initializers of the same names.
std::shared_ptr<const Graph> withWeights(const Graph& graph, const std::map<std::string, Tensor>& weights)
{
    auto result = std::make_shared<Graph>(graph);
    for (const auto& [name, value] : weights)
        result->initializers.at(name) = value;
    return result;
}

// Repairs change the float model before it is quantized; training changes it too, and the two
// are not combined (AdaRound would round the trained weights anew): the configuration trained for
// is the same without them.
QuantConfig withoutRepairs(QuantConfig config)
{
    config.repairs = RepairSpec{};
    for (auto it = config.layers.begin(); it != config.layers.end();) {
        it->second.repairs = RepairOverride{};
        it = it->second.empty() ? config.layers.erase(it) : std::next(it);
    }
    return config;
}

// The range [min, max] a uniform quantizer covers, as paramsForRange reads it back: the same
// zero-point and, to within rounding, the same step (affine: (max - min) / (qmax - qmin); symmetric:
// max / qmax).
std::pair<float, float> coveredRange(const UniformQuant& q, Scheme scheme)
{
    if (scheme == Scheme::Affine)
        return {q.scale * float(q.qmin - q.zeroPoint), q.scale * float(q.qmax - q.zeroPoint)};
    const float amax = q.scale * float(q.qmax);
    return {q.qmin < 0 ? -amax : 0.f, amax};
}

// The layers whose static activation steps LSQ can learn: affine and symmetric ones (a power-of-two
// step cannot move continuously), by their output tensor.
std::map<std::string, std::string> learnableActivations(const Study& study, const QuantConfig& config, const TrainingJob& job)
{
    std::map<std::string, std::string> layerOf;
    for (const QuantLayer& layer : study.layers()) {
        const LayerQuantConfig resolved = config.resolve(layer.name);
        const Scheme scheme = resolved.activations.scheme;
        if (job.staticActivations.count(layer.output) && (scheme == Scheme::Affine || scheme == Scheme::Symmetric))
            layerOf[layer.output] = layer.name;
    }
    return layerOf;
}

// The weights whose steps LSQ can learn: symmetric, signed, min-max ranges (which then find the
// learned step again in the clipped weights), per tensor or per channel.
std::map<std::string, TrainingJob::LearnedWeights> learnableWeights(const Study& study, const QuantConfig& config,
                                                                     const TrainingJob& job)
{
    std::map<std::string, TrainingJob::LearnedWeights> result;
    for (const QuantLayer& layer : study.layers()) {
        if (!job.quantizedWeights.count(layer.weight))
            continue;
        const TensorQuantSpec spec = config.resolve(layer.name).weights;
        const bool perTensor = spec.granularity == Granularity::PerTensor, perChannel = spec.granularity == Granularity::PerChannel;
        if (spec.scheme == Scheme::Symmetric && spec.isSigned.value_or(true) && spec.range == WeightRange::MinMax &&
            (perTensor || perChannel))
            result[layer.weight] = {(1 << (spec.bits - 1)) - 1, perChannel, layer.weightChannelAxis};
    }
    return result;
}

// `config` with each learned quantizer as its layer's fixed range.
QuantConfig withLearnedRanges(QuantConfig config, const std::map<std::string, std::string>& layerOf,
                              const std::map<std::string, UniformQuant>& learned)
{
    for (const auto& [tensor, q] : learned) {
        const std::string& layer = layerOf.at(tensor);
        const LayerQuantConfig resolved = config.resolve(layer);
        CalibrationSpec calibration = resolved.calibration;
        calibration.fixedRange = coveredRange(q, resolved.activations.scheme);
        config.layers[layer].calibration = calibration;
    }
    return config;
}

// A model without weights has nothing to train; one with an operator torch cannot run fails in
// the module, naming the node.
void checkTrainable(const Study& study)
{
    for (const QuantLayer& layer : study.layers())
        if (!layer.weight.empty())
            return;
    throw Error(study.sources().model.filename().string() + ": the model has no weighted layer to train");
}

}  // namespace

void setQuantizers(Study& study, const QuantConfig& config, TrainingJob& job, const EvaluationProgress& progress)
{
    job.graph = &study.graph();
    job.trainable.clear();
    job.quantizedWeights.clear();
    job.quantizedBiases.clear();
    // By initializer: the layer and the spec its weights are quantized with.
    auto weightLayers = std::make_shared<std::map<std::string, std::pair<QuantLayer, TensorQuantSpec>>>();
    std::map<std::string, TensorQuantSpec> activationSpecs;  // by output tensor
    for (const QuantLayer& layer : study.layers()) {
        const LayerQuantConfig resolved = config.resolve(layer.name);
        activationSpecs[layer.output] = resolved.activations;
        if (layer.weight.empty())
            continue;
        job.trainable.push_back(layer.weight);
        if (!layer.bias.empty())
            job.trainable.push_back(layer.bias);
        if (!resolved.keepFloat && resolved.weights.quantize) {
            job.quantizedWeights.insert(layer.weight);
            weightLayers->emplace(layer.weight, std::pair{layer, resolved.weights});
            if (!layer.bias.empty())
                job.quantizedBiases[layer.bias] = layer.weight;
        }
    }
    job.quantizeWeights = [weightLayers](const std::string& initializer, const Tensor& values) {
        const auto& [layer, spec] = weightLayers->at(initializer);
        Tensor quantized;
        quantizeLayerWeights(layer, spec, values, quantized);
        return quantized;
    };
    // The integer engine's int32 bias where the plan runs the layer in integers (its input scale
    // is known then), with the scales of the weights of this step.
    job.quantizeBias = [weightLayers, &job](const std::string& bias, const Tensor& values, const Tensor& weights) {
        const auto scale = job.biasInputScales.find(bias);
        const std::string& weightName = job.quantizedBiases.at(bias);
        if (scale == job.biasInputScales.end() || scale->second == 0.f)
            return values;
        const auto& [layer, spec] = weightLayers->at(weightName);
        Tensor quantized;
        const QuantParams params = quantizeLayerWeights(layer, spec, weights, quantized);
        return integerBias(values, scale->second, params.uniform().scale, weights.size() / std::max<std::int64_t>(1, values.size()));
    };
    job.dynamicQuant = [activationSpecs](const std::string& tensor, float min, float max) {
        return uniformQuant(paramsForRange(activationSpecs.at(tensor), min, max));
    };
    setActivationQuantizers(study.plan(config, progress), job);
}

Tensor quantizedForward(Study& study, const QuantConfig& config, const Tensor& input)
{
    TrainingJob job;
    setQuantizers(study, config, job, {});
    job.mode = TrainingJob::Mode::Forward;
    job.forwardInput = &input;
    trainingModuleEntry()(job);
    if (!job.error.empty())
        throw Error(job.error);
    return job.forwardOutput;
}

Tensor torchForward(const Graph& graph, const Tensor& input)
{
    TrainingJob job;
    job.mode = TrainingJob::Mode::Forward;
    job.graph = &graph;
    job.forwardInput = &input;
    trainingModuleEntry()(job);
    if (!job.error.empty())
        throw Error(job.error);
    return job.forwardOutput;
}

QatResult fineTuneWithQat(Study& study, const QuantConfig& requested, const QatOptions& options, const QatProgress& progress)
{
    const auto start = std::chrono::steady_clock::now();
    if (!study.dataset())
        throw Error("quantization-aware training measures on the evaluation images: give them (--data)");
    if (options.epochs < 1 && options.steps < 1)
        throw Error("epochs: at least 1 (or steps)");
    if (options.batchNormEpochs < 0)
        throw Error("epochs with BatchNormalization statistics updated: 0 or more, got " + std::to_string(options.batchNormEpochs));
    if (options.batchSize < 1)
        throw Error("batch size: at least 1, got " + std::to_string(options.batchSize));
    if (!(options.learningRate > 0) || !std::isfinite(options.learningRate))
        throw Error("learning rate: a positive number, got " + std::to_string(options.learningRate));

    QatResult result;
    result.config = withoutRepairs(requested);
    if (!(result.config == requested))
        result.notes.push_back("the configuration's repairs (equalization, bias correction, AdaRound) are not part of "
                               "quantization-aware training; it trained and measured the configuration without them");
    const TrainingEntry train = trainingModuleEntry();  // fails early, before anything is measured
    checkTrainable(study);
    auto abandoned = [&] { return progress.abandon && progress.abandon->load(); };
    auto stage = [&](const std::string& text) {
        if (abandoned())
            throw Cancelled();
        if (progress.onStage)
            progress.onStage(text);
    };
    // Measuring runs to its end unless the run is abandoned: Cancel is honoured by training, which
    // then returns what it has (the model as it was, when no step ran), so a cancelled run always
    // has a result.
    EvaluationProgress measuring;
    measuring.cancel = progress.abandon;

    // Before: float and post-training on the evaluation images.
    stage("Measuring the post-training result");
    const StudyResult before = study.evaluate(result.config, {}, measuring);
    result.floatTop1 = before.metrics.floatTop1;
    result.ptqTop1 = before.metrics.top1;
    result.layersBefore = before.metrics.layers;

    // The training images, preprocessed once.
    stage("Reading the training images");
    std::shared_ptr<const Dataset> trainSet =
        options.trainData ? std::shared_ptr<const Dataset>(openDataset(*options.trainData)) : study.calibrationSet();
    if (!trainSet || trainSet->size() == 0)
        throw Error("no training images (give --train-data, or put the training split beside the evaluation images)");
    const std::size_t count = options.trainImages ? std::min(options.trainImages, trainSet->size()) : trainSet->size();
    const ImageInputGeometry input = imageInputGeometry(study.graph());
    checkMemoryBudget(std::uint64_t(count) * input.channels * input.height * input.width * sizeof(float),
                      "the " + std::to_string(count) + " training images");
    const Tensor images = makeBatch(*trainSet, 0, count, study.preprocess(), input.channels, input.height, input.width);
    std::vector<int> labels(count);
    for (std::size_t i = 0; i < count; ++i)
        labels[i] = trainSet->label(i);
    result.distilled = std::find(labels.begin(), labels.end(), -1) != labels.end();
    if (result.distilled) {
        labels.clear();
        result.notes.push_back("the training images have no labels: the float model's outputs were the targets (distillation)");
    }
    result.trainImages = count;

    const Graph& graph = study.graph();
    TrainingJob job;
    stage("Calibrating");
    setQuantizers(study, result.config, job, measuring);
    const QuantConfig trainedFor = result.config;  // before any learned range
    std::map<std::string, std::string> learnedLayers;  // LSQ: the learned quantizers' layers, by tensor
    if (options.learnRanges) {
        learnedLayers = learnableActivations(study, trainedFor, job);
        for (const auto& [tensor, layer] : learnedLayers)
            job.learnedActivations.insert(tensor);
        if (learnedLayers.empty())
            result.notes.push_back("learned ranges (LSQ): no layer has static affine or symmetric activations to learn");
        job.learnedWeights = learnableWeights(study, trainedFor, job);
        if (job.learnedWeights.size() < job.quantizedWeights.size())
            result.notes.push_back("learned ranges (LSQ): " + std::to_string(job.quantizedWeights.size() - job.learnedWeights.size()) +
                                   " layers' weights keep their range rule (LSQ learns the steps of symmetric weights with "
                                   "min-max ranges, per tensor or per channel)");
    }
    // The configuration a checkpoint measures: with the ranges learned so far.
    auto configWith = [&](const std::map<std::string, UniformQuant>& learned) {
        return withLearnedRanges(trainedFor, learnedLayers, learned);
    };

    job.mode = TrainingJob::Mode::Train;
    job.images = &images;
    job.labels = labels;
    job.epochs = options.epochs;
    job.steps = options.steps;
    job.batchSize = options.batchSize;
    job.optimizer = options.optimizer == QatOptimizer::Sgd ? TrainingOptimizer::Sgd : TrainingOptimizer::Adam;
    job.learningRate = options.learningRate;
    job.momentum = options.momentum;
    job.weightDecay = options.weightDecay;
    job.cosineSchedule = options.cosineSchedule;
    job.seed = options.seed;
    job.threads = options.threads;
    job.checkpointEvery = options.checkpointEvery;
    job.cancel = progress.cancel;
    job.batchNormEpochs = options.batchNormEpochs;
    for (const QuantLayer& layer : study.layers()) {
        const auto folded = graph.foldedNormalization.find(layer.name);
        if (folded != graph.foldedNormalization.end() && layer.opType == "Conv" && !layer.bias.empty())
            job.batchNorms.push_back({layer.name, layer.weight, layer.bias, folded->second.mean, folded->second.stddev});
    }
    job.onStep = [&](int step, int total, int, double loss) {
        if (progress.onStep)
            progress.onStep(step, total, loss);
    };

    // Each checkpoint measures the weights of the moment with the simulation `eval` runs, and
    // recalibrates the activation ranges on them for the steps that follow. Weights whose float
    // activations are no longer finite cannot be calibrated: training diverged, and stops there.
    // A measured moment: its weights and the configuration (with the ranges learned by then).
    struct Measured {
        std::shared_ptr<const Graph> graph;
        QuantConfig config;
    };
    std::optional<Measured> best;
    double bestTop1 = -1;
    Measured lastMeasured{study.sharedGraph(), trainedFor};
    std::string divergence;
    double measuringSeconds = 0;
    job.checkpoint = [&](int step, int epoch, const std::map<std::string, Tensor>& weights,
                         const std::map<std::string, UniformQuant>& learned, double meanLoss) {
        const auto measureStart = std::chrono::steady_clock::now();
        struct AddTime {  // on every way out
            double& total;
            std::chrono::steady_clock::time_point from;
            ~AddTime() { total += std::chrono::duration<double>(std::chrono::steady_clock::now() - from).count(); }
        } addTime{measuringSeconds, measureStart};
        stage("Measuring step " + std::to_string(step));
        std::shared_ptr<const Graph> current = withWeights(graph, weights);
        const QuantConfig currentConfig = configWith(learned);
        std::unique_ptr<Study> measured = study.withModel(current);
        StudyResult now;
        try {
            now = measured->evaluate(currentConfig, kCostOnlyRequest, measuring);
            setActivationQuantizers(measured->plan(currentConfig, measuring), job);
        } catch (const Error& e) {
            divergence = "at step " + std::to_string(step) + " the model could no longer be measured (" + e.what() + ")";
            return false;
        }
        const QatCheckpoint checkpoint{step, epoch, meanLoss, now.metrics.top1};
        result.history.push_back(checkpoint);
        if (checkpoint.top1 > bestTop1) {
            bestTop1 = checkpoint.top1;
            best = Measured{current, currentConfig};
        }
        lastMeasured = Measured{current, currentConfig};
        if (progress.onCheckpoint)
            progress.onCheckpoint(checkpoint);
        stage("Training");
        return true;
    };

    stage("Training");
    const auto trainingStart = std::chrono::steady_clock::now();
    train(job);
    if (abandoned())
        throw Cancelled();
    result.trainingSeconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - trainingStart).count() - measuringSeconds;
    if (!job.error.empty())
        throw Error("quantization-aware training: " + job.error);
    result.steps = job.stepsDone;
    result.cancelled = job.cancelled;
    result.diverged = job.diverged || job.stopped;

    if (job.stopped) {
        // The weights of the last checkpoint that could be measured (or the model as it was).
        result.graph = lastMeasured.graph;
        result.config = lastMeasured.config;
        result.notes.push_back("training diverged: " + divergence + "; it stopped and kept the weights of the last good " +
                               "checkpoint" + (result.history.empty() ? " (the model as it was)" : "") +
                               "; try a lower learning rate");
    } else if (job.cancelled && best) {
        result.graph = best->graph;
        result.config = best->config;
        result.notes.push_back("cancelled: the result has the weights of the best checkpoint (top-1 " +
                               std::to_string(100 * bestTop1) + "%)");
    } else {
        result.graph = withWeights(graph, job.trained);
        result.config = configWith(job.learned);
        if (job.diverged)
            result.notes.push_back("the loss diverged (NaN or infinite) after step " + std::to_string(job.stepsDone) +
                                   ": training stopped and kept the weights of the last step whose loss was finite; "
                                   "try a lower learning rate");
    }
    // The result measured in full (each layer's errors too; the checkpoints measured top-1 only).
    stage("Measuring the fine-tuned model");
    ModelMetrics after;
    try {
        after = study.withModel(result.graph)->evaluate(result.config, {}, measuring).metrics;
    } catch (const Error& e) {
        result.diverged = true;
        result.notes.push_back(std::string("the last weights could not be measured (") + e.what() +
                               "): kept those of the last good checkpoint");
        result.graph = lastMeasured.graph;
        result.config = lastMeasured.config;
        after = study.withModel(result.graph)->evaluate(result.config, {}, measuring).metrics;
    }
    result.top1 = after.top1;
    result.layersAfter = after.layers;
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
}

}  // namespace qe

namespace qe {

void checkFineTunedModelPath(const std::filesystem::path& path)
{
    if (path.extension() != ".onnx")
        throw Error(path.string() + ": the fine-tuned model is an ONNX file (.onnx)");
}

void saveFineTunedModel(const QatResult& result, const Preprocess& preprocess, const std::filesystem::path& path)
{
    checkFineTunedModelPath(path);
    saveOnnx(*result.graph, path);
    preprocess.save(Preprocess::sidecarPath(path));
}

}  // namespace qe
