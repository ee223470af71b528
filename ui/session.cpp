#include "session.h"
#include "session_jobs.h"

#include "common/error.h"

#include <QFileInfo>

#include <opencv2/core.hpp>

namespace qe {

using namespace session_jobs;

namespace {

constexpr int kThumbnailSize = 56;

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

}  // namespace

QString SessionSnapshot::className(int index) const
{
    if (index >= 0 && std::size_t(index) < classNames.size())
        return QString::fromStdString(classNames[std::size_t(index)]);
    // Without names, say what the number is: a bare "3" under an image reads like a count.
    return index < 0 ? QStringLiteral("?") : QObject::tr("class %1").arg(index);
}

std::set<std::string> SessionSnapshot::layerNames() const
{
    std::set<std::string> names;
    for (const QuantLayer& layer : layers)
        names.insert(layer.name);
    return names;
}

Session::Session(QObject* parent) : QObject(parent)
{
    qRegisterMetaType<std::shared_ptr<const qe::ImageErrorSnapshot>>();
    qRegisterMetaType<std::shared_ptr<const qe::IntegerTrace>>();
    qRegisterMetaType<std::shared_ptr<const qe::ExportResult>>();
    qRegisterMetaType<std::shared_ptr<const qe::SearchResult>>();
    qRegisterMetaType<std::shared_ptr<const qe::QatResult>>();
    qRegisterMetaType<qe::QatCheckpoint>();
    qRegisterMetaType<qe::RunningTop1>();
    pool_.setMaxThreadCount(1);
    progressTimer_.setInterval(100);
    connect(&progressTimer_, &QTimer::timeout, this, [this] {
        const RequestState& state = *main_.state;
        if (state.total > 0)
            emit progress(stageText(state), int(state.done.load()), int(state.total.load()));
        RunningTop1 top1;
        bool quantized = false;
        {
            std::lock_guard lock(state.detailMutex);
            top1 = state.top1;
            quantized = state.top1OfQuantized;
        }
        if (top1.scored > 0 && top1.scored < top1.total)
            emit runningTop1(quantized, top1);
    });
    debounce_.setSingleShot(true);
    debounce_.setInterval(kDebounceMs);
    connect(&debounce_, &QTimer::timeout, this, &Session::startEvaluation);
    exportTimer_.setInterval(100);
    connect(&exportTimer_, &QTimer::timeout, this, [this] {
        const RequestState& state = *export_.state;
        emit exportProgress(stageText(state), int(state.done.load()), int(state.total.load()));
    });
    searchTimer_.setInterval(100);
    connect(&searchTimer_, &QTimer::timeout, this, [this] {
        const RequestState& state = *search_.state;
        emit searchProgress(stageText(state), int(state.done.load()), int(state.total.load()));
        deliverSearchCandidates();
    });
    qatTimer_.setInterval(200);
    connect(&qatTimer_, &QTimer::timeout, this, &Session::deliverQatProgress);
}

Session::~Session()
{
    debounce_.stop();
    for (Slot* slot : {&main_, &histogram_, &imageErrors_, &export_, &sweep_, &search_, &qat_, &comparisonSlot_}) {
        slot->state->cancel = true;
        slot->state->abandon = true;
    }
    pool_.waitForDone();
}

void Session::cancel()
{
    const bool wasBusy = busy_ || debounce_.isActive();
    debounce_.stop();
    const bool wasExporting = exporting_;
    for (Slot* slot : {&main_, &histogram_, &imageErrors_, &export_, &comparisonSlot_})
        restart(*slot);  // a new generation: results still on their way are dropped
    progressTimer_.stop();
    busy_ = false;
    loading_ = false;  // the model shown stays
    if (comparisonConfig_ && !comparison_) {  // B was being evaluated: there is no B after all
        comparisonConfig_.reset();
        emit comparisonEvaluated();
    }
    if (wasExporting) {
        endExport();
        emit exportCancelled();
    }
    // The sweep, the search and training stop by their flags and keep what they measured.
    cancelSensitivity();
    cancelSearch();
    cancelQat();
    if (wasBusy)
        emit cancelled();
}

std::shared_ptr<RequestState> Session::restart(Slot& slot)
{
    slot.state->cancel = true;
    slot.state->abandon = true;
    slot.state = std::make_shared<RequestState>();
    ++slot.generation;
    return slot.state;
}

void Session::open(const QString& modelPath, const QString& dataPath)
{
    debounce_.stop();
    restart(histogram_);
    restart(imageErrors_);
    // A sweep or a search of the previous model stops, and its results are dropped.
    restart(sweep_);
    stopSensitivity(tr("another model or data set was opened"));
    if (searching_) {
        restart(search_);
        endSearch();
        emit searchFailed(tr("Stopped: another model or data set was opened."));
    }
    if (training_) {
        restart(qat_);
        endQat();
        emit qatFailed(tr("Stopped: another model or data set was opened."));
    }
    auto state = restart(main_);
    busy_ = true;
    loading_ = true;
    progressTimer_.start();
    struct Loaded {
        std::shared_ptr<const SessionSnapshot> snapshot;
        std::shared_ptr<Study> study;
    };
    // The study warns on the worker: the message is queued to the GUI thread (this session
    // outlives its jobs: the destructor waits for them). What it says while opening, the
    // snapshot carries as values; what it says later is emitted as warning().
    const quint64 openNumber = ++opens_;
    auto opened = std::make_shared<std::atomic<bool>>(false);
    auto warn = [this, openNumber, opened](const std::string& message) {
        if (!*opened)
            return;
        postToThreadOf(this, [this, openNumber, text = QString::fromStdString(message)] {
            if (openNumber == loadedOpen_)
                emit warning(text);
        });
    };
    auto work = [state, modelPath, dataPath, warn, opened, images = evaluationImages_,
                                                  budget = cacheBudget_]() -> Loaded {
        state->stage = Loading;
        StudySources sources;
        sources.model = modelPath.toStdString();
        sources.data = dataPath.toStdString();
        sources.evaluationImages = images;
        sources.cacheBudget = budget;
        sources.warn = warn;
        auto study = std::make_shared<Study>(std::move(sources), progressInto(state));
        *opened = true;
        auto snapshot = std::make_shared<SessionSnapshot>();
        snapshot->modelPath = modelPath;
        snapshot->dataPath = dataPath;
        snapshot->graph = study->sharedGraph();
        snapshot->modelConfig = study->modelConfig();
        snapshot->dataset = study->dataset();
        snapshot->preprocess = study->preprocess();
        snapshot->classNames = study->classNames();
        snapshot->labelColumn = QString::fromStdString(study->labelColumn());
        snapshot->labelColumnNote = QString::fromStdString(study->labelColumnNote());
        for (const std::string& warning : study->dataWarnings())
            snapshot->dataWarnings << QString::fromStdString(warning);
        snapshot->evaluationImages = study->evaluationImages();
        snapshot->layers = study->layers();
        snapshot->calibrationPath = QString::fromStdString(study->calibrationPath()->string());
        for (std::size_t i = 0; i < snapshot->evaluationImages; ++i) {
            if (state->cancel)
                throw Cancelled();
            snapshot->thumbnails.push_back(thumbnail(snapshot->dataset->image(i)));
        }
        return {std::move(snapshot), std::move(study)};
    };
    auto loadFailed = [this](const QString& message) {
        loading_ = false;
        emit failed(message);
    };
    runJob(std::move(work), main_, [this, openNumber](Loaded result) {
        loading_ = false;
        loadedOpen_ = openNumber;
        snapshot_ = std::move(result.snapshot);
        study_ = std::move(result.study);
        evaluation_.reset();
        histograms_.reset();
        sensitivity_.reset();
        // B belongs to the previous model's layers and images.
        restart(comparisonSlot_);
        comparison_.reset();
        comparisonHistograms_.reset();
        comparisonConfig_.reset();
        focusLayer_.clear();
        focusChannel_ = -1;
        emit loaded();
    }, loadFailed);
}

void Session::setConfig(const QuantConfig& config)
{
    config_ = config;
    if (!study_)
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

void Session::reevaluate(const QuantConfig& config)
{
    config_ = config;
    if (!study_)
        return;
    debounce_.stop();
    fromScratch_ = true;
    emit evaluationStarted();
    startEvaluation();
}

void Session::startEvaluation()
{
    if (!study_)
        return;
    restart(histogram_);
    restart(imageErrors_);
    auto state = restart(main_);
    busy_ = true;
    progressTimer_.start();
    studyMovedOn_ = false;
    auto work = [state, study = study_, config = config_, fromScratch = std::exchange(fromScratch_, false)]() {
        if (state->cancel)
            throw Cancelled();
        if (fromScratch)
            study->clearQuantizedCache();
        auto evaluation = std::make_shared<EvaluationSnapshot>();
        static_cast<StudyResult&>(*evaluation) = study->evaluate(config, {}, progressInto(state));
        return evaluation;
    };
    runJob(std::move(work), main_, [this](std::shared_ptr<EvaluationSnapshot> evaluation) {
        evaluation->sequence = ++sequence_;
        evaluation_ = std::move(evaluation);
        emit evaluated();
        // The metrics are shown first; the selected layer's histograms follow in their own job.
        requestHistograms();
    });
}

void Session::setFocusLayer(const std::string& layer, int weightChannel)
{
    if (layer == focusLayer_ && weightChannel == focusChannel_ && histograms_)
        return;
    focusLayer_ = layer;
    focusChannel_ = weightChannel;
    requestHistograms();
}

void Session::requestHistograms()
{
    if (!study_ || focusLayer_.empty())
        return;
    auto state = restart(histogram_);
    struct Both {
        std::shared_ptr<HistogramSnapshot> a, b;  // b: under configuration B, while comparing
    };
    auto work = [state, study = study_, config = config_, b = comparisonConfig_, layer = focusLayer_,
                                           channel = focusChannel_]() {
        if (state->cancel)
            throw Cancelled();
        Both both;
        both.a = std::make_shared<HistogramSnapshot>(study->layerHistograms(config, layer, progressInto(state), channel));
        if (b)
            both.b = std::make_shared<HistogramSnapshot>(study->layerHistograms(*b, layer, progressInto(state), channel));
        return both;
    };
    runJob(std::move(work), histogram_, [this](Both histograms) {
        if (histograms.a->layer != focusLayer_ || (histograms.a->weights && histograms.a->weights->channel != focusChannel_))
            return;
        histograms_ = std::move(histograms.a);
        comparisonHistograms_ = std::move(histograms.b);
        emit histogramsReady();
    });
}

void Session::requestImageErrors(std::size_t image)
{
    if (!study_)
        return;
    auto state = restart(imageErrors_);
    // The study's per-image errors are those of its last evaluation; after a sweep or a search
    // that is not the configuration shown, so it is evaluated again first (incrementally).
    std::optional<QuantConfig> shown;
    if (std::exchange(studyMovedOn_, false) && evaluation_)
        shown = evaluation_->config;
    auto work = [state, study = study_, image, shown]() {
        if (state->cancel)
            throw Cancelled();
        if (shown)
            study->evaluate(*shown, {}, progressInto(state));
        auto errors = std::make_shared<ImageErrorSnapshot>();
        errors->image = image;
        errors->layers = study->imageLayerErrors(image);
        return std::shared_ptr<const ImageErrorSnapshot>(std::move(errors));
    };
    runJob(std::move(work), imageErrors_, [this](std::shared_ptr<const ImageErrorSnapshot> errors) { emit imageErrorsReady(errors); });
}

void Session::requestIntegerTrace(const std::string& layer, std::size_t image, const std::vector<std::int64_t>& position)
{
    if (!study_)
        return;
    auto state = restart(trace_);
    auto work = [state, study = study_, config = config_, layer, image, position]() {
        if (state->cancel)
            throw Cancelled();
        return std::make_shared<const IntegerTrace>(study->traceIntegerOutput(config, layer, image, position, progressInto(state)));
    };
    runJob(
        std::move(work), trace_, [this](std::shared_ptr<const IntegerTrace> trace) { emit integerTraceReady(trace); },
        [this, layer](const QString& message) { emit integerTraceFailed(QString::fromStdString(layer), message); });
}

void Session::setComparison(const QuantConfig& b, const QString& name)
{
    if (!study_)
        return;
    comparisonConfig_ = b;
    comparison_.reset();
    auto state = restart(comparisonSlot_);
    auto work = [state, study = study_, a = config_, b, name]() {
        if (state->cancel)
            throw Cancelled();
        auto snapshot = std::make_shared<ComparisonSnapshot>();
        snapshot->name = name;
        snapshot->b = study->evaluate(b, {}, progressInto(state));
        // The study's caches (and so the per-image errors of the Images tab) are of its last
        // evaluation: A is evaluated again so that they are A's, as the window expects.
        study->evaluate(a, {}, progressInto(state));
        return std::shared_ptr<const ComparisonSnapshot>(std::move(snapshot));
    };
    runJob(
        std::move(work), comparisonSlot_,
        [this](std::shared_ptr<const ComparisonSnapshot> comparison) {
            comparison_ = std::move(comparison);
            emit comparisonEvaluated();
            requestHistograms();  // B's histograms of the selected layer
        },
        [this](const QString& message) {
            comparisonConfig_.reset();
            emit comparisonFailed(message);
        });
}

void Session::clearComparison()
{
    restart(comparisonSlot_);
    comparisonConfig_.reset();
    comparison_.reset();
    comparisonHistograms_.reset();
    emit comparisonEvaluated();
}

// ---- exports ------------------------------------------------------------------------------------

namespace {

// What the study wrote, as the window lists it.
void record(const ExportedFiles& written, ExportResult& result)
{
    for (const std::filesystem::path& file : written.files)
        result.files << QString::fromStdString(file.string());
    for (const std::string& w : written.warnings)
        result.warnings << QString::fromStdString(w);
    result.activationEncodings = written.activationEncodings;
    result.weightEncodings = written.weightEncodings;
}

}  // namespace

template <class Work> bool Session::startExport(ExportResult::Kind kind, const QString& path, Work work)
{
    if (!study_ || !snapshot_)
        return false;
    auto state = restart(export_);
    exporting_ = true;
    exportTimer_.start();
    auto job = [state, study = study_, evaluation = evaluation_, config = config_, kind, path, work]() {
        if (state->cancel)
            throw Cancelled();
        QElapsedTimer clock;
        clock.start();
        auto result = std::make_shared<ExportResult>();
        result->kind = kind;
        result->path = path;
        result->config = config;
        state->stage = Exporting;
        work(*study, evaluation, progressInto(state), *result);
        result->milliseconds = double(clock.nsecsElapsed()) / 1e6;
        return std::shared_ptr<const ExportResult>(std::move(result));
    };
    runJob(
        std::move(job), export_,
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
                       [](Study& study, const std::shared_ptr<const EvaluationSnapshot>&, const EvaluationProgress& progress,
                          ExportResult& result) {
                           record(study.exportQdqModel(result.config, result.path.toStdString(), std::nullopt, progress), result);
                       });
}

bool Session::exportEncodings(const QString& path)
{
    return startExport(ExportResult::Encodings, path,
                       [](Study& study, const std::shared_ptr<const EvaluationSnapshot>&, const EvaluationProgress& progress,
                          ExportResult& result) {
                           record(study.exportEncodings(result.config, result.path.toStdString(), progress), result);
                       });
}

bool Session::exportReport(const QString& dir)
{
    return startExport(ExportResult::Report, dir,
                       [](Study& study, const std::shared_ptr<const EvaluationSnapshot>& evaluation,
                          const EvaluationProgress& progress, ExportResult& result) {
                           ReportRequest request;
                           request.integerEngine = ReportRequest::IntegerEngine::IfItRuns;
                           request.current = evaluation.get();
                           WrittenReport report = study.writeReport(result.config, result.path.toStdString(), request, progress);
                           record(report.written, result);
                           result.integerError = QString::fromStdString(report.integerError);
                           if (report.integer)
                               result.integer = std::make_shared<const IntegerEvaluation>(std::move(*report.integer));
                       });
}

bool Session::runIntegerEngine()
{
    return startExport(ExportResult::IntegerEngine, QString(),
                       [](Study& study, const std::shared_ptr<const EvaluationSnapshot>&, const EvaluationProgress& progress,
                          ExportResult& result) {
                           result.integer = std::make_shared<const IntegerEvaluation>(study.runIntegerEngine(result.config, progress));
                       });
}

}  // namespace qe
