// The quantization configuration file: the header's example parses as documented, toJson and
// fromJson are exact inverses, every kind of mistake is an error naming the file and the JSON
// path, and save() replaces files atomically.

#include "config_test_support.h"

#include "common/error.h"
#include "quant/config.h"

#include <QTemporaryDir>
#include <QtTest>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

using namespace qe;
using namespace qe::test;
using nlohmann::json;

Q_DECLARE_METATYPE(qe::QuantConfig)

namespace {

std::string readText(const std::filesystem::path& path)
{
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

void writeText(const std::filesystem::path& path, const std::string& text)
{
    std::ofstream(path, std::ios::binary) << text;
}

// The example document of config.h, taken from the header itself so that the documentation
// cannot drift from what the parser accepts.
std::string headerExample()
{
    std::ifstream in(std::filesystem::path(QE_SOURCE_DIR) / "core/quant/config.h");
    std::string line, text;
    bool inside = false;
    while (std::getline(in, line)) {
        if (line.starts_with("// { \"format\""))
            inside = true;
        if (!inside)
            continue;
        if (!line.starts_with("//"))
            break;
        text += line.substr(2) + "\n";
        if (line.ends_with("} } }"))
            break;
    }
    return text;
}

QString layerDocument(const QString& layer, const QString& body)
{
    return document(QString(R"("layers": {"%1": %2})").arg(layer, body));
}

QString bitsOutOfRange(Scheme scheme)
{
    const SchemeTraits& t = schemeTraits(scheme);
    return QString("expected an integer from %1 to %2 for scheme \"%3\", got %4")
        .arg(t.minBits)
        .arg(t.maxBits)
        .arg(QString::fromUtf8(t.name.data(), qsizetype(t.name.size())))
        .arg(t.maxBits + 1);
}

QString name(std::string_view text) { return QString::fromUtf8(text.data(), qsizetype(text.size())); }

}  // namespace

class TestConfigFile : public QObject {
    Q_OBJECT
private slots:
    void headerExampleParsesAsDocumented();
    void roundTrip_data();
    void roundTrip();
    void minimalStableOutput();
    void emptyOverridesAreDropped();
    void layersAreOnlyCheckedWhenNamesAreGiven();
    void errors_data();
    void errors();
    void longLayerListIsShortened();
    void saveIsAtomicAndReloads();
    void loadErrorsNameTheFile_data();
    void loadErrorsNameTheFile();
};

void TestConfigFile::headerExampleParsesAsDocumented()
{
    const std::string text = headerExample();
    QVERIFY2(text.find("\"layers\"") != std::string::npos, text.c_str());
    QuantConfig c;
    QE_NO_ERROR(c = QuantConfig::fromJson(json::parse(text), "config.h", kLayers));

    QCOMPARE(c.model, std::string("fashion_cnn.onnx"));
    QCOMPARE(c.calibrationImages, 512);
    QCOMPARE(c.calibration.method, CalibrationMethod::Percentile);
    QCOMPARE(c.calibration.percentile, 99.99);

    const LayerQuantConfig conv1 = c.resolve("conv1");
    QVERIFY(!conv1.keepFloat);
    QCOMPARE(conv1.weights, c.defaultWeights);
    QCOMPARE(conv1.activations, c.defaultActivations);
    QCOMPARE(conv1.weights.scheme, Scheme::Symmetric);
    QCOMPARE(conv1.weights.bits, 8);
    QCOMPARE(conv1.weights.granularity, Granularity::PerChannel);
    QCOMPARE(conv1.activations.scheme, Scheme::Affine);
    QCOMPARE(conv1.activations.bits, 8);
    QVERIFY(!conv1.activations.dynamic);
    QCOMPARE(conv1.calibration, c.calibration);

    const LayerQuantConfig conv2 = c.resolve("conv2");
    QVERIFY(!conv2.keepFloat);
    QVERIFY(conv2.weights.quantize);
    QCOMPARE(conv2.weights.scheme, Scheme::KMeans);
    QCOMPARE(conv2.weights.bits, 4);
    QCOMPARE(conv2.weights.granularity, Granularity::PerChannel);  // inherited from the default
    QCOMPARE(conv2.activations, c.defaultActivations);

    const LayerQuantConfig fc2 = c.resolve("fc2");
    QVERIFY(fc2.keepFloat);
    QCOMPARE(fc2.calibration.method, CalibrationMethod::Percentile);

    // Repairs: on for every layer, bias correction off for fc2 alone.
    QVERIFY(conv1.repairs.equalization);
    QCOMPARE(conv1.repairs.biasCorrection, BiasCorrection::Empirical);
    QVERIFY(fc2.repairs.equalization);
    QCOMPARE(fc2.repairs.biasCorrection, BiasCorrection::None);

    QCOMPARE(c.layers.size(), std::size_t(2));
    // The example is as minimal as toJson: writing it back gives the same document.
    QCOMPARE(QuantConfig::fromJson(c.toJson(), "again", kLayers), c);
}

void TestConfigFile::roundTrip_data()
{
    QTest::addColumn<QuantConfig>("config");
    QTest::newRow("built-in defaults") << QuantConfig{};
    {
        QuantConfig c;
        c.model = "fashion_cnn.onnx";
        c.calibrationImages = 100;
        c.calibration = {CalibrationMethod::Percentile, 99.9, 0.01};
        QTest::newRow("percentile calibration") << c;
    }
    {
        QuantConfig c;
        c.calibration = {CalibrationMethod::MovingAverage, 99.99, 0.05};
        QTest::newRow("moving average") << c;
    }
    {
        QuantConfig c;
        c.calibration = {CalibrationMethod::MinMax, 97.5, 0.125};
        QTest::newRow("unused calibration parameters kept") << c;
    }
    for (const SchemeTraits& t : schemeTable()) {
        QuantConfig c;
        c.defaultWeights.scheme = t.scheme;
        c.defaultWeights.bits = t.minBits;
        if (t.forActivations) {
            c.defaultActivations.scheme = t.scheme;
            c.defaultActivations.bits = t.maxBits;
        }
        QTest::addRow("scheme %s", std::string(t.name).c_str()) << c;
    }
    {
        QuantConfig c;
        c.defaultWeights = {true, Scheme::Symmetric, 4, Granularity::PerGroup, 32, false, false};
        c.defaultActivations = {true, Scheme::Symmetric, 8, Granularity::PerTensor, 0, true, true};
        QTest::newRow("per-group, signedness, dynamic") << c;
    }
    {
        QuantConfig c;
        c.defaultWeights.range = WeightRange::Mse;
        c.layers["conv1"].weights.range = WeightRange::MinMax;
        c.layers["fc2"].weights.bits = 4;
        QTest::newRow("MSE weight ranges, a layer back to min-max") << c;
    }
    {
        QuantConfig c;
        c.defaultWeights.groupSize = 64;  // kept for when per_group is chosen again
        c.defaultActivations.quantize = false;
        QTest::newRow("weight-only quantization") << c;
    }
    {
        QuantConfig c;
        c.calibration = {CalibrationMethod::Percentile, 99.99, 0.01};
        c.layers["fc2"].keepFloat = true;
        c.layers["conv2"].weights.scheme = Scheme::KMeans;  // bits inherited
        c.layers["conv1"].weights.bits = 6;
        c.layers["conv1"].activations.bits = 16;
        c.layers["fc1"].weights.quantize = false;  // hybrid: float weights, quantized activations
        c.layers["fc1"].activations.dynamic = true;
        c.layers["features.0/Conv"].weights = {true, Scheme::Affine, 4, Granularity::PerGroup, 16, false, std::nullopt};
        QTest::newRow("layer overrides") << c;
    }
    {
        QuantConfig c;
        c.calibration = {CalibrationMethod::Percentile, 99.9, 0.01};
        c.layers["conv1"].calibration = CalibrationSpec{CalibrationMethod::Entropy, 99.9, 0.01};
        c.layers["conv2"].calibration = CalibrationSpec{CalibrationMethod::MinMax, 99.0, 0.01};
        c.layers["fc1"].calibration = CalibrationSpec{CalibrationMethod::MovingAverage, 99.9, 0.02};
        c.layers["fc2"].calibration = c.calibration;
        QTest::newRow("layer calibration") << c;
    }
    {
        // Ranges learned by QAT with LSQ: floats that print and read back to the same floats.
        QuantConfig c;
        c.layers["conv1"].calibration = CalibrationSpec{CalibrationMethod::MinMax, 99.99, 0.01, std::pair{0.f, 7.893766403198242f}};
        c.layers["fc2"].calibration = CalibrationSpec{CalibrationMethod::Mse, 99.99, 0.01, std::pair{-28.485464f, 1.0f / 3.0f}};
        QTest::newRow("fixed layer ranges") << c;
    }
    {
        QuantConfig c;
        c.repairs = {true, false, BiasCorrection::Empirical};
        c.layers["conv1"].repairs.equalization = false;
        c.layers["fc2"].repairs.biasCorrection = BiasCorrection::Analytical;
        c.layers["conv2"].repairs.relu6AsRelu = true;
        QTest::newRow("repairs, global and per layer") << c;
    }
    {
        QuantConfig c;
        c.layers["fc1"].repairs.biasCorrection = BiasCorrection::None;  // an override to the default's value is kept
        QTest::newRow("repairs, layer only") << c;
    }
    {
        QuantConfig c;
        c.repairs.adaRound.enabled = true;
        QTest::newRow("adaround on, default parameters") << c;
    }
    {
        QuantConfig c;
        c.repairs.adaRound = {true, 200, 64};
        c.layers["conv1"].repairs.adaRound = false;
        c.layers["fc2"].repairs.adaRoundIterations = 50;
        c.layers["conv2"].repairs.adaRound = true;
        c.layers["conv2"].repairs.adaRoundImages = 32;
        QTest::newRow("adaround, global and per layer") << c;
    }
    {
        QuantConfig c;
        c.repairs.adaRound = {false, 500, 256};  // parameters kept while it is off
        QTest::newRow("adaround off with iterations") << c;
    }
    {
        QuantConfig c;
        c.repairs.smoothQuant = true;
        c.repairs.smoothQuantAlpha = 0.75f;
        c.layers["fc1"].repairs.smoothQuant = false;
        c.layers["fc2"].repairs.smoothQuantAlpha = 0.25f;
        QTest::newRow("smoothquant, global and per layer") << c;
    }
}

void TestConfigFile::roundTrip()
{
    QFETCH(QuantConfig, config);
    const json written = config.toJson();
    QuantConfig fromMemory, fromText;
    QE_NO_ERROR(fromMemory = QuantConfig::fromJson(written, "memory", kLayers));
    QCOMPARE(fromMemory, config);
    // Through text too, as save() and load() do it (doubles must survive printing).
    QE_NO_ERROR(fromText = QuantConfig::fromJson(json::parse(written.dump(2)), "text", kLayers));
    QCOMPARE(fromText, config);
    QCOMPARE(fromText.toJson(), written);
}

void TestConfigFile::minimalStableOutput()
{
    QuantConfig c;
    c.model = "m.onnx";
    c.layers["conv2"].weights.scheme = Scheme::Fp16;
    c.layers["fc2"].keepFloat = true;
    const std::string expected = R"({
  "calibration": {
    "images": 512,
    "method": "minmax"
  },
  "default": {
    "activations": {
      "bits": 8,
      "dynamic": false,
      "granularity": "per_tensor",
      "scheme": "affine"
    },
    "weights": {
      "bits": 8,
      "granularity": "per_channel",
      "scheme": "symmetric"
    }
  },
  "format": "quantexplorer-config",
  "layers": {
    "conv2": {
      "weights": {
        "scheme": "fp16"
      }
    },
    "fc2": {
      "float": true
    }
  },
  "model": "m.onnx",
  "version": 1
})";
    QCOMPARE(QString::fromStdString(c.toJson().dump(2)), QString::fromStdString(expected));
}

void TestConfigFile::emptyOverridesAreDropped()
{
    QuantConfig c;
    c.layers["conv1"];  // empty
    c.layers["conv2"].weights.bits = 4;
    const json j = c.toJson();
    QVERIFY(!j["layers"].contains("conv1"));
    QVERIFY(j["layers"].contains("conv2"));

    const QuantConfig parsed = QuantConfig::fromJson(
        json::parse(layerDocument("conv1", R"({"weights": {}, "activations": {}, "float": false})").toStdString()),
        "x.json", kLayers);
    QVERIFY(parsed.layers.empty());
}

void TestConfigFile::layersAreOnlyCheckedWhenNamesAreGiven()
{
    const json j = json::parse(layerDocument("conv9", R"({"float": true})").toStdString());
    QVERIFY(QuantConfig::fromJson(j, "any.json").resolve("conv9").keepFloat);
    QVERIFY_THROWS_EXCEPTION(Error, QuantConfig::fromJson(j, "any.json", kLayers));
}

void TestConfigFile::errors_data()
{
    QTest::addColumn<QString>("text");
    QTest::addColumn<QStringList>("fragments");

    // The document and the top-level keys.
    QTest::newRow("not an object") << "[1, 2]" << QStringList{"my.json: expected a JSON object", "an array"};
    QTest::newRow("format missing") << R"({"version": 1})" << QStringList{"my.json: format: missing",
                                                                          "\"quantexplorer-config\""};
    QTest::newRow("other format") << R"({"format": "quantexplorer-preprocess", "version": 1})"
                                  << QStringList{"my.json: format: expected the string \"quantexplorer-config\"",
                                                 "got the string \"quantexplorer-preprocess\""};
    QTest::newRow("version missing") << R"({"format": "quantexplorer-config"})"
                                     << QStringList{"my.json: version: missing"};
    QTest::newRow("newer version") << R"({"format": "quantexplorer-config", "version": 2, "new_key": 1})"
                                   << QStringList{"my.json: version: the file is version 2",
                                                  "newer than this program"};
    QTest::newRow("version 0") << R"({"format": "quantexplorer-config", "version": 0})"
                               << QStringList{"my.json: version: expected 1, got 0"};
    QTest::newRow("version as string") << R"({"format": "quantexplorer-config", "version": "1"})"
                                       << QStringList{"version: expected the integer 1", "\"1\""};
    QTest::newRow("unknown top-level key")
        << document(R"("layer": {})")
        << QStringList{"my.json: unknown key \"layer\" (expected one of: format, version, model, calibration, "
                       "default, repairs, layers)"};
    QTest::newRow("model not a string") << document(R"("model": 3)")
                                        << QStringList{"my.json: model: expected a string, got 3"};

    // Calibration.
    QTest::newRow("calibration not an object") << document(R"("calibration": "minmax")")
                                               << QStringList{"calibration: expected an object"};
    QTest::newRow("zero images") << document(R"("calibration": {"images": 0})")
                                 << QStringList{"my.json: calibration.images: expected an integer >= 1, got 0"};
    QTest::newRow("fractional images") << document(R"("calibration": {"images": 1.5})")
                                       << QStringList{"calibration.images: expected an integer", "got 1.5"};
    QTest::newRow("unknown method") << document(R"("calibration": {"method": "median"})")
                                    << QStringList{"calibration.method: unknown calibration method \"median\"",
                                                   "minmax", "moving_average", "percentile", "mse", "entropy"};
    QTest::newRow("percentile 0") << document(R"("calibration": {"percentile": 0})")
                                  << QStringList{"calibration.percentile: expected a number in (0, 100], got 0"};
    QTest::newRow("percentile above 100") << document(R"("calibration": {"percentile": 100.5})")
                                          << QStringList{"calibration.percentile", "got 100.5"};
    QTest::newRow("percentile as string") << document(R"("calibration": {"percentile": "99"})")
                                          << QStringList{"calibration.percentile", "got the string \"99\""};
    QTest::newRow("averaging constant above 1")
        << document(R"("calibration": {"moving_average_constant": 1.5})")
        << QStringList{"calibration.moving_average_constant: expected a number in (0, 1], got 1.5"};
    QTest::newRow("averaging constant 0") << document(R"("calibration": {"moving_average_constant": 0})")
                                          << QStringList{"calibration.moving_average_constant", "got 0"};
    QTest::newRow("unknown calibration key") << document(R"("calibration": {"imgs": 5})")
                                             << QStringList{"calibration: unknown key \"imgs\"", "images"};

    // The default specs.
    QTest::newRow("unknown default key") << document(R"("default": {"weight": {}})")
                                         << QStringList{"default: unknown key \"weight\"", "weights, activations"};
    QTest::newRow("default weights not an object") << document(R"("default": {"weights": 8})")
                                                   << QStringList{"default.weights: expected an object, got 8"};
    QTest::newRow("default bits out of range")
        << document(QString(R"("default": {"weights": {"bits": %1}})").arg(schemeTraits(Scheme::Symmetric).maxBits + 1))
        << QStringList{"my.json: default.weights.bits: " + bitsOutOfRange(Scheme::Symmetric)};
    QTest::newRow("dynamic default weights") << document(R"("default": {"weights": {"dynamic": true}})")
                                             << QStringList{"default.weights.dynamic", "only activations"};
    QTest::newRow("kmeans default activations") << document(R"("default": {"activations": {"scheme": "kmeans"}})")
                                                << QStringList{"default.activations.scheme", "\"kmeans\"",
                                                               "weights only"};
    QTest::newRow("per_group default without group_size")
        << document(R"("default": {"weights": {"granularity": "per_group"}})")
        << QStringList{"default.weights.group_size", "\"per_group\" needs a group size"};

    // Layer tensor specs.
    QTest::newRow("bits out of range") << layerDocument("conv2", QString(R"({"weights": {"scheme": "affine", "bits": %1}})")
                                                                     .arg(schemeTraits(Scheme::Affine).maxBits + 1))
                                       << QStringList{"my.json: layers.conv2.weights.bits: " +
                                                      bitsOutOfRange(Scheme::Affine)};
    QTest::newRow("bits below range") << layerDocument("conv2", R"({"weights": {"bits": -3}})")
                                      << QStringList{"layers.conv2.weights.bits", "got -3"};
    QTest::newRow("fp16 with 8 bits")
        << layerDocument("conv2", R"({"weights": {"scheme": "fp16", "bits": 8}})")
        << QStringList{QString("layers.conv2.weights.bits: expected %1 for scheme \"fp16\", got 8")
                           .arg(schemeTraits(Scheme::Fp16).maxBits)};
    QTest::newRow("bits as string") << layerDocument("conv2", R"({"weights": {"bits": "8"}})")
                                    << QStringList{"layers.conv2.weights.bits: expected an integer",
                                                   "got the string \"8\""};
    QTest::newRow("bits as fraction") << layerDocument("conv2", R"({"weights": {"bits": 8.5}})")
                                      << QStringList{"layers.conv2.weights.bits: expected an integer", "got 8.5"};
    QTest::newRow("absurd bits") << layerDocument("conv2", R"({"weights": {"bits": 99999999999}})")
                                 << QStringList{"layers.conv2.weights.bits", "got 99999999999"};
    QTest::newRow("unknown key")
        << layerDocument("conv2", R"({"weights": {"bitz": 4}})")
        << QStringList{"my.json: layers.conv2.weights: unknown key \"bitz\" (expected one of: scheme, bits, "
                       "granularity, group_size, signed, range, float)"};
    QTest::newRow("unknown activation key")
        << layerDocument("conv2", R"({"activations": {"dynamc": true}})")
        << QStringList{"layers.conv2.activations: unknown key \"dynamc\"", "dynamic"};
    {
        QStringList fragments{"my.json: layers.conv2.weights.scheme: unknown scheme \"int4\" (expected one of: "};
        for (const SchemeTraits& t : schemeTable())
            fragments << name(t.name);
        QTest::newRow("unknown scheme") << layerDocument("conv2", R"({"weights": {"scheme": "int4"}})") << fragments;
    }
    QTest::newRow("scheme as number") << layerDocument("conv2", R"({"weights": {"scheme": 8}})")
                                      << QStringList{"layers.conv2.weights.scheme: expected a string, got 8"};
    QTest::newRow("unknown granularity")
        << layerDocument("conv2", R"({"weights": {"granularity": "per_row"}})")
        << QStringList{"layers.conv2.weights.granularity: unknown granularity \"per_row\" (expected one of: "
                       "per_tensor, per_channel, per_group, per_token)"};
    QTest::newRow("per_token static activations")
        << layerDocument("conv2", R"({"activations": {"granularity": "per_token"}})")
        << QStringList{"layers.conv2.activations.granularity", "needs \"dynamic\": true"};
    QTest::newRow("per_channel dynamic activations")
        << layerDocument("conv2", R"({"activations": {"granularity": "per_channel", "dynamic": true}})")
        << QStringList{"layers.conv2.activations.granularity", "per token when dynamic", "got \"per_channel\""};
    QTest::newRow("per_token weights") << layerDocument("conv2", R"({"weights": {"granularity": "per_token"}})")
                                       << QStringList{"layers.conv2.weights.granularity", "for dynamic activations"};
    QTest::newRow("group_size 0") << layerDocument("conv2", R"({"weights": {"granularity": "per_group", "group_size": 0}})")
                                  << QStringList{"layers.conv2.weights.group_size: expected an integer >= 1, got 0"};
    QTest::newRow("per_group without group_size")
        << layerDocument("conv2", R"({"weights": {"granularity": "per_group"}})")
        << QStringList{"my.json: layers.conv2.weights.group_size", "\"per_group\" needs a group size", "none"};
    QTest::newRow("signed not a bool") << layerDocument("conv2", R"({"weights": {"signed": "yes"}})")
                                       << QStringList{"layers.conv2.weights.signed: expected true or false",
                                                      "\"yes\""};
    QTest::newRow("float not a bool") << layerDocument("conv2", R"({"activations": {"float": 1}})")
                                      << QStringList{"layers.conv2.activations.float: expected true or false, got 1"};
    QTest::newRow("range for activations") << layerDocument("conv2", R"({"activations": {"range": "mse"}})")
                                           << QStringList{"my.json: layers.conv2.activations.range", "from \"calibration\"",
                                                          "for weights"};
    QTest::newRow("unknown weight range") << document(R"("default": {"weights": {"range": "percentile"}})")
                                          << QStringList{"my.json: default.weights.range", "unknown weight range \"percentile\"",
                                                         "\"minmax\" or \"mse\""};
    QTest::newRow("dynamic weights") << layerDocument("conv2", R"({"weights": {"dynamic": false}})")
                                     << QStringList{"my.json: layers.conv2.weights.dynamic: only activations"};
    QTest::newRow("kmeans activations")
        << layerDocument("conv2", R"({"activations": {"scheme": "kmeans", "bits": 4}})")
        << QStringList{"my.json: layers.conv2.activations.scheme: scheme \"kmeans\" is for weights only"};
    QTest::newRow("per_channel activations")
        << layerDocument("conv2", R"({"activations": {"granularity": "per_channel"}})")
        << QStringList{"layers.conv2.activations.granularity", "expected \"per_tensor\" or \"per_token\", got \"per_channel\""};
    QTest::newRow("per_group activations")
        << layerDocument("conv2", R"({"activations": {"granularity": "per_group", "group_size": 8}})")
        << QStringList{"layers.conv2.activations.granularity", "got \"per_group\""};
    QTest::newRow("bits checked against the merged scheme")
        << document(R"("default": {"weights": {"scheme": "fp16"}}, "layers": {"fc1": {"weights": {"bits": 8}}})")
        << QStringList{"layers.fc1.weights.bits", "for scheme \"fp16\", got 8"};
    QTest::newRow("checked even when float")
        << layerDocument("conv2", QString(R"({"float": true, "weights": {"bits": %1}})")
                                      .arg(schemeTraits(Scheme::Symmetric).maxBits + 1))
        << QStringList{"layers.conv2.weights.bits"};

    // Layers.
    // Repairs.
    QTest::newRow("repairs not an object") << document(R"("repairs": true)")
                                           << QStringList{"my.json: repairs: expected an object, got true"};
    QTest::newRow("repairs unknown key") << document(R"("repairs": {"adaptive": true})")
                                         << QStringList{"my.json: repairs: unknown key \"adaptive\"",
                                                        "equalization, relu6_as_relu, bias_correction, adaround, smoothquant"};
    QTest::newRow("smoothquant alpha above 1") << document(R"("repairs": {"smoothquant": true, "smoothquant_alpha": 1.5})")
                                               << QStringList{"my.json: repairs.smoothquant_alpha: expected a number from 0 to 1",
                                                              "got 1.5"};
    QTest::newRow("smoothquant alpha a string") << layerDocument("fc1", R"({"repairs": {"smoothquant_alpha": "half"}})")
                                                << QStringList{"layers.fc1.repairs.smoothquant_alpha: expected a number"};
    QTest::newRow("adaround not a bool or object") << document(R"("repairs": {"adaround": "yes"})")
                                                   << QStringList{"my.json: repairs.adaround: expected true, false or an object"};
    QTest::newRow("adaround unknown key") << document(R"("repairs": {"adaround": {"iters": 5}})")
                                          << QStringList{"repairs.adaround: unknown key \"iters\"",
                                                         "enabled, iterations, images"};
    QTest::newRow("adaround iterations zero") << document(R"("repairs": {"adaround": {"iterations": 0}})")
                                              << QStringList{"repairs.adaround.iterations: expected an integer >= 1, got 0"};
    QTest::newRow("adaround iterations fraction") << document(R"("repairs": {"adaround": {"iterations": 2.5}})")
                                                  << QStringList{"repairs.adaround.iterations: expected an integer >= 1"};
    QTest::newRow("adaround images negative") << layerDocument("conv2", R"({"repairs": {"adaround": {"images": -3}}})")
                                              << QStringList{"layers.conv2.repairs.adaround.images: expected an integer >= 1"};
    QTest::newRow("adaround enabled not a bool") << document(R"("repairs": {"adaround": {"enabled": 1}})")
                                                 << QStringList{"repairs.adaround.enabled: expected true or false"};
    QTest::newRow("equalization not a bool") << document(R"("repairs": {"equalization": "yes"})")
                                             << QStringList{"repairs.equalization: expected true or false"};
    QTest::newRow("bias correction unknown") << document(R"("repairs": {"bias_correction": "exact"})")
                                             << QStringList{"repairs.bias_correction: unknown bias correction \"exact\"",
                                                            "none, empirical, analytical"};
    QTest::newRow("layer repairs bad type") << layerDocument("conv2", R"({"repairs": {"bias_correction": true}})")
                                            << QStringList{"layers.conv2.repairs.bias_correction: expected a string"};
    QTest::newRow("layers not an object") << document(R"("layers": [])")
                                          << QStringList{"my.json: layers: expected an object, got an array"};
    QTest::newRow("layer not an object") << layerDocument("conv2", "true")
                                         << QStringList{"my.json: layers.conv2: expected an object, got true"};
    QTest::newRow("layer float not a bool") << layerDocument("conv2", R"({"float": "true"})")
                                            << QStringList{"layers.conv2.float: expected true or false"};
    QTest::newRow("unknown layer key")
        << layerDocument("conv2", R"({"wieghts": {}})")
        << QStringList{"layers.conv2: unknown key \"wieghts\" (expected one of: float, weights, activations, "
                       "calibration, repairs)"};
    QTest::newRow("images in a layer calibration")
        << layerDocument("conv2", R"({"calibration": {"images": 10}})")
        << QStringList{"layers.conv2.calibration: unknown key \"images\"", "top-level"};
    QTest::newRow("fixed range at the top level")
        << document(R"("calibration": {"range": [0, 1]})")
        << QStringList{"my.json: calibration.range: a fixed range is given per layer"};
    QTest::newRow("fixed range not a pair")
        << layerDocument("conv2", R"({"calibration": {"range": [0, 1, 2]}})")
        << QStringList{"layers.conv2.calibration.range: expected [min, max] with finite min <= 0 <= max", "got [0,1,2]"};
    QTest::newRow("fixed range without zero")
        << layerDocument("conv2", R"({"calibration": {"range": [0.5, 1]}})")
        << QStringList{"layers.conv2.calibration.range: expected [min, max]", "got [0.5,1]"};
    QTest::newRow("fixed range beyond float")
        << layerDocument("conv2", R"({"calibration": {"range": [0, 1e39]}})")
        << QStringList{"layers.conv2.calibration.range: expected [min, max]"};
    QTest::newRow("fixed range of strings")
        << layerDocument("conv2", R"({"calibration": {"range": ["0", "1"]}})")
        << QStringList{"layers.conv2.calibration.range: expected [min, max]"};
    QTest::newRow("layer percentile") << layerDocument("conv2", R"({"calibration": {"percentile": 200}})")
                                      << QStringList{"layers.conv2.calibration.percentile", "got 200"};
    QTest::newRow("layer the model lacks")
        << layerDocument("conv9", R"({"float": true})")
        << QStringList{"my.json: layers.conv9: the model has no layer \"conv9\" (layers: conv1, conv2, fc1, fc2, "
                       "features.0/Conv)"};
    QTest::newRow("bracketed layer path")
        << layerDocument("features.1/Conv", "{}")
        << QStringList{"my.json: layers[\"features.1/Conv\"]: the model has no layer \"features.1/Conv\""};
    QTest::newRow("bracketed path inside a layer")
        << layerDocument("features.0/Conv", R"({"weights": {"bits": 1}})")
        << QStringList{"my.json: layers[\"features.0/Conv\"].weights.bits", "got 1"};
}

void TestConfigFile::errors()
{
    QFETCH(QString, text);
    QFETCH(QStringList, fragments);
    const json j = json::parse(text.toStdString());
    try {
        QuantConfig::fromJson(j, "my.json", kLayers);
        QFAIL("no error");
    } catch (const Error& e) {
        const QString message = QString::fromUtf8(e.what());
        QVERIFY2(message.startsWith("my.json: "), qPrintable(message));
        for (const QString& fragment : fragments)
            QVERIFY2(message.contains(fragment), qPrintable("\"" + fragment + "\" not in: " + message));
    }
}

void TestConfigFile::longLayerListIsShortened()
{
    std::set<std::string> names;
    for (int i = 0; i < 25; ++i)
        names.insert("layer" + std::string(i < 10 ? "0" : "") + std::to_string(i));
    try {
        QuantConfig::fromJson(json::parse(layerDocument("conv1", "{}").toStdString()), "big.json", names);
        QFAIL("no error");
    } catch (const Error& e) {
        const QString message = QString::fromUtf8(e.what());
        QVERIFY2(message.contains("(layers: layer00, layer01,"), qPrintable(message));
        QVERIFY2(message.contains("layer09, and 15 more)"), qPrintable(message));
        QVERIFY2(!message.contains("layer10"), qPrintable(message));
    }
}

void TestConfigFile::saveIsAtomicAndReloads()
{
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::filesystem::path path = std::filesystem::path(dir.path().toStdString()) / "q.json";
    auto noTemporaryLeft = [&] {
        for (const auto& entry : std::filesystem::directory_iterator(dir.path().toStdString()))
            if (entry.path().filename().string().find(".tmp") != std::string::npos)
                return false;
        return true;
    };

    QuantConfig first;
    first.model = "fashion_cnn.onnx";
    first.calibration = {CalibrationMethod::Percentile, 99.99, 0.01};
    first.layers["conv2"].weights.scheme = Scheme::KMeans;
    first.layers["conv2"].weights.bits = 4;
    first.save(path);

    QVERIFY(noTemporaryLeft());
    const std::string text = readText(path);
    QVERIFY(text.ends_with("}\n"));
    QVERIFY(text.starts_with("{\n  \"calibration\": {\n    \"images\": 512,"));
    QCOMPARE(QuantConfig::load(path, kLayers), first);

    // Saving over an existing file replaces it.
    QuantConfig second;
    second.layers["fc2"].keepFloat = true;
    second.save(path);
    QVERIFY(noTemporaryLeft());
    QCOMPARE(QuantConfig::load(path, kLayers), second);
    QVERIFY(readText(path).find("kmeans") == std::string::npos);

    // A target that cannot be written names the file, and the old file is left alone.
    const std::filesystem::path missingDir = std::filesystem::path(dir.path().toStdString()) / "no/such/dir/q.json";
    try {
        second.save(missingDir);
        QFAIL("no error");
    } catch (const Error& e) {
        QVERIFY2(QString::fromUtf8(e.what()).contains(QString::fromStdString(missingDir.string())), e.what());
    }
    // A directory in the way of the rename: the temporary file is cleaned up.
    const std::filesystem::path blocked = std::filesystem::path(dir.path().toStdString()) / "blocked.json";
    std::filesystem::create_directories(blocked / "child");
    QVERIFY_THROWS_EXCEPTION(Error, second.save(blocked));
    QVERIFY(noTemporaryLeft());
}

void TestConfigFile::loadErrorsNameTheFile_data()
{
    QTest::addColumn<QString>("fileName");
    QTest::addColumn<bool>("create");
    QTest::addColumn<QString>("content");
    QTest::addColumn<QStringList>("fragments");

    QTest::newRow("missing file") << "missing.json" << false << QString() << QStringList{"missing.json: no such file"};
    QTest::newRow("empty file") << "empty.json" << true << "" << QStringList{"empty.json: not valid JSON (byte "};
    QTest::newRow("syntax error") << "broken.json" << true << "{\"format\": \"quantexplorer-config\",\n \"version\": 1,\n}"
                                  << QStringList{"broken.json: not valid JSON (byte ", "line 3"};
    QTest::newRow("trailing garbage") << "garbage.json" << true << document("") + " x"
                                      << QStringList{"garbage.json: not valid JSON"};
    QTest::newRow("valid JSON, bad config") << "bad.json" << true << document(R"("layers": {"conv9": {}})")
                                            << QStringList{"bad.json: layers.conv9: the model has no layer"};
}

void TestConfigFile::loadErrorsNameTheFile()
{
    QFETCH(QString, fileName);
    QFETCH(bool, create);
    QFETCH(QString, content);
    QFETCH(QStringList, fragments);
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::filesystem::path path = std::filesystem::path(dir.path().toStdString()) / fileName.toStdString();
    if (create)
        writeText(path, content.toStdString());
    try {
        QuantConfig::load(path, kLayers);
        QFAIL("no error");
    } catch (const Error& e) {
        const QString message = QString::fromUtf8(e.what());
        QVERIFY2(message.startsWith(QString::fromStdString(path.string()) + ": "), qPrintable(message));
        for (const QString& fragment : fragments)
            QVERIFY2(message.contains(fragment), qPrintable("\"" + fragment + "\" not in: " + message));
    }
}

QTEST_APPLESS_MAIN(TestConfigFile)
#include "tst_config_file.moc"
