#include "study/study.h"

#include "common/atomic_file.h"
#include "common/error.h"
#include "engine/executor.h"
#include "io/qdq_export.h"
#include "io/report.h"
#include "model/onnx_export.h"
#include "engine/graph_preparation.h"
#include "quant/image_batches.h"

#include <cctype>
#include <chrono>

namespace qe {

namespace {

double millisecondsSince(std::chrono::steady_clock::time_point start)
{
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

void throwIfCancelled(const EvaluationProgress& progress)
{
    if (progress.cancel && progress.cancel->load())
        throw Cancelled();
}

void countEncodings(const QdqModel& model, ExportedFiles& result)
{
    for (const TensorEncoding& e : model.encodings)
        if (e.inQdqModel)
            (e.kind == "activation" ? result.activationEncodings : result.weightEncodings) += 1;
    result.warnings.insert(result.warnings.end(), model.warnings.begin(), model.warnings.end());
}

void writeEncodingsFile(const std::vector<TensorEncoding>& encodings, const std::filesystem::path& path)
{
    writeFileAtomically(path, encodingsFormat(path) == "csv" ? encodingsCsv(encodings) : encodingsJson(encodings));
}

}  // namespace

std::string encodingsFormat(const std::filesystem::path& path)
{
    std::string ext = path.extension().string();
    for (char& c : ext)
        c = char(std::tolower(static_cast<unsigned char>(c)));
    if (ext == ".json" || ext == ".csv")
        return ext.substr(1);
    throw Error(path.string() + ": expected a .json or .csv file name");
}

ModelMetrics StudyResult::reportedMetrics() const
{
    ModelMetrics m = metrics;
    if (!integer)
        return m;
    std::size_t agree = 0;
    for (std::size_t i = 0; i < integer->predictions.size() && i < m.floatPredictions.size(); ++i)
        agree += integer->predictions[i] == m.floatPredictions[i];
    m.top1 = integer->top1;
    m.top5 = integer->top5;
    m.agreement = integer->images ? double(agree) / double(integer->images) : 0;
    return m;
}

Study::Study(StudySources sources, const EvaluationProgress& progress) : sources_(std::move(sources))
{
    Graph stored = loadOnnx(sources_.model);
    // A QDQ model is studied as its float graph; its own quantization is a configuration.
    std::optional<ImportedQuantization> imported = importQdq(stored);
    storedGraph_ = std::make_shared<const Graph>(std::move(stored));
    graph_ = imported ? std::make_shared<const Graph>(std::move(imported->floatGraph)) : storedGraph_;
    throwIfCancelled(progress);

    preprocess_ = Preprocess::forModel(sources_.model, imageInputGeometry(*graph_).channels);
    if (sources_.adjustPreprocess)
        sources_.adjustPreprocess(preprocess_);

    if (sources_.data) {
        labelColumn_ = chooseLabelColumn();
        dataset_ = openDataset(*sources_.data, sources_.labels, labelColumn_);
        evaluationImages_ = sources_.evaluationImages ? std::min(sources_.evaluationImages, dataset_->size()) : dataset_->size();
        const ImageInputGeometry input = imageInputGeometry(*graph_);
        dataWarnings_ = dataFitWarnings(*dataset_, evaluationImages_, {input.channels, input.height, input.width, outputClassCount()},
                                        labelColumn_);
        for (const std::string& warning : dataWarnings_)
            if (sources_.warn)
                sources_.warn(sources_.data->filename().string() + " on " + sources_.model.filename().string() + ": " + warning);
    }
    if (sources_.calibrationData)
        calibrationPath_ = sources_.calibrationData;
    else if (sources_.data)
        calibrationPath_ = trainingSplitBeside(*sources_.data).value_or(*sources_.data);

    evaluator_ = std::make_unique<QuantEvaluator>(graph_, dataset_, preprocess_, evaluationImages_);
    if (sources_.cacheBudget)
        evaluator_->setCacheBudget(*sources_.cacheBudget);
    lastEvaluator_ = evaluator_.get();
    if (imported) {
        evaluator_->setFixedParams(imported->params);
        modelConfig_ = imported->config;
    }
}

std::string Study::chooseLabelColumn()
{
    if (!sources_.labelColumn.empty())
        return sources_.labelColumn;
    if (!preprocess_.labelColumn.empty())
        return preprocess_.labelColumn;
    const std::vector<std::string> columns = labelColumns(*sources_.data, sources_.labels);
    const std::int64_t outputs = outputClassCount();
    if (columns.size() < 2)
        return {};
    // Labels files for models with and without a background class carry both numberings
    // ("label_1000", "label_1001"): the one whose class count is the model's output count fits.
    const std::string column = labelColumnForOutputs(columns, outputs);
    if (!column.empty()) {
        labelColumnNote_ = "labels from column \"" + column + "\": its " + std::to_string(outputs) +
                           " classes match the model's " + std::to_string(outputs) + " outputs";
        if (sources_.warn)
            sources_.warn(labelColumnNote_);
    }
    return column;
}

std::string labelColumnForOutputs(const std::vector<std::string>& columns, std::int64_t outputs)
{
    if (outputs <= 0)
        return {};
    const std::string suffix = "_" + std::to_string(outputs);
    for (const std::string& column : columns)
        if (column.ends_with(suffix))
            return column;
    return {};
}

std::int64_t outputClassCount(const Graph& graph)
{
    if (graph.outputs.empty())
        return 0;
    const SymbolicShape& shape = graph.outputs[0].shape;
    return !shape.empty() && !shape.back().isDynamic() ? shape.back().value : 0;
}

std::int64_t Study::outputClassCount() const { return qe::outputClassCount(*graph_); }

std::vector<std::string> Study::classNames() const
{
    if (!preprocess_.classNames.empty() || !dataset_)
        return preprocess_.classNames;
    return dataset_->classNames();
}

const Dataset& Study::requireData(const std::string& what) const
{
    if (!dataset_)
        throw Error(what + " needs images: give the evaluation data");
    return *dataset_;
}

QuantConfig Study::loadConfig(const std::string& pathOrModel) const
{
    if (pathOrModel != "model")
        return QuantConfig::load(pathOrModel, layerNames(layers()));
    if (!modelConfig_)
        throw Error(sources_.model.string() +
                    ": --config model needs a quantized (QDQ) model; this one has no QuantizeLinear/DequantizeLinear nodes");
    return *modelConfig_;
}

std::size_t Study::calibrationImageCount(const QuantConfig& config) const
{
    return sources_.calibrationImages.value_or(std::size_t(config.calibrationImages));
}

std::shared_ptr<const Dataset> Study::calibrationSet()
{
    if (calibrationSet_)
        return calibrationSet_;
    if (!calibrationPath_)
        throw Error("calibration needs images: give --calib-data (or --data)");
    if (sources_.data && *calibrationPath_ == *sources_.data) {
        if (!sources_.calibrationData && sources_.warn)
            sources_.warn("no separate calibration set found beside " + sources_.data->string() +
                          "; calibrating on the evaluation images (give --calib-data to avoid optimistic results)");
        calibrationSet_ = dataset_;
    } else {
        calibrationSet_ = openDataset(*calibrationPath_, std::nullopt, labelColumn_);
    }
    return calibrationSet_;
}

void Study::ensureCalibrated(const QuantConfig& config, const EvaluationProgress& progress, bool always)
{
    evaluatorFor(config, progress, always ? Calibration::Always : Calibration::AsNeeded);
}

void Study::calibrateIfNeeded(QuantEvaluator& evaluator, std::size_t& calibratedImages, const QuantConfig& config,
                              const EvaluationProgress& progress, Calibration calibration)
{
    if (calibration == Calibration::None)
        return;
    const bool always = calibration == Calibration::Always;
    const std::size_t images = calibrationImageCount(config);
    const bool stale = evaluator.isCalibrated() && calibratedImages != images;
    const bool needed = evaluator.needsCalibration(config) || (always && !evaluator.isCalibrated());
    if (!needed && !stale)
        return;
    evaluator.calibrate(*calibrationSet(), images, progress);
    calibratedImages = images;
}

QuantEvaluator& Study::evaluatorFor(const QuantConfig& config, const EvaluationProgress& progress, Calibration calibration)
{
    const RepairKey key = repairKey(config, layers(), calibrationImageCount(config));
    // One memory budget for the study: the evaluator not in use gives up its caches.
    if (!key.any()) {
        if (repaired_)
            repaired_->evaluator->releaseCaches();
        calibrateIfNeeded(*evaluator_, calibratedImages_, config, progress, calibration);
        return *evaluator_;
    }
    evaluator_->releaseCaches();
    if (!repaired_ || repaired_->key != key) {
        repaired_.reset();  // a cancelled repair leaves none rather than a stale one
        const std::shared_ptr<const Dataset> images = calibrationPath_ ? calibrationSet() : nullptr;
        auto model = std::make_shared<const RepairedModel>(
            repair(*graph_, layers(), config, {images.get(), &preprocess_, key.images}, {progress.report, progress.cancel}));
        repaired_ = repairedOn(std::move(model), key, dataset_, evaluationImages_);
    }
    calibrateIfNeeded(*repaired_->evaluator, repaired_->calibratedImages, config, progress, calibration);
    return *repaired_->evaluator;
}

std::unique_ptr<Study::Repaired> Study::repairedOn(std::shared_ptr<const RepairedModel> model, const RepairKey& key,
                                                  std::shared_ptr<const Dataset> images, std::size_t imageCount) const
{
    auto slot = std::make_unique<Repaired>();
    slot->key = key;
    slot->evaluator = std::make_unique<QuantEvaluator>(model->graph, std::move(images), preprocess_, imageCount,
                                                       FloatReference{model->reference, graph_});
    slot->evaluator->setFixedParams(model->pinned);  // AdaRound's weight parameters (repair.h)
    if (sources_.cacheBudget)
        slot->evaluator->setCacheBudget(*sources_.cacheBudget);
    slot->model = std::move(model);
    return slot;
}

std::shared_ptr<const RepairReport> Study::repairsInForce(const QuantConfig& config) const
{
    if (!repaired_ || repaired_->key != repairKey(config, layers(), calibrationImageCount(config)))
        return nullptr;
    return std::shared_ptr<const RepairReport>(repaired_->model, &repaired_->model->report);
}

std::shared_ptr<const RepairedModel> Study::repairedModel(const QuantConfig& config, const EvaluationProgress& progress)
{
    QuantEvaluator& evaluator = evaluatorFor(config, progress, Calibration::None);
    return &evaluator == evaluator_.get() ? nullptr : repaired_->model;
}

void Study::clearQuantizedCache()
{
    evaluator_->clearQuantizedCache();
    if (repaired_)
        repaired_->evaluator->clearQuantizedCache();
}

std::unique_ptr<Study> Study::onOtherImages(std::shared_ptr<const Dataset> images, const std::filesystem::path& path,
                                            const QuantConfig& config, const EvaluationProgress& progress)
{
    ensureCalibrated(config, progress);
    std::unique_ptr<Study> other = sibling(storedGraph_, graph_, images, images->size());
    other->sources_.data = path;
    other->sources_.evaluationImages = 0;
    other->modelConfig_ = modelConfig_;
    other->calibratedImages_ = calibratedImages_;
    other->evaluator_->shareCalibrationOf(*evaluator_);
    // The repaired model is the same on other images: shared, with its calibration.
    QuantEvaluator& mine = evaluatorFor(config, progress);
    if (&mine != evaluator_.get()) {
        other->repaired_ = repairedOn(repaired_->model, repaired_->key, images, images->size());
        other->repaired_->calibratedImages = repaired_->calibratedImages;
        other->repaired_->evaluator->shareCalibrationOf(mine);
    }
    return other;
}

std::unique_ptr<Study> Study::withModel(std::shared_ptr<const Graph> graph) const
{
    std::unique_ptr<Study> other = sibling(graph, graph, dataset_, evaluationImages_);
    other->labelColumnNote_ = labelColumnNote_;
    other->dataWarnings_ = dataWarnings_;
    return other;
}

std::unique_ptr<Study> Study::sibling(std::shared_ptr<const Graph> stored, std::shared_ptr<const Graph> graph,
                                      std::shared_ptr<const Dataset> images, std::size_t imageCount) const
{
    std::unique_ptr<Study> other(new Study());
    other->sources_ = sources_;
    other->storedGraph_ = std::move(stored);
    other->graph_ = graph;
    other->dataset_ = images;
    other->preprocess_ = preprocess_;
    other->evaluationImages_ = imageCount;
    other->labelColumn_ = labelColumn_;
    other->calibrationPath_ = calibrationPath_;
    other->calibrationSet_ = calibrationSet_;
    other->evaluator_ = std::make_unique<QuantEvaluator>(std::move(graph), std::move(images), preprocess_, imageCount);
    if (sources_.cacheBudget)
        other->evaluator_->setCacheBudget(*sources_.cacheBudget);
    other->lastEvaluator_ = other->evaluator_.get();
    return other;
}

QuantPlan Study::plan(const QuantConfig& config, const EvaluationProgress& progress)
{
    return evaluatorFor(config, progress).plan(config);
}

StudyResult Study::evaluate(const QuantConfig& config, const StudyRequest& request, const EvaluationProgress& progress)
{
    requireData("an evaluation");
    const auto start = std::chrono::steady_clock::now();
    QuantEvaluator& evaluator = evaluatorFor(config, progress);
    StudyResult result;
    result.config = config;
    result.metrics = evaluator.evaluate(config, progress, request.layerDetail);
    lastEvaluator_ = &evaluator;
    result.plans = evaluator.lastPlans();
    result.calibrationImages = evaluator.calibrationImages();
    result.repairs = repairsInForce(config);
    result.confusion = confusionMatrix(result.metrics.labels, result.metrics.predictions);
    result.milliseconds = millisecondsSince(start);
    for (const std::string& layer : request.histogramLayers)
        result.histograms.push_back(layerHistograms(config, layer, progress));
    if (request.integerEngine)
        result.integer = runIntegerEngine(config, progress);
    return result;
}

TensorHistogram Study::histogram(const QuantConfig& config, const std::string& tensor, int bins, const EvaluationProgress& progress,
                                 int channel)
{
    if (!graph_->isInitializer(tensor) && !dataset_)
        throw Error("the histogram of activation '" + tensor + "' needs images: give --data");
    QuantEvaluator& evaluator =
        evaluatorFor(config, progress, graph_->isInitializer(tensor) ? Calibration::None : Calibration::Always);
    throwIfCancelled(progress);
    return evaluator.histogram(config, tensor, bins, channel);
}

ChannelRanges Study::activationChannelRanges(const QuantConfig& config, const std::string& layer, const EvaluationProgress& progress)
{
    if (!dataset_)
        throw Error("the channels of the activations of '" + layer + "' need evaluation images");
    return evaluatorFor(config, progress, Calibration::None).activationChannelRanges(config, layer);
}

LayerHistograms Study::layerHistograms(const QuantConfig& config, const std::string& layerName, const EvaluationProgress& progress,
                                       int weightChannel)
{
    LayerHistograms result;
    result.layer = layerName;
    for (const QuantLayer& layer : layers()) {
        if (layer.name != layerName)
            continue;
        if (!layer.weight.empty()) {
            result.weights = histogram(config, layer.weight, 128, progress, weightChannel);
            result.channelRanges = evaluatorFor(config, progress, Calibration::None).channelRanges(config, layerName);
        } else if (dataset_ && layer.nodeIndex >= 0) {
            // A layer without weights (a LayerNorm, a Softmax, an Add): its activation's channels,
            // where a transformer's outlier channels show.
            result.channelRanges = activationChannelRanges(config, layerName, progress);
        }
        if (dataset_)
            result.activations = histogram(config, layer.name, 128, progress);
    }
    return result;
}

IntegerEvaluation Study::runIntegerEngine(const QuantConfig& config, const EvaluationProgress& progress)
{
    const Dataset& data = requireData("the int8 engine");
    return evaluateInteger(plan(config, progress), data, preprocess_, evaluationImages_, progress);
}

IntegerTrace Study::traceIntegerOutput(const QuantConfig& config, const std::string& layer, std::size_t image,
                                      const std::vector<std::int64_t>& position, const EvaluationProgress& progress)
{
    const Dataset& data = requireData("tracing a value through the int8 engine");
    if (image >= evaluationImages_)
        throw Error("image " + std::to_string(image) + " is not one of the " + std::to_string(evaluationImages_) + " evaluation images");
    const QuantPlan quantPlan = plan(config, progress);
    std::optional<IntegerTrace> trace;
    forEachImageBatch(*graph_, data, preprocess_, image, 1, 1, progress.cancel, [&](std::size_t, const Tensor& batch) {
        trace = qe::traceIntegerOutput(quantPlan, {{graph_->inputs.at(0).name, batch}}, layer, position);
    });
    if (!trace)
        throw Error("image " + std::to_string(image) + " could not be read");
    return std::move(*trace);
}

ClassificationResult Study::evaluateStoredModel(std::size_t batchSize, const EvaluationProgress& progress) const
{
    const Dataset& data = requireData("an evaluation");
    const Executor executor(*storedGraph_);
    EvaluationOptions options;
    options.limit = evaluationImages_;
    options.batchSize = batchSize;
    options.cancel = progress.cancel;
    if (progress.report)
        options.progress = [&](std::size_t done, std::size_t total) { progress.report("float model", done, total); };
    return evaluateClassifier(executor, data, preprocess_, options);
}

ExportedFiles Study::exportQdqModel(const QuantConfig& config, const std::filesystem::path& path,
                                    const std::optional<std::filesystem::path>& encodings, const EvaluationProgress& progress)
{
    if (encodings)
        encodingsFormat(*encodings);  // a wrong name fails before anything is written
    QdqModel model = exportQdq(plan(config, progress));
    throwIfCancelled(progress);
    ExportedFiles result;
    result.repairs = repairsInForce(config);
    countEncodings(model, result);
    saveOnnx(model.graph, path, {.minimumOpset = 13});
    result.files.push_back(path);
    // The exported model takes the same pixels: its preprocessing goes beside it.
    const std::filesystem::path sidecar = Preprocess::sidecarPath(path);
    preprocess_.save(sidecar);
    result.files.push_back(sidecar);
    if (encodings) {
        writeEncodingsFile(model.encodings, *encodings);
        result.files.push_back(*encodings);
    }
    return result;
}

ExportedFiles Study::exportEncodings(const QuantConfig& config, const std::filesystem::path& path, const EvaluationProgress& progress)
{
    encodingsFormat(path);
    const QdqModel model = exportQdq(plan(config, progress));
    throwIfCancelled(progress);
    ExportedFiles result;
    countEncodings(model, result);
    writeEncodingsFile(model.encodings, path);
    result.files.push_back(path);
    return result;
}

WrittenReport Study::writeReport(const QuantConfig& config, const std::filesystem::path& dir, const ReportRequest& request,
                                 const EvaluationProgress& progress)
{
    const Dataset& data = requireData("a report");
    WrittenReport report;
    // The metrics already measured when they are this configuration's, else measured now.
    const ModelMetrics metrics =
        request.current && request.current->config == config ? request.current->metrics : evaluate(config, {}, progress).metrics;
    const QuantPlan quantPlan = plan(config, progress);
    report.repairs = repairsInForce(config);
    if (request.integerEngine != ReportRequest::IntegerEngine::No) {
        try {
            report.integer = evaluateInteger(quantPlan, data, preprocess_, evaluationImages_, progress);
        } catch (const Cancelled&) {
            throw;
        } catch (const Error& e) {
            if (request.integerEngine == ReportRequest::IntegerEngine::Yes)
                throw;
            // The report is still worth having without the engine's column.
            report.integerError = e.what();
        }
    }
    if (progress.report)
        progress.report("writing report", 0, 0);
    ReportInput input = reportInputFor(evaluatorFor(config, progress), config, quantPlan, metrics);
    input.modelPath = sources_.model.string();
    input.dataDescription = data.description();
    input.classNames = classNames();
    input.integer = report.integer ? &*report.integer : nullptr;
    if (report.repairs)
        input.repairs = describeRepairs(*report.repairs);
    report.written.warnings = input.notes;
    if (!report.integerError.empty())
        input.notes.push_back("The int8 engine could not run: " + report.integerError);
    throwIfCancelled(progress);
    report.written.files = qe::writeReport(dir, input);
    return report;
}

}  // namespace qe
