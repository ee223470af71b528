// Help > Lessons in the real window (offscreen): every built-in lesson runs start to end, each
// step shows its layer and view, the panel's numbers are the core's for the evaluation shown (and
// follow the student's own edits), questions are checked, and a malformed lesson file is refused
// naming the file, the step and the field.

#include "window_waits.h"
#include "sanitizer.h"

#include "lesson/lesson.h"
#include "integer_trace_view.h"
#include "lesson_panel.h"
#include "playground_view.h"

#include <QAbstractAxis>
#include <QAction>
#include <QChart>
#include <QComboBox>
#include <QLabel>
#include <QLineEdit>
#include <QMouseEvent>
#include <QSpinBox>
#include <QTableWidget>
#include <QTextBrowser>
#include <QMenuBar>
#include <QPushButton>
#include <QSignalSpy>
#include <QTabWidget>
#include <QTableView>
#include <QTemporaryDir>
#include <QUndoStack>
#include <QtTest>

#include <filesystem>
#include <fstream>

using namespace qe;

namespace {

const QString kFashion = QStringLiteral(QE_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz");
const QString kExamples = QStringLiteral(QE_SOURCE_DIR "/resources/models");
const QString kLessons = QStringLiteral(QE_SOURCE_DIR "/resources/lessons");
const int kTimeoutMs = scaledTimeout(120000);
// The window's images: its default, or 200 under a sanitizer (tests/sanitizer.h), where every lesson
// step still runs the same code on fewer images.
const int kWindowImages = test::unlessSanitized(static_cast<int>(Session::kEvaluationImages), 200);

// What the panel should show for the step on the evaluation shown, from the core (`views`: the
// playground's and the traced value's numbers, computed by the core on its own).
QString expectedText(const Lesson& lesson, int step, const StudyResult& result, const LessonViewFacts& views = {},
                     const std::string& selectedLayer = {})
{
    const LessonStep& s = lesson.steps[static_cast<std::size_t>(step)];
    QString text = QString::fromStdString(renderLessonText(s.text, result, s.layer.empty() ? selectedLayer : s.layer, views));
    if (step == 0 && !lesson.summary.empty())
        text = QString::fromStdString(lesson.summary) + "\n\n" + text;
    return text;
}

// The window on the demo CNN and Fashion-MNIST, with the built-in lessons, once evaluated.
void openDemoModel(MainWindow& window)
{
    window.setExamplesFolder(kExamples);
    window.setLessonsFolder(kLessons);
    window.setEvaluationImages(kWindowImages);
    window.show();
    QSignalSpy evaluated(window.session(), &Session::evaluated);
    window.openSession(kExamples + "/fashion_cnn.onnx", kFashion);
    QTRY_VERIFY_WITH_TIMEOUT(evaluated.count() >= 1, kTimeoutMs);
}

// A study of its own on the files the window opens (openDemoModel), evaluated on as many images as
// the window: what the Playground and Integer arithmetic views' numbers are checked against.
StudySources demoStudySources()
{
    return StudySources{.model = (kExamples + "/fashion_cnn.onnx").toStdString(), .data = kFashion.toStdString(),
                        .evaluationImages = static_cast<std::size_t>(kWindowImages)};
}

// The built-in lesson of that file name, by its place in the lessons panel's list (file order).
int lessonIndex(const std::string& fileName)
{
    const std::vector<Lesson> lessons = loadLessons(kLessons.toStdString(), kExamples.toStdString());
    for (std::size_t i = 0; i < lessons.size(); ++i)
        if (lessons[i].path.filename() == fileName)
            return static_cast<int>(i);
    return -1;
}

int visibleTabs(const MainWindow& window)
{
    int visible = 0;
    for (int i = 0; i < window.tabs()->count(); ++i)
        visible += window.tabs()->isTabVisible(i);
    return visible;
}

}  // namespace

// Steps through the lesson the panel has started, by Next, checking each step as it is shown: its
// layer and view, its text equal to the core's rendering of the evaluation shown (with the
// playground's and the traced value's numbers, computed by the core on its own: traces by
// `traceStudy`, a study of the demo model), and its question answered right and wrong.
void stepThroughLesson(MainWindow& window, LessonPanel* panel, Study& traceStudy)
{
    const Lesson& lesson = *panel->lesson();
    std::optional<PlaygroundSettings> playground;
    LessonTrace trace;
    std::string layer;
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
        // The teaching views' numbers, from the core: the playground as the lesson left it,
        // the step's layer traced as the step asks.
        LessonViewFacts views;
        playground = s.playground ? s.playground : playground;
        if (playground) {
            views = playgroundFacts(quantizePlayground(*playground));
            QVERIFY(window.playground()->settings() == *playground);
        }
        trace = s.trace.value_or(trace);
        layer = s.layer.empty() ? layer : s.layer;
        if (s.view == "integer")
            views.merge(integerTraceFacts(traceStudy.traceIntegerOutput(result->config, layer, trace.image, trace.position)));
        QTRY_COMPARE_WITH_TIMEOUT(panel->shownText(), expectedText(lesson, step, *result, views, layer), kTimeoutMs);
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
            const LessonAnswerCheck right = checkLessonAnswer(*s.question, "", *result, s.layer, views);
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
    void playgroundFollowsTypedAndDraggedValues();
    void integerTraceViewShowsTheEnginesArithmetic();
    void mobileNetLessonOpensItsModelAndImages();
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

    // The trace the Integer arithmetic view should show, from a study of its own on the same files.
    Study study(demoStudySources());
    for (int l = 0; l < panel->lessonBox()->count() && !QTest::currentTestFailed(); ++l) {
        panel->startLesson(l);
        stepThroughLesson(window, panel, study);
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
    panel->startLesson(lessonIndex("02_bits_against_error.json"));
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
    panel->startLesson(lessonIndex("02_bits_against_error.json"));
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
    panel->startLesson(lessonIndex("02_bits_against_error.json"));
    waitForEvaluation(window, kTimeoutMs);
    const qreal normal = window.layerTable()->font().pointSizeF();
    QCOMPARE(visibleTabs(window), window.tabs()->count());

    QAction* action = window.findChild<QAction*>("presentationAction");
    QVERIFY(action && action->isCheckable());
    action->trigger();
    QVERIFY(window.presentationMode());
    QVERIFY(window.layerTable()->font().pointSizeF() >= 1.4 * normal);
    QCOMPARE(visibleTabs(window), 1);
    QVERIFY(!window.errorChart()->isVisible());  // the step's view takes its width
    QCOMPARE(lessonViews()[static_cast<std::size_t>(window.tabs()->currentIndex())], panel->lesson()->steps[0].view);
    // The charts follow the window's font when they are painted.
    window.weightHistogram()->grab();
    for (QAbstractAxis* axis : window.weightHistogram()->chart()->axes())
        QCOMPARE(axis->labelsFont().pointSizeF(), window.font().pointSizeF());

    // Readable on a projector at 1280x720: with the lessons panel, the window fits there whichever
    // view a step shows.
    for (const std::string& view : lessonViews()) {
        LessonStep step;
        step.title = "view " + view;
        step.view = view;
        window.applyLessonStep(step, "sizes");
        QCoreApplication::processEvents();
        const QSize needed = window.minimumSizeHint().expandedTo(window.minimumSize());
        qInfo("presentation, view %s: the window needs %dx%d", view.c_str(), needed.width(), needed.height());
        QVERIFY2(needed.width() <= 1280 && needed.height() <= 720, view.c_str());
    }

    action->trigger();
    QVERIFY(!window.presentationMode());
    QCOMPARE(window.layerTable()->font().pointSizeF(), normal);
    QCOMPARE(visibleTabs(window), window.tabs()->count());
    QVERIFY(window.errorChart()->isVisible());
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

// Lesson 1's playground: values typed in or dragged on the number line are quantized by the core,
// and the table shows the core's codes and errors; a bad value is refused in words.
void TestWindowLessons::playgroundFollowsTypedAndDraggedValues()
{
    MainWindow window;
    window.show();
    PlaygroundView* view = window.playground();
    window.showView(view);
    QVERIFY(QTest::qWaitForWindowExposed(&window));

    view->valuesEdit()->setText("-1, 0.25, 0.3, 2");
    emit view->valuesEdit()->editingFinished();
    view->bitsBox()->setValue(2);
    const PlaygroundSettings typed = view->settings();
    QCOMPARE(typed.values, (std::vector<float>{-1.f, 0.25f, 0.3f, 2.f}));
    QCOMPARE(typed.bits, 2);
    const Playground expected = quantizePlayground(typed);
    QCOMPARE(view->table()->rowCount(), 4);
    for (int i = 0; i < 4; ++i) {
        QCOMPARE(view->table()->item(i, 1)->text().toInt(), expected.values[std::size_t(i)].code);
        QCOMPARE(view->table()->item(i, 2)->text().toDouble(), std::round(expected.values[std::size_t(i)].dequantized * 1e4) / 1e4);
    }
    QVERIFY(view->summary()->text().contains(QString::number(*expected.scale, 'f', 5)));
    QCOMPARE(window.lessonViewFacts().at("playground.levels"), 4.0);

    // Drag the value 2 down to about 1: the range shrinks, the codes follow.
    NumberLine* line = view->numberLine();
    const QPoint from(int(std::lround(line->xOf(2.0))), line->valueY());
    const QPoint to(int(std::lround(line->xOf(1.0))), line->valueY());
    QTest::mousePress(line, Qt::LeftButton, {}, from);
    QMouseEvent move(QEvent::MouseMove, to, line->mapToGlobal(to), Qt::NoButton, Qt::LeftButton, Qt::NoModifier);
    QApplication::sendEvent(line, &move);
    QTest::mouseRelease(line, Qt::LeftButton, {}, to);
    const float dragged = view->settings().values[3];
    QVERIFY2(std::abs(dragged - 1.f) < 0.1f, qPrintable(QString::number(dragged)));
    QCOMPARE(view->playground()->rangeMax, dragged);
    QCOMPARE(window.lessonViewFacts().at("playground.max_error"), quantizePlayground(view->settings()).maxAbsError);

    view->valuesEdit()->setText("1, two, 3");
    emit view->valuesEdit()->editingFinished();
    QVERIFY2(view->errorLabel()->text().contains("\"two\" is not a number"), qPrintable(view->errorLabel()->text()));
    QCOMPARE(view->settings().values[3], dragged);  // refused: the values shown stay
}

// The Integer arithmetic view shows the core's trace of the selected layer's value, which ends in
// the int8 engine's own code; another element traces again.
void TestWindowLessons::integerTraceViewShowsTheEnginesArithmetic()
{
    MainWindow window;
    openDemoModel(window);
    if (QTest::currentTestFailed())
        return;
    IntegerTraceView* view = window.integerTrace();
    window.selectLayer(window.layerRow("/conv2/Conv"));
    window.showView(view);
    QTRY_VERIFY_WITH_TIMEOUT(view->trace() && view->trace()->layer == "/conv2/Conv", kTimeoutMs);
    QCOMPARE(view->coordinates().size(), std::size_t(3));  // channel, y, x
    view->coordinates()[0]->setValue(10);
    view->coordinates()[1]->setValue(7);
    view->coordinates()[2]->setValue(7);
    const std::vector<std::int64_t> position{0, 10, 7, 7};
    QTRY_VERIFY_WITH_TIMEOUT(view->trace()->position == position, kTimeoutMs);

    Study study(demoStudySources());
    const IntegerTrace expected = study.traceIntegerOutput(window.session()->evaluation()->config, "/conv2/Conv", 0, position);
    const IntegerTrace& shown = *view->trace();
    QCOMPARE(shown.accumulator, expected.accumulator);
    QCOMPARE(shown.biasCode, expected.biasCode);
    QCOMPARE(shown.multiplier, expected.multiplier);
    QCOMPARE(shown.rightShift, expected.rightShift);
    QCOMPARE(shown.code, expected.code);
    QCOMPARE(shown.engineCode, shown.code);
    QCOMPARE(view->terms()->rowCount(), int(expected.terms.size()));
    const QString steps = view->steps()->toPlainText();
    for (std::int64_t n : {expected.accumulator, std::int64_t(expected.multiplier), expected.rounded, std::int64_t(expected.engineCode)})
        QVERIFY2(steps.contains(QString::number(n)), qPrintable(QString::number(n) + " not in\n" + steps));
    QVERIFY(steps.contains(QString::fromUtf8("\u2714")));
    QCOMPARE(window.lessonViewFacts().at("trace.engine_code"), double(expected.engineCode));

    // A layer that stays in float cannot be traced: said, not shown.
    window.selectLayer(window.layerRow("input"));
    QTRY_VERIFY_WITH_TIMEOUT(!view->trace(), kTimeoutMs);
}

// The MobileNet lesson (resources/lessons/mobilenet) from a folder a teacher made with the model
// and its ImageNet images: Open... loads it, its first step opens that model on those images, and
// every step shows the core's numbers.
void TestWindowLessons::mobileNetLessonOpensItsModelAndImages()
{
    const QString shared = QStringLiteral(QE_SHARED_DIR);
    const QString model = shared + "/models/mobilenet_v1_0.25_128_float.onnx";
    const QString images = shared + "/data/imagenet_val_227_300";
    if (!QFileInfo::exists(model) || !QFileInfo::exists(images))
        QSKIP("needs ../shared (MobileNetV1 0.25 and the ImageNet images)");
    QTemporaryDir dir;
    const std::filesystem::path kit = dir.path().toStdString();
    for (const char* file : {"04_mobilenet_per_tensor.json", "mobilenet_v1_0.25_128_float.preprocess.json"})
        std::filesystem::copy_file(kLessons.toStdString() + "/mobilenet/" + file, kit / file);
    std::filesystem::copy_file(model.toStdString(), kit / "mobilenet_v1_0.25_128_float.onnx");
    std::filesystem::copy(images.toStdString(), kit / "imagenet_val_227_300", std::filesystem::copy_options::recursive);

    MainWindow window;
    openDemoModel(window);
    if (QTest::currentTestFailed())
        return;
    LessonPanel* panel = window.showLessonPanel();
    QVERIFY2(panel->openLessonFile(dir.filePath("04_mobilenet_per_tensor.json")), qPrintable(panel->errorLabel()->text()));
    // The 300 images, or as many as the window evaluates under a sanitizer.
    QTRY_VERIFY_WITH_TIMEOUT(window.summary() && window.summary()->data == QString("imagenet_val_227_300"), kTimeoutMs);
    QCOMPARE(window.summary()->images, std::size_t(std::min(300, kWindowImages)));
    QVERIFY(window.session()->snapshot()->layers.size() > 28);  // MobileNet's layers, not the demo CNN's
    QCOMPARE(window.summary()->labelColumn, QString("label_1001"));
    Study traces(demoStudySources());
    stepThroughLesson(window, panel, traces);
}

QTEST_MAIN(TestWindowLessons)
#include "tst_window_lessons.moc"
