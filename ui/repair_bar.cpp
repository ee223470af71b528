#include "repair_bar.h"

#include "common/error.h"
#include "config_document.h"
#include "config_edits.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QSignalBlocker>
#include <QSpinBox>

#include <cmath>
#include <limits>

namespace qe {

QString repairSummary(const RepairReport& report)
{
    QStringList parts;
    const auto count = [](std::size_t n, const QString& one, const QString& many) { return (n == 1 ? one : many).arg(n); };
    if (!report.smoothed.empty())
        parts << count(report.smoothed.size(), RepairBar::tr("%1 LayerNorm smoothed"), RepairBar::tr("%1 LayerNorms smoothed"));
    if (!report.equalized.empty())
        parts << count(report.equalized.size(), RepairBar::tr("%1 pair equalized"), RepairBar::tr("%1 pairs equalized")) +
                     RepairBar::tr(" (%1 sweeps)").arg(report.equalizationSweeps);
    if (!report.biasCorrected.empty())
        parts << count(report.biasCorrected.size(), RepairBar::tr("%1 bias corrected"), RepairBar::tr("%1 biases corrected"));
    if (!report.adaRounded.empty()) {
        double flipped = 0;  // the layers' mean: the share of a layer's weights is what each layer reports
        for (const AdaRoundReport& a : report.adaRounded)
            flipped += a.flippedFraction;
        parts << count(report.adaRounded.size(), RepairBar::tr("AdaRound on %1 layer"), RepairBar::tr("AdaRound on %1 layers")) +
                     RepairBar::tr(" (%1% of a layer's weights flipped, on average)")
                         .arg(100.0 * flipped / double(report.adaRounded.size()), 0, 'f', 1);
    }
    if (!report.skipped.empty())
        parts << RepairBar::tr("%1 skipped").arg(report.skipped.size());
    return parts.isEmpty() ? RepairBar::tr("nothing to repair") : parts.join(QStringLiteral(" \u00b7 "));
}

RepairBar::RepairBar(ConfigDocument* document, QWidget* parent)
    : QWidget(parent), document_(document), equalization_(new QCheckBox(tr("Equalize"), this)),
      relu6AsRelu_(new QCheckBox(tr("ReLU6 as ReLU"), this)), adaRound_(new QCheckBox(tr("AdaRound"), this)),
      smoothQuant_(new QCheckBox(tr("SmoothQuant"), this)), biasCorrection_(new QComboBox(this)), iterations_(new QSpinBox(this)),
      images_(new QSpinBox(this)), alpha_(new QDoubleSpinBox(this)), summary_(new QLabel(this))
{
    auto* layout = new QHBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    auto* title = new QLabel(tr("<b>Repairs</b>"), this);
    title->setToolTip(tr("Post-training repairs of the float model before it is quantized, for every layer; a layer's row in "
                         "the table can override them (columns Equalize, Bias corr., AdaRound)"));
    layout->addWidget(title);

    equalization_->setToolTip(tr("Cross-layer equalization (Nagel et al. 2019): rescale the channels of consecutive layers so that "
                                 "their per-channel weight ranges match, with high-bias absorption. The float model's outputs do "
                                 "not change; per-tensor weights lose far less. Needs no images."));
    relu6AsRelu_->setToolTip(tr("Let equalization through a ReLU6 by making it a ReLU, as the paper and AIMET do. This changes the "
                                "float model; off, pairs with a ReLU6 between them are skipped."));
    for (BiasCorrection mode : {BiasCorrection::None, BiasCorrection::Empirical, BiasCorrection::Analytical}) {
        const std::string_view name = biasCorrectionName(mode);
        biasCorrection_->addItem(QString::fromUtf8(name.data(), qsizetype(name.size())), int(mode));
    }
    biasCorrection_->setToolTip(tr("Bias correction: subtract from each output channel's bias the mean shift that quantizing the "
                                   "weights causes. Empirical measures the layer's input mean on calibration images; analytical "
                                   "takes it from the folded BatchNormalization statistics."));
    adaRound_->setToolTip(tr("AdaRound (Nagel et al. 2020): learn, layer by layer, whether each weight rounds up or down so that "
                             "the layer's output on calibration images stays closest to float. Slow: about a minute on the demo "
                             "model, tens of minutes on a MobileNet; the status bar shows its progress and Esc cancels it."));
    iterations_->setRange(1, std::numeric_limits<int>::max());
    iterations_->setSingleStep(500);
    iterations_->setSuffix(tr(" iterations"));
    iterations_->setToolTip(tr("AdaRound's Adam steps per layer (AIMET's default: 10000)"));
    images_->setRange(1, std::numeric_limits<int>::max());
    images_->setSingleStep(32);
    images_->setSuffix(tr(" images"));
    images_->setToolTip(tr("The calibration images whose layer inputs and outputs AdaRound reconstructs"));
    smoothQuant_->setToolTip(tr("SmoothQuant (Xiao et al. 2023), for transformers: divide each LayerNorm's output channel j by "
                                "s_j and multiply the weight rows reading it by s_j, s_j = max|x_j|^alpha / max|w_j|^(1-alpha) on the "
                                "calibration images. Outlier activation channels shrink, the float model's outputs do not change."));
    alpha_->setRange(0.0, 1.0);
    alpha_->setSingleStep(0.05);
    alpha_->setDecimals(2);
    alpha_->setPrefix(tr("alpha "));
    alpha_->setToolTip(tr("How much of the activations' range moves into the weights: 0 none, 0.5 balances the two (the paper's "
                          "default), 1 all of it"));
    // One edit per value the user settles on, not one per digit typed.
    iterations_->setKeyboardTracking(false);
    images_->setKeyboardTracking(false);
    alpha_->setKeyboardTracking(false);

    layout->addWidget(smoothQuant_);
    layout->addWidget(alpha_);
    layout->addSpacing(8);
    layout->addWidget(equalization_);
    layout->addWidget(relu6AsRelu_);
    layout->addSpacing(8);
    layout->addWidget(new QLabel(tr("Bias correction:"), this));
    layout->addWidget(biasCorrection_);
    layout->addSpacing(8);
    layout->addWidget(adaRound_);
    layout->addWidget(iterations_);
    layout->addWidget(images_);
    layout->addSpacing(12);
    summary_->setObjectName("repairSummary");
    summary_->setTextFormat(Qt::PlainText);
    layout->addWidget(summary_, 1);

    for (QCheckBox* box : {equalization_, relu6AsRelu_, adaRound_, smoothQuant_})
        connect(box, &QCheckBox::toggled, this, &RepairBar::propose);
    connect(alpha_, &QDoubleSpinBox::valueChanged, this, &RepairBar::propose);
    connect(biasCorrection_, &QComboBox::activated, this, &RepairBar::propose);
    connect(iterations_, &QSpinBox::valueChanged, this, &RepairBar::propose);
    connect(images_, &QSpinBox::valueChanged, this, &RepairBar::propose);
    connect(document_, &ConfigDocument::changed, this, &RepairBar::showConfig);
    showConfig();
}

void RepairBar::showConfig()
{
    const RepairSpec& r = document_->config().repairs;
    const QSignalBlocker b1(equalization_), b2(relu6AsRelu_), b3(adaRound_), b4(biasCorrection_), b5(iterations_), b6(images_),
        b7(smoothQuant_), b8(alpha_);
    smoothQuant_->setChecked(r.smoothQuant);
    alpha_->setValue(r.smoothQuantAlpha);
    alpha_->setEnabled(r.smoothQuant);
    equalization_->setChecked(r.equalization);
    relu6AsRelu_->setChecked(r.relu6AsRelu);
    relu6AsRelu_->setEnabled(r.equalization);
    biasCorrection_->setCurrentIndex(biasCorrection_->findData(int(r.biasCorrection)));
    adaRound_->setChecked(r.adaRound.enabled);
    iterations_->setValue(r.adaRound.iterations);
    images_->setValue(r.adaRound.images);
    iterations_->setEnabled(r.adaRound.enabled);
    images_->setEnabled(r.adaRound.enabled);
}

void RepairBar::propose()
{
    const RepairSpec before = document_->config().repairs;
    RepairSpec after = before;
    after.equalization = equalization_->isChecked();
    after.relu6AsRelu = relu6AsRelu_->isChecked();
    after.biasCorrection = BiasCorrection(biasCorrection_->currentData().toInt());
    after.adaRound.enabled = adaRound_->isChecked();
    after.adaRound.iterations = iterations_->value();
    after.adaRound.images = images_->value();
    after.smoothQuant = smoothQuant_->isChecked();
    // The spin box shows two decimals; an untouched alpha keeps its exact value.
    if (std::abs(alpha_->value() - before.smoothQuantAlpha) > 1e-6)
        after.smoothQuantAlpha = float(alpha_->value());
    if (after == before)
        return;
    try {
        document_->edit(withRepairSwitches(document_->config(), after),
                        QString::fromStdString(describeRepairSwitches(before, after)));
    } catch (const Error& e) {
        showConfig();
        emit editRejected(QString::fromStdString(e.what()));
    }
}

void RepairBar::setReport(std::shared_ptr<const RepairReport> report, bool current)
{
    if (!report) {
        summary_->clear();
        summary_->setToolTip({});
        return;
    }
    summary_->setText(repairSummary(*report));
    QStringList lines;
    for (const std::string& line : describeRepairs(*report))
        lines << QString::fromStdString(line);
    summary_->setToolTip(lines.join('\n'));
    summary_->setStyleSheet(current ? QString() : QStringLiteral("color: gray"));
}

}  // namespace qe
