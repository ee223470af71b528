// The window's A/B comparison, on the demo model: configuration B (a file) is evaluated by the
// session's worker and then the error chart has A's and B's bars (B's are the core's numbers for
// B), the Images tab's filter lists exactly the images whose prediction differs between the two
// evaluations, the histograms carry B's levels, the summary JSON carries the comparison, editing A
// keeps B, choosing B leaves the undo history alone, the per-image errors stay A's, and clearing
// puts everything back.

#include "window_waits.h"
#include "charts.h"
#include "dialog_closer.h"
#include "config_document.h"
#include "gallery_model.h"
#include "histogram_chart.h"
#include "layer_table_model.h"
#include "main_window.h"
#include "session.h"

#include <QBarSet>
#include <QCheckBox>
#include <QComboBox>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QUndoStack>
#include <QtTest>

#include <cmath>
#include <fstream>

using namespace qe;

namespace {

const QString kModel = QStringLiteral(QE_SOURCE_DIR "/resources/models/fashion_cnn.onnx");
const QString kImages = QStringLiteral(QE_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz");
const int kTimeoutMs = scaledTimeout(120000);

}  // namespace

class TestCompare : public QObject {
    Q_OBJECT
private slots:
    void initTestCase() { QStandardPaths::setTestModeEnabled(true); }
    void comparesWithAFile();
    void badFileIsAnError();
};

void TestCompare::comparesWithAFile()
{
    if (!QFileInfo::exists(kImages))
        QSKIP("needs Debian's dataset-fashion-mnist");
    QTemporaryDir dir;
    const QString b = dir.path() + "/w4a4.json";
    std::ofstream(b.toStdString()) << R"({"format": "quantexplorer-config", "version": 1,
        "default": {"weights": {"scheme": "symmetric", "bits": 4, "granularity": "per_tensor"},
                    "activations": {"scheme": "affine", "bits": 4}}, "layers": {}})";

    MainWindow window;
    QSignalSpy evaluated(window.session(), &Session::evaluated);
    window.show();
    window.openSession(kModel, kImages);
    QTRY_VERIFY_WITH_TIMEOUT(evaluated.count() >= 1, kTimeoutMs);
    QCOMPARE(window.errorChart()->barSets().size(), 2);
    QCOMPARE(window.errorChart()->barSets()[1]->label(), QStringLiteral("isolated"));
    QVERIFY(!window.differingOnlyFilter()->isEnabled());

    // The per-image errors of A, before B is evaluated in the same study.
    QSignalSpy imageErrors(window.session(), &Session::imageErrorsReady);
    window.session()->requestImageErrors(3);
    QTRY_VERIFY_WITH_TIMEOUT(imageErrors.count() == 1, kTimeoutMs);
    const auto errorsBefore = imageErrors.takeFirst().at(0).value<std::shared_ptr<const ImageErrorSnapshot>>();

    const int undoSteps = window.document()->undoStack()->count();
    QSignalSpy compared(window.session(), &Session::comparisonEvaluated);
    QVERIFY(window.compareWithFile(b));
    QTRY_VERIFY_WITH_TIMEOUT(compared.count() == 1, kTimeoutMs);
    QCOMPARE(window.document()->undoStack()->count(), undoSteps);  // choosing B is not an edit
    const std::optional<ConfigComparison> c = window.comparison();
    QVERIFY(c.has_value());

    // The differing images, recounted from the two evaluations the session published.
    const ModelMetrics& a = window.session()->evaluation()->metrics;
    const ModelMetrics& mb = window.session()->comparison()->b.metrics;
    std::vector<std::size_t> differing;
    for (std::size_t i = 0; i < a.predictions.size(); ++i)
        if (a.predictions[i] != mb.predictions[i])
            differing.push_back(i);
    QVERIFY2(differing.size() > 5, "4-bit per-tensor should change some predictions of W8A8");
    QCOMPARE(c->differing.size(), differing.size());

    // The error chart: A's and B's accumulated SQNR, B's the core's numbers for B.
    const QList<QBarSet*> sets = window.errorChart()->barSets();
    QCOMPARE(sets.size(), 2);
    QVERIFY2(sets[1]->label().contains("w4a4.json"), qPrintable(sets[1]->label()));
    for (int row = 0; row < window.layerModel()->rowCount(); ++row) {
        const std::string layer = window.layerModel()->layerName(row);
        for (const LayerMetrics& l : mb.layers)
            if (l.name == layer && std::isfinite(l.accumulated.sqnrDb))
                QCOMPARE(sets[1]->at(window.errorChart()->barOfRow(row)), l.accumulated.sqnrDb);
    }

    // The mode box and the Images legend say what is drawn: A's and B's accumulated error, both predictions.
    QVERIFY2(window.errorModeBox()->currentText().contains("A and B"), qPrintable(window.errorModeBox()->currentText()));
    QVERIFY(!window.errorModeBox()->currentText().contains("isolated"));
    QVERIFY2(window.imagesLegend()->text().contains("B right, A wrong"), qPrintable(window.imagesLegend()->text()));

    // The Images tab's filter: exactly the differing images, each with both predictions.
    QVERIFY(window.differingOnlyFilter()->isEnabled());
    window.differingOnlyFilter()->setChecked(true);
    GalleryModel* gallery = window.gallery();
    QCOMPARE(std::size_t(gallery->rowCount()), differing.size());
    for (int row = 0; row < gallery->rowCount(); ++row) {
        const std::size_t image = gallery->index(row).data(GalleryModel::ImageIndexRole).toULongLong();
        QCOMPARE(image, differing[std::size_t(row)]);
        const QString text = gallery->index(row).data(Qt::DisplayRole).toString();
        const QString expected = QStringLiteral("A: %1\nB: %2")
                                     .arg(window.session()->snapshot()->className(a.predictions[image]),
                                          window.session()->snapshot()->className(mb.predictions[image]));
        QCOMPARE(text, expected);
    }
    QVERIFY(window.comparisonSummary()->text().contains("B right and A wrong"));

    // The selected layer's histograms under B: 4-bit weights have 16 levels.
    QSignalSpy histograms(window.session(), &Session::histogramsReady);
    window.selectLayer(window.layerModel()->rowOf("/conv2/Conv") >= 0 ? window.layerModel()->rowOf("/conv2/Conv") : 1);
    QTRY_VERIFY_WITH_TIMEOUT(window.weightHistogram()->comparison().has_value(), kTimeoutMs);
    QVERIFY(window.weightHistogram()->comparison()->levels.size() <= 16);
    QVERIFY(window.weightHistogram()->histogram()->levels.size() > 16 || window.weightHistogram()->histogram()->levels.empty());

    // The per-image errors are still A's: the study's caches were given back to A.
    window.session()->requestImageErrors(3);
    QTRY_VERIFY_WITH_TIMEOUT(imageErrors.count() == 1, kTimeoutMs);
    const auto errorsAfter = imageErrors.takeFirst().at(0).value<std::shared_ptr<const ImageErrorSnapshot>>();
    QCOMPARE(errorsAfter->layers.size(), errorsBefore->layers.size());
    for (std::size_t k = 0; k < errorsAfter->layers.size(); ++k)
        QCOMPARE(errorsAfter->layers[k].mse, errorsBefore->layers[k].mse);

    // The summary JSON (the screenshot's) carries the comparison.
    const QString jsonPath = dir.path() + "/summary.json";
    QVERIFY(window.writeSummaryJson(jsonPath));
    QFile file(jsonPath);
    QVERIFY(file.open(QIODevice::ReadOnly));
    const QJsonObject json = QJsonDocument::fromJson(file.readAll()).object();
    const QJsonObject jc = json["comparison"].toObject();
    QCOMPARE(jc["differing_count"].toInt(), int(differing.size()));
    QCOMPARE(jc["differing"].toArray().size(), int(differing.size()));
    QCOMPARE(jc["top1_b"].toDouble(), mb.top1);
    QCOMPARE(jc["a_right_b_wrong"].toInt() + jc["b_right_a_wrong"].toInt() + jc["both_wrong"].toInt(), int(differing.size()));

    // Editing A keeps B: A is evaluated again, B is the same result.
    const auto bBefore = window.session()->comparison();
    QuantConfig edited = window.document()->config();
    edited.defaultWeights.bits = 6;
    const int before = evaluated.count();
    window.document()->edit(edited, "6-bit weights");
    QTRY_VERIFY_WITH_TIMEOUT(evaluated.count() > before && !window.session()->isBusy(), kTimeoutMs);
    QVERIFY(window.session()->comparison() == bBefore);
    QVERIFY(window.comparison().has_value());
    QCOMPARE(window.errorChart()->barSets().size(), 2);

    // Clearing: back to accumulated and isolated, no filter, no comparison in the JSON.
    window.clearComparison();
    QVERIFY(!window.comparison());
    QCOMPARE(window.errorChart()->barSets()[1]->label(), QStringLiteral("isolated"));
    QVERIFY(!window.differingOnlyFilter()->isEnabled());
    QVERIFY(window.errorModeBox()->currentText().contains("accumulated and isolated"));
    QVERIFY(!window.imagesLegend()->text().contains("B right"));
    QVERIFY(!window.weightHistogram()->comparison());
    QVERIFY(window.writeSummaryJson(jsonPath));
    QFile again(jsonPath);
    QVERIFY(again.open(QIODevice::ReadOnly));
    QVERIFY(!QJsonDocument::fromJson(again.readAll()).object().contains("comparison"));
}

void TestCompare::badFileIsAnError()
{
    if (!QFileInfo::exists(kImages))
        QSKIP("needs Debian's dataset-fashion-mnist");
    QTemporaryDir dir;
    const QString bad = dir.path() + "/bad.json";
    std::ofstream(bad.toStdString()) << R"({"format": "quantexplorer-config", "version": 1, "layers": {"conv9": {"keep_float": true}}})";
    MainWindow window;
    QSignalSpy evaluated(window.session(), &Session::evaluated);
    window.openSession(kModel, kImages);
    QTRY_VERIFY_WITH_TIMEOUT(evaluated.count() >= 1, kTimeoutMs);
    DialogCloser closer;
    QVERIFY(!window.compareWithFile(bad));
    QVERIFY2(closer.texts.join("\n").contains("conv9"), qPrintable(closer.texts.join("\n")));
    QVERIFY(!window.session()->isComparing());
    QVERIFY(!window.comparison());
}

QTEST_MAIN(TestCompare)
#include "tst_compare.moc"
