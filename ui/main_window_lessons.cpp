// MainWindow: Help > Lessons, showing a lesson's step (model, configuration, layer, view), and
// View > Presentation Mode.
#include "main_window.h"

#include "config_document.h"
#include "integer_trace_view.h"
#include "lesson_panel.h"
#include "playground_view.h"
#include "session.h"

#include "lesson/lesson.h"

#include <QAction>
#include <QApplication>
#include <QLabel>
#include <QPalette>
#include <QFileInfo>
#include <QFontMetrics>
#include <QHeaderView>
#include <QSplitter>
#include <QTableView>
#include <QLabel>
#include <QTabWidget>
#include <QTimer>

#include <cstdio>

#include <algorithm>

namespace qe {

LessonPanel* MainWindow::showLessonPanel()
{
    if (!lessonPanel_) {
        lessonPanel_ = new LessonPanel(this);
        addDockWidget(Qt::RightDockWidgetArea, lessonPanel_);
    }
    lessonPanel_->show();
    lessonPanel_->raise();
    return lessonPanel_;
}

int MainWindow::layerRow(const std::string& name) const
{
    const auto snapshot = session_->snapshot();
    if (!snapshot)
        return -1;
    for (std::size_t i = 0; i < snapshot->layers.size(); ++i)
        if (snapshot->layers[i].name == name)
            return static_cast<int>(i);
    return -1;
}

void MainWindow::applyLessonStep(const LessonStep& step, const QString& lessonTitle)
{
    const QString description = tr("lesson \"%1\": %2").arg(lessonTitle, QString::fromStdString(step.title));
    if (step.playground)
        playground_->setSettings(*step.playground);
    lessonTrace_ = step.trace ? std::make_unique<LessonTrace>(*step.trace) : nullptr;
    const QString model = step.modelPath ? QString::fromStdString(step.modelPath->string()) : modelPath_;
    const QString data = step.dataPath ? QString::fromStdString(step.dataPath->string()) : dataPath_;
    auto other = [](const QString& a, const QString& b) { return QFileInfo(a).canonicalFilePath() != QFileInfo(b).canonicalFilePath(); };
    if (other(model, modelPath_) || (step.dataPath && other(data, dataPath_))) {
        // Another model or other images: they open (a model on the images in use unless the step
        // names its own); the layer and view follow once loaded (showLoaded), the configuration with it.
        pendingLessonLayer_ = step.layer;
        pendingLessonView_ = step.view;
        openSessionWith(model, data, step.config.value_or(QuantConfig{}), description);
        return;
    }
    if (step.config && !(*step.config == document_->config()))
        document_->edit(*step.config, description);
    showLessonLayerAndView(step.layer, step.view);
}

void MainWindow::showLessonLayerAndView(const std::string& layer, const std::string& view)
{
    if (const int row = layerRow(layer); row >= 0)
        selectLayer(row);
    if (lessonTrace_)
        traceView_->setTarget(lessonTrace_->image, lessonTrace_->position);
    const std::vector<std::string>& views = lessonViews();
    if (const auto it = std::find(views.begin(), views.end(), view); it != views.end()) {
        lessonView_ = view;
        tabs_->setTabVisible(static_cast<int>(it - views.begin()), true);
        tabs_->setCurrentIndex(static_cast<int>(it - views.begin()));
    }
    showPresentationTabs();
}

std::map<std::string, double> MainWindow::lessonViewFacts() const
{
    LessonViewFacts facts;
    if (playground_->playground())
        facts = playgroundFacts(*playground_->playground());
    if (traceView_->trace())
        facts.merge(integerTraceFacts(*traceView_->trace()));
    return facts;
}

void MainWindow::showPresentationTabs()
{
    const std::vector<std::string>& views = lessonViews();
    for (int i = 0; i < tabs_->count() && i < static_cast<int>(views.size()); ++i)
        tabs_->setTabVisible(i, !presentation_ || lessonView_.empty() || views[static_cast<std::size_t>(i)] == lessonView_);
    // The step's view gets the width the per-layer error chart would take beside it.
    errorPanel_->setVisible(!presentation_ || lessonView_.empty());
}

void MainWindow::setPresentationMode(bool on)
{
    presentation_ = on;
    if (presentationAction_ && presentationAction_->isChecked() != on)
        presentationAction_->setChecked(on);
    QFont font = QApplication::font();
    if (on)
        font.setPointSizeF(font.pointSizeF() * 1.5);
    setFont(font);  // every child without a font of its own; the charts follow it (ChartView)
    QFont headline = headline_->font();
    headline.setPointSizeF(font.pointSizeF() * 1.15);
    headline_->setFont(headline);
    QPalette palette = QApplication::palette();
    if (on) {
        // Black on white, and a dark selection, for a washed-out projector.
        palette.setColor(QPalette::WindowText, Qt::black);
        palette.setColor(QPalette::Text, Qt::black);
        palette.setColor(QPalette::ButtonText, Qt::black);
        palette.setColor(QPalette::Base, Qt::white);
        palette.setColor(QPalette::Window, QColor(250, 250, 250));
        palette.setColor(QPalette::Highlight, QColor(0, 51, 128));
        palette.setColor(QPalette::HighlightedText, Qt::white);
    }
    setPalette(palette);
    table_->verticalHeader()->setDefaultSectionSize(QFontMetrics(font).height() + 8);
    fitRepairBarHeight();
    // How to use the window is not for the class: the small hints go while presenting.
    for (QLabel* hint : findChildren<QLabel*>("hint"))
        hint->setVisible(!on);
    if (auto* split = qobject_cast<QSplitter*>(centralWidget()); split && on)
        split->setSizes({split->height() / 2, split->height() - split->height() / 2});  // the larger rows need room
    showPresentationTabs();
}

void MainWindow::screenshotLessonWhenReady(const QString& lessonPath, int step, const QString& path)
{
    scripted_ = true;
    auto started = std::make_shared<bool>(false);
    auto shot = std::make_shared<bool>(false);
    auto shootWhenShown = [this, path, shot] {
        const auto evaluation = session_->evaluation();
        if (*shot || !evaluation || !(evaluation->config == document_->config()) || session_->isBusy())
            return;
        *shot = true;
        // The selected layer's histograms and channel ranges come after the evaluation (at the
        // latest 30 s later, when the views are shot as they are).
        auto shootNow = [this, path, done = std::make_shared<bool>(false)] {
            if (!std::exchange(*done, true))
                QTimer::singleShot(500, this, [this, path] { QApplication::exit(grab().save(path) ? 0 : 1); });
        };
        connect(session_, &Session::histogramsReady, this, shootNow);
        QTimer::singleShot(30000, this, shootNow);
    };
    connect(session_, &Session::evaluated, this, [this, lessonPath, step, started, shootWhenShown] {
        if (!*started) {
            *started = true;
            LessonPanel* panel = showLessonPanel();
            if (!panel->openLessonFile(lessonPath)) {
                std::fprintf(stderr, "%s\n", qPrintable(panel->errorLabel()->text()));
                QApplication::exit(1);
                return;
            }
            panel->goToStep(step);
            if (panel->step() != step) {
                std::fprintf(stderr, "%s: there is no step %d\n", qPrintable(lessonPath), step + 1);
                QApplication::exit(2);
                return;
            }
        }
        shootWhenShown();
    });
}

}  // namespace qe
