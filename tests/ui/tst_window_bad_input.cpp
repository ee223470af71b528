// The window on bad or doubtful input (issue 12, the window's side; tests/core/tst_bad_input
// checks the core's messages through the CLI). Each bad file opened the ways a user opens it
// shows an error naming the file and what was expected, and the window stays usable with the
// configuration it had (edited and unsaved). A scripted run (--screenshot) never waits for a
// dialog: a model without a preprocessing sidecar opens with the CLI's defaults and says so on
// stderr, and an error goes to stderr with exit code 2. A calibration on the evaluation images,
// which the study warns of while it runs, reaches the window's banner and its summary.

#include "config_document.h"
#include "main_window.h"
#include "session.h"
#include "window_waits.h"

#include <QLabel>
#include <QProcess>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QtTest>

#include "dialog_closer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>

using namespace qe;

namespace {

namespace fs = std::filesystem;

const QString kModel = QStringLiteral(QE_SOURCE_DIR "/resources/models/fashion_cnn.onnx");
const QString kImages = QStringLiteral(QE_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz");
const QString kLabels = QStringLiteral(QE_FASHION_MNIST_DIR "/t10k-labels-idx1-ubyte.gz");
const QString kGui = QStringLiteral(QE_BINARY_DIR "/app/quantexplorer");
const int kTimeoutMs = scaledTimeout(120000);

void writeBytes(const QString& path, const std::string& bytes)
{
    std::ofstream(path.toStdString(), std::ios::binary) << bytes;
}

std::string readBytes(const QString& path)
{
    std::ifstream in(path.toStdString(), std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string bigEndian32(std::uint32_t v)
{
    return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
}

}  // namespace

class TestWindowBadInput : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void cleanupTestCase() { window_.reset(); }
    void showsAClearErrorAndStaysUsable_data();
    void showsAClearErrorAndStaysUsable();
    void scriptedRunNeverWaits_data();
    void scriptedRunNeverWaits();
    void calibrationOnTheEvaluationImagesIsWarned();

private:
    QString path(const QString& name) const { return dir_.filePath(name); }
    QTemporaryDir dir_;
    std::unique_ptr<MainWindow> window_;  // one window for every bad file, as a user meets them in turn
};

void TestWindowBadInput::initTestCase()
{
    QStandardPaths::setTestModeEnabled(true);  // autosave and recent files stay out of the user's folders
    if (!QFileInfo::exists(kImages))
        QSKIP("needs Debian's dataset-fashion-mnist");
    QVERIFY(dir_.isValid());
    const std::string demo = readBytes(kModel);
    QVERIFY(demo.size() > 1000);

    writeBytes(path("truncated.onnx"), demo.substr(0, demo.size() / 3));
    writeBytes(path("notes.txt"), "not a model\n");
    writeBytes(path("short-images-idx3-ubyte"),
               bigEndian32(0x803) + bigEndian32(100) + bigEndian32(28) + bigEndian32(28) + std::string(28 * 28 * 3, '\0'));
    writeBytes(path("short.bin"), std::string(3073 * 2 - 7, '\1'));
    QVERIFY(QDir(dir_.path()).mkdir("corrupt_images"));
    writeBytes(path("corrupt_images/a.png"), "\x89PNG\r\n\x1a\n truncated");
    writeBytes(path("corrupt_images/labels.csv"), "file,label\na.png,1\n");
    writeBytes(path("cut_short.json"), "{\"format\": \"quantexplorer-config\", \"version\": 1, \"default\": {");
    QVERIFY(QDir(dir_.path()).mkdir("sidecar"));
    QVERIFY(QFile::copy(kModel, path("sidecar/model.onnx")));
    writeBytes(path("sidecar/model.preprocess.json"), R"({"format": "quantexplorer-preprocess", "version": 1, "scale": "big"})");

    // The window every bad file meets: the default, with an edit nobody saved.
    window_ = std::make_unique<MainWindow>();
    QSignalSpy evaluated(window_->session(), &Session::evaluated);
    window_->show();
    window_->openSession(kModel, kImages);
    QTRY_VERIFY_WITH_TIMEOUT(evaluated.count() >= 1, kTimeoutMs);
    QuantConfig edited = window_->document()->config();
    edited.defaultWeights.bits = 5;
    window_->document()->edit(edited, "weights to 5 bits");
    waitForEvaluationOf(*window_, edited, kTimeoutMs);
    QVERIFY(window_->document()->isModified());
}

void TestWindowBadInput::showsAClearErrorAndStaysUsable_data()
{
    QTest::addColumn<QString>("file");
    QTest::addColumn<QStringList>("expected");  // what the error says: the file, and what was wrong or expected

    QTest::newRow("corrupt ONNX") << path("truncated.onnx") << QStringList{"truncated.onnx: not a valid ONNX model"};
    QTest::newRow("not a model") << path("notes.txt")
                                 << QStringList{"notes.txt: expected an ONNX model (.onnx), a configuration (.json), a folder of images"};
    QTest::newRow("truncated idx") << path("short-images-idx3-ubyte")
                                   << QStringList{"short-images-idx3-ubyte: truncated: the header promises 100 x 28 x 28"};
    QTest::newRow("truncated CIFAR") << path("short.bin") << QStringList{"short.bin: size 6139 bytes"};
    QTest::newRow("unreadable image in a folder") << path("corrupt_images")
                                                  << QStringList{"a.png: cannot decode the image", "its header is missing"};
    QTest::newRow("broken configuration") << path("cut_short.json") << QStringList{"cut_short.json: not valid JSON"};
    QTest::newRow("broken sidecar") << path("sidecar/model.onnx")
                                    << QStringList{"model.preprocess.json", "\"scale\" must be a number"};
}

void TestWindowBadInput::showsAClearErrorAndStaysUsable()
{
    QFETCH(QString, file);
    QFETCH(QStringList, expected);
    if (!window_)
        QSKIP("no window (see initTestCase)");
    MainWindow& window = *window_;
    const QuantConfig before = window.document()->config();
    const auto snapshot = window.session()->snapshot();
    QSignalSpy evaluated(window.session(), &Session::evaluated);

    // Opened as a user opens it (the File menu, drag and drop and recent files all come here).
    // "Save first?" (the edit is unsaved) is answered as the closer answers: go on.
    DialogCloser closer;
    window.openPath(file);
    auto said = [&] {
        for (const QString& text : closer.texts)
            if (std::all_of(expected.begin(), expected.end(), [&](const QString& e) { return text.contains(e); }))
                return true;
        return false;
    };
    QTRY_VERIFY2_WITH_TIMEOUT(said(), qPrintable(closer.texts.join("\n---\n")), kTimeoutMs);
    QTRY_VERIFY_WITH_TIMEOUT(!window.session()->isBusy(), kTimeoutMs);

    // Nothing lost: the model, its images and the edited configuration, still unsaved.
    QCOMPARE(window.session()->snapshot(), snapshot);
    QVERIFY(window.document()->config() == before);
    QVERIFY(window.document()->isModified());
    QCOMPARE(evaluated.count(), 0);

    // And usable: the next edit is evaluated.
    QuantConfig next = before;
    next.defaultWeights.bits = before.defaultWeights.bits == 5 ? 6 : 5;
    window.document()->edit(next, "another edit");
    waitForEvaluationOf(window, next, kTimeoutMs);
}

void TestWindowBadInput::scriptedRunNeverWaits_data()
{
    QTest::addColumn<QString>("model");
    QTest::addColumn<int>("exitCode");
    QTest::addColumn<QString>("stderrFragment");

    QVERIFY(QDir(dir_.path()).mkpath("no_sidecar"));
    QFile::copy(kModel, path("no_sidecar/fashion_cnn.onnx"));
    QTest::newRow("model without a sidecar: the CLI's defaults, said on stderr")
        << path("no_sidecar/fashion_cnn.onnx") << 0 << "fashion_cnn.onnx has no preprocessing sidecar: it opens with the defaults the CLI uses";
    QTest::newRow("broken model: the error on stderr, exit 2") << path("truncated.onnx") << 2
                                                                << "quantexplorer: error: " + path("truncated.onnx") + ": not a valid ONNX model";
    QTest::newRow("broken sidecar: the error on stderr, exit 2") << path("sidecar/model.onnx") << 2 << "\"scale\" must be a number";
}

void TestWindowBadInput::scriptedRunNeverWaits()
{
    QFETCH(QString, model);
    QFETCH(int, exitCode);
    QFETCH(QString, stderrFragment);
    QProcess gui;
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert("QT_QPA_PLATFORM", "offscreen");
    env.insert("XDG_DATA_HOME", dir_.filePath("xdg"));  // autosave and settings stay in the temporary folder
    env.insert("XDG_CONFIG_HOME", dir_.filePath("xdg"));
    gui.setProcessEnvironment(env);
    const QString shot = dir_.filePath("shot.png");
    gui.start(kGui, {"--screenshot", shot, "--model", model, "--data", kImages});
    // A dialog waiting for a user would hang here until the timeout.
    const bool finished = gui.waitForFinished(kTimeoutMs);
    if (!finished) {
        gui.kill();
        gui.waitForFinished();
    }
    const QString err = QString::fromLocal8Bit(gui.readAllStandardError());
    QVERIFY2(finished, qPrintable("the scripted run waited (for a dialog?); stderr: " + err));
    QVERIFY2(gui.exitStatus() == QProcess::NormalExit, qPrintable(err));
    QVERIFY2(gui.exitCode() == exitCode, qPrintable(QStringLiteral("exit %1, stderr: %2").arg(gui.exitCode()).arg(err)));
    QVERIFY2(err.contains(stderrFragment), qPrintable(err));
    QCOMPARE(QFileInfo::exists(shot + ".json"), exitCode == 0);
    QFile::remove(shot + ".json");
}

void TestWindowBadInput::calibrationOnTheEvaluationImagesIsWarned()
{
    // Test images alone in a folder: no training split beside them to calibrate on, so the study
    // calibrates on the evaluation images, and warns (from its worker thread) while it runs.
    QTemporaryDir alone;
    const QString images = alone.filePath(QFileInfo(kImages).fileName());
    QVERIFY(QFile::copy(kImages, images));
    QVERIFY(QFile::copy(kLabels, alone.filePath(QFileInfo(kLabels).fileName())));
    MainWindow window;
    QSignalSpy evaluated(window.session(), &Session::evaluated);
    window.show();
    window.openSession(kModel, images);
    QTRY_VERIFY_WITH_TIMEOUT(evaluated.count() >= 1, kTimeoutMs);
    QTRY_VERIFY(window.dataWarnings()->isVisible());
    QVERIFY2(window.dataWarnings()->text().contains("calibrating on the evaluation images"), qPrintable(window.dataWarnings()->text()));
    const auto summary = window.summary();
    QVERIFY(summary);
    QCOMPARE(summary->studyWarnings.size(), 1);
    QVERIFY(summary->studyWarnings[0].contains("no separate calibration set found beside " + images));
    QVERIFY(summary->warnings.isEmpty());  // the images fit the model

    // With the training split beside them, no warning.
    MainWindow fits;
    QSignalSpy fitsEvaluated(fits.session(), &Session::evaluated);
    fits.show();
    fits.openSession(kModel, kImages);
    QTRY_VERIFY_WITH_TIMEOUT(fitsEvaluated.count() >= 1, kTimeoutMs);
    QVERIFY(fits.summary()->studyWarnings.isEmpty());
    QVERIFY(!fits.dataWarnings()->isVisible());
}

QTEST_MAIN(TestWindowBadInput)
#include "tst_window_bad_input.moc"
