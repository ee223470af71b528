#pragma once
// Tools > Search Mixed Precision: the budget (an accuracy drop against float in points of top-1,
// or a size), the cost the search minimises (weight bytes or bit operations), the candidate widths
// and whether a layer may stay in float. The search (core/study/precision_search.h) runs on the
// session's worker from the document's configuration, with progress and Cancel, while the Pareto
// view fills with its candidates; at the end the dialog tells what it chose, measured on the
// evaluation images, says so plainly when the budget was not met, and offers to apply it (one
// undo step). Closing the dialog cancels a running search; what it evaluated stays in the
// Pareto view.

#include "session.h"

#include <QDialog>

#include <memory>

class QButtonGroup;
class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QProgressBar;
class QPushButton;
class QRadioButton;

namespace qe {

class ConfigDocument;

class SearchDialog : public QDialog {
    Q_OBJECT
public:
    SearchDialog(Session* session, ConfigDocument* document, QWidget* parent = nullptr);

    // What the form asks for.
    SearchOptions options() const;
    // Starts the search from the document's configuration; false (and says why) when it cannot.
    bool start();
    // Puts the chosen configuration into the document as one undo step.
    bool apply();
    std::shared_ptr<const SearchResult> result() const { return result_; }

    QRadioButton* accuracyGoal() const { return accuracyGoal_; }
    QRadioButton* sizeGoal() const { return sizeGoal_; }
    QDoubleSpinBox* maxDrop() const { return maxDrop_; }
    QDoubleSpinBox* maxSize() const { return maxSize_; }
    QComboBox* cost() const { return cost_; }
    QPushButton* startButton() const { return start_; }
    QPushButton* applyButton() const { return apply_; }
    QLabel* outcome() const { return outcome_; }

protected:
    void showEvent(QShowEvent* event) override;
    void done(int result) override;

private:
    void showCost();  // the size budget's unit follows the cost
    void showFinished(std::shared_ptr<const SearchResult> result);
    void showRunning(bool running);

    Session* session_;
    ConfigDocument* document_;
    QRadioButton* accuracyGoal_;
    QRadioButton* sizeGoal_;
    QDoubleSpinBox* maxDrop_;
    QDoubleSpinBox* maxSize_;
    QComboBox* cost_;
    QList<QCheckBox*> weightBits_, activationBits_;
    QCheckBox* allowFloat_;
    QProgressBar* progress_;
    QLabel* outcome_;
    QPushButton* start_;
    QPushButton* cancel_;
    QPushButton* apply_;
    std::shared_ptr<const SearchResult> result_;
    int candidates_ = 0;  // evaluated by the running search
};

}  // namespace qe
