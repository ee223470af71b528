#pragma once
// A study: one model, its images and a calibration policy, and every question the front ends ask
// about a quantization configuration. The CLI's commands and the window's session both call it;
// neither opens a model, picks a calibration set, calibrates, evaluates or exports on its own.
//
// Opening: the model is loaded; a QDQ model opens as its float graph with its own quantization as
// `modelConfig()` (the window starts from it; the CLI names it with "--config model"), and its
// scales and zero-points stay in force for every layer whose configuration asks for what they
// describe. The images are opened with their labels; the preprocessing is the model's sidecar
// (or the defaults for its input), adjusted by the caller.
//
// Calibration: on the calibration images (given, else the training split beside the evaluation
// images, else the evaluation images themselves, with a warning), as many as the configuration's
// "images" (or the caller's count); again only when a configuration needs it or asks for a
// different count.
//
// Repairs: a configuration that asks for repairs ("repairs", core/repair/) is evaluated, run by
// the int8 engine and exported on the repaired model, calibrated on that model; the float model's
// outputs stay the reference. The repaired model is kept while its RepairKey stays the same (the
// repair settings, the weight quantization of the layers whose bias is corrected or that AdaRound
// rounds, the quantization of the layers before the last AdaRounded one), so that a change to
// another layer does not repair again. AdaRound's weight parameters are pinned on the repaired
// model's evaluator (RepairedModel::pinned). A QDQ model's own parameters are not used on a
// repaired model: its weights are no longer the ones they were made for.
//
// Every long step takes the progress callback and cancellation flag of EvaluationProgress and
// throws Cancelled when cancelled. A Study is not thread-safe: one caller at a time (the window
// runs its jobs on one worker thread). Results are values that share nothing with the study.

#include "data/data_fit.h"
#include "data/dataset.h"
#include "eval/accuracy.h"
#include "eval/integer_evaluation.h"
#include "eval/integer_trace.h"
#include "eval/quant_evaluator.h"
#include "model/graph.h"
#include "quant/config.h"
#include "quant/qdq_import.h"
#include "repair/repair.h"

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qe {

struct StudySources {
    std::filesystem::path model;
    std::optional<std::filesystem::path> data;             // evaluation images (optional for weight-only questions)
    std::optional<std::filesystem::path> labels;           // when they are not found beside the data
    std::string labelColumn;                               // the labels CSV column ("": see Study::labelColumn)
    std::optional<std::filesystem::path> calibrationData;  // default: the training split beside `data`, else `data`
    std::optional<std::size_t> calibrationImages;          // default: the configuration's "images"
    std::size_t evaluationImages = 0;                      // the first images of `data` that are measured; 0: all
    // The most the evaluator in use may hold (QuantEvaluator::setCacheBudget; the study's other
    // evaluator, of the repaired or the original model, gives its caches up); default a quarter
    // of the machine's memory. Beyond it, the layers before the caches' start are computed again
    // at each evaluation: slower edits of early layers, the same results.
    std::optional<std::uint64_t> cacheBudget;
    // Applied to the model's preprocessing (its sidecar, else the defaults for its input): the
    // CLI's preprocessing flags.
    std::function<void(Preprocess&)> adjustPreprocess;
    // Told about choices the study makes that change results (calibrating on the evaluation
    // images) and about images that do not fit the model (dataWarnings()).
    std::function<void(const std::string&)> warn;
};

// A layer's weights (when it has any) and output activation under a configuration.
struct LayerHistograms {
    std::string layer;
    std::optional<TensorHistogram> weights, activations;
    // Of the weights, when there are any; else of the output activation over the evaluation images.
    std::optional<ChannelRanges> channelRanges;
};

// What to compute besides the metrics.
struct StudyRequest {
    std::vector<std::string> histogramLayers;  // layers whose histograms the result carries
    bool integerEngine = false;                // also run the int8 engine on the evaluation images
    // CostOnly: each layer's size and operation counts without its errors (QuantEvaluator::evaluate).
    QuantEvaluator::LayerDetail layerDetail = QuantEvaluator::LayerDetail::Full;
};
// What the sensitivity sweep and the mixed-precision search ask: accuracy, output error and costs.
inline const StudyRequest kCostOnlyRequest{.histogramLayers = {}, .integerEngine = false,
                                           .layerDetail = QuantEvaluator::LayerDetail::CostOnly};

// Everything known about one configuration. Immutable once returned.
struct StudyResult {
    QuantConfig config;
    std::vector<LayerPlan> plans;  // parallel to Study::layers(): the parameters each layer got
    ModelMetrics metrics;          // the simulation's
    ConfusionMatrix confusion;     // labels against the simulation's predictions
    std::vector<LayerHistograms> histograms;   // as requested
    std::optional<IntegerEvaluation> integer;  // when the int8 engine ran
    double milliseconds = 0;       // calibration (if it ran) and evaluation
    // What the repairs did; null when the configuration asks for none.
    std::shared_ptr<const RepairReport> repairs;
    // The images the calibration in force observed (at most the calibration set's size); 0 when
    // nothing was calibrated (every range is dynamic or the model's own).
    std::size_t calibrationImages = 0;

    // The metrics with the accuracy and agreement with float of the int8 engine where it ran
    // (the simulation's otherwise): what `eval --engine int8` reports.
    ModelMetrics reportedMetrics() const;
};

// What an export wrote.
struct ExportedFiles {
    std::vector<std::filesystem::path> files;
    std::vector<std::string> warnings;  // tensors written in float in a QDQ model, and why
    // Tensors in integers in the QDQ model; weights counts weights and biases.
    std::size_t activationEncodings = 0, weightEncodings = 0;
    std::shared_ptr<const RepairReport> repairs;  // what the repairs did to the exported model; null when none
};

struct ReportRequest {
    enum class IntegerEngine { No, Yes, IfItRuns };  // IfItRuns: an engine error becomes a note
    IntegerEngine integerEngine = IntegerEngine::No;
    const StudyResult* current = nullptr;  // metrics already measured for this configuration, if any
};

struct WrittenReport {
    ExportedFiles written;  // warnings: the report's notes
    std::optional<IntegerEvaluation> integer;
    std::string integerError;  // why the report has no int8 engine results (IfItRuns)
    std::shared_ptr<const RepairReport> repairs;  // null when the configuration asks for none
};

class Study {
public:
    // Opens the model and the images; throws qe::Error naming the file on failure.
    explicit Study(StudySources sources, const EvaluationProgress& progress = {});

    const StudySources& sources() const { return sources_; }
    const Graph& graph() const { return *graph_; }
    std::shared_ptr<const Graph> sharedGraph() const { return graph_; }
    // The file's graph as stored (for a QDQ model, with its QuantizeLinear/DequantizeLinear nodes).
    const Graph& storedGraph() const { return *storedGraph_; }
    std::shared_ptr<const Dataset> dataset() const { return dataset_; }  // null without images
    const Preprocess& preprocess() const { return preprocess_; }
    const std::vector<QuantLayer>& layers() const { return evaluator_->layers(); }
    std::size_t evaluationImages() const { return evaluationImages_; }
    // Class names from the preprocessing sidecar, else from the data set.
    std::vector<std::string> classNames() const;
    // The labels CSV column in use: given, stored in the preprocessing sidecar ("label_column"),
    // else, when the file has several, the one named for the model's output count (label_1001
    // for 1001 outputs); "" for the data set's default.
    const std::string& labelColumn() const { return labelColumn_; }
    // Why that column was chosen, when the study chose it; "" otherwise.
    const std::string& labelColumnNote() const { return labelColumnNote_; }
    // The model's output count (its first output's last dimension); 0 when unknown.
    std::int64_t outputClassCount() const;
    // How the evaluation images do not fit the model (dataFitWarnings: channels, size, labels
    // against outputs), found when the study opened; each was also given to StudySources::warn.
    const std::vector<std::string>& dataWarnings() const { return dataWarnings_; }
    // A QDQ model's own quantization; nullopt for a float model.
    const std::optional<QuantConfig>& modelConfig() const { return modelConfig_; }
    // The calibration images: given, the training split beside the data, else the data itself.
    std::optional<std::filesystem::path> calibrationPath() const { return calibrationPath_; }

    // Reads a configuration file against this model's layers; "model" names a QDQ model's own
    // (a qe::Error for a float model).
    QuantConfig loadConfig(const std::string& pathOrModel) const;

    // Calibrates when `config` needs static ranges that neither calibration nor the model's own
    // parameters cover, or asks for a different number of calibration images than last time;
    // `always` calibrates once even when the configuration needs none (histograms show every
    // calibration method's range).
    void ensureCalibrated(const QuantConfig& config, const EvaluationProgress& progress, bool always = false);
    // The plan `config` resolves to (calibrated first when it needs it).
    QuantPlan plan(const QuantConfig& config, const EvaluationProgress& progress = {});
    StudyResult evaluate(const QuantConfig& config, const StudyRequest& request = {}, const EvaluationProgress& progress = {});
    // The histogram of a layer's output, a weight or any float tensor (see QuantEvaluator).
    TensorHistogram histogram(const QuantConfig& config, const std::string& tensor, int bins = 128,
                              const EvaluationProgress& progress = {}, int channel = -1);
    // Each channel's range of a layer's output over the evaluation images (see QuantEvaluator).
    ChannelRanges activationChannelRanges(const QuantConfig& config, const std::string& layer, const EvaluationProgress& progress = {});
    // `weightChannel` picks the output channel of the weight histogram (-1: all of them).
    LayerHistograms layerHistograms(const QuantConfig& config, const std::string& layer, const EvaluationProgress& progress = {},
                                    int weightChannel = -1);
    // The accumulated error at every layer for one evaluation image, from the last evaluate().
    std::vector<ErrorStats> imageLayerErrors(std::size_t image) const { return lastEvaluator_->imageLayerErrors(image); }
    // The model the configuration's repairs make (repaired now unless the last one fits); null
    // when it asks for none.
    std::shared_ptr<const RepairedModel> repairedModel(const QuantConfig& config, const EvaluationProgress& progress = {});
    IntegerEvaluation runIntegerEngine(const QuantConfig& config, const EvaluationProgress& progress = {});
    // One output value of an integer Conv/Gemm/MatMul layer on evaluation image `image`, traced
    // through the int8 engine's arithmetic (eval/integer_trace.h); `position` is the element's
    // coordinates in the layer's output, batch index 0.
    IntegerTrace traceIntegerOutput(const QuantConfig& config, const std::string& layer, std::size_t image,
                                    const std::vector<std::int64_t>& position, const EvaluationProgress& progress = {});
    // The model as stored (no quantization of ours) on the evaluation images.
    ClassificationResult evaluateStoredModel(std::size_t batchSize, const EvaluationProgress& progress = {}) const;

    // The QDQ ONNX model (opset >= 13) at `path`, its preprocessing sidecar beside it, and, when
    // given, the encodings as JSON or CSV (by the extension, checked before anything is written).
    ExportedFiles exportQdqModel(const QuantConfig& config, const std::filesystem::path& path,
                                 const std::optional<std::filesystem::path>& encodings = std::nullopt,
                                 const EvaluationProgress& progress = {});
    ExportedFiles exportEncodings(const QuantConfig& config, const std::filesystem::path& path, const EvaluationProgress& progress = {});
    // report.md and its PNG charts in `dir`.
    WrittenReport writeReport(const QuantConfig& config, const std::filesystem::path& dir, const ReportRequest& request,
                              const EvaluationProgress& progress = {});

    // The calibration images (opened on first use; this study's evaluation images when the
    // calibration path is theirs) and how many of its first images calibrating for `config` takes.
    std::shared_ptr<const Dataset> calibrationSet();
    std::size_t calibrationImageCount(const QuantConfig& config) const;
    // A study of the same model, preprocessing and calibration measured on other images (`path`
    // names them; `images` may be a slice of an open data set): the mixed-precision search's
    // held-out images. It shares the opened model and calibration set, and takes this study's
    // calibration for `config` (calibrating first if needed), so both resolve a configuration to
    // the same parameters.
    std::unique_ptr<Study> onOtherImages(std::shared_ptr<const Dataset> images, const std::filesystem::path& path,
                                         const QuantConfig& config, const EvaluationProgress& progress = {});

    // A study of `graph` (this model with other weights, e.g. fine-tuned) on the same images,
    // preprocessing and calibration set, calibrated afresh on it when asked: what a study opened on
    // that model's file would compute.
    std::unique_ptr<Study> withModel(std::shared_ptr<const Graph> graph) const;

    // Drops the evaluators' caches (benchmarks comparing full and incremental runs).
    void clearQuantizedCache();

private:
    Study() = default;
    // A study sharing this one's sources, preprocessing, labels column and calibration set, on
    // `graph` (stored as `stored`) and the first `imageCount` of `images`, with an evaluator of
    // its own (not calibrated): what onOtherImages and withModel each adjust.
    std::unique_ptr<Study> sibling(std::shared_ptr<const Graph> stored, std::shared_ptr<const Graph> graph,
                                   std::shared_ptr<const Dataset> images, std::size_t imageCount) const;
    const Dataset& requireData(const std::string& what) const;
    std::string chooseLabelColumn();
    // The one place a configuration meets its model: the evaluator of the original model, or of
    // the repaired one when the configuration asks for repairs (repairing when the key changed),
    // calibrated as `calibration` says (Always: even when nothing needs it, for the histograms'
    // calibration ranges; None: weight-only questions).
    enum class Calibration { None, AsNeeded, Always };
    QuantEvaluator& evaluatorFor(const QuantConfig& config, const EvaluationProgress& progress,
                                 Calibration calibration = Calibration::AsNeeded);
    // The report of the repaired model in use for `config` (after evaluatorFor); null when none.
    std::shared_ptr<const RepairReport> repairsInForce(const QuantConfig& config) const;
    void calibrateIfNeeded(QuantEvaluator& evaluator, std::size_t& calibratedImages, const QuantConfig& config,
                           const EvaluationProgress& progress, Calibration calibration);

    StudySources sources_;
    std::shared_ptr<const Graph> storedGraph_, graph_;
    std::shared_ptr<const Dataset> dataset_;
    Preprocess preprocess_;
    std::size_t evaluationImages_ = 0;
    std::string labelColumn_, labelColumnNote_;
    std::vector<std::string> dataWarnings_;
    std::optional<QuantConfig> modelConfig_;
    std::optional<std::filesystem::path> calibrationPath_;
    std::shared_ptr<const Dataset> calibrationSet_;  // opened at the first calibration
    std::size_t calibratedImages_ = 0;
    std::unique_ptr<QuantEvaluator> evaluator_;
    struct Repaired {
        RepairKey key;
        std::shared_ptr<const RepairedModel> model;
        std::unique_ptr<QuantEvaluator> evaluator;
        std::size_t calibratedImages = 0;
    };
    std::unique_ptr<Repaired> repaired_;
    // An evaluator of the repaired `model` on `images` (not calibrated yet), with the float model's
    // outputs as its reference.
    std::unique_ptr<Repaired> repairedOn(std::shared_ptr<const RepairedModel> model, const RepairKey& key,
                                         std::shared_ptr<const Dataset> images, std::size_t imageCount) const;
    QuantEvaluator* lastEvaluator_ = nullptr;  // of the last evaluate()
};

// A classifier's output count: its first output's last dimension; 0 when unknown.
std::int64_t outputClassCount(const Graph& graph);
// Of a labels file's columns, the one named for `outputs` classes ("label_1001" for 1001
// outputs); "" when none is. The study's choice when neither the caller nor the sidecar names one,
// and the preprocessing dialog's first offer.
std::string labelColumnForOutputs(const std::vector<std::string>& columns, std::int64_t outputs);

// The encodings file format `path` names by its extension: ".json" or ".csv"; qe::Error otherwise.
std::string encodingsFormat(const std::filesystem::path& path);

}  // namespace qe
