#pragma once
// The Pareto tab: every configuration evaluated in this session, by hand (each evaluation the
// window publishes) and by a mixed-precision search (each candidate as the search reports it),
// on one chart of top-1 against size with the Pareto front among them (the core's paretoFront).
// Clicking a point loads its configuration into the document as one undo step; the button opens
// the search dialog.
//
// The two kinds of point are measured on different images: a configuration tried by hand on the
// evaluation images, a search candidate on the search images (held out from both the evaluation
// and the calibration images). The chart says which is which; the front is over every point, as
// the user chooses among them.

#include "pareto_chart.h"

#include <QWidget>

#include <vector>

class QLabel;

namespace qe {

class ConfigDocument;
class Session;
struct SearchCandidate;

class ParetoView : public QWidget {
    Q_OBJECT
public:
    ParetoView(Session* session, ConfigDocument* document, QWidget* parent = nullptr);
    ParetoChart* chart() const { return chart_; }
    // Loads point `index`'s configuration as one undo step (what a click does).
    void loadPoint(int index);

signals:
    void searchRequested();

private:
    void addEvaluation();
    void addCandidates(const std::vector<SearchCandidate>& candidates);
    void redraw();

    Session* session_;
    ConfigDocument* document_;
    ParetoChart* chart_;
    QLabel* note_;
    QList<ParetoChart::Point> points_;
    ParetoChart::Point float_;
    int searchSteps_ = 0;  // candidates of the searches so far, to number them
};

}  // namespace qe
