#include "lesson_panel.h"

#include "background_job.h"
#include "main_window.h"
#include "session.h"

#include "common/error.h"

#include <QComboBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QTextBrowser>
#include <QThreadPool>
#include <QVBoxLayout>

namespace qe {

LessonPanel::LessonPanel(MainWindow* window) : QDockWidget(tr("Lessons"), window), window_(window)
{
    setObjectName("lessonPanel");
    auto* body = new QWidget(this);
    auto* layout = new QVBoxLayout(body);

    auto* chooser = new QHBoxLayout;
    lessonBox_ = new QComboBox(body);
    lessonBox_->setObjectName("lessonBox");
    lessonBox_->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
    lessonBox_->setMinimumContentsLength(10);
    auto* openFile = new QPushButton(tr("Open..."), body);
    openFile->setToolTip(tr("Open a lesson file of your own (resources/lessons/README.md describes the format)"));
    chooser->addWidget(lessonBox_, 1);
    chooser->addWidget(openFile);
    layout->addLayout(chooser);

    error_ = new QLabel(body);
    error_->setWordWrap(true);
    error_->setStyleSheet("color: #b00020;");
    error_->hide();
    layout->addWidget(error_);

    title_ = new QLabel(body);
    title_->setWordWrap(true);
    title_->setStyleSheet("font-weight: bold; font-size: 120%;");
    position_ = new QLabel(body);
    position_->setWordWrap(true);
    highlight_ = new QLabel(body);
    highlight_->setWordWrap(true);
    highlight_->setStyleSheet("background: #fff3c4; padding: 4px;");
    text_ = new QTextBrowser(body);
    text_->setObjectName("lessonText");
    layout->addWidget(title_);
    layout->addWidget(position_);
    layout->addWidget(highlight_);
    layout->addWidget(text_, 1);

    prompt_ = new QLabel(body);
    prompt_->setWordWrap(true);
    auto* answerRow = new QHBoxLayout;
    answer_ = new QLineEdit(body);
    answer_->setPlaceholderText(tr("your answer"));
    check_ = new QPushButton(tr("Check"), body);
    answerRow->addWidget(answer_, 1);
    answerRow->addWidget(check_);
    feedback_ = new QLabel(body);
    feedback_->setWordWrap(true);
    layout->addWidget(prompt_);
    layout->addLayout(answerRow);
    layout->addWidget(feedback_);

    auto* navigation = new QHBoxLayout;
    back_ = new QPushButton(tr("< Back"), body);
    next_ = new QPushButton(tr("Next >"), body);
    navigation->addWidget(back_);
    navigation->addStretch(1);
    navigation->addWidget(next_);
    layout->addLayout(navigation);
    auto* handoutRow = new QHBoxLayout;
    handout_ = new QPushButton(tr("Handout..."), body);
    handout_->setToolTip(tr("Run the whole lesson on the images in use and write it down: each step's text with its numbers, "
                            "the answers, and the step's charts (handout.md in a folder you choose)"));
    handoutStatus_ = new QLabel(body);
    handoutStatus_->setWordWrap(true);
    handoutRow->addWidget(handout_);
    handoutRow->addWidget(handoutStatus_, 1);
    layout->addLayout(handoutRow);
    setWidget(body);
    setMinimumWidth(300);

    connect(lessonBox_, &QComboBox::activated, this, &LessonPanel::startLesson);
    connect(openFile, &QPushButton::clicked, this, [this] {
        const QString path = QFileDialog::getOpenFileName(this, tr("Open Lesson"), window_->lessonsFolder(), tr("Lessons (*.json)"));
        if (!path.isEmpty())
            openLessonFile(path);
    });
    connect(back_, &QPushButton::clicked, this, [this] { goToStep(step_ - 1); });
    connect(next_, &QPushButton::clicked, this, [this] { goToStep(step_ + 1); });
    connect(check_, &QPushButton::clicked, this, &LessonPanel::checkAnswer);
    connect(handout_, &QPushButton::clicked, this, [this] {
        const QString dir = QFileDialog::getExistingDirectory(this, tr("Write the Handout into"));
        if (!dir.isEmpty())
            writeHandout(dir);
    });
    connect(answer_, &QLineEdit::returnPressed, this, &LessonPanel::checkAnswer);
    // The numbers are the latest evaluation's: filled in again whenever there is a new one.
    connect(window_->session(), &Session::evaluated, this, &LessonPanel::refresh);
    connect(window_, &MainWindow::lessonViewsChanged, this, &LessonPanel::refresh);
    reloadLessons();
}

void LessonPanel::showError(const QString& message)
{
    error_->setText(message);
    error_->setVisible(!message.isEmpty());
}

void LessonPanel::reloadLessons()
{
    lessons_.clear();
    lessonBox_->clear();
    showError({});
    try {
        lessons_ = loadLessons(window_->lessonsFolder().toStdString(), window_->examplesFolder().toStdString());
    } catch (const Error& e) {
        showError(QString::fromStdString(e.what()));
    }
    for (const Lesson& lesson : lessons_)
        lessonBox_->addItem(QString::fromStdString(lesson.title));
    current_ = -1;
    refresh();
}

bool LessonPanel::openLessonFile(const QString& path)
{
    try {
        lessons_.push_back(loadLesson(path.toStdString(), window_->examplesFolder().toStdString()));
    } catch (const Error& e) {
        showError(QString::fromStdString(e.what()));
        return false;
    }
    showError({});
    lessonBox_->addItem(QString::fromStdString(lessons_.back().title));
    startLesson(static_cast<int>(lessons_.size()) - 1);
    return true;
}

bool LessonPanel::writeHandout(const QString& dir)
{
    const Lesson* l = lesson();
    const auto snapshot = window_->session()->snapshot();
    if (!l || !snapshot || writingHandout_)
        return false;
    // The images, calibration set and number of images the window evaluates on.
    StudySources sources;
    sources.data = snapshot->dataPath.toStdString();
    sources.calibrationData = snapshot->calibrationPath.toStdString();
    sources.evaluationImages = snapshot->evaluationImages;
    writingHandout_ = true;
    handout_->setEnabled(false);
    handoutStatus_->setText(tr("Running the lesson for the handout ..."));
    const Lesson copy = *l;
    const std::filesystem::path target = dir.toStdString();
    runInBackground(
        *QThreadPool::globalInstance(), this, [copy, sources, target] { return writeLessonHandout(copy, sources, target).files; },
        [this](JobOutcome<std::vector<std::filesystem::path>> outcome) {
            writingHandout_ = false;
            handout_->setEnabled(true);
            try {
                if (outcome.error)
                    std::rethrow_exception(outcome.error);
                const QString path = QString::fromStdString(outcome.value->front().string());
                handoutStatus_->setText(tr("Wrote %1").arg(path));
                emit handoutWritten(path);
            } catch (const std::exception& e) {
                handoutStatus_->setText(tr("The handout was not written: %1").arg(QString::fromUtf8(e.what())));
                emit handoutFailed(QString::fromUtf8(e.what()));
            }
        });
    return true;
}

const Lesson* LessonPanel::lesson() const
{
    return current_ >= 0 && current_ < static_cast<int>(lessons_.size()) ? &lessons_[static_cast<std::size_t>(current_)] : nullptr;
}

void LessonPanel::startLesson(int index)
{
    if (index < 0 || index >= static_cast<int>(lessons_.size()))
        return;
    current_ = index;
    lessonBox_->setCurrentIndex(index);
    goToStep(0);
}

void LessonPanel::goToStep(int step)
{
    const Lesson* l = lesson();
    if (!l || step < 0 || step >= static_cast<int>(l->steps.size()))
        return;
    step_ = step;
    answer_->clear();
    feedback_->clear();
    window_->applyLessonStep(l->steps[static_cast<std::size_t>(step)], QString::fromStdString(l->title));
    refresh();
}

QString LessonPanel::shownText() const
{
    return text_->toPlainText();
}

void LessonPanel::refresh()
{
    const Lesson* l = lesson();
    const bool running = l != nullptr;
    back_->setEnabled(running && step_ > 0);
    handout_->setEnabled(running && !writingHandout_);
    next_->setEnabled(running && step_ + 1 < static_cast<int>(l ? l->steps.size() : 0));
    if (!l) {
        title_->setText(lessons_.empty() ? tr("No lessons") : tr("Choose a lesson"));
        position_->clear();
        highlight_->hide();
        text_->setPlainText(lessons_.empty() ? QString() : tr("Pick a lesson above to start it."));
        prompt_->hide();
        answer_->hide();
        check_->hide();
        return;
    }
    const LessonStep& s = l->steps[static_cast<std::size_t>(step_)];
    title_->setText(QString::fromStdString(s.title));
    position_->setText(tr("%1 \u2014 step %2 of %3").arg(QString::fromStdString(l->title)).arg(step_ + 1).arg(l->steps.size()));
    highlight_->setText(tr("Look at: %1").arg(QString::fromStdString(s.highlight)));
    highlight_->setVisible(!s.highlight.empty());
    // The step's layer, else the one the student selected.
    std::string layer = s.layer;
    const auto snapshot = window_->session()->snapshot();
    const int row = window_->selectedLayer();
    if (layer.empty() && snapshot && row >= 0 && row < static_cast<int>(snapshot->layers.size()))
        layer = snapshot->layers[static_cast<std::size_t>(row)].name;
    const auto evaluation = window_->session()->evaluation();
    QString text = evaluation ? QString::fromStdString(renderLessonText(s.text, *evaluation, layer, window_->lessonViewFacts()))
                              : tr("(the numbers appear once the model is evaluated)");
    if (step_ == 0 && !l->summary.empty())
        text = QString::fromStdString(l->summary) + "\n\n" + text;
    text_->setPlainText(text);
    const bool asks = s.question.has_value();
    prompt_->setVisible(asks);
    answer_->setVisible(asks);
    check_->setVisible(asks);
    if (asks)
        prompt_->setText(QString::fromStdString(s.question->prompt));
}

void LessonPanel::checkAnswer()
{
    const Lesson* l = lesson();
    const auto evaluation = window_->session()->evaluation();
    if (!l || !evaluation)
        return;
    const LessonStep& s = l->steps[static_cast<std::size_t>(step_)];
    if (!s.question)
        return;
    const LessonAnswerCheck check =
        checkLessonAnswer(*s.question, answer_->text().toStdString(), *evaluation, s.layer, window_->lessonViewFacts());
    feedback_->setText((check.correct ? tr("\u2714 Right. ") : tr("\u2718 Not quite. ")) + QString::fromStdString(check.explanation));
    feedback_->setStyleSheet(check.correct ? "color: #1b7f3b;" : "color: #b00020;");
}

}  // namespace qe
