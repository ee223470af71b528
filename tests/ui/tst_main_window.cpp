// The explorer window, driven as a user drives it (offscreen): it opens the embedded default and
// fills its views; a layer's bits are edited through the table's delegate; the configuration has
// one owner, the document, which the table reads and the session is given; undo and redo restore
// the configuration; a newer change cancels a running evaluation; a malformed model gives an
// error and keeps the session; and the charts show exactly the core's numbers. Exports: the QDQ
// model imports back as the window's configuration (and lists what it writes in float), the
// encodings table has a row per quantized tensor, the report folder holds report.md and its
// charts, the int8 engine's results reach the accuracy tab, and an unwritable path is an error
// naming the file that leaves the session as it was.

#include "window_waits.h"
#include "charts.h"
#include "config_document.h"
#include "gallery_model.h"
#include "layer_table_model.h"
#include "graph_view.h"
#include "main_window.h"
#include "session.h"

#include "eval/quant_evaluator.h"
#include "io/qdq_export.h"
#include "engine/graph_preparation.h"
#include "quant/qdq_import.h"

#include <QBarSet>
#include <QComboBox>
#include <QLabel>
#include <QMessageBox>
#include <QGraphicsItem>
#include <QGraphicsScene>
#include <QSignalSpy>
#include <QSortFilterProxyModel>
#include <QSpinBox>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTableView>
#include <QTemporaryDir>
#include <QTimer>
#include <QUndoStack>
#include <QElapsedTimer>
#include <QtTest>

#include "dialog_closer.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

using namespace qe;

namespace {
const QString kModel = QStringLiteral(QE_SOURCE_DIR "/resources/models/fashion_cnn.onnx");
const QString kImages = QStringLiteral(QE_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz");
const QString kTrainImages = QStringLiteral(QE_FASHION_MNIST_DIR "/train-images-idx3-ubyte.gz");
const int kTimeoutMs = scaledTimeout(60000);

// Opens the default and waits for its first evaluation.
void openDefault(MainWindow& window)
{
    QSignalSpy evaluated(window.session(), &Session::evaluated);
    window.show();
    window.openSession(kModel, kImages);
    QTRY_VERIFY_WITH_TIMEOUT(evaluated.count() >= 1, kTimeoutMs);
}

// The table's view index of a layer's cell (the table sorts through a proxy).
QModelIndex cell(MainWindow& window, const std::string& layer, int column)
{
    auto* proxy = qobject_cast<QSortFilterProxyModel*>(window.layerTable()->model());
    const int row = window.layerModel()->rowOf(layer);
    return proxy->mapFromSource(window.layerModel()->index(row, column));
}

// The core on its own, set up as the session sets itself up for the default: the first 1000 test
// images, calibrated on 512 training images.
struct Reference {
    std::shared_ptr<const Graph> graph = std::make_shared<const Graph>(loadOnnx(kModel.toStdString()));
    std::shared_ptr<const Dataset> test = openDataset(kImages.toStdString());
    Preprocess preprocess = *Preprocess::loadSidecar(kModel.toStdString());
    QuantEvaluator evaluator{graph, test, preprocess, 1000};
    Reference() { evaluator.calibrate(*openDataset(kTrainImages.toStdString()), 512); }
};

// Waits for the running export; its result, or null when it failed.
std::shared_ptr<const ExportResult> waitForExport(MainWindow& window, QSignalSpy& exported, QSignalSpy& failed)
{
    [&] { QTRY_VERIFY_WITH_TIMEOUT(exported.count() + failed.count() >= 1, kTimeoutMs); }();
    if (exported.count() + failed.count() == 0)
        return {};
    [&] { QVERIFY2(failed.isEmpty(), qPrintable(failed.isEmpty() ? QString() : failed.at(0).at(1).toString())); }();
    if (!failed.isEmpty())
        return {};
    [&] { QVERIFY(!window.session()->isExporting()); }();
    return exported.takeFirst().at(0).value<std::shared_ptr<const ExportResult>>();
}

QMessageBox* messageBox(MainWindow& window, const QString& name)
{
    for (QMessageBox* box : window.findChildren<QMessageBox*>(name))
        if (box->isVisible())
            return box;
    return nullptr;
}
}  // namespace

class TestMainWindow : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void opensTheDefault();
    void editsBitsThroughTheDelegate();
    void editsSeveralSelectedRows();
    void oneOwnerOfTheConfiguration();
    void graphViewShowsTheModelAndSelects();
    void undoRedoRestoreTheConfiguration();
    void newerChangeCancelsTheRunningOne();
    void badModelKeepsTheSession();
    void chartsShowTheCoresNumbers();
    void savesConfigurationAndCsv();
    void exportsTheQuantizedModel();
    void exportListsTheLayersWrittenInFloat();
    void exportKeepsTheConfigurationItWasAskedFor();
    void exportsEncodings();
    void writesTheReport();
    void runsTheIntegerEngine();
    void unwritablePathKeepsTheSession();
    void refreshRerunsFromScratch();
    void evaluationImagesIsASetting();
    void top1StreamsIn();
};

void TestMainWindow::initTestCase()
{
    QStandardPaths::setTestModeEnabled(true);  // autosave and recent files stay out of the user's folders
    if (!std::filesystem::exists(kImages.toStdString()))
        QSKIP("needs Debian's dataset-fashion-mnist");
}

void TestMainWindow::opensTheDefault()
{
    MainWindow window;
    QSignalSpy histograms(window.session(), &Session::histogramsReady);
    openDefault(window);
    const auto snapshot = window.session()->snapshot();
    const auto evaluation = window.session()->evaluation();
    QVERIFY(snapshot && evaluation);

    // One row per quantizable layer in graph order: the input, three convolutions, two Gemms.
    QCOMPARE(window.layerModel()->rowCount(), 6);
    QCOMPARE(window.layerModel()->index(1, LayerTableModel::Name).data().toString(), QString("/conv1/Conv"));
    QCOMPARE(window.layerModel()->index(1, LayerTableModel::OutputShape).data().toString(), QString("[N,16,28,28]"));
    QCOMPARE(window.layerModel()->index(1, LayerTableModel::WeightBits).data().toInt(), 8);

    // W8A8 on 1000 images: near float, and on screen.
    const ModelMetrics& m = evaluation->metrics;
    QCOMPARE(m.images, std::size_t(1000));
    QVERIFY2(m.top1 > 0.88, qPrintable(QString::number(m.top1)));
    QVERIFY(std::abs(m.top1 - m.floatTop1) < 0.01);
    bool shown = false;
    for (QLabel* label : window.findChildren<QLabel*>())
        shown = shown || label->text().contains(QString::number(100.0 * m.top1, 'f', 2) + "%");
    QVERIFY2(shown, "the accuracy is not on screen");

    // The charts are filled: error bars for every layer, and the selected layer's histograms.
    QCOMPARE(window.errorChart()->barSets().size(), 2);
    QCOMPARE(window.errorChart()->barSets()[0]->count(), 6);
    QTRY_VERIFY_WITH_TIMEOUT(histograms.count() >= 1, kTimeoutMs);
    QVERIFY(window.weightHistogram()->histogram().has_value());
    QVERIFY(window.activationHistogram()->histogram().has_value());
    QVERIFY(!window.activationHistogram()->chart()->series().isEmpty());
    QCOMPARE(evaluation->confusion.total(), std::size_t(1000));
}

void TestMainWindow::editsBitsThroughTheDelegate()
{
    MainWindow window;
    openDefault(window);
    QSignalSpy evaluated(window.session(), &Session::evaluated);
    const double sizeBefore = window.session()->evaluation()->metrics.sizeBytes;

    // Open the spin box on fc1's weight bits, set 4 and press Enter, as a user does.
    QTableView* table = window.layerTable();
    const QModelIndex index = cell(window, "/fc1/Gemm", LayerTableModel::WeightBits);
    table->setCurrentIndex(index);
    table->edit(index);
    auto* spin = table->findChild<QSpinBox*>();
    QVERIFY(spin);
    QCOMPARE(spin->value(), 8);
    QCOMPARE(spin->minimum(), 2);  // symmetric allows 2..16 bits
    spin->setValue(4);
    QTest::keyClick(spin, Qt::Key_Return);  // the delegate commits on Enter (queued)

    QTRY_COMPARE(window.document()->config().resolve("/fc1/Gemm").weights.bits, 4);
    QCOMPARE(window.document()->config().resolve("/fc2/Gemm").weights.bits, 8);  // only that layer
    QTRY_VERIFY_WITH_TIMEOUT(evaluated.count() >= 1, kTimeoutMs);
    const auto evaluation = window.session()->evaluation();
    QCOMPARE(evaluation->config.resolve("/fc1/Gemm").weights.bits, 4);
    QVERIFY(evaluation->metrics.sizeBytes < sizeBefore);  // 4-bit weights are smaller
    QCOMPARE(evaluation->plans[std::size_t(window.layerModel()->rowOf("/fc1/Gemm"))].weightParams->bits, 4);
    QVERIFY(evaluation->metrics.recomputedFromNode > 0);  // incremental: resumed at fc1
    QVERIFY(window.isWindowModified());
}

void TestMainWindow::editsSeveralSelectedRows()
{
    MainWindow window;
    openDefault(window);
    QTableView* table = window.layerTable();
    // Select conv2 and conv3 and pick k-means for the weight scheme in conv2's combo box.
    auto* selection = table->selectionModel();
    selection->clearSelection();
    for (const char* layer : {"/conv2/Conv", "/conv3/Conv"})
        selection->select(cell(window, layer, LayerTableModel::Name), QItemSelectionModel::Select | QItemSelectionModel::Rows);
    const QModelIndex index = cell(window, "/conv2/Conv", LayerTableModel::WeightScheme);
    selection->setCurrentIndex(index, QItemSelectionModel::NoUpdate);
    table->edit(index);
    auto* combo = table->findChild<QComboBox*>();
    QVERIFY(combo);
    const int kmeans = combo->findData(int(Scheme::KMeans));
    QVERIFY(kmeans >= 0);
    combo->setCurrentIndex(kmeans);
    emit combo->activated(kmeans);

    const QuantConfig& config = window.document()->config();
    QCOMPARE(config.resolve("/conv2/Conv").weights.scheme, Scheme::KMeans);
    QCOMPARE(config.resolve("/conv3/Conv").weights.scheme, Scheme::KMeans);
    QCOMPARE(config.resolve("/conv1/Conv").weights.scheme, Scheme::Symmetric);
    QCOMPARE(window.document()->undoStack()->count(), 1);  // one edit, one undo step
}

// The document owns the configuration: an edit in the table changes the document (one undo
// step, one changed()), the table's cells read the document's configuration (there is no copy
// to go stale), the session is given exactly the document's configuration once per change, and
// undo restores all of them together.
void TestMainWindow::graphViewShowsTheModelAndSelects()
{
    // Issue 19: the graph view. Every node is drawn; a layer's node is coloured by its
    // accumulated SQNR; clicking it selects the layer in the table; selecting in the table
    // highlights it in the graph.
    MainWindow window;
    openDefault(window);
    GraphView* graph = window.graphView();
    const auto snapshot = window.session()->snapshot();
    QCOMPARE(graph->nodeCount(), int(snapshot->graph->nodes.size()));
    QVERIFY(graph->edgeCount() >= graph->nodeCount() - 1);  // a connected chain at least
    const auto evaluation = window.session()->evaluation();
    int layerNodes = 0;
    for (int node = 0; node < graph->nodeCount(); ++node) {
        const int layer = graph->layerOfNode(node);
        if (layer < 0)
            continue;
        ++layerNodes;
        const double sqnr = evaluation->metrics.layers[std::size_t(layer)].accumulated.sqnrDb;
        QCOMPARE(graph->nodeColour(node), GraphView::colourForSqnr(sqnr));
    }
    QVERIFY(layerNodes >= int(snapshot->layers.size()) - 1);  // every layer but the graph input

    // Clicking conv3's node selects conv3 in the table.
    const int conv3 = window.layerModel()->rowOf("/conv3/Conv");
    const int conv3Node = snapshot->layers[std::size_t(conv3)].nodeIndex;
    QCOMPARE(graph->layerOfNode(conv3Node), conv3);
    QSignalSpy clicked(graph, &GraphView::layerClicked);
    for (QWidget* w = graph->parentWidget(); w; w = w->parentWidget())
        if (auto* tabs = qobject_cast<QTabWidget*>(w)) {
            for (int i = 0; i < tabs->count(); ++i)
                if (tabs->widget(i)->isAncestorOf(graph))
                    tabs->setCurrentIndex(i);
            break;
        }
    graph->fitWholeModel();
    QGraphicsItem* box = nullptr;
    for (QGraphicsItem* item : graph->scene()->items())
        if (item->data(0).isValid() && item->data(0).toInt() == conv3Node)
            box = item;
    QVERIFY(box);
    graph->centerOn(box);
    QTest::mouseClick(graph->viewport(), Qt::LeftButton, {}, graph->mapFromScene(box->sceneBoundingRect().center()));
    QCOMPARE(clicked.count(), 1);
    QCOMPARE(clicked.at(0).at(0).toInt(), conv3);
    QCOMPARE(window.layerModel()->layerName(window.layerTable()->currentIndex().isValid()
                                                ? qobject_cast<QSortFilterProxyModel*>(window.layerTable()->model())
                                                      ->mapToSource(window.layerTable()->currentIndex()).row()
                                                : -1),
             std::string("/conv3/Conv"));
}

void TestMainWindow::oneOwnerOfTheConfiguration()
{
    MainWindow window;
    openDefault(window);
    ConfigDocument* document = window.document();
    LayerTableModel* model = window.layerModel();
    const QuantConfig original = document->config();
    QCOMPARE(window.session()->config(), original);
    QSignalSpy changed(document, &ConfigDocument::changed);
    QSignalSpy toldSession(window.session(), &Session::evaluationStarted);
    const int conv2 = model->rowOf("/conv2/Conv");

    // An edit through the table: proposed to the document, which applies it.
    QVERIFY(model->setData(cell(window, "/conv2/Conv", LayerTableModel::ActivationBits), 6, Qt::EditRole));
    QCOMPARE(changed.count(), 1);
    QCOMPARE(document->undoStack()->count(), 1);
    QCOMPARE(document->config().resolve("/conv2/Conv").activations.bits, 6);
    QCOMPARE(model->index(conv2, LayerTableModel::ActivationBits).data().toInt(), 6);
    QCOMPARE(window.session()->config(), document->config());

    // An edit made on the document itself (as opening a file or the Edit menu make them) is what
    // the table shows at once, and the table's next edit starts from it.
    QuantConfig direct = document->config();
    direct.layers["/conv2/Conv"].weights.bits = 5;
    document->edit(direct, "conv2 weights 5 bits");
    QCOMPARE(model->index(conv2, LayerTableModel::WeightBits).data().toInt(), 5);
    QCOMPARE(window.session()->config(), direct);
    QVERIFY(model->setData(cell(window, "/fc1/Gemm", LayerTableModel::WeightBits), 4, Qt::EditRole));
    QCOMPARE(document->config().resolve("/conv2/Conv").weights.bits, 5);
    QCOMPARE(document->config().resolve("/conv2/Conv").activations.bits, 6);
    QCOMPARE(document->config().resolve("/fc1/Gemm").weights.bits, 4);
    QCOMPARE(window.session()->config(), document->config());
    QCOMPARE(changed.count(), 3);
    QCOMPARE(toldSession.count(), changed.count());  // one connection: each change told once

    // Undo walks the document back, and the table and the session follow.
    for (int step = 0; step < 3; ++step)
        document->undoStack()->undo();
    QCOMPARE(document->config(), original);
    QCOMPARE(window.session()->config(), original);
    QCOMPARE(model->index(conv2, LayerTableModel::ActivationBits).data().toInt(), 8);
    QCOMPARE(model->index(conv2, LayerTableModel::WeightBits).data().toInt(), 8);
    QCOMPARE(toldSession.count(), changed.count());
    QVERIFY(!window.isWindowModified());
    QTRY_VERIFY_WITH_TIMEOUT(!window.session()->isBusy() && window.session()->evaluation()->config == document->config(), kTimeoutMs);
}

void TestMainWindow::undoRedoRestoreTheConfiguration()
{
    MainWindow window;
    openDefault(window);
    const QuantConfig original = window.document()->config();
    QVERIFY(!window.isWindowModified());

    QVERIFY(window.layerModel()->setData(cell(window, "/conv2/Conv", LayerTableModel::WeightBits), 3, Qt::EditRole));
    QVERIFY(window.layerModel()->setData(cell(window, "/fc2/Gemm", LayerTableModel::KeepFloat), Qt::Checked, Qt::CheckStateRole));
    const QuantConfig edited = window.document()->config();
    QCOMPARE(edited.resolve("/conv2/Conv").weights.bits, 3);
    QVERIFY(edited.resolve("/fc2/Gemm").keepFloat);
    QCOMPARE(window.document()->undoStack()->count(), 2);
    QVERIFY(window.isWindowModified());
    QVERIFY(window.windowTitle().contains("[*]"));

    window.document()->undoStack()->undo();
    QVERIFY(!window.document()->config().resolve("/fc2/Gemm").keepFloat);
    QCOMPARE(window.document()->config().resolve("/conv2/Conv").weights.bits, 3);
    window.document()->undoStack()->undo();
    QCOMPARE(window.document()->config(), original);
    QCOMPARE(window.session()->config(), original);  // what is evaluated follows
    QVERIFY(!window.isWindowModified());

    window.document()->undoStack()->redo();
    window.document()->undoStack()->redo();
    QCOMPARE(window.document()->config(), edited);
    QSignalSpy evaluated(window.session(), &Session::evaluated);
    QTRY_VERIFY_WITH_TIMEOUT(window.session()->evaluation()->config == edited, kTimeoutMs);
}

void TestMainWindow::newerChangeCancelsTheRunningOne()
{
    MainWindow window;
    openDefault(window);
    std::vector<QuantConfig> shown;
    connect(window.session(), &Session::evaluated, this, [&] { shown.push_back(window.session()->evaluation()->config); });

    // A change to the first convolution reruns the whole model (a few hundred ms): it starts at
    // once, and the second change arrives while it runs.
    QuantConfig first = window.document()->config();
    first.layers["/conv1/Conv"].weights.bits = 4;
    window.document()->edit(first, "first");
    QVERIFY(window.session()->isBusy());
    QuantConfig second = first;
    second.layers["/conv1/Conv"].weights.bits = 5;
    window.document()->edit(second, "second");

    QTRY_VERIFY_WITH_TIMEOUT(!shown.empty(), kTimeoutMs);
    QTest::qWait(300);  // nothing stale may still arrive
    QCOMPARE(int(shown.size()), 1);
    QCOMPARE(shown.front(), second);
    QCOMPARE(window.session()->evaluation()->config.resolve("/conv1/Conv").weights.bits, 5);
}

void TestMainWindow::badModelKeepsTheSession()
{
    MainWindow window;
    openDefault(window);
    auto* session = window.session();
    QSignalSpy failed(session, &Session::failed);
    const auto before = session->snapshot();
    const auto evaluationBefore = session->evaluation();

    QTemporaryDir dir;
    const QString broken = dir.path() + "/broken.onnx";
    std::ofstream(broken.toStdString()) << "not a model";
    DialogCloser closer;
    window.openSession(broken, kImages);
    QTRY_COMPARE_WITH_TIMEOUT(failed.count(), 1, 30000);
    const QString message = failed.at(0).at(0).toString();
    QVERIFY2(message.contains("broken.onnx"), qPrintable(message));
    QCOMPARE(session->snapshot(), before);  // the loaded model is still there
    QCOMPARE(session->evaluation(), evaluationBefore);
    QCOMPARE(window.layerModel()->rowCount(), 6);

    // And it still works: an edit is evaluated.
    QSignalSpy evaluated(session, &Session::evaluated);
    QVERIFY(window.layerModel()->setData(cell(window, "/fc2/Gemm", LayerTableModel::WeightBits), 6, Qt::EditRole));
    QTRY_VERIFY_WITH_TIMEOUT(evaluated.count() >= 1, kTimeoutMs);
}

void TestMainWindow::chartsShowTheCoresNumbers()
{
    MainWindow window;
    QSignalSpy histograms(window.session(), &Session::histogramsReady);
    openDefault(window);
    QTRY_VERIFY_WITH_TIMEOUT(histograms.count() >= 1, kTimeoutMs);

    // The same evaluation done directly with the core, as the CLI does it.
    auto graph = std::make_shared<const Graph>(loadOnnx(kModel.toStdString()));
    std::shared_ptr<const Dataset> test = openDataset(kImages.toStdString());
    QuantEvaluator evaluator(graph, test, *Preprocess::loadSidecar(kModel.toStdString()), 1000);
    evaluator.calibrate(*openDataset(kTrainImages.toStdString()), 512);
    const QuantConfig config = window.document()->config();
    const ModelMetrics expected = evaluator.evaluate(config);

    const QList<QBarSet*> sets = window.errorChart()->barSets();
    QCOMPARE(sets.size(), 2);
    QCOMPARE(sets[0]->count(), int(expected.layers.size()));
    for (int i = 0; i < sets[0]->count(); ++i) {
        const LayerMetrics& layer = expected.layers[std::size_t(i)];
        const double accumulated = std::isfinite(layer.accumulated.sqnrDb) ? layer.accumulated.sqnrDb : 0.0;
        const double isolated = std::isfinite(layer.isolated.sqnrDb) ? layer.isolated.sqnrDb : 0.0;
        const int bar = window.errorChart()->barOfRow(i);  // the first layer is drawn on top
        QCOMPARE(sets[0]->at(bar), accumulated);
        QCOMPARE(sets[1]->at(bar), isolated);
    }
    QCOMPARE(window.session()->evaluation()->metrics.top1, expected.top1);

    // The MSE view reads the same model.
    window.errorChart()->setMode(ErrorChart::Mse);
    for (int i = 0; i < window.errorChart()->barSets()[0]->count(); ++i)
        QCOMPARE(window.errorChart()->barSets()[0]->at(window.errorChart()->barOfRow(i)), expected.layers[std::size_t(i)].accumulated.mse);

    // The histograms of the selected layer are the core's.
    const std::string layer = window.layerModel()->layerName(window.selectedLayer());
    QCOMPARE(layer, std::string("/conv1/Conv"));
    const TensorHistogram weights = evaluator.histogram(config, evaluator.layers()[1].weight);
    const TensorHistogram activations = evaluator.histogram(config, layer);
    QCOMPARE(window.weightHistogram()->histogram()->histogram.counts, weights.histogram.counts);
    QCOMPARE(window.weightHistogram()->histogram()->levels, weights.levels);
    QCOMPARE(window.activationHistogram()->histogram()->histogram.counts, activations.histogram.counts);
    QCOMPARE(window.activationHistogram()->histogram()->clipRange, activations.clipRange);
    QCOMPARE(window.activationHistogram()->histogram()->calibrationRanges.size(), std::size_t(5));

    // Clicking a bar selects its layer.
    emit window.errorChart()->layerClicked(4);
    QCOMPARE(window.selectedLayer(), 4);
}

void TestMainWindow::savesConfigurationAndCsv()
{
    MainWindow window;
    openDefault(window);
    QVERIFY(window.layerModel()->setData(cell(window, "/conv3/Conv", LayerTableModel::WeightBits), 5, Qt::EditRole));
    QTemporaryDir dir;
    const QString configPath = dir.path() + "/explored.json";
    QVERIFY(window.saveConfiguration(configPath));
    QVERIFY(!window.isWindowModified());
    const QuantConfig saved = QuantConfig::load(configPath.toStdString());
    QCOMPARE(saved.resolve("/conv3/Conv").weights.bits, 5);

    QSignalSpy evaluated(window.session(), &Session::evaluated);
    QTRY_VERIFY_WITH_TIMEOUT(window.session()->evaluation()->config == window.document()->config(), kTimeoutMs);
    const QString csvPath = dir.path() + "/metrics.csv";
    QVERIFY(window.exportMetricsCsv(csvPath));
    QFile csv(csvPath);
    QVERIFY(csv.open(QIODevice::ReadOnly));
    const QStringList lines = QString::fromUtf8(csv.readAll()).split('\n', Qt::SkipEmptyParts);
    QCOMPARE(lines.size(), 7);  // header and six layers
    QVERIFY(lines[0].startsWith("Layer,Operator"));
    QVERIFY(lines[4].startsWith("/conv3/Conv,"));

    // Charts save as PNG and SVG.
    window.errorChart()->saveImage(dir.path() + "/errors.png");
    window.errorChart()->saveImage(dir.path() + "/errors.svg");
    QVERIFY(QImage(dir.path() + "/errors.png").width() > 0);
    QFile svg(dir.path() + "/errors.svg");
    QVERIFY(svg.open(QIODevice::ReadOnly));
    QVERIFY(svg.readAll().contains("<svg"));

    // And the configuration opens again (undoable).
    QVERIFY(window.layerModel()->setData(cell(window, "/conv3/Conv", LayerTableModel::WeightBits), 7, Qt::EditRole));
    QVERIFY(window.openConfiguration(configPath));
    QCOMPARE(window.document()->config().resolve("/conv3/Conv").weights.bits, 5);
}

void TestMainWindow::exportsTheQuantizedModel()
{
    MainWindow window;
    openDefault(window);
    // A configuration that is not the default: fc2 in float, conv1's range by percentile, conv3's
    // weights per tensor.
    QuantConfig config = window.document()->config();
    config.layers["/fc2/Gemm"].keepFloat = true;
    config.layers["/conv1/Conv"].calibration = CalibrationSpec{CalibrationMethod::Percentile, 99.9};
    config.layers["/conv3/Conv"].weights.granularity = Granularity::PerTensor;
    window.document()->edit(config, "edits");

    QSignalSpy exported(window.session(), &Session::exported);
    QSignalSpy failed(window.session(), &Session::exportFailed);
    QTemporaryDir dir;
    const QString path = dir.path() + "/fashion_qdq.onnx";
    QVERIFY(window.exportQuantizedModel(path));
    QVERIFY(window.session()->isExporting());
    QVERIFY(!window.exportEncodings(dir.path() + "/e.csv"));  // one export at a time
    const auto result = waitForExport(window, exported, failed);
    QVERIFY(result);
    QCOMPARE(result->kind, ExportResult::QdqModel);
    QCOMPARE(result->config, config);
    QVERIFY2(result->warnings.isEmpty(), qPrintable(result->warnings.join("; ")));
    QVERIFY(!messageBox(window, "exportWarnings"));
    QCOMPARE(result->activationEncodings, std::size_t(5));  // the input and four quantized layers
    QVERIFY(window.statusBar()->currentMessage().contains("fashion_qdq.onnx"));
    // The preprocessing goes beside the exported model, so it opens with the same pixels.
    const auto sidecar = Preprocess::loadSidecar((dir.path() + "/fashion_qdq.onnx").toStdString());
    QVERIFY(sidecar.has_value());
    QCOMPARE(sidecar->toJson(), window.session()->snapshot()->preprocess.toJson());

    // The file opens as a QDQ model whose quantization is the window's configuration, with the
    // parameters the simulation uses.
    const auto imported = importQdq(loadOnnx(path.toStdString()));
    QVERIFY(imported.has_value());
    Reference reference;
    const QuantPlan plan = reference.evaluator.plan(config);
    QuantEvaluator again(std::make_shared<const Graph>(imported->floatGraph), reference.test, reference.preprocess, 1000);
    again.setFixedParams(imported->params);
    const QuantPlan roundTrip = again.plan(imported->config);
    QCOMPARE(roundTrip.layers.size(), plan.layers.size());
    QCOMPARE(int(plan.layers.size()), window.layerModel()->rowCount());
    for (std::size_t i = 0; i < plan.layers.size(); ++i) {
        const std::string& name = plan.layers[i].name;
        QCOMPARE(roundTrip.layers[i].name, name);
        const LayerQuantConfig mine = config.resolve(name), theirs = imported->config.resolve(name);
        const bool floatThere = theirs.keepFloat || !roundTrip.plans[i].activationParams;
        QCOMPARE(floatThere, mine.keepFloat);
        if (mine.keepFloat)
            continue;
        QVERIFY(plan.plans[i].activationParams && roundTrip.plans[i].activationParams);
        QCOMPARE(roundTrip.plans[i].activationParams->uniform().scale, plan.plans[i].activationParams->uniform().scale);
        QCOMPARE(roundTrip.plans[i].activationParams->uniform().zeroPoint, plan.plans[i].activationParams->uniform().zeroPoint);
        if (plan.plans[i].weightParams) {
            QCOMPARE(theirs.weights.bits, mine.weights.bits);
            QCOMPARE(theirs.weights.granularity, mine.weights.granularity);
            QCOMPARE(roundTrip.plans[i].weightParams->uniform().scale, plan.plans[i].weightParams->uniform().scale);
        }
    }
    // conv1's percentile range really differs from min/max: the check above can tell them apart.
    QuantConfig minMax = config;
    minMax.layers["/conv1/Conv"].calibration.reset();
    QVERIFY(reference.evaluator.plan(minMax).plans[1].activationParams->uniform().scale != plan.plans[1].activationParams->uniform().scale);
}

void TestMainWindow::exportListsTheLayersWrittenInFloat()
{
    MainWindow window;
    openDefault(window);
    QuantConfig config = window.document()->config();
    config.layers["/conv2/Conv"].weights.scheme = Scheme::KMeans;
    config.layers["/conv2/Conv"].weights.bits = 4;
    window.document()->edit(config, "k-means");
    QSignalSpy exported(window.session(), &Session::exported);
    QSignalSpy failed(window.session(), &Session::exportFailed);
    QTemporaryDir dir;
    QVERIFY(window.exportQuantizedModel(dir.path() + "/kmeans.onnx"));
    const auto result = waitForExport(window, exported, failed);
    QVERIFY(result);
    QCOMPARE(result->warnings.size(), 1);
    QVERIFY(result->warnings[0].contains("/conv2/Conv"));
    QVERIFY(result->warnings[0].contains("kmeans"));
    QMessageBox* box = messageBox(window, "exportWarnings");
    QVERIFY(box);
    QVERIFY(box->text().contains("kmeans.onnx"));
    QVERIFY(box->informativeText().contains(result->warnings[0]));
    box->accept();
    QVERIFY(QFileInfo(dir.path() + "/kmeans.onnx").size() > 0);
    QCOMPARE(window.document()->config(), config);  // the configuration itself is unchanged
}

void TestMainWindow::exportKeepsTheConfigurationItWasAskedFor()
{
    MainWindow window;
    openDefault(window);
    QSignalSpy exported(window.session(), &Session::exported);
    QSignalSpy failed(window.session(), &Session::exportFailed);
    QTemporaryDir dir;
    const QuantConfig asked = window.document()->config();
    QVERIFY(window.exportQuantizedModel(dir.path() + "/asked.onnx"));
    // An edit right after: the running export is not changed by it, nor stopped.
    QuantConfig edited = asked;
    edited.layers["/fc1/Gemm"].keepFloat = true;
    window.document()->edit(edited, "fc1 float");
    const auto result = waitForExport(window, exported, failed);
    QVERIFY(result);
    QCOMPARE(result->config, asked);
    const auto imported = importQdq(loadOnnx((dir.path() + "/asked.onnx").toStdString()));
    QVERIFY(imported.has_value());
    QVERIFY(imported->params.activations.count("/fc1/Gemm"));  // fc1 was quantized when asked
    QTRY_VERIFY_WITH_TIMEOUT(window.session()->evaluation()->config == edited, kTimeoutMs);
}

void TestMainWindow::exportsEncodings()
{
    MainWindow window;
    openDefault(window);
    QuantConfig config = window.document()->config();
    config.layers["/fc2/Gemm"].keepFloat = true;
    window.document()->edit(config, "fc2 float");
    QSignalSpy exported(window.session(), &Session::exported);
    QSignalSpy failed(window.session(), &Session::exportFailed);
    QTemporaryDir dir;

    // What the core says the configuration quantizes.
    Reference reference;
    const std::vector<TensorEncoding> expected = exportQdq(reference.evaluator.plan(config)).encodings;
    QCOMPARE(expected.size(), std::size_t(5 + 4 + 4));  // fc2 in float: 5 activations, 4 weights, 4 biases

    const QString csvPath = dir.path() + "/encodings.csv";
    QVERIFY(window.exportEncodings(csvPath));
    auto result = waitForExport(window, exported, failed);
    QVERIFY(result);
    QCOMPARE(result->activationEncodings + result->weightEncodings, expected.size());
    QFile csv(csvPath);
    QVERIFY(csv.open(QIODevice::ReadOnly));
    const QString csvText = QString::fromUtf8(csv.readAll());
    const QStringList lines = csvText.split('\n', Qt::SkipEmptyParts);
    QCOMPARE(lines.size(), int(expected.size()) + 1);
    QVERIFY(lines[0].startsWith("tensor,layer,kind,scheme,bits"));
    for (std::size_t i = 0; i < expected.size(); ++i)
        QVERIFY2(lines[int(i) + 1].startsWith('"' + QString::fromStdString(expected[i].tensor) + '"'), qPrintable(lines[int(i) + 1]));
    QVERIFY(!csvText.contains("/fc2/Gemm"));  // the float layer has no encodings

    const QString jsonPath = dir.path() + "/encodings.json";
    QVERIFY(window.exportEncodings(jsonPath));
    result = waitForExport(window, exported, failed);
    QVERIFY(result);
    QFile jsonFile(jsonPath);
    QVERIFY(jsonFile.open(QIODevice::ReadOnly));
    const auto json = nlohmann::json::parse(jsonFile.readAll().toStdString());
    QCOMPARE(json["tensors"].size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        QCOMPARE(json["tensors"][i]["tensor"].get<std::string>(), expected[i].tensor);
        QCOMPARE(json["tensors"][i]["scale"].get<std::vector<float>>(), expected[i].scale);
    }

    // Neither JSON nor CSV: an error naming the file, and nothing written.
    DialogCloser closer;
    QVERIFY(window.exportEncodings(dir.path() + "/encodings.txt"));
    QTRY_COMPARE_WITH_TIMEOUT(failed.count(), 1, kTimeoutMs);
    QVERIFY(failed.at(0).at(1).toString().contains(".csv"));
    QTRY_VERIFY(!closer.texts.isEmpty());
    QVERIFY(closer.texts[0].contains("encodings.txt"));
    QVERIFY(!QFileInfo::exists(dir.path() + "/encodings.txt"));
}

void TestMainWindow::writesTheReport()
{
    MainWindow window;
    openDefault(window);
    QSignalSpy exported(window.session(), &Session::exported);
    QSignalSpy failed(window.session(), &Session::exportFailed);
    QSignalSpy progress(window.session(), &Session::exportProgress);
    QTemporaryDir dir;
    const QString folder = dir.path() + "/report";  // created by the export
    QVERIFY(window.exportReport(folder));
    const auto result = waitForExport(window, exported, failed);
    QVERIFY(result);
    QVERIFY2(result->integerError.isEmpty(), qPrintable(result->integerError));
    for (const char* file : {"report.md", "layer_sqnr.png", "weight_histograms.png", "confusion_matrix.png"}) {
        QVERIFY2(QFileInfo(folder + "/" + file).size() > 0, file);
        QVERIFY(result->files.contains(folder + "/" + file));
    }
    QVERIFY(QImage(folder + "/layer_sqnr.png").width() > 0);
    QFile report(folder + "/report.md");
    QVERIFY(report.open(QIODevice::ReadOnly));
    const QString text = QString::fromUtf8(report.readAll());
    QVERIFY(text.contains("fashion_cnn.onnx"));
    QVERIFY(text.contains("int8 engine"));  // the integer engine's results are in it
    // The metrics on screen are the report's.
    const ModelMetrics& m = window.session()->evaluation()->metrics;
    QVERIFY2(text.contains(QString::number(100.0 * m.top1, 'f', 2) + "%"), qPrintable(text.left(2000)));

    // The int8 engine's progress was reported while it ran.
    bool sawEngine = false;
    for (const QList<QVariant>& p : progress)
        sawEngine = sawEngine || (p.at(0).toString() == "int8 engine" && p.at(2).toInt() == 1000);
    QVERIFY(sawEngine);

    // The window offers to open it, and shows the engine's results.
    QMessageBox* box = messageBox(window, "reportWritten");
    QVERIFY(box);
    QVERIFY(box->text().contains(QDir::toNativeSeparators(folder + "/report.md")));
    box->reject();
    QVERIFY(result->integer);
    QCOMPARE(result->integer->images, std::size_t(1000));
    QVERIFY(window.integerSummary()->text().contains(QString::number(100.0 * result->integer->top1, 'f', 2) + "%"));
}

void TestMainWindow::runsTheIntegerEngine()
{
    MainWindow window;
    openDefault(window);
    QVERIFY(!window.integerSummary()->text().contains("top-1"));
    QSignalSpy exported(window.session(), &Session::exported);
    QSignalSpy failed(window.session(), &Session::exportFailed);
    QVERIFY(window.runIntegerEngine());
    const auto result = waitForExport(window, exported, failed);
    QVERIFY(result && result->integer);
    const IntegerEvaluation& r = *result->integer;
    QCOMPARE(r.images, std::size_t(1000));
    QCOMPARE(r.integerLayers, r.layers.size());  // W8A8: every layer runs in integers
    QVERIFY2(r.agreementUpToTies > 0.98, qPrintable(QString::number(r.agreementUpToTies)));
    QCOMPARE(r.simulatedTop1, window.session()->evaluation()->metrics.top1);  // beside the same simulation
    const QString text = window.integerSummary()->text();
    QVERIFY2(text.contains(QString::number(100.0 * r.top1, 'f', 2) + "%"), qPrintable(text));
    QVERIFY(text.contains(QString::number(100.0 * r.agreementWithSimulation, 'f', 2) + "%"));
    QVERIFY(!text.contains("earlier configuration"));

    // An edit makes them an earlier configuration's.
    QVERIFY(window.layerModel()->setData(cell(window, "/fc2/Gemm", LayerTableModel::WeightBits), 6, Qt::EditRole));
    QVERIFY(window.integerSummary()->text().contains("earlier configuration"));
}

void TestMainWindow::unwritablePathKeepsTheSession()
{
    MainWindow window;
    openDefault(window);
    QVERIFY(window.layerModel()->setData(cell(window, "/conv3/Conv", LayerTableModel::WeightBits), 5, Qt::EditRole));
    QTRY_VERIFY_WITH_TIMEOUT(window.session()->evaluation()->config == window.document()->config(), kTimeoutMs);
    const auto snapshot = window.session()->snapshot();
    const auto evaluation = window.session()->evaluation();
    const QuantConfig config = window.document()->config();
    const int undoSteps = window.document()->undoStack()->count();

    // A path under a regular file can never be written (whoever runs the test).
    QTemporaryDir dir;
    const QString blocker = dir.path() + "/not_a_folder";
    std::ofstream(blocker.toStdString()) << "a file";
    QSignalSpy exported(window.session(), &Session::exported);
    QSignalSpy failed(window.session(), &Session::exportFailed);
    DialogCloser closer;
    const QStringList targets = {blocker + "/model.onnx", blocker + "/encodings.csv", blocker + "/report"};
    for (int i = 0; i < targets.size(); ++i) {
        const bool started = i == 0 ? window.exportQuantizedModel(targets[i])
                             : i == 1 ? window.exportEncodings(targets[i])
                                      : window.exportReport(targets[i]);
        QVERIFY(started);
        QTRY_COMPARE_WITH_TIMEOUT(failed.count(), i + 1, kTimeoutMs);
        QCOMPARE(failed.at(i).at(0).toString(), targets[i]);
        QTRY_COMPARE(closer.texts.size(), i + 1);
        QVERIFY2(closer.texts[i].contains(QDir::toNativeSeparators(targets[i])), qPrintable(closer.texts[i]));
        QVERIFY(!window.session()->isExporting());
    }
    QCOMPARE(exported.count(), 0);

    // Nothing the user made is lost, and the window goes on working.
    QCOMPARE(window.session()->snapshot(), snapshot);
    QCOMPARE(window.session()->evaluation(), evaluation);
    QCOMPARE(window.document()->config(), config);
    QCOMPARE(window.document()->undoStack()->count(), undoSteps);
    QVERIFY(window.isWindowModified());
    QVERIFY(window.exportQuantizedModel(dir.path() + "/model.onnx"));
    QTRY_COMPARE_WITH_TIMEOUT(exported.count(), 1, kTimeoutMs);
    QVERIFY(QFileInfo(dir.path() + "/model.onnx").size() > 0);
}

// F5 reruns every layer even when nothing changed, and the status bar's time is that run's, not
// the time since the last edit (it once said "updated in 62025 ms (worker 11 ms)").
void TestMainWindow::refreshRerunsFromScratch()
{
    MainWindow window;
    openDefault(window);
    QTest::qWait(1500);  // the time since the last edit now exceeds the refresh's own time by this
    QAction* refresh = nullptr;
    for (QAction* action : window.findChildren<QAction*>())
        if (action->shortcut() == QKeySequence(QKeySequence::Refresh))
            refresh = action;
    QVERIFY(refresh);
    const quint64 before = window.session()->evaluation()->sequence;
    QSignalSpy updated(&window, &MainWindow::viewsUpdated);
    QElapsedTimer sinceRefresh;
    sinceRefresh.start();
    refresh->trigger();
    QTRY_VERIFY_WITH_TIMEOUT(updated.count() >= 1 && window.session()->evaluation()->sequence > before, kTimeoutMs);
    const auto evaluation = window.session()->evaluation();
    QCOMPARE(evaluation->metrics.recomputedFromNode, std::size_t(0));
    QLabel* timing = nullptr;
    for (QLabel* label : window.statusBar()->findChildren<QLabel*>())
        if (label->text().startsWith("updated in "))
            timing = label;
    QVERIFY(timing);
    const qint64 shownMs = timing->text().section(' ', 2, 2).toLongLong();
    // The time since the last edit would be at least the pause above plus this run; no bound on
    // the machine's speed is needed.
    QVERIFY2(shownMs >= qint64(evaluation->milliseconds) && shownMs <= sinceRefresh.elapsed(), qPrintable(timing->text()));
}

// The number of evaluation images is the user's (issue 16): set, the same model and images open
// again on that many, with the configuration kept; the status bar shows the peak memory.
void TestMainWindow::evaluationImagesIsASetting()
{
    MainWindow window;
    openDefault(window);
    QuantConfig edited = window.document()->config();
    edited.defaultWeights.bits = 6;
    window.document()->edit(edited, "W6");
    QTRY_VERIFY_WITH_TIMEOUT(window.session()->evaluation()->config == edited, kTimeoutMs);
    QSignalSpy loaded(window.session(), &Session::loaded);
    window.setEvaluationImages(250);
    QTRY_VERIFY_WITH_TIMEOUT(loaded.count() == 1, kTimeoutMs);
    QTRY_VERIFY_WITH_TIMEOUT(window.session()->evaluation() && window.session()->evaluation()->metrics.images == 250 &&
                                 window.session()->evaluation()->config == edited,
                             kTimeoutMs);
    QCOMPARE(window.session()->snapshot()->evaluationImages, std::size_t(250));
    QVERIFY(window.document()->config() == edited);
    QVERIFY(window.document()->undoStack()->canUndo());  // the history stayed too
    bool peakShown = false;
    for (QLabel* label : window.statusBar()->findChildren<QLabel*>())
        peakShown = peakShown || label->text().contains("peak memory");
    QVERIFY(peakShown);

    // No memory for the caches: every image is computed again at each evaluation, and the
    // numbers are the same.
    const ModelMetrics cached = window.session()->evaluation()->metrics;
    window.setEvaluationSettings(250, 0);
    QCOMPARE(window.session()->cacheBudget(), std::optional<std::uint64_t>(0));
    QTRY_VERIFY_WITH_TIMEOUT(loaded.count() == 2, kTimeoutMs);
    QTRY_VERIFY_WITH_TIMEOUT(window.session()->evaluation() && window.session()->evaluation()->metrics.images == 250 &&
                                 window.session()->evaluation()->config == edited,
                             kTimeoutMs);
    const ModelMetrics streamed = window.session()->evaluation()->metrics;
    QCOMPARE(streamed.predictions, cached.predictions);
    QCOMPARE(streamed.layers.size(), cached.layers.size());
    for (std::size_t i = 0; i < cached.layers.size(); ++i)
        QCOMPARE(streamed.layers[i].accumulated.mse, cached.layers[i].accumulated.mse);
}

// On a large set the accuracy streams in: while the 10,000 images are evaluated the status bar
// shows the top-1 so far with its 95% interval for the whole set, batch by batch.
void TestMainWindow::top1StreamsIn()
{
    MainWindow window;
    openDefault(window);
    QSignalSpy running(window.session(), &Session::runningTop1);
    window.setEvaluationImages(10000);
    QTRY_VERIFY_WITH_TIMEOUT(running.count() > 0, kTimeoutMs);
    const RunningTop1 first = running.first().at(1).value<RunningTop1>();
    QCOMPARE(first.total, std::size_t(10000));
    QVERIFY(first.scored > 0 && first.scored < first.total && first.correct <= first.scored);
    QTRY_VERIFY_WITH_TIMEOUT(window.statusBar()->currentMessage().contains("top-1 so far"), kTimeoutMs);
    QVERIFY2(window.statusBar()->currentMessage().contains("95% interval for all 10000"),
             qPrintable(window.statusBar()->currentMessage()));
    QTRY_VERIFY_WITH_TIMEOUT(window.session()->evaluation() && window.session()->evaluation()->metrics.images == 10000, kTimeoutMs);
    // Each report counts more images than the one before, within one model's pass.
    for (int i = 1; i < running.count(); ++i)
        if (running.at(i).at(0) == running.at(i - 1).at(0))
            QVERIFY(running.at(i).at(1).value<RunningTop1>().scored >= running.at(i - 1).at(1).value<RunningTop1>().scored);
}

QTEST_MAIN(TestMainWindow)
#include "tst_main_window.moc"
