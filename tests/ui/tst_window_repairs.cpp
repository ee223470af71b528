// The repairs in the window (issue 14), driven as a user drives them on the demo model: the
// switches above the table edit the configuration (one undo step each) and every layer follows
// them unless its row overrides them; the table marks what the evaluation's repairs did; the
// Repairs tab charts the selected layer's channels with the report's own numbers and the layer
// details give the formulas with them; AdaRound runs in the background with progress, is kept
// while an unrelated layer changes, and is cancelled by Cancel without losing the configuration.

#include "config_document.h"
#include "layer_details.h"
#include "layer_table_model.h"
#include "main_window.h"
#include "repair_bar.h"
#include "repair_charts.h"
#include "session.h"
#include "window_waits.h"

#include <QCheckBox>
#include <QComboBox>
#include <QLabel>
#include <QSignalSpy>
#include <QSortFilterProxyModel>
#include <QSpinBox>
#include <QStandardPaths>
#include <QTableView>
#include <QUndoStack>
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <memory>

using namespace qe;

namespace {

const QString kModel = QStringLiteral(QE_SOURCE_DIR "/resources/models/fashion_cnn.onnx");
const QString kImages = QStringLiteral(QE_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz");
const int kTimeoutMs = scaledTimeout(240000);

QModelIndex cell(MainWindow& window, const std::string& layer, int column)
{
    auto* proxy = qobject_cast<QSortFilterProxyModel*>(window.layerTable()->model());
    return proxy->mapFromSource(window.layerModel()->index(window.layerModel()->rowOf(layer), column));
}

// Largest over smallest non-zero channel range: what equalization brings towards 1.
double spread(const std::vector<float>& ranges)
{
    float lo = 0, hi = 0;
    for (float r : ranges)
        if (r > 0)
            lo = lo > 0 ? std::min(lo, r) : r, hi = std::max(hi, r);
    return lo > 0 ? hi / lo : 0;
}

void pick(QComboBox* combo, BiasCorrection mode)
{
    const int index = combo->findData(int(mode));
    combo->setCurrentIndex(index);
    emit combo->activated(index);
}

}  // namespace

class TestWindowRepairs : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void switchesMarkTheTableAndChartTheReport();
    void aLayerRowOverridesTheSwitch();
    void adaRoundIsKeptAndCancellable();

    void cleanupTestCase() { window_.reset(); }

private:
    std::unique_ptr<MainWindow> window_;
};

void TestWindowRepairs::initTestCase()
{
    QStandardPaths::setTestModeEnabled(true);  // autosave and recent files stay out of the user's folders
    if (!QFile::exists(kImages))
        QSKIP("needs Debian's dataset-fashion-mnist");
    window_ = std::make_unique<MainWindow>();
    QSignalSpy evaluated(window_->session(), &Session::evaluated);
    window_->show();
    window_->openSession(kModel, kImages);
    QTRY_VERIFY_WITH_TIMEOUT(evaluated.count() >= 1, kTimeoutMs);
    // Per-tensor weights, where equalization matters.
    QuantConfig config = window_->document()->config();
    config.defaultWeights.granularity = Granularity::PerTensor;
    window_->document()->edit(config, "per tensor");
    waitForEvaluation(*window_, kTimeoutMs);
    QVERIFY(!window_->session()->evaluation()->repairs);
}

void TestWindowRepairs::switchesMarkTheTableAndChartTheReport()
{
    RepairBar* bar = window_->repairBar();
    const int undoSteps = window_->document()->undoStack()->count();
    bar->equalization()->click();
    QVERIFY(window_->document()->config().repairs.equalization);
    QCOMPARE(window_->document()->undoStack()->undoText(), QString("repairs: equalization on"));
    pick(bar->biasCorrection(), BiasCorrection::Empirical);
    QCOMPARE(window_->document()->config().repairs.biasCorrection, BiasCorrection::Empirical);
    QCOMPARE(window_->document()->undoStack()->count(), undoSteps + 2);
    waitForEvaluation(*window_, kTimeoutMs);

    const auto evaluation = window_->session()->evaluation();
    QVERIFY(evaluation->repairs);
    const RepairReport& report = *evaluation->repairs;
    QVERIFY(!report.equalized.empty());
    QVERIFY(!report.biasCorrected.empty());
    QVERIFY2(bar->summary()->text().contains("equalized"), qPrintable(bar->summary()->text()));

    // The Repaired column marks exactly the layers the report names, with its sentences as the tooltip.
    LayerTableModel* table = window_->layerModel();
    for (int row = 0; row < table->rowCount(); ++row) {
        const LayerRepairs repairs = layerRepairs(report, table->layerName(row));
        const QString marks = table->index(row, LayerTableModel::Repaired).data().toString();
        QCOMPARE(marks.contains('E'), repairs.equalizedAsFirst || repairs.equalizedAsSecond);
        QCOMPARE(marks.contains('B'), repairs.biasCorrection != nullptr);
        if (repairs.equalizedAsFirst)
            QVERIFY(table->index(row, LayerTableModel::Repaired).data(Qt::ToolTipRole).toString().contains("Equalized with"));
    }

    // The first layer of a pair: its chart draws the report's ranges, and equalization evened them.
    const EqualizedPair& pair = report.equalized.front();
    window_->selectLayer(table->rowOf(pair.first));
    RepairChart* ranges = window_->equalizationChart();
    QCOMPARE(ranges->before(), pair.firstRangesBefore);
    QCOMPARE(ranges->after(), pair.firstRangesAfter);
    QVERIFY2(spread(pair.firstRangesAfter) < spread(pair.firstRangesBefore),
             qPrintable(QString("%1 -> %2").arg(spread(pair.firstRangesBefore)).arg(spread(pair.firstRangesAfter))));
    if (const BiasCorrectionReport* b = layerRepairs(report, pair.first).biasCorrection)
        QCOMPARE(window_->biasShiftChart()->after(), b->shift);
    QVERIFY(window_->adaRoundChart()->after().empty());
    QVERIFY(!ranges->channelDescription(0).isEmpty());

    // The details give the formula with the layer's own numbers: the largest scale applied.
    const QString details = layerDetailsHtml(*window_->session()->snapshot(), *evaluation, std::size_t(table->rowOf(pair.first)));
    QVERIFY(details.contains("Cross-layer equalization with"));
    const float largest = *std::max_element(pair.scales.begin(), pair.scales.end());
    QVERIFY2(details.contains(QString::number(largest, 'g', 6)), qPrintable(details));

    // Undo twice: no repairs, no marks, no charts.
    window_->document()->undoStack()->undo();
    window_->document()->undoStack()->undo();
    QCOMPARE(window_->document()->config().repairs, RepairSpec{});
    QVERIFY(!bar->equalization()->isChecked());
    waitForEvaluation(*window_, kTimeoutMs);
    QVERIFY(!window_->session()->evaluation()->repairs);
    for (int row = 0; row < table->rowCount(); ++row)
        QVERIFY(table->index(row, LayerTableModel::Repaired).data().toString().isEmpty());
    QVERIFY(ranges->after().empty());
}

void TestWindowRepairs::aLayerRowOverridesTheSwitch()
{
    window_->repairBar()->equalization()->click();
    waitForEvaluation(*window_, kTimeoutMs);
    const RepairReport report = *window_->session()->evaluation()->repairs;
    QVERIFY(!report.equalized.empty());
    const std::string layer = report.equalized.front().first;

    // Unchecking the layer's Equalize cell overrides the switch for it alone.
    QVERIFY(window_->layerModel()->setData(cell(*window_, layer, LayerTableModel::Equalization), Qt::Unchecked, Qt::CheckStateRole));
    const QuantConfig& config = window_->document()->config();
    QVERIFY(config.repairs.equalization);
    QCOMPARE(config.layers.at(layer).repairs.equalization, std::optional<bool>(false));
    waitForEvaluation(*window_, kTimeoutMs);
    for (const EqualizedPair& p : window_->session()->evaluation()->repairs->equalized)
        QVERIFY(p.first != layer && p.second != layer);
    QVERIFY(!window_->layerModel()->index(window_->layerModel()->rowOf(layer), LayerTableModel::Repaired).data().toString().contains('E'));

    // A layer without weights has no repair cells to edit.
    for (int row = 0; row < window_->layerModel()->rowCount(); ++row)
        if (!window_->layerModel()->hasWeights(row))
            QVERIFY(!(window_->layerModel()->flags(window_->layerModel()->index(row, LayerTableModel::Equalization)) &
                      Qt::ItemIsUserCheckable));

    window_->document()->undoStack()->undo();
    window_->document()->undoStack()->undo();
    QCOMPARE(window_->document()->config().repairs, RepairSpec{});
    waitForEvaluation(*window_, kTimeoutMs);
}

void TestWindowRepairs::adaRoundIsKeptAndCancellable()
{
    RepairBar* bar = window_->repairBar();
    // Short, so that the test takes seconds; the defaults take about 13 s on this model.
    bar->adaRoundIterations()->setValue(300);
    bar->adaRoundImages()->setValue(64);
    QVERIFY(!bar->adaRoundIterations()->isEnabled());
    bar->adaRound()->click();
    QCOMPARE(window_->document()->config().repairs.adaRound, (AdaRoundSpec{true, 300, 64}));
    QVERIFY(bar->adaRoundIterations()->isEnabled());
    waitForEvaluation(*window_, kTimeoutMs);
    const auto evaluation = window_->session()->evaluation();
    QVERIFY(evaluation->repairs);
    const RepairReport& report = *evaluation->repairs;
    LayerTableModel* table = window_->layerModel();
    int weighted = 0;
    for (int row = 0; row < table->rowCount(); ++row)
        weighted += table->hasWeights(row);
    QCOMPARE(int(report.adaRounded.size()), weighted);
    for (const AdaRoundReport& a : report.adaRounded) {
        QCOMPARE(a.iterations, 300);
        QCOMPARE(a.images, std::size_t(64));
        // (That AdaRound lowers the error with its defaults is tst_adaround's; 300 steps need not.)
        QVERIFY2(std::isfinite(a.adaRoundError) && a.nearestError > 0, a.layer.c_str());
        QVERIFY(table->index(table->rowOf(a.layer), LayerTableModel::Repaired).data().toString().contains('A'));
    }

    // The chart of a layer: the share of each channel's weights that flipped, as reported.
    const AdaRoundReport& conv = report.adaRounded.front();
    window_->selectLayer(table->rowOf(conv.layer));
    QCOMPARE(window_->adaRoundChart()->after(), conv.flippedPerChannel);
    QVERIFY(std::any_of(conv.flippedPerChannel.begin(), conv.flippedPerChannel.end(), [](float f) { return f > 0 && f <= 1; }));

    // The last layer's output bits do not touch what AdaRound learned on: the repaired model is
    // kept (the same report object); the first layer's output bits do, and it is repaired again.
    const std::string last = report.adaRounded.back().layer, first = report.adaRounded.front().layer;
    QVERIFY(table->setData(cell(*window_, last, LayerTableModel::ActivationBits), 6, Qt::EditRole));
    waitForEvaluation(*window_, kTimeoutMs);
    QCOMPARE(window_->session()->evaluation()->repairs.get(), evaluation->repairs.get());
    QVERIFY(table->setData(cell(*window_, first, LayerTableModel::ActivationBits), 6, Qt::EditRole));
    waitForEvaluation(*window_, kTimeoutMs);
    QVERIFY(window_->session()->evaluation()->repairs.get() != evaluation->repairs.get());

    // A long run shows AdaRound's stage in the progress and is cancelled while AdaRound works:
    // the configuration stays as the user made it.
    QSignalSpy cancelled(window_->session(), &Session::cancelled);
    QSignalSpy progress(window_->session(), &Session::progress);
    bar->adaRoundIterations()->setValue(1'000'000);
    QTRY_VERIFY_WITH_TIMEOUT(std::any_of(progress.begin(), progress.end(),
                                         [](const QList<QVariant>& signal) { return signal.at(0).toString().contains("AdaRound"); }),
                             kTimeoutMs);
    window_->session()->cancel();
    QTRY_VERIFY_WITH_TIMEOUT(cancelled.count() >= 1, 30000);
    QCOMPARE(window_->document()->config().repairs.adaRound.iterations, 1'000'000);
    QVERIFY(!(window_->session()->evaluation()->config == window_->document()->config()));
    QCOMPARE(bar->adaRoundIterations()->value(), 1'000'000);
}

QTEST_MAIN(TestWindowRepairs)
#include "tst_window_repairs.moc"
