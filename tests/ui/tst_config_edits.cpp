// The edits the layer table makes to a configuration (ui/config_edits.h), table-driven.

#include "config_edits.h"
#include "layer_details.h"

#include "common/error.h"

#include <nlohmann/json.hpp>

#include <QtTest>

#include <random>

using namespace qe;

Q_DECLARE_METATYPE(qe::LayerField)
Q_DECLARE_METATYPE(qe::LayerFieldValue)
Q_DECLARE_METATYPE(qe::QuantConfig)

class TestConfigEdits : public QObject {
    Q_OBJECT
private slots:
    void resolvedAfterEdit_data();
    void resolvedAfterEdit();
    void invalidEditsAreRejected();
    void editingBackToTheDefaultLeavesNoOverride();
    void repairOverridesFollowTheSwitches();
    void repairSwitchesAreValidated();
    void dynamicRangeAndBack();
    void weightRangeFollowsTheLayers();
    void detailsSayWhatTheRangeSearchClipped();
    void pickingAMethodCalibratesAFixedRangeAgain();
};

void TestConfigEdits::resolvedAfterEdit_data()
{
    QTest::addColumn<QuantConfig>("start");
    QTest::addColumn<LayerField>("field");
    QTest::addColumn<LayerFieldValue>("value");
    QTest::addColumn<int>("weightBits");
    QTest::addColumn<int>("activationBits");
    QTest::addColumn<int>("groupSize");

    QuantConfig fourBit;
    fourBit.layers["conv"].weights.bits = 4;
    QTest::newRow("bits") << QuantConfig{} << LayerField::WeightBits << LayerFieldValue(3) << 3 << 8 << 0;
    // 4 bits are not a width fp16 has: the layer takes fp16's 16 bits.
    QTest::newRow("scheme drops a disallowed width") << fourBit << LayerField::WeightScheme << LayerFieldValue(Scheme::Fp16) << 16 << 8 << 0;
    // k-means allows 4 bits: kept.
    QTest::newRow("scheme keeps an allowed width") << fourBit << LayerField::WeightScheme << LayerFieldValue(Scheme::KMeans) << 4 << 8 << 0;
    QTest::newRow("per group gets a group size") << QuantConfig{} << LayerField::WeightGranularity
                                                 << LayerFieldValue(Granularity::PerGroup) << 8 << 8 << kDefaultGroupSize;
    QTest::newRow("activation bits") << QuantConfig{} << LayerField::ActivationBits << LayerFieldValue(6) << 8 << 6 << 0;
}

void TestConfigEdits::resolvedAfterEdit()
{
    QFETCH(QuantConfig, start);
    QFETCH(LayerField, field);
    QFETCH(LayerFieldValue, value);
    QFETCH(int, weightBits);
    QFETCH(int, activationBits);
    QFETCH(int, groupSize);
    const QuantConfig edited = withLayerEdit(start, {"conv", "fc"}, field, value);
    const LayerQuantConfig conv = edited.resolve("conv");
    QCOMPARE(conv.weights.bits, weightBits);
    QCOMPARE(conv.activations.bits, activationBits);
    if (groupSize)
        QCOMPARE(conv.weights.groupSize, groupSize);
    QVERIFY(edited.layers.count("fc"));  // every selected layer is edited
    QCOMPARE(edited.resolve("other").weights.bits, 8);  // layers not edited keep the default
}

void TestConfigEdits::invalidEditsAreRejected()
{
    // 20 bits is beyond every uniform scheme; the error names the layer's field.
    try {
        withLayerEdit(QuantConfig{}, {"conv"}, LayerField::WeightBits, 20);
        QFAIL("20-bit weights were accepted");
    } catch (const Error& e) {
        QVERIFY2(QString(e.what()).contains("conv"), e.what());
    }
    QVERIFY_THROWS_EXCEPTION(Error, withLayerEdit(QuantConfig{}, {"conv"}, LayerField::ActivationScheme, Scheme::KMeans));
}

void TestConfigEdits::editingBackToTheDefaultLeavesNoOverride()
{
    QuantConfig config = withLayerEdit(QuantConfig{}, {"conv"}, LayerField::KeepFloat, true);
    QVERIFY(config.resolve("conv").keepFloat);
    config = withLayerEdit(config, {"conv"}, LayerField::KeepFloat, false);
    QVERIFY(config.layers.empty());
    QCOMPARE(config, QuantConfig{});
    QCOMPARE(QString::fromStdString(describeLayerEdit({"conv"}, LayerField::WeightBits, 4)), QString("conv: weights 4 bits"));
}

void TestConfigEdits::repairOverridesFollowTheSwitches()
{
    // A layer switched on while the switch is off overrides it, and the file says so.
    QuantConfig config = withLayerEdit(QuantConfig{}, {"conv1", "conv2"}, LayerField::Equalization, true);
    QVERIFY(config.resolve("conv1").repairs.equalization);
    QVERIFY(!config.resolve("other").repairs.equalization);
    QCOMPARE(config.toJson()["layers"]["conv1"]["repairs"]["equalization"], nlohmann::json(true));
    // The switch turned on: the overrides now say what it says and are dropped.
    RepairSpec on;
    on.equalization = true;
    on.biasCorrection = BiasCorrection::Empirical;
    config = withRepairSwitches(config, on);
    QVERIFY(config.layers.empty());
    QVERIFY(config.resolve("other").repairs.equalization);
    QCOMPARE(config.resolve("other").repairs.biasCorrection, BiasCorrection::Empirical);
    // One layer opts out of each repair; setting it back to the switch's value removes the override.
    config = withLayerEdit(config, {"fc"}, LayerField::BiasCorrection, BiasCorrection::None);
    config = withLayerEdit(config, {"fc"}, LayerField::AdaRound, true);
    QCOMPARE(config.resolve("fc").repairs.biasCorrection, BiasCorrection::None);
    QVERIFY(config.resolve("fc").repairs.adaRound.enabled);
    QVERIFY(!config.resolve("conv1").repairs.adaRound.enabled);
    config = withLayerEdit(config, {"fc"}, LayerField::BiasCorrection, BiasCorrection::Empirical);
    config = withLayerEdit(config, {"fc"}, LayerField::AdaRound, false);
    QVERIFY(config.layers.empty());
    // Round trip through the file format.
    QCOMPARE(QuantConfig::fromJson(config.toJson(), "edited"), config);
    QCOMPARE(QString::fromStdString(describeRepairSwitches(RepairSpec{}, on)),
             QString("repairs: equalization on, bias correction empirical"));
    QCOMPARE(QString::fromStdString(describeLayerEdit({"fc"}, LayerField::AdaRound, true)), QString("fc: AdaRound on"));
}

void TestConfigEdits::repairSwitchesAreValidated()
{
    RepairSpec spec;
    spec.adaRound.enabled = true;
    spec.adaRound.iterations = 0;
    try {
        withRepairSwitches(QuantConfig{}, spec);
        QFAIL("0 AdaRound iterations were accepted");
    } catch (const Error& e) {
        QVERIFY2(QString(e.what()).contains("repairs.adaround.iterations"), e.what());
    }
    spec.adaRound.iterations = 100;
    spec.adaRound.images = 0;
    QVERIFY_THROWS_EXCEPTION(Error, withRepairSwitches(QuantConfig{}, spec));
}

QTEST_MAIN(TestConfigEdits)
// The Calibration column's two dynamic choices, and a calibration method that makes the layer
// static again (with the per-token granularity dropped, which a static range cannot have).
void TestConfigEdits::dynamicRangeAndBack()
{
    QuantConfig config = withLayerEdit(QuantConfig{}, {"fc"}, LayerField::DynamicRange, Granularity::PerToken);
    QVERIFY(config.resolve("fc").activations.dynamic);
    QCOMPARE(config.resolve("fc").activations.granularity, Granularity::PerToken);
    QVERIFY(!config.resolve("conv").activations.dynamic);
    QCOMPARE(QString::fromStdString(describeLayerEdit({"fc"}, LayerField::DynamicRange, Granularity::PerToken)),
             QString("fc: dynamic activations per_token"));
    config = withLayerEdit(config, {"fc"}, LayerField::Calibration, CalibrationMethod::Percentile);
    const LayerQuantConfig fc = config.resolve("fc");
    QVERIFY(!fc.activations.dynamic);
    QCOMPARE(fc.activations.granularity, Granularity::PerTensor);
    QCOMPARE(fc.calibration.method, CalibrationMethod::Percentile);
}

// The W range column: MSE ranges on the layers edited, min-max elsewhere; written to the file as
// the layers' "range" and read back the same.
void TestConfigEdits::weightRangeFollowsTheLayers()
{
    QuantConfig config = withLayerEdit(QuantConfig{}, {"conv", "fc"}, LayerField::WeightRange, WeightRange::Mse);
    QCOMPARE(config.resolve("conv").weights.range, WeightRange::Mse);
    QCOMPARE(config.resolve("fc").weights.range, WeightRange::Mse);
    QCOMPARE(config.resolve("other").weights.range, WeightRange::MinMax);
    QCOMPARE(QString::fromStdString(config.toJson()["layers"]["conv"]["weights"]["range"].get<std::string>()), QString("mse"));
    QCOMPARE(QuantConfig::fromJson(config.toJson(), "edited.json"), config);
    QCOMPARE(QString::fromStdString(describeLayerEdit({"conv", "fc"}, LayerField::WeightRange, WeightRange::Mse)),
             QString("2 layers: weight ranges mse"));
    config = withLayerEdit(config, {"fc"}, LayerField::WeightRange, WeightRange::MinMax);
    QCOMPARE(config.resolve("fc").weights.range, WeightRange::MinMax);
    QCOMPARE(config.resolve("conv").weights.range, WeightRange::Mse);
}

// The layer details of a layer with MSE weight ranges: min and max in the formula are the search's
// clip, and the page says how much of the weights' own span it kept and how many weights saturate.
void TestConfigEdits::detailsSayWhatTheRangeSearchClipped()
{
    // Laplace weights with one far outlier: at 4 bits the search clips well inside the span.
    std::mt19937 random(7);
    std::exponential_distribution<float> magnitude(10.f);
    std::bernoulli_distribution negative(0.5);
    std::vector<float> values(2000);
    for (float& v : values)
        v = negative(random) ? -magnitude(random) : magnitude(random);
    values[5] = 2.f;
    auto graph = std::make_shared<Graph>();
    graph->initializers["w"] = Tensor::fromValues<float>({20, 100}, values);

    QuantLayer layer;
    layer.name = "fc";
    layer.opType = "Gemm";
    layer.weight = "w";
    layer.output = "y";
    SessionSnapshot session;
    session.graph = graph;
    session.layers = {layer};

    EvaluationSnapshot evaluation;
    LayerPlan plan;
    plan.config.weights.bits = 4;
    plan.config.weights.granularity = Granularity::PerTensor;
    plan.config.weights.range = WeightRange::Mse;
    plan.weightParams = paramsForWeights(plan.config.weights, graph->initializers["w"]);
    evaluation.plans = {plan};
    evaluation.metrics.layers.resize(1);

    const float hi = plan.weightParams->rangeMax[0];
    QVERIFY2(hi < 1.f, qPrintable(QString::number(hi)));  // clipped: the outlier alone spans to 2
    const auto saturated = std::count_if(values.begin(), values.end(), [&](float v) {
        return v < plan.weightParams->rangeMin[0] || v > hi;
    });
    QVERIFY(saturated >= 1);
    const auto [lo, top] = std::minmax_element(values.begin(), values.end());
    const QString details = layerDetailsHtml(session, evaluation, 0);
    QVERIFY2(details.contains("of the clipped [min, max]"), qPrintable(details));
    QVERIFY2(details.contains(QStringLiteral("The weights span [%1, %2]").arg(QString::number(*lo, 'g', 6), QString::number(*top, 'g', 6))), qPrintable(details));
    QVERIFY2(details.contains(QStringLiteral("saturates %1 of 2000 weights").arg(saturated)), qPrintable(details));

    // Min-max ranges: the formula's min and max are the weights' own, and no search is described.
    plan.config.weights.range = WeightRange::MinMax;
    plan.weightParams = paramsForWeights(plan.config.weights, graph->initializers["w"]);
    evaluation.plans = {plan};
    const QString minMax = layerDetailsHtml(session, evaluation, 0);
    QVERIFY2(!minMax.contains("clipped [min, max]") && !minMax.contains("was searched"), qPrintable(minMax));
    QVERIFY2(minMax.contains(QStringLiteral("= %1<br>").arg(2)), qPrintable(minMax));
}


// A range learned by QAT (LSQ) is a fixed range in the layer's calibration; picking a method in
// the table means calibrating that layer again, so the fixed range goes, the method stays picked.
void TestConfigEdits::pickingAMethodCalibratesAFixedRangeAgain()
{
    QuantConfig config;
    config.layers["fc"].calibration = CalibrationSpec{CalibrationMethod::MinMax, 99.99, 0.01, std::pair{0.f, 7.5f}};
    config.layers["conv"].calibration = CalibrationSpec{CalibrationMethod::MinMax, 99.99, 0.01, std::pair{-1.f, 2.f}};
    QVERIFY(config.resolve("fc").calibration.fixedRange);
    const QuantConfig edited = withLayerEdit(config, {"fc"}, LayerField::Calibration, CalibrationMethod::Mse);
    QVERIFY(!edited.resolve("fc").calibration.fixedRange);
    QCOMPARE(edited.resolve("fc").calibration.method, CalibrationMethod::Mse);
    QCOMPARE(edited.resolve("conv").calibration.fixedRange, std::optional(std::pair{-1.f, 2.f}));  // other layers keep theirs
    // The same method picked again still calibrates: the edit is not a no-op.
    QVERIFY(!(withLayerEdit(config, {"fc"}, LayerField::Calibration, CalibrationMethod::MinMax) == config));

    // The layer details say where such a range comes from, not "calibrated by minmax".
    QuantLayer layer;
    layer.name = "fc";
    layer.opType = "Relu";
    layer.output = "y";
    SessionSnapshot session;
    session.graph = std::make_shared<Graph>();
    session.layers = {layer};
    EvaluationSnapshot evaluation;
    LayerPlan plan;
    plan.config = config.resolve("fc");
    plan.activationParams = paramsForRange(plan.config.activations, 0.f, 7.5f);
    evaluation.plans = {plan};
    evaluation.metrics.layers.resize(1);
    const QString details = layerDetailsHtml(session, evaluation, 0);
    QVERIFY2(details.contains("fixed range from the configuration") && details.contains("Range [0, 7.5] fixed in the configuration"),
             qPrintable(details));
    QVERIFY2(!details.contains("calibrated by") && !details.contains("calibration on"), qPrintable(details));
}

#include "tst_config_edits.moc"
