// MainWindow: showing what the session publishes (the loaded model, progress, metrics, histograms, the
// selected layer's details, one image's errors, errors) and what follows a configuration change.

#include "main_window.h"

#include "config_document.h"
#include "confusion_matrix_widget.h"
#include "gallery_model.h"
#include "graph_view.h"
#include "layer_details.h"
#include "layer_table_model.h"
#include "session.h"

#include "common/memory.h"

#include <QCheckBox>
#include <QLocale>
#include <QFileInfo>
#include <QHeaderView>
#include <QLabel>
#include <QMessageBox>
#include <QProgressBar>
#include <QSignalBlocker>
#include <QSpinBox>
#include <QSplitter>
#include <QStatusBar>
#include <QTableView>
#include <QTextBrowser>
#include <QTimer>
#include <QToolButton>

#include <algorithm>
#include <cmath>

namespace qe {

void MainWindow::showConfigChanged()
{
    // The time the status bar reports runs from here to the evaluation of this configuration.
    editClock_.start();
    showDetails();
    showRepairs();
    showIntegerResults();
}

void MainWindow::showLoaded()
{
    const auto snapshot = session_->snapshot();
    modelPath_ = snapshot->modelPath;
    dataPath_ = snapshot->dataPath;
    previousModel_ = std::exchange(previousOnLoad_, std::nullopt);
    backToPrevious_->setEnabled(previousModel_.has_value());
    integer_.reset();
    layers_->setSession(snapshot);
    gallery_->setSession(snapshot);
    graph_->setModel(*snapshot->graph, snapshot->layers);
    imageErrors_->setErrors({}, {}, {}, tr("Click an image to see its per-layer error"));
    if (!snapshot->labelColumnNote.isEmpty())
        statusBar()->showMessage(tr("Labels: %1").arg(snapshot->labelColumnNote), 10000);
    studyWarnings_.clear();
    showWarnings();
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

    startConfiguration(*snapshot);
    updateExportActions();

    // Start on the first layer with weights: it has both histograms.
    int first = 0;
    for (int row = 0; row < layers_->rowCount(); ++row)
        if (layers_->hasWeights(row)) {
            first = row;
            break;
        }
    selectLayer(first);
    // A lesson step that opened this model: its layer and view.
    showLessonLayerAndView(std::exchange(pendingLessonLayer_, {}), std::exchange(pendingLessonView_, {}));
    headline_->setText(tr("<b>%1</b> on %2 \u2014 evaluating ...")
                           .arg(QFileInfo(modelPath_).fileName().toHtmlEscaped(),
                                QString::fromStdString(snapshot->dataset->description()).toHtmlEscaped()));
    headline_->setToolTip(QString::fromStdString(snapshot->dataset->description()));
    statusBar()->showMessage(tr("Calibrating on %1 and evaluating on %2 images ...")
                                 .arg(QFileInfo(snapshot->calibrationPath).fileName())
                                 .arg(snapshot->evaluationImages));
}

std::optional<MainWindow::Summary> MainWindow::summary() const
{
    const auto snapshot = session_->snapshot();
    const auto evaluation = session_->evaluation();
    if (!snapshot || !evaluation)
        return std::nullopt;
    const ModelMetrics& m = evaluation->metrics;
    Summary line;
    line.top1 = m.top1;
    line.floatTop1 = m.floatTop1;
    line.agreement = m.agreement;
    line.images = m.images;
    line.data = QFileInfo(snapshot->dataPath).fileName();
    line.dataDescription = QString::fromStdString(snapshot->dataset->description());
    line.labelColumn = snapshot->labelColumn;
    line.warnings = snapshot->dataWarnings;
    line.studyWarnings = studyWarnings_;
    line.sizeKiB = m.sizeBytes / 1024.0;
    line.floatSizeKiB = m.floatSizeBytes / 1024.0;
    line.bitsPerWeight = m.bitsPerWeight;
    return line;
}

void MainWindow::showProgress(const QString& stage, int done, int total)
{
    progress_->setRange(0, total);
    progress_->setValue(done);
    progress_->setFormat(stage + " %p%");
    progress_->show();
    cancel_->show();
    statusBar()->showMessage(tr("%1: %2 of %3 images").arg(stage).arg(done).arg(total) +
                             (runningTop1_.isEmpty() ? QString() : " \u00b7 " + runningTop1_));
}

void MainWindow::showRunningTop1(bool quantized, const RunningTop1& top1)
{
    const Interval interval = runningTop1Interval(top1);
    runningTop1_ = tr("%1 top-1 so far %2 on %3 images (95% interval for all %4: %5 to %6)")
                       .arg(quantized ? tr("quantized") : tr("float"), accuracyText(top1.value()))
                       .arg(top1.scored)
                       .arg(top1.total)
                       .arg(accuracyText(interval.low), accuracyText(interval.high));
    // Until a first result, the summary line says the same (later it keeps the last result).
    const auto snapshot = session_->snapshot();
    if (!session_->evaluation() && snapshot && snapshot->dataset)
        headline_->setText(tr("<b>%1</b> on %2 \u2014 evaluating: %3")
                               .arg(QFileInfo(modelPath_).fileName().toHtmlEscaped(),
                                    QString::fromStdString(snapshot->dataset->description()).toHtmlEscaped(),
                                    runningTop1_.toHtmlEscaped()));
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
    std::vector<double> accumulated;
    std::vector<bool> keptInFloat;
    for (const LayerMetrics& layer : m.layers) {
        accumulated.push_back(layer.accumulated.sqnrDb);
        keptInFloat.push_back(layer.keepFloat);
    }
    graph_->setErrors(accumulated, keptInFloat);
    changedOnly_->setText(tr("Only images whose prediction changed (%1 of %2)").arg(gallery_->changedCount()).arg(m.images));

    const double sizeKiB = m.sizeBytes / 1024.0, floatKiB = m.floatSizeBytes / 1024.0;
    const Summary line = *summary();
    const qsizetype warningCount = line.warnings.size() + line.studyWarnings.size();
    headline_->setText(tr("<b>top-1 %1</b> (float %2) \u00b7 agreement %3 \u00b7 <b>%4 KiB</b> (float %5 KiB) \u00b7 %6 bits/weight "
                          "<small>\u00b7 %7 images of <b>%8</b>%9%10</small>")
                           .arg(accuracyText(line.top1), accuracyText(line.floatTop1), accuracyText(line.agreement))
                           .arg(line.sizeKiB, 0, 'f', 1)
                           .arg(line.floatSizeKiB, 0, 'f', 1)
                           .arg(line.bitsPerWeight, 0, 'f', 2)
                           .arg(line.images)
                           .arg(line.data.toHtmlEscaped())
                           .arg(line.labelColumn.isEmpty() ? QString() : tr(", labels %1").arg(line.labelColumn.toHtmlEscaped()))
                           .arg(warningCount == 0 ? QString()
                                                  : tr(" \u00b7 <span style='color:#b00020'>\u26a0 %1 above</span>")
                                                        .arg(warningCount == 1 ? tr("1 warning") : tr("%1 warnings").arg(warningCount))));
    accuracySummary_->setText(
        tr("<table cellspacing=6><tr><th></th><th align=right>float</th><th align=right>quantized</th></tr>"
           "<tr><td><b>top-1</b></td><td align=right>%1</td><td align=right><b>%2</b></td></tr>"
           "<tr><td><b>top-5</b></td><td align=right>%3</td><td align=right>%4</td></tr>"
           "<tr><td><b>size</b></td><td align=right>%5 KiB</td><td align=right><b>%6 KiB</b> (%7\u00d7 smaller)</td></tr>"
           "<tr><td><b>bits per weight</b></td><td align=right>32</td><td align=right>%8</td></tr></table>"
           "<p>Top-1 agreement with float: <b>%9</b> (%10 of %11 predictions changed) \u00b7 output SQNR %12 dB</p>")
            .arg(accuracyText(m.floatTop1), accuracyText(m.top1), accuracyText(m.floatTop5), accuracyText(m.top5))
            .arg(floatKiB, 0, 'f', 1)
            .arg(sizeKiB, 0, 'f', 1)
            .arg(sizeKiB > 0 ? floatKiB / sizeKiB : 0.0, 0, 'f', 2)
            .arg(m.bitsPerWeight, 0, 'f', 2)
            .arg(accuracyText(m.agreement))
            .arg(gallery_->changedCount())
            .arg(m.images)
            .arg(std::isinf(m.outputSqnrDb) ? tr("exact") : QString::number(m.outputSqnrDb, 'f', 1)));
    QStringList names;
    for (std::size_t k = 0; k < snapshot->classNames.size(); ++k)
        names << QString::fromStdString(snapshot->classNames[k]);
    confusion_->setMatrix(evaluation->confusion, names);

    showDetails();
    showRepairs();

    const qint64 elapsed = editClock_.isValid() ? editClock_.elapsed() : 0;
    // The peak so far (the caches of every evaluation image stay in memory, issue 16).
    timing_->setText(tr("updated in %1 ms (worker %2 ms) \u00b7 peak memory %3")
                         .arg(elapsed)
                         .arg(evaluation->milliseconds, 0, 'f', 0)
                         .arg(QLocale().formattedDataSize(qint64(peakResidentBytes()), 1, QLocale::DataSizeTraditionalFormat)));
    statusBar()->showMessage(tr("Ready"), 3000);
    emit viewsUpdated();
}

void MainWindow::showHistograms()
{
    const auto histograms = session_->histograms();
    if (!histograms)
        return;
    const QString layer = QString::fromStdString(histograms->layer);
    if (histograms->weights) {
        const QSignalBlocker blocker(channel_);
        channel_->setMaximum(histograms->weights->channelCount - 1);
        channel_->setValue(histograms->weights->channel);
    }
    channel_->setEnabled(histograms->weights.has_value());
    weightHistogram_->setHistogram(histograms->weights, histogramTitle(tr("Weights"), layer, histograms->weights));
    activationHistogram_->setHistogram(histograms->activations, histogramTitle(tr("Activations"), layer, histograms->activations));
    channelRanges_->setRanges(histograms->channelRanges, tr("%1 has no weights").arg(layer));
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
    if (!(evaluation->config == document_->config()))
        html = tr("<p><i>Updating: these numbers belong to the previous configuration.</i></p>") + html;
    details_->setHtml(html);
}

void MainWindow::showRepairs()
{
    const auto evaluation = session_->evaluation();
    const std::shared_ptr<const RepairReport> report = evaluation ? evaluation->repairs : nullptr;
    repairBar_->setReport(report, evaluation && evaluation->config == document_->config());
    const int row = selectedLayer();
    const QString layer = row >= 0 ? QString::fromStdString(layers_->layerName(row)) : QString();
    for (RepairChart* chart : {equalizationChart_, biasShiftChart_, adaRoundChart_})
        chart->setLayer(report, layer);
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

void MainWindow::showStudyWarning(const QString& message)
{
    if (studyWarnings_.contains(message))
        return;
    studyWarnings_ << message;
    statusBar()->showMessage(tr("Warning: %1").arg(message), 10000);
    showWarnings();
}

void MainWindow::showWarnings()
{
    // A model evaluated on images it was not made for gives numbers that mean nothing, and a
    // calibration on the evaluation images flatters them: said plainly, above the numbers, for as
    // long as those images are loaded.
    const auto snapshot = session_->snapshot();
    auto items = [](const QStringList& texts) {
        QStringList lines;
        for (const QString& text : texts)
            lines << "\u26a0 " + text.toHtmlEscaped();
        return lines.join("<br>");
    };
    QStringList parts;
    if (snapshot && !snapshot->dataWarnings.isEmpty())
        parts << tr("<b>These images do not fit %1</b>; its accuracy on them means little:<br>%2")
                     .arg(QFileInfo(snapshot->modelPath).fileName().toHtmlEscaped(), items(snapshot->dataWarnings));
    if (!studyWarnings_.isEmpty())
        parts << items(studyWarnings_);
    dataWarnings_->setText(parts.join("<br>"));
    dataWarnings_->setVisible(!parts.isEmpty());
}

void MainWindow::showError(const QString& message)
{
    if (endScriptedRun(message))
        return;
    progress_->hide();
    cancel_->setVisible(session_->isExporting());
    statusBar()->showMessage(tr("Failed: %1").arg(message.section('\n', 0, 0)), 8000);
    QMessageBox::critical(this, tr("Quantization Explorer"), message);
}

}  // namespace qe
