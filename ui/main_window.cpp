#include "main_window.h"

#include "layer_table_model.h"
#include "session.h"

#include <QAction>
#include <QApplication>
#include <QFileDialog>
#include <QFileInfo>
#include <QHeaderView>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QProgressBar>
#include <QSplitter>
#include <QStatusBar>
#include <QTableView>
#include <QTimer>
#include <QVBoxLayout>


namespace qe {

namespace {
constexpr std::size_t kEvaluationImages = 1000;
}

MainWindow::MainWindow(QWidget* parent)
    : QMainWindow(parent), session_(new Session(this)), layers_(new LayerTableModel(this)), table_(new QTableView(this)),
      summary_(new QLabel(this)), accuracy_(new QLabel(this)), progress_(new QProgressBar(this))
{
    setWindowTitle(tr("Quantization Explorer"));
    resize(1100, 700);

    QMenu* file = menuBar()->addMenu(tr("&File"));
    file->addAction(tr("Open &Model..."), QKeySequence::Open, this, &MainWindow::openModelDialog);
    file->addAction(tr("Open &Images..."), this, &MainWindow::openImagesDialog);
    file->addSeparator();
    file->addAction(tr("&Quit"), QKeySequence::Quit, qApp, &QApplication::quit);

    table_->setModel(layers_);
    table_->setSelectionBehavior(QAbstractItemView::SelectRows);
    table_->horizontalHeader()->setSectionResizeMode(LayerTableModel::Name, QHeaderView::Stretch);
    table_->verticalHeader()->hide();
    table_->setAlternatingRowColors(true);

    auto* side = new QWidget(this);
    auto* sideLayout = new QVBoxLayout(side);
    summary_->setWordWrap(true);
    summary_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    summary_->setAlignment(Qt::AlignTop | Qt::AlignLeft);
    accuracy_->setWordWrap(true);
    accuracy_->setAlignment(Qt::AlignTop | Qt::AlignLeft);
    QFont big = accuracy_->font();
    big.setPointSizeF(big.pointSizeF() * 1.3);
    accuracy_->setFont(big);
    sideLayout->addWidget(summary_);
    sideLayout->addWidget(accuracy_);
    sideLayout->addStretch();

    auto* splitter = new QSplitter(this);
    splitter->addWidget(table_);
    splitter->addWidget(side);
    side->setMinimumWidth(340);
    splitter->setStretchFactor(0, 3);
    splitter->setStretchFactor(1, 2);
    splitter->setSizes({700, 400});
    setCentralWidget(splitter);

    progress_->setMaximumWidth(240);
    progress_->hide();
    statusBar()->addPermanentWidget(progress_);

    connect(session_, &Session::loaded, this, &MainWindow::showLoaded);
    connect(session_, &Session::evaluated, this, &MainWindow::showAccuracy);
    connect(session_, &Session::failed, this, &MainWindow::showError);
    connect(session_, &Session::progress, this, [this](int done, int total) {
        progress_->setRange(0, total);
        progress_->setValue(done);
    });
}

void MainWindow::openSession(const QString& modelPath, const QString& dataPath)
{
    modelPath_ = modelPath;
    dataPath_ = dataPath;
    statusBar()->showMessage(tr("Loading %1 ...").arg(QFileInfo(modelPath).fileName()));
    session_->open(modelPath, dataPath);
}

void MainWindow::saveScreenshotWhenReady(const QString& path)
{
    auto save = [this, path] {
        QTimer::singleShot(200, this, [this, path] {
            const bool ok = grab().save(path);
            QApplication::exit(ok ? 0 : 1);
        });
    };
    connect(session_, &Session::evaluated, this, save);
    connect(session_, &Session::failed, this, save);  // an error dialog is worth a picture too
}

void MainWindow::openModelDialog()
{
    const QString path = QFileDialog::getOpenFileName(this, tr("Open Model"), QFileInfo(modelPath_).path(),
                                                      tr("ONNX models (*.onnx);;All files (*)"));
    if (!path.isEmpty())
        openSession(path, dataPath_);
}

void MainWindow::openImagesDialog()
{
    const QString path = QFileDialog::getOpenFileName(this, tr("Open Images"), QFileInfo(dataPath_).path(),
                                                      tr("Images and data sets (*.gz *-ubyte *.bin *.png *.jpg *.jpeg *.bmp);;All files (*)"));
    if (!path.isEmpty())
        openSession(modelPath_, path);
}

void MainWindow::showLoaded()
{
    const auto snapshot = session_->snapshot();
    const Graph& graph = *snapshot->graph;
    layers_->setGraph(snapshot->graph);
    for (int column = LayerTableModel::Operator; column < LayerTableModel::ColumnCount; ++column)
        table_->resizeColumnToContents(column);

    QString ops;
    for (const auto& [op, count] : graph.operatorCounts())
        ops += QStringLiteral("%1 ×%2  ").arg(QString::fromStdString(op)).arg(count);
    const ValueInfo& input = graph.inputs.at(0);
    summary_->setText(tr("<h3>%1</h3><p><b>Input</b> %2 %3<br><b>Opset</b> %4<br><b>Nodes</b> %5<br><b>Parameters</b> %6</p>"
                         "<p><b>Operators</b> %7</p><p><b>Images</b> %8</p>")
                          .arg(QFileInfo(snapshot->modelPath).fileName().toHtmlEscaped(),
                               QString::fromStdString(input.name).toHtmlEscaped(),
                               QString::fromStdString(symbolicShapeToString(input.shape)))
                          .arg(graph.opsetVersion)
                          .arg(graph.nodes.size())
                          .arg(QLocale().toString(qlonglong(graph.parameterCount())))
                          .arg(ops.toHtmlEscaped(), QString::fromStdString(snapshot->dataset->description()).toHtmlEscaped()));
    accuracy_->setText(tr("Evaluating the float model ..."));
    setWindowTitle(tr("%1 - Quantization Explorer").arg(QFileInfo(snapshot->modelPath).fileName()));
    statusBar()->showMessage(tr("Evaluating on %1 images ...").arg(std::min(kEvaluationImages, snapshot->dataset->size())));
    progress_->show();
    session_->evaluate(kEvaluationImages);
}

void MainWindow::showAccuracy(const ClassificationResult& result)
{
    progress_->hide();
    statusBar()->showMessage(tr("Ready"), 3000);
    accuracy_->setText(tr("<b>Float model</b><br>top-1 %1%<br>top-5 %2%<br><small>on %3 labelled images</small>")
                           .arg(100.0 * result.top1(), 0, 'f', 2)
                           .arg(100.0 * result.top5(), 0, 'f', 2)
                           .arg(result.count));
}

void MainWindow::showError(const QString& message)
{
    progress_->hide();
    statusBar()->showMessage(tr("Failed"), 5000);
    QMessageBox::critical(this, tr("Quantization Explorer"), message);
}

}  // namespace qe
