// MainWindow: exports (metrics CSV, QDQ model, encodings, report), the int8 engine and its results,
// and the screenshots scripts/screenshot takes.

#include "main_window.h"
#include "qat_dialog.h"

#include "common/atomic_file.h"
#include "common/error.h"
#include "config_document.h"
#include "gallery_model.h"
#include "graph_view.h"
#include "layer_table_model.h"
#include "pareto_view.h"
#include "search_dialog.h"
#include "sensitivity_view.h"
#include "session.h"

#include <QAction>
#include <QApplication>
#include <QLabel>
#include <QSpinBox>
#include <QCheckBox>
#include <QDesktopServices>
#include <QDir>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QMessageBox>
#include <QProgressBar>
#include <QSaveFile>
#include <QPushButton>
#include <QStatusBar>
#include <QTabWidget>
#include <QTimer>
#include <QToolButton>
#include <QUrl>

#include <cstdio>

namespace qe {

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
        statusBar()->showMessage(tr("Exported %1: %2 activations and %3 weights/biases in integers, %4 tensors in float")
                                     .arg(name)
                                     .arg(result->activationEncodings)
                                     .arg(result->weightEncodings)
                                     .arg(result->warnings.size()),
                                 10000);
        if (!result->warnings.isEmpty()) {
            // Never silently changed: what QDQ cannot express is written in float, and said so.
            auto* box = new QMessageBox(QMessageBox::Warning, tr("Exported with Float Layers"),
                                        tr("%1 was written, but ONNX's 8-bit QDQ format cannot express %n of the "
                                           "quantizations you chose. Those tensors are in float there (weights as their "
                                           "dequantized values); everything else is quantized as configured. The "
                                           "encodings file lists their own parameters.",
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
        statusBar()->showMessage(tr("int8 engine: top-1 %1 on %2 images").arg(accuracyText(result->integer->top1)).arg(result->integer->images),
                                 10000);
        break;
    }
}

void MainWindow::showExportError(const QString& path, const QString& message)
{
    endExport();
    const QString text = path.isEmpty() ? tr("%1 failed:\n\n%2").arg(exportDescription_, message)
                                        : tr("Could not write %1:\n\n%2").arg(QDir::toNativeSeparators(path), message);
    if (endScriptedRun(text))
        return;
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
                       .arg(accuracyText(r.top1), accuracyText(r.simulatedTop1), accuracyText(r.agreementWithSimulation),
                            accuracyText(r.agreementUpToTies), accuracyText(r.outputWithinOneLsb))
                       .arg(ms, 0, 'f', ms < 1 ? 3 : 2)
                       .arg(r.images);
    if (!(integerConfig_ == document_->config()))
        text = "<span style='color:gray'>" + text + tr(" \u2014 for an earlier configuration; run it again</span>");
    integerSummary_->setText(text);
}

// ---- screenshots --------------------------------------------------------------------------------

bool MainWindow::writeSummaryJson(const QString& path) const
{
    const std::optional<Summary> line = summary();
    if (!line)
        return false;
    QJsonObject json{{"model", QFileInfo(modelPath_).fileName()},
                     {"top1", line->top1},
                     {"float_top1", line->floatTop1},
                     {"agreement", line->agreement},
                     {"images", qint64(line->images)},
                     {"data", line->data},
                     {"data_description", line->dataDescription},
                     {"label_column", line->labelColumn},
                     {"warnings", QJsonArray::fromStringList(line->warnings)},
                     {"study_warnings", QJsonArray::fromStringList(line->studyWarnings)},
                     {"size_kib", line->sizeKiB},
                     {"float_size_kib", line->floatSizeKiB},
                     {"bits_per_weight", line->bitsPerWeight}};
    if (const QJsonObject comparison = comparisonJson(); !comparison.isEmpty())
        json["comparison"] = comparison;
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly))
        return false;
    file.write(QJsonDocument(json).toJson());
    return file.commit();
}

bool MainWindow::endScriptedRun(const QString& message)
{
    if (!scripted_)
        return false;
    noteScripted(tr("error: %1").arg(message));
    // Queued: the event loop may not run yet (an error while the window starts), and exit()
    // before exec() would be forgotten.
    QMetaObject::invokeMethod(qApp, [] { QApplication::exit(2); }, Qt::QueuedConnection);
    return true;
}

void MainWindow::noteScripted(const QString& message) const
{
    if (scripted_)
        std::fprintf(stderr, "quantexplorer: %s\n", message.toLocal8Bit().constData());
}

void MainWindow::saveScreenshotWhenReady(const QString& path, bool withPrecisionViews)
{
    scripted_ = true;
    // Waits for the first evaluation and the selected layer's histograms (and, with a
    // configuration B to compare with, B's evaluation and the histograms under both), then walks
    // the views; the last ones need a sensitivity sweep and a search of their own, run as a user
    // runs them.
    const bool comparing = !pendingComparePath_.isEmpty();
    auto shot = std::make_shared<bool>(false);
    auto shoot = [this, path, withPrecisionViews] {
        const QString base = path.endsWith(".png") ? path.chopped(4) : path;
        QTimer::singleShot(300, this, [this, base, path, withPrecisionViews] {
            bool ok = writeSummaryJson(path + ".json");
            ok = grab().save(base + ".png") && ok;
            tabs_->setCurrentIndex(1);
            ok = grab().save(base + "_details.png") && ok;
            tabs_->setCurrentIndex(4);
            ok = grab().save(base + "_channels.png") && ok;
            tabs_->setCurrentIndex(5);
            ok = grab().save(base + "_repairs.png") && ok;
            tabs_->setCurrentIndex(2);
            ok = grab().save(base + "_accuracy.png") && ok;
            tabs_->setCurrentIndex(6);  // the graph
            graph_->fitWholeModel();
            ok = grab().save(base + "_graph.png") && ok;
            tabs_->setCurrentIndex(3);
            (comparison() ? differingOnly_ : changedOnly_)->setChecked(true);
            auto allSaved = std::make_shared<bool>(ok);
            // The sweep and the search take minutes on a real model, and the search needs held-out
            // images: only when asked for.
            auto precisionViews = [this, base, allSaved, withPrecisionViews] {
                if (qatShotSteps_ > 0)
                    shootQat(base, allSaved);
                else if (withPrecisionViews)
                    shootPrecisionViews(base, allSaved);
                else
                    QApplication::exit(*allSaved ? 0 : 1);
            };
            if (gallery_->rowCount() > 0) {
                auto once = std::make_shared<bool>(false);
                connect(session_, &Session::imageErrorsReady, this, [this, base, allSaved, once, precisionViews] {
                    if (std::exchange(*once, true))
                        return;
                    QTimer::singleShot(200, this, [this, base, allSaved, precisionViews] {
                        *allSaved = grab().save(base + "_images.png") && *allSaved;
                        precisionViews();
                    });
                });
                session_->requestImageErrors(std::size_t(gallery_->index(0).data(GalleryModel::ImageIndexRole).toULongLong()));
            } else {
                *allSaved = grab().save(base + "_images.png") && *allSaved;
                precisionViews();
            }
        });
    };
    auto ready = [this, comparing] {
        return session_->evaluation() && session_->histograms() &&
               (!comparing || (session_->comparison() && session_->comparisonHistograms()));
    };
    auto step = [shot, ready, shoot] {
        if (!*shot && ready())
            *shot = true, shoot();
    };
    connect(session_, &Session::evaluated, this, step);
    connect(session_, &Session::histogramsReady, this, step);
    connect(session_, &Session::comparisonEvaluated, this, step);
    connect(session_, &Session::comparisonFailed, this, [shot, shoot] {  // shown without B
        if (!*shot)
            *shot = true, shoot();
    });
    // A failure ends the run through showError() (endScriptedRun: the message on stderr, exit 2).
}

void MainWindow::shootQat(const QString& base, std::shared_ptr<bool> ok)
{
    // Training as a user starts it from the dialog (its defaults, a fixed number of steps and a
    // checkpoint every tenth of them), the dialog at the end, then the fine-tuned model opened.
    QatDialog* dialog = showQatDialog();
    dialog->steps()->setValue(qatShotSteps_);
    dialog->checkpointEvery()->setValue(std::max(1, qatShotSteps_ / 10));
    connect(session_, &Session::qatFailed, this, [this, base](const QString& message) {
        qatDialog_->grab().save(base + "_qat.png");  // the failure, for whoever looks
        endScriptedRun(message);
    });
    connect(session_, &Session::qatFinished, this, [this, base, ok](std::shared_ptr<const QatResult>) {
        QTimer::singleShot(300, this, [this, base, ok] {
            *ok = qatDialog_->grab().save(base + "_qat.png") && *ok;
            auto once = std::make_shared<bool>(false);
            connect(session_, &Session::evaluated, this, [this, base, ok, once] {
                if (session_->snapshot()->modelPath != qatShotModel_ || std::exchange(*once, true))
                    return;
                QTimer::singleShot(300, this, [this, base, ok] {
                    tabs_->setCurrentIndex(0);
                    *ok = grab().save(base + "_qat_model.png") && *ok;
                    QApplication::exit(*ok ? 0 : 1);
                });
            });
            qatDialog_->hide();
            if (!qatDialog_->saveResult(qatShotModel_))
                endScriptedRun(qatDialog_->outcome()->text());
        });
    });
    if (!dialog->start())
        endScriptedRun(dialog->outcome()->text());
}

void MainWindow::shootPrecisionViews(const QString& base, std::shared_ptr<bool> ok)
{
    // The sensitivity map of the configuration shown, once every layer is measured (worst first);
    // then a search with the dialog's defaults, the dialog with its outcome, and the Pareto view
    // once its choice is applied and evaluated.
    showView(sensitivity_);
    auto searched = [this, base, ok](std::shared_ptr<const SearchResult>) {
        QTimer::singleShot(200, this, [this, base, ok] {
            *ok = searchDialog_->grab().save(base + "_search.png") && *ok;
            searchDialog_->apply();
            searchDialog_->hide();
            auto once = std::make_shared<bool>(false);
            connect(session_, &Session::evaluated, this, [this, base, ok, once] {
                if (std::exchange(*once, true))
                    return;
                QTimer::singleShot(300, this, [this, base, ok] {
                    showView(pareto_);
                    *ok = grab().save(base + "_pareto.png") && *ok;
                    QApplication::exit(*ok ? 0 : 1);
                });
            });
        });
    };
    connect(session_, &Session::sensitivityUpdated, this, [this, base, ok, searched] {
        const auto sweep = session_->sensitivity();
        if (!sweep || sweep->running || std::exchange(sweepShot_, true))
            return;
        sensitivity_->setWorstFirst(true);
        QTimer::singleShot(200, this, [this, base, ok, searched] {
            *ok = grab().save(base + "_sensitivity.png") && *ok;
            SearchDialog* dialog = showSearchDialog();
            connect(session_, &Session::searchFinished, this, searched);
            connect(session_, &Session::searchFailed, this, [this, base](const QString&) {
                searchDialog_->grab().save(base + "_search.png");  // the failure, for whoever looks
                QApplication::exit(1);
            });
            dialog->start();
        });
    });
    sensitivity_->measure();
}

}  // namespace qe
