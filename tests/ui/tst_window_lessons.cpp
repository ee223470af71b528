// Help > Lessons in the real window (offscreen): every built-in lesson runs start to end, each
// step shows its layer and view, the panel's numbers are the core's for the evaluation shown (and
// follow the student's own edits), questions are checked, and a malformed lesson file is refused
// naming the file, the step and the field.

#include "window_waits.h"

#include "lesson/lesson.h"
#include "lesson_panel.h"

#include <QAbstractAxis>
#include <QAction>
#include <QChart>
#include <QComboBox>
#include <QLabel>
#include <QLineEdit>
#include <QMenuBar>
#include <QPushButton>
#include <QSignalSpy>
#include <QTabWidget>
#include <QTableView>
#include <QTemporaryDir>
#include <QUndoStack>
#include <QtTest>

#include <fstream>

using namespace qe;

namespace {

const QString kFashion = QStringLiteral(QE_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz");
const QString kExamples = QStringLiteral(QE_SOURCE_DIR "/resources/models");
const QString kLessons = QStringLiteral(QE_SOURCE_DIR "/resources/lessons");
const int kTimeoutMs = scaledTimeout(120000);

// What the panel should show for the step on the evaluation shown, from the core.
QString expectedText(const Lesson& lesson, int step, const StudyResult& result)
{
    const LessonStep& s = lesson.steps[static_cast<std::size_t>(step)];
    QString text = QString::fromStdString(renderLessonText(s.text, result, s.layer));
    if (step == 0 && !lesson.summary.empty())
        text = QString::fromStdString(lesson.summary) + "\n\n" + text;
    return text;
}

// The window on the demo CNN and Fashion-MNIST, with the built-in lessons, once evaluated.
void openDemoModel(MainWindow& window)
{
    window.setExamplesFolder(kExamples);
    window.setLessonsFolder(kLessons);
    window.show();
    QSignalSpy evaluated(window.session(), &Session::evaluated);
    window.openSession(kExamples + "/fashion_cnn.onnx", kFashion);
    QTRY_VERIFY_WITH_TIMEOUT(evaluated.count() >= 1, kTimeoutMs);
}

int visibleTabs(const MainWindow& window)
{
    int visible = 0;
    for (int i = 0; i < window.tabs()->count(); ++i)
        visible += window.tabs()->isTabVisible(i);
    return visible;
}

}  // namespace

class TestWindowLessons : public QObject {
    Q_OBJECT
private slots:
    void init();
    void viewsAreTheWindowsTabs();
    void builtInLessonsRunStartToEnd();
    void numbersFollowTheStudentsEdits();
    void handoutHasTheNumbersShown();
    void presentationModeEnlargesAndShowsTheStepsView();
    void malformedLessonIsRefusedByName();
};

void TestWindowLessons::init()
{
    if (!QFileInfo::exists(kFashion))
        QSKIP("needs Debian's dataset-fashion-mnist");
}

// A lesson's "view" names the window's tabs in their order.
void TestWindowLessons::viewsAreTheWindowsTabs()
{
    MainWindow window;
    const std::vector<std::string>& views = lessonViews();
    QCOMPARE(window.tabs()->count(), static_cast<int>(views.size()));
    for (int i = 0; i < window.tabs()->count(); ++i)
        QVERIFY2(window.tabs()->tabText(i).toLower().remove('&').contains(QString::fromStdString(views[static_cast<std::size_t>(i)])),
                 qPrintable(window.tabs()->tabText(i)));
}

void TestWindowLessons::builtInLessonsRunStartToEnd()
{
    MainWindow window;
    openDemoModel(window);
    if (QTest::currentTestFailed())
        return;

    QAction* lessons = window.menuBar()->findChild<QAction*>("lessonsAction");
    QVERIFY(lessons);
    lessons->trigger();
    auto* panel = window.findChild<LessonPanel*>();
    QVERIFY(panel && panel->isVisible());
    QVERIFY2(panel->errorLabel()->isHidden(), qPrintable(panel->errorLabel()->text()));
    const std::vector<Lesson> expected = loadLessons(kLessons.toStdString(), kExamples.toStdString());
    QCOMPARE(panel->lessonBox()->count(), static_cast<int>(expected.size()));

    for (int l = 0; l < panel->lessonBox()->count(); ++l) {
        panel->startLesson(l);
        const Lesson& lesson = *panel->lesson();
        for (int step = 0; step < static_cast<int>(lesson.steps.size()); ++step) {
            if (step > 0) {
                QVERIFY(panel->nextButton()->isEnabled());
                panel->nextButton()->click();
            }
            QCOMPARE(panel->step(), step);
            const LessonStep& s = lesson.steps[static_cast<std::size_t>(step)];
            if (s.config)
                waitForEvaluationOf(window, *s.config, kTimeoutMs);
            const auto result = window.session()->evaluation();
            QCOMPARE(panel->shownText(), expectedText(lesson, step, *result));
            QVERIFY2(!panel->shownText().contains("n/a"), qPrintable(panel->shownText()));
            if (!s.layer.empty())
                QCOMPARE(window.selectedLayer(), window.layerRow(s.layer));
            if (!s.view.empty())
                QCOMPARE(lessonViews()[static_cast<std::size_t>(window.tabs()->currentIndex())], s.view);
            // The weight SQNR the text prints is the evaluation's, with one decimal.
            for (const LayerMetrics& m : result->metrics.layers)
                if (m.name == s.layer && m.weights && s.text.find("{layer.weight_sqnr_db}") != std::string::npos)
                    QVERIFY2(panel->shownText().contains(QString::number(m.weights->sqnrDb, 'f', 1) + " dB"), qPrintable(panel->shownText()));
            if (s.question) {
                QVERIFY(panel->answerEdit()->isVisible());
                const LessonAnswerCheck right = checkLessonAnswer(*s.question, "", *result, s.layer);
                panel->answerEdit()->setText(QString::fromStdString(right.expected));
                panel->checkButton()->click();
                QVERIFY2(panel->feedback()->text().startsWith(QString::fromUtf8("\u2714")), qPrintable(panel->feedback()->text()));
                panel->answerEdit()->setText("not the answer");
                panel->checkButton()->click();
                QVERIFY2(panel->feedback()->text().contains("Not quite"), qPrintable(panel->feedback()->text()));
            } else {
                QVERIFY(!panel->answerEdit()->isVisible());
            }
        }
        QVERIFY(!panel->nextButton()->isEnabled());
    }
}

// Between steps the student may change anything: the text shows the numbers of what is on the
// screen, and the step's configuration was an edit that Undo takes back.
void TestWindowLessons::numbersFollowTheStudentsEdits()
{
    MainWindow window;
    openDemoModel(window);
    if (QTest::currentTestFailed())
        return;
    const QuantConfig before = window.document()->config();
    LessonPanel* panel = window.showLessonPanel();
    panel->startLesson(0);
    const Lesson& lesson = *panel->lesson();
    QVERIFY(lesson.steps[0].config);
    waitForEvaluationOf(window, *lesson.steps[0].config, kTimeoutMs);
    const QString atEight = panel->shownText();

    QuantConfig five = *lesson.steps[0].config;
    five.defaultWeights.bits = 5;
    window.document()->edit(five, "student: 5-bit weights");
    waitForEvaluationOf(window, five, kTimeoutMs);
    QCOMPARE(panel->shownText(), expectedText(lesson, 0, *window.session()->evaluation()));
    QVERIFY(panel->shownText() != atEight);
    QVERIFY(panel->shownText().contains("quantized to 5 bits"));

    window.document()->undoStack()->undo();  // the student's edit
    window.document()->undoStack()->undo();  // the lesson's step
    QVERIFY(window.document()->config() == before);
}

// Handout...: the lesson run in the background on the images in use; its first step's text is the
// one the panel showed for that step.
void TestWindowLessons::handoutHasTheNumbersShown()
{
    MainWindow window;
    openDemoModel(window);
    if (QTest::currentTestFailed())
        return;
    LessonPanel* panel = window.showLessonPanel();
    panel->startLesson(0);
    const Lesson& lesson = *panel->lesson();
    waitForEvaluationOf(window, *lesson.steps[0].config, kTimeoutMs);
    const QString shown = QString::fromStdString(renderLessonText(lesson.steps[0].text, *window.session()->evaluation(), lesson.steps[0].layer));
    QVERIFY(panel->shownText().endsWith(shown));

    QTemporaryDir dir;
    QSignalSpy written(panel, &LessonPanel::handoutWritten);
    QVERIFY(panel->writeHandout(dir.path()));
    QVERIFY(!panel->writeHandout(dir.path()));  // one at a time
    QTRY_VERIFY_WITH_TIMEOUT(written.count() == 1, kTimeoutMs);
    QFile md(dir.path() + "/handout.md");
    QVERIFY(md.open(QIODevice::ReadOnly));
    const QString handout = QString::fromUtf8(md.readAll());
    QVERIFY2(handout.contains(shown), qPrintable(handout.left(2000) + "\n--- expected ---\n" + shown));
    QVERIFY(QFile::exists(dir.path() + "/step_1/layer_sqnr.png"));
    QVERIFY(panel->handoutStatus()->text().contains("handout.md"));
}

// View > Presentation Mode: larger fonts in the table and the charts, only the lesson step's view,
// everything back when it is turned off.
void TestWindowLessons::presentationModeEnlargesAndShowsTheStepsView()
{
    MainWindow window;
    openDemoModel(window);
    if (QTest::currentTestFailed())
        return;
    LessonPanel* panel = window.showLessonPanel();
    panel->startLesson(0);
    waitForEvaluation(window, kTimeoutMs);
    const qreal normal = window.layerTable()->font().pointSizeF();
    QCOMPARE(visibleTabs(window), window.tabs()->count());

    QAction* action = window.findChild<QAction*>("presentationAction");
    QVERIFY(action && action->isCheckable());
    action->trigger();
    QVERIFY(window.presentationMode());
    QVERIFY(window.layerTable()->font().pointSizeF() >= 1.4 * normal);
    QCOMPARE(visibleTabs(window), 1);
    QCOMPARE(lessonViews()[static_cast<std::size_t>(window.tabs()->currentIndex())], panel->lesson()->steps[0].view);
    // The charts follow the window's font when they are painted.
    window.weightHistogram()->grab();
    for (QAbstractAxis* axis : window.weightHistogram()->chart()->axes())
        QCOMPARE(axis->labelsFont().pointSizeF(), window.font().pointSizeF());

    action->trigger();
    QVERIFY(!window.presentationMode());
    QCOMPARE(window.layerTable()->font().pointSizeF(), normal);
    QCOMPARE(visibleTabs(window), window.tabs()->count());
}

void TestWindowLessons::malformedLessonIsRefusedByName()
{
    MainWindow window;
    window.setExamplesFolder(kExamples);
    window.setLessonsFolder(kLessons);
    LessonPanel* panel = window.showLessonPanel();
    const int listed = panel->lessonBox()->count();
    QTemporaryDir dir;
    const QString path = dir.path() + "/mine.json";
    std::ofstream(path.toStdString()) << R"({"format": "quantexplorer-lesson", "version": 1, "title": "Mine", "steps": [
        {"title": "One", "text": "fine"}, {"title": "Two", "text": "{layer.sqnr}"}]})";
    QVERIFY(!panel->openLessonFile(path));
    QVERIFY(!panel->errorLabel()->isHidden());
    QVERIFY2(panel->errorLabel()->text().contains("mine.json: step 2 (\"Two\"): text: {layer.sqnr} is not a fact"),
             qPrintable(panel->errorLabel()->text()));
    QCOMPARE(panel->lessonBox()->count(), listed);
}

QTEST_MAIN(TestWindowLessons)
#include "tst_window_lessons.moc"
