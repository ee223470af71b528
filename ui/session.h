#pragma once
// The GUI's one door into core/: owns the Study (core/study: the model, the data sets, the
// calibration and the evaluator, the same steps the CLI runs), runs every heavy step on a worker
// thread and publishes immutable snapshots. Widgets only read snapshots. The configuration it
// evaluates is given to it (in the window, by the ConfigDocument, which owns it); the session
// keeps that value only to hand it to its jobs.
//
// All core work runs on one private single-thread pool, so the study (which keeps caches and
// is not thread-safe) is used by one job at a time, in the order the jobs were asked for. The
// evaluator's own loops still use both cores. Each request gets its own cancellation flag and
// progress counters; a newer request cancels the older one, and results of a superseded request
// are dropped, so the window always shows the latest thing the user asked for. Workers never touch
// QObjects: progress is read from atomics by a timer on the GUI thread.

#include "study/precision_search.h"
#include "study/sensitivity.h"
#include "study/study.h"
#include "train/qat.h"

#include <QElapsedTimer>
#include <QFuture>
#include <QImage>
#include <QObject>
#include <QString>
#include <QStringList>
#include <QThreadPool>
#include <QTimer>
#include <QVector>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace qe {

// Everything a view needs after a model and data set are loaded. Shared, never mutated.
struct SessionSnapshot {
    QString modelPath;
    QString dataPath;
    QString calibrationPath;  // the training split beside the data, else the data itself
    std::shared_ptr<const Graph> graph;
    std::shared_ptr<const Dataset> dataset;
    Preprocess preprocess;
    std::vector<QuantLayer> layers;        // the quantizable layers in graph order
    std::vector<std::string> classNames;   // from the preprocessing sidecar, else the data set
    std::size_t evaluationImages = 0;      // the first images of the data set, the ones measured
    QVector<QImage> thumbnails;            // of the evaluation images, for the gallery
    std::optional<QuantConfig> modelConfig;  // a QDQ model's own quantization
    QString labelColumn;      // the labels CSV column in use ("" for the data set's default)
    QString labelColumnNote;  // why the study chose it, when it did
    QStringList dataWarnings; // how the images do not fit the model (Study::dataWarnings)
    QString className(int index) const;  // its name, else "class N"; "?" for a missing label
    std::set<std::string> layerNames() const;  // the names a configuration for this model may use
};

// The study's result for one configuration, numbered in the order the window published them.
struct EvaluationSnapshot : StudyResult {
    quint64 sequence = 0;  // increases with every published evaluation
};

using HistogramSnapshot = LayerHistograms;

// Configuration B of an A/B comparison: evaluated once, when it is chosen, on the same images as
// A, and kept while A (the configuration being edited) changes.
struct ComparisonSnapshot {
    QString name;  // what the user chose: a file's name, "pinned", a configuration tried
    StudyResult b;
};

// The accumulated error at every layer for one evaluation image.
struct ImageErrorSnapshot {
    std::size_t image = 0;
    std::vector<ErrorStats> layers;
};

// What an export job wrote (or, for the int8 engine, measured) for one configuration.
struct ExportResult {
    enum Kind { QdqModel, Encodings, Report, IntegerEngine };
    Kind kind = QdqModel;
    QString path;              // the file or folder asked for
    QuantConfig config;        // the configuration exported (the one current when it was asked for)
    QStringList files;         // every file written
    QStringList warnings;      // layers written in float in the QDQ model, and why
    std::size_t activationEncodings = 0, weightEncodings = 0;  // weight counts weights and biases
    std::shared_ptr<const IntegerEvaluation> integer;  // the report's and the int8 engine's results
    QString integerError;      // why the report has no int8 engine results
    double milliseconds = 0;
};

// The state a worker shares with the GUI thread.
struct RequestState {
    std::atomic<bool> cancel{false};
    // Nobody wants the result any more (a new generation, the session closing): stronger than
    // cancel, which training answers with its best checkpoint; abandoned, it stops at once.
    std::atomic<bool> abandon{false};
    std::atomic<std::size_t> done{0}, total{0};
    std::atomic<int> stage{0};  // an index into session_jobs::kStageNames
    // The core's own words for a stage the list does not name (a repair's "AdaRound layer 2 of 5
    // (/conv2/Conv): rounding"), when `stage` is session_jobs::Detail.
    mutable std::mutex detailMutex;
    std::string detail;
    // Top-1 as the images stream in, and of which model (float reference or quantized), under
    // detailMutex; scored stays 0 until the first batch of labelled images.
    RunningTop1 top1;
    bool top1OfQuantized = false;
};

// The sensitivity sweep as far as it has gone: every layer measured so far against the base
// configuration it started from. A new snapshot after each layer; never mutated once published.
struct SensitivitySnapshot {
    QuantConfig base;              // what "all but this" quantizes, and whose schemes the widths use
    SensitivityOptions options;    // the widths measured
    SensitivityResult result;      // its layers in the order measured (the model's)
    std::size_t layersToMeasure = 0;
    bool running = false;          // more layers are coming
    QString stopped;               // why it stopped early ("cancelled", or the error), "" otherwise
};

// Values a worker hands to the GUI thread as it makes them (search candidates, as the search
// evaluates them): pushed by the worker, taken by a timer on the GUI thread. The values are
// moved across, never shared.
template <class T> class Inbox {
public:
    void push(T value)
    {
        const std::lock_guard lock(mutex_);
        items_.push_back(std::move(value));
    }
    std::vector<T> take()
    {
        const std::lock_guard lock(mutex_);
        return std::exchange(items_, {});
    }

private:
    std::mutex mutex_;
    std::vector<T> items_;
};

class Session : public QObject {
    Q_OBJECT
public:
    // How many images are evaluated unless the user says otherwise (setEvaluationImages).
    static constexpr std::size_t kEvaluationImages = 1000;
    // Edits closer together than this are coalesced into one evaluation; the first edit after a
    // quiet moment starts at once, so a single change is not delayed.
    static constexpr int kDebounceMs = 100;

    explicit Session(QObject* parent = nullptr);
    ~Session() override;

    // Loads the model, the images and a calibration set on the worker; emits loaded() or failed().
    // The previous session stays intact until the new one has loaded completely.
    void open(const QString& modelPath, const QString& dataPath);
    // The configuration to evaluate, in the background (debounced); emits evaluated(). Histograms
    // and exports use the latest one given.
    void setConfig(const QuantConfig& config);
    const QuantConfig& config() const { return config_; }
    // Evaluates `config` again from scratch (F5), at once: the previous run's caches are dropped,
    // so every layer is recomputed even when nothing changed.
    void reevaluate(const QuantConfig& config);
    // The layer whose histograms the views show, and the output channel of its weight histogram
    // (-1: all); they follow every evaluation and a change of layer or channel.
    void setFocusLayer(const std::string& layer, int weightChannel = -1);
    // Per-layer errors of one evaluation image; emits imageErrorsReady().
    void requestImageErrors(std::size_t image);
    // One output value of an integer layer traced through the int8 engine's arithmetic under the
    // current configuration (Study::traceIntegerOutput); emits integerTraceReady() or
    // integerTraceFailed(). A newer request replaces a running one.
    void requestIntegerTrace(const std::string& layer, std::size_t image, const std::vector<std::int64_t>& position);
    // Exports of the current configuration, in the background after whatever is queued before
    // them; each emits exported() or exportFailed(). A configuration change does not stop them
    // (they keep the configuration they were asked for); a newer export replaces a running one,
    // so the window asks for one at a time. False when no model is loaded.
    bool exportQdqModel(const QString& path);   // QDQ ONNX (opset >= 13), written atomically
    bool exportEncodings(const QString& path);  // .json or .csv, by the extension
    // report.md and its PNG charts in `dir`, with the int8 engine run on the evaluation images.
    bool exportReport(const QString& dir);
    // The int8 engine on the evaluation images beside the simulation (nothing is written).
    bool runIntegerEngine();
    bool isExporting() const { return exporting_; }

    // The sensitivity of every layer (core/study/sensitivity.h) against `base`, measured one
    // layer per job, so that an edit made meanwhile is evaluated after the layer in progress
    // instead of after the whole sweep. The sweep keeps `base` (edits do not change what it
    // measures, nor cancel it); a new sweep replaces a running one. Emits sensitivityUpdated()
    // after each layer and when it stops. False when no model is loaded or one is loading.
    bool startSensitivitySweep(const QuantConfig& base, const SensitivityOptions& options = {});
    void cancelSensitivity();  // keeps the layers done
    std::shared_ptr<const SensitivitySnapshot> sensitivity() const { return sensitivity_; }

    // A mixed-precision search from `base` (core/study/precision_search.h), in one job: edits made
    // meanwhile are evaluated when it ends. Emits searchCandidates() as candidates are evaluated,
    // then searchFinished() (also when cancelled: the result keeps what was evaluated) or
    // searchFailed(). False when no model is loaded, one is loading or a search is running.
    bool startSearch(const QuantConfig& base, const SearchOptions& options);
    void cancelSearch();
    bool isSearching() const { return searching_; }

    // Configuration B of an A/B comparison, evaluated on the worker (emits comparisonEvaluated(),
    // or comparisonFailed()); the selected layer's histograms then come under both. Clearing
    // drops it (emits comparisonEvaluated() with no comparison). B stays while A changes.
    void setComparison(const QuantConfig& b, const QString& name);
    void clearComparison();
    bool isComparing() const { return comparisonConfig_.has_value(); }
    std::shared_ptr<const ComparisonSnapshot> comparison() const { return comparison_; }
    // B's histograms of the layer in histograms(), while B is set.
    std::shared_ptr<const HistogramSnapshot> comparisonHistograms() const { return comparisonHistograms_; }

    // Quantization-aware training (core/train/qat.h) of the loaded model from `config`, in one
    // job: edits made meanwhile are evaluated when it ends. Emits qatProgress() and qatCheckpoint()
    // as it trains, then qatFinished() (also when cancelled: the result then has the weights of the
    // best checkpoint so far) or qatFailed(). The result is not adopted: the window saves it and
    // opens it as a model of its own. False when no model is loaded, one is loading or training runs.
    bool startQat(const QuantConfig& config, const QatOptions& options);
    void cancelQat();
    bool isTraining() const { return training_; }

    // Cancels whatever runs or waits: exports, the sweep, the search, training and B included.
    void cancel();
    bool isBusy() const { return busy_; }
    // A model is being opened: the sweep, the search and training wait until it has loaded
    // (started now, they would work on the model that is about to go).
    bool isLoading() const { return loading_; }
    // The number of evaluation images the next open() uses (at least 1; fewer when the data has
    // fewer). Every cached activation is kept per image, so this sets the caches' memory.
    void setEvaluationImages(std::size_t images) { evaluationImages_ = std::max<std::size_t>(1, images); }
    std::size_t evaluationImages() const { return evaluationImages_; }
    // The most the evaluation may hold from the next open() on (none: a quarter of the
    // machine's memory, QuantEvaluator::defaultCacheBudget).
    void setCacheBudget(std::optional<std::uint64_t> bytes) { cacheBudget_ = bytes; }
    std::optional<std::uint64_t> cacheBudget() const { return cacheBudget_; }

    std::shared_ptr<const SessionSnapshot> snapshot() const { return snapshot_; }
    std::shared_ptr<const EvaluationSnapshot> evaluation() const { return evaluation_; }
    std::shared_ptr<const HistogramSnapshot> histograms() const { return histograms_; }

signals:
    void loaded();
    void evaluationStarted();
    void progress(const QString& stage, int done, int total);
    // The evaluation's top-1 so far (about every 100 ms while images stream in): of the float
    // reference while it is computed, then of the quantized model.
    void runningTop1(bool quantized, qe::RunningTop1 top1);
    void evaluated();
    void histogramsReady();
    void imageErrorsReady(std::shared_ptr<const qe::ImageErrorSnapshot> errors);
    void integerTraceReady(std::shared_ptr<const qe::IntegerTrace> trace);
    void integerTraceFailed(const QString& layer, const QString& message);
    void cancelled();
    void failed(const QString& message);
    // A warning the study gives while it works (calibrating on the evaluation images), for the
    // loaded model. Those it gives while opening are values of the snapshot instead
    // (dataWarnings, labelColumnNote).
    void warning(const QString& message);
    void exportProgress(const QString& stage, int done, int total);
    void exported(std::shared_ptr<const qe::ExportResult> result);
    void exportFailed(const QString& path, const QString& message);
    void exportCancelled();
    void sensitivityUpdated();
    void searchProgress(const QString& stage, int done, int total);
    void searchCandidates(const std::vector<qe::SearchCandidate>& candidates);  // newly evaluated ones
    void searchFinished(std::shared_ptr<const qe::SearchResult> result);
    void searchFailed(const QString& message);
    void comparisonEvaluated();
    void comparisonFailed(const QString& message);
    // Training's stage ("Training", "Measuring step 200", ...), the steps done of all, and the
    // mean loss of the steps since the previous qatProgress() (NaN when none ran meanwhile).
    void qatProgress(const QString& stage, int step, int steps, double loss);
    void qatCheckpoint(const qe::QatCheckpoint& checkpoint);  // held-out top-1, in step order
    void qatFinished(std::shared_ptr<const qe::QatResult> result);
    void qatFailed(const QString& message);

private:
    struct Slot {
        std::shared_ptr<RequestState> state = std::make_shared<RequestState>();
        quint64 generation = 0;
    };
    // Cancels the slot's running request and starts a new one; returns its state.
    std::shared_ptr<RequestState> restart(Slot& slot);
    // Runs work() on the worker and delivers its result (or failure) on the GUI thread, unless a
    // newer request in the same slot has replaced this one.
    template <class Work, class OnResult> void runJob(Work work, Slot& slot, OnResult onResult);
    template <class Work, class OnResult, class OnFailure>
    void runJob(Work work, Slot& slot, OnResult onResult, OnFailure onFailure);
    // Runs `work(study, evaluation, progress, state, result)` on the worker for the current
    // configuration, calibrated first when it needs calibration.
    template <class Work> bool startExport(ExportResult::Kind kind, const QString& path, Work work);
    void endExport();
    void startEvaluation();
    void requestHistograms();  // of the focus layer under the current configuration
    void measureNextLayer();   // the sweep's next job
    void stopSensitivity(const QString& why);
    void deliverSearchCandidates();  // those the search evaluated since the last delivery
    void endSearch();
    void deliverQatProgress();  // the step counts, the loss and the checkpoints since the last delivery
    void endQat();

    std::shared_ptr<const SessionSnapshot> snapshot_;
    std::shared_ptr<const EvaluationSnapshot> evaluation_;
    std::shared_ptr<const HistogramSnapshot> histograms_;
    std::shared_ptr<const ComparisonSnapshot> comparison_;
    std::shared_ptr<const HistogramSnapshot> comparisonHistograms_;
    std::optional<QuantConfig> comparisonConfig_;  // B, while comparing (also before its result)
    std::shared_ptr<Study> study_;  // used by the worker only
    QuantConfig config_;
    std::string focusLayer_;
    int focusChannel_ = -1;
    quint64 sequence_ = 0;
    // Which open() the study in use came from: warnings of a study since replaced are dropped.
    quint64 opens_ = 0, loadedOpen_ = 0;
    bool busy_ = false;
    bool loading_ = false;
    std::size_t evaluationImages_ = kEvaluationImages;
    std::optional<std::uint64_t> cacheBudget_;
    bool fromScratch_ = false;  // the next evaluation drops the previous run's caches first
    bool exporting_ = false;
    // A sweep or a search has evaluated other configurations since the last evaluation, so the
    // study's per-image errors no longer belong to the configuration shown.
    bool studyMovedOn_ = false;

    Slot main_;        // loading and evaluation
    Slot histogram_;   // histograms on a change of the focus layer
    Slot imageErrors_;
    Slot trace_;       // the Integer arithmetic view's traced value
    Slot export_;      // exports and the int8 engine
    Slot sweep_;       // the sensitivity sweep, a layer per job
    Slot search_;      // the mixed-precision search
    std::shared_ptr<const SensitivitySnapshot> sensitivity_;
    std::shared_ptr<Inbox<SearchCandidate>> searchInbox_;
    bool searching_ = false;
    QTimer searchTimer_;  // the search's progress and candidates
    // Quantization-aware training: the losses of the steps since the last delivery and the
    // checkpoints, from the worker to the GUI thread.
    struct QatLive {
        std::mutex mutex;
        double lossSum = 0;
        int losses = 0;
        Inbox<QatCheckpoint> checkpoints;
    };
    Slot qat_;
    std::shared_ptr<QatLive> qatLive_;
    bool training_ = false;
    QTimer qatTimer_;
    Slot comparisonSlot_;  // configuration B
    QTimer progressTimer_;
    QTimer exportTimer_;  // the export slot's progress
    QTimer debounce_;
    QElapsedTimer sinceLastChange_;
    QThreadPool pool_;  // one thread: the evaluator's jobs run one at a time, in order
};

}  // namespace qe

Q_DECLARE_METATYPE(std::shared_ptr<const qe::ImageErrorSnapshot>)
Q_DECLARE_METATYPE(std::shared_ptr<const qe::IntegerTrace>)
Q_DECLARE_METATYPE(std::shared_ptr<const qe::ExportResult>)
Q_DECLARE_METATYPE(std::shared_ptr<const qe::SearchResult>)
Q_DECLARE_METATYPE(std::shared_ptr<const qe::QatResult>)
Q_DECLARE_METATYPE(qe::QatCheckpoint)
Q_DECLARE_METATYPE(qe::RunningTop1)
