// Quantization-aware training in the window (issue 15), driven as a user drives it on the demo
// model at W4A8: Tools > Fine-Tune with QAT trains in the background with progress and a live
// chart of the held-out top-1 at each checkpoint; the dialog's numbers are the run's (post-training
// equals the window's own evaluation of the configuration); the fine-tuned model, saved and opened,
// is evaluated by the window at exactly the top-1 training measured; File > Back to Previous Model
// returns to the model and configuration before; Cancel keeps the best checkpoint's weights.

#include "config_document.h"
#include "layer_table_model.h"
#include "main_window.h"
#include "qat_dialog.h"
#include "session.h"
#include "window_waits.h"
#include "core/test_support.h"

#include <QCheckBox>
#include <QLabel>
#include <QLineSeries>
#include <QPushButton>
#include <QSignalSpy>
#include <QSpinBox>
#include <QStandardPaths>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QtTest>

#include <algorithm>
#include <memory>

using namespace qe;

namespace {

const QString kModel = QStringLiteral(QE_SOURCE_DIR "/resources/models/fashion_cnn.onnx");
const QString kImages = QStringLiteral(QE_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz");
const QString kTrainImages = QStringLiteral(QE_FASHION_MNIST_DIR "/train-images-idx3-ubyte.gz");
const int kTimeoutMs = scaledTimeout(400000);

// The demo configuration at 4-bit weights: post-training loses points there, so training has
// something to recover.
QuantConfig w4a8(QuantConfig config)
{
    config.defaultWeights.bits = 4;
    return config;
}

}  // namespace

class TestWindowQat : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void trainsLiveAndOpensTheFineTunedModel();
    void backToThePreviousModel();
    void cancelKeepsTheBestCheckpoint();
    void escapeClosesAndKeepsTheBestCheckpoint();
    void openingAModelStopsTrainingAndWaitsForIt();
    void cleanupTestCase() { window_.reset(); }

private:
    // The dialog set for a run far longer than any test waits for (each stops it), with frequent
    // checkpoints.
    QatDialog* showLongRun()
    {
        QatDialog* dialog = window_->showQatDialog();
        dialog->steps()->setValue(100000);
        dialog->trainImages()->setValue(6000);
        dialog->checkpointEvery()->setValue(10);
        return dialog;
    }

    std::unique_ptr<MainWindow> window_;
    QTemporaryDir dir_;
    QuantConfig trained_;      // the configuration the first run trained
    double ptqTop1_ = 0;       // the window's evaluation of it on the demo model
};

void TestWindowQat::initTestCase()
{
    QStandardPaths::setTestModeEnabled(true);  // autosave and recent files stay out of the user's folders
    if (!QFile::exists(kImages) || !QFile::exists(kTrainImages))
        QSKIP("needs Debian's dataset-fashion-mnist (test and training images)");
    QE_REQUIRE_TRAINING_MODULE();
    QVERIFY(dir_.isValid());
    window_ = std::make_unique<MainWindow>();
    QSignalSpy evaluated(window_->session(), &Session::evaluated);
    window_->show();
    window_->openSession(kModel, kImages);
    QTRY_VERIFY_WITH_TIMEOUT(evaluated.count() >= 1, kTimeoutMs);
    window_->document()->edit(w4a8(window_->document()->config()), "W4A8");
    waitForEvaluation(*window_, kTimeoutMs);
    trained_ = window_->document()->config();
    ptqTop1_ = window_->session()->evaluation()->metrics.top1;
}

void TestWindowQat::trainsLiveAndOpensTheFineTunedModel()
{
    QatDialog* dialog = window_->showQatDialog();
    QVERIFY(dialog->isVisible());
    dialog->steps()->setValue(60);
    dialog->trainImages()->setValue(6000);
    dialog->checkpointEvery()->setValue(20);
    dialog->learnRanges()->setChecked(true);  // LSQ: the configuration comes back with learned ranges
    QSignalSpy progress(window_->session(), &Session::qatProgress);
    QSignalSpy checkpoints(window_->session(), &Session::qatCheckpoint);
    QSignalSpy finished(window_->session(), &Session::qatFinished);
    QVERIFY(dialog->start());
    QVERIFY(window_->session()->isTraining());
    QVERIFY(!dialog->startButton()->isEnabled());
    QVERIFY(dialog->cancelButton()->isEnabled());
    QVERIFY(!dialog->start());  // one run at a time
    QTRY_VERIFY_WITH_TIMEOUT(finished.count() == 1, kTimeoutMs);
    QVERIFY(!window_->session()->isTraining());

    // Progress arrived as steps went, with the steps asked for.
    QVERIFY(!progress.isEmpty());
    QCOMPARE(progress.last().at(2).toInt(), 60);
    const auto result = dialog->result();
    QVERIFY(result && result->graph);
    QCOMPARE(result->steps, 60);
    QVERIFY(!result->cancelled);

    // The chart's held-out points are the run's checkpoints (steps 20, 40, 60), in percent.
    QCOMPARE(checkpoints.count(), 3);
    QCOMPARE(int(result->history.size()), 3);
    QCOMPARE(dialog->top1Series()->count(), 3);
    for (int i = 0; i < 3; ++i) {
        QCOMPARE(dialog->top1Series()->at(i).x(), double(result->history[std::size_t(i)].step));
        QCOMPARE(dialog->top1Series()->at(i).y(), 100.0 * result->history[std::size_t(i)].top1);
    }
    QVERIFY(dialog->lossSeries()->count() >= 1);

    // Post-training is what the window itself measured for this configuration; the float model too.
    QCOMPARE(result->ptqTop1, ptqTop1_);
    QCOMPARE(result->floatTop1, window_->session()->evaluation()->metrics.floatTop1);
    QVERIFY2(dialog->outcome()->text().contains(QString::number(100.0 * result->top1, 'f', 2) + "%"),
             qPrintable(dialog->outcome()->text()));

    // Each layer's SQNR before and after, as the run measured them.
    QTableWidget* layers = dialog->layerTable();
    QCOMPARE(layers->rowCount(), int(result->layersBefore.size()));
    QVERIFY(layers->rowCount() > 0);
    for (int row = 0; row < layers->rowCount(); ++row) {
        QCOMPARE(layers->item(row, 0)->text(), QString::fromStdString(result->layersBefore[std::size_t(row)].name));
        QCOMPARE(layers->item(row, 2)->data(Qt::UserRole).toDouble(), result->layersAfter[std::size_t(row)].accumulated.sqnrDb);
    }

    // Open it: the window evaluates the fine-tuned model with the configuration it was trained
    // for, at the very top-1 training measured.
    QVERIFY(dialog->openButton()->isEnabled());
    const QString path = dir_.filePath("fashion_qat.onnx");
    QVERIFY(dialog->saveResult(path));
    QVERIFY(QFile::exists(path));
    QVERIFY(QFile::exists(dir_.filePath("fashion_qat.preprocess.json")));
    QTRY_COMPARE_WITH_TIMEOUT(window_->session()->snapshot()->modelPath, path, kTimeoutMs);
    waitForEvaluation(*window_, kTimeoutMs);
    QCOMPARE(window_->document()->config().model, std::string("fashion_qat.onnx"));
    QCOMPARE(window_->document()->config().defaultWeights.bits, 4);
    QCOMPARE(window_->session()->evaluation()->metrics.top1, result->top1);
    QVERIFY(window_->hasPreviousModel());
    // Each layer's learned range is in the configuration and in the table's calibration column.
    const QuantConfig& opened = window_->document()->config();
    const auto& quantLayers = window_->session()->snapshot()->layers;
    QVERIFY(quantLayers.size() >= 5);
    for (std::size_t row = 0; row < quantLayers.size(); ++row) {
        const LayerQuantConfig resolved = opened.resolve(quantLayers[row].name);
        QVERIFY2(resolved.calibration.fixedRange, quantLayers[row].name.c_str());
        QVERIFY(window_->layerModel()->index(int(row), LayerTableModel::Calibration).data().toString().startsWith("fixed ["));
    }
}

void TestWindowQat::backToThePreviousModel()
{
    QVERIFY(window_->backToPreviousModel());
    QTRY_COMPARE_WITH_TIMEOUT(window_->session()->snapshot()->modelPath, kModel, kTimeoutMs);
    waitForEvaluation(*window_, kTimeoutMs);
    QVERIFY(window_->document()->config() == trained_);
    QCOMPARE(window_->session()->evaluation()->metrics.top1, ptqTop1_);
    QVERIFY(!window_->hasPreviousModel());
    QVERIFY(!window_->backToPreviousModel());
}

void TestWindowQat::cancelKeepsTheBestCheckpoint()
{
    QatDialog* dialog = showLongRun();
    QSignalSpy checkpoints(window_->session(), &Session::qatCheckpoint);
    QSignalSpy finished(window_->session(), &Session::qatFinished);
    QVERIFY(dialog->start());
    QTRY_VERIFY_WITH_TIMEOUT(checkpoints.count() >= 2, kTimeoutMs);
    dialog->cancelButton()->click();
    QTRY_VERIFY_WITH_TIMEOUT(finished.count() == 1, kTimeoutMs);
    const auto result = dialog->result();
    QVERIFY(result && result->graph);
    QVERIFY(result->cancelled);
    QVERIFY(result->steps < 100000);
    QVERIFY(dialog->outcome()->text().contains("Cancelled"));
    double best = 0;
    for (const QatCheckpoint& checkpoint : result->history)
        best = std::max(best, checkpoint.top1);
    QCOMPARE(result->top1, best);
    QVERIFY(dialog->startButton()->isEnabled());
    QVERIFY(dialog->openButton()->isEnabled());
    // The window's own configuration was not touched.
    QVERIFY(window_->document()->config() == trained_);
}

void TestWindowQat::escapeClosesAndKeepsTheBestCheckpoint()
{
    QatDialog* dialog = showLongRun();
    QSignalSpy checkpoints(window_->session(), &Session::qatCheckpoint);
    QSignalSpy finished(window_->session(), &Session::qatFinished);
    QVERIFY(dialog->start());
    QTRY_VERIFY_WITH_TIMEOUT(checkpoints.count() >= 1, kTimeoutMs);
    QTest::keyClick(dialog, Qt::Key_Escape);  // closing the dialog cancels: the result still arrives
    QVERIFY(!dialog->isVisible());
    QTRY_VERIFY_WITH_TIMEOUT(finished.count() == 1, kTimeoutMs);
    QVERIFY(!window_->session()->isTraining());
    const auto result = dialog->result();
    QVERIFY(result && result->graph && result->cancelled);
    QVERIFY(window_->showQatDialog() == dialog);  // reopened, it shows that result
    QVERIFY(dialog->outcome()->text().contains("Cancelled"));
    QVERIFY(dialog->openButton()->isEnabled());
}

void TestWindowQat::openingAModelStopsTrainingAndWaitsForIt()
{
    QatDialog* dialog = showLongRun();
    const auto lastResult = dialog->result();
    QSignalSpy checkpoints(window_->session(), &Session::qatCheckpoint);
    QSignalSpy finished(window_->session(), &Session::qatFinished);
    QSignalSpy failed(window_->session(), &Session::qatFailed);
    QSignalSpy loaded(window_->session(), &Session::loaded);
    QVERIFY(dialog->start());
    QTRY_VERIFY_WITH_TIMEOUT(checkpoints.count() >= 1, kTimeoutMs);

    // Another model (here the same file again): training stops, its run is dropped, and nothing
    // can be started on the model that is going away.
    window_->openSession(kModel, kImages);
    QVERIFY(window_->session()->isLoading());
    QVERIFY(!window_->session()->isTraining());
    QCOMPARE(failed.count(), 1);
    QVERIFY(failed.first().first().toString().contains("another model"));
    QVERIFY(!dialog->start());
    QVERIFY2(dialog->outcome()->text().contains("being opened"), qPrintable(dialog->outcome()->text()));
    QVERIFY(!window_->session()->startSearch(window_->document()->config(), SearchOptions{}));
    QVERIFY(!window_->session()->startSensitivitySweep(window_->document()->config()));

    QTRY_VERIFY_WITH_TIMEOUT(loaded.count() == 1, kTimeoutMs);
    QVERIFY(!window_->session()->isLoading());
    QCOMPARE(finished.count(), 0);  // the abandoned run delivers nothing
    // A model opened the ordinary way leaves nothing to go back to.
    QVERIFY(!window_->hasPreviousModel());
    // Once it has loaded, training starts again.
    dialog->steps()->setValue(2);
    dialog->checkpointEvery()->setValue(0);
    QVERIFY(dialog->start());
    QTRY_VERIFY_WITH_TIMEOUT(finished.count() == 1, kTimeoutMs);
    QVERIFY(dialog->result() && dialog->result() != lastResult);
}

QTEST_MAIN(TestWindowQat)
#include "tst_window_qat.moc"
