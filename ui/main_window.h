#pragma once
// The explorer window: the layer table (configuration and live metrics) on the left with the
// per-layer error chart under it, and the views of the selected layer and of the whole model on
// the right (histograms, layer details, accuracy, image gallery). Every view reads the session's
// snapshots; every configuration change goes through the undo stack.

#include "charts.h"
#include "quant/config.h"

#include <QMainWindow>

#include <memory>

class QCheckBox;
class QComboBox;
class QLabel;
class QListView;
class QMenu;
class QProgressBar;
class QPushButton;
class QSortFilterProxyModel;
class QTabWidget;
class QTableView;
class QTextBrowser;
class QToolButton;
class QUndoStack;

namespace qe {

class ConfusionMatrixWidget;
class GalleryModel;
class LayerTableModel;
class Session;
struct ExportResult;
struct IntegerEvaluation;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    explicit MainWindow(QWidget* parent = nullptr);
    ~MainWindow() override;
    // Opens a model on a data set, with the configuration file `configPath` (empty: a QDQ model's
    // own quantization, else the built-in W8A8 default). No dialogs.
    void openSession(const QString& modelPath, const QString& dataPath, const QString& configPath = {});
    // For scripts/screenshot: once the default is evaluated, save PNGs of the main views
    // (`path`, and beside it *_accuracy.png, *_images.png, *_details.png), then quit.
    void saveScreenshotWhenReady(const QString& path);

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

    // A configuration change as the user makes it: recorded for undo, then applied.
    void changeConfig(const QuantConfig& config, const QString& description);
    QUndoStack* undoStack() const { return undo_; }
    Session* session() const { return session_; }
    LayerTableModel* layerModel() const { return layers_; }
    QTableView* layerTable() const { return table_; }
    ErrorChart* errorChart() const { return errorChart_; }
    HistogramChart* weightHistogram() const { return weightHistogram_; }
    HistogramChart* activationHistogram() const { return activationHistogram_; }
    QLabel* integerSummary() const { return integerSummary_; }
    int selectedLayer() const;  // source row, -1 when none
    void selectLayer(int row);

signals:
    // Every view shows the latest evaluation (after the session's evaluated(), once the views
    // have been refreshed): what the bench times.
    void viewsUpdated();

protected:
    void dragEnterEvent(QDragEnterEvent* event) override;
    void dropEvent(QDropEvent* event) override;
    void closeEvent(QCloseEvent* event) override;

private:
    friend class ConfigCommand;
    void applyConfig(const QuantConfig& config);  // shows it and starts its evaluation
    void buildMenus();
    QWidget* buildHistogramTab();
    QWidget* buildAccuracyTab();
    QWidget* buildImagesTab();
    void showLoaded();
    void showEvaluation();
    void showHistograms();
    void showDetails();
    void showImageErrors(int image, const QList<double>& sqnr);
    void showError(const QString& message);
    bool startExport(const QString& description, bool started);
    void showExported(std::shared_ptr<const ExportResult> result);
    void showExportError(const QString& path, const QString& message);
    void endExport();
    void showIntegerResults();
    void updateExportActions();
    void showProgress(const QString& stage, int done, int total);
    void updateTitle();
    void addRecent(const QString& path);
    void rebuildRecentMenu();
    void autosave();
    bool confirmDiscard();
    QString saveChartDialog(const QString& name);
    QStringList layerNames() const;

    Session* session_;
    LayerTableModel* layers_;
    QSortFilterProxyModel* sorted_;
    QTableView* table_;
    QUndoStack* undo_;
    ErrorChart* errorChart_;
    QComboBox* errorMode_;
    HistogramChart* weightHistogram_;
    HistogramChart* activationHistogram_;
    QCheckBox* logScale_;
    QTextBrowser* details_;
    QLabel* accuracySummary_;
    QLabel* integerSummary_;
    QPushButton* runIntegerEngine_;
    QLabel* headline_;
    ConfusionMatrixWidget* confusion_;
    HistoryChart* history_;
    GalleryModel* gallery_;
    QListView* galleryView_;
    QCheckBox* changedOnly_;
    ImageErrorChart* imageErrors_;
    QTabWidget* tabs_;
    QProgressBar* progress_;
    QProgressBar* exportProgress_;
    QToolButton* cancel_;
    QLabel* timing_;
    QMenu* recentMenu_;
    QList<QAction*> exportActions_;  // enabled while a model is loaded and no export runs

    QString modelPath_, dataPath_, configPath_, pendingConfigPath_;
    QString lastEditDescription_;
    QList<HistoryChart::Entry> historyEntries_;
    QList<QuantConfig> historyConfigs_;
    std::shared_ptr<const IntegerEvaluation> integer_;  // the int8 engine's last results ...
    QuantConfig integerConfig_;                         // ... and the configuration they belong to
    QString exportDescription_;                         // what the running export does
    bool integerRunning_ = false;                       // the running export is the int8 engine
    qint64 editStartedNs_ = 0;  // when the last change was made, for the status bar's timing
};

}  // namespace qe
