// MainWindow: construction and layout of the panels, the connections that keep them current, and
// the layer selection.

#include "main_window.h"

#include "config_document.h"
#include "confusion_matrix_widget.h"
#include "gallery_model.h"
#include "graph_view.h"
#include "integer_trace_view.h"
#include "layer_edit_delegate.h"
#include "layer_table_model.h"
#include "pareto_view.h"
#include "playground_view.h"
#include "qat_dialog.h"
#include "search_dialog.h"
#include "sensitivity_view.h"
#include "session.h"

#include "lesson/lesson.h"

#include <QAction>
#include <QCheckBox>
#include <QComboBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QListView>
#include <QMenu>
#include <QProgressBar>
#include <QPushButton>
#include <QScrollArea>
#include <QScrollBar>
#include <QSignalBlocker>
#include <QSpinBox>
#include <QSortFilterProxyModel>
#include <QSplitter>
#include <QStatusBar>
#include <QTabWidget>
#include <QTableView>
#include <QTextBrowser>
#include <QToolButton>
#include <QVBoxLayout>

#include <algorithm>

namespace qe {

MainWindow::MainWindow(QWidget* parent)
    : QMainWindow(parent), session_(new Session(this)), document_(new ConfigDocument(this)),
      layers_(new LayerTableModel(document_, this)), sorted_(new QSortFilterProxyModel(this)), table_(new QTableView(this)),
      errorChart_(new ErrorChart(layers_, this)), errorMode_(new QComboBox(this)), errorScroll_(new QScrollArea(this)),
      weightHistogram_(new HistogramChart(tr("weight_histogram"), this)),
      activationHistogram_(new HistogramChart(tr("activation_histogram"), this)), logScale_(new QCheckBox(tr("Log scale"), this)),
      channel_(new QSpinBox(this)), channelRanges_(new ChannelRangeChart(this)), repairBar_(new RepairBar(document_, this)),
      equalizationChart_(new RepairChart(RepairChart::Equalization, this)),
      biasShiftChart_(new RepairChart(RepairChart::BiasShift, this)), adaRoundChart_(new RepairChart(RepairChart::AdaRoundFlips, this)),
      details_(new QTextBrowser(this)), accuracySummary_(new QLabel(this)), integerSummary_(new QLabel(this)),
      runIntegerEngine_(new QPushButton(tr("Run int8 engine"), this)), headline_(new QLabel(this)),
      dataWarnings_(new QLabel(this)),
      confusion_(new ConfusionMatrixWidget(this)), gallery_(new GalleryModel(this)),
      galleryView_(new QListView(this)), changedOnly_(new QCheckBox(tr("Only images whose prediction changed"), this)),
      imageErrors_(new ImageErrorChart(this)), graph_(new GraphView(this)), sensitivity_(new SensitivityView(session_, document_, this)),
      pareto_(new ParetoView(session_, document_, this)), playground_(new PlaygroundView(this)),
      traceView_(new IntegerTraceView(session_, this)), tabs_(new QTabWidget(this)), progress_(new QProgressBar(this)),
      exportProgress_(new QProgressBar(this)),
      cancel_(new QToolButton(this)), timing_(new QLabel(this)), recentMenu_(nullptr)
{
    resize(1440, 900);
    setAcceptDrops(true);
    buildComparisonWidgets();
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
    connect(layers_, &LayerTableModel::editRejected, this, [this](const QString& message) {
        statusBar()->showMessage(tr("Not applied: %1").arg(message), 8000);
    });
    connect(table_->selectionModel(), &QItemSelectionModel::currentRowChanged, this, [this] {
        const int row = selectedLayer();
        errorChart_->setSelectedLayer(row);
        scrollErrorChartToSelection();
        graph_->setSelectedLayer(row);
        if (row >= 0) {
            const QString name = QString::fromStdString(layers_->layerName(row));
            weightHistogram_->setHistogram(std::nullopt, tr("Weights of %1 ...").arg(name));
            activationHistogram_->setHistogram(std::nullopt, tr("Activations of %1 ...").arg(name));
            channelRanges_->setRanges(std::nullopt, tr("Channels of %1 ...").arg(name));
            // A new layer starts on all its channels.
            const QSignalBlocker blocker(channel_);
            channel_->setValue(-1);
            session_->setFocusLayer(layers_->layerName(row), -1);
            traceView_->setLayer(layers_->layerName(row));
        }
        showDetails();
        showRepairs();
    });
    connect(repairBar_, &RepairBar::editRejected, this, [this](const QString& message) {
        statusBar()->showMessage(tr("Not applied: %1").arg(message), 8000);
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
    // The warnings about the numbers, above them (showWarnings()).
    dataWarnings_->setObjectName("dataWarnings");
    dataWarnings_->setWordWrap(true);
    dataWarnings_->setTextFormat(Qt::RichText);
    dataWarnings_->setStyleSheet("QLabel { background: #fff3cd; color: #664d03; border: 1px solid #e0c060; padding: 4px; }");
    dataWarnings_->hide();
    tableLayout->addWidget(dataWarnings_);
    tableLayout->addWidget(headline_);
    tableLayout->addWidget(comparisonLine_);
    // The repair switches are a long row: in a narrow window it scrolls instead of widening it.
    repairScroll_ = new QScrollArea(this);
    repairScroll_->setWidget(repairBar_);
    repairScroll_->setWidgetResizable(true);
    repairScroll_->setFrameShape(QFrame::NoFrame);
    repairScroll_->setVerticalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    repairScroll_->setSizePolicy(QSizePolicy::Preferred, QSizePolicy::Fixed);
    fitRepairBarHeight();
    tableLayout->addWidget(repairScroll_);
    tableLayout->addWidget(table_);

    errorPanel_ = new QWidget(this);
    QWidget* errorPanel = errorPanel_;
    auto* errorLayout = new QVBoxLayout(errorPanel);
    errorLayout->setContentsMargins(4, 0, 4, 4);
    auto* errorBar = new QHBoxLayout;
    errorMode_->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);  // a narrow window elides it
    errorMode_->setMinimumContentsLength(14);
    for (ErrorChart::Mode mode : {ErrorChart::SqnrDb, ErrorChart::Mse, ErrorChart::RoundingNoise})
        errorMode_->addItem(errorModeName(mode, false), mode);
    errorBar->addWidget(new QLabel(tr("Per-layer error:"), this));
    errorBar->addWidget(errorMode_);
    errorBar->addStretch();
    auto* clickHint = new QLabel(tr("<small>click a bar to select its layer</small>"), this);
    clickHint->setWordWrap(true);
    clickHint->setObjectName("hint");  // hidden in presentation mode
    errorBar->addWidget(clickHint);
    errorLayout->addLayout(errorBar);
    // The chart grows with the number of layers; the panel scrolls it.
    errorScroll_->setWidget(errorChart_);
    errorScroll_->setWidgetResizable(true);
    errorScroll_->setFrameShape(QFrame::NoFrame);
    errorLayout->addWidget(errorScroll_);
    connect(errorMode_, &QComboBox::currentIndexChanged, this,
            [this] { errorChart_->setMode(ErrorChart::Mode(errorMode_->currentData().toInt())); });
    connect(errorChart_, &ErrorChart::layerClicked, this, &MainWindow::selectLayer);
    // The bars move when the chart is laid out again (a new model, another mode, a resize).
    connect(errorChart_->chart(), &QChart::plotAreaChanged, this, &MainWindow::scrollErrorChartToSelection);
    auto* hoverHint = new QLabel(tr("<small>hover a bar for its value</small>"), this);
    hoverHint->setWordWrap(true);
    hoverHint->setObjectName("hint");
    errorBar->addWidget(hoverHint);

    // The views of the selected layer and of the whole model.
    details_->setOpenLinks(false);
    // Each view scrolls inside its tab when the window is smaller than it needs: a tab widget is
    // otherwise as large as its largest page, whichever is shown, which no projector at 1280x720
    // would fit.
    auto addView = [this](QWidget* page, const QString& name) {
        auto* area = new QScrollArea(tabs_);
        area->setWidget(page);
        area->setWidgetResizable(true);
        area->setFrameShape(QFrame::NoFrame);
        tabs_->addTab(area, name);
    };
    addView(buildHistogramTab(), tr("Histograms"));
    addView(details_, tr("Layer details"));
    addView(buildAccuracyTab(), tr("Accuracy"));
    addView(buildImagesTab(), tr("Images"));
    addView(buildChannelTab(), tr("Channels"));
    addView(buildRepairsTab(), tr("Repairs"));
    addView(buildGraphTab(), tr("Graph"));
    addView(sensitivity_, tr("Sensitivity"));
    addView(pareto_, tr("Pareto"));
    addView(playground_, tr("Playground"));
    addView(traceView_, tr("Integer arithmetic"));
    connect(playground_, &PlaygroundView::changed, this, &MainWindow::lessonViewsChanged);
    connect(traceView_, &IntegerTraceView::traced, this, &MainWindow::lessonViewsChanged);
    connect(sensitivity_, &SensitivityView::message, this, [this](const QString& text) { statusBar()->showMessage(text, 8000); });
    connect(pareto_, &ParetoView::searchRequested, this, &MainWindow::showSearchDialog);

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

    // One edit's path: a view proposes it to the document, which records it for undo and emits
    // changed(); the table repaints its cells (its own connection), the views that read the
    // configuration itself follow, and the session evaluates it. The metrics come back through
    // the session's evaluated().
    connect(document_, &ConfigDocument::changed, this, &MainWindow::showConfigChanged);
    connect(document_, &ConfigDocument::changed, session_, &Session::setConfig);
    connect(document_, &ConfigDocument::savedStateChanged, this, &MainWindow::updateTitle);

    connect(session_, &Session::loaded, this, &MainWindow::showLoaded);
    connect(session_, &Session::evaluated, this, &MainWindow::showEvaluation);
    connect(session_, &Session::histogramsReady, this, &MainWindow::showHistograms);
    connect(session_, &Session::failed, this, &MainWindow::showError);
    connect(session_, &Session::warning, this, &MainWindow::showStudyWarning);
    connect(session_, &Session::failed, this, [this] { keepConfigurationFor_.reset(); });
    connect(session_, &Session::progress, this, &MainWindow::showProgress);
    connect(session_, &Session::runningTop1, this, &MainWindow::showRunningTop1);
    connect(session_, &Session::evaluationStarted, this, [this] {
        runningTop1_.clear();
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
    // half-destroyed window, or start an evaluation, any more.
    layers_->setEditScope({});
    layers_->disconnect(this);
    document_->disconnect(this);
    document_->disconnect(session_);
    session_->disconnect(this);
}

void MainWindow::fitRepairBarHeight()
{
    repairScroll_->setFixedHeight(repairBar_->sizeHint().height() + repairScroll_->horizontalScrollBar()->sizeHint().height());
}

QWidget* MainWindow::buildHistogramTab()
{
    auto* tab = new QWidget(this);
    auto* layout = new QVBoxLayout(tab);
    auto* bar = new QHBoxLayout;
    auto* legend = new QLabel(tr("<small>Blue: the float values; red: the mass outside the clipping range; grey ticks: "
                                 "the quantization levels; bars above: each calibration method's range.</small>"),
                              this);
    legend->setWordWrap(true);  // a narrow window (a projector's 1280 pixels) wraps it instead of widening
    legend->setObjectName("hint");
    bar->addWidget(legend, 1);
    // The weight histogram's channel: all of them, or one, whose own levels and range are drawn.
    channel_->setRange(-1, 0);
    channel_->setSpecialValueText(tr("all"));
    channel_->setValue(-1);
    channel_->setToolTip(tr("The output channel whose weights the histogram shows, with that channel's levels and clipping "
                            "range (per-channel quantization gives each its own); \"all\" shows every weight"));
    connect(channel_, &QSpinBox::valueChanged, this, [this](int channel) {
        const int row = selectedLayer();
        if (row >= 0)
            session_->setFocusLayer(layers_->layerName(row), channel);
    });
    bar->addWidget(new QLabel(tr("Weight channel:"), this));
    bar->addWidget(channel_);
    bar->addSpacing(12);
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

QWidget* MainWindow::buildChannelTab()
{
    auto* tab = new QWidget(this);
    auto* layout = new QVBoxLayout(tab);
    // Word-wrapped: a label this long would otherwise set the window's minimum width.
    auto* legend = new QLabel(tr("<small>Blue: each output channel's range of weights (for a layer without weights, such as a "
                                    "LayerNorm: each channel's range of its activation over the images, where a transformer's "
                                    "outlier channels show); dashed red: the range one per-tensor quantizer gives them all; points "
                                    "(right axis): the share of each channel's values that round to zero. Click a weight channel "
                                    "to see its histogram.</small>"),
                                 this);
    legend->setWordWrap(true);
    layout->addWidget(legend);
    layout->addWidget(channelRanges_, 1);
    connect(channelRanges_, &ChannelRangeChart::channelClicked, this, [this](int channel) {
        if (!channel_->isEnabled())
            return;  // an activation's channels: the histograms show the whole tensor
        channel_->setValue(channel);
        tabs_->setCurrentIndex(0);  // the histograms
    });
    return tab;
}

QWidget* MainWindow::buildRepairsTab()
{
    auto* tab = new QWidget(this);
    auto* layout = new QVBoxLayout(tab);
    auto* legend = new QLabel(tr("<small>What the repairs (the switches above the table) did to the selected layer: each "
                                 "channel's weight range before (orange) and after (blue) equalization, the mean output "
                                 "shift bias correction subtracted, and the share of weights AdaRound rounded the other way. "
                                 "Hover a channel for its numbers; the layer details give the formulas.</small>"),
                              tab);
    legend->setWordWrap(true);
    layout->addWidget(legend);
    auto* split = new QSplitter(Qt::Vertical, tab);
    for (RepairChart* chart : {equalizationChart_, biasShiftChart_, adaRoundChart_}) {
        chart->setMinimumHeight(180);
        split->addWidget(chart);
    }
    layout->addWidget(split, 1);
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
    layout->addWidget(comparisonSummary_);
    // The configurations tried, against their size, are the Pareto tab's.
    layout->addWidget(new QLabel(tr("<b>Confusion matrix</b> of the quantized model (rows: true class)"), tab));
    layout->addWidget(confusion_, 1);
    return tab;
}

QWidget* MainWindow::buildGraphTab()
{
    auto* tab = new QWidget(this);
    auto* layout = new QVBoxLayout(tab);
    auto* bar = new QHBoxLayout;
    auto* legend = new QLabel(tab);
    legend->setWordWrap(true);
    auto swatch = [](const QColor& c) { return QStringLiteral("<span style='background:%1'>&nbsp;&nbsp;&nbsp;</span>").arg(c.name()); };
    legend->setText(tr("<small>accumulated SQNR at each layer: %1 ≥ 30 dB %2 20–30 %3 10–20 %4 &lt; 10 dB; "
                       "white: kept in float, grey: not a layer. Click a node to select its layer; Ctrl + wheel zooms.</small>")
                        .arg(swatch(GraphView::colourForSqnr(40)), swatch(GraphView::colourForSqnr(25)),
                             swatch(GraphView::colourForSqnr(15)), swatch(GraphView::colourForSqnr(5))));
    auto* fit = new QPushButton(tr("Fit"), tab);
    bar->addWidget(legend, 1);
    bar->addWidget(fit);
    layout->addLayout(bar);
    layout->addWidget(graph_);
    connect(fit, &QPushButton::clicked, graph_, &GraphView::fitWholeModel);
    connect(graph_, &GraphView::layerClicked, this, &MainWindow::selectLayer);
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
    imagesLegend_ = new QLabel(imagesLegendText(false), tab);
    imagesLegend_->setWordWrap(true);
    layout->addWidget(imagesLegend_);
    layout->addWidget(changedOnly_);
    layout->addWidget(differingOnly_);
    auto* split = new QSplitter(Qt::Vertical, tab);
    split->addWidget(galleryView_);
    split->addWidget(imageErrors_);
    split->setStretchFactor(0, 3);
    split->setStretchFactor(1, 2);
    split->setSizes({320, 240});
    // The per-image chart needs room for its axis title and tick labels.
    imageErrors_->setMinimumHeight(220);
    layout->addWidget(split, 1);
    connect(changedOnly_, &QCheckBox::toggled, gallery_, &GalleryModel::setChangedOnly);
    connect(galleryView_, &QListView::clicked, this, [this](const QModelIndex& index) {
        session_->requestImageErrors(std::size_t(index.data(GalleryModel::ImageIndexRole).toULongLong()));
    });
    return tab;
}

QatDialog* MainWindow::showQatDialog()
{
    if (!qatDialog_) {
        qatDialog_ = new QatDialog(session_, document_, this);
        connect(qatDialog_, &QatDialog::fineTunedModelSaved, this, &MainWindow::openFineTunedModel);
    }
    qatDialog_->show();
    qatDialog_->raise();
    return qatDialog_;
}

SearchDialog* MainWindow::showSearchDialog()
{
    if (!searchDialog_)
        searchDialog_ = new SearchDialog(session_, document_, this);
    searchDialog_->show();
    searchDialog_->raise();
    showView(pareto_);  // the candidates appear there as they are evaluated
    return searchDialog_;
}

// ---- the layer selection ------------------------------------------------------------------------

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

void MainWindow::scrollErrorChartToSelection()
{
    // The whole row of bars in view, or as much of it as fits, names on the left.
    const QRect bars = errorChart_->layerBarRect(selectedLayer());
    if (!bars.isEmpty())
        errorScroll_->ensureVisible(0, bars.center().y(), 0, bars.height());
}

void MainWindow::showView(QWidget* view)
{
    for (int i = 0; i < tabs_->count(); ++i)
        if (auto* area = qobject_cast<QScrollArea*>(tabs_->widget(i)); area && area->widget() == view)
            tabs_->setCurrentIndex(i);
}

}  // namespace qe
