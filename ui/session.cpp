#include "session.h"

#include "common/atomic_file.h"
#include "common/error.h"
#include "io/qdq_export.h"
#include "io/report.h"
#include "model/onnx_export.h"
#include "model/onnx_import.h"
#include "quant/qdq_import.h"

#include <QFileInfo>
#include <QUnhandledException>
#include <QtConcurrent>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

namespace qe {

namespace {

// Stages a worker reports, in the order they happen.
constexpr const char* kStageNames[] = {"Loading",   "Calibrating",    "Float reference", "Quantized model",
                                       "Histograms", "Exporting", "int8 engine",     "Writing report"};
enum Stage { Loading, Calibrating, FloatReference, QuantizedModel, Histograms, Exporting, IntegerEngine, WritingReport };

constexpr int kThumbnailSize = 56;

// The calibration images: the training split beside the test images (the CLI's --calib-data
// default), else the evaluation images themselves.
QString calibrationPathFor(const QString& dataPath)
{
    if (const auto train = trainingSplitBeside(dataPath.toStdString()))
        return QString::fromStdString(train->string());
    return dataPath;
}

QImage thumbnail(const cv::Mat& image)
{
    if (image.empty() || image.depth() != CV_8U)
        return {};
    const QImage::Format format = image.channels() == 1 ? QImage::Format_Grayscale8 : QImage::Format_BGR888;
    if (image.channels() != 1 && image.channels() != 3)
        return {};
    const QImage view(image.data, image.cols, image.rows, int(image.step), format);
    return view.scaled(kThumbnailSize, kThumbnailSize, Qt::KeepAspectRatio, Qt::SmoothTransformation);
}

EvaluationProgress progressInto(const std::shared_ptr<RequestState>& state)
{
    EvaluationProgress progress;
    progress.cancel = &state->cancel;
    progress.report = [state](const std::string& stage, std::size_t done, std::size_t total) {
        state->stage = stage == "calibrating"       ? Calibrating
                       : stage == "float reference" ? FloatReference
                       : stage == "integer engine"  ? IntegerEngine
                                                    : QuantizedModel;
        state->total = total;
        state->done = done;
    };
    return progress;
}

HistogramSnapshot computeHistograms(QuantEvaluator& evaluator, const QuantConfig& config, const std::string& layerName)
{
    HistogramSnapshot result;
    result.layer = layerName;
    for (const QuantLayer& layer : evaluator.layers()) {
        if (layer.name != layerName)
            continue;
        if (!layer.weight.empty())
            result.weights = evaluator.histogram(config, layer.weight);
        result.activations = evaluator.histogram(config, layer.name);
    }
    return result;
}

}  // namespace

QString SessionSnapshot::className(int index) const
{
    if (index >= 0 && std::size_t(index) < classNames.size())
        return QString::fromStdString(classNames[std::size_t(index)]);
    return index < 0 ? QStringLiteral("?") : QString::number(index);
}

// What the worker jobs share. Only ever used by one job at a time (the pool has one thread).
struct Session::Engine {
    std::unique_ptr<QuantEvaluator> evaluator;
    std::shared_ptr<const Dataset> calibrationSet;
    int calibratedImages = 0;

    // Calibrates when `config` needs it or asks for a different number of calibration images.
    void ensureCalibrated(const QuantConfig& config, const EvaluationProgress& progress)
    {
        const bool stale = evaluator->isCalibrated() && calibratedImages != config.calibrationImages;
        if (evaluator->needsCalibration(config) || stale) {
            evaluator->calibrate(*calibrationSet, std::size_t(config.calibrationImages), progress);
            calibratedImages = config.calibrationImages;
        }
    }
};

Session::Session(QObject* parent) : QObject(parent)
{
    qRegisterMetaType<std::shared_ptr<const qe::ImageErrorSnapshot>>();
    qRegisterMetaType<std::shared_ptr<const qe::ExportResult>>();
    pool_.setMaxThreadCount(1);
    progressTimer_.setInterval(100);
    connect(&progressTimer_, &QTimer::timeout, this, [this] {
        const RequestState& state = *main_.state;
        if (state.total > 0)
            emit progress(tr(kStageNames[state.stage.load()]), int(state.done.load()), int(state.total.load()));
    });
    debounce_.setSingleShot(true);
    debounce_.setInterval(kDebounceMs);
    connect(&debounce_, &QTimer::timeout, this, &Session::startEvaluation);
    exportTimer_.setInterval(100);
    connect(&exportTimer_, &QTimer::timeout, this, [this] {
        const RequestState& state = *export_.state;
        emit exportProgress(tr(kStageNames[state.stage.load()]), int(state.done.load()), int(state.total.load()));
    });
}

Session::~Session()
{
    debounce_.stop();
    main_.state->cancel = true;
    histogram_.state->cancel = true;
    imageErrors_.state->cancel = true;
    export_.state->cancel = true;
    pool_.waitForDone();
}

void Session::cancel()
{
    const bool wasBusy = busy_ || debounce_.isActive();
    debounce_.stop();
    const bool wasExporting = exporting_;
    for (Slot* slot : {&main_, &histogram_, &imageErrors_, &export_})
        restart(*slot);  // a new generation: results still on their way are dropped
    progressTimer_.stop();
    busy_ = false;
    if (wasExporting) {
        endExport();
        emit exportCancelled();
    }
    if (wasBusy)
        emit cancelled();
}

std::shared_ptr<RequestState> Session::restart(Slot& slot)
{
    slot.state->cancel = true;
    slot.state = std::make_shared<RequestState>();
    ++slot.generation;
    return slot.state;
}

template <class T, class OnResult> void Session::finish(QFuture<T> work, Slot& slot, OnResult onResult)
{
    finish(work, slot, onResult, [this](const QString& message) { emit failed(message); });
}

template <class T, class OnResult, class OnFailure>
void Session::finish(QFuture<T> work, Slot& slot, OnResult onResult, OnFailure onFailure)
{
    const quint64 generation = slot.generation;
    Slot* target = &slot;
    const bool isMain = target == &main_;
    auto fail = [this, target, generation, isMain, onFailure](const QString& message) {
        if (target->generation != generation)
            return;
        if (isMain) {
            progressTimer_.stop();
            busy_ = false;
        }
        onFailure(message);
    };
    // QtConcurrent::run wraps exceptions that are not QExceptions in QUnhandledException, so the
    // original is taken out and classified here.
    auto classify = [fail](std::exception_ptr exception) {
        try {
            std::rethrow_exception(exception);
        } catch (const Cancelled&) {
            // A newer request replaced this one; nothing to report.
        } catch (const Error& e) {
            fail(QString::fromStdString(e.what()));
        } catch (const std::exception& e) {
            fail(QStringLiteral("Unexpected error: %1").arg(e.what()));
        } catch (...) {
            fail(QStringLiteral("Unexpected error"));
        }
    };
    work.then(this, [this, target, generation, isMain, onResult](T result) {
            if (target->generation != generation)
                return;
            if (isMain) {
                progressTimer_.stop();
                busy_ = false;
            }
            onResult(std::move(result));
        })
        .onFailed(this, [classify](const QUnhandledException& e) { classify(e.exception()); })
        .onFailed(this, [classify]() { classify(std::current_exception()); });
}

void Session::open(const QString& modelPath, const QString& dataPath)
{
    debounce_.stop();
    restart(histogram_);
    restart(imageErrors_);
    auto state = restart(main_);
    busy_ = true;
    progressTimer_.start();
    struct Loaded {
        std::shared_ptr<const SessionSnapshot> snapshot;
        std::shared_ptr<Engine> engine;
    };
    auto work = QtConcurrent::run(&pool_, [state, modelPath, dataPath]() -> Loaded {
        state->stage = Loading;
        auto snapshot = std::make_shared<SessionSnapshot>();
        snapshot->modelPath = modelPath;
        snapshot->dataPath = dataPath;
        Graph graph = loadOnnx(modelPath.toStdString());
        // A QDQ model opens as its float model with its own quantization as the configuration.
        std::optional<ImportedQuantization> imported = importQdq(graph);
        if (imported) {
            graph = std::move(imported->floatGraph);
            snapshot->modelConfig = imported->config;
        }
        snapshot->graph = std::make_shared<const Graph>(std::move(graph));
        if (state->cancel)
            throw Cancelled();
        snapshot->dataset = openDataset(dataPath.toStdString());
        snapshot->preprocess = Preprocess::forModel(modelPath.toStdString(), imageInputGeometry(*snapshot->graph).channels);
        snapshot->classNames = snapshot->preprocess.classNames.empty() ? snapshot->dataset->classNames()
                                                                        : snapshot->preprocess.classNames;
        snapshot->evaluationImages = std::min(kEvaluationImages, snapshot->dataset->size());

        auto engine = std::make_shared<Engine>();
        engine->evaluator = std::make_unique<QuantEvaluator>(snapshot->graph, snapshot->dataset, snapshot->preprocess,
                                                             kEvaluationImages);
        if (imported)
            engine->evaluator->setFixedParams(imported->params);
        snapshot->layers = engine->evaluator->layers();
        snapshot->calibrationPath = calibrationPathFor(dataPath);
        engine->calibrationSet = snapshot->calibrationPath == dataPath
                                     ? snapshot->dataset
                                     : std::shared_ptr<const Dataset>(openDataset(snapshot->calibrationPath.toStdString()));
        for (std::size_t i = 0; i < snapshot->evaluationImages; ++i) {
            if (state->cancel)
                throw Cancelled();
            snapshot->thumbnails.push_back(thumbnail(snapshot->dataset->image(i)));
        }
        return {std::move(snapshot), std::move(engine)};
    });
    finish(work, main_, [this](Loaded result) {
        snapshot_ = std::move(result.snapshot);
        engine_ = std::move(result.engine);
        evaluation_.reset();
        histograms_.reset();
        focusLayer_.clear();
        emit loaded();
    });
}

void Session::setConfig(const QuantConfig& config)
{
    config_ = config;
    if (!engine_)
        return;
    // The stale run stops at once; the new one starts now or, while edits keep coming, after a
    // quiet moment.
    main_.state->cancel = true;
    const bool editing = sinceLastChange_.isValid() && sinceLastChange_.elapsed() < kDebounceMs;
    sinceLastChange_.start();
    busy_ = true;
    emit evaluationStarted();
    if (editing || debounce_.isActive())
        debounce_.start();
    else
        startEvaluation();
}

void Session::startEvaluation()
{
    if (!engine_)
        return;
    restart(histogram_);
    restart(imageErrors_);
    auto state = restart(main_);
    busy_ = true;
    progressTimer_.start();
    auto work = QtConcurrent::run(&pool_, [state, engine = engine_, config = config_]() {
        if (state->cancel)
            throw Cancelled();
        QElapsedTimer clock;
        clock.start();
        QuantEvaluator& evaluator = *engine->evaluator;
        const EvaluationProgress progress = progressInto(state);
        engine->ensureCalibrated(config, progress);
        auto evaluation = std::make_shared<EvaluationSnapshot>();
        evaluation->config = config;
        evaluation->metrics = evaluator.evaluate(config, progress);
        evaluation->plans = evaluator.lastPlans();
        evaluation->confusion = confusionMatrix(evaluation->metrics.labels, evaluation->metrics.predictions);
        evaluation->milliseconds = double(clock.nsecsElapsed()) / 1e6;
        return evaluation;
    });
    finish(work, main_, [this](std::shared_ptr<EvaluationSnapshot> evaluation) {
        evaluation->sequence = ++sequence_;
        evaluation_ = std::move(evaluation);
        emit evaluated();
        // The metrics are shown first; the selected layer's histograms follow in their own job.
        requestHistograms();
    });
}

void Session::setFocusLayer(const std::string& layer)
{
    if (layer == focusLayer_ && histograms_)
        return;
    focusLayer_ = layer;
    requestHistograms();
}

void Session::requestHistograms()
{
    if (!engine_ || focusLayer_.empty())
        return;
    auto state = restart(histogram_);
    auto work = QtConcurrent::run(&pool_, [state, engine = engine_, config = config_, layer = focusLayer_]() {
        if (state->cancel)
            throw Cancelled();
        return std::make_shared<HistogramSnapshot>(computeHistograms(*engine->evaluator, config, layer));
    });
    finish(work, histogram_, [this](std::shared_ptr<HistogramSnapshot> histograms) {
        if (histograms->layer != focusLayer_)
            return;
        histograms_ = std::move(histograms);
        emit histogramsReady();
    });
}

void Session::requestImageErrors(std::size_t image)
{
    if (!engine_)
        return;
    auto state = restart(imageErrors_);
    auto work = QtConcurrent::run(&pool_, [state, engine = engine_, image]() {
        if (state->cancel)
            throw Cancelled();
        auto errors = std::make_shared<ImageErrorSnapshot>();
        errors->image = image;
        errors->layers = engine->evaluator->imageLayerErrors(image);
        return std::shared_ptr<const ImageErrorSnapshot>(std::move(errors));
    });
    finish(work, imageErrors_, [this](std::shared_ptr<const ImageErrorSnapshot> errors) { emit imageErrorsReady(errors); });
}

// ---- exports ------------------------------------------------------------------------------------

namespace {

std::vector<TensorEncoding> countEncodings(QdqModel& model, ExportResult& result)
{
    for (const TensorEncoding& e : model.encodings)
        (e.kind == "activation" ? result.activationEncodings : result.weightEncodings) += 1;
    for (const std::string& w : model.warnings)
        result.warnings << QString::fromStdString(w);
    return std::move(model.encodings);
}

}  // namespace

template <class Work> bool Session::startExport(ExportResult::Kind kind, const QString& path, Work work)
{
    if (!engine_ || !snapshot_)
        return false;
    auto state = restart(export_);
    exporting_ = true;
    exportTimer_.start();
    auto job = QtConcurrent::run(&pool_, [state, engine = engine_, snapshot = snapshot_, evaluation = evaluation_, config = config_,
                                          kind, path, work]() {
        if (state->cancel)
            throw Cancelled();
        QElapsedTimer clock;
        clock.start();
        auto result = std::make_shared<ExportResult>();
        result->kind = kind;
        result->path = path;
        result->config = config;
        state->stage = Exporting;
        const EvaluationProgress progress = progressInto(state);
        engine->ensureCalibrated(config, progress);
        state->stage = Exporting;
        state->total = 0;
        work(*engine->evaluator, *snapshot, evaluation, progress, *state, *result);
        result->milliseconds = double(clock.nsecsElapsed()) / 1e6;
        return std::shared_ptr<const ExportResult>(std::move(result));
    });
    finish(
        job, export_,
        [this](std::shared_ptr<const ExportResult> result) {
            endExport();
            emit exported(std::move(result));
        },
        [this, path](const QString& message) {
            endExport();
            emit exportFailed(path, message);
        });
    return true;
}

void Session::endExport()
{
    exporting_ = false;
    exportTimer_.stop();
}

bool Session::exportQdqModel(const QString& path)
{
    return startExport(ExportResult::QdqModel, path,
                       [](QuantEvaluator& evaluator, const SessionSnapshot& session, const std::shared_ptr<const EvaluationSnapshot>&,
                          const EvaluationProgress&, RequestState&, ExportResult& result) {
                           QdqModel model = exportQdq(evaluator.plan(result.config));
                           countEncodings(model, result);
                           saveOnnx(model.graph, result.path.toStdString(), {.minimumOpset = 13});
                           result.files << result.path;
                           // The exported model takes the same pixels: its preprocessing goes beside it.
                           const auto sidecar = Preprocess::sidecarPath(result.path.toStdString());
                           session.preprocess.save(sidecar);
                           result.files << QString::fromStdString(sidecar.string());
                       });
}

bool Session::exportEncodings(const QString& path)
{
    return startExport(ExportResult::Encodings, path,
                       [](QuantEvaluator& evaluator, const SessionSnapshot&, const std::shared_ptr<const EvaluationSnapshot>&,
                          const EvaluationProgress&, RequestState&, ExportResult& result) {
                           const QString suffix = QFileInfo(result.path).suffix().toLower();
                           if (suffix != "json" && suffix != "csv")
                               throw Error(result.path.toStdString() + ": expected a .json or .csv file name");
                           QdqModel model = exportQdq(evaluator.plan(result.config));
                           const std::vector<TensorEncoding> encodings = countEncodings(model, result);
                           writeFileAtomically(result.path.toStdString(),
                                               suffix == "csv" ? encodingsCsv(encodings) : encodingsJson(encodings));
                           result.files << result.path;
                       });
}

bool Session::exportReport(const QString& dir)
{
    return startExport(ExportResult::Report, dir,
                       [](QuantEvaluator& evaluator, const SessionSnapshot& snapshot,
                          const std::shared_ptr<const EvaluationSnapshot>& evaluation, const EvaluationProgress& progress,
                          RequestState& state, ExportResult& result) {
                           const QuantConfig& config = result.config;
                           // The metrics on screen when they are this configuration's, else measured now.
                           const ModelMetrics metrics = evaluation && evaluation->config == config
                                                            ? evaluation->metrics
                                                            : evaluator.evaluate(config, progress);
                           const QuantPlan plan = evaluator.plan(config);
                           std::shared_ptr<IntegerEvaluation> integer;
                           try {
                               integer = std::make_shared<IntegerEvaluation>(evaluateInteger(
                                   plan, *snapshot.dataset, snapshot.preprocess, snapshot.evaluationImages, progress));
                           } catch (const Cancelled&) {
                               throw;
                           } catch (const Error& e) {
                               // The report is still worth having without the engine's column.
                               result.integerError = QString::fromStdString(e.what());
                           }
                           state.stage = WritingReport;
                           state.total = 0;
                           ReportInput input = reportInputFor(evaluator, config, plan, metrics);
                           input.modelPath = snapshot.modelPath.toStdString();
                           input.dataDescription = snapshot.dataset->description();
                           input.integer = integer.get();
                           for (const std::string& w : input.notes)
                               result.warnings << QString::fromStdString(w);
                           if (!result.integerError.isEmpty())
                               input.notes.push_back("The int8 engine could not run: " + result.integerError.toStdString());
                           if (state.cancel)
                               throw Cancelled();
                           for (const std::filesystem::path& file : writeReport(result.path.toStdString(), input))
                               result.files << QString::fromStdString(file.string());
                           result.integer = std::move(integer);
                       });
}

bool Session::runIntegerEngine()
{
    return startExport(ExportResult::IntegerEngine, QString(),
                       [](QuantEvaluator& evaluator, const SessionSnapshot& snapshot, const std::shared_ptr<const EvaluationSnapshot>&,
                          const EvaluationProgress& progress, RequestState&, ExportResult& result) {
                           result.integer = std::make_shared<const IntegerEvaluation>(evaluateInteger(
                               evaluator.plan(result.config), *snapshot.dataset, snapshot.preprocess, snapshot.evaluationImages,
                               progress));
                       });
}

}  // namespace qe
