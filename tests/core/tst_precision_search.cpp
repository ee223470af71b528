// Sensitivity and the mixed-precision search on the demo model with Fashion-MNIST:
// - sensitivity's numbers are the study's own evaluation of the same one-layer configurations,
//   written here by hand as configuration JSON (not through withLayerPrecision);
// - the search's Pareto front is within 0.1 points of the exhaustive front at every size, the
//   exhaustive front being every combination of 4- and 8-bit weights over the demo's five weight
//   layers (32 configurations), measured on the same search images by a study of its own;
// - the search measures candidates on images that are neither the reported nor the calibration
//   images; a budget nobody meets returns the closest configuration with the shortfall said;
//   a cancelled search keeps what it measured;
// - paretoFront on points worked out by hand.

#include "common/error.h"
#include "study/precision_search.h"
#include "study/study.h"
#include "test_support.h"

#include <nlohmann/json.hpp>

#include <QtTest>

#include <atomic>
#include <cmath>

using namespace qe;

namespace {

const std::filesystem::path kFashionDir = QE_FASHION_MNIST_DIR;
const std::filesystem::path kFashion = kFashionDir / "t10k-images-idx3-ubyte.gz";
const std::filesystem::path kFashionTrain = kFashionDir / "train-images-idx3-ubyte.gz";
const std::filesystem::path kDemo = test::sourceDir() / "resources/models/fashion_cnn.onnx";
constexpr std::size_t kImages = 300;

StudySources demoSources()
{
    StudySources sources;
    sources.model = kDemo;
    sources.data = kFashion;
    sources.evaluationImages = kImages;
    sources.calibrationImages = 256;
    return sources;
}

// The configuration JSON a person would write: every layer in float but `layer`, at these bits.
QuantConfig onlyThisByHand(const Study& study, const std::string& layer, int weightBits, int activationBits)
{
    nlohmann::json layers = nlohmann::json::object();
    for (const QuantLayer& l : study.layers())
        layers[l.name] = nlohmann::json{{"float", true}};
    layers[layer] = nlohmann::json{{"activations", {{"bits", activationBits}}}};
    if (weightBits)
        layers[layer]["weights"] = {{"bits", weightBits}};
    return QuantConfig::fromJson({{"format", "quantexplorer-config"}, {"version", 1}, {"layers", layers}}, "by hand");
}

std::vector<std::string> weightLayers(const Study& study)
{
    std::vector<std::string> names;
    for (const QuantLayer& l : study.layers())
        if (!l.weight.empty())
            names.push_back(l.name);
    return names;
}

}  // namespace

class TestPrecisionSearch : public QObject {
    Q_OBJECT
private slots:
    void paretoFrontByHand();
    void sensitivityIsTheStudysEvaluation();
    void unknownLayerOrWidth();
    void searchImagesAreHeldOut();
    void searchAgainstBruteForce();
    void budgetNobodyMeets();
    void cancelledSearchKeepsResults();
};

void TestPrecisionSearch::paretoFrontByHand()
{
    // (cost, accuracy): 1 is beaten by 0 (cheaper, as accurate), 3 by 2, 5 duplicates 4.
    const std::vector<std::pair<double, double>> points{{10, 0.9}, {12, 0.9}, {5, 0.7}, {6, 0.6}, {20, 0.95}, {20, 0.95}, {1, 0.1}};
    QCOMPARE(paretoFront(points), (std::vector<std::size_t>{6, 2, 0, 4}));
    QVERIFY(paretoFront({}).empty());
}

void TestPrecisionSearch::sensitivityIsTheStudysEvaluation()
{
    QE_REQUIRE_PATH(kFashion);
    Study study(demoSources());
    const QuantConfig base;  // W8A8 per-channel, as the format's defaults say
    SensitivityOptions options;
    options.weightBits = {3, 8};
    options.activationBits = {4, 8};
    const std::vector<std::string> weighted = weightLayers(study);
    options.layers = {weighted[1], weighted[3]};
    std::vector<std::string> told;
    const SensitivityResult result =
        measureSensitivity(study, base, options, {}, [&](const LayerSensitivity& l) { told.push_back(l.layer); });
    QVERIFY(result.complete);
    QCOMPARE(told, options.layers);
    QCOMPARE(result.layers.size(), std::size_t(2));

    // An independent path: a fresh study evaluating the configurations written by hand.
    Study reference(demoSources());
    const ModelMetrics baseMetrics = reference.evaluate(base).metrics;
    QCOMPARE(result.baseTop1, baseMetrics.top1);
    QCOMPARE(result.floatTop1, baseMetrics.floatTop1);
    for (const LayerSensitivity& l : result.layers) {
        QCOMPARE(l.onlyThis.size(), std::size_t(4));
        for (const SensitivityPoint& p : l.onlyThis) {
            const ModelMetrics m = reference.evaluate(onlyThisByHand(reference, l.layer, p.weightBits, p.activationBits)).metrics;
            QCOMPARE(p.top1, m.top1);
            QCOMPARE(p.outputSqnrDb, m.outputSqnrDb);
        }
        QuantConfig allBut = base;
        allBut.layers[l.layer].keepFloat = true;
        QCOMPARE(l.allButThisTop1, reference.evaluate(allBut).metrics.top1);
        // Fewer bits cost more: 3-bit weights with 4-bit activations are noisier than W8A8.
        QVERIFY2(l.onlyThis.front().outputSqnrDb < l.onlyThis.back().outputSqnrDb, l.layer.c_str());
    }
}

void TestPrecisionSearch::unknownLayerOrWidth()
{
    QE_REQUIRE_PATH(kFashion);
    Study study(demoSources());
    auto failsNaming = [&](const SensitivityOptions& options, const std::string& text) {
        try {
            measureSensitivity(study, QuantConfig{}, options, {});
        } catch (const Error& e) {
            QVERIFY2(std::string(e.what()).find(text) != std::string::npos, e.what());
            return;
        }
        QFAIL(("no error naming " + text).c_str());
    };
    SensitivityOptions unknownLayer;
    unknownLayer.layers = {"/conv9/Conv"};
    failsNaming(unknownLayer, "/conv9/Conv");
    SensitivityOptions tooWide;
    tooWide.weightBits = {8, 31};
    failsNaming(tooWide, "w31");
}

void TestPrecisionSearch::searchImagesAreHeldOut()
{
    QE_REQUIRE_PATH(kFashionTrain);
    Study study(demoSources());
    SearchOptions options;
    options.searchImages = 500;
    const SearchImages images = chooseSearchImages(study, QuantConfig{}, options);
    // The training split's last 500 images: not the reported t10k images, after the 256 that calibrate.
    QCOMPARE(images.path, kFashionTrain);
    QCOMPARE(images.first, std::size_t(60000 - 500));
    QCOMPARE(images.count, std::size_t(500));
    QVERIFY(images.first >= *study.sources().calibrationImages);

    // Given search data that is the evaluation data: refused.
    options.searchData = kFashion;
    QVERIFY_THROWS_EXCEPTION(Error, chooseSearchImages(study, QuantConfig{}, options));
    // No training split and no search data (calibration on --data itself): refused, saying what to give.
    StudySources noSplit = demoSources();
    noSplit.calibrationData = kFashion;
    Study calibratesOnData(noSplit);
    try {
        chooseSearchImages(calibratesOnData, QuantConfig{}, SearchOptions{});
        QFAIL("search images chosen from the evaluation data");
    } catch (const Error& e) {
        QVERIFY2(std::string(e.what()).find("--search-data") != std::string::npos, e.what());
    }
}

void TestPrecisionSearch::searchAgainstBruteForce()
{
    QE_REQUIRE_PATH(kFashionTrain);
    Study study(demoSources());
    const QuantConfig base;
    SearchOptions options;
    options.budget = {SearchBudget::Kind::MaxAccuracyDrop, 0.5, 0};
    options.weightBits = {4, 8};
    options.activationBits = {8};
    options.allowFloat = false;
    options.searchImages = kImages;
    const SearchResult result = searchMixedPrecision(study, base, options, {});
    QVERIFY(result.complete);
    QCOMPARE(result.searchImages.count, kImages);

    // Every combination, on the same search images, by a study of its own.
    Study exhaustiveStudy(demoSources());
    const auto images = datasetSlice(openDataset(result.searchImages.path), result.searchImages.first, result.searchImages.count);
    const std::unique_ptr<Study> onSearchImages = exhaustiveStudy.onOtherImages(images, result.searchImages.path, base);
    const std::vector<std::string> weighted = weightLayers(study);
    std::vector<std::pair<double, double>> exhaustive;
    for (unsigned mask = 0; mask < (1u << weighted.size()); ++mask) {
        QuantConfig config = base;
        for (std::size_t l = 0; l < weighted.size(); ++l)
            config.layers[weighted[l]].weights.bits = (mask >> l) & 1 ? 4 : 8;
        const ModelMetrics m = onSearchImages->evaluate(config).metrics;
        exhaustive.push_back({m.sizeBytes, m.top1});
    }
    std::vector<std::pair<double, double>> searched;
    for (const SearchCandidate& c : result.evaluated)
        searched.push_back({c.sizeBytes, c.searchTop1});
    auto bestWithin = [](const std::vector<std::pair<double, double>>& points, double size) {
        double best = -1;
        for (const auto& [s, top1] : points)
            if (s <= size)
                best = std::max(best, top1);
        return best;
    };
    for (std::size_t i : paretoFront(exhaustive)) {
        const auto [size, top1] = exhaustive[i];
        const double found = bestWithin(searched, size);
        qInfo("size %.0f: exhaustive %.2f%%, search %.2f%%", size, 100 * top1, 100 * found);
        QVERIFY2(found >= top1 - 0.001 - 1e-12, qPrintable(QString("at %1 bytes the search's front is %2 points below the exhaustive one")
                                                                 .arg(size).arg(100 * (top1 - found))));
    }
    // The search evaluated fewer configurations than brute force would on a bigger model; here it
    // must at least not have needed more than all of them plus the sensitivity's.
    QVERIFY(result.evaluated.size() <= exhaustive.size());
    // The reported accuracy is on --data: the chosen configuration evaluated there.
    QCOMPARE(result.top1, study.evaluate(result.chosen).metrics.top1);
}

void TestPrecisionSearch::budgetNobodyMeets()
{
    QE_REQUIRE_PATH(kFashionTrain);
    Study study(demoSources());
    SearchOptions options;
    options.weightBits = {2};
    options.activationBits = {4};
    options.allowFloat = false;
    options.searchImages = kImages;
    // No loss at all with 2-bit weights everywhere: not met; the most accurate is chosen.
    options.budget = {SearchBudget::Kind::MaxAccuracyDrop, 0.0, 0};
    SearchResult result = searchMixedPrecision(study, QuantConfig{}, options, {});
    QVERIFY(!result.shortfall.empty());
    QVERIFY2(result.shortfall.find("points below float") != std::string::npos, result.shortfall.c_str());
    QCOMPARE(result.evaluated.size(), std::size_t(1));
    // A size nobody reaches: the smallest is chosen.
    options.weightBits = {2, 8};
    options.budget = {SearchBudget::Kind::MaxSize, 0, 1000};
    result = searchMixedPrecision(study, QuantConfig{}, options, {});
    QVERIFY2(result.shortfall.find("1000 bytes") != std::string::npos, result.shortfall.c_str());
    double smallest = INFINITY;
    for (const SearchCandidate& c : result.evaluated)
        smallest = std::min(smallest, c.sizeBytes);
    QCOMPARE(result.sizeBytes, smallest);
}

void TestPrecisionSearch::cancelledSearchKeepsResults()
{
    QE_REQUIRE_PATH(kFashionTrain);
    Study study(demoSources());
    SearchOptions options;
    options.searchImages = kImages;
    std::atomic<bool> cancel{false};
    std::size_t seen = 0;
    const SearchResult result = searchMixedPrecision(study, QuantConfig{}, options, {.report = {}, .cancel = &cancel},
                                                     [&](const SearchCandidate&) {
                                                         if (++seen == 3)
                                                             cancel = true;
                                                     });
    QVERIFY(!result.complete);
    QCOMPARE(result.evaluated.size(), std::size_t(3));
    QVERIFY(!result.chosen.layers.empty());
}

QTEST_GUILESS_MAIN(TestPrecisionSearch)
#include "tst_precision_search.moc"
