#include "main_window.h"

#include "common/atomic_file.h"
#include "common/error.h"
#include "confusion_matrix_widget.h"
#include "gallery_model.h"
#include "layer_details.h"
#include "layer_edit_delegate.h"
#include "layer_table_model.h"
#include "preprocess_dialog.h"
#include "session.h"

#include <QAction>
#include <QApplication>
#include <QCheckBox>
#include <QCloseEvent>
#include <QComboBox>
#include <QDateTime>
#include <QDesktopServices>
#include <QDir>
#include <QDragEnterEvent>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QListView>
#include <QMenu>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QProgressBar>
#include <QPushButton>
#include <QSettings>
#include <QSortFilterProxyModel>
#include <QSplitter>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTabWidget>
#include <QTableView>
#include <QTextBrowser>
#include <QTimer>
#include <QToolButton>
#include <QUndoCommand>
#include <QUndoStack>
#include <QUrl>
#include <QVBoxLayout>

#include <cmath>
#include <set>

namespace qe {

namespace {

constexpr int kMaxRecentFiles = 10;

const QStringList kImageSuffixes = {"png", "jpg", "jpeg", "bmp"};

bool looksLikeImages(const QFileInfo& file)
{
    return file.isDir() || kImageSuffixes.contains(file.suffix().toLower()) || file.fileName().contains("-ubyte") ||
           file.suffix() == "bin";
}

// Which kind of JSON document `path` is, by its "format" key.
QString jsonFormat(const QString& path)
{
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly))
        return {};
    const QByteArray head = file.read(4096);
    if (head.contains("quantexplorer-preprocess"))
        return QStringLiteral("preprocess");
    return QStringLiteral("config");
}

QString percent(double fraction)
{
    return QString::number(100.0 * fraction, 'f', 2) + '%';
}

}  // namespace

// One configuration change, for the undo stack. Holds the whole configuration before and after:
// configurations are small values, and whole snapshots cannot drift out of step with the edits.
class ConfigCommand : public QUndoCommand {
public:
    ConfigCommand(MainWindow* window, QuantConfig before, QuantConfig after, const QString& text)
        : QUndoCommand(text), window_(window), before_(std::move(before)), after_(std::move(after))
    {
    }
    void redo() override { window_->applyConfig(after_); }
    void undo() override { window_->applyConfig(before_); }

private:
    MainWindow* window_;
    QuantConfig before_, after_;
};

MainWindow::MainWindow(QWidget* parent)
    : QMainWindow(parent), session_(new Session(this)), layers_(new LayerTableModel(this)),
      sorted_(new QSortFilterProxyModel(this)), table_(new QTableView(this)), undo_(new QUndoStack(this)),
      errorChart_(new ErrorChart(layers_, this)), errorMode_(new QComboBox(this)),
      weightHistogram_(new HistogramChart(tr("weight_histogram"), this)),
      activationHistogram_(new HistogramChart(tr("activation_histogram"), this)), logScale_(new QCheckBox(tr("Log scale"), this)),
      details_(new QTextBrowser(this)), accuracySummary_(new QLabel(this)), integerSummary_(new QLabel(this)),
      runIntegerEngine_(new QPushButton(tr("Run int8 engine"), this)), headline_(new QLabel(this)),
      confusion_(new ConfusionMatrixWidget(this)), history_(new HistoryChart(this)), gallery_(new GalleryModel(this)),
      galleryView_(new QListView(this)), changedOnly_(new QCheckBox(tr("Only images whose prediction changed"), this)),
      imageErrors_(new ImageErrorChart(this)), tabs_(new QTabWidget(this)), progress_(new QProgressBar(this)),
      exportProgress_(new QProgressBar(this)),
      cancel_(new QToolButton(this)), timing_(new QLabel(this)), recentMenu_(nullptr)
{
    resize(1440, 900);
    setAcceptDrops(true);
    updateTitle();

    // The layer table: sorted through a proxy (by the raw numbers), edited in place.
    sorted_->setSourceModel(layers_);
    sorted_->setSortRole(LayerTableModel::MetricRole);
    table_->setModel(sorted_);
    table_->setItemDelegate(new LayerEditDelegate(table_));
    table_->setSelectionBehavior(QAbstractItemView::SelectRows);
    table_->setSelectionMode(QAbstractItemView::ExtendedSelection);
    table_->setEditTriggers(QAbstractItemView::DoubleClicked | QAbstractItemView::EditKeyPressed | QAbstractItemView::SelectedClicked);
    table_->setSortingEnabled(true);
    table_->sortByColumn(LayerTableModel::Name, Qt::AscendingOrder);  // graph order
    table_->verticalHeader()->hide();
    table_->setAlternatingRowColors(true);
    table_->horizontalHeader()->setSectionsMovable(true);
    table_->horizontalHeader()->setContextMenuPolicy(Qt::CustomContextMenu);
    for (int column : {LayerTableModel::WeightShape, LayerTableModel::Mse, LayerTableModel::IsolatedMse, LayerTableModel::RoundingNoise})
        table_->setColumnHidden(column, true);
    // Right-click on the header: choose the columns.
    connect(table_->horizontalHeader(), &QWidget::customContextMenuRequested, this, [this](const QPoint& pos) {
        QMenu menu(this);
        for (int column = 0; column < LayerTableModel::ColumnCount; ++column) {
            QAction* action = menu.addAction(layers_->headerData(column, Qt::Horizontal, Qt::DisplayRole).toString());
            action->setCheckable(true);
            action->setChecked(!table_->isColumnHidden(column));
            connect(action, &QAction::toggled, this, [this, column](bool on) { table_->setColumnHidden(column, !on); });
        }
        menu.exec(table_->horizontalHeader()->mapToGlobal(pos));
    });
    layers_->setEditScope([this](int row) {
        std::vector<int> rows;
        for (const QModelIndex& index : table_->selectionModel()->selectedRows())
            rows.push_back(sorted_->mapToSource(index).row());
        if (std::find(rows.begin(), rows.end(), row) == rows.end())
            return std::vector<int>{row};
        std::sort(rows.begin(), rows.end());
        return rows;
    });
    connect(layers_, &LayerTableModel::configEdited, this, &MainWindow::changeConfig);
    connect(layers_, &LayerTableModel::editRejected, this, [this](const QString& message) {
        statusBar()->showMessage(tr("Not applied: %1").arg(message), 8000);
    });
    connect(table_->selectionModel(), &QItemSelectionModel::currentRowChanged, this, [this] {
        const int row = selectedLayer();
        errorChart_->setSelectedLayer(row);
        if (row >= 0) {
            weightHistogram_->setHistogram(std::nullopt, tr("Weights of %1 ...").arg(QString::fromStdString(layers_->layerName(row))));
            activationHistogram_->setHistogram(std::nullopt, tr("Activations of %1 ...").arg(QString::fromStdString(layers_->layerName(row))));
            session_->setFocusLayer(layers_->layerName(row));
        }
        showDetails();
    });

    // Left: headline, table, error chart.
    headline_->setTextFormat(Qt::RichText);
    headline_->setWordWrap(true);
    QFont headlineFont = headline_->font();
    headlineFont.setPointSizeF(headlineFont.pointSizeF() * 1.15);
    headline_->setFont(headlineFont);
    auto* tablePanel = new QWidget(this);
    auto* tableLayout = new QVBoxLayout(tablePanel);
    tableLayout->setContentsMargins(4, 4, 4, 0);
    tableLayout->addWidget(headline_);
    tableLayout->addWidget(table_);

    auto* errorPanel = new QWidget(this);
    auto* errorLayout = new QVBoxLayout(errorPanel);
    errorLayout->setContentsMargins(4, 0, 4, 4);
    auto* errorBar = new QHBoxLayout;
    errorMode_->addItem(tr("SQNR (dB), accumulated and isolated"), ErrorChart::SqnrDb);
    errorMode_->addItem(tr("MSE, accumulated and isolated"), ErrorChart::Mse);
    errorMode_->addItem(tr("Activation rounding noise (steps) vs 1/\u221a12"), ErrorChart::RoundingNoise);
    errorBar->addWidget(new QLabel(tr("Per-layer error:"), this));
    errorBar->addWidget(errorMode_);
    errorBar->addStretch();
    errorBar->addWidget(new QLabel(tr("<small>click a bar to select its layer</small>"), this));
    errorLayout->addLayout(errorBar);
    errorLayout->addWidget(errorChart_);
    connect(errorMode_, &QComboBox::currentIndexChanged, this,
            [this] { errorChart_->setMode(ErrorChart::Mode(errorMode_->currentData().toInt())); });
    connect(errorChart_, &ErrorChart::layerClicked, this, &MainWindow::selectLayer);

    // The views of the selected layer and of the whole model.
    details_->setOpenLinks(false);
    tabs_->addTab(buildHistogramTab(), tr("Histograms"));
    tabs_->addTab(details_, tr("Layer details"));
    tabs_->addTab(buildAccuracyTab(), tr("Accuracy"));
    tabs_->addTab(buildImagesTab(), tr("Images"));

    // The table takes the full width (it has many columns); the charts share the space below.
    auto* bottom = new QSplitter(this);
    bottom->addWidget(errorPanel);
    bottom->addWidget(tabs_);
    bottom->setStretchFactor(0, 2);
    bottom->setStretchFactor(1, 3);
    bottom->setSizes({560, 840});
    auto* splitter = new QSplitter(Qt::Vertical, this);
    splitter->addWidget(tablePanel);
    splitter->addWidget(bottom);
    splitter->setStretchFactor(0, 1);
    splitter->setStretchFactor(1, 3);
    splitter->setSizes({250, 610});
    setCentralWidget(splitter);

    // Status bar: what runs, how far, how long the last update took, and a way to stop it.
    progress_->setMaximumWidth(200);
    progress_->hide();
    cancel_->setText(tr("Cancel"));
    cancel_->setToolTip(tr("Stop the running computation (Esc)"));
    cancel_->hide();
    connect(cancel_, &QToolButton::clicked, session_, &Session::cancel);
    statusBar()->addPermanentWidget(timing_);
    statusBar()->addPermanentWidget(progress_);
    exportProgress_->setMaximumWidth(240);
    exportProgress_->hide();
    statusBar()->addPermanentWidget(exportProgress_);
    statusBar()->addPermanentWidget(cancel_);

    buildMenus();

    connect(session_, &Session::loaded, this, &MainWindow::showLoaded);
    connect(session_, &Session::evaluated, this, &MainWindow::showEvaluation);
    connect(session_, &Session::histogramsReady, this, &MainWindow::showHistograms);
    connect(session_, &Session::failed, this, &MainWindow::showError);
    connect(session_, &Session::progress, this, &MainWindow::showProgress);
    connect(session_, &Session::evaluationStarted, this, [this] {
        progress_->setRange(0, 0);  // busy until the first progress report
        progress_->show();
        cancel_->show();
    });
    connect(session_, &Session::cancelled, this, [this] {
        progress_->hide();
        cancel_->setVisible(session_->isExporting());
        statusBar()->showMessage(tr("Cancelled. The metrics shown belong to an earlier configuration (greyed); F5 re-evaluates."));
    });
    connect(session_, &Session::imageErrorsReady, this, [this](std::shared_ptr<const ImageErrorSnapshot> errors) {
        QList<double> sqnr;
        for (const ErrorStats& e : errors->layers)
            sqnr << e.sqnrDb;
        showImageErrors(int(errors->image), sqnr);
    });
    connect(session_, &Session::exported, this, &MainWindow::showExported);
    connect(session_, &Session::exportFailed, this, &MainWindow::showExportError);
    connect(session_, &Session::exportProgress, this, [this](const QString& stage, int done, int total) {
        exportProgress_->setRange(0, total);  // 0 of 0: busy
        exportProgress_->setValue(done);
        exportProgress_->setFormat(total > 0 ? stage + " %p%" : stage);
        if (!session_->isBusy())
            statusBar()->showMessage(total > 0 ? tr("%1 \u2014 %2: %3 of %4 images").arg(exportDescription_, stage).arg(done).arg(total)
                                               : tr("%1 \u2014 %2").arg(exportDescription_, stage));
    });
    connect(session_, &Session::exportCancelled, this, [this] {
        endExport();
        statusBar()->showMessage(tr("Export cancelled."), 5000);
    });
    updateExportActions();
    showIntegerResults();
}

MainWindow::~MainWindow()
{
    // An editor still open commits while the table is torn down: nothing may reach the
    // half-destroyed window any more.
    layers_->setEditScope({});
    layers_->disconnect(this);
    session_->disconnect(this);
    undo_->disconnect(this);
}

QWidget* MainWindow::buildHistogramTab()
{
    auto* tab = new QWidget(this);
    auto* layout = new QVBoxLayout(tab);
    auto* bar = new QHBoxLayout;
    bar->addWidget(new QLabel(tr("<small>Blue: the float values; red: the mass outside the clipping range; grey ticks: "
                                 "the quantization levels; bars above: each calibration method's range.</small>"),
                              this),
                   1);
    bar->addWidget(logScale_);
    layout->addLayout(bar);
    layout->addWidget(weightHistogram_, 1);
    layout->addWidget(activationHistogram_, 1);
    connect(logScale_, &QCheckBox::toggled, this, [this](bool on) {
        weightHistogram_->setLogScale(on);
        activationHistogram_->setLogScale(on);
    });
    return tab;
}

QWidget* MainWindow::buildAccuracyTab()
{
    auto* tab = new QWidget(this);
    auto* layout = new QVBoxLayout(tab);
    accuracySummary_->setTextFormat(Qt::RichText);
    accuracySummary_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    // Beside the summary (the space right of its table), the integer-only engine, on demand: it
    // takes a few seconds.
    auto* summaryRow = new QHBoxLayout;
    summaryRow->addWidget(accuracySummary_);
    auto* integerColumn = new QVBoxLayout;
    integerSummary_->setTextFormat(Qt::RichText);
    integerSummary_->setWordWrap(true);
    integerSummary_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    integerSummary_->setAlignment(Qt::AlignTop | Qt::AlignLeft);
    runIntegerEngine_->setToolTip(tr("Run the integer-only int8 engine on the evaluation images and compare it with the simulation (Ctrl+I)"));
    connect(runIntegerEngine_, &QPushButton::clicked, this, &MainWindow::runIntegerEngine);
    integerColumn->addWidget(integerSummary_);
    integerColumn->addWidget(runIntegerEngine_, 0, Qt::AlignLeft);
    integerColumn->addStretch();
    summaryRow->addSpacing(16);
    summaryRow->addLayout(integerColumn, 1);
    layout->addLayout(summaryRow);
    auto* split = new QSplitter(Qt::Vertical, tab);
    auto* confusionBox = new QWidget(split);
    auto* confusionLayout = new QVBoxLayout(confusionBox);
    confusionLayout->setContentsMargins(0, 0, 0, 0);
    confusionLayout->addWidget(new QLabel(tr("<b>Confusion matrix</b> of the quantized model (rows: true class)"), confusionBox));
    confusionLayout->addWidget(confusion_, 1);
    split->addWidget(confusionBox);
    split->addWidget(history_);
    split->setStretchFactor(0, 1);
    split->setStretchFactor(1, 1);
    split->setSizes({300, 260});
    history_->setMinimumHeight(220);
    layout->addWidget(split, 1);
    return tab;
}

QWidget* MainWindow::buildImagesTab()
{
    auto* tab = new QWidget(this);
    auto* layout = new QVBoxLayout(tab);
    galleryView_->setModel(gallery_);
    galleryView_->setViewMode(QListView::IconMode);
    galleryView_->setIconSize(QSize(56, 56));
    galleryView_->setGridSize(QSize(150, 108));
    galleryView_->setResizeMode(QListView::Adjust);
    galleryView_->setMovement(QListView::Static);
    galleryView_->setUniformItemSizes(false);  // uniform sizes take the first label's width and elide longer ones
    galleryView_->setWordWrap(true);
    galleryView_->setSpacing(2);
    layout->addWidget(new QLabel(tr("<small>Label under each image: the float prediction, and \u2192 the quantized one where "
                                    "it differs. Frame: green when the quantized prediction is right, red when wrong. "
                                    "Click an image for its per-layer error.</small>"),
                                 this));
    layout->addWidget(changedOnly_);
    auto* split = new QSplitter(Qt::Vertical, tab);
    split->addWidget(galleryView_);
    split->addWidget(imageErrors_);
    split->setStretchFactor(0, 3);
    split->setStretchFactor(1, 2);
    split->setSizes({320, 240});
    // The per-image chart needs room for its axis title and tick labels (as the history chart).
    imageErrors_->setMinimumHeight(220);
    layout->addWidget(split, 1);
    connect(changedOnly_, &QCheckBox::toggled, gallery_, &GalleryModel::setChangedOnly);
    connect(galleryView_, &QListView::clicked, this, [this](const QModelIndex& index) {
        session_->requestImageErrors(std::size_t(index.data(GalleryModel::ImageIndexRole).toULongLong()));
    });
    return tab;
}

void MainWindow::buildMenus()
{
    QMenu* file = menuBar()->addMenu(tr("&File"));
    file->addAction(tr("Open &Model..."), QKeySequence::Open, this, [this] {
        const QString path = QFileDialog::getOpenFileName(this, tr("Open Model"), QFileInfo(modelPath_).path(),
                                                          tr("ONNX models (*.onnx);;All files (*)"));
        if (!path.isEmpty())
            openModel(path);
    });
    file->addAction(tr("Open &Images..."), this, [this] {
        const QString path = QFileDialog::getOpenFileName(
            this, tr("Open Images"), QFileInfo(dataPath_).path(),
            tr("Data sets and images (*.gz *-ubyte *.bin *.png *.jpg *.jpeg *.bmp);;All files (*)"));
        if (!path.isEmpty())
            openImages(path);
    });
    file->addAction(tr("Open Image &Folder..."), this, [this] {
        const QString path = QFileDialog::getExistingDirectory(this, tr("Open Image Folder"), QFileInfo(dataPath_).path());
        if (!path.isEmpty())
            openImages(path);
    });
    file->addSeparator();
    file->addAction(tr("Open &Configuration..."), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_O), this, [this] {
        const QString path = QFileDialog::getOpenFileName(this, tr("Open Configuration"), QFileInfo(configPath_).path(),
                                                          tr("Configurations (*.json);;All files (*)"));
        if (!path.isEmpty())
            openConfiguration(path);
    });
    file->addAction(tr("&Save Configuration"), QKeySequence::Save, this, [this] {
        const QString path = !configPath_.isEmpty() ? configPath_
                                                    : QFileDialog::getSaveFileName(this, tr("Save Configuration"),
                                                                                   QFileInfo(modelPath_).completeBaseName() + ".quant.json",
                                                                                   tr("Configurations (*.json)"));
        if (!path.isEmpty())
            saveConfiguration(path);
    });
    file->addAction(tr("Save Configuration &As..."), QKeySequence::SaveAs, this, [this] {
        const QString path = QFileDialog::getSaveFileName(this, tr("Save Configuration"), configPath_, tr("Configurations (*.json)"));
        if (!path.isEmpty())
            saveConfiguration(path);
    });
    file->addAction(tr("Restore &Autosaved Configuration"), this, [this] {
        const QString path = QStandardPaths::writableLocation(QStandardPaths::AppDataLocation) + "/autosave/" +
                             QFileInfo(modelPath_).completeBaseName() + ".json";
        if (!QFileInfo::exists(path))
            QMessageBox::information(this, tr("Restore"), tr("No autosaved configuration for %1.").arg(QFileInfo(modelPath_).fileName()));
        else
            openConfiguration(path);
    });
    recentMenu_ = file->addMenu(tr("&Recent Files"));
    connect(recentMenu_, &QMenu::aboutToShow, this, &MainWindow::rebuildRecentMenu);
    file->addSeparator();
    file->addAction(tr("&Export Metrics as CSV..."), this, [this] {
        const QString path = QFileDialog::getSaveFileName(this, tr("Export Metrics"), QFileInfo(modelPath_).completeBaseName() + "_metrics.csv",
                                                          tr("CSV files (*.csv)"));
        if (!path.isEmpty())
            exportMetricsCsv(path);
    });
    exportActions_ << file->addAction(tr("Export &Quantized Model (QDQ ONNX)..."), this, [this] {
        QString path = QFileDialog::getSaveFileName(this, tr("Export Quantized Model"), QFileInfo(modelPath_).completeBaseName() + "_qdq.onnx",
                                                    tr("ONNX models (*.onnx)"));
        if (path.isEmpty())
            return;
        if (QFileInfo(path).suffix().isEmpty())
            path += ".onnx";
        exportQuantizedModel(path);
    });
    exportActions_ << file->addAction(tr("Export E&ncodings..."), this, [this] {
        const QString json = tr("JSON (*.json)"), csv = tr("CSV (*.csv)");
        QString filter = json;
        QString path = QFileDialog::getSaveFileName(this, tr("Export Encodings"), QFileInfo(modelPath_).completeBaseName() + "_encodings.json",
                                                    json + ";;" + csv, &filter);
        if (path.isEmpty())
            return;
        if (QFileInfo(path).suffix().isEmpty())  // the format follows the extension, else the filter
            path += filter == csv ? ".csv" : ".json";
        exportEncodings(path);
    });
    exportActions_ << file->addAction(tr("Export &Report..."), this, [this] {
        const QString dir = QFileDialog::getExistingDirectory(this, tr("Export Report into Folder"), QFileInfo(modelPath_).path());
        if (dir.isEmpty())
            return;
        if (QFileInfo::exists(dir + "/report.md") &&
            QMessageBox::question(this, tr("Export Report"), tr("%1 already holds a report. Replace it?").arg(QDir::toNativeSeparators(dir)),
                                  QMessageBox::Yes | QMessageBox::No) != QMessageBox::Yes)
            return;
        exportReport(dir);
    });
    QMenu* charts = file->addMenu(tr("Export &Chart"));
    const QList<QPair<QString, QWidget*>> chartList = {{tr("Per-layer error"), errorChart_},
                                                       {tr("Weight histogram"), weightHistogram_},
                                                       {tr("Activation histogram"), activationHistogram_},
                                                       {tr("Confusion matrix"), confusion_},
                                                       {tr("Configuration history"), history_},
                                                       {tr("Image per-layer error"), imageErrors_}};
    for (const auto& [title, widget] : chartList) {
        charts->addAction(title + "...", this, [this, title = title, widget = widget] {
            const QString path = saveChartDialog(title.toLower().replace(' ', '_').replace('-', '_'));
            if (path.isEmpty())
                return;
            try {
                saveWidgetImage(widget, title, path);
                statusBar()->showMessage(tr("Saved %1").arg(path), 5000);
            } catch (const Error& e) {
                showError(QString::fromStdString(e.what()));
            }
        });
    }
    file->addSeparator();
    file->addAction(tr("&Quit"), QKeySequence::Quit, this, &QWidget::close);

    QMenu* edit = menuBar()->addMenu(tr("&Edit"));
    QAction* undo = undo_->createUndoAction(this, tr("&Undo"));
    undo->setShortcut(QKeySequence::Undo);
    QAction* redo = undo_->createRedoAction(this, tr("&Redo"));
    redo->setShortcut(QKeySequence::Redo);
    edit->addAction(undo);
    edit->addAction(redo);
    edit->addSeparator();
    edit->addAction(tr("Reset to the &Default Configuration"), this, [this] {
        QuantConfig reset;
        reset.model = QFileInfo(modelPath_).fileName().toStdString();
        changeConfig(reset, tr("reset to W8A8 default"));
    });
    edit->addAction(tr("Re-&evaluate"), QKeySequence::Refresh, this, [this] {
        // The status bar's time is this run's, not the time since the last edit.
        editStartedNs_ = QDateTime::currentMSecsSinceEpoch();
        session_->reevaluate(layers_->config());
    });
    exportActions_ << edit->addAction(tr("Run the &int8 Engine"), QKeySequence(Qt::CTRL | Qt::Key_I), this, &MainWindow::runIntegerEngine);
    edit->addAction(tr("&Cancel Computation"), QKeySequence(Qt::Key_Escape), session_, &Session::cancel);
    connect(undo_, &QUndoStack::cleanChanged, this, &MainWindow::updateTitle);

    QMenu* view = menuBar()->addMenu(tr("&View"));
    QAction* log = view->addAction(tr("&Log Scale Histograms"));
    log->setCheckable(true);
    connect(log, &QAction::toggled, logScale_, &QCheckBox::setChecked);
    connect(logScale_, &QCheckBox::toggled, log, &QAction::setChecked);
    const QStringList tabNames = {tr("&Histograms"), tr("Layer &Details"), tr("&Accuracy"), tr("&Images")};
    for (int i = 0; i < tabNames.size(); ++i)
        view->addAction(tabNames[i], QKeySequence(Qt::CTRL | Qt::Key(Qt::Key_1 + i)), this, [this, i] { tabs_->setCurrentIndex(i); });
}

QString MainWindow::saveChartDialog(const QString& name)
{
    QString selected;
    return QFileDialog::getSaveFileName(this, tr("Export Chart"), name + ".png", tr("PNG images (*.png);;SVG drawings (*.svg)"), &selected);
}

// ---- opening --------------------------------------------------------------------------------------

void MainWindow::openSession(const QString& modelPath, const QString& dataPath, const QString& configPath)
{
    pendingConfigPath_ = configPath;
    statusBar()->showMessage(tr("Loading %1 and %2 ...").arg(QFileInfo(modelPath).fileName(), QFileInfo(dataPath).fileName()));
    progress_->setRange(0, 0);
    progress_->show();
    cancel_->show();
    session_->open(modelPath, dataPath);
}

void MainWindow::openModel(const QString& path)
{
    if (!confirmDiscard())
        return;
    if (!Preprocess::loadSidecar(path.toStdString())) {
        // Asked once: the answer is saved beside the model for every later session.
        PreprocessDialog dialog(path, this);
        if (dialog.exec() != QDialog::Accepted)
            return;
        try {
            const Preprocess p = dialog.preprocess();
            p.save(Preprocess::sidecarPath(path.toStdString()));
        } catch (const Error& e) {
            showError(QString::fromStdString(e.what()));
            return;
        }
    }
    addRecent(path);
    openSession(path, dataPath_);
}

void MainWindow::openImages(const QString& path)
{
    addRecent(path);
    // The configuration carries over: the layers are the same model's.
    pendingConfigPath_.clear();
    openSession(modelPath_, path, configPath_);
}

bool MainWindow::openConfiguration(const QString& path)
{
    const auto snapshot = session_->snapshot();
    if (!snapshot) {
        pendingConfigPath_ = path;
        return true;
    }
    try {
        std::set<std::string> names;
        for (const QuantLayer& layer : snapshot->layers)
            names.insert(layer.name);
        const QuantConfig config = QuantConfig::load(path.toStdString(), names);
        changeConfig(config, tr("open %1").arg(QFileInfo(path).fileName()));
        configPath_ = path;
        undo_->setClean();
        updateTitle();
        addRecent(path);
        return true;
    } catch (const Error& e) {
        showError(QString::fromStdString(e.what()));
        return false;
    }
}

void MainWindow::openPath(const QString& path)
{
    const QFileInfo info(path);
    if (!info.exists()) {
        showError(tr("%1: no such file or folder").arg(path));
        return;
    }
    if (info.suffix().toLower() == "onnx")
        openModel(path);
    else if (info.suffix().toLower() == "json") {
        if (jsonFormat(path) == "preprocess")
            showError(tr("%1 is a preprocessing sidecar: it is read from beside its model when the model opens.").arg(path));
        else
            openConfiguration(path);
    } else if (looksLikeImages(info) || info.fileName().endsWith(".gz"))
        openImages(path);
    else
        showError(tr("%1: expected an ONNX model (.onnx), a configuration (.json), a folder of images, an idx or "
                     "CIFAR file, or a PNG/JPEG/BMP image")
                      .arg(path));
}

void MainWindow::dragEnterEvent(QDragEnterEvent* event)
{
    if (event->mimeData()->hasUrls())
        event->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* event)
{
    // A model first, so that images and a configuration dropped with it apply to it.
    QStringList paths;
    for (const QUrl& url : event->mimeData()->urls())
        if (url.isLocalFile())
            paths << url.toLocalFile();
    std::stable_sort(paths.begin(), paths.end(), [](const QString& a, const QString& b) {
        auto rank = [](const QString& p) { return p.endsWith(".onnx") ? 0 : p.endsWith(".json") ? 2 : 1; };
        return rank(a) < rank(b);
    });
    QString model, images, config;
    for (const QString& path : paths) {
        const QFileInfo info(path);
        if (info.suffix().toLower() == "onnx")
            model = path;
        else if (info.suffix().toLower() == "json")
            config = path;
        else if (images.isEmpty())
            images = path;
    }
    event->acceptProposedAction();
    if (!model.isEmpty() && !images.isEmpty()) {
        dataPath_ = images;
        addRecent(images);
    }
    if (!model.isEmpty()) {
        openModel(model);
        if (!config.isEmpty())
            pendingConfigPath_ = config;
    } else if (!images.isEmpty()) {
        openPath(images);
        if (!config.isEmpty())
            pendingConfigPath_ = config;
    } else if (!config.isEmpty()) {
        openPath(config);
    }
}

void MainWindow::addRecent(const QString& path)
{
    QSettings settings;
    QStringList recent = settings.value("recentFiles").toStringList();
    recent.removeAll(QFileInfo(path).absoluteFilePath());
    recent.prepend(QFileInfo(path).absoluteFilePath());
    while (recent.size() > kMaxRecentFiles)
        recent.removeLast();
    settings.setValue("recentFiles", recent);
}

void MainWindow::rebuildRecentMenu()
{
    recentMenu_->clear();
    const QStringList recent = QSettings().value("recentFiles").toStringList();
    for (const QString& path : recent)
        recentMenu_->addAction(QFileInfo(path).fileName() + "  \u2014  " + QFileInfo(path).path(), this, [this, path] { openPath(path); });
    if (recent.isEmpty())
        recentMenu_->addAction(tr("(none)"))->setEnabled(false);
}

// ---- configuration changes ----------------------------------------------------------------------

void MainWindow::changeConfig(const QuantConfig& config, const QString& description)
{
    if (config == layers_->config())
        return;
    lastEditDescription_ = description;
    undo_->push(new ConfigCommand(this, layers_->config(), config, description));
}

void MainWindow::applyConfig(const QuantConfig& config)
{
    editStartedNs_ = QDateTime::currentMSecsSinceEpoch();
    layers_->setConfig(config);
    session_->setConfig(config);
    showDetails();
    showIntegerResults();
    updateTitle();
    autosave();
}

void MainWindow::autosave()
{
    // A crash or a forgotten save never loses an afternoon of exploring.
    if (modelPath_.isEmpty())
        return;
    const QString dir = QStandardPaths::writableLocation(QStandardPaths::AppDataLocation) + "/autosave";
    if (!QDir().mkpath(dir))
        return;
    try {
        layers_->config().save((dir + "/" + QFileInfo(modelPath_).completeBaseName() + ".json").toStdString());
    } catch (const Error&) {
        // Autosave is a convenience: a failure must not interrupt the user.
    }
}

bool MainWindow::saveConfiguration(const QString& path)
{
    try {
        QuantConfig config = layers_->config();
        config.model = QFileInfo(modelPath_).fileName().toStdString();
        config.save(path.toStdString());
        configPath_ = path;
        undo_->setClean();
        updateTitle();
        addRecent(path);
        statusBar()->showMessage(tr("Saved %1").arg(path), 5000);
        return true;
    } catch (const Error& e) {
        showError(QString::fromStdString(e.what()));
        return false;
    }
}

bool MainWindow::exportMetricsCsv(const QString& path)
{
    try {
        writeFileAtomically(path.toStdString(), layers_->toCsv().toStdString());
        statusBar()->showMessage(tr("Saved %1").arg(path), 5000);
        return true;
    } catch (const Error& e) {
        showError(QString::fromStdString(e.what()));
        return false;
    }
}

bool MainWindow::confirmDiscard()
{
    if (undo_->isClean())
        return true;
    const auto answer = QMessageBox::question(this, tr("Unsaved configuration"),
                                              tr("The configuration has unsaved changes. Save them first?"),
                                              QMessageBox::Save | QMessageBox::Discard | QMessageBox::Cancel);
    if (answer == QMessageBox::Cancel)
        return false;
    if (answer == QMessageBox::Save) {
        const QString path = QFileDialog::getSaveFileName(this, tr("Save Configuration"), configPath_, tr("Configurations (*.json)"));
        return !path.isEmpty() && saveConfiguration(path);
    }
    return true;
}

void MainWindow::closeEvent(QCloseEvent* event)
{
    if (session_->isExporting() &&
        QMessageBox::question(this, tr("Export Running"),
                              tr("%1 is still running. Stop it and close? Nothing half-written is left behind.").arg(exportDescription_),
                              QMessageBox::Yes | QMessageBox::No) != QMessageBox::Yes) {
        event->ignore();
        return;
    }
    if (confirmDiscard())
        event->accept();
    else
        event->ignore();
}

void MainWindow::updateTitle()
{
    const QString model = modelPath_.isEmpty() ? QString() : QFileInfo(modelPath_).fileName() + " \u2014 ";
    const QString config = configPath_.isEmpty() ? tr("untitled configuration") : QFileInfo(configPath_).fileName();
    setWindowTitle(QStringLiteral("%1%2[*] \u2014 Quantization Explorer").arg(model, config));
    setWindowModified(!undo_->isClean());
}

// ---- showing results ----------------------------------------------------------------------------

int MainWindow::selectedLayer() const
{
    const QModelIndex current = table_->selectionModel()->currentIndex();
    return current.isValid() ? sorted_->mapToSource(current).row() : -1;
}

void MainWindow::selectLayer(int row)
{
    if (row < 0 || row >= layers_->rowCount())
        return;
    const QModelIndex index = sorted_->mapFromSource(layers_->index(row, LayerTableModel::Name));
    table_->selectionModel()->setCurrentIndex(index, QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
    table_->scrollTo(index);
}

void MainWindow::showLoaded()
{
    const auto snapshot = session_->snapshot();
    modelPath_ = snapshot->modelPath;
    dataPath_ = snapshot->dataPath;
    historyEntries_.clear();
    historyConfigs_.clear();
    integer_.reset();
    layers_->setSession(snapshot);
    gallery_->setSession(snapshot);
    imageErrors_->setErrors({}, {}, {}, tr("Click an image to see its per-layer error"));
    if (!snapshot->labelColumnNote.isEmpty())
        statusBar()->showMessage(tr("Labels: %1").arg(snapshot->labelColumnNote), 10000);
    for (int column = LayerTableModel::Operator; column < LayerTableModel::ColumnCount; ++column)
        table_->resizeColumnToContents(column);
    table_->setColumnWidth(LayerTableModel::Name, std::max(table_->columnWidth(LayerTableModel::Name), 120));
    // Show every row of a small model; a large one gets 40% of the height and a scroll bar.
    // After the new rows are laid out, so the sizes are known.
    QTimer::singleShot(0, this, [this] {
        auto* split = qobject_cast<QSplitter*>(centralWidget());
        if (!split)
            return;
        // The headline wraps: its height at the table's width (its size hint assumes a narrow label).
        const int wanted = headline_->heightForWidth(table_->width()) + table_->horizontalHeader()->height() +
                           table_->verticalHeader()->defaultSectionSize() * layers_->rowCount() + 2 * table_->frameWidth() + 24;
        const int rows = std::min(wanted, int(0.4 * split->height()));
        split->setSizes({rows, split->height() - rows});
    });

    // The configuration: the file asked for, else the model's own (QDQ), else the W8A8 default.
    QuantConfig config;
    config.model = QFileInfo(modelPath_).fileName().toStdString();
    configPath_.clear();
    if (snapshot->modelConfig)
        config = *snapshot->modelConfig;
    if (!pendingConfigPath_.isEmpty()) {
        try {
            std::set<std::string> names;
            for (const QuantLayer& layer : snapshot->layers)
                names.insert(layer.name);
            config = QuantConfig::load(pendingConfigPath_.toStdString(), names);
            configPath_ = pendingConfigPath_;
        } catch (const Error& e) {
            showError(QString::fromStdString(e.what()) + tr("\n\nThe default W8A8 configuration is used instead."));
        }
        pendingConfigPath_.clear();
    }
    undo_->clear();
    lastEditDescription_ = configPath_.isEmpty() ? tr("start: %1").arg(snapshot->modelConfig ? tr("the model's own") : tr("W8A8 default"))
                                                 : tr("start: %1").arg(QFileInfo(configPath_).fileName());
    editStartedNs_ = QDateTime::currentMSecsSinceEpoch();
    layers_->setConfig(config);
    session_->setConfig(config);
    updateTitle();
    showIntegerResults();
    updateExportActions();

    // Start on the first layer with weights: it has both histograms.
    int first = 0;
    for (int row = 0; row < layers_->rowCount(); ++row)
        if (layers_->hasWeights(row)) {
            first = row;
            break;
        }
    selectLayer(first);
    headline_->setText(tr("<b>%1</b> on %2 \u2014 evaluating ...")
                           .arg(QFileInfo(modelPath_).fileName().toHtmlEscaped(),
                                QString::fromStdString(snapshot->dataset->description()).toHtmlEscaped()));
    statusBar()->showMessage(tr("Calibrating on %1 and evaluating on %2 images ...")
                                 .arg(QFileInfo(snapshot->calibrationPath).fileName())
                                 .arg(snapshot->evaluationImages));
}

void MainWindow::showProgress(const QString& stage, int done, int total)
{
    progress_->setRange(0, total);
    progress_->setValue(done);
    progress_->setFormat(stage + " %p%");
    progress_->show();
    cancel_->show();
    statusBar()->showMessage(tr("%1: %2 of %3 images").arg(stage).arg(done).arg(total));
}

void MainWindow::showEvaluation()
{
    const auto snapshot = session_->snapshot();
    const auto evaluation = session_->evaluation();
    const ModelMetrics& m = evaluation->metrics;
    progress_->hide();
    cancel_->setVisible(session_->isExporting());
    layers_->setEvaluation(evaluation);
    gallery_->setEvaluation(evaluation);
    changedOnly_->setText(tr("Only images whose prediction changed (%1 of %2)").arg(gallery_->changedCount()).arg(m.images));

    const double sizeKiB = m.sizeBytes / 1024.0, floatKiB = m.floatSizeBytes / 1024.0;
    headline_->setText(tr("<b>top-1 %1</b> (float %2) \u00b7 agreement %3 \u00b7 <b>%4 KiB</b> (float %5) \u00b7 %6 bits/weight "
                          "<small>\u00b7 %7 images</small>")
                           .arg(percent(m.top1), percent(m.floatTop1), percent(m.agreement))
                           .arg(sizeKiB, 0, 'f', 1)
                           .arg(floatKiB, 0, 'f', 1)
                           .arg(m.bitsPerWeight, 0, 'f', 2)
                           .arg(m.images));
    accuracySummary_->setText(
        tr("<table cellspacing=6><tr><th></th><th align=right>float</th><th align=right>quantized</th></tr>"
           "<tr><td><b>top-1</b></td><td align=right>%1</td><td align=right><b>%2</b></td></tr>"
           "<tr><td><b>top-5</b></td><td align=right>%3</td><td align=right>%4</td></tr>"
           "<tr><td><b>size</b></td><td align=right>%5 KiB</td><td align=right><b>%6 KiB</b> (%7\u00d7 smaller)</td></tr>"
           "<tr><td><b>bits per weight</b></td><td align=right>32</td><td align=right>%8</td></tr></table>"
           "<p>Top-1 agreement with float: <b>%9</b> (%10 of %11 predictions changed) \u00b7 output SQNR %12 dB</p>")
            .arg(percent(m.floatTop1), percent(m.top1), percent(m.floatTop5), percent(m.top5))
            .arg(floatKiB, 0, 'f', 1)
            .arg(sizeKiB, 0, 'f', 1)
            .arg(sizeKiB > 0 ? floatKiB / sizeKiB : 0.0, 0, 'f', 2)
            .arg(m.bitsPerWeight, 0, 'f', 2)
            .arg(percent(m.agreement))
            .arg(gallery_->changedCount())
            .arg(m.images)
            .arg(std::isinf(m.outputSqnrDb) ? tr("exact") : QString::number(m.outputSqnrDb, 'f', 1)));
    QStringList names;
    for (std::size_t k = 0; k < snapshot->classNames.size(); ++k)
        names << QString::fromStdString(snapshot->classNames[k]);
    confusion_->setMatrix(evaluation->confusion, names);

    // The history of configurations tried; re-evaluating the same one does not add a point.
    const HistoryChart::Entry entry{lastEditDescription_, sizeKiB, 100.0 * m.top1, 100.0 * m.agreement};
    const int known = historyConfigs_.indexOf(evaluation->config);
    if (known >= 0) {
        historyEntries_.removeAt(known);
        historyConfigs_.removeAt(known);
    }
    historyEntries_ << entry;
    historyConfigs_ << evaluation->config;
    history_->setHistory(historyEntries_, {tr("float"), floatKiB, 100.0 * m.floatTop1, 100.0});
    showDetails();

    const qint64 elapsed = QDateTime::currentMSecsSinceEpoch() - editStartedNs_;
    timing_->setText(tr("updated in %1 ms (worker %2 ms)").arg(elapsed).arg(evaluation->milliseconds, 0, 'f', 0));
    statusBar()->showMessage(tr("Ready"), 3000);
    emit viewsUpdated();
}

void MainWindow::showHistograms()
{
    const auto histograms = session_->histograms();
    if (!histograms)
        return;
    const QString layer = QString::fromStdString(histograms->layer);
    auto title = [](const char* what, const QString& layer, const std::optional<TensorHistogram>& h) {
        if (!h)
            return tr("%1 has no weights").arg(layer);
        QString t = tr("%1 of %2").arg(tr(what), layer);
        if (h->levels.empty())
            t += tr(" (float)");
        else if (h->clipRange)
            t += tr(" \u2014 %1 levels, clipped %2%").arg(h->levels.size()).arg(100.0 * h->clippedFraction, 0, 'f', 3);
        return t;
    };
    weightHistogram_->setHistogram(histograms->weights, title("Weights", layer, histograms->weights));
    activationHistogram_->setHistogram(histograms->activations, title("Activations", layer, histograms->activations));
}

void MainWindow::showDetails()
{
    const auto snapshot = session_->snapshot();
    const auto evaluation = session_->evaluation();
    const int row = selectedLayer();
    if (!snapshot || !evaluation || row < 0) {
        details_->setHtml(tr("<p>Select a layer in the table.</p>"));
        return;
    }
    QString html = layerDetailsHtml(*snapshot, *evaluation, std::size_t(row));
    if (!(evaluation->config == layers_->config()))
        html = tr("<p><i>Updating: these numbers belong to the previous configuration.</i></p>") + html;
    details_->setHtml(html);
}

void MainWindow::showImageErrors(int image, const QList<double>& sqnr)
{
    const auto snapshot = session_->snapshot();
    const auto evaluation = session_->evaluation();
    if (!snapshot || !evaluation)
        return;
    QStringList names;
    QList<double> all;
    for (const LayerMetrics& m : evaluation->metrics.layers) {
        names << QString::fromStdString(m.name);
        all << m.accumulated.sqnrDb;
    }
    const ModelMetrics& m = evaluation->metrics;
    const int label = snapshot->dataset->label(std::size_t(image));
    imageErrors_->setErrors(names, sqnr, all,
                            tr("Image #%1 (%2): float says %3, quantized says %4")
                                .arg(image)
                                .arg(snapshot->className(label), snapshot->className(m.floatPredictions[std::size_t(image)]),
                                     snapshot->className(m.predictions[std::size_t(image)])));
}

void MainWindow::showError(const QString& message)
{
    progress_->hide();
    cancel_->setVisible(session_->isExporting());
    statusBar()->showMessage(tr("Failed: %1").arg(message.section('\n', 0, 0)), 8000);
    QMessageBox::critical(this, tr("Quantization Explorer"), message);
}

// ---- exports ------------------------------------------------------------------------------------

bool MainWindow::startExport(const QString& description, bool started)
{
    if (!started) {
        statusBar()->showMessage(tr("Open a model first."), 5000);
        return false;
    }
    exportDescription_ = description;
    exportProgress_->setRange(0, 0);
    exportProgress_->setFormat(QString());
    exportProgress_->show();
    cancel_->show();
    updateExportActions();
    if (!session_->isBusy())
        statusBar()->showMessage(description + " ...");
    return true;
}

bool MainWindow::exportQuantizedModel(const QString& path)
{
    if (session_->isExporting()) {
        statusBar()->showMessage(tr("%1 is still running.").arg(exportDescription_), 5000);
        return false;
    }
    return startExport(tr("Exporting the quantized model to %1").arg(QFileInfo(path).fileName()), session_->exportQdqModel(path));
}

bool MainWindow::exportEncodings(const QString& path)
{
    if (session_->isExporting()) {
        statusBar()->showMessage(tr("%1 is still running.").arg(exportDescription_), 5000);
        return false;
    }
    return startExport(tr("Exporting the encodings to %1").arg(QFileInfo(path).fileName()), session_->exportEncodings(path));
}

bool MainWindow::exportReport(const QString& dir)
{
    if (session_->isExporting()) {
        statusBar()->showMessage(tr("%1 is still running.").arg(exportDescription_), 5000);
        return false;
    }
    return startExport(tr("Writing the report into %1").arg(QDir::toNativeSeparators(dir)), session_->exportReport(dir));
}

bool MainWindow::runIntegerEngine()
{
    if (session_->isExporting()) {
        statusBar()->showMessage(tr("%1 is still running.").arg(exportDescription_), 5000);
        return false;
    }
    if (!startExport(tr("Running the int8 engine"), session_->runIntegerEngine()))
        return false;
    integerRunning_ = true;
    integerSummary_->setText(tr("<b>int8 engine:</b> running on the evaluation images ..."));
    return true;
}

void MainWindow::endExport()
{
    integerRunning_ = false;
    exportProgress_->hide();
    cancel_->setVisible(session_->isBusy());
    updateExportActions();
    showIntegerResults();
}

void MainWindow::updateExportActions()
{
    const bool enabled = session_->snapshot() && !session_->isExporting();
    for (QAction* action : exportActions_)
        action->setEnabled(enabled);
    runIntegerEngine_->setEnabled(enabled);
}

void MainWindow::showExported(std::shared_ptr<const ExportResult> result)
{
    if (result->integer) {
        integer_ = result->integer;
        integerConfig_ = result->config;
    }
    endExport();
    const QString name = QDir::toNativeSeparators(result->path);
    switch (result->kind) {
    case ExportResult::QdqModel: {
        statusBar()->showMessage(tr("Exported %1: %2 activations and %3 weights/biases in integers, %4 layers in float")
                                     .arg(name)
                                     .arg(result->activationEncodings)
                                     .arg(result->weightEncodings)
                                     .arg(result->warnings.size()),
                                 10000);
        if (!result->warnings.isEmpty()) {
            // Never silently changed: what QDQ cannot express is written in float, and said so.
            auto* box = new QMessageBox(QMessageBox::Warning, tr("Exported with Float Layers"),
                                        tr("%1 was written, but %n layer(s) are in float there: ONNX's QDQ format cannot "
                                           "express their quantization, so their weights are written as the dequantized "
                                           "values and their outputs are not quantized.",
                                           nullptr, int(result->warnings.size()))
                                            .arg(name),
                                        QMessageBox::Ok, this);
            box->setObjectName("exportWarnings");
            box->setInformativeText("\u2022 " + result->warnings.join("\n\u2022 "));
            box->setAttribute(Qt::WA_DeleteOnClose);
            box->open();
        }
        break;
    }
    case ExportResult::Encodings:
        statusBar()->showMessage(tr("Exported %1: encodings of %2 activations and %3 weights/biases")
                                     .arg(name)
                                     .arg(result->activationEncodings)
                                     .arg(result->weightEncodings),
                                 10000);
        break;
    case ExportResult::Report: {
        const QString report = QDir(result->path).filePath("report.md");
        statusBar()->showMessage(tr("Wrote %1 (%n file(s))", nullptr, int(result->files.size())).arg(QDir::toNativeSeparators(report)), 10000);
        auto* box = new QMessageBox(QMessageBox::Information, tr("Report Written"),
                                    tr("The report is in %1.").arg(QDir::toNativeSeparators(report)), QMessageBox::Close, this);
        box->setObjectName("reportWritten");
        QStringList names;
        for (const QString& file : result->files)
            names << QFileInfo(file).fileName();
        QString details = tr("Files: %1").arg(names.join(", "));
        if (!result->integerError.isEmpty())
            details += tr("\n\nThe int8 engine could not run, so the report has no int8 column: %1").arg(result->integerError);
        box->setInformativeText(details);
        QPushButton* open = box->addButton(tr("Open report.md"), QMessageBox::AcceptRole);
        box->setDefaultButton(open);
        connect(box, &QMessageBox::buttonClicked, this, [this, open, report](QAbstractButton* button) {
            if (button == open && !QDesktopServices::openUrl(QUrl::fromLocalFile(report)))
                statusBar()->showMessage(tr("No application opens %1; the report is there.").arg(QDir::toNativeSeparators(report)), 10000);
        });
        box->setAttribute(Qt::WA_DeleteOnClose);
        box->open();
        break;
    }
    case ExportResult::IntegerEngine:
        tabs_->setCurrentIndex(2);  // the accuracy tab, where the results are
        statusBar()->showMessage(tr("int8 engine: top-1 %1 on %2 images").arg(percent(result->integer->top1)).arg(result->integer->images),
                                 10000);
        break;
    }
}

void MainWindow::showExportError(const QString& path, const QString& message)
{
    endExport();
    const QString text = path.isEmpty() ? tr("%1 failed:\n\n%2").arg(exportDescription_, message)
                                        : tr("Could not write %1:\n\n%2").arg(QDir::toNativeSeparators(path), message);
    statusBar()->showMessage(tr("Failed: %1").arg(text.section('\n', 0, 0)), 10000);
    QMessageBox::critical(this, tr("Export Failed"), text);
}

void MainWindow::showIntegerResults()
{
    if (integerRunning_)
        return;  // "running ..." stays until it ends
    if (!integer_) {
        integerSummary_->setText(tr("<small>The integer-only <b>int8 engine</b> runs the configuration with integer kernels; "
                                    "run it to compare with the simulation above.</small>"));
        return;
    }
    const IntegerEvaluation& r = *integer_;
    double ms = r.msPerImage;
    QString text = tr("<b>int8 engine</b> (%1 of %2 layers in integers): top-1 <b>%3</b> (simulation %4) \u00b7 agreement with "
                      "the simulation <b>%5</b> (%6 up to ties) \u00b7 outputs within one step %7 \u00b7 %8 ms/image "
                      "<small>\u00b7 %9 images</small>")
                       .arg(r.integerLayers)
                       .arg(r.layers.size())
                       .arg(percent(r.top1), percent(r.simulatedTop1), percent(r.agreementWithSimulation),
                            percent(r.agreementUpToTies), percent(r.outputWithinOneLsb))
                       .arg(ms, 0, 'f', ms < 1 ? 3 : 2)
                       .arg(r.images);
    if (!(integerConfig_ == layers_->config()))
        text = "<span style='color:gray'>" + text + tr(" \u2014 for an earlier configuration; run it again</span>");
    integerSummary_->setText(text);
}

// ---- screenshots --------------------------------------------------------------------------------

void MainWindow::saveScreenshotWhenReady(const QString& path)
{
    // Waits for the first evaluation and the selected layer's histograms, then walks the views.
    auto pending = std::make_shared<int>(2);
    auto shoot = [this, path] {
        const QString base = path.endsWith(".png") ? path.chopped(4) : path;
        QTimer::singleShot(300, this, [this, base] {
            bool ok = grab().save(base + ".png");
            tabs_->setCurrentIndex(1);
            ok = grab().save(base + "_details.png") && ok;
            tabs_->setCurrentIndex(2);
            ok = grab().save(base + "_accuracy.png") && ok;
            tabs_->setCurrentIndex(3);
            changedOnly_->setChecked(true);
            if (gallery_->rowCount() > 0) {
                connect(session_, &Session::imageErrorsReady, this, [this, base, ok] {
                    QTimer::singleShot(200, this, [this, base, ok] {
                        const bool saved = grab().save(base + "_images.png") && ok;
                        QApplication::exit(saved ? 0 : 1);
                    });
                });
                session_->requestImageErrors(std::size_t(gallery_->index(0).data(GalleryModel::ImageIndexRole).toULongLong()));
            } else {
                ok = grab().save(base + "_images.png") && ok;
                QApplication::exit(ok ? 0 : 1);
            }
        });
    };
    auto step = [pending, shoot] {
        if (--*pending == 0)
            shoot();
    };
    connect(session_, &Session::evaluated, this, [pending, step] {
        if (*pending > 0)
            step();
    });
    connect(session_, &Session::histogramsReady, this, [pending, step] {
        if (*pending > 0)
            step();
    });
    connect(session_, &Session::failed, this, [this, path] {  // an error dialog is worth a picture too
        QTimer::singleShot(200, this, [this, path] { QApplication::exit(grab().save(path) ? 1 : 2); });
    });
}

}  // namespace qe
