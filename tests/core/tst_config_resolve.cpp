// How a quantization configuration resolves per layer: a layer's tensor specs override the
// default field by field (a scheme given without bits keeps or replaces the inherited width), a
// layer's calibration and repairs override the top-level ones the same way, AdaRound's forms,
// and validateSpec's errors name the field. The file format itself is tst_config_file's.

#include "config_test_support.h"

#include "common/error.h"
#include "quant/config.h"

#include <QtTest>

#include <nlohmann/json.hpp>

using namespace qe;
using namespace qe::test;
using nlohmann::json;

Q_DECLARE_METATYPE(qe::TensorQuantSpec)

class TestConfigResolve : public QObject {
    Q_OBJECT
private slots:
    void mergeRules_data();
    void mergeRules();
    void layerCalibrationOverridesFieldByField();
    void adaRoundForms();
    void validateSpecNamesTheField_data();
    void validateSpecNamesTheField();
};

void TestConfigResolve::mergeRules_data()
{
    QTest::addColumn<QString>("defaultWeights");
    QTest::addColumn<QString>("layerWeights");
    QTest::addColumn<TensorQuantSpec>("expected");

    const auto spec = [](Scheme s, int bits, Granularity g = Granularity::PerChannel, int groupSize = 0) {
        return TensorQuantSpec{true, s, bits, g, groupSize, std::nullopt, false};
    };
    const int fp16Bits = schemeTraits(Scheme::Fp16).defaultBits;
    const int e4m3Bits = schemeTraits(Scheme::Fp8E4M3).defaultBits;
    QCOMPARE(schemeTraits(Scheme::Fp16).minBits, schemeTraits(Scheme::Fp16).maxBits);

    QTest::newRow("no override") << "{}" << "{}" << spec(Scheme::Symmetric, 8);
    QTest::newRow("to fp16 without bits takes its width")
        << "{}" << R"({"scheme": "fp16"})" << spec(Scheme::Fp16, fp16Bits);
    QTest::newRow("to fp8 from 4 bits") << R"({"bits": 4})" << R"({"scheme": "fp8_e4m3"})"
                                        << spec(Scheme::Fp8E4M3, e4m3Bits);
    {
        // k-means keeps the inherited 8 bits if it allows them, else takes its default.
        const SchemeTraits& k = schemeTraits(Scheme::KMeans);
        const int expectedBits = (8 >= k.minBits && 8 <= k.maxBits) ? 8 : k.defaultBits;
        QTest::newRow("to kmeans without bits") << "{}" << R"({"scheme": "kmeans"})"
                                                << spec(Scheme::KMeans, expectedBits);
    }
    QTest::newRow("to affine keeps 4 bits") << R"({"bits": 4})" << R"({"scheme": "affine"})"
                                            << spec(Scheme::Affine, 4);
    {
        const SchemeTraits& s = schemeTraits(Scheme::Symmetric);
        const int expectedBits = (16 >= s.minBits && 16 <= s.maxBits) ? 16 : s.defaultBits;
        QTest::newRow("from fp16 back to symmetric") << R"({"scheme": "fp16"})" << R"({"scheme": "symmetric"})"
                                                     << spec(Scheme::Symmetric, expectedBits);
    }
    QTest::newRow("explicit bits win") << "{}" << R"({"scheme": "kmeans", "bits": 3})" << spec(Scheme::KMeans, 3);
    QTest::newRow("bits alone keep the scheme") << R"({"scheme": "affine"})" << R"({"bits": 6})"
                                                << spec(Scheme::Affine, 6);
    QTest::newRow("per_group takes group_size from the default")
        << R"({"group_size": 32})" << R"({"granularity": "per_group"})"
        << spec(Scheme::Symmetric, 8, Granularity::PerGroup, 32);
    QTest::newRow("group_size given by the layer")
        << "{}" << R"({"granularity": "per_group", "group_size": 128})"
        << spec(Scheme::Symmetric, 8, Granularity::PerGroup, 128);
    {
        TensorQuantSpec s = spec(Scheme::Symmetric, 8);
        s.quantize = false;
        s.isSigned = false;
        QTest::newRow("float and signed") << "{}" << R"({"float": true, "signed": false})" << s;
    }
}

void TestConfigResolve::mergeRules()
{
    QFETCH(QString, defaultWeights);
    QFETCH(QString, layerWeights);
    QFETCH(TensorQuantSpec, expected);
    const QString text =
        document(QString(R"("default": {"weights": %1}, "layers": {"conv2": {"weights": %2}})")
                     .arg(defaultWeights, layerWeights));
    QuantConfig c;
    QE_NO_ERROR(c = QuantConfig::fromJson(json::parse(text.toStdString()), "merge.json", kLayers));
    QCOMPARE(c.resolve("conv2").weights, expected);
    // appliedTo is what resolve uses; the override it came from is kept as written.
    QCOMPARE(c.layers.count("conv2") ? c.layers.at("conv2").weights.appliedTo(c.defaultWeights) : c.defaultWeights,
             expected);
    QCOMPARE(QuantConfig::fromJson(c.toJson(), "again", kLayers), c);
}

void TestConfigResolve::layerCalibrationOverridesFieldByField()
{
    const QString text = document(R"("calibration": {"images": 64, "method": "percentile", "percentile": 99.5},
        "layers": {"conv1": {"calibration": {"percentile": 99.9}},
                   "conv2": {"calibration": {"method": "mse"}},
                   "fc1":   {"weights": {"bits": 4}}})");
    QuantConfig c;
    QE_NO_ERROR(c = QuantConfig::fromJson(json::parse(text.toStdString()), "cal.json", kLayers));
    QCOMPARE(c.calibrationImages, 64);
    QCOMPARE(c.resolve("conv1").calibration, (CalibrationSpec{CalibrationMethod::Percentile, 99.9, 0.01}));
    QCOMPARE(c.resolve("conv2").calibration, (CalibrationSpec{CalibrationMethod::Mse, 99.5, 0.01}));
    QCOMPARE(c.resolve("fc1").calibration, c.calibration);
    QCOMPARE(c.resolve("not-a-layer").calibration, c.calibration);
    QCOMPARE(c.resolve("not-a-layer").weights, c.defaultWeights);
    QCOMPARE(QuantConfig::fromJson(c.toJson(), "again", kLayers), c);
}

// "adaround" as a switch or as an object whose "enabled" defaults to true at the top level and
// to the inherited switch in a layer; a layer's parameters override the global ones field by field.
void TestConfigResolve::adaRoundForms()
{
    const auto parse = [](const std::string& repairs, const std::string& layers = "{}") {
        return QuantConfig::fromJson(json::parse(R"({"format": "quantexplorer-config", "version": 1, "repairs": )" + repairs +
                                                 R"(, "layers": )" + layers + "}"),
                                     "my.json", kLayers);
    };
    QCOMPARE(parse(R"({"adaround": true})").repairs.adaRound, (AdaRoundSpec{true, 10000, 256}));
    QCOMPARE(parse(R"({"adaround": {"iterations": 200}})").repairs.adaRound, (AdaRoundSpec{true, 200, 256}));
    QCOMPARE(parse(R"({"adaround": {"enabled": false, "images": 64}})").repairs.adaRound, (AdaRoundSpec{false, 10000, 64}));
    const QuantConfig c = parse(R"({"adaround": {"iterations": 200}})", R"({"conv2": {"repairs": {"adaround": {"images": 32}}},
                                                                             "fc2": {"repairs": {"adaround": false}}})");
    QCOMPARE(c.resolve("conv2").repairs.adaRound, (AdaRoundSpec{true, 200, 32}));
    QCOMPARE(c.resolve("fc2").repairs.adaRound, (AdaRoundSpec{false, 200, 256}));
    QCOMPARE(c.resolve("conv1").repairs.adaRound, (AdaRoundSpec{true, 200, 256}));
    // A layer's object without "enabled" inherits the switch: off here.
    QCOMPARE(parse("{}", R"({"conv2": {"repairs": {"adaround": {"images": 32}}}})").resolve("conv2").repairs.adaRound,
             (AdaRoundSpec{false, 10000, 32}));
    // Written as a bare switch while its parameters are the built-in ones.
    QCOMPARE(parse(R"({"adaround": true})").toJson()["repairs"]["adaround"], json(true));
}

void TestConfigResolve::validateSpecNamesTheField_data()
{
    QTest::addColumn<TensorQuantSpec>("spec");
    QTest::addColumn<bool>("forActivations");
    QTest::addColumn<QString>("fragment");

    const TensorQuantSpec ok{true, Scheme::Symmetric, 8, Granularity::PerTensor, 0, std::nullopt, false};
    QTest::newRow("valid weights") << ok << false << QString();
    QTest::newRow("valid activations") << ok << true << QString();
    for (const SchemeTraits& t : schemeTable()) {
        TensorQuantSpec s = ok;
        s.scheme = t.scheme;
        s.bits = t.defaultBits;
        QTest::addRow("%s default bits", std::string(t.name).c_str()) << s << false << QString();
        s.bits = t.minBits - 1;
        QTest::addRow("%s below range", std::string(t.name).c_str()) << s << false << "w.bits: ";
        s.bits = t.maxBits + 1;
        QTest::addRow("%s above range", std::string(t.name).c_str()) << s << false << "w.bits: ";
    }
    TensorQuantSpec s = ok;
    s.dynamic = true;
    QTest::newRow("dynamic weights") << s << false << "w.dynamic: ";
    QTest::newRow("dynamic activations") << s << true << QString();
    s = ok;
    s.granularity = Granularity::PerGroup;
    QTest::newRow("per_group without size") << s << false << "w.group_size: ";
    s.groupSize = -4;
    QTest::newRow("negative group size") << s << false << "w.group_size: ";
    s.groupSize = 16;
    QTest::newRow("per_group weights") << s << false << QString();
    QTest::newRow("per_group activations") << s << true << "w.granularity: ";
    s = ok;
    s.scheme = Scheme::KMeans;
    s.bits = schemeTraits(Scheme::KMeans).defaultBits;
    QTest::newRow("kmeans activations") << s << true << "w.scheme: ";
}

void TestConfigResolve::validateSpecNamesTheField()
{
    QFETCH(TensorQuantSpec, spec);
    QFETCH(bool, forActivations);
    QFETCH(QString, fragment);
    if (fragment.isEmpty()) {
        QE_NO_ERROR(validateSpec(spec, forActivations, "w"));
        return;
    }
    try {
        validateSpec(spec, forActivations, "w");
        QFAIL("no error");
    } catch (const Error& e) {
        QVERIFY2(QString::fromUtf8(e.what()).startsWith(fragment), e.what());
    }
}

QTEST_APPLESS_MAIN(TestConfigResolve)
#include "tst_config_resolve.moc"
