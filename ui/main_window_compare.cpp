// MainWindow: the A/B comparison. A is the configuration being edited (the document's); B is a
// configuration chosen to compare with (a file, one tried before, or A pinned as it is now). The
// session evaluates B once on its worker and keeps it while A changes; every view that shows B
// reads the comparison of the latest A with it (core/eval/comparison.h). Choosing B is not an
// edit of the configuration: the undo history does not see it.

#include "main_window.h"
#include "pareto_chart.h"
#include "pareto_view.h"

#include "common/error.h"
#include "config_document.h"
#include "gallery_model.h"
#include "session.h"

#include <QCheckBox>
#include <QComboBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QInputDialog>
#include <QJsonArray>
#include <QJsonObject>
#include <QLabel>
#include <QMenu>
#include <QMenuBar>
#include <QStatusBar>

#include <cmath>
#include <utility>

namespace qe {

void MainWindow::buildComparisonWidgets()
{
    comparisonLine_ = new QLabel(this);
    comparisonLine_->setObjectName("comparisonLine");
    comparisonLine_->setTextFormat(Qt::RichText);
    comparisonLine_->setWordWrap(true);
    comparisonLine_->hide();
    comparisonSummary_ = new QLabel(this);
    comparisonSummary_->setTextFormat(Qt::RichText);
    comparisonSummary_->setWordWrap(true);
    comparisonSummary_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    comparisonSummary_->hide();
    differingOnly_ = new QCheckBox(this);
    differingOnly_->setEnabled(false);
    connect(differingOnly_, &QCheckBox::toggled, gallery_, &GalleryModel::setDifferingOnly);

    connect(session_, &Session::comparisonEvaluated, this, &MainWindow::showComparison);
    connect(session_, &Session::evaluated, this, [this] {
        if (!pendingComparePath_.isEmpty())
            compareWithFile(std::exchange(pendingComparePath_, QString()));
        showComparison();
    });
    connect(session_, &Session::histogramsReady, this, &MainWindow::showComparisonHistograms);
    connect(session_, &Session::loaded, this, &MainWindow::showComparison);  // a new model drops B
    connect(session_, &Session::comparisonFailed, this, [this](const QString& message) {
        comparisonLine_->hide();
        showError(tr("Configuration B could not be evaluated: %1").arg(message));
    });
}

void MainWindow::buildCompareMenu()
{
    QMenu* compare = menuBar()->addMenu(tr("&Compare"));
    compare->addAction(tr("Compare with Configuration &File..."), this, [this] {
        const QString path = QFileDialog::getOpenFileName(this, tr("Compare with Configuration (B)"), QFileInfo(document_->path()).path(),
                                                          tr("Configurations (*.json);;All files (*)"));
        if (!path.isEmpty())
            compareWithFile(path);
    });
    compare->addAction(tr("Compare with a Configuration &Tried..."), this, [this] {
        // The configurations tried are the Pareto view's points: those evaluated by hand and
        // those a search measured.
        const QList<ParetoChart::Point>& tried = pareto_->chart()->points();
        if (tried.isEmpty()) {
            statusBar()->showMessage(tr("No configuration has been evaluated yet"), 5000);
            return;
        }
        QStringList items;
        for (int i = 0; i < tried.size(); ++i)
            items << tr("%1. %2 (top-1 %3%, %4 KiB)")
                         .arg(i + 1)
                         .arg(tried[i].description.isEmpty() ? tried[i].bits : tried[i].description)
                         .arg(tried[i].top1, 0, 'f', 2)
                         .arg(tried[i].sizeKiB, 0, 'f', 1);
        bool ok = false;
        const QString item = QInputDialog::getItem(this, tr("Compare with (B)"), tr("Configurations tried:"), items,
                                                   int(items.size()) - 1, false, &ok);
        const int index = int(items.indexOf(item));
        if (ok && index >= 0)
            compareWith(tried[index].config, tried[index].description.isEmpty() ? tried[index].bits : tried[index].description);
    });
    compare->addAction(tr("&Pin Current as B"), QKeySequence(Qt::CTRL | Qt::Key_B), this, &MainWindow::pinCurrentAsB);
    compare->addAction(tr("&Clear Comparison"), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_B), this, &MainWindow::clearComparison);
}

void MainWindow::compareWith(const QuantConfig& b, const QString& name)
{
    if (!session_->snapshot()) {
        statusBar()->showMessage(tr("Open a model before comparing configurations"), 5000);
        return;
    }
    comparisonName_ = name;
    comparisonLine_->setText(tr("<small>A/B: evaluating B (%1) ...</small>").arg(name.toHtmlEscaped()));
    comparisonLine_->show();
    session_->setComparison(b, name);
}

bool MainWindow::compareWithFile(const QString& path)
{
    const auto snapshot = session_->snapshot();
    if (!snapshot) {
        pendingComparePath_ = path;  // once the model has loaded
        return true;
    }
    try {
        compareWith(QuantConfig::load(path.toStdString(), snapshot->layerNames()), QFileInfo(path).fileName());
        return true;
    } catch (const Error& e) {
        showError(QString::fromStdString(e.what()));
        return false;
    }
}

void MainWindow::pinCurrentAsB()
{
    compareWith(document_->config(), tr("pinned: %1").arg(document_->lastEditDescription()));
}

void MainWindow::clearComparison()
{
    comparisonName_.clear();
    session_->clearComparison();
}

std::optional<ConfigComparison> MainWindow::comparison() const
{
    const auto a = session_->evaluation();
    const auto b = session_->comparison();
    if (!a || !b)
        return std::nullopt;
    try {
        return compareEvaluations(a->metrics, b->b.metrics);
    } catch (const Error&) {
        return std::nullopt;  // A is of images B was not evaluated on (the moment after a reload)
    }
}

QString MainWindow::errorModeName(int mode, bool comparing)
{
    switch (ErrorChart::Mode(mode)) {
    case ErrorChart::SqnrDb: return comparing ? tr("SQNR (dB), accumulated: A and B") : tr("SQNR (dB), accumulated and isolated");
    case ErrorChart::Mse: return comparing ? tr("MSE, accumulated: A and B") : tr("MSE, accumulated and isolated");
    case ErrorChart::RoundingNoise:
        return comparing ? tr("Activation rounding noise (steps): A and B") : tr("Activation rounding noise (steps) vs 1/\u221a12");
    }
    return {};
}

QString MainWindow::imagesLegendText(bool comparing)
{
    if (comparing)
        return tr("<small>Label under each image: the float prediction, and \u2192 A's (the current configuration's) where it "
                  "differs, in orange; where A and B predict differently, both (A: \u2026, B: \u2026; orange when A differs "
                  "from float). Frame: green when A is right, red when wrong; hover an image for which of A and B is right "
                  "(B right, A wrong \u00b7 A right, B wrong \u00b7 both wrong). Click an image for its per-layer error.</small>");
    return tr("<small>Label under each image: the float prediction, and \u2192 the quantized one where it differs, in orange. "
              "Frame: green when the quantized prediction is right, red when wrong. Click an image for its per-layer "
              "error.</small>");
}

void MainWindow::showComparison()
{
    const std::optional<ConfigComparison> c = comparison();
    const auto b = session_->comparison();
    gallery_->setComparison(c);
    differingOnly_->setEnabled(c.has_value());
    for (int i = 0; i < errorMode_->count(); ++i)
        errorMode_->setItemText(i, errorModeName(errorMode_->itemData(i).toInt(), c.has_value()));
    imagesLegend_->setText(imagesLegendText(c.has_value()));
    if (!c) {
        errorChart_->setComparison(std::nullopt);
        weightHistogram_->setComparison(std::nullopt);
        activationHistogram_->setComparison(std::nullopt);
        comparisonSummary_->clear();
        comparisonSummary_->hide();
        differingOnly_->setChecked(false);
        differingOnly_->setText(tr("Only images A and B predict differently (Compare menu)"));
        if (!session_->isComparing())
            comparisonLine_->hide();
        return;
    }
    errorChart_->setComparison(ErrorChart::Comparison{tr("current"), b->name, b->b.metrics.layers});
    const QString nameB = b->name.toHtmlEscaped();
    const double points = 100 * c->top1Difference();
    comparisonLine_->setText(tr("A/B with <b>B = %1</b>: top-1 B \u2212 A <b>%2 points</b> \u00b7 %3 images differ "
                                "(B right, A wrong: %4 \u00b7 A right, B wrong: %5 \u00b7 both wrong: %6) \u00b7 "
                                "McNemar p = %7 <small>(Ctrl+Shift+B clears)</small>")
                                 .arg(nameB)
                                 .arg(points, 0, 'f', 2)
                                 .arg(c->differing.size())
                                 .arg(c->bRightAWrong)
                                 .arg(c->aRightBWrong)
                                 .arg(c->bothWrong)
                                 .arg(c->mcnemarP, 0, 'g', 3));
    comparisonLine_->show();
    auto row = [](const QString& what, const QString& a, const QString& b, const QString& difference) {
        return QStringLiteral("<tr><td><b>%1</b></td><td align=right>%2</td><td align=right>%3</td><td align=right>%4</td></tr>")
            .arg(what, a, b, difference);
    };
    auto signedPoints = [](double fraction) { return QStringLiteral("%1").arg(100 * fraction, 0, 'f', 2).prepend(fraction > 0 ? "+" : ""); };
    comparisonSummary_->setText(
        tr("<p><b>A/B comparison</b>: A = the current configuration, B = %1</p>"
           "<table cellspacing=6><tr><th></th><th align=right>A</th><th align=right>B</th><th align=right>B \u2212 A</th></tr>%2%3%4%5%6</table>"
           "<p>Prediction differs on <b>%7</b> of %8 images: B right and A wrong %9, A right and B wrong %10, both wrong %11. %12</p>")
            .arg(nameB)
            .arg(row(tr("top-1"), accuracyText(c->top1A), accuracyText(c->top1B), signedPoints(c->top1Difference()) + tr(" points")))
            .arg(row(tr("top-5"), accuracyText(c->top5A), accuracyText(c->top5B), signedPoints(c->top5B - c->top5A) + tr(" points")))
            .arg(row(tr("agreement with float"), accuracyText(c->agreementA), accuracyText(c->agreementB),
                     signedPoints(c->agreementB - c->agreementA) + tr(" points")))
            .arg(row(tr("output SQNR"), sqnrWithUnit(c->outputSqnrDbA), sqnrWithUnit(c->outputSqnrDbB),
                     std::isfinite(c->outputSqnrDbB - c->outputSqnrDbA) ? QString::number(c->outputSqnrDbB - c->outputSqnrDbA, 'f', 1) + " dB"
                                                                        : QString()))
            .arg(row(tr("size"), QString::number(c->sizeBytesA / 1024, 'f', 1) + " KiB", QString::number(c->sizeBytesB / 1024, 'f', 1) + " KiB",
                     QString::number((c->sizeBytesB - c->sizeBytesA) / 1024, 'f', 1) + " KiB"))
            .arg(c->differing.size())
            .arg(c->images)
            .arg(c->bRightAWrong)
            .arg(c->aRightBWrong)
            .arg(c->bothWrong)
            .arg(QString::fromStdString(c->verdict()).toHtmlEscaped()));
    comparisonSummary_->show();
    differingOnly_->setText(tr("Only images A and B predict differently (%1)").arg(c->differing.size()));
    showComparisonHistograms();
}

void MainWindow::showComparisonHistograms()
{
    const auto a = session_->histograms();
    const auto b = session_->comparisonHistograms();
    const bool sameLayer = a && b && a->layer == b->layer;
    weightHistogram_->setComparison(sameLayer ? b->weights : std::nullopt);
    activationHistogram_->setComparison(sameLayer ? b->activations : std::nullopt);
}

QJsonObject MainWindow::comparisonJson() const
{
    const std::optional<ConfigComparison> c = comparison();
    if (!c)
        return {};
    QJsonArray differing;
    for (const DifferingImage& d : c->differing)
        differing.append(QJsonObject{{"image", qint64(d.image)}, {"label", d.label}, {"prediction_a", d.predictionA},
                                     {"prediction_b", d.predictionB}, {"outcome", outcomeName(d.outcome)}});
    return {{"config_b", session_->comparison()->name},
            {"top1_a", c->top1A},
            {"top1_b", c->top1B},
            {"top1_difference", c->top1Difference()},
            {"top5_a", c->top5A},
            {"top5_b", c->top5B},
            {"agreement_a", c->agreementA},
            {"agreement_b", c->agreementB},
            {"size_kib_a", c->sizeBytesA / 1024},
            {"size_kib_b", c->sizeBytesB / 1024},
            {"differing_count", qint64(c->differing.size())},
            {"a_right_b_wrong", qint64(c->aRightBWrong)},
            {"b_right_a_wrong", qint64(c->bRightAWrong)},
            {"both_wrong", qint64(c->bothWrong)},
            {"mcnemar_p", c->mcnemarP},
            {"differing", differing}};
}

}  // namespace qe
