#include "pareto_view.h"

#include "config_document.h"
#include "session.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QVBoxLayout>

namespace qe {

ParetoView::ParetoView(Session* session, ConfigDocument* document, QWidget* parent)
    : QWidget(parent), session_(session), document_(document), chart_(new ParetoChart(this)), note_(new QLabel(this))
{
    setObjectName("paretoView");
    auto* layout = new QVBoxLayout(this);
    auto* bar = new QHBoxLayout;
    note_->setWordWrap(true);
    note_->setTextFormat(Qt::RichText);
    note_->setText(tr("<small>Every configuration evaluated: tried by hand (top-1 on the evaluation images) and found by a "
                      "search (top-1 on its search images, held out from the evaluation and calibration images). The "
                      "line joins the Pareto front: no other point is both smaller and more accurate. Hover a point for "
                      "its configuration; click it to load that configuration.</small>"));
    auto* search = new QPushButton(tr("Search Mixed Precision..."), this);
    search->setToolTip(tr("Find the smallest configuration within an accuracy budget, or the most accurate within a size budget"));
    bar->addWidget(note_, 1);
    bar->addWidget(search);
    layout->addLayout(bar);
    layout->addWidget(chart_, 1);
    chart_->setMinimumHeight(220);

    connect(search, &QPushButton::clicked, this, &ParetoView::searchRequested);
    // Queued: loading redraws the chart, which must not delete the series whose click this is.
    connect(chart_, &ParetoChart::pointClicked, this, &ParetoView::loadPoint, Qt::QueuedConnection);
    connect(session_, &Session::loaded, this, [this] {
        points_.clear();
        searchSteps_ = 0;
        redraw();
    });
    connect(session_, &Session::evaluated, this, &ParetoView::addEvaluation);
    connect(session_, &Session::searchCandidates, this, &ParetoView::addCandidates);
    connect(document_, &ConfigDocument::changed, this, &ParetoView::redraw);  // the current point moves
}

void ParetoView::addEvaluation()
{
    const auto snapshot = session_->snapshot();
    const auto evaluation = session_->evaluation();
    if (!snapshot || !evaluation)
        return;
    const ModelMetrics& m = evaluation->metrics;
    float_ = {ParetoChart::Point::ByHand, tr("float"), tr("float everywhere"), m.floatSizeBytes / 1024.0, 100.0 * m.floatTop1, {}};
    // Evaluating a configuration again (F5, or undo back to it) moves its point to the end
    // instead of adding a second one.
    for (int i = 0; i < points_.size(); ++i)
        if (points_[i].source == ParetoChart::Point::ByHand && points_[i].config == evaluation->config) {
            points_.removeAt(i);
            break;
        }
    points_ << ParetoChart::Point{ParetoChart::Point::ByHand, document_->lastEditDescription(),
                                  precisionSummary(evaluation->config, snapshot->layers), m.sizeBytes / 1024.0, 100.0 * m.top1,
                                  evaluation->config};
    redraw();
}

void ParetoView::addCandidates(const std::vector<SearchCandidate>& candidates)
{
    const auto snapshot = session_->snapshot();
    if (!snapshot)
        return;
    for (const SearchCandidate& c : candidates)
        points_ << ParetoChart::Point{ParetoChart::Point::Search, tr("search candidate %1").arg(++searchSteps_),
                                      precisionSummary(c.config, snapshot->layers), c.sizeBytes / 1024.0, 100.0 * c.searchTop1,
                                      c.config};
    redraw();
}

void ParetoView::redraw()
{
    std::vector<std::pair<double, double>> sizeAndTop1;
    for (const ParetoChart::Point& p : points_)
        sizeAndTop1.emplace_back(p.sizeKiB, p.top1);
    QList<int> front;
    for (std::size_t index : paretoFront(sizeAndTop1))
        front << int(index);
    // The document's configuration as last evaluated by hand (a search candidate with the same
    // configuration is the same configuration on other images).
    int current = -1;
    for (int i = 0; i < points_.size(); ++i)
        if (points_[i].config == document_->config() && (current < 0 || points_[i].source == ParetoChart::Point::ByHand))
            current = i;
    chart_->setPoints(points_, front, float_, current);
}

void ParetoView::loadPoint(int index)
{
    if (index < 0 || index >= points_.size())
        return;
    const ParetoChart::Point& p = points_[index];
    document_->edit(p.config, tr("%1 from the Pareto view").arg(p.description.isEmpty() ? tr("configuration") : p.description));
}

}  // namespace qe
