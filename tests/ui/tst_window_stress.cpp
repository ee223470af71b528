// The window under stress (issue 12): a thousand random edits, undos and redos, with a malformed
// model and a folder of corrupt images opened in the middle and the window closed while a run is
// active. Nothing may crash, the autosave must hold the last configuration, and the last
// evaluation shown must be of the last configuration asked for. Only MainWindow's public API.

#include "window_waits.h"
#include "sanitizer.h"
#include "config_document.h"
#include "main_window.h"
#include "session.h"

#include "engine/graph_preparation.h"
#include "quant/config.h"
#include "quant/layers.h"

#include <QApplication>
#include <QMessageBox>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTimer>
#include <QUndoStack>
#include <QtTest>

#include "dialog_closer.h"

#include <fstream>
#include <random>

using namespace qe;

namespace {

const QString kModel = QStringLiteral(QE_SOURCE_DIR "/resources/models/fashion_cnn.onnx");
const QString kImages = QStringLiteral(QE_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz");
const int kTimeoutMs = scaledTimeout(120000);

}  // namespace

class TestWindowStress : public QObject {
    Q_OBJECT
private slots:
    void initTestCase() { QStandardPaths::setTestModeEnabled(true); }
    void thousandRandomSteps();
    void closingDuringARun();
};

void TestWindowStress::thousandRandomSteps()
{
    if (!QFileInfo::exists(kImages))
        QSKIP("needs Debian's Fashion-MNIST test images");
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString brokenModel = dir.path() + "/broken.onnx";
    std::ofstream(brokenModel.toStdString()) << "not a model";
    const QString corruptImages = dir.path() + "/corrupt";
    QDir().mkpath(corruptImages);
    for (const char* name : {"a.png", "b.jpg", "c.bmp"})
        std::ofstream((corruptImages + "/" + name).toStdString()) << "\x89PNG\r\n\x1a\n cut short";

    std::vector<std::string> layers;
    for (const QuantLayer& layer : findQuantLayers(loadOnnx(kModel.toStdString())))
        layers.push_back(layer.name);
    QVERIFY(!layers.empty());

    MainWindow window;
    DialogCloser closer(20);
    QSignalSpy evaluated(window.session(), &Session::evaluated);
    window.show();
    window.openSession(kModel, kImages);
    QTRY_VERIFY_WITH_TIMEOUT(evaluated.count() >= 1, kTimeoutMs);
    QSignalSpy failed(window.session(), &Session::failed);

    std::mt19937 rng(12);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
    // Under a sanitizer 400 steps (about three minutes there for a thousand): the same mix of
    // edits, undos and redos, the broken files opened at the same points of the run.
    const int steps = qe::test::unlessSanitized(1000, 400);
    for (int step = 0; step < steps; ++step) {
        if (step == steps * 3 / 10)
            window.openSession(brokenModel, kImages);  // in the middle of a run: an error, the session kept
        if (step == steps * 6 / 10)
            window.openImages(corruptImages);
        const int what = pick(10);
        QUndoStack* undo = window.document()->undoStack();
        if (what < 6) {
            QuantConfig config = window.document()->config();
            LayerOverride& layer = config.layers[layers[pick(int(layers.size()))]];
            if (pick(4) == 0)
                layer.keepFloat = !layer.keepFloat;
            else
                layer.weights.bits = 2 + pick(7);
            window.document()->edit(config, "stress edit");
        } else if (what < 8) {
            undo->undo();
        } else {
            undo->redo();
        }
        // Let some runs start and be cancelled, and some finish.
        if (pick(50) == 0)
            QTest::qWait(pick(200));
        else
            QCoreApplication::processEvents();
    }

    QTRY_VERIFY_WITH_TIMEOUT(failed.count() >= 1, kTimeoutMs);
    bool namedModel = false;
    for (const auto& args : failed)
        namedModel = namedModel || args.at(0).toString().contains("broken.onnx");
    QVERIFY2(namedModel, "the malformed model's failure names its file");

    // The last state asked for is the last state shown, and it is autosaved.
    const QuantConfig last = window.document()->config();
    QCOMPARE(window.session()->config(), last);
    QTRY_VERIFY_WITH_TIMEOUT(window.session()->evaluation() && window.session()->evaluation()->config == last, kTimeoutMs);
    QTest::qWait(300);  // nothing stale may arrive after it
    QCOMPARE(window.session()->evaluation()->config, last);
    const QString autosave =
        QStandardPaths::writableLocation(QStandardPaths::AppDataLocation) + "/autosave/fashion_cnn.json";
    QVERIFY2(QFileInfo::exists(autosave), qPrintable(autosave));  // every edit, undo and redo is autosaved
    QCOMPARE(QuantConfig::load(autosave.toStdString()), last);
}

void TestWindowStress::closingDuringARun()
{
    if (!QFileInfo::exists(kImages))
        QSKIP("needs Debian's Fashion-MNIST test images");
    for (int round = 0; round < 3; ++round) {
        auto* window = new MainWindow;
        DialogCloser closer(20);
        QSignalSpy evaluated(window->session(), &Session::evaluated);
        window->show();
        window->openSession(kModel, kImages);
        QTRY_VERIFY_WITH_TIMEOUT(evaluated.count() >= 1, kTimeoutMs);
        QuantConfig config = window->document()->config();
        config.layers["/conv1/Conv"].weights.bits = 3 + round;
        window->document()->edit(config, "edit, then close at once");
        QVERIFY(window->session()->isBusy());
        window->close();
        delete window;  // the running evaluation must be cancelled and joined, not crash
        QTest::qWait(50 * round);
    }
}

QTEST_MAIN(TestWindowStress)
#include "tst_window_stress.moc"
