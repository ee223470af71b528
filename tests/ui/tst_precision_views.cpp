// The window's views of issue 13 on the demo model (offscreen), driven as a user drives them:
// - a sensitivity sweep fills the heat map with one row per layer, each cell the core's number
//   (checked against measureSensitivity run on a study of its own), and an edit made during the
//   sweep neither stops it nor changes what it measures;
// - clicking a cell sets that layer to that setting, and one undo restores the configuration;
// - Cancel stops a sweep and keeps the rows done;
// - the Pareto view's front is the core's paretoFront of its points, and clicking a point loads
//   its configuration (one undo step);
// - a search started from the dialog with a loose budget finishes, fills the Pareto view and
//   applies its choice as one undo step.

#include "window_waits.h"
#include "config_document.h"
#include "main_window.h"
#include "pareto_view.h"
#include "search_dialog.h"
#include "sensitivity_view.h"
#include "session.h"

#include "study/precision_search.h"
#include "study/sensitivity.h"

#include <QDoubleSpinBox>
#include <QFont>
#include <QLabel>
#include <QRadioButton>
#include <QTabWidget>
#include <QHeaderView>
#include <QLineSeries>
#include <QPushButton>
#include <QScatterSeries>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTableView>
#include <QUndoStack>
#include <QtTest>

#include <cmath>
#include <filesystem>

using namespace qe;

namespace {
const QString kModel = QStringLiteral(QE_SOURCE_DIR "/resources/models/fashion_cnn.onnx");
const QString kImages = QStringLiteral(QE_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz");
const int kTimeoutMs = scaledTimeout(120000);
const int kSearchTimeoutMs = scaledTimeout(600000);

void openDefault(MainWindow& window)
{
    QSignalSpy evaluated(window.session(), &Session::evaluated);
    window.show();
    window.openSession(kModel, kImages);
    QTRY_VERIFY_WITH_TIMEOUT(evaluated.count() >= 1, kTimeoutMs);
}

bool sweepRunning(MainWindow& window)
{
    const auto sweep = window.session()->sensitivity();
    return sweep && sweep->running;
}

// Edits the document and waits for that configuration's evaluation.
void editAndWait(MainWindow& window, const QuantConfig& config, const QString& description)
{
    QSignalSpy evaluated(window.session(), &Session::evaluated);
    window.document()->edit(config, description);
    QTRY_VERIFY_WITH_TIMEOUT(window.session()->evaluation()->config == config, kTimeoutMs);
}

QScatterSeries* seriesNamed(ParetoChart* chart, const QString& name)
{
    for (QAbstractSeries* s : chart->chart()->series())
        if (s->name() == name)
            return qobject_cast<QScatterSeries*>(s);
    return nullptr;
}
}  // namespace

class TestPrecisionViews : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void sweepFillsTheHeatMapWithTheCoresNumbers();
    void clickingACellAppliesItAsOneUndoStep();
    void cancelKeepsTheRowsDone();
    void paretoFrontIsTheCoresAndClickLoads();
    void searchFromTheDialogFinishesAndApplies();
};

void TestPrecisionViews::initTestCase()
{
    QStandardPaths::setTestModeEnabled(true);
    if (!std::filesystem::exists(kImages.toStdString()))
        QSKIP("needs Debian's dataset-fashion-mnist");
}

void TestPrecisionViews::sweepFillsTheHeatMapWithTheCoresNumbers()
{
    MainWindow window;
    openDefault(window);
    SensitivityView* view = window.sensitivityView();
    SensitivityModel* model = view->model();
    const QuantConfig base = window.document()->config();
    QVERIFY(view->measure());
    QVERIFY(sweepRunning(window));

    // An edit once the first layer is in: the sweep goes on, with the configuration it started
    // from, and the edit is evaluated.
    QTRY_VERIFY_WITH_TIMEOUT(window.session()->sensitivity()->result.layers.size() >= 1, kTimeoutMs);
    QuantConfig edited = base;
    edited.defaultWeights.bits = 6;
    window.document()->edit(edited, "weights to 6 bits during the sweep");
    QTRY_VERIFY_WITH_TIMEOUT(!sweepRunning(window), kTimeoutMs);
    QTRY_VERIFY_WITH_TIMEOUT(window.session()->evaluation()->config == edited, kTimeoutMs);

    const auto sweep = window.session()->sensitivity();
    QVERIFY2(sweep->stopped.isEmpty(), qPrintable(sweep->stopped));
    QVERIFY(sweep->result.complete);
    QVERIFY(sweep->base == base);
    const auto& layers = window.session()->snapshot()->layers;
    QCOMPARE(model->rowCount(), int(layers.size()));
    QCOMPARE(sweep->result.layers.size(), layers.size());
    // Settings: W2..W8 x A4..A8, A4..A8 for the input (no weights), and "all but this".
    QCOMPARE(model->columnCount(), 5 * 3 + 3 + 1);
    QCOMPARE(model->headerData(0, Qt::Horizontal, Qt::DisplayRole).toString(), QString("W2A4"));

    // Every cell is the core's drop against float, in points, and says so on hover.
    const double floatTop1 = sweep->result.floatTop1;
    for (int row = 0; row < model->rowCount(); ++row) {
        const LayerSensitivity& layer = sweep->result.layers[std::size_t(row)];
        QCOMPARE(model->layerAt(row), layers[std::size_t(row)].name);
        QCOMPARE(model->headerData(row, Qt::Vertical, Qt::DisplayRole).toString(), QString::fromStdString(layer.layer));
        int cells = 0;
        for (const SensitivityPoint& p : layer.onlyThis)
            for (int column = 0; column + 1 < model->columnCount(); ++column)
                if (model->choiceAt(column) == PrecisionChoice{.weightBits = p.weightBits, .activationBits = p.activationBits}) {
                    QCOMPARE(model->index(row, column).data(SensitivityModel::DropRole).toDouble(), 100.0 * (floatTop1 - p.top1));
                    QVERIFY(model->index(row, column).data(Qt::ToolTipRole).toString().contains(QString::number(100.0 * p.top1, 'f', 2)));
                    ++cells;
                }
        QCOMPARE(cells, int(layer.onlyThis.size()));
        QCOMPARE(cells, layers[std::size_t(row)].weight.empty() ? 3 : 15);
        QCOMPARE(model->index(row, model->columnCount() - 1).data(SensitivityModel::DropRole).toDouble(),
                 100.0 * (floatTop1 - layer.allButThisTop1));
    }
    // Two bits of weights cost more than eight, somewhere.
    bool twoBitsHurt = false;
    for (int row = 0; row < model->rowCount(); ++row)
        twoBitsHurt |= model->index(row, 0).data(SensitivityModel::DropRole).toDouble() >
                       model->index(row, 4 * 3 + 2).data(SensitivityModel::DropRole).toDouble() + 0.5;
    QVERIFY(twoBitsHurt);

    // The same numbers from the core on a study of its own, for one layer.
    StudySources sources;
    sources.model = kModel.toStdString();
    sources.data = kImages.toStdString();
    sources.evaluationImages = Session::kEvaluationImages;
    Study study(sources);
    SensitivityOptions one;
    one.layers = {"/conv2/Conv"};
    const SensitivityResult alone = measureSensitivity(study, base, one, {});
    const int row = model->rowOf("/conv2/Conv");
    QCOMPARE(alone.layers.size(), std::size_t(1));
    QCOMPARE(alone.floatTop1, floatTop1);
    for (std::size_t k = 0; k < alone.layers[0].onlyThis.size(); ++k)
        QCOMPARE(alone.layers[0].onlyThis[k].top1, sweep->result.layers[std::size_t(row)].onlyThis[k].top1);
    QCOMPARE(alone.layers[0].allButThisTop1, sweep->result.layers[std::size_t(row)].allButThisTop1);

    // Worst first: the rows by their mean drop, the largest first.
    view->setWorstFirst(true);
    auto meanDrop = [&](int r) {
        double sum = 0;
        int n = 0;
        for (int column = 0; column + 1 < model->columnCount(); ++column)
            if (const double d = model->index(r, column).data(SensitivityModel::DropRole).toDouble(); !std::isnan(d))
                sum += d, ++n;
        return sum / n;
    };
    for (int r = 1; r < model->rowCount(); ++r)
        QVERIFY(meanDrop(r - 1) >= meanDrop(r) - 1e-9);
}

void TestPrecisionViews::clickingACellAppliesItAsOneUndoStep()
{
    MainWindow window;
    openDefault(window);
    SensitivityView* view = window.sensitivityView();
    QVERIFY(view->measure());
    QTRY_VERIFY_WITH_TIMEOUT(!sweepRunning(window), kTimeoutMs);
    SensitivityModel* model = view->model();
    const QuantConfig before = window.document()->config();
    const int undoSteps = window.document()->undoStack()->count();

    // A click on fc1's W4A6 cell, as a user clicks it.
    const int row = model->rowOf("/fc1/Gemm");
    int column = -1;
    for (int c = 0; c < model->columnCount(); ++c)
        if (model->choiceAt(c) == PrecisionChoice{.weightBits = 4, .activationBits = 6})
            column = c;
    QVERIFY(row >= 0 && column >= 0);
    window.showView(view);
    QTableView* table = view->table();
    table->scrollTo(model->index(row, column));
    QTest::mouseClick(table->viewport(), Qt::LeftButton, {}, table->visualRect(model->index(row, column)).center());
    QTRY_COMPARE(window.document()->config().resolve("/fc1/Gemm").weights.bits, 4);
    QCOMPARE(window.document()->config().resolve("/fc1/Gemm").activations.bits, 6);
    QCOMPARE(window.document()->config().resolve("/fc2/Gemm").weights.bits, 8);  // only that layer
    QCOMPARE(window.document()->undoStack()->count(), undoSteps + 1);
    QVERIFY(window.document()->config() == withLayerPrecision(before, "/fc1/Gemm", {.weightBits = 4, .activationBits = 6}));
    // The cell now shows the layer's current setting.
    QVERIFY(model->index(row, column).data(Qt::FontRole).value<QFont>().underline());

    // "All but this" keeps the layer in float.
    QVERIFY(view->applyCell(row, model->columnCount() - 1));
    QVERIFY(window.document()->config().resolve("/fc1/Gemm").keepFloat);

    window.document()->undoStack()->undo();
    window.document()->undoStack()->undo();
    QVERIFY(window.document()->config() == before);
}

void TestPrecisionViews::cancelKeepsTheRowsDone()
{
    MainWindow window;
    openDefault(window);
    SensitivityView* view = window.sensitivityView();
    QVERIFY(view->measure());
    QTRY_VERIFY_WITH_TIMEOUT(window.session()->sensitivity()->result.layers.size() >= 1, kTimeoutMs);
    window.session()->cancelSensitivity();
    QTRY_VERIFY_WITH_TIMEOUT(!sweepRunning(window), kTimeoutMs);
    const auto sweep = window.session()->sensitivity();
    const std::size_t done = sweep->result.layers.size();
    QVERIFY2(done >= 1 && done < sweep->layersToMeasure, qPrintable(QString::number(done)));
    QCOMPARE(sweep->stopped, QString("cancelled"));
    QVERIFY(!sweep->result.complete);
    SensitivityModel* model = view->model();
    QCOMPARE(model->rowCount(), int(sweep->layersToMeasure));  // every layer listed ...
    for (int row = 0; row < model->rowCount(); ++row) {      // ... those done with their numbers
        const double allButThis = model->index(row, model->columnCount() - 1).data(SensitivityModel::DropRole).toDouble();
        QCOMPARE(!std::isnan(allButThis), std::size_t(row) < done);
    }
    // Nothing more arrives, and a new sweep starts afresh.
    QTest::qWait(500);
    QCOMPARE(window.session()->sensitivity()->result.layers.size(), done);
    QVERIFY(view->measure());
    QTRY_VERIFY_WITH_TIMEOUT(!sweepRunning(window), kTimeoutMs);
    QVERIFY(window.session()->sensitivity()->result.complete);
}

void TestPrecisionViews::paretoFrontIsTheCoresAndClickLoads()
{
    MainWindow window;
    openDefault(window);
    const QuantConfig start = window.document()->config();
    for (int bits : {6, 4, 3}) {
        QuantConfig config = start;
        config.defaultWeights.bits = bits;
        editAndWait(window, config, QString("weights to %1 bits").arg(bits));
    }
    ParetoChart* chart = window.paretoView()->chart();
    QCOMPARE(chart->points().size(), 4);

    // The front is paretoFront of the points drawn, and the line joins exactly those points.
    std::vector<std::pair<double, double>> points;
    for (const ParetoChart::Point& p : chart->points())
        points.emplace_back(p.sizeKiB, p.top1);
    QList<int> expected;
    for (std::size_t i : paretoFront(points))
        expected << int(i);
    QCOMPARE(chart->front(), expected);
    QLineSeries* line = nullptr;
    for (QAbstractSeries* s : chart->chart()->series())
        if (s->name() == "Pareto front")
            line = qobject_cast<QLineSeries*>(s);
    QVERIFY(line);
    QCOMPARE(line->count(), expected.size());
    for (int k = 0; k < expected.size(); ++k)
        QCOMPARE(line->at(k), QPointF(points[std::size_t(expected[k])].first, points[std::size_t(expected[k])].second));
    // The current configuration is marked; the hover names it.
    QScatterSeries* current = seriesNamed(chart, "current");
    QVERIFY(current && current->count() == 1);
    QCOMPARE(current->at(0), QPointF(points.back().first, points.back().second));
    QVERIFY(chart->pointDescription(current->at(0)).contains("weights to 3 bits"));
    QVERIFY(chart->pointDescription(current->at(0)).contains("w3a8"));

    // Clicking the first configuration loads it, as one undo step.
    const int steps = window.document()->undoStack()->count();
    QScatterSeries* tried = seriesNamed(chart, "tried (evaluation images)");
    QVERIFY(tried);
    emit tried->clicked(QPointF(points[0].first, points[0].second));
    QTRY_VERIFY(window.document()->config() == start);
    QCOMPARE(window.document()->undoStack()->count(), steps + 1);
    window.document()->undoStack()->undo();
    QCOMPARE(window.document()->config().defaultWeights.bits, 3);
}

void TestPrecisionViews::searchFromTheDialogFinishesAndApplies()
{
    MainWindow window;
    openDefault(window);
    const QuantConfig before = window.document()->config();
    SearchDialog* dialog = window.showSearchDialog();
    QVERIFY(dialog->isVisible());
    dialog->maxDrop()->setValue(3.0);  // loose
    QVERIFY(dialog->accuracyGoal()->isChecked());
    QSignalSpy finished(window.session(), &Session::searchFinished);
    QTest::mouseClick(dialog->startButton(), Qt::LeftButton);
    QVERIFY(window.session()->isSearching());
    QVERIFY(!dialog->startButton()->isEnabled());
    QTRY_VERIFY_WITH_TIMEOUT(finished.count() == 1, kSearchTimeoutMs);
    const auto result = dialog->result();
    QVERIFY(result);
    QVERIFY(result->complete);
    QVERIFY2(result->shortfall.empty(), result->shortfall.c_str());
    QVERIFY(!result->evaluated.empty());
    QVERIFY(result->sizeBytes < result->baseSizeBytes);  // three points buy something smaller than W8A8
    QVERIFY(dialog->outcome()->text().contains("Chosen"));

    // Every candidate is on the Pareto view, as a search point.
    int searchPoints = 0;
    for (const ParetoChart::Point& p : window.paretoView()->chart()->points())
        searchPoints += p.source == ParetoChart::Point::Search;
    QCOMPARE(searchPoints, int(result->evaluated.size()));

    // Apply: one undo step.
    QVERIFY(dialog->applyButton()->isEnabled());
    const int steps = window.document()->undoStack()->count();
    QTest::mouseClick(dialog->applyButton(), Qt::LeftButton);
    QVERIFY(window.document()->config() == result->chosen);
    QCOMPARE(window.document()->undoStack()->count(), steps + 1);
    window.document()->undoStack()->undo();
    QVERIFY(window.document()->config() == before);
}

QTEST_MAIN(TestPrecisionViews)
#include "tst_precision_views.moc"
