// quantexplorer-cli qat: fine-tune a model with the quantizers of a configuration in its forward
// pass (core/train/qat.h), then write the fine-tuned model and its configuration.

#include "cli/common.h"

#include "common/error.h"
#include "train/qat.h"

#include <filesystem>
#include <iomanip>
#include <iostream>

namespace qe::cli {

namespace {

using nlohmann::json;

constexpr const char* kQatUsage = R"(usage: quantexplorer-cli qat --model M.onnx --data D --config C.json --out M_qat.onnx [options]

Quantization-aware training: fine-tunes the model's weights with the configuration's quantizers in
the forward pass (straight-through estimator), on the labelled training images, then measures the
result on --data as `eval` does.

  --model PATH          the float ONNX model (and its <model>.preprocess.json)
  --data PATH           the evaluation images (held out: measured, never trained on)
  --config C.json       the quantization to train for
  --out PATH            the fine-tuned model (float weights; its preprocessing sidecar is written beside it)
  --save-config PATH    the configuration to evaluate it with (eval --model OUT --config PATH)
  --train-data PATH     training images (default: the training split beside --data, as calibration)
  --train-count N       use only the first N training images
  --epochs N            passes over the training images (default 1)
  --steps N             stop after N steps instead
  --batch N             images per step (default 64)
  --lr X                learning rate (default 1e-4 for Adam, 1e-2 for SGD), decayed to 0 on a cosine
  --optimizer adam|sgd  Adam (default) or SGD with momentum 0.9
  --constant-lr         no cosine decay
  --weight-decay X      (default 0)
  --seed N              shuffling and initialisation (default 1): the same seed gives the same result
  --checkpoint-every N  measure the held-out accuracy every N steps too (default: each epoch's end)
  --freeze-bn-after N   epochs during which the BatchNormalization folded into a convolution
                        normalizes with each batch's statistics and updates its running ones,
                        before they freeze (default 1; 0: frozen from the start)
  --learn-ranges        learn the step sizes (LSQ) of the activations, instead of recalibrating
                        them, and of symmetric min-max weights: the saved configuration gives each
                        layer its learned range, the saved weights are clipped at their learned steps
  --limit N             measure on the first N images of --data only
  --calib-data PATH, --calib-count N, and the preprocessing flags of eval
  --json                print {"float_top1", "ptq_top1", "top1", "history": [...], ...} on stdout
)";

QatOptimizer optimizerFrom(const std::string& name)
{
    if (name == "adam")
        return QatOptimizer::Adam;
    if (name == "sgd")
        return QatOptimizer::Sgd;
    throw Error("--optimizer: 'adam' or 'sgd', got '" + name + "'");
}

int positive(const Options& options, const std::string& flag, int fallback)
{
    const long long value = options.integer(flag).value_or(fallback);
    if (value < 1 || value > 1'000'000'000)
        throw Error(flag + ": a positive whole number, got " + std::to_string(value));
    return static_cast<int>(value);
}

}  // namespace

int runQat(const std::vector<std::string>& args)
{
    if (printedHelp(args, kQatUsage))
        return 0;
    const Options options(args,
                          withPreprocessFlags({"--model", "--data", "--labels", "--label-column", "--limit", "--config", "--out",
                                               "--save-config", "--train-data", "--train-count", "--epochs", "--steps",
                                               "--batch", "--lr", "--optimizer", "--weight-decay", "--seed",
                                               "--checkpoint-every", "--freeze-bn-after", "--calib-data", "--calib-count"}),
                          {"--json", "--constant-lr", "--learn-ranges"});
    const std::filesystem::path out = options.required("--out");
    checkFineTunedModelPath(out);
    const std::string configPath = options.required("--config");

    QatOptions qat;
    qat.optimizer = optimizerFrom(options.value("--optimizer").value_or("adam"));
    qat.learningRate = options.number("--lr").value_or(qat.optimizer == QatOptimizer::Sgd ? 1e-2 : 1e-4);
    qat.epochs = positive(options, "--epochs", 1);
    qat.steps = options.has("--steps") ? positive(options, "--steps", 1) : 0;
    qat.batchSize = positive(options, "--batch", 64);
    qat.cosineSchedule = !options.has("--constant-lr");
    qat.weightDecay = options.number("--weight-decay").value_or(0);
    qat.seed = static_cast<std::uint64_t>(options.integer("--seed").value_or(1));
    qat.checkpointEvery = options.has("--checkpoint-every") ? positive(options, "--checkpoint-every", 1) : 0;
    qat.learnRanges = options.has("--learn-ranges");
    if (options.has("--freeze-bn-after")) {
        const long long epochs = options.integer("--freeze-bn-after").value_or(1);
        if (epochs < 0 || epochs > 1'000'000)
            throw Error("--freeze-bn-after: a whole number of epochs, 0 or more, got " + std::to_string(epochs));
        qat.batchNormEpochs = static_cast<int>(epochs);
    }
    if (auto train = options.value("--train-data"))
        qat.trainData = *train;
    qat.trainImages = options.has("--train-count") ? static_cast<std::size_t>(positive(options, "--train-count", 1)) : 0;

    const std::size_t limit = static_cast<std::size_t>(options.integer("--limit").value_or(0));
    Study study(studySources(options, true, limit));
    if (!study.dataset()->hasLabels())
        throw Error(study.dataset()->description() + ": has no labels; give them with --labels");
    const QuantConfig config = study.loadConfig(configPath);

    QatProgress progress;
    const bool asJson = options.has("--json");
    progress.onCheckpoint = [](const QatCheckpoint& c) {
        std::cerr << "step " << c.step << " (epoch " << c.epoch + 1 << "): loss " << c.trainLoss << ", top-1 "
                  << std::fixed << std::setprecision(2) << 100 * c.top1 << "%\n"
                  << std::defaultfloat;
    };
    const QatResult result = fineTuneWithQat(study, config, qat, progress);
    for (const std::string& note : result.notes)
        std::cerr << "note: " << note << "\n";

    saveFineTunedModel(result, study.preprocess(), out);
    QuantConfig saved = result.config;
    saved.model = out.filename().string();
    if (auto path = options.value("--save-config"))
        saved.save(*path);

    json history = json::array();
    for (const QatCheckpoint& c : result.history)
        history.push_back({{"step", c.step}, {"epoch", c.epoch + 1}, {"train_loss", c.trainLoss}, {"top1", c.top1}});
    if (asJson) {
        const json output{{"float_top1", result.floatTop1}, {"ptq_top1", result.ptqTop1}, {"top1", result.top1},
                          {"history", history}, {"steps", result.steps}, {"train_images", result.trainImages},
                          {"distilled", result.distilled}, {"learned_ranges", qat.learnRanges}, {"cancelled", result.cancelled}, {"diverged", result.diverged},
                          {"seconds", result.seconds}, {"training_seconds", result.trainingSeconds}, {"notes", result.notes}, {"model", out.string()},
                          {"config", options.value("--save-config").value_or("")}, {"count", study.evaluationImages()}};
        std::cout << output.dump() << "\n";
        return 0;
    }
    std::cout << std::fixed << std::setprecision(2) << "float top-1: " << 100 * result.floatTop1 << "%\n"
              << "post-training top-1: " << 100 * result.ptqTop1 << "%\n"
              << "after QAT top-1: " << 100 * result.top1 << "% (" << result.steps << " steps on " << result.trainImages
              << " images, " << std::setprecision(1) << result.seconds << " s)\n"
              << "wrote " << out.string() << "\n";
    return 0;
}

}  // namespace qe::cli
