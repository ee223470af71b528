// The first window, as a user meets it: it opens the embedded default without a file dialog,
// lists the model's layers, evaluates the float model in the background and shows the accuracy;
// a model that cannot be loaded gives an error message and leaves the previous session intact.

#include "layer_table_model.h"
#include "main_window.h"
#include "session.h"

#include <QLabel>
#include <QMessageBox>
#include <QSignalSpy>
#include <QTableView>
#include <QTemporaryDir>
#include <QTimer>
#include <QtTest>

#include <filesystem>
#include <fstream>

using namespace qe;

namespace {
const QString kModel = QStringLiteral(QE_SOURCE_DIR "/resources/models/fashion_cnn.onnx");
const QString kImages = QStringLiteral(QE_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz");
}  // namespace

class TestMainWindow : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void opensTheDefault();
    void badModelKeepsTheSession();
};

void TestMainWindow::initTestCase()
{
    if (!std::filesystem::exists(kImages.toStdString()))
        QSKIP("needs Debian's dataset-fashion-mnist");
}

void TestMainWindow::opensTheDefault()
{
    MainWindow window;
    auto* session = window.findChild<Session*>();
    QVERIFY(session);
    QSignalSpy loaded(session, &Session::loaded);
    QSignalSpy evaluated(session, &Session::evaluated);
    window.show();
    window.openSession(kModel, kImages);
    QTRY_COMPARE_WITH_TIMEOUT(evaluated.count(), 1, 60000);
    QCOMPARE(loaded.count(), 1);

    auto* table = window.findChild<QTableView*>();
    QVERIFY(table);
    QCOMPARE(table->model()->rowCount(), int(session->snapshot()->graph->nodes.size()));
    QCOMPARE(table->model()->index(0, LayerTableModel::Name).data().toString(), QString("/conv1/Conv"));
    QCOMPARE(table->model()->index(0, LayerTableModel::OutputShape).data().toString(), QString("[N,16,28,28]"));

    const auto result = evaluated.at(0).at(0).value<ClassificationResult>();
    QCOMPARE(result.count, std::size_t(1000));
    QVERIFY(result.top1() > 0.88);
    bool shown = false;
    for (QLabel* label : window.findChildren<QLabel*>())
        shown = shown || label->text().contains(QString::number(100.0 * result.top1(), 'f', 2) + "%");
    QVERIFY2(shown, "the accuracy is not on screen");
}

void TestMainWindow::badModelKeepsTheSession()
{
    MainWindow window;
    auto* session = window.findChild<Session*>();
    QSignalSpy evaluated(session, &Session::evaluated);
    QSignalSpy failed(session, &Session::failed);
    window.openSession(kModel, kImages);
    QTRY_COMPARE_WITH_TIMEOUT(evaluated.count(), 1, 60000);
    const auto before = session->snapshot();

    QTemporaryDir dir;
    const QString broken = dir.path() + "/broken.onnx";
    std::ofstream(broken.toStdString()) << "not a model";
    // The error dialog is modal: close it as a user would.
    auto closeDialogs = [] {
        for (QWidget* w : QApplication::topLevelWidgets())
            if (auto* box = qobject_cast<QMessageBox*>(w))
                box->accept();
    };
    QTimer closer;
    connect(&closer, &QTimer::timeout, this, closeDialogs);
    closer.start(50);
    window.openSession(broken, kImages);
    QTRY_COMPARE_WITH_TIMEOUT(failed.count(), 1, 30000);
    const QString message = failed.at(0).at(0).toString();
    QVERIFY2(message.contains("broken.onnx"), qPrintable(message));
    QCOMPARE(session->snapshot(), before);  // the loaded model is still there
}

QTEST_MAIN(TestMainWindow)
#include "tst_main_window.moc"
