#pragma once
// The explorer window: the layer table (configuration and live metrics) on the left with the
// per-layer error chart under it, and the views of the selected layer and of the whole model on
// the right (histograms, layer details, accuracy, image gallery, channels, repairs, graph, the
// layers' sensitivity and the Pareto view of every configuration evaluated). The repair switches
// sit above the table (RepairBar). The configuration lives in one
// ConfigDocument (with its undo history); every view reads the session's snapshots and the
// document, and proposes edits to the document.
//
// One class in several files, by responsibility:
//   main_window.cpp          construction and layout of the panels, the layer selection
//   main_window_menus.cpp    the menus and their actions
//   main_window_files.cpp    opening and saving files: models, images, configurations, drag and
//                            drop, recent files, the title and the question before discarding
//   main_window_results.cpp  showing what the session publishes: metrics, histograms, details
//   main_window_export.cpp   exports, the int8 engine and the screenshots of scripts/screenshot
// The sensitivity map, the Pareto view and the search dialog are views of their own
// (sensitivity_view, pareto_view, search_dialog) that read the session and edit the document.
//   main_window_compare.cpp  the A/B comparison with a second configuration (the Compare menu)
//   main_window_lessons.cpp  Help > Lessons (LessonPanel), showing a lesson's step, presentation mode

#include "channel_range_chart.h"
#include "charts.h"
#include "eval/accuracy.h"
#include "eval/comparison.h"
#include "histogram_chart.h"
#include "quant/config.h"
#include "repair_bar.h"
#include "repair_charts.h"

#include <QElapsedTimer>
#include <QMainWindow>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

class QCheckBox;
class QComboBox;
class QJsonObject;
class QLabel;
class QListView;
class QMenu;
class QProgressBar;
class QPushButton;
class QScrollArea;
class QSpinBox;
class QSortFilterProxyModel;
class QTabWidget;
class QTableView;
class QTextBrowser;
class QToolButton;

namespace qe {

class ConfigDocument;
class GraphView;
class ParetoView;
class QatDialog;
class SearchDialog;
class SensitivityView;
class LessonPanel;
struct LessonStep;
struct LessonTrace;
class PlaygroundView;
class IntegerTraceView;
class ConfusionMatrixWidget;
class GalleryModel;
class LayerTableModel;
class Session;
struct ExportResult;
struct SessionSnapshot;
struct IntegerEvaluation;
struct ModelInputs;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    explicit MainWindow(QWidget* parent = nullptr);
    ~MainWindow() override;
    // Opens a model on a data set, with the configuration file `configPath` (empty: a QDQ model's
    // own quantization, else the built-in W8A8 default). No dialogs.
    void openSession(const QString& modelPath, const QString& dataPath, const QString& configPath = {});
    // For scripts/screenshot: once the default is evaluated, save PNGs of the main views
    // (`path`, and beside it *_details, *_channels, *_accuracy, *_graph, *_images, then, with
    // `withPrecisionViews`, after a sensitivity sweep and a search with the dialog's defaults,
    // *_sensitivity, *_search (the dialog) and *_pareto) and `path`.json, what
    // the summary line says (summary()), then quit. The run is scripted from then on: nobody
    // answers a dialog, so none is shown (see endScriptedRun()).
    void saveScreenshotWhenReady(const QString& path, bool withPrecisionViews = false);
    // For scripts/screenshot --lesson: once the model is evaluated, the lesson file in the
    // lessons panel at `step` (0-based); when the step's evaluation and histograms are shown, a
    // PNG of the window at `path`, then quit (exit 1 when the lesson cannot be opened).
    void screenshotLessonWhenReady(const QString& lessonPath, int step, const QString& path);
    // With saveScreenshotWhenReady (instead of the precision views): then quantization-aware
    // training of `steps` steps from the configuration shown, the dialog at its end (*_qat), and
    // the window on the fine-tuned model, saved as `fineTunedPath` (*_qat_model).
    void screenshotQat(int steps, const QString& fineTunedPath)
    {
        qatShotSteps_ = steps;
        qatShotModel_ = fineTunedPath;
    }

    // The interactive ways in (menus, drag and drop, recent files).
    void openModel(const QString& path);   // asks for the preprocessing once when there is no sidecar
    void openImages(const QString& path);
    bool openConfiguration(const QString& path);
    bool saveConfiguration(const QString& path);
    bool exportMetricsCsv(const QString& path);
    // Exports of the current configuration, run in the background by the session; the result
    // (or the error, naming the file) is shown when they finish. False when nothing is loaded or
    // another export is still running.
    bool exportQuantizedModel(const QString& path);  // QDQ ONNX; layers ONNX cannot express are listed
    bool exportEncodings(const QString& path);       // .json or .csv
    bool exportReport(const QString& dir);           // report.md and charts, with the int8 engine's results
    bool runIntegerEngine();                         // results in the accuracy tab
    // Opens whatever `path` is: a model, a configuration or images.
    void openPath(const QString& path);

    // The configuration explored, its undo history and its saved state.
    ConfigDocument* document() const { return document_; }
    Session* session() const { return session_; }
    LayerTableModel* layerModel() const { return layers_; }
    GraphView* graphView() const { return graph_; }
    QTableView* layerTable() const { return table_; }
    ErrorChart* errorChart() const { return errorChart_; }
    QComboBox* errorModeBox() const { return errorMode_; }
    QLabel* imagesLegend() const { return imagesLegend_; }
    QScrollArea* errorScrollArea() const { return errorScroll_; }  // scrolls the error chart
    HistogramChart* weightHistogram() const { return weightHistogram_; }
    HistogramChart* activationHistogram() const { return activationHistogram_; }
    // The output channel the weight histogram shows (-1: all), and the per-channel range chart.
    QSpinBox* channelPicker() const { return channel_; }
    ChannelRangeChart* channelRangeChart() const { return channelRanges_; }
    // The repair switches above the table, and the Repairs tab's charts of the selected layer.
    RepairBar* repairBar() const { return repairBar_; }
    RepairChart* equalizationChart() const { return equalizationChart_; }
    RepairChart* biasShiftChart() const { return biasShiftChart_; }
    RepairChart* adaRoundChart() const { return adaRoundChart_; }
    QTabWidget* tabs() const { return tabs_; }
    ConfusionMatrixWidget* confusionMatrix() const { return confusion_; }
    ParetoView* paretoView() const { return pareto_; }
    SensitivityView* sensitivityView() const { return sensitivity_; }
    // Tools > Search Mixed Precision: the dialog, made at its first use and kept.
    SearchDialog* showSearchDialog();
    // Tools > Fine-Tune with QAT: the dialog, made at its first use and kept.
    QatDialog* showQatDialog();
    // Opens a fine-tuned model (saved by the QAT dialog) on the images in use with `config`, the
    // configuration it was trained for; the model and configuration shown until then are kept for
    // backToPreviousModel().
    void openFineTunedModel(const QString& path, const QString& dataPath, const QuantConfig& config);
    // File > Back to Previous Model: the model and configuration shown before the fine-tuned one.
    bool backToPreviousModel();
    // Evaluates `images` images from now on, with caches of at most `cacheBudget` bytes (none: a
    // quarter of the machine's memory); Tools > Evaluation Images and Memory..., or --images and
    // --memory-budget. The model and images open again with the configuration kept.
    void setEvaluationImages(int images);
    // The folder of the example models (resources/models) that File > Open Example lists.
    void setExamplesFolder(const QString& folder) { examplesFolder_ = folder; }
    QString examplesFolder() const { return examplesFolder_; }
    // The folder of the built-in lessons (resources/lessons) that Help > Lessons lists.
    void setLessonsFolder(const QString& folder) { lessonsFolder_ = folder; }
    QString lessonsFolder() const { return lessonsFolder_; }
    // Help > Lessons: the panel, made at its first use and kept.
    LessonPanel* showLessonPanel();
    // Shows a lesson step: its model (opened on the images in use unless it is the one shown),
    // its configuration (an edit the student can undo), its layer and its view.
    void applyLessonStep(const LessonStep& step, const QString& lessonTitle);
    // View > Presentation Mode: fonts half as large again in the tables, charts and panels, a
    // high-contrast palette, and during a lesson only the view its step names (for a projector at
    // 1280x720).
    void setPresentationMode(bool on);
    bool presentationMode() const { return presentation_; }
    // The numbers of the Playground and Integer arithmetic views that lesson texts name
    // (playground.*, trace.*); lessonViewsChanged() when they change.
    std::map<std::string, double> lessonViewFacts() const;
    // Brings the tab showing `view` (one of the views in the tabs) to the front.
    void showView(QWidget* view);
    PlaygroundView* playground() const { return playground_; }
    IntegerTraceView* integerTrace() const { return traceView_; }
    // The row of the layer named `name` in the table, -1 when the model has none.
    int layerRow(const std::string& name) const;
    void setEvaluationSettings(int images, std::optional<std::uint64_t> cacheBudget);
    void askEvaluationSettings();
    bool hasPreviousModel() const { return previousModel_.has_value(); }
    GalleryModel* gallery() const { return gallery_; }
    QLabel* integerSummary() const { return integerSummary_; }
    int selectedLayer() const;  // source row, -1 when none

    // What the summary line above the table says, as values: the screenshot's JSON and the tests
    // read these, so they check what a user sees. Empty before the first evaluation.
    struct Summary {
        double top1 = 0, floatTop1 = 0, agreement = 0;
        std::size_t images = 0;
        QString data;             // the images' file or folder name
        QString dataDescription;  // the data set's own description (kind, count, size, labels)
        QString labelColumn;      // the labels CSV column in use ("" for the data set's default)
        QStringList warnings;     // how the images do not fit the model (shown above the line)
        QStringList studyWarnings;  // what the study warned of while it ran (calibrating on the evaluation images)
        double sizeKiB = 0, floatSizeKiB = 0, bitsPerWeight = 0;
    };
    std::optional<Summary> summary() const;
    // summary() as JSON at `path` (with the A/B comparison while there is one): the screenshot's
    // PATH.json, for scripts.
    bool writeSummaryJson(const QString& path) const;
    QLabel* dataWarnings() const { return dataWarnings_; }
    void selectLayer(int row);

    // A/B (main_window_compare.cpp): configuration B, evaluated by the session on its worker and
    // kept while the current configuration (A) is edited; not an edit, so not in the undo history.
    void compareWith(const QuantConfig& b, const QString& name);
    bool compareWithFile(const QString& path);  // before a model has loaded: once it has
    void pinCurrentAsB();
    void clearComparison();
    // The latest A against B, as the views show it; nullopt without B (or before its result).
    std::optional<ConfigComparison> comparison() const;
    QCheckBox* differingOnlyFilter() const { return differingOnly_; }
    QLabel* comparisonSummary() const { return comparisonSummary_; }

signals:
    // Every view shows the latest evaluation (after the session's evaluated(), once the views
    // have been refreshed): what the bench times.
    void viewsUpdated();
    void lessonViewsChanged();  // the playground or the traced value changed (lessonViewFacts)

protected:
    void dragEnterEvent(QDragEnterEvent* event) override;
    void dropEvent(QDropEvent* event) override;
    void closeEvent(QCloseEvent* event) override;

private:
    // main_window.cpp
    void fitRepairBarHeight();  // the repair switches' scroll area: one row of them and its scroll bar
    QWidget* buildHistogramTab();
    QWidget* buildChannelTab();
    QWidget* buildRepairsTab();
    void showRepairs();  // the Repairs tab and bar for the selected layer and the evaluation shown
    QWidget* buildAccuracyTab();
    QWidget* buildImagesTab();
    QWidget* buildGraphTab();
    // Scrolls the error chart to the selected layer's bars (a large model's chart is taller than
    // its panel).
    void scrollErrorChartToSelection();
    // main_window_menus.cpp
    void buildMenus();
    QString saveChartDialog(const QString& name);
    // main_window_files.cpp
    // Gives the document the configuration a newly loaded model starts from: the file asked for,
    // else the model's own quantization (a QDQ model), else the W8A8 default.
    void startConfiguration(const SessionSnapshot& snapshot);
    // The preprocessing question for a model without a sidecar (read as a model first), then
    // the model opens.
    void askPreprocessingAndOpen(const QString& path, const ModelInputs& inputs);
    void updateTitle();
    void addRecent(const QString& path);
    void rebuildRecentMenu();
    QString autosavePath() const;  // where the document autosaves for the open model
    // openSession() starting from a configuration in memory instead of a file; `origin` names it
    // in the undo history ("start: <origin>").
    void openSessionWith(const QString& modelPath, const QString& dataPath, const QuantConfig& config, const QString& origin);
    // Asks before unsaved changes are lost (Save, Discard, Cancel); `why` says what happens.
    bool confirmDiscard(const QString& why = {});
    // main_window_results.cpp
    void showLoaded();
    void showConfigChanged();  // the views that read the configuration itself
    void showProgress(const QString& stage, int done, int total);
    void showRunningTop1(bool quantized, const RunningTop1& top1);
    void showEvaluation();
    void showHistograms();
    void showDetails();
    void showImageErrors(int image, const QList<double>& sqnr);
    void showError(const QString& message);
    void showStudyWarning(const QString& message);
    void showWarnings();  // the banner above the summary line: data warnings and the study's
    // main_window_lessons.cpp
    void showLessonLayerAndView(const std::string& layer, const std::string& view);
    // main_window_export.cpp
    bool startExport(const QString& description, bool started);
    void showExported(std::shared_ptr<const ExportResult> result);
    void showExportError(const QString& path, const QString& message);
    void endExport();
    void updateExportActions();
    void showIntegerResults();
    // The screenshots of the sensitivity map, the search dialog and the Pareto view, then quits.
    void shootPrecisionViews(const QString& base, std::shared_ptr<bool> ok);
    void shootQat(const QString& base, std::shared_ptr<bool> ok);
    // main_window_compare.cpp
    void buildComparisonWidgets();
    void buildCompareMenu();
    // What the error chart's mode box and the Images tab's legend say: while comparing, the chart
    // draws A's and B's accumulated error (no isolated bars) and the labels name both predictions.
    static QString errorModeName(int mode, bool comparing);
    static QString imagesLegendText(bool comparing);
    void showComparison();
    void showComparisonHistograms();
    QJsonObject comparisonJson() const;  // empty without a comparison
    // In a scripted run, what a modal dialog would ask or say (an error, "save first?") goes to
    // stderr instead and the program exits with code 2; returns whether it did. Outside a
    // scripted run it does nothing and returns false: the caller shows its dialog.
    bool endScriptedRun(const QString& message);
    // In a scripted run, a note on stderr (the run goes on).
    void noteScripted(const QString& message) const;

    Session* session_;
    ConfigDocument* document_;
    LayerTableModel* layers_;
    QSortFilterProxyModel* sorted_;
    QTableView* table_;
    ErrorChart* errorChart_;
    QComboBox* errorMode_;
    QScrollArea* errorScroll_;
    HistogramChart* weightHistogram_;
    HistogramChart* activationHistogram_;
    QCheckBox* logScale_;
    QSpinBox* channel_;
    ChannelRangeChart* channelRanges_;
    RepairBar* repairBar_;
    RepairChart* equalizationChart_;
    RepairChart* biasShiftChart_;
    RepairChart* adaRoundChart_;
    QTextBrowser* details_;
    QLabel* accuracySummary_;
    QLabel* integerSummary_;
    QPushButton* runIntegerEngine_;
    QLabel* headline_;
    QLabel* dataWarnings_;  // above the headline while the images do not fit the model
    ConfusionMatrixWidget* confusion_;
    GalleryModel* gallery_;
    QListView* galleryView_;
    QCheckBox* changedOnly_;
    ImageErrorChart* imageErrors_;
    GraphView* graph_;
    SensitivityView* sensitivity_;
    ParetoView* pareto_;
    PlaygroundView* playground_;
    IntegerTraceView* traceView_;
    SearchDialog* searchDialog_ = nullptr;
    QatDialog* qatDialog_ = nullptr;
    QAction* backToPrevious_ = nullptr;
    QTabWidget* tabs_;
    QProgressBar* progress_;
    QProgressBar* exportProgress_;
    QToolButton* cancel_;
    QLabel* timing_;
    QLabel* comparisonLine_ = nullptr;     // under the headline while comparing
    QLabel* comparisonSummary_ = nullptr;  // in the accuracy tab while comparing
    QCheckBox* differingOnly_ = nullptr;   // the Images tab's A/B filter
    QLabel* imagesLegend_ = nullptr;       // how to read the Images tab's labels and frames
    QString comparisonName_, pendingComparePath_;
    QMenu* recentMenu_;
    QMenu* examplesMenu_;
    QString examplesFolder_, lessonsFolder_;
    LessonPanel* lessonPanel_ = nullptr;
    // A lesson step's layer and view, shown once the step's model has loaded.
    std::string pendingLessonLayer_, pendingLessonView_;
    std::unique_ptr<LessonTrace> lessonTrace_;  // the value the step traces, set with its layer
    std::string lessonView_;  // the view the lesson's current step shows ("" outside a lesson)
    bool presentation_ = false;
    QAction* presentationAction_ = nullptr;
    QScrollArea* repairScroll_ = nullptr;
    QWidget* errorPanel_ = nullptr;  // the per-layer error chart left of the views
    void showPresentationTabs();  // every tab, or only the lesson's view in presentation mode
    QList<QAction*> exportActions_;  // enabled while a model is loaded and no export runs

    QString modelPath_, dataPath_;
    QString pendingConfigPath_;  // the configuration to start from once the model has loaded
    // ... or one in memory (openSessionWith), and what the undo history calls it
    std::optional<QuantConfig> pendingConfig_;
    QString pendingConfigOrigin_;
    // What openFineTunedModel() replaced, for backToPreviousModel().
    struct PreviousModel {
        QString modelPath, dataPath;
        QuantConfig config;
    };
    std::optional<PreviousModel> previousModel_;
    // What previousModel_ becomes when the model being opened has loaded.
    std::optional<PreviousModel> previousOnLoad_;
    QStringList studyWarnings_;  // the session's warning()s for the loaded model
    // The running evaluation's top-1 so far, with its 95% interval ("" before its first batch):
    // shown in the status bar beside the progress, and in the summary line until a first result.
    QString runningTop1_;
    // While other images load for the same model: the layers the configuration was made for.
    std::optional<std::set<std::string>> keepConfigurationFor_;
    std::shared_ptr<const IntegerEvaluation> integer_;  // the int8 engine's last results ...
    QuantConfig integerConfig_;                         // ... and the configuration they belong to
    QString exportDescription_;                         // what the running export does
    bool integerRunning_ = false;                       // the running export is the int8 engine
    bool sweepShot_ = false;    // the screenshots' sensitivity map is taken
    int qatShotSteps_ = 0;      // screenshotQat()
    QString qatShotModel_;
    // Since the last change, for the status bar's timing: a monotonic clock (the wall clock's
    // milliseconds could put a run's time 1 ms above a timer started before it).
    QElapsedTimer editClock_;
    bool scripted_ = false;     // --screenshot: no dialogs, errors end the run (endScriptedRun)
};

}  // namespace qe
