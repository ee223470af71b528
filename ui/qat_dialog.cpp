#include "qat_dialog.h"

#include "charts.h"
#include "config_document.h"

#include "common/error.h"

#include <QChart>
#include <QCheckBox>
#include <QComboBox>
#include <QDialogButtonBox>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineSeries>
#include <QMessageBox>
#include <QProgressBar>
#include <QPushButton>
#include <QSpinBox>
#include <QTableWidget>
#include <QValueAxis>
#include <QVBoxLayout>

#include <cmath>

namespace qe {


QatDialog::QatDialog(Session* session, ConfigDocument* document, QWidget* parent)
    : QDialog(parent), session_(session), document_(document), epochs_(new QSpinBox(this)), steps_(new QSpinBox(this)),
      batch_(new QSpinBox(this)), optimizer_(new QComboBox(this)), learningRate_(new QDoubleSpinBox(this)),
      trainImages_(new QSpinBox(this)), checkpointEvery_(new QSpinBox(this)),
      learnRanges_(new QCheckBox(tr("Learn quantization steps (LSQ)"), this)), batchNormEpochs_(new QSpinBox(this)),
      seed_(new QSpinBox(this)),
      trainingData_(new QLabel(this)), chartView_(new ChartView(tr("QAT training"), this)), loss_(new QLineSeries(this)),
      top1_(new QLineSeries(this)), ptqLine_(new QLineSeries(this)), floatLine_(new QLineSeries(this)),
      stepAxis_(new QValueAxis(this)), lossAxis_(new QValueAxis(this)), top1Axis_(new QValueAxis(this)),
      progress_(new QProgressBar(this)), outcome_(new QLabel(this)), layers_(new QTableWidget(this)),
      start_(new QPushButton(tr("Start"), this)), cancel_(new QPushButton(tr("Cancel Training"), this)),
      open_(new QPushButton(tr("Open Fine-Tuned Model..."), this))
{
    setObjectName("qatDialog");
    setWindowTitle(tr("Fine-Tune with Quantization-Aware Training"));
    auto* layout = new QHBoxLayout(this);
    auto* left = new QVBoxLayout;
    auto* form = new QFormLayout;
    const QatOptions defaults;
    epochs_->setRange(1, 1000);
    epochs_->setValue(defaults.epochs);
    form->addRow(tr("Epochs:"), epochs_);
    steps_->setRange(0, 10'000'000);
    steps_->setSpecialValueText(tr("whole epochs"));
    steps_->setToolTip(tr("Stop after this many steps instead of whole epochs (the schedule spans them)."));
    form->addRow(tr("Steps:"), steps_);
    batch_->setRange(1, 4096);
    batch_->setValue(defaults.batchSize);
    form->addRow(tr("Batch size:"), batch_);
    optimizer_->addItem(tr("Adam"), int(QatOptimizer::Adam));
    optimizer_->addItem(tr("SGD with momentum 0.9"), int(QatOptimizer::Sgd));
    form->addRow(tr("Optimizer:"), optimizer_);
    learningRate_->setDecimals(6);
    learningRate_->setRange(1e-6, 10);
    learningRate_->setSingleStep(1e-4);
    learningRate_->setValue(1e-3);  // Adam's; the cosine schedule decays it to 0
    learningRate_->setToolTip(tr("The starting learning rate; a cosine schedule decays it to 0 over the run."));
    form->addRow(tr("Learning rate:"), learningRate_);
    trainImages_->setRange(0, 100'000'000);
    trainImages_->setSpecialValueText(tr("all"));
    form->addRow(tr("Training images:"), trainImages_);
    checkpointEvery_->setRange(0, 1'000'000);
    checkpointEvery_->setValue(100);
    checkpointEvery_->setSpecialValueText(tr("each epoch's end"));
    checkpointEvery_->setSuffix(tr(" steps"));
    checkpointEvery_->setToolTip(tr("How often the held-out top-1 is measured (and the activation ranges recalibrated), "
                                    "besides each epoch's end."));
    form->addRow(tr("Measure every:"), checkpointEvery_);
    learnRanges_->setObjectName("qatLearnRanges");
    learnRanges_->setToolTip(tr("Train each layer's activation step size with the weights (LSQ, Esser et al. 2020) instead of "
                                "recalibrating the ranges at each measurement, and the step of symmetric min-max weights too; "
                                "the fine-tuned configuration gives each layer its learned activation range, and the fine-tuned "
                                "model's weights are clipped at their learned steps. Helps most at 4 bits and below."));
    form->addRow(QString(), learnRanges_);
    batchNormEpochs_->setRange(0, 1000);
    batchNormEpochs_->setValue(defaults.batchNormEpochs);
    batchNormEpochs_->setSpecialValueText(tr("frozen from the start"));
    batchNormEpochs_->setSuffix(tr(" epoch(s)"));
    batchNormEpochs_->setToolTip(tr("For this many epochs a BatchNormalization folded into a convolution normalizes with each batch's "
                                    "statistics and updates its running ones; then they freeze and fold back into the weights. "
                                    "Models without BatchNormalization are unaffected."));
    form->addRow(tr("Freeze BN statistics after:"), batchNormEpochs_);
    seed_->setRange(0, 1'000'000);
    seed_->setValue(int(defaults.seed));
    form->addRow(tr("Seed:"), seed_);
    left->addLayout(form);
    trainingData_->setWordWrap(true);
    trainingData_->setTextFormat(Qt::RichText);
    left->addWidget(trainingData_);
    outcome_->setObjectName("qatOutcome");
    outcome_->setWordWrap(true);
    outcome_->setTextFormat(Qt::RichText);
    outcome_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    left->addWidget(outcome_, 1);
    layout->addLayout(left, 2);

    auto* right = new QVBoxLayout;
    QChart* chart = chartView_->chart();
    chart->setTitle(tr("Training loss and held-out top-1"));
    loss_->setName(tr("training loss"));
    loss_->setPen(QPen(colours::blue, 1.5));
    top1_->setName(tr("held-out top-1"));
    top1_->setPen(QPen(colours::orange, 2.5));
    top1_->setPointsVisible(true);
    ptqLine_->setName(tr("post-training"));
    ptqLine_->setPen(QPen(colours::purple, 2, Qt::DashLine));
    floatLine_->setName(tr("float"));
    floatLine_->setPen(QPen(colours::grey, 1.5, Qt::DotLine));
    for (QLineSeries* series : {loss_, top1_, ptqLine_, floatLine_})
        chart->addSeries(series);
    stepAxis_->setTitleText(tr("step"));
    stepAxis_->setLabelFormat("%d");
    lossAxis_->setLabelFormat("%.2f");
    lossAxis_->setTitleText(tr("loss"));
    top1Axis_->setTitleText(tr("top-1 (%)"));
    top1Axis_->setLabelFormat("%.1f");
    chart->addAxis(stepAxis_, Qt::AlignBottom);
    chart->addAxis(lossAxis_, Qt::AlignLeft);
    chart->addAxis(top1Axis_, Qt::AlignRight);
    loss_->attachAxis(stepAxis_);
    loss_->attachAxis(lossAxis_);
    for (QLineSeries* series : {top1_, ptqLine_, floatLine_}) {
        series->attachAxis(stepAxis_);
        series->attachAxis(top1Axis_);
    }
    chart->legend()->setAlignment(Qt::AlignBottom);
    chartView_->setMinimumSize(520, 300);
    right->addWidget(chartView_, 3);
    progress_->setRange(0, 0);
    progress_->hide();
    right->addWidget(progress_);
    layers_->setObjectName("qatLayers");
    layers_->setColumnCount(4);
    layers_->setHorizontalHeaderLabels({tr("Layer"), tr("SQNR before (dB)"), tr("SQNR after (dB)"), tr("Change (dB)")});
    layers_->horizontalHeader()->setSectionResizeMode(0, QHeaderView::Stretch);
    layers_->verticalHeader()->hide();
    layers_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    layers_->setToolTip(tr("Each layer's accumulated SQNR on the evaluation images: the quantized model up to the layer "
                           "against its own float model, before training (post-training) and after."));
    right->addWidget(layers_, 2);

    auto* buttons = new QDialogButtonBox(this);
    buttons->addButton(start_, QDialogButtonBox::ActionRole);
    buttons->addButton(cancel_, QDialogButtonBox::ActionRole);
    buttons->addButton(open_, QDialogButtonBox::ApplyRole);
    buttons->addButton(QDialogButtonBox::Close);
    right->addWidget(buttons);
    layout->addLayout(right, 3);
    start_->setDefault(true);
    cancel_->setEnabled(false);
    open_->setEnabled(false);
    cancel_->setToolTip(tr("Stops training; the result keeps the weights of the best checkpoint so far."));
    open_->setToolTip(tr("Saves the fine-tuned model where you say and opens it in the window with the configuration it "
                         "was trained for (File > Back to Previous Model returns)."));
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    connect(start_, &QPushButton::clicked, this, &QatDialog::start);
    connect(cancel_, &QPushButton::clicked, session_, &Session::cancelQat);
    connect(open_, &QPushButton::clicked, this, &QatDialog::askWhereAndSave);
    connect(session_, &Session::qatProgress, this, &QatDialog::showProgress);
    connect(session_, &Session::qatCheckpoint, this, &QatDialog::showCheckpoint);
    connect(session_, &Session::qatFinished, this, &QatDialog::showFinished);
    connect(session_, &Session::qatFailed, this, [this](const QString& message) {
        showRunning(false);
        outcome_->setText(tr("<b>Training failed:</b> %1").arg(message.toHtmlEscaped()));
    });
    resetChart();
    resize(1100, 640);
}

void QatDialog::done(int result)
{
    if (session_->isTraining())
        session_->cancelQat();  // the result (best checkpoint) still arrives; the dialog shows it when reopened
    QDialog::done(result);
}

QatOptions QatDialog::options() const
{
    QatOptions options;
    options.epochs = epochs_->value();
    options.steps = steps_->value();
    options.batchSize = batch_->value();
    options.optimizer = QatOptimizer(optimizer_->currentData().toInt());
    options.learningRate = learningRate_->value();
    options.trainImages = std::size_t(trainImages_->value());
    options.checkpointEvery = checkpointEvery_->value();
    options.learnRanges = learnRanges_->isChecked();
    options.batchNormEpochs = batchNormEpochs_->value();
    options.seed = std::uint64_t(seed_->value());
    return options;
}

bool QatDialog::start()
{
    const auto snapshot = session_->snapshot();
    if (!snapshot) {
        outcome_->setText(tr("Open a model and images first."));
        return false;
    }
    // Refused before anything is cleared: the result and chart of the last run stay.
    if (session_->isTraining()) {
        outcome_->setText(tr("Training is already running."));
        return false;
    }
    if (session_->isLoading()) {
        outcome_->setText(tr("A model is being opened: train it once it has loaded."));
        return false;
    }
    result_.reset();
    trainedOn_ = snapshot;
    layers_->setRowCount(0);
    resetChart();
    if (!session_->startQat(document_->config(), options())) {
        outcome_->setText(tr("Open a model and images first."));
        return false;
    }
    // The reference lines from the evaluation shown, when it is of this configuration (the run
    // measures them again before training, and the lines follow its numbers at the end).
    if (const auto evaluation = session_->evaluation(); evaluation && evaluation->config == document_->config()) {
        ptqLine_->replace(QList<QPointF>{{0, 100.0 * evaluation->metrics.top1}, {1, 100.0 * evaluation->metrics.top1}});
        floatLine_->replace(QList<QPointF>{{0, 100.0 * evaluation->metrics.floatTop1}, {1, 100.0 * evaluation->metrics.floatTop1}});
        showTop1Range(100.0 * evaluation->metrics.top1);
    }
    trainingData_->setText(tr("<small>Training images: %1 (the training split beside the evaluation images, else the "
                              "evaluation images themselves). Held-out top-1 is measured on the %2 evaluation images.</small>")
                               .arg(QFileInfo(snapshot->calibrationPath).fileName().toHtmlEscaped())
                               .arg(snapshot->evaluationImages));
    showRunning(true);
    outcome_->setText(tr("Training from the current configuration ... edits made meanwhile are evaluated when it ends."));
    return true;
}

void QatDialog::resetChart()
{
    loss_->clear();
    top1_->clear();
    ptqLine_->clear();
    floatLine_->clear();
    maxLoss_ = 0;
    lastPlottedStep_ = 0;
    chartSteps_ = 0;
    stepAxis_->setRange(0, 1);
    lossAxis_->setRange(0, 1);
    showTop1Range(0);
}

void QatDialog::showRunning(bool running)
{
    progress_->setVisible(running);
    if (running)
        progress_->setRange(0, 0);
    start_->setEnabled(!running);
    cancel_->setEnabled(running);
    open_->setEnabled(!running && result_ && result_->graph);
}

void QatDialog::showProgress(const QString& stage, int step, int steps, double loss)
{
    if (steps > 0) {
        progress_->setRange(0, steps);
        progress_->setValue(step);
        if (chartSteps_ != steps) {  // once per run: nice numbers move the axis's maximum past `steps`
            chartSteps_ = steps;
            stepAxis_->setRange(0, steps);
            stepAxis_->applyNiceNumbers();
        }
        for (QLineSeries* line : {ptqLine_, floatLine_})
            if (line->count() == 2)
                line->replace(1, QPointF(steps, line->at(1).y()));
    }
    const QString lossText = std::isfinite(loss) ? tr(", loss %1").arg(loss, 0, 'f', 4) : QString();
    progress_->setFormat(steps > 0 ? tr("%1 \u2014 step %2 of %3%4").arg(stage).arg(step).arg(steps).arg(lossText) : stage);
    // The mean loss of the steps since the previous delivery (every 200 ms), at the last of them.
    if (step > lastPlottedStep_ && std::isfinite(loss)) {
        lastPlottedStep_ = step;
        loss_->append(step, loss);
        maxLoss_ = std::max(maxLoss_, loss);
        lossAxis_->setRange(0, maxLoss_ > 0 ? maxLoss_ * 1.1 : 1.0);  // every loss 0: an empty range draws nothing
        lossAxis_->applyNiceNumbers();
    }
}

void QatDialog::showCheckpoint(const QatCheckpoint& checkpoint)
{
    top1_->append(checkpoint.step, 100.0 * checkpoint.top1);
    double low = 100.0 * checkpoint.top1;
    for (const QPointF& point : top1_->points())
        low = std::min(low, point.y());
    for (QLineSeries* line : {ptqLine_, floatLine_})
        if (line->count() == 2)
            low = std::min(low, line->at(0).y());
    showTop1Range(low);
}

void QatDialog::showTop1Range(double lowest)
{
    // Whole points from a little below the lowest value to 100, ticks on round numbers.
    const double from = std::max(0.0, std::floor(lowest - 2));
    top1Axis_->setRange(from, 100);
    top1Axis_->setTickType(QValueAxis::TicksDynamic);
    top1Axis_->setTickAnchor(0);
    top1Axis_->setTickInterval(100 - from > 40 ? 20 : 100 - from > 16 ? 5 : 2);
}

void QatDialog::showFinished(std::shared_ptr<const QatResult> result)
{
    result_ = std::move(result);
    showRunning(false);
    const QatResult& r = *result_;
    // The reference lines with the numbers the run measured before training.
    const double lastStep = std::max(1.0, stepAxis_->max());
    ptqLine_->replace(QList<QPointF>{{0, 100.0 * r.ptqTop1}, {lastStep, 100.0 * r.ptqTop1}});
    floatLine_->replace(QList<QPointF>{{0, 100.0 * r.floatTop1}, {lastStep, 100.0 * r.floatTop1}});
    double low = std::min(100.0 * r.ptqTop1, 100.0 * r.top1);
    for (const QPointF& point : top1_->points())
        low = std::min(low, point.y());
    showTop1Range(low);

    QString text;
    if (r.cancelled)
        text += tr("<p><b>Cancelled</b> after %1 steps.</p>").arg(r.steps);
    text += tr("<p>Top-1 on the %1 evaluation images:<br>float <b>%2</b> \u00b7 post-training <b>%3</b> \u00b7 "
               "fine-tuned <b>%4</b> (%5%6 points)</p>"
               "<p>%7 steps on %8 training images%9, %10 s of training (%11 s in all)</p>")
                .arg(trainedOn_ ? trainedOn_->evaluationImages : 0)
                .arg(accuracyText(r.floatTop1), accuracyText(r.ptqTop1), accuracyText(r.top1))
                .arg(r.top1 >= r.ptqTop1 ? "+" : "")
                .arg(100.0 * (r.top1 - r.ptqTop1), 0, 'f', 2)
                .arg(r.steps)
                .arg(r.trainImages)
                .arg(r.distilled ? tr(" (distilled from the float model: no labels)") : QString())
                .arg(r.trainingSeconds, 0, 'f', 1)
                .arg(r.seconds, 0, 'f', 1);
    for (const std::string& note : r.notes)
        text += "<p style='color:#b00020'>" + QString::fromStdString(note).toHtmlEscaped() + "</p>";
    text += tr("<p>Open Fine-Tuned Model... saves it and opens it here: the table, histograms, accuracy, int8 engine and "
               "exports then work on it.</p>");
    outcome_->setText(text);
    showLayers(r);
    open_->setEnabled(r.graph != nullptr);
}

void QatDialog::showLayers(const QatResult& result)
{
    layers_->setRowCount(int(result.layersBefore.size()));
    for (std::size_t i = 0; i < result.layersBefore.size(); ++i) {
        const LayerMetrics& before = result.layersBefore[i];
        const LayerMetrics* after = i < result.layersAfter.size() && result.layersAfter[i].name == before.name ? &result.layersAfter[i] : nullptr;
        const int row = int(i);
        layers_->setItem(row, 0, new QTableWidgetItem(QString::fromStdString(before.name)));
        auto number = [](double value, const QString& text) {
            auto* item = new QTableWidgetItem(text);
            item->setData(Qt::UserRole, value);
            item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
            return item;
        };
        layers_->setItem(row, 1, number(before.accumulated.sqnrDb, sqnrText(before.accumulated.sqnrDb)));
        if (!after)
            continue;
        layers_->setItem(row, 2, number(after->accumulated.sqnrDb, sqnrText(after->accumulated.sqnrDb)));
        const double change = after->accumulated.sqnrDb - before.accumulated.sqnrDb;
        QTableWidgetItem* changeItem = number(change, std::isfinite(change) ? QString::asprintf("%+.1f", change) : QString("\u2014"));
        if (std::isfinite(change))
            changeItem->setForeground(change >= 0 ? colours::green.darker(130) : colours::plainRed);
        layers_->setItem(row, 3, changeItem);
    }
    layers_->resizeColumnsToContents();
    layers_->horizontalHeader()->setSectionResizeMode(0, QHeaderView::Stretch);
}

void QatDialog::askWhereAndSave()
{
    if (!result_ || !trainedOn_)
        return;
    const QFileInfo model(trainedOn_->modelPath);
    const QString suggested = model.absolutePath() + "/" + model.completeBaseName() + "_qat.onnx";
    const QString path = QFileDialog::getSaveFileName(this, tr("Save the Fine-Tuned Model"), suggested, tr("ONNX models (*.onnx)"));
    if (!path.isEmpty())
        saveResult(path);
}

bool QatDialog::saveResult(const QString& path)
{
    if (!result_ || !result_->graph || !trainedOn_)
        return false;
    try {
        saveFineTunedModel(*result_, trainedOn_->preprocess, path.toStdString());
    } catch (const Error& e) {
        outcome_->setText(outcome_->text() + tr("<p style='color:#b00020'><b>Not saved:</b> %1</p>").arg(QString::fromStdString(e.what()).toHtmlEscaped()));
        return false;
    }
    QuantConfig config = result_->config;
    config.model = QFileInfo(path).fileName().toStdString();
    emit fineTunedModelSaved(path, trainedOn_->dataPath, config);
    return true;
}

}  // namespace qe
