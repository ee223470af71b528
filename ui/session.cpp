#include "session.h"

#include "common/error.h"
#include "model/onnx_import.h"
#include "quant/qdq_import.h"

#include <QFileInfo>
#include <QUnhandledException>
#include <QtConcurrent>

#include <opencv2/core.hpp>

namespace qe {

namespace {

// Stages a worker reports, in the order they happen.
constexpr const char* kStageNames[] = {"Loading", "Calibrating", "Float reference", "Quantized model", "Histograms"};
enum Stage { Loading, Calibrating, FloatReference, QuantizedModel, Histograms };

constexpr int kThumbnailSize = 56;

// The calibration images: the training split beside the test images (MNIST-style names, the same
// rule as the CLI's --calib-data default), else the evaluation images themselves.
QString calibrationPathFor(const QString& dataPath)
{
    const QFileInfo data(dataPath);
    if (data.fileName().startsWith("t10k-")) {
        const QString train = data.dir().filePath("train-" + data.fileName().mid(5));
        if (QFileInfo::exists(train))
            return train;
    }
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
        state->stage = stage == "calibrating" ? Calibrating : stage == "float reference" ? FloatReference : QuantizedModel;
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
};

Session::Session(QObject* parent) : QObject(parent)
{
    qRegisterMetaType<std::shared_ptr<const qe::ImageErrorSnapshot>>();
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
}

Session::~Session()
{
    debounce_.stop();
    main_.state->cancel = true;
    histogram_.state->cancel = true;
    imageErrors_.state->cancel = true;
    pool_.waitForDone();
}

void Session::cancel()
{
    const bool wasBusy = busy_ || debounce_.isActive();
    debounce_.stop();
    for (Slot* slot : {&main_, &histogram_, &imageErrors_})
        restart(*slot);  // a new generation: results still on their way are dropped
    progressTimer_.stop();
    busy_ = false;
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
    const quint64 generation = slot.generation;
    Slot* target = &slot;
    const bool isMain = target == &main_;
    auto fail = [this, target, generation, isMain](const QString& message) {
        if (target->generation != generation)
            return;
        if (isMain) {
            progressTimer_.stop();
            busy_ = false;
        }
        emit failed(message);
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
        const bool calibrationStale = evaluator.isCalibrated() && engine->calibratedImages != config.calibrationImages;
        if (evaluator.needsCalibration(config) || calibrationStale) {
            evaluator.calibrate(*engine->calibrationSet, std::size_t(config.calibrationImages), progress);
            engine->calibratedImages = config.calibrationImages;
        }
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

}  // namespace qe
