// The window's charts on real models (../shared; each test skips with a message without it),
// driven as a user drives them (offscreen), for the defects of issue 19:
// - a QDQ model's histograms show the file's own parameters, with the levels counted as the
//   layer details count them;
// - the weight histogram shows one channel's levels and clipping range (the channel picked), or
//   none for all channels of per-channel parameters, and says so;
// - the per-layer error chart names every layer of a MobileNet, with tool tips;
// - with 1001 classes the confusion view lists the most confused pairs and per-class accuracy;
// - log-scale axes keep their numbers, percentages carry "%", sizes their unit, wrong
//   predictions a red frame, and the Pareto view describes the configuration hovered;
// - the per-channel range chart shows why per tensor breaks a MobileNet's depthwise layers.

#include "window_waits.h"
#include "channel_range_chart.h"
#include "config_document.h"
#include "confusion_matrix_widget.h"
#include "gallery_model.h"
#include "histogram_chart.h"
#include "layer_details.h"
#include "layer_table_model.h"
#include "main_window.h"
#include "pareto_view.h"
#include "session.h"

#include <QAbstractSeries>
#include <QAreaSeries>
#include <QBarCategoryAxis>
#include <QBarSet>
#include <QFile>
#include <QHorizontalBarSeries>
#include <QIcon>
#include <QLabel>
#include <QLogValueAxis>
#include <QMessageBox>
#include <QTimer>
#include <QScatterSeries>
#include <QScrollArea>
#include <QScrollBar>
#include <QSignalSpy>
#include <QSpinBox>
#include <QStandardItemModel>
#include <QTemporaryDir>
#include <QtTest>

#include "dialog_closer.h"

#include <algorithm>

using namespace qe;

namespace {

const int kTimeoutMs = scaledTimeout(180000);
const QString kShared = QStringLiteral(QE_SHARED_DIR);

// Opens a model on images and waits for its first evaluation and the selected layer's histograms.
void openAndWait(MainWindow& window, const QString& model, const QString& data)
{
    static DialogCloser closer(100);
    QSignalSpy evaluated(window.session(), &Session::evaluated);
    QSignalSpy failed(window.session(), &Session::failed);
    window.resize(1440, 900);
    window.show();
    window.openSession(model, data);
    QTRY_VERIFY_WITH_TIMEOUT(evaluated.count() >= 1 || failed.count() >= 1, kTimeoutMs);
    QVERIFY2(failed.isEmpty(), qPrintable(failed.value(0).value(0).toString()));
    QTRY_VERIFY_WITH_TIMEOUT(window.session()->histograms() && window.weightHistogram()->histogram(), kTimeoutMs);
}

// Selects a layer (and a weight channel) and waits for its histograms.
void showLayer(MainWindow& window, int row, int channel = -1)
{
    window.selectLayer(row);
    if (channel != window.channelPicker()->value())
        window.channelPicker()->setValue(channel);
    const std::string name = window.layerModel()->layerName(row);
    const bool weights = window.layerModel()->hasWeights(row);
    QTRY_VERIFY_WITH_TIMEOUT(window.session()->histograms() && window.session()->histograms()->layer == name &&
                                 window.activationHistogram()->histogram() &&
                                 (!weights || (window.weightHistogram()->histogram() &&
                                               window.weightHistogram()->histogram()->channel == channel)),
                             kTimeoutMs);
}

// Edits the configuration as the table would and waits for its evaluation and the histograms
// that follow it (requested once the evaluation is shown, so none of an older configuration).
void editAndWait(MainWindow& window, const QuantConfig& config, const QString& description)
{
    Session* session = window.session();
    int histogramsAfter = -1;
    const auto evaluated = QObject::connect(session, &Session::evaluated, session, [&] {
        if (session->evaluation()->config == config)
            histogramsAfter = 0;
    });
    const auto histograms = QObject::connect(session, &Session::histogramsReady, session, [&] {
        if (histogramsAfter >= 0)
            ++histogramsAfter;
    });
    window.document()->edit(config, description);
    QTRY_VERIFY_WITH_TIMEOUT(histogramsAfter >= 1, kTimeoutMs);
    QObject::disconnect(evaluated);
    QObject::disconnect(histograms);
}

QAbstractSeries* seriesNamed(QChart* chart, const QString& prefix)
{
    for (QAbstractSeries* s : chart->series())
        if (s->name().startsWith(prefix))
            return s;
    return nullptr;
}

// A copy of a TensorFlow MobileNet with its preprocessing sidecar ([-1, 1] RGB, 87.5% centre
// crop, the 1001-class labels), in `dir`.
QString mobileNetCopy(const QTemporaryDir& dir, const QString& name)
{
    const QString model = dir.filePath(name);
    if (!QFile::copy(kShared + "/models/" + name, model))
        return {};
    QFile sidecar(dir.filePath(QString(name).replace(".onnx", ".preprocess.json")));
    sidecar.open(QIODevice::WriteOnly);
    sidecar.write(R"({"format": "quantexplorer-preprocess", "version": 1, "color": "rgb", "resize_shorter": 0,
                      "crop_fraction": 0.875, "scale": 1.0, "mean": [127.5, 127.5, 127.5], "std": [127.5, 127.5, 127.5],
                      "label_column": "label_1001"})");
    return model;
}

// Opens a copy of MobileNetV1 0.25 on the shared ImageNet images in `window`, as the tests of
// real-model charts start: skips the test without ../shared, and returns from it when the
// window did not evaluate (openAndWait has failed it then).
#define OPEN_MOBILENET_OR_SKIP(window, dir)                                                  \
    do {                                                                                     \
        const QString model = mobileNetCopy(dir, "mobilenet_v1_0.25_128_float.onnx");        \
        if (model.isEmpty())                                                                 \
            QSKIP("needs ../shared/models (MobileNet v1 0.25)");                             \
        openAndWait(window, model, kShared + "/data/imagenet_val_227_300");                  \
        if (QTest::currentTestFailed())                                                      \
            return;                                                                          \
    } while (false)

}  // namespace

class TestCharts : public QObject {
    Q_OBJECT
private slots:
    void errorChartPutsTheFirstLayerOnTop();
    void imageErrorChartNumbersManyLayers();
    void qdqHistogramsShowTheFilesParameters();
    void channelPickerDrawsOneChannel();
    void readableNumbersAndColours();
    void mobileNetErrorChartNamesEveryLayer();
    void selectingALayerScrollsTheErrorChartToIt();
    void manyClassesListTheMostConfused();
    void channelRangesShowWhyPerTensorBreaks();
};

void TestCharts::errorChartPutsTheFirstLayerOnTop()
{
    // Three layers as the layer table gives them (names and SQNRs), no model needed.
    const QStringList layers{"/first/Conv", "/middle/Conv", "/last/Gemm"};
    QStandardItemModel table(int(layers.size()), LayerTableModel::ColumnCount);
    for (int row = 0; row < layers.size(); ++row) {
        table.setData(table.index(row, LayerTableModel::Name), layers[row]);
        table.setData(table.index(row, LayerTableModel::Sqnr), 10.0 * (row + 1), LayerTableModel::MetricRole);
        table.setData(table.index(row, LayerTableModel::IsolatedSqnr), 20.0 * (row + 1), LayerTableModel::MetricRole);
    }
    ErrorChart chart(&table);
    chart.resize(500, 400);
    chart.show();
    QVERIFY(QTest::qWaitForWindowExposed(&chart));
    auto* series = qobject_cast<QHorizontalBarSeries*>(chart.chart()->series().value(0));
    QVERIFY(series);
    QBarCategoryAxis* names = chart.layerAxis();
    QCOMPARE(names->count(), 3);

    // The category drawn highest (the smallest y) is the first layer's, and its bars are the
    // first layer's values.
    int top = -1;
    double topY = 1e9;
    for (int category = 0; category < names->count(); ++category) {
        const double y = chart.chart()->mapToPosition(QPointF(0, category), series).y();
        if (y < topY)
            topY = y, top = category;
    }
    QCOMPARE(names->at(top), QStringLiteral("first"));
    QCOMPARE(chart.barSets().at(0)->at(top), 10.0);
    QCOMPARE(chart.barSets().at(1)->at(top), 20.0);
    QCOMPARE(chart.rowOfBar(top), 0);

    // Hovering the top bar names the first layer and its value; clicking it selects row 0.
    emit series->hovered(true, top, chart.barSets().at(0));
    QVERIFY2(chart.toolTip().startsWith("/first/Conv\n") && chart.toolTip().endsWith(": 10"), qPrintable(chart.toolTip()));
    QSignalSpy clicked(&chart, &ErrorChart::layerClicked);
    emit series->clicked(top, chart.barSets().at(1));
    QCOMPARE(clicked.count(), 1);
    QCOMPARE(clicked.at(0).at(0).toInt(), 0);
    // The bottom bar is the last layer's.
    const int bottom = top == 0 ? 2 : 0;
    emit series->clicked(bottom, chart.barSets().at(0));
    QCOMPARE(clicked.at(1).at(0).toInt(), 2);

    // Selecting row 0 highlights the top bar, and its band is drawn above the last layer's.
    chart.setSelectedLayer(0);
    QVERIFY(chart.barSets().at(0)->isBarSelected(top));
    QVERIFY(!chart.barSets().at(0)->isBarSelected(bottom));
    QVERIFY(chart.layerBarRect(0).center().y() < chart.layerBarRect(2).center().y());
    QVERIFY(chart.rect().contains(chart.layerBarRect(0)));
}

void TestCharts::qdqHistogramsShowTheFilesParameters()
{
    const QString model = kShared + "/models/resnet8_cifar10_qdq_int8.onnx";
    if (!QFile::exists(model))
        QSKIP("needs ../shared/models (the QDQ ResNet-8)");
    MainWindow window;
    openAndWait(window, model, kShared + "/data/cifar10_mlperf_tiny_200/test_200.bin");
    if (QTest::currentTestFailed())
        return;
    const auto evaluation = window.session()->evaluation();
    const int row = window.selectedLayer();
    const LayerPlan& plan = evaluation->plans[std::size_t(row)];
    QVERIFY(plan.activationParams && plan.weightParams);

    // Activations: the file's 8-bit affine parameters, not "(float)".
    const TensorHistogram& activations = *window.activationHistogram()->histogram();
    QVERIFY(activations.params);
    QCOMPARE(*activations.params, *plan.activationParams);
    QVERIFY(activations.paramsFromModel);
    QCOMPARE(activations.levels, quantizationLevels(*plan.activationParams, 0));
    QCOMPARE(activations.clipRange->first, plan.activationParams->rangeMin[0]);
    const QString activationTitle = window.activationHistogram()->chart()->title();
    QVERIFY2(!activationTitle.contains("(float)"), qPrintable(activationTitle));
    QVERIFY2(activationTitle.contains("the model's own"), qPrintable(activationTitle));

    // Weights: the file's parameters, and the same level count in the title, the legend and the
    // layer details.
    const TensorHistogram& weights = *window.weightHistogram()->histogram();
    QCOMPARE(*weights.params, *plan.weightParams);
    QVERIFY(weights.paramsFromModel);
    showLayer(window, row, 0);
    const TensorHistogram& channel0 = *window.weightHistogram()->histogram();
    const std::size_t levels = quantizationLevels(*plan.weightParams, 0).size();
    QCOMPARE(channel0.levels.size(), levels);
    const QString weightTitle = window.weightHistogram()->chart()->title();
    QVERIFY2(weightTitle.contains(QStringLiteral("%1 levels").arg(levels)), qPrintable(weightTitle));
    QVERIFY(seriesNamed(window.weightHistogram()->chart(), QStringLiteral("%1 levels").arg(levels)));
    const QString details = layerDetailsHtml(*window.session()->snapshot(), *evaluation, std::size_t(row));
    QVERIFY2(details.contains(QStringLiteral("%1 levels").arg(levels)), qPrintable(details));
}

void TestCharts::channelPickerDrawsOneChannel()
{
    const QString model = kShared + "/models/resnet8_cifar10.onnx";
    if (!QFile::exists(model))
        QSKIP("needs ../shared/models (ResNet-8)");
    MainWindow window;
    openAndWait(window, model, kShared + "/data/cifar10_mlperf_tiny_200/test_200.bin");
    if (QTest::currentTestFailed())
        return;
    const int row = window.selectedLayer();
    const LayerPlan& plan = window.session()->evaluation()->plans[std::size_t(row)];
    QVERIFY(plan.weightParams && plan.weightParams->granularity == Granularity::PerChannel);  // the default

    // All channels of per-channel weights: no levels or clipping range of one channel pretending
    // to be everyone's, and the title says why.
    const TensorHistogram& all = *window.weightHistogram()->histogram();
    QCOMPARE(all.channel, -1);
    QVERIFY(all.levels.empty());
    QVERIFY(!all.clipRange);
    QVERIFY(window.weightHistogram()->chart()->title().contains("pick a channel"));
    QCOMPARE(window.channelPicker()->maximum(), all.channelCount - 1);

    // Channel 5: its levels, its clipping range, its values, its name in the legend.
    showLayer(window, row, 5);
    const TensorHistogram& five = *window.weightHistogram()->histogram();
    QCOMPARE(five.levels, quantizationLevels(*plan.weightParams, 5));
    QCOMPARE(five.clipRange->first, plan.weightParams->rangeMin[5]);
    QCOMPARE(five.clipRange->second, plan.weightParams->rangeMax[5]);
    QVERIFY(five.max <= plan.weightParams->rangeMax[5]);
    QVERIFY(seriesNamed(window.weightHistogram()->chart(), QStringLiteral("%1 levels (channel 5)").arg(five.levels.size())));
    QVERIFY(seriesNamed(window.weightHistogram()->chart(), QStringLiteral("clip [")));

    // Per tensor: the tensor's levels, and no channel in the legend.
    QuantConfig config = window.document()->config();
    config.layers[window.layerModel()->layerName(row)].weights.granularity = Granularity::PerTensor;
    editAndWait(window, config, "per tensor");
    QTRY_VERIFY_WITH_TIMEOUT(window.weightHistogram()->histogram()->params->granularity == Granularity::PerTensor, kTimeoutMs);
    const TensorHistogram& perTensor = *window.weightHistogram()->histogram();
    QCOMPARE(perTensor.channel, 5);
    QCOMPARE(perTensor.levels, quantizationLevels(*perTensor.params, 0));
    QAbstractSeries* rug = seriesNamed(window.weightHistogram()->chart(), QStringLiteral("%1 levels").arg(perTensor.levels.size()));
    QVERIFY(rug);
    QVERIFY2(!rug->name().contains("channel"), qPrintable(rug->name()));

    // Another layer starts on all channels.
    const int other = row + 1 < window.layerModel()->rowCount() && window.layerModel()->hasWeights(row + 1) ? row + 1 : row - 1;
    showLayer(window, other, -1);
    QCOMPARE(window.channelPicker()->value(), -1);
}

void TestCharts::readableNumbersAndColours()
{
    const QString model = kShared + "/models/resnet8_cifar10_qdq_int8.onnx";
    if (!QFile::exists(model))
        QSKIP("needs ../shared/models (the QDQ ResNet-8)");
    QCOMPARE(percentText(3.99e-7), QStringLiteral("0.0000399%"));
    QCOMPARE(percentText(0.5), QStringLiteral("50.0%"));
    MainWindow window;
    openAndWait(window, model, kShared + "/data/cifar10_mlperf_tiny_200/test_200.bin");
    if (QTest::currentTestFailed())
        return;

    // The log scale keeps its axis numbers whole.
    window.activationHistogram()->setLogScale(true);
    auto* log = qobject_cast<QLogValueAxis*>(window.activationHistogram()->countAxis());
    QVERIFY(log);
    QVERIFY(!log->labelFormat().contains('g'));
    QTest::qWait(50);
    QVERIFY(!log->labelsTruncated());

    // The clipped share in the legend is a percentage, whatever its size.
    for (int row = 0; row < window.layerModel()->rowCount(); ++row) {
        if (!window.layerModel()->hasWeights(row))
            continue;
        showLayer(window, row);
        if (window.activationHistogram()->histogram()->clippedFraction > 0)
            break;
    }
    const TensorHistogram& h = *window.activationHistogram()->histogram();
    QVERIFY2(h.clippedFraction > 0, "no layer clips any activation");
    QAbstractSeries* clipped = seriesNamed(window.activationHistogram()->chart(), "clipped ");
    QVERIFY(clipped);
    QCOMPARE(clipped->name(), "clipped " + percentText(h.clippedFraction));
    QVERIFY(window.activationHistogram()->chart()->title().contains(percentText(h.clippedFraction)));

    // The float size in the headline has its unit.
    bool headlineHasUnit = false;
    for (QLabel* label : window.findChildren<QLabel*>())
        headlineHasUnit |= label->text().contains(QRegularExpression("\\(float [0-9.]+ KiB\\)"));
    QVERIFY(headlineHasUnit);

    // A wrong prediction's frame is red, as the text under the gallery says.
    const ModelMetrics& m = window.session()->evaluation()->metrics;
    int wrong = -1;
    for (std::size_t i = 0; i < m.predictions.size() && wrong < 0; ++i)
        if (m.predictions[i] != m.labels[i])
            wrong = int(i);
    QVERIFY(wrong >= 0);
    const QIcon icon = window.gallery()->index(wrong).data(Qt::DecorationRole).value<QIcon>();
    const QColor frame = icon.pixmap(icon.availableSizes().value(0, QSize(56, 56))).toImage().pixelColor(1, 1);
    QVERIFY2(frame.red() > 180 && frame.green() < 60 && frame.blue() < 60, qPrintable(frame.name()));

    // Hovering a configuration tried tells what it was.
    QuantConfig config = window.document()->config();
    config.defaultWeights.bits = 4;
    editAndWait(window, config, "weights to 4 bits");
    ParetoChart* history = window.paretoView()->chart();
    QScatterSeries* tried = nullptr;
    for (QAbstractSeries* s : history->chart()->series())
        if (s->name() == "tried (evaluation images)")
            tried = qobject_cast<QScatterSeries*>(s);
    QVERIFY(tried && tried->count() >= 2);
    emit tried->hovered(tried->at(tried->count() - 1), true);
    QVERIFY2(history->toolTip().contains("weights to 4 bits") && history->toolTip().contains("top-1"), qPrintable(history->toolTip()));
    emit tried->hovered(tried->at(tried->count() - 1), false);
    QVERIFY(history->toolTip().isEmpty());
}

void TestCharts::mobileNetErrorChartNamesEveryLayer()
{
    QTemporaryDir dir;
    MainWindow window;
    OPEN_MOBILENET_OR_SKIP(window, dir);
    ErrorChart* chart = window.errorChart();
    const int rows = window.layerModel()->rowCount();
    QVERIFY(rows > 25);
    QBarCategoryAxis* names = chart->layerAxis();
    QVERIFY(names);
    QCOMPARE(names->count(), rows);
    // The first layer on top: the categories run from the bottom (the last layer) up.
    for (int row = 0; row < rows; ++row)
        QVERIFY(names->at(rows - 1 - row).startsWith(shortLayerName(QString::fromStdString(window.layerModel()->layerName(row)))));
    // Every name is drawn whole: the chart is tall enough for one row per layer.
    QTest::qWait(50);
    QVERIFY(!names->labelsTruncated());
    QVERIFY(chart->minimumHeight() >= rows * 20);
    // Hovering a bar names its layer and value: bar 0 is the bottom one, the last layer's.
    QBarSet* accumulated = chart->barSets().at(0);
    auto* series = qobject_cast<QHorizontalBarSeries*>(chart->chart()->series().at(0));
    QVERIFY(series);
    emit series->hovered(true, 0, accumulated);
    const QString tip = chart->toolTip();
    QVERIFY2(tip.contains(QString::fromStdString(window.layerModel()->layerName(rows - 1))), qPrintable(tip));
    QVERIFY2(tip.contains(QString::number(accumulated->at(0), 'g', 4)), qPrintable(tip));
}

void TestCharts::selectingALayerScrollsTheErrorChartToIt()
{
    QTemporaryDir dir;
    MainWindow window;
    OPEN_MOBILENET_OR_SKIP(window, dir);
    ErrorChart* chart = window.errorChart();
    QScrollArea* scroll = window.errorScrollArea();
    const int rows = window.layerModel()->rowCount();
    // What the panel shows of the chart, in the chart's coordinates.
    auto visible = [&] { return QRect(-chart->pos(), scroll->viewport()->size()); };
    QTRY_VERIFY(chart->height() > scroll->viewport()->height());  // the chart is taller than its panel

    // The last layer, at the bottom, out of view at first.
    window.selectLayer(0);
    QTRY_VERIFY(visible().contains(chart->layerBarRect(0)));
    QVERIFY(!visible().intersects(chart->layerBarRect(rows - 1)));
    window.selectLayer(rows - 1);
    QTRY_VERIFY2(visible().contains(chart->layerBarRect(rows - 1)),
                 qPrintable(QStringLiteral("bars at y %1, shown %2 to %3").arg(chart->layerBarRect(rows - 1).y())
                                .arg(visible().top()).arg(visible().bottom())));
    QVERIFY(scroll->verticalScrollBar()->value() > 0);
    for (QBarSet* set : chart->barSets())
        QVERIFY(set->isBarSelected(chart->barOfRow(rows - 1)));
    // And back up to the first.
    window.selectLayer(0);
    QTRY_VERIFY(visible().contains(chart->layerBarRect(0)));
}

void TestCharts::manyClassesListTheMostConfused()
{
    QTemporaryDir dir;
    MainWindow window;
    OPEN_MOBILENET_OR_SKIP(window, dir);
    ConfusionMatrixWidget* confusion = window.confusionMatrix();
    const ConfusionMatrix& m = confusion->matrix();
    QVERIFY(m.classes > 100);  // the 1001 outputs' labels seen in 300 images
    QVERIFY(!confusion->showsMatrix());
    // The most confused pairs: the largest off-diagonal counts, largest first.
    std::vector<std::size_t> offDiagonal;
    for (int t = 0; t < m.classes; ++t)
        for (int p = 0; p < m.classes; ++p)
            if (t != p && m.at(t, p) > 0)
                offDiagonal.push_back(m.at(t, p));
    std::sort(offDiagonal.rbegin(), offDiagonal.rend());
    const auto& pairs = confusion->confusedPairs();
    QVERIFY(!pairs.empty());
    QCOMPARE(pairs.size(), std::min(offDiagonal.size(), ConfusionMatrixWidget::kListed));
    for (std::size_t k = 0; k < pairs.size(); ++k) {
        QCOMPARE(pairs[k].count, offDiagonal[k]);
        QCOMPARE(m.at(pairs[k].truth, pairs[k].predicted), pairs[k].count);
        QVERIFY(pairs[k].truth != pairs[k].predicted);
    }
    // Per-class accuracy: every class with images, worst first, counted from the matrix.
    const auto& accuracy = confusion->classAccuracy();
    std::size_t images = 0;
    for (std::size_t k = 0; k < accuracy.size(); ++k) {
        images += accuracy[k].images;
        QCOMPARE(accuracy[k].correct, m.at(accuracy[k].label, accuracy[k].label));
        if (k > 0)
            QVERIFY(accuracy[k - 1].accuracy() <= accuracy[k].accuracy());
    }
    QCOMPARE(images, m.total());
    QVERIFY(confusion->className(pairs[0].truth).contains(' '));  // a number and a name
    const QImage drawn = confusion->grab().toImage();
    QVERIFY(!drawn.isNull());
}

void TestCharts::channelRangesShowWhyPerTensorBreaks()
{
    QTemporaryDir dir;
    MainWindow window;
    OPEN_MOBILENET_OR_SKIP(window, dir);
    // The depthwise convolutions: weights [C, 1, k, k], one input channel per output channel.
    std::vector<int> depthwise;
    const auto snapshot = window.session()->snapshot();
    for (std::size_t row = 0; row < snapshot->layers.size(); ++row) {
        const QuantLayer& layer = snapshot->layers[row];
        if (layer.weight.empty())
            continue;
        const Tensor& w = snapshot->graph->initializers.at(layer.weight);
        if (w.rank() == 4 && w.dim(1) == 1 && w.dim(0) > 1)
            depthwise.push_back(int(row));
    }
    QVERIFY(depthwise.size() > 5);
    // 4-bit weights per tensor: the setting where the chart's point shows.
    QuantConfig config = window.document()->config();
    config.defaultWeights.granularity = Granularity::PerTensor;
    config.defaultWeights.bits = 4;
    editAndWait(window, config, "4-bit weights per tensor");
    // Some depthwise channels are so much narrower than the per-tensor range that most of their
    // weights round to zero.
    int starvedLayer = -1;
    for (int row : depthwise) {
        showLayer(window, row);
        QTRY_VERIFY_WITH_TIMEOUT(window.channelRangeChart()->ranges() &&
                                     window.channelRangeChart()->ranges()->layer == window.layerModel()->layerName(row),
                                 kTimeoutMs);
        const auto& zeros = window.channelRangeChart()->ranges()->perTensorZeroFraction;
        if (*std::max_element(zeros.begin(), zeros.end()) > 0.5) {
            starvedLayer = row;
            break;
        }
    }
    QVERIFY2(starvedLayer >= 0, "no depthwise channel loses over half its weights to zero per tensor");
    const ChannelRanges r = *window.channelRangeChart()->ranges();  // a copy: a click replaces the chart's
    const TensorHistogram all = *window.weightHistogram()->histogram();
    QCOMPARE(int(r.min.size()), all.channelCount);
    QCOMPARE(*std::min_element(r.min.begin(), r.min.end()), all.min);
    QCOMPARE(r.granularity, std::optional(Granularity::PerTensor));
    QCOMPARE(r.zeroFraction, r.perTensorZeroFraction);  // per tensor is what is configured
    // Some depthwise channels are so much narrower than the per-tensor range that most of their
    // weights round to zero: the chart's point.
    const auto starved = std::count_if(r.perTensorZeroFraction.begin(), r.perTensorZeroFraction.end(), [](double f) { return f > 0.5; });
    QVERIFY(window.channelRangeChart()->chart()->title().contains(QStringLiteral("%1 of them lose over half their weights").arg(starved)));
    QVERIFY(seriesNamed(window.channelRangeChart()->chart(), "per-tensor range"));
    // Hovering a channel describes it; clicking it picks it for the histogram.
    const int narrow = int(std::max_element(r.perTensorZeroFraction.begin(), r.perTensorZeroFraction.end()) - r.perTensorZeroFraction.begin());
    QVERIFY(window.channelRangeChart()->channelDescription(narrow).contains(percentText(r.perTensorZeroFraction[std::size_t(narrow)])));
    emit window.channelRangeChart()->channelClicked(narrow);
    QCOMPARE(window.channelPicker()->value(), narrow);
    QTRY_VERIFY_WITH_TIMEOUT(window.weightHistogram()->histogram()->channel == narrow, kTimeoutMs);
    QCOMPARE(window.weightHistogram()->histogram()->max, r.max[std::size_t(narrow)]);
}

QTEST_MAIN(TestCharts)
void TestCharts::imageErrorChartNumbersManyLayers()
{
    // A few layers: their short names under the bars.
    ImageErrorChart few;
    few.setErrors({"/conv1/Conv", "/fc1/Gemm"}, {30, 20}, {31, 21}, "few");
    QCOMPARE(few.layerAxis()->categories(), (QStringList{shortLayerName("/conv1/Conv"), shortLayerName("/fc1/Gemm")}));
    // A MobileNet's 28: numbered in table order, the axis title saying how to find a name.
    QStringList layers;
    QList<double> values;
    for (int i = 0; i < 28; ++i) {
        layers << QStringLiteral("op%1_conv").arg(i, 2, 10, QLatin1Char('0'));
        values << 20 + i;
    }
    ImageErrorChart many;
    many.setErrors(layers, values, values, "many");
    const QStringList categories = many.layerAxis()->categories();
    QCOMPARE(categories.size(), 28);
    QCOMPARE(categories.first(), QStringLiteral("1"));
    QCOMPARE(categories.last(), QStringLiteral("28"));
    QVERIFY(many.layerAxis()->titleText().contains("hover"));
}

#include "tst_charts.moc"
