// The window's one owner of the configuration (ui/config_document.h), on its own: edits become
// undo steps, undo and redo return to the recorded configurations, the saved state follows the
// file, a fresh start forgets the history, and edits (not a fresh start) are autosaved.

#include "config_document.h"

#include <QSignalSpy>
#include <QTemporaryDir>
#include <QUndoStack>
#include <QtTest>

using namespace qe;

namespace {

QuantConfig withWeightBits(const std::string& layer, int bits)
{
    QuantConfig config;
    config.layers[layer].weights.bits = bits;
    return config;
}

}  // namespace

class TestConfigDocument : public QObject {
    Q_OBJECT
private slots:
    void editsAreUndoSteps();
    void sameConfigurationRecordsNothing();
    void savedStateFollowsTheFile();
    void resetForgetsTheHistory();
    void editsAreAutosaved();
};

void TestConfigDocument::editsAreUndoSteps()
{
    ConfigDocument document;
    QSignalSpy changed(&document, &ConfigDocument::changed);
    const QuantConfig first = withWeightBits("conv", 4), second = withWeightBits("conv", 3);
    document.edit(first, "conv 4 bits");
    document.edit(second, "conv 3 bits");
    QCOMPARE(document.config(), second);
    QCOMPARE(document.undoStack()->count(), 2);
    QCOMPARE(document.lastEditDescription(), QString("conv 3 bits"));
    QCOMPARE(changed.count(), 2);
    QVERIFY(document.isModified());

    document.undoStack()->undo();
    QCOMPARE(document.config(), first);
    document.undoStack()->undo();
    QCOMPARE(document.config(), QuantConfig{});
    QVERIFY(!document.isModified());
    document.undoStack()->redo();
    QCOMPARE(document.config(), first);
    QCOMPARE(changed.count(), 5);  // every move is announced
    QCOMPARE(document.lastEditDescription(), QString("conv 3 bits"));  // undo and redo make no new edit
}

void TestConfigDocument::sameConfigurationRecordsNothing()
{
    ConfigDocument document;
    QSignalSpy changed(&document, &ConfigDocument::changed);
    document.edit(QuantConfig{}, "nothing");
    QCOMPARE(document.undoStack()->count(), 0);
    QCOMPARE(changed.count(), 0);
    QVERIFY(!document.isModified());
}

void TestConfigDocument::savedStateFollowsTheFile()
{
    QTemporaryDir dir;
    const QString path = dir.filePath("edited.quant.json");
    ConfigDocument document;
    QSignalSpy savedState(&document, &ConfigDocument::savedStateChanged);
    document.edit(withWeightBits("conv", 4), "conv 4 bits");
    QVERIFY(document.isModified());
    QVERIFY(document.path().isEmpty());

    document.save(path, "model.onnx");
    QVERIFY(!document.isModified());
    QCOMPARE(document.path(), path);
    QVERIFY(savedState.count() >= 2);  // modified, then saved
    const QuantConfig saved = QuantConfig::load(path.toStdString());
    QCOMPARE(saved.model, std::string("model.onnx"));
    QCOMPARE(saved.resolve("conv").weights.bits, 4);
    QVERIFY(document.config().model.empty());  // the model's name is written, not edited in

    document.undoStack()->undo();  // away from the saved configuration ...
    QVERIFY(document.isModified());
    document.undoStack()->redo();  // ... and back to it
    QVERIFY(!document.isModified());
}

void TestConfigDocument::resetForgetsTheHistory()
{
    ConfigDocument document;
    document.edit(withWeightBits("conv", 4), "conv 4 bits");
    QSignalSpy changed(&document, &ConfigDocument::changed);
    const QuantConfig start = withWeightBits("fc", 6);
    document.reset(start, "/models/start.json", "start: start.json");
    QCOMPARE(document.config(), start);
    QCOMPARE(changed.count(), 1);
    QCOMPARE(document.undoStack()->count(), 0);
    QVERIFY(!document.isModified());
    QCOMPARE(document.path(), QString("/models/start.json"));
    QCOMPARE(document.lastEditDescription(), QString("start: start.json"));
}

void TestConfigDocument::editsAreAutosaved()
{
    QTemporaryDir dir;
    const QString autosave = dir.filePath("autosave/model.json");
    ConfigDocument document;
    document.setAutosavePath(autosave);
    // A fresh start is not written: the previous session's autosave stays there to be restored.
    document.reset(withWeightBits("conv", 6), {}, "start");
    QVERIFY(!QFileInfo::exists(autosave));

    document.edit(withWeightBits("conv", 4), "conv 4 bits");
    QCOMPARE(QuantConfig::load(autosave.toStdString()).resolve("conv").weights.bits, 4);
    document.undoStack()->undo();
    QCOMPARE(QuantConfig::load(autosave.toStdString()).resolve("conv").weights.bits, 6);
}

QTEST_MAIN(TestConfigDocument)
#include "tst_config_document.moc"
