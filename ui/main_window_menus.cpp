// MainWindow: the menus and their actions.

#include "main_window.h"

#include "common/error.h"
#include "config_document.h"
#include "confusion_matrix_widget.h"
#include "help.h"
#include "pareto_view.h"
#include "sensitivity_view.h"
#include "session.h"

#include <QAction>
#include <QCheckBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QMenu>
#include <QMenuBar>
#include <QMessageBox>
#include <QStatusBar>
#include <QTabWidget>
#include <QUndoStack>

namespace qe {

void MainWindow::buildMenus()
{
    QMenu* file = menuBar()->addMenu(tr("&File"));
    file->addAction(tr("Open &Model..."), QKeySequence::Open, this, [this] {
        const QString path = QFileDialog::getOpenFileName(this, tr("Open Model"), QFileInfo(modelPath_).path(),
                                                          tr("ONNX models (*.onnx);;All files (*)"));
        if (!path.isEmpty())
            openModel(path);
    });
    // Every model in the examples folder (resources/models): the CNN and the vision transformer.
    examplesMenu_ = file->addMenu(tr("Open E&xample"));
    examplesMenu_->setObjectName("examplesMenu");
    connect(examplesMenu_, &QMenu::aboutToShow, this, [this] {
        examplesMenu_->clear();
        const QFileInfoList models = QDir(examplesFolder_).entryInfoList({QStringLiteral("*.onnx")}, QDir::Files, QDir::Name);
        for (const QFileInfo& model : models)
            examplesMenu_->addAction(model.completeBaseName(), this, [this, path = model.filePath()] { openModel(path); });
        if (models.isEmpty())
            examplesMenu_->addAction(tr("(no examples in %1)").arg(examplesFolder_))->setEnabled(false);
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
        const QString path = QFileDialog::getOpenFileName(this, tr("Open Configuration"), QFileInfo(document_->path()).path(),
                                                          tr("Configurations (*.json);;All files (*)"));
        if (!path.isEmpty())
            openConfiguration(path);
    });
    file->addAction(tr("&Save Configuration"), QKeySequence::Save, this, [this] {
        const QString path = !document_->path().isEmpty() ? document_->path()
                                                           : QFileDialog::getSaveFileName(this, tr("Save Configuration"),
                                                                                   QFileInfo(modelPath_).completeBaseName() + ".quant.json",
                                                                                   tr("Configurations (*.json)"));
        if (!path.isEmpty())
            saveConfiguration(path);
    });
    file->addAction(tr("Save Configuration &As..."), QKeySequence::SaveAs, this, [this] {
        const QString path = QFileDialog::getSaveFileName(this, tr("Save Configuration"), document_->path(), tr("Configurations (*.json)"));
        if (!path.isEmpty())
            saveConfiguration(path);
    });
    file->addAction(tr("Restore &Autosaved Configuration"), this, [this] {
        const QString path = autosavePath();
        if (!QFileInfo::exists(path))
            QMessageBox::information(this, tr("Restore"), tr("No autosaved configuration for %1.").arg(QFileInfo(modelPath_).fileName()));
        else
            openConfiguration(path);
    });
    backToPrevious_ = file->addAction(tr("&Back to Previous Model"), this, &MainWindow::backToPreviousModel);
    backToPrevious_->setEnabled(false);  // until a fine-tuned model replaces the one shown
    backToPrevious_->setToolTip(tr("Returns to the model and configuration shown before the fine-tuned model was opened."));
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
                                                       {tr("Channel ranges"), channelRanges_},
                                                       {tr("Confusion matrix"), confusion_},
                                                       {tr("Pareto view"), pareto_->chart()},
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
    QAction* undo = document_->undoStack()->createUndoAction(this, tr("&Undo"));
    undo->setShortcut(QKeySequence::Undo);
    QAction* redo = document_->undoStack()->createRedoAction(this, tr("&Redo"));
    redo->setShortcut(QKeySequence::Redo);
    edit->addAction(undo);
    edit->addAction(redo);
    edit->addSeparator();
    edit->addAction(tr("Reset to the &Default Configuration"), this, [this] {
        QuantConfig reset;
        reset.model = QFileInfo(modelPath_).fileName().toStdString();
        document_->edit(reset, tr("reset to W8A8 default"));
    });
    edit->addAction(tr("Re-&evaluate"), QKeySequence::Refresh, this, [this] {
        // The status bar's time is this run's, not the time since the last edit.
        editClock_.start();
        session_->reevaluate(document_->config());
    });
    exportActions_ << edit->addAction(tr("Run the &int8 Engine"), QKeySequence(Qt::CTRL | Qt::Key_I), this, &MainWindow::runIntegerEngine);
    edit->addAction(tr("&Cancel Computation"), QKeySequence(Qt::Key_Escape), session_, &Session::cancel);

    QMenu* view = menuBar()->addMenu(tr("&View"));
    QAction* log = view->addAction(tr("&Log Scale Histograms"));
    log->setCheckable(true);
    connect(log, &QAction::toggled, logScale_, &QCheckBox::setChecked);
    connect(logScale_, &QCheckBox::toggled, log, &QAction::setChecked);
    presentationAction_ = view->addAction(tr("&Presentation Mode"), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_P));
    presentationAction_->setObjectName("presentationAction");
    presentationAction_->setCheckable(true);
    connect(presentationAction_, &QAction::toggled, this, &MainWindow::setPresentationMode);
    const QStringList tabNames = {tr("&Histograms"), tr("Layer &Details"), tr("&Accuracy"), tr("&Images"), tr("&Channels"),
                                  tr("&Repairs"),    tr("&Graph"),         tr("&Sensitivity"), tr("&Pareto")};
    for (int i = 0; i < tabNames.size(); ++i)
        view->addAction(tabNames[i], QKeySequence(Qt::CTRL | Qt::Key(Qt::Key_1 + i)), this, [this, i] { tabs_->setCurrentIndex(i); });

    QMenu* tools = menuBar()->addMenu(tr("&Tools"));
    tools->addAction(tr("Measure Layer &Sensitivity"), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_L), this, [this] {
        showView(sensitivity_);
        sensitivity_->measure();
    });
    tools->addAction(tr("Search &Mixed Precision..."), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_M), this, &MainWindow::showSearchDialog);
    tools->addAction(tr("Fine-Tune with &QAT..."), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_T), this, &MainWindow::showQatDialog);
    tools->addSeparator();
    tools->addAction(tr("&Evaluation Images and Memory..."), this, &MainWindow::askEvaluationSettings);

    buildCompareMenu();
    QMenu* help = menuBar()->addMenu(tr("&Help"));
    help->setObjectName("helpMenu");
    help->addAction(tr("&Guide"), QKeySequence::HelpContents, this,
                    [this] { showHelpText(this, tr("Guide \u2014 Quantization Explorer"), windowGuideMarkdown(), false); });
    QAction* lessons = help->addAction(tr("&Lessons"), this, &MainWindow::showLessonPanel);
    lessons->setObjectName("lessonsAction");
    help->addAction(tr("&Keyboard Shortcuts"), this,
                    [this] { showHelpText(this, tr("Keyboard Shortcuts"), shortcutsHtml(menuBar()), true); });
    help->addSeparator();
    help->addAction(tr("&About Quantization Explorer"), this,
                    [this] { QMessageBox::about(this, tr("About Quantization Explorer"), aboutHtml()); });
}

QString MainWindow::saveChartDialog(const QString& name)
{
    QString selected;
    return QFileDialog::getSaveFileName(this, tr("Export Chart"), name + ".png", tr("PNG images (*.png);;SVG drawings (*.svg)"), &selected);
}

}  // namespace qe
