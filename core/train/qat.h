#pragma once
// Quantization-aware training (issue 15): fine-tune a study's model with the quantizers of a
// configuration in its forward pass, the straight-through estimator carrying the gradient through
// them, so that the weights move to where the quantization grid hurts least. Both front ends call
// fineTuneWithQat; the training itself runs in the training module (training_module.h, libtorch).
//
// What is trained: the weights and biases of every weighted layer of the prepared model. A
// BatchNormalization the importer folded into a convolution is unfolded for the first epoch
// (batch statistics, running statistics updated), then frozen and folded back. Weights are fake-quantized by the simulation's own code every step (any scheme;
// the scale follows the weights); activations by uniform fake quantizers whose ranges are
// calibrated as the configuration says, on the current weights, before training and again at
// every checkpoint (or, with LSQ, learned). Data: the labelled training images (the calibration set, i.e. the training
// split beside the evaluation images, or --train-data), cross-entropy with the labels, or with the
// float model's outputs when the images have no labels (distillation).
//
// Measured with the study's own evaluation: float, post-training (before) and the fine-tuned
// model (after) on the evaluation images, through the same simulation `eval` runs, so that
// `eval --model <fine-tuned model> --config <its configuration>` reproduces `top1`.

#include "study/study.h"
#include "train/training_module.h"

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qe {

enum class QatOptimizer { Sgd, Adam };

struct QatOptions {
    int epochs = 1;
    int steps = 0;  // > 0: this many steps instead of whole epochs
    int batchSize = 64;
    QatOptimizer optimizer = QatOptimizer::Adam;
    double learningRate = 1e-4;  // Adam's; the cosine schedule decays it to 0
    double momentum = 0.9;       // SGD only
    double weightDecay = 0;
    bool cosineSchedule = true;
    std::uint64_t seed = 1;
    // Training images: default the study's calibration set (the training split beside the
    // evaluation images, else the evaluation images themselves, with a warning).
    std::optional<std::filesystem::path> trainData;
    std::size_t trainImages = 0;  // the first N of them; 0: all
    // Held-out accuracy is measured at the end of each epoch and, when > 0, every this many steps.
    int checkpointEvery = 0;
    int threads = 2;
    // LSQ (Esser et al., 2020): the step sizes of the static affine and symmetric activation
    // quantizers are trained with the weights, starting from calibration, instead of being
    // recalibrated at each checkpoint; the result's configuration gives each such layer its
    // learned range ("calibration": {"range": [min, max]}). The steps of symmetric min-max
    // weights (per tensor or per channel) are learned too, never above the weights' own min-max
    // step; the saved weights are clipped at +-step * qmax, where min-max finds the step again.
    bool learnRanges = false;
    // Layers with a BatchNormalization folded into them normalize with each batch's statistics
    // and update the running ones during the first this many epochs (as PyTorch's QAT does
    // before freeze_bn_stats); then the statistics freeze. 0: frozen from the start.
    int batchNormEpochs = 1;
};

// One measurement during training: the simulation's top-1 on the evaluation images with the
// weights of that moment.
struct QatCheckpoint {
    int step = 0;
    int epoch = 0;
    double trainLoss = 0;  // mean over the steps since the previous checkpoint
    double top1 = 0;
};

struct QatProgress {
    std::function<void(int step, int totalSteps, double loss)> onStep;
    std::function<void(const QatCheckpoint&)> onCheckpoint;
    std::function<void(const std::string& stage)> onStage;  // "Calibrating", "Measuring", ...
    // Cancel: training stops at its next step and the result keeps the best checkpoint.
    const std::atomic<bool>* cancel = nullptr;
    // Abandon: nobody wants the result (another model was opened, the window closes): training
    // and measuring stop as soon as they can and fineTuneWithQat throws qe::Cancelled.
    const std::atomic<bool>* abandon = nullptr;
};

struct QatResult {
    std::shared_ptr<const Graph> graph;  // the fine-tuned model
    QuantConfig config;                  // the configuration it was trained for (with LSQ, its learned ranges)
    double floatTop1 = 0, ptqTop1 = 0, top1 = 0;
    // Each layer's metrics on the evaluation images before training (post-training) and after
    // (the weights of the result): the accumulated SQNR shows where training helped.
    std::vector<LayerMetrics> layersBefore, layersAfter;
    std::vector<QatCheckpoint> history;
    int steps = 0;
    std::size_t trainImages = 0;
    bool distilled = false;  // no labels: the float model's outputs were the targets
    bool cancelled = false;  // then `graph` has the weights of the best checkpoint so far
    bool diverged = false;   // the loss became NaN or infinite: the last finite step's weights
    std::vector<std::string> notes;  // what the user should know (repairs dropped, divergence, ...)
    double seconds = 0;          // everything: measuring before, reading images, training, checkpoints
    double trainingSeconds = 0;  // the training steps alone (the checkpoints' measurements excluded)
};

// Throws qe::Error for a model with an operator that has no training path (naming the node),
// images without labels and nothing to distil from, or a training module that cannot be loaded.
QatResult fineTuneWithQat(Study& study, const QuantConfig& config, const QatOptions& options,
                          const QatProgress& progress = {});

// Writes the fine-tuned model to `path` (an .onnx file) and the preprocessing sidecar (the
// study's) beside it, so that a study opened on it (eval --model path) sees what training measured.
void saveFineTunedModel(const QatResult& result, const Preprocess& preprocess, const std::filesystem::path& path);
// qe::Error naming `path` unless it names an .onnx file: front ends check before training, so
// that a run is never lost to a bad output name.
void checkFineTunedModelPath(const std::filesystem::path& path);

// The pieces, exposed for the tests' comparisons with the fp32 engine and the simulation:
// `job`'s trainable weights and fake quantizers as `config` puts them on the study's model
// (calibrating first when it needs it).
void setQuantizers(Study& study, const QuantConfig& config, TrainingJob& job, const EvaluationProgress& progress);
// The model's first output as training computes it (torch): with the configuration's fake
// quantizers, or the float model.
Tensor quantizedForward(Study& study, const QuantConfig& config, const Tensor& input);
Tensor torchForward(const Graph& graph, const Tensor& input);

}  // namespace qe
