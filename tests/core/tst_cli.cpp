// quantexplorer-cli as scripts use it: JSON on stdout, exit 0 on success and 2 on bad input with
// an error naming the file or option on stderr. Also checks the embedded demo model's accuracy on
// the full Fashion-MNIST test set (the issue asks for at least 90%).

#include "test_support.h"

#include "study/study.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include <fstream>

#include <nlohmann/json.hpp>

namespace {

struct CliResult {
    int exitCode = -1;
    QByteArray out, err;
};

CliResult runCli(const QStringList& args)
{
    QProcess process;
    process.start(QString::fromStdString((qe::test::binaryDir() / "app" / "quantexplorer-cli").string()), args);
    process.waitForFinished(600000);
    return {process.exitStatus() == QProcess::NormalExit ? process.exitCode() : -1, process.readAllStandardOutput(),
            process.readAllStandardError()};
}

const QString kDemoModel = QString::fromStdString((qe::test::sourceDir() / "resources/models/fashion_cnn.onnx").string());
const QString kFashionTest = QStringLiteral(QE_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz");

}  // namespace

class TestCli : public QObject {
    Q_OBJECT
private slots:
    void infoJson();
    void demoModelAccuracy();
    void flagsOverrideSidecar();
    void evalWithConfig();
    void evalIntegerEngine();
    void exportAndReport();
    void histogramJson();
    void sensitivityAndSearch();
    void compareJson();
    void histogramOfOneChannel();
    void repairFlags();
    void adaRoundFlags();
    void lessonHandout();
    void traceEndsInTheEnginesCode();
    void badInput_data();
    void badInput();
};

void TestCli::infoJson()
{
    const CliResult r = runCli({"info", "--model", kDemoModel, "--json"});
    QCOMPARE(r.exitCode, 0);
    const QJsonObject info = QJsonDocument::fromJson(r.out).object();
    QCOMPARE(info["inputs"].toArray()[0].toObject()["shape"].toArray(), (QJsonArray{"N", 1, 28, 28}));
    QCOMPARE(info["outputs"].toArray()[0].toObject()["shape"].toArray(), (QJsonArray{"N", 10}));
    // Parameters of the trained network: conv 160 + 4640 + 18496, fc 73856 + 1290 (BN folded into conv).
    QCOMPARE(info["parameter_count"].toInteger(), 98442);
    QCOMPARE(info["operators"].toObject()["Conv"].toInt(), 3);
    QCOMPARE(info["nodes"].toArray().size(), info["node_count"].toInt());
}

void TestCli::demoModelAccuracy()
{
    QE_REQUIRE_PATH(std::filesystem::path(kFashionTest.toStdString()));
    const CliResult r = runCli({"eval", "--model", kDemoModel, "--data", kFashionTest, "--json"});
    QCOMPARE(r.exitCode, 0);
    const QJsonObject result = QJsonDocument::fromJson(r.out).object();
    QCOMPARE(result["count"].toInt(), 10000);
    qInfo("demo model on Fashion-MNIST t10k: top-1 %.2f%%, top-5 %.2f%%", 100 * result["top1"].toDouble(),
          100 * result["top5"].toDouble());
    QVERIFY(result["top1"].toDouble() >= 0.90);
    QVERIFY(result["top5"].toDouble() >= result["top1"].toDouble());
    // The process's peak memory: at least the 10,000 decoded test images (7.8 MB of pixels) and
    // the libraries, far below the machine's memory.
    const double peak = result["peak_rss_bytes"].toDouble();
    QVERIFY2(peak > 8e6 && peak < 4e9, qPrintable(QString::number(peak)));
}

void TestCli::flagsOverrideSidecar()
{
    QE_REQUIRE_PATH(std::filesystem::path(kFashionTest.toStdString()));
    // The sidecar scales pixels by 1/255; feeding raw 0..255 pixels must change the result.
    const CliResult sidecar = runCli({"eval", "--model", kDemoModel, "--data", kFashionTest, "--limit", "300", "--json"});
    const CliResult raw = runCli({"eval", "--model", kDemoModel, "--data", kFashionTest, "--limit", "300", "--scale", "1", "--json"});
    QCOMPARE(sidecar.exitCode, 0);
    QCOMPARE(raw.exitCode, 0);
    const double withSidecar = QJsonDocument::fromJson(sidecar.out).object()["top1"].toDouble();
    const double withRaw = QJsonDocument::fromJson(raw.out).object()["top1"].toDouble();
    QCOMPARE(QJsonDocument::fromJson(sidecar.out).object()["count"].toInt(), 300);
    QVERIFY2(withSidecar > withRaw + 0.1, qPrintable(QString("%1 vs %2").arg(withSidecar).arg(withRaw)));
}

void TestCli::evalWithConfig()
{
    QE_REQUIRE_PATH(std::filesystem::path(kFashionTest.toStdString()));
    const QString config = QString::fromStdString((qe::test::sourceDir() / "resources/configs/mixed_precision.json").string());
    const CliResult r = runCli({"eval", "--model", kDemoModel, "--data", kFashionTest, "--config", config, "--limit", "500",
                                "--calib-count", "128", "--json"});
    QCOMPARE(r.exitCode, 0);
    const QJsonObject m = QJsonDocument::fromJson(r.out).object();
    for (const char* key : {"top1", "top5", "count", "float_top1", "agreement", "size_bytes", "layers"})
        QVERIFY2(m.contains(key), key);
    QCOMPARE(m["count"].toInt(), 500);
    QVERIFY(m["agreement"].toDouble() > 0.9);
    QVERIFY(m["size_bytes"].toDouble() < m["float_size_bytes"].toDouble() / 4);
    const QJsonArray layers = m["layers"].toArray();
    QJsonObject fc2, fc1;
    for (const auto& l : layers) {
        if (l.toObject()["name"] == "/fc2/Gemm")
            fc2 = l.toObject();
        if (l.toObject()["name"] == "/fc1/Gemm")
            fc1 = l.toObject();
    }
    // fc2 is left in float by the configuration: no weight error, 4 bytes per weight.
    QVERIFY(fc2["float"].toBool());
    QVERIFY(fc2["weights"].isNull());
    QCOMPARE(fc2["weight_bytes"].toDouble(), 4.0 * fc2["weight_count"].toDouble());
    // fc1 is 3-bit k-means: 3 bits a weight plus one 8-entry float codebook per output channel.
    QCOMPARE(fc1["weight_bytes"].toDouble(), fc1["weight_count"].toDouble() * 3 / 8 + 128 * 8 * 4);
    QVERIFY(fc1["weights"].toObject()["sqnr_db"].toDouble() > 10);

    // With caches of 3 GB instead of none, the same numbers (the layers' included).
    const CliResult cached = runCli({"eval", "--model", kDemoModel, "--data", kFashionTest, "--config", config, "--limit", "500",
                                     "--calib-count", "128", "--memory-budget", "3G", "--json"});
    QCOMPARE(cached.exitCode, 0);
    const QJsonObject c = QJsonDocument::fromJson(cached.out).object();
    QCOMPARE(c["top1"].toDouble(), m["top1"].toDouble());
    QCOMPARE(c["output_sqnr_db"].toDouble(), m["output_sqnr_db"].toDouble());
    QCOMPARE(c["layers"].toArray(), layers);
}

void TestCli::evalIntegerEngine()
{
    QE_REQUIRE_PATH(std::filesystem::path(kFashionTest.toStdString()));
    const QString config = QString::fromStdString((qe::test::sourceDir() / "resources/configs/w8a8.json").string());
    const CliResult r = runCli({"eval", "--model", kDemoModel, "--data", kFashionTest, "--config", config, "--limit", "300",
                                "--calib-count", "128", "--engine", "int8", "--json"});
    QCOMPARE(r.exitCode, 0);
    const QJsonObject m = QJsonDocument::fromJson(r.out).object();
    for (const char* key : {"engine", "agreement_with_simulation", "ms_per_image", "simulated_top1", "output_within_1_lsb", "integer_layers"})
        QVERIFY2(m.contains(key), key);
    QCOMPARE(m["engine"].toString(), QString("int8"));
    QVERIFY(m["agreement_with_simulation"].toDouble() >= 0.995);
    QVERIFY(m["ms_per_image"].toDouble() > 0);
    QVERIFY(std::abs(m["top1"].toDouble() - m["simulated_top1"].toDouble()) <= 0.01);
    QCOMPARE(m["integer_layers"].toInt(), 6);
    for (const auto& l : m["layers"].toArray()) {
        const QJsonObject layer = l.toObject();
        QVERIFY2(layer["integer"].toBool(), qPrintable(layer["name"].toString()));
        QVERIFY(layer["alone_codes_within_1_lsb_of_simulation"].toDouble() == 1.0 || layer["name"] == "input");
    }
    // The first layer is a 5x5 convolution: ours or oneDNN's, whichever times faster, where both
    // are built in; else the one there is; else the reference kernels.
    const QString kernel = m["layers"].toArray()[1].toObject()["kernel"].toString();
    QVERIFY2(kernel == "fused or onednn, timed" || kernel == "onednn" || kernel == "fused" || kernel == "reference",
             qPrintable(kernel));
}

void TestCli::exportAndReport()
{
    QE_REQUIRE_PATH(std::filesystem::path(kFashionTest.toStdString()));
    QTemporaryDir dir;
    const QString config = QString::fromStdString((qe::test::sourceDir() / "resources/configs/mixed_precision.json").string());
    const CliResult r = runCli({"export", "--model", kDemoModel, "--config", config, "--data", kFashionTest, "--calib-count", "128",
                                "--out", dir.path() + "/q.onnx", "--encodings", dir.path() + "/e.json", "--json"});
    QCOMPARE(r.exitCode, 0);
    const QJsonObject m = QJsonDocument::fromJson(r.out).object();
    QCOMPARE(m["opset"].toInt(), 13);
    // mixed_precision.json keeps fc2 in float (no Q/DQ) and makes fc1 3-bit k-means (float, warned).
    QCOMPARE(m["quantized_activations"].toInt(), 5);
    QCOMPARE(m["warnings"].toArray().size(), 1);
    QVERIFY(m["warnings"].toArray()[0].toString().contains("/fc1/Gemm"));
    QVERIFY(QString::fromUtf8(r.err).contains("warning: layer '/fc1/Gemm'"));
    QVERIFY(QFile::exists(dir.path() + "/q.onnx"));
    QFile encodings(dir.path() + "/e.json");
    QVERIFY(encodings.open(QIODevice::ReadOnly));
    const QJsonArray tensors = QJsonDocument::fromJson(encodings.readAll()).object()["tensors"].toArray();
    // Every quantized tensor, and fc1's k-means weights, which the QDQ model holds in float, with
    // their codebook.
    QCOMPARE(tensors.size(), m["quantized_activations"].toInt() + m["quantized_weights_and_biases"].toInt() + 1);
    int notInModel = 0;
    for (const QJsonValue& t : tensors)
        if (!t.toObject()["in_qdq_model"].toBool()) {
            ++notInModel;
            QCOMPARE(t.toObject()["layer"].toString(), QString("/fc1/Gemm"));
            QCOMPARE(t.toObject()["scheme"].toString(), QString("kmeans"));
            QVERIFY(!t.toObject()["levels"].toArray().isEmpty());
        }
    QCOMPARE(notInModel, 1);

    // The exported file opens as a QDQ model with its own parameters.
    const CliResult back = runCli({"eval", "--model", dir.path() + "/q.onnx", "--data", kFashionTest, "--config", "model",
                                   "--limit", "200", "--engine", "int8", "--json"});
    QCOMPARE(back.exitCode, 0);
    QVERIFY(QJsonDocument::fromJson(back.out).object()["top1"].toDouble() > 0.85);

    const CliResult report = runCli({"report", "--model", kDemoModel, "--config", config, "--data", kFashionTest, "--limit", "300",
                                     "--calib-count", "128", "--engine", "int8", "--out", dir.path() + "/report", "--json"});
    QCOMPARE(report.exitCode, 0);
    for (const char* file : {"report.md", "layer_sqnr.png", "weight_histograms.png", "confusion_matrix.png"})
        QVERIFY2(QFile::exists(dir.path() + "/report/" + file), file);
    QFile md(dir.path() + "/report/report.md");
    QVERIFY(md.open(QIODevice::ReadOnly));
    const QString text = QString::fromUtf8(md.readAll());
    for (const char* fragment : {"/conv1/Conv", "top-1", "integer-only int8 engine", "kmeans 3", "![SQNR per layer](layer_sqnr.png)"})
        QVERIFY2(text.contains(fragment), fragment);
    // Each subcommand documents its options.
    for (const char* command : {"info", "eval", "histogram", "export", "report", "compare"}) {
        const CliResult help = runCli({command, "--help"});
        QCOMPARE(help.exitCode, 0);
        QVERIFY(help.out.startsWith("usage: quantexplorer-cli " + QByteArray(command)));
    }
}

void TestCli::histogramJson()
{
    QE_REQUIRE_PATH(std::filesystem::path(kFashionTest.toStdString()));
    const QString config = QString::fromStdString((qe::test::sourceDir() / "resources/configs/mixed_precision.json").string());
    // A weight needs no images; fc1's are 3-bit k-means per channel: the whole tensor has no
    // common levels (each channel has its own 8), so none are listed.
    const CliResult w = runCli({"histogram", "--model", kDemoModel, "--config", config, "--tensor", "fc1.weight", "--json"});
    QCOMPARE(w.exitCode, 0);
    const QJsonObject wh = QJsonDocument::fromJson(w.out).object();
    QCOMPARE(wh["kind"].toString(), QString("weight"));
    QCOMPARE(wh["levels"].toArray().size(), 0);
    double total = 0;
    for (const auto& c : wh["counts"].toArray())
        total += c.toDouble();
    QCOMPARE(total, 128.0 * 576);
    // An activation: 256 uint8 levels, a clipping range and every calibration method's range.
    const CliResult a = runCli({"histogram", "--model", kDemoModel, "--config", config, "--tensor", "/conv1/Conv", "--data",
                                kFashionTest, "--limit", "200", "--calib-count", "128", "--json"});
    QCOMPARE(a.exitCode, 0);
    const QJsonObject ah = QJsonDocument::fromJson(a.out).object();
    QCOMPARE(ah["levels"].toArray().size(), 256);
    QCOMPARE(ah["clip_range"].toArray().size(), 2);
    QCOMPARE(ah["calibration_ranges"].toObject().size(), 5);
}

void TestCli::sensitivityAndSearch()
{
    QE_REQUIRE_PATH(std::filesystem::path(kFashionTest.toStdString()));
    const QString w8a8 = QString::fromStdString((qe::test::sourceDir() / "resources/configs/w8a8.json").string());
    const CliResult s = runCli({"sensitivity", "--model", kDemoModel, "--data", kFashionTest, "--limit", "200", "--config", w8a8,
                                "--weight-bits", "2,8", "--activation-bits", "8", "--json"});
    QCOMPARE(s.exitCode, 0);
    const QJsonObject sensitivity = QJsonDocument::fromJson(s.out).object();
    QVERIFY(sensitivity["float_top1"].toDouble() > 0.8);
    QVERIFY(sensitivity["base_top1"].toDouble() > 0.8);
    const QJsonArray layers = sensitivity["layers"].toArray();
    QCOMPARE(layers.size(), 6);  // the input and five weight layers
    const QJsonObject conv1 = layers[1].toObject();
    QCOMPARE(conv1["name"].toString(), QString("/conv1/Conv"));
    const QJsonArray points = conv1["only_this"].toArray();
    QCOMPARE(points.size(), 2);
    QCOMPARE(points[0].toObject()["weight_bits"].toInt(), 2);
    QCOMPARE(points[0].toObject()["activation_bits"].toInt(), 8);
    // 2-bit weights are noisier than 8-bit ones.
    QVERIFY(points[0].toObject()["output_sqnr_db"].toDouble() < points[1].toObject()["output_sqnr_db"].toDouble());
    QVERIFY(conv1.contains("all_but_this_top1"));
    QVERIFY(layers[0].toObject()["only_this"].toArray()[0].toObject()["weight_bits"].isNull());  // the input has no weights

    QTemporaryDir dir;
    const QString out = dir.path() + "/mixed.json";
    const CliResult r = runCli({"search", "--model", kDemoModel, "--data", kFashionTest, "--limit", "200", "--config", w8a8,
                                "--weight-bits", "4,8", "--activation-bits", "8", "--search-images", "200",
                                "--max-accuracy-drop", "1", "--out", out, "--json"});
    QCOMPARE(r.exitCode, 0);
    const QJsonObject search = QJsonDocument::fromJson(r.out).object();
    for (const char* key : {"top1", "search_top1", "float_top1", "size_bytes", "base_size_bytes"})
        QVERIFY2(search[key].toDouble() > 0, key);
    QCOMPARE(search["shortfall"].toString(), QString());
    QVERIFY(search["size_bytes"].toDouble() < search["base_size_bytes"].toDouble() * 1.0001);
    QVERIFY(search["search_data"].toString().contains("images 59800-59999"));
    const QJsonArray pareto = search["pareto"].toArray();
    QVERIFY(!pareto.isEmpty());
    for (const QJsonValue& point : pareto)
        QCOMPARE(point.toObject()["layers"].toObject().size(), 6);
    // --out is an ordinary configuration: eval reads it and finds the reported top-1.
    const CliResult e = runCli({"eval", "--model", kDemoModel, "--data", kFashionTest, "--limit", "200", "--config", out, "--json"});
    QCOMPARE(e.exitCode, 0);
    QCOMPARE(QJsonDocument::fromJson(e.out).object()["top1"].toDouble(), search["top1"].toDouble());
    QCOMPARE(QJsonDocument::fromJson(e.out).object()["size_bytes"].toDouble(), search["size_bytes"].toDouble());
}

void TestCli::histogramOfOneChannel()
{
    const std::string config = (qe::test::sourceDir() / "resources/configs/mixed_precision.json").string();
    // fc1's weights are 3-bit k-means per channel: channel 5 has its own 8 levels and range,
    // the ones the core gives for that channel.
    qe::StudySources sources;
    sources.model = kDemoModel.toStdString();
    qe::Study study(sources);
    const qe::TensorHistogram core = study.histogram(study.loadConfig(config), "fc1.weight", 128, {}, 5);
    QCOMPARE(core.channel, 5);
    QCOMPARE(core.levels.size(), std::size_t(8));
    QVERIFY(core.clipRange);

    const CliResult r = runCli({"histogram", "--model", kDemoModel, "--config", QString::fromStdString(config), "--tensor",
                                "fc1.weight", "--channel", "5", "--json"});
    QCOMPARE(r.exitCode, 0);
    const QJsonObject h = QJsonDocument::fromJson(r.out).object();
    QCOMPARE(h["channel"].toInt(), 5);
    QCOMPARE(h["channel_count"].toInt(), core.channelCount);
    const QJsonArray levels = h["levels"].toArray();
    QCOMPARE(levels.size(), qsizetype(core.levels.size()));
    for (qsizetype k = 0; k < levels.size(); ++k)
        QCOMPARE(float(levels[k].toDouble()), core.levels[std::size_t(k)]);
    QCOMPARE(float(h["clip_range"].toArray()[0].toDouble()), core.clipRange->first);
    QCOMPARE(float(h["clip_range"].toArray()[1].toDouble()), core.clipRange->second);
    double total = 0;
    for (const auto& c : h["counts"].toArray())
        total += c.toDouble();
    QCOMPARE(total, 576.0);  // one channel's weights, not the tensor's 128 x 576

    // The whole tensor says so.
    const CliResult all = runCli({"histogram", "--model", kDemoModel, "--config", QString::fromStdString(config), "--tensor",
                                  "fc1.weight", "--json"});
    QVERIFY(QJsonDocument::fromJson(all.out).object()["channel"].isNull());

    // Out of range: exit 2 naming the layer and its channel count.
    const CliResult out = runCli({"histogram", "--model", kDemoModel, "--config", QString::fromStdString(config), "--tensor",
                                  "fc1.weight", "--channel", "128"});
    QCOMPARE(out.exitCode, 2);
    const QString error = QString::fromUtf8(out.err);
    QVERIFY2(error.contains(QStringLiteral("layer '%1'").arg(QString::fromStdString(core.layer))), qPrintable(error));
    QVERIFY2(error.contains("128 output channels (0 to 127): no channel 128"), qPrintable(error));
    QVERIFY(out.out.isEmpty());
}

// --equalization and --bias-correction switch the repairs on over a configuration file; the JSON
// says which ran on which layer, for eval, export and report alike.
void TestCli::repairFlags()
{
    QE_REQUIRE_PATH(std::filesystem::path(kFashionTest.toStdString()));
    const QString config = QString::fromStdString((qe::test::sourceDir() / "resources/configs/w8a8.json").string());
    const QStringList common{"--model", kDemoModel, "--data", kFashionTest, "--config", config, "--calib-count", "128"};
    const CliResult plain = runCli(QStringList{"eval"} + common + QStringList{"--limit", "300", "--json"});
    QCOMPARE(plain.exitCode, 0);
    QVERIFY(QJsonDocument::fromJson(plain.out).object()["repairs"].isNull());

    // --bias-correction without a mode is empirical; it may come last.
    const CliResult r = runCli(QStringList{"eval"} + common + QStringList{"--limit", "300", "--json", "--equalization", "--bias-correction"});
    QVERIFY2(r.exitCode == 0, r.err.constData());
    const QJsonObject m = QJsonDocument::fromJson(r.out).object();
    const QJsonObject repairs = m["repairs"].toObject();
    QCOMPARE(repairs["layers"].toObject()["/conv1/Conv"].toArray(), (QJsonArray{"equalization", "bias_correction"}));
    QCOMPARE(repairs["layers"].toObject()["/fc2/Gemm"].toArray(), (QJsonArray{"equalization", "bias_correction"}));
    const QJsonArray pairs = repairs["equalization"].toArray();
    QCOMPARE(pairs.size(), 3);  // conv1 -> conv2, conv2 -> conv3 (through ReLU and MaxPool), fc1 -> fc2
    QCOMPARE(pairs[0].toObject()["first"].toString(), QString("/conv1/Conv"));
    QCOMPARE(pairs[0].toObject()["between"].toString(), QString("Relu, MaxPool"));
    QCOMPARE(pairs[0].toObject()["scales"].toArray().size(), 16);
    const QJsonArray corrected = repairs["bias_correction"].toArray();
    QCOMPARE(corrected.size(), 5);
    QCOMPARE(corrected[0].toObject()["mode"].toString(), QString("empirical"));
    QCOMPARE(m["float_top1"].toDouble(), QJsonDocument::fromJson(plain.out).object()["float_top1"].toDouble());

    const CliResult analytical = runCli(QStringList{"eval"} + common + QStringList{"--limit", "100", "--bias-correction", "analytical", "--json"});
    QVERIFY2(analytical.exitCode == 0, analytical.err.constData());
    QCOMPARE(QJsonDocument::fromJson(analytical.out).object()["repairs"].toObject()["bias_correction"].toArray()[0].toObject()["mode"].toString(),
             QString("analytical"));

    QTemporaryDir dir;
    const CliResult exported = runCli(QStringList{"export"} + common + QStringList{"--out", dir.path() + "/r.onnx", "--equalization", "--json"});
    QVERIFY2(exported.exitCode == 0, exported.err.constData());
    QCOMPARE(QJsonDocument::fromJson(exported.out).object()["repairs"].toObject()["equalization"].toArray().size(), 3);
    const CliResult report = runCli(QStringList{"report"} + common + QStringList{"--limit", "100", "--out", dir.path() + "/report",
                                                                                 "--bias-correction", "empirical", "--json"});
    QVERIFY2(report.exitCode == 0, report.err.constData());
    QCOMPARE(QJsonDocument::fromJson(report.out).object()["repairs"].toObject()["bias_correction"].toArray().size(), 5);

    for (const char* command : {"eval", "export", "report"})
        QVERIFY(runCli({command, "--help"}).out.contains("--bias-correction [M]"));
    const CliResult bad = runCli(QStringList{"eval"} + common + QStringList{"--bias-correction", "exact"});
    QCOMPARE(bad.exitCode, 2);
    QVERIFY2(bad.err.contains("--bias-correction expects empirical, analytical or none, got 'exact'"), bad.err.constData());
    const CliResult noConfig = runCli({"eval", "--model", kDemoModel, "--data", kFashionTest, "--limit", "10", "--equalization"});
    QCOMPARE(noConfig.exitCode, 2);
    QVERIFY2(noConfig.err.contains("--equalization needs --config"), noConfig.err.constData());
}

// --adaround over a configuration file: the JSON lists each AdaRounded layer with its numbers,
// and report.md says what ran where.
void TestCli::adaRoundFlags()
{
    QE_REQUIRE_PATH(std::filesystem::path(kFashionTest.toStdString()));
    const QString config = QString::fromStdString((qe::test::sourceDir() / "resources/configs/w8a8.json").string());
    const QStringList common{"--model", kDemoModel, "--data", kFashionTest, "--config", config, "--calib-count", "64",
                             "--adaround", "--adaround-iterations", "200", "--adaround-images", "32"};
    const CliResult r = runCli(QStringList{"eval"} + common + QStringList{"--limit", "100", "--json"});
    QVERIFY2(r.exitCode == 0, r.err.constData());
    const QJsonObject repairs = QJsonDocument::fromJson(r.out).object()["repairs"].toObject();
    QCOMPARE(repairs["layers"].toObject()["/conv1/Conv"].toArray(), (QJsonArray{"adaround"}));
    const QJsonArray rounded = repairs["adaround"].toArray();
    QCOMPARE(rounded.size(), 5);  // every weighted layer
    for (const QJsonValue& value : rounded) {
        const QJsonObject layer = value.toObject();
        QCOMPARE(layer["iterations"].toInt(), 200);
        QCOMPARE(layer["images"].toInt(), 32);
        QVERIFY(layer["flipped_fraction"].toDouble() >= 0 && layer["flipped_fraction"].toDouble() <= 1);
        QVERIFY(!layer["flipped_per_channel"].toArray().isEmpty());
        QVERIFY(layer["nearest_error"].toDouble() > 0);
        QVERIFY(layer["adaround_error"].toDouble() > 0);
    }

    QTemporaryDir dir;
    const CliResult report = runCli(QStringList{"report"} + common + QStringList{"--limit", "100", "--out", dir.path() + "/report",
                                                                                 "--equalization", "--json"});
    QVERIFY2(report.exitCode == 0, report.err.constData());
    QFile markdown(dir.path() + "/report/report.md");
    QVERIFY(markdown.open(QIODevice::ReadOnly));
    const QString text = QString::fromUtf8(markdown.readAll());
    QVERIFY2(text.contains("## Repairs"), qPrintable(text));
    QVERIFY2(text.contains("- Cross-layer equalization"), qPrintable(text));
    QVERIFY2(text.contains("- AdaRound on /conv1/Conv (200 iterations, 32 images)"), qPrintable(text));

    QVERIFY(runCli({"export", "--help"}).out.contains("--adaround-iterations N"));
    const CliResult bad = runCli({"eval", "--model", kDemoModel, "--data", kFashionTest, "--config", config, "--adaround",
                                  "--adaround-iterations", "0"});
    QCOMPARE(bad.exitCode, 2);
    QVERIFY2(bad.err.contains("--adaround-iterations expects an integer >= 1, got 0"), bad.err.constData());
}

// `lesson` runs a lesson file and writes its handout; its numbers are those `eval --config`
// reports for the step's configuration on the same images.
// `trace`: one output value step by step, ending in the int8 engine's own code; a position
// outside the layer's output is refused naming the layer and the shape.
void TestCli::traceEndsInTheEnginesCode()
{
    const CliResult r = runCli({"trace", "--model", kDemoModel, "--data", kFashionTest, "--layer", "/fc1/Gemm", "--image", "3",
                                "--position", "0,10", "--json"});
    QVERIFY2(r.exitCode == 0, r.err.constData());
    const nlohmann::json j = nlohmann::json::parse(r.out.toStdString());
    QCOMPARE(j["code"].get<int>(), j["engine_code"].get<int>());
    QCOMPARE(j["terms"].size(), std::size_t(576));  // fc1 reads 64 x 3 x 3 values
    std::int64_t sum = 0;
    for (const auto& term : j["terms"])
        sum += term["product"].get<std::int64_t>();
    QCOMPARE(sum, j["accumulator"].get<std::int64_t>());
    QCOMPARE(j["biased"].get<std::int64_t>(), sum + j["bias_code"].get<std::int64_t>());
    QCOMPARE(j["position"], nlohmann::json({0, 10}));

    const CliResult text = runCli({"trace", "--model", kDemoModel, "--data", kFashionTest, "--layer", "/fc1/Gemm", "--image", "3",
                                   "--position", "0,10"});
    QVERIFY(text.out.contains("(the same)"));
    const CliResult outside = runCli({"trace", "--model", kDemoModel, "--data", kFashionTest, "--layer", "/fc1/Gemm", "--position", "0,999"});
    QCOMPARE(outside.exitCode, 2);
    QVERIFY2(outside.err.contains("layer '/fc1/Gemm': position [0,999] is not in its output, of shape [1,128]"), outside.err.constData());
    // Coordinates are whole numbers read exactly (not through float, which rounds 16777217).
    const CliResult huge = runCli({"trace", "--model", kDemoModel, "--data", kFashionTest, "--layer", "/fc1/Gemm", "--position", "0,16777217"});
    QCOMPARE(huge.exitCode, 2);
    QVERIFY2(huge.err.contains("position [0,16777217] is not in its output"), huge.err.constData());
    for (const char* bad : {"0,2.5", "0,-1", "0,,1", "0, 1"}) {
        const CliResult r = runCli({"trace", "--model", kDemoModel, "--data", kFashionTest, "--layer", "/fc1/Gemm", "--position", bad});
        QCOMPARE(r.exitCode, 2);
        QVERIFY2(r.err.contains("option --position expects comma-separated whole numbers of at least 0"), r.err.constData());
    }
    const CliResult notLayer = runCli({"trace", "--model", kDemoModel, "--data", kFashionTest, "--layer", "/nope"});
    QCOMPARE(notLayer.exitCode, 2);
    QVERIFY(notLayer.err.contains("there is no layer '/nope' to trace"));
}

void TestCli::lessonHandout()
{
    QTemporaryDir dir;
    const QString lesson = QString::fromStdString((qe::test::sourceDir() / "resources/lessons/02_bits_against_error.json").string());
    const CliResult r = runCli({"lesson", "--lesson", lesson, "--data", kFashionTest, "--limit", "300", "--out", dir.path() + "/handout", "--json"});
    QVERIFY2(r.exitCode == 0, r.err.constData());
    const nlohmann::json j = nlohmann::json::parse(r.out.toStdString());
    QCOMPARE(j["steps"].size(), std::size_t(4));
    QFile md(dir.path() + "/handout/handout.md");
    QVERIFY(md.open(QIODevice::ReadOnly));
    const QString handout = QString::fromUtf8(md.readAll());
    for (std::size_t i = 0; i < 4; ++i) {
        const auto& step = j["steps"][i];
        QVERIFY(handout.contains(QString::fromStdString("## Step " + std::to_string(i + 1) + ": " + step["title"].get<std::string>())));
        QVERIFY(handout.contains(QString::fromStdString(step["text"].get<std::string>())));
        QVERIFY2(QFile::exists(dir.path() + QString("/handout/step_%1/layer_sqnr.png").arg(i + 1)), "layer_sqnr.png");
        QVERIFY(QString::fromStdString(step["text"].get<std::string>())
                    .contains(QString::number(step["facts"]["layer.weight_sqnr_db"].get<double>(), 'f', 1) + " dB"));
    }
    QCOMPARE(handout.count("**Question:**"), 2);
    QCOMPARE(handout.count("**Answer:**"), 2);

    // The last step's configuration through eval: the same top-1.
    std::ifstream in(lesson.toStdString());
    nlohmann::json config = nlohmann::json::parse(in)["steps"][3]["config"];
    config["format"] = "quantexplorer-config";
    config["version"] = 1;
    const QString configPath = dir.path() + "/step4.json";
    std::ofstream(configPath.toStdString()) << config.dump();
    const CliResult e = runCli({"eval", "--model", kDemoModel, "--data", kFashionTest, "--limit", "300", "--config", configPath, "--json"});
    QCOMPARE(e.exitCode, 0);
    const double top1 = nlohmann::json::parse(e.out.toStdString())["top1"].get<double>();
    QCOMPARE(j["steps"][3]["facts"]["model.top1"].get<double>(), 100 * top1);

    // A malformed lesson: exit 2, the file, the step and the field named.
    const QString broken = dir.path() + "/broken.json";
    std::ofstream(broken.toStdString()) << R"({"format": "quantexplorer-lesson", "version": 1, "title": "T",
        "steps": [{"title": "A", "text": "x", "model": "fashion_cnn", "view": "nowhere"}]})";
    const CliResult bad = runCli({"lesson", "--lesson", broken, "--data", kFashionTest, "--out", dir.path() + "/bad"});
    QCOMPARE(bad.exitCode, 2);
    QVERIFY2(bad.err.contains("broken.json: step 1 (\"A\"): view: \"nowhere\" is not a view"), bad.err.constData());
    QVERIFY(!QFile::exists(dir.path() + "/bad"));
}

void TestCli::badInput_data()
{
    QTemporaryDir dir;
    const QString garbage = dir.path() + "/garbage.onnx";
    std::ofstream(garbage.toStdString()) << "this is not a model";
    std::ofstream((dir.path() + "/bad_layer.json").toStdString())
        << R"({"format": "quantexplorer-config", "version": 1, "layers": {"conv9": {"float": true}}})";
    std::ofstream((dir.path() + "/empty.json").toStdString()) << R"({"format": "quantexplorer-config", "version": 1})";
    dir.setAutoRemove(false);  // the rows run after this function returns

    QTest::addColumn<QStringList>("args");
    QTest::addColumn<QString>("stderrFragment");
    QTest::newRow("unknown command") << QStringList{"frobnicate"} << "unknown command 'frobnicate'";
    QTest::newRow("unknown option") << QStringList{"info", "--model", kDemoModel, "--colour"} << "unknown option '--colour'";
    QTest::newRow("missing model") << QStringList{"info", "--model", "/nonexistent.onnx"} << "/nonexistent.onnx: cannot open";
    QTest::newRow("garbage model") << QStringList{"info", "--model", garbage} << "garbage.onnx: not a valid ONNX model";
    QTest::newRow("missing --data") << QStringList{"eval", "--model", kDemoModel} << "option --data is required";
    QTest::newRow("bad number") << QStringList{"eval", "--model", kDemoModel, "--data", kFashionTest, "--scale", "x"}
                                << "option --scale expects a number";
    QTest::newRow("missing data") << QStringList{"eval", "--model", kDemoModel, "--data", "/nonexistent/images"}
                                  << "/nonexistent/images: no such file";
    QTest::newRow("config names a missing layer")
        << QStringList{"eval", "--model", kDemoModel, "--data", kFashionTest, "--config", dir.path() + "/bad_layer.json"}
        << "bad_layer.json: layers.conv9";
    QTest::newRow("histogram of an unknown tensor")
        << QStringList{"histogram", "--model", kDemoModel, "--config", dir.path() + "/empty.json", "--tensor", "nope.weight",
                       "--data", kFashionTest, "--limit", "10", "--calib-count", "10"}
        << "no layer, activation or weight named 'nope.weight'";
    QTest::newRow("histogram of a negative channel")
        << QStringList{"histogram", "--model", kDemoModel, "--config", dir.path() + "/empty.json", "--tensor", "fc1.weight",
                       "--channel", "-1"}
        << "option --channel expects a non-negative integer, got '-1'";
    QTest::newRow("channel of an activation")
        << QStringList{"histogram", "--model", kDemoModel, "--config", dir.path() + "/empty.json", "--tensor", "/conv1/Conv",
                       "--channel", "0", "--data", kFashionTest, "--limit", "10", "--calib-count", "10"}
        << "'/conv1/Conv' is the output of layer '/conv1/Conv': a channel picks an output channel of a layer's weights";
    QTest::newRow("unknown engine") << QStringList{"eval", "--model", kDemoModel, "--data", kFashionTest, "--engine", "int4"}
                                    << "--engine: expected 'simulate' or 'int8', got 'int4'";
    QTest::newRow("memory budget that is not a size")
        << QStringList{"eval", "--model", kDemoModel, "--data", kFashionTest, "--memory-budget", "lots"}
        << "--memory-budget: a size in bytes, or with K, M or G (e.g. 3G), got 'lots'";
    QTest::newRow("negative memory budget")
        << QStringList{"sensitivity", "--model", kDemoModel, "--data", kFashionTest, "--memory-budget", "-1G"}
        << "--memory-budget: a size in bytes, or with K, M or G (e.g. 3G), got '-1G'";
    QTest::newRow("int8 without a configuration")
        << QStringList{"eval", "--model", kDemoModel, "--data", kFashionTest, "--engine", "int8"} << "--engine int8 needs --config";
    QTest::newRow("export without --out") << QStringList{"export", "--model", kDemoModel, "--config", "model"} << "option --out is required";
    QTest::newRow("export of a float model with --config model")
        << QStringList{"export", "--model", kDemoModel, "--config", "model", "--out", "/tmp/x.onnx"} << "needs a quantized (QDQ) model";
    QTest::newRow("export to an unwritable place")
        << QStringList{"export", "--model", kDemoModel, "--config", dir.path() + "/empty.json", "--data", kFashionTest, "--calib-count", "16",
                       "--out", "/nonexistent/dir/q.onnx"}
        << "/nonexistent/dir/q.onnx";
    const QStringList sensitivity{"sensitivity", "--model", kDemoModel, "--data", kFashionTest, "--limit", "50",
                                  "--config", dir.path() + "/empty.json", "--calib-count", "16"};
    QTest::newRow("sensitivity of an unknown layer") << sensitivity + QStringList{"--layers", "/conv1/Conv,conv9"}
                                                     << "--layers: the model has no layer 'conv9'";
    QTest::newRow("sensitivity at a width the scheme lacks") << sensitivity + QStringList{"--weight-bits", "1,8"} << "w1";
    QTest::newRow("sensitivity at a width that is no width") << sensitivity + QStringList{"--activation-bits", "8,x"}
                                                             << "option --activation-bits expects comma-separated numbers";
    const QStringList search{"search", "--model", kDemoModel, "--data", kFashionTest, "--limit", "50",
                             "--config", dir.path() + "/empty.json", "--calib-count", "16"};
    QTest::newRow("search without a budget") << search << "give exactly one budget";
    QTest::newRow("search with two budgets") << search + QStringList{"--max-accuracy-drop", "1", "--max-size-bytes", "5000"}
                                             << "give exactly one budget";
    QTest::newRow("search by size in bit operations") << search + QStringList{"--max-size-bytes", "5000", "--cost", "bops"}
                                                      << "--max-size-bytes needs --cost size";
    QTest::newRow("search with an unknown cost") << search + QStringList{"--max-accuracy-drop", "1", "--cost", "latency"}
                                                 << "--cost: expected 'size' or 'bops', got 'latency'";
    QTest::newRow("search at a width out of range") << search + QStringList{"--max-accuracy-drop", "1", "--weight-bits", "40"}
                                                        << "option --weight-bits expects bit widths";
    QTest::newRow("search on the reported images") << search + QStringList{"--max-accuracy-drop", "1", "--search-data", kFashionTest}
                                                   << "is the evaluation data (--data)";
    QTest::newRow("wrong channels") << QStringList{"eval", "--model", kDemoModel, "--data", kFashionTest, "--color", "rgb", "--limit", "2"}
                                    << "channel";
}

// compare: the same images under two configurations; its counts agree with each other and with
// two runs of eval (the top-1 of each configuration).
void TestCli::compareJson()
{
    QE_REQUIRE_PATH(std::filesystem::path(kFashionTest.toStdString()));
    const QString a = QString::fromStdString((qe::test::sourceDir() / "resources/configs/w8a8.json").string());
    const QString b = QString::fromStdString((qe::test::sourceDir() / "resources/configs/mixed_precision.json").string());
    const QStringList common{"--model", kDemoModel, "--data", kFashionTest, "--limit", "300", "--calib-count", "128", "--json"};
    const CliResult r = runCli(QStringList{"compare", "--config", a, "--config-b", b} + common);
    QCOMPARE(r.exitCode, 0);
    const QJsonObject c = QJsonDocument::fromJson(r.out).object();
    const CliResult evalA = runCli(QStringList{"eval", "--config", a} + common);
    const CliResult evalB = runCli(QStringList{"eval", "--config", b} + common);
    QCOMPARE(c["top1_a"].toDouble(), QJsonDocument::fromJson(evalA.out).object()["top1"].toDouble());
    QCOMPARE(c["top1_b"].toDouble(), QJsonDocument::fromJson(evalB.out).object()["top1"].toDouble());
    QCOMPARE(c["count"].toInt(), 300);
    const QJsonArray differing = c["differing"].toArray();
    QCOMPARE(c["differing_count"].toInt(), differing.size());
    int aRight = 0, bRight = 0, bothWrong = 0;
    for (const auto& d : differing) {
        const QJsonObject image = d.toObject();
        QVERIFY(image["prediction_a"].toInt() != image["prediction_b"].toInt());
        aRight += image["prediction_a"] == image["label"];
        bRight += image["prediction_b"] == image["label"];
        bothWrong += image["prediction_a"] != image["label"] && image["prediction_b"] != image["label"];
        QCOMPARE(image["outcome"].toString(), image["prediction_a"] == image["label"]   ? QString("a_right_b_wrong")
                                              : image["prediction_b"] == image["label"] ? QString("b_right_a_wrong")
                                                                                        : QString("both_wrong"));
    }
    QCOMPARE(c["a_right_b_wrong"].toInt(), aRight);
    QCOMPARE(c["b_right_a_wrong"].toInt(), bRight);
    QCOMPARE(c["both_wrong"].toInt(), bothWrong);
    QCOMPARE(bRight - aRight, qRound(c["top1_difference"].toDouble() * 300));
    QVERIFY(c["mcnemar_p"].toDouble() > 0 && c["mcnemar_p"].toDouble() <= 1);
    const QJsonArray layersA = QJsonDocument::fromJson(evalA.out).object()["layers"].toArray();
    QCOMPARE(c["layers"].toArray().size(), layersA.size());
    QCOMPARE(c["layers"].toArray().last().toObject()["sqnr_db_a"].toDouble(),
             layersA.last().toObject()["accumulated"].toObject()["sqnr_db"].toDouble());

    // Bad input names the flag.
    const CliResult missing = runCli(QStringList{"compare", "--config", a} + common);
    QCOMPARE(missing.exitCode, 2);
    QVERIFY2(missing.err.contains("--config-b"), missing.err.constData());
    const CliResult help = runCli({"compare", "--help"});
    QCOMPARE(help.exitCode, 0);
    QVERIFY(help.out.contains("--config-b"));
}

void TestCli::badInput()
{
    QFETCH(QStringList, args);
    QFETCH(QString, stderrFragment);
    const CliResult r = runCli(args);
    QCOMPARE(r.exitCode, 2);
    QVERIFY2(QString::fromUtf8(r.err).contains(stderrFragment), r.err.constData());
    QVERIFY(r.out.isEmpty());
}

QTEST_APPLESS_MAIN(TestCli)
#include "tst_cli.moc"
