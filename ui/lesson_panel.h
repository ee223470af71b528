#pragma once
// Help > Lessons: a dock beside the views that runs a lesson (core/lesson/lesson.h) step by step.
// Each step is shown by the window (MainWindow::applyLessonStep: model, configuration, layer,
// view); the panel shows the step's text with the live numbers of the latest evaluation, filled
// in again whenever the session evaluates, and checks the step's question against them. The
// student may change anything between steps; Next shows the next step as written.

#include "lesson/lesson.h"

#include <QDockWidget>

#include <vector>

class QComboBox;
class QLabel;
class QLineEdit;
class QPushButton;
class QTextBrowser;

namespace qe {

class MainWindow;

class LessonPanel : public QDockWidget {
    Q_OBJECT
public:
    explicit LessonPanel(MainWindow* window);

    // Reads the built-in lessons again (the window's lessons folder); an error names the file.
    void reloadLessons();
    // Adds a lesson file from elsewhere to the list and starts it; false (with the error shown)
    // when it is malformed.
    bool openLessonFile(const QString& path);
    // The lesson run start to end in the background on the images in use, written to `dir` as a
    // handout (core/lesson's writeLessonHandout: handout.md and each step's report); false when
    // no lesson is running or a handout is being written. handoutWritten() or handoutFailed()
    // follow.
    bool writeHandout(const QString& dir);
    // Starts lesson `index` of the list at its first step.
    void startLesson(int index);
    void goToStep(int step);  // 0-based; shown by the window

    const Lesson* lesson() const;
    int step() const { return step_; }
    // What the panel shows, for the tests: the step's text with its numbers, and the feedback
    // on the last answer checked.
    QString shownText() const;
    QComboBox* lessonBox() const { return lessonBox_; }
    QPushButton* nextButton() const { return next_; }
    QPushButton* backButton() const { return back_; }
    QLineEdit* answerEdit() const { return answer_; }
    QPushButton* checkButton() const { return check_; }
    QLabel* feedback() const { return feedback_; }
    QLabel* errorLabel() const { return error_; }
    QLabel* handoutStatus() const { return handoutStatus_; }

signals:
    void handoutWritten(const QString& path);
    void handoutFailed(const QString& message);

private:
    void refresh();  // the step's text and controls, from the latest evaluation
    void checkAnswer();
    void showError(const QString& message);

    MainWindow* window_;
    std::vector<Lesson> lessons_;
    int current_ = -1, step_ = 0;
    QComboBox* lessonBox_;
    QLabel* title_;
    QLabel* position_;
    QLabel* highlight_;
    QTextBrowser* text_;
    QLabel* prompt_;
    QLineEdit* answer_;
    QPushButton* check_;
    QLabel* feedback_;
    QLabel* error_;
    QPushButton* back_;
    QPushButton* next_;
    QPushButton* handout_;
    QLabel* handoutStatus_;
    bool writingHandout_ = false;
};

}  // namespace qe
