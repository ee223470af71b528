// quantexplorer-cli as scripts use it: JSON on stdout, exit 0 on success and 2 on bad input with
// an error naming the file or option on stderr. Also checks the embedded demo model's accuracy on
// the full Fashion-MNIST test set (the issue asks for at least 90%).

#include "test_support.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include <fstream>

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

void TestCli::badInput_data()
{
    QTemporaryDir dir;
    const QString garbage = dir.path() + "/garbage.onnx";
    std::ofstream(garbage.toStdString()) << "this is not a model";
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
    QTest::newRow("wrong channels") << QStringList{"eval", "--model", kDemoModel, "--data", kFashionTest, "--color", "rgb", "--limit", "2"}
                                    << "channel";
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
