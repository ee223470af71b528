// The A/B comparison of two configurations (core/eval/comparison.h): the exact binomial test
// against values computed by hand from the binomial coefficients, the outcome of each differing
// image on a small made-up case, and on the demo model two real evaluations whose differing
// images and counts are recounted here from their predictions.

#include "common/error.h"
#include "eval/comparison.h"
#include "study/study.h"
#include "test_support.h"

#include <QTemporaryDir>
#include <QtTest>

#include <fstream>

using namespace qe;

namespace {

const std::filesystem::path kDemoModel = test::sourceDir() / "resources/models/fashion_cnn.onnx";
const std::filesystem::path kFashion = QE_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz";

ModelMetrics metrics(std::vector<int> predictions, std::vector<int> labels)
{
    ModelMetrics m;
    m.images = predictions.size();
    std::size_t right = 0, labelled = 0;
    for (std::size_t i = 0; i < predictions.size(); ++i)
        if (labels[i] >= 0)
            ++labelled, right += predictions[i] == labels[i];
    m.top1 = labelled ? double(right) / double(labelled) : 0;
    m.predictions = std::move(predictions);
    m.floatPredictions = m.predictions;
    m.labels = std::move(labels);
    m.layers.push_back({.name = "conv"});
    return m;
}

}  // namespace

class TestComparison : public QObject {
    Q_OBJECT
private slots:
    void exactBinomial_data();
    void exactBinomial();
    void outcomesOfMadeUpPredictions();
    void differentImagesAreRefused();
    void demoModelTwoConfigurations();
};

void TestComparison::exactBinomial_data()
{
    QTest::addColumn<int>("k");
    QTest::addColumn<int>("n");
    QTest::addColumn<double>("p");
    // 2 * sum_{i <= min(k, n-k)} C(n, i) / 2^n, written out.
    QTest::newRow("no discordant pairs") << 0 << 0 << 1.0;
    QTest::newRow("0 of 10") << 0 << 10 << 2.0 / 1024;
    QTest::newRow("10 of 10") << 10 << 10 << 2.0 / 1024;
    QTest::newRow("2 of 10") << 2 << 10 << 2.0 * (1 + 10 + 45) / 1024;
    QTest::newRow("3 of 20") << 3 << 20 << 2.0 * (1 + 20 + 190 + 1140) / 1048576;
    QTest::newRow("even split") << 5 << 10 << 1.0;
    QTest::newRow("1 of 1") << 1 << 1 << 1.0;
    // Past 2^1023 a direct 2^n overflows; the log form must not.
    QTest::newRow("1000 of 2000") << 1000 << 2000 << 1.0;
    QTest::newRow("0 of 2000") << 0 << 2000 << 2 * std::pow(0.5, 2000);
}

void TestComparison::exactBinomial()
{
    QFETCH(int, k);
    QFETCH(int, n);
    QFETCH(double, p);
    const double got = exactBinomialTwoSidedP(std::size_t(k), std::size_t(n));
    QVERIFY2(std::abs(got - p) <= 1e-12 * std::max(1.0, p) || (p < 1e-300 && got < 1e-300),
             qPrintable(QString("p = %1, expected %2").arg(got, 0, 'g', 17).arg(p, 0, 'g', 17)));
    QVERIFY_THROWS_EXCEPTION(Error, exactBinomialTwoSidedP(3, 2));
}

void TestComparison::outcomesOfMadeUpPredictions()
{
    //                       image: 0  1  2  3  4  5   6
    const ModelMetrics a = metrics({1, 2, 3, 4, 5, 6, 7}, {1, 2, 0, 4, 9, 6, -1});
    const ModelMetrics b = metrics({1, 0, 3, 5, 5, 7, 8}, {1, 2, 0, 4, 9, 6, -1});
    const ConfigComparison c = compareEvaluations(a, b);
    QCOMPARE(c.images, std::size_t(7));
    QCOMPARE(c.labelledImages, std::size_t(6));
    QCOMPARE(c.differing.size(), std::size_t(4));  // images 1, 3, 5, 6
    QCOMPARE(c.differing[0].image, std::size_t(1));
    QCOMPARE(int(c.differing[0].outcome), int(DifferingImage::Outcome::ARightBWrong));
    QCOMPARE(c.differing[1].predictionA, 4);
    QCOMPARE(c.differing[1].predictionB, 5);
    QCOMPARE(c.differing[1].label, 4);
    QCOMPARE(int(c.differing[3].outcome), int(DifferingImage::Outcome::Unlabelled));
    QCOMPARE(c.aRightBWrong, std::size_t(3));
    QCOMPARE(c.bRightAWrong, std::size_t(0));
    QCOMPARE(c.bothWrong, std::size_t(0));
    QCOMPARE(c.unlabelled, std::size_t(1));
    QCOMPARE(c.mcnemarP, 2.0 / 8);  // 0 of 3 discordant pairs
    QCOMPARE(c.top1Difference(), b.top1 - a.top1);

    // A configuration compared with itself: nothing differs, nothing to test.
    const ConfigComparison same = compareEvaluations(a, a);
    QVERIFY(same.differing.empty());
    QCOMPARE(same.mcnemarP, 1.0);
    QVERIFY(QString::fromStdString(same.verdict()).contains("same top-1"));
}

void TestComparison::differentImagesAreRefused()
{
    const ModelMetrics a = metrics({1, 2}, {1, 2});
    const ModelMetrics b = metrics({1, 2, 3}, {1, 2, 3});
    try {
        compareEvaluations(a, b);
        QFAIL("evaluations of different images were compared");
    } catch (const Error& e) {
        QVERIFY2(QString(e.what()).contains("different images"), e.what());
    }
}

void TestComparison::demoModelTwoConfigurations()
{
    QE_REQUIRE_PATH(kFashion);
    QTemporaryDir dir;
    const std::string w4a4 = (dir.path() + "/w4a4.json").toStdString();
    std::ofstream(w4a4) << R"({"format": "quantexplorer-config", "version": 1, "calibration": {"images": 256, "method": "minmax"},
        "default": {"weights": {"scheme": "symmetric", "bits": 4, "granularity": "per_tensor"},
                    "activations": {"scheme": "affine", "bits": 4}}, "layers": {}})";
    StudySources sources;
    sources.model = kDemoModel;
    sources.data = kFashion;
    sources.evaluationImages = 1000;
    Study study(sources);
    const StudyResult a = study.evaluate(study.loadConfig((test::sourceDir() / "resources/configs/w8a8.json").string()));
    const StudyResult b = study.evaluate(study.loadConfig(w4a4));
    const ConfigComparison c = compareEvaluations(a.metrics, b.metrics);

    // Recounted from the two evaluations' predictions.
    const ModelMetrics& ma = a.metrics;
    const ModelMetrics& mb = b.metrics;
    std::size_t differing = 0, aOnly = 0, bOnly = 0, neither = 0;
    std::vector<std::size_t> images;
    for (std::size_t i = 0; i < ma.predictions.size(); ++i) {
        if (ma.predictions[i] == mb.predictions[i])
            continue;
        ++differing;
        images.push_back(i);
        const int label = ma.labels[i];
        aOnly += ma.predictions[i] == label;
        bOnly += mb.predictions[i] == label;
        neither += ma.predictions[i] != label && mb.predictions[i] != label;
    }
    QVERIFY2(differing > 10, "4-bit per-tensor should change some of the 1000 predictions of 8-bit");
    QCOMPARE(c.differing.size(), differing);
    QCOMPARE(c.aRightBWrong, aOnly);
    QCOMPARE(c.bRightAWrong, bOnly);
    QCOMPARE(c.bothWrong, neither);
    for (std::size_t k = 0; k < images.size(); ++k) {
        QCOMPARE(c.differing[k].image, images[k]);
        QCOMPARE(c.differing[k].predictionA, ma.predictions[images[k]]);
        QCOMPARE(c.differing[k].predictionB, mb.predictions[images[k]]);
    }
    // Only the discordant images move top-1.
    QCOMPARE(c.labelledImages, std::size_t(1000));
    QCOMPARE(double(c.bRightAWrong) - double(c.aRightBWrong), std::round((mb.top1 - ma.top1) * 1000));
    QCOMPARE(c.top1Difference(), mb.top1 - ma.top1);
    QCOMPARE(c.mcnemarP, exactBinomialTwoSidedP(c.bRightAWrong, c.aRightBWrong + c.bRightAWrong));
    // Per layer: both accumulated errors, A's being the better at the output.
    QCOMPARE(c.layers.size(), ma.layers.size());
    QCOMPARE(c.layers.back().a.sqnrDb, ma.layers.back().accumulated.sqnrDb);
    QCOMPARE(c.layers.back().b.sqnrDb, mb.layers.back().accumulated.sqnrDb);
    QVERIFY(c.layers.back().a.sqnrDb > c.layers.back().b.sqnrDb);
    QCOMPARE(c.sizeBytesA, ma.sizeBytes);
    QVERIFY(c.sizeBytesB < c.sizeBytesA);
}

QTEST_GUILESS_MAIN(TestComparison)
#include "tst_comparison.moc"
