// The CLI and the window run the same study (core/study): for the same model, images and
// configuration, `quantexplorer-cli eval --json` and the window's session report identical
// numbers, to the last bit: accuracy, agreement, size, output SQNR and every layer's errors. A QDQ
// model opens the same way in both: as its float graph with its own quantization, which the window
// starts from and the CLI names "--config model". The int8 engine, run from both, agrees too.

#include "window_waits.h"
#include "session.h"

#include "test_support.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QtTest>

#include <cmath>

using namespace qe;

namespace {

const int kTimeoutMs = scaledTimeout(120000);
const QString kDemoModel = QString::fromStdString((qe::test::sourceDir() / "resources/models/fashion_cnn.onnx").string());
const QString kFashionTest = QStringLiteral(QE_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz");

QJsonObject runCli(const QStringList& args)
{
    QProcess process;
    process.start(QString::fromStdString((qe::test::binaryDir() / "app" / "quantexplorer-cli").string()), args);
    process.waitForFinished(600000);
    [&] { QVERIFY2(process.exitCode() == 0, process.readAllStandardError().constData()); }();
    return QJsonDocument::fromJson(process.readAllStandardOutput()).object();
}

// JSON writes an exact SQNR as null; the session keeps +inf.
double sqnr(const QJsonValue& v) { return v.isNull() ? std::numeric_limits<double>::infinity() : v.toDouble(); }

// Opens `model` on `data` in a session and evaluates `config` (the model's own quantization when
// empty); returns the published evaluation.
std::shared_ptr<const EvaluationSnapshot> evaluateInSession(Session& session, const QString& model, const QString& data,
                                                            const QString& configPath)
{
    QSignalSpy loaded(&session, &Session::loaded), evaluated(&session, &Session::evaluated), failed(&session, &Session::failed);
    session.open(model, data);
    [&] { QTRY_VERIFY_WITH_TIMEOUT(loaded.count() + failed.count() >= 1, kTimeoutMs); }();
    [&] { QVERIFY2(failed.isEmpty(), failed.isEmpty() ? "" : qPrintable(failed.at(0).at(0).toString())); }();
    if (!failed.isEmpty() || loaded.isEmpty())
        return {};
    const auto snapshot = session.snapshot();
    QuantConfig config;
    if (configPath.isEmpty()) {
        [&] { QVERIFY(snapshot->modelConfig.has_value()); }();
        if (!snapshot->modelConfig)
            return {};
        config = *snapshot->modelConfig;
    } else {
        config = QuantConfig::load(configPath.toStdString(), layerNames(snapshot->layers));
    }
    session.setConfig(config);
    [&] { QTRY_VERIFY_WITH_TIMEOUT(evaluated.count() >= 1 && session.evaluation()->config == config, kTimeoutMs); }();
    return session.evaluation();
}

void compareWithCli(const EvaluationSnapshot& e, const QJsonObject& cli)
{
    const ModelMetrics& m = e.metrics;
    QCOMPARE(cli["count"].toInteger(), qint64(m.images));
    QCOMPARE(cli["top1"].toDouble(), m.top1);
    QCOMPARE(cli["top5"].toDouble(), m.top5);
    QCOMPARE(cli["float_top1"].toDouble(), m.floatTop1);
    QCOMPARE(cli["agreement"].toDouble(), m.agreement);
    QCOMPARE(cli["size_bytes"].toDouble(), m.sizeBytes);
    QCOMPARE(cli["bits_per_weight"].toDouble(), m.bitsPerWeight);
    QCOMPARE(sqnr(cli["output_sqnr_db"]), m.outputSqnrDb);
    const QJsonArray layers = cli["layers"].toArray();
    QCOMPARE(qsizetype(layers.size()), qsizetype(m.layers.size()));
    for (qsizetype i = 0; i < layers.size(); ++i) {
        const QJsonObject l = layers[i].toObject();
        const LayerMetrics& lm = m.layers[std::size_t(i)];
        QCOMPARE(l["name"].toString().toStdString(), lm.name);
        QCOMPARE(sqnr(l["accumulated"].toObject()["sqnr_db"]), lm.accumulated.sqnrDb);
        QCOMPARE(sqnr(l["isolated"].toObject()["sqnr_db"]), lm.isolated.sqnrDb);
        QCOMPARE(l["clipped_fraction"].toDouble(), lm.clippedFraction);
        QCOMPARE(l["weight_bytes"].toDouble(), lm.weightBytes);
    }
}

}  // namespace

class TestOneStudy : public QObject {
    Q_OBJECT
private slots:
    void demoModelWithAConfigurationFile();
    void exportedQdqModelWithItsOwnQuantization();
    void sharedQdqModelWithItsOwnQuantization();
};

void TestOneStudy::demoModelWithAConfigurationFile()
{
    QE_REQUIRE_PATH(std::filesystem::path(kFashionTest.toStdString()));
    // Mixed precision: k-means, per-channel, a float layer; calibrated on the training split.
    const QString config = QString::fromStdString((qe::test::sourceDir() / "resources/configs/mixed_precision.json").string());
    Session session;
    const auto evaluation = evaluateInSession(session, kDemoModel, kFashionTest, config);
    QVERIFY(evaluation);
    QCOMPARE(evaluation->metrics.images, std::size_t(Session::kEvaluationImages));
    compareWithCli(*evaluation, runCli({"eval", "--model", kDemoModel, "--data", kFashionTest, "--config", config, "--limit",
                                        QString::number(Session::kEvaluationImages), "--json"}));
}

void TestOneStudy::exportedQdqModelWithItsOwnQuantization()
{
    QE_REQUIRE_PATH(std::filesystem::path(kFashionTest.toStdString()));
    QTemporaryDir dir;
    const QString qdq = dir.path() + "/q.onnx";
    const QString config = QString::fromStdString((qe::test::sourceDir() / "resources/configs/w8a8.json").string());
    runCli({"export", "--model", kDemoModel, "--config", config, "--data", kFashionTest, "--out", qdq, "--json"});
    Session session;
    const auto evaluation = evaluateInSession(session, qdq, kFashionTest, QString());
    QVERIFY(evaluation);
    const QJsonObject cli = runCli({"eval", "--model", qdq, "--data", kFashionTest, "--config", "model", "--limit",
                                    QString::number(Session::kEvaluationImages), "--json"});
    compareWithCli(*evaluation, cli);

    // The int8 engine, from the window and from the CLI, on the same plan.
    QSignalSpy exported(&session, &Session::exported);
    QVERIFY(session.runIntegerEngine());
    QTRY_VERIFY_WITH_TIMEOUT(exported.count() == 1, kTimeoutMs);
    const auto result = exported.at(0).at(0).value<std::shared_ptr<const ExportResult>>();
    QVERIFY(result->integer);
    const QJsonObject int8 = runCli({"eval", "--model", qdq, "--data", kFashionTest, "--config", "model", "--limit",
                                     QString::number(Session::kEvaluationImages), "--engine", "int8", "--json"});
    QCOMPARE(int8["top1"].toDouble(), result->integer->top1);
    QCOMPARE(int8["agreement_with_simulation"].toDouble(), result->integer->agreementWithSimulation);
    QCOMPARE(int8["output_within_1_lsb"].toDouble(), result->integer->outputWithinOneLsb);
}

void TestOneStudy::sharedQdqModelWithItsOwnQuantization()
{
    const auto model = qe::test::sharedDir() / "models/resnet8_cifar10_qdq_int8.onnx";
    const auto data = qe::test::sharedDir() / "data/cifar10_mlperf_tiny_200/test_200.bin";
    QE_REQUIRE_PATH(model);
    QE_REQUIRE_PATH(data);
    Session session;
    const auto evaluation = evaluateInSession(session, QString::fromStdString(model.string()), QString::fromStdString(data.string()), QString());
    QVERIFY(evaluation);
    QCOMPARE(evaluation->metrics.images, std::size_t(200));
    compareWithCli(*evaluation, runCli({"eval", "--model", QString::fromStdString(model.string()), "--data",
                                        QString::fromStdString(data.string()), "--config", "model", "--limit",
                                        QString::number(Session::kEvaluationImages), "--json"}));
}

QTEST_GUILESS_MAIN(TestOneStudy)
#include "tst_one_study.moc"
