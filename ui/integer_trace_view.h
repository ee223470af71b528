#pragma once
// The Integer arithmetic tab (lesson 10): one output value of the selected layer, computed step
// by step as the int8 engine computes it (core: Study::traceIntegerOutput, run by the session in
// the background): the products of input and weight codes, their int32 sum, the bias, the
// multiplier as a Q0.31 mantissa and a shift, the rounding and the clamp, ending in the engine's
// own code at that position. The student picks the image and the element; the trace follows the
// selected layer and every evaluation.

#include "eval/integer_trace.h"

#include <QWidget>

#include <memory>
#include <string>
#include <vector>

class QLabel;
class QSpinBox;
class QTableWidget;
class QTextBrowser;

namespace qe {

class Session;

class IntegerTraceView : public QWidget {
    Q_OBJECT
public:
    IntegerTraceView(Session* session, QWidget* parent = nullptr);

    // The layer to trace (the selected one); a new layer starts at its first element.
    void setLayer(const std::string& layer);
    // The element to trace: an evaluation image and the coordinates (empty: the first element).
    void setTarget(std::size_t image, const std::vector<std::int64_t>& position);
    // Traces again (after an evaluation: the configuration may have changed).
    void refresh();

    // What is shown: the trace of the current layer, or null (none yet, or it failed).
    std::shared_ptr<const IntegerTrace> trace() const { return trace_; }
    QTextBrowser* steps() const { return steps_; }
    QTableWidget* terms() const { return terms_; }
    const std::vector<QSpinBox*>& coordinates() const { return coordinates_; }
    QSpinBox* imageBox() const { return image_; }

signals:
    void traced();  // trace() changed

protected:
    void showEvent(QShowEvent* event) override;  // traces only while the tab is in front

private:
    void request();
    void show(std::shared_ptr<const IntegerTrace> trace);
    void showFailure(const QString& layer, const QString& message);
    void makeCoordinateBoxes(const IntegerTrace& trace);

    Session* session_;
    std::string layer_;
    std::size_t imageIndex_ = 0;
    std::vector<std::int64_t> position_;
    std::shared_ptr<const IntegerTrace> trace_;
    QLabel* heading_;
    QSpinBox* image_;
    QWidget* coordinateRow_;
    std::vector<QSpinBox*> coordinates_;
    QTextBrowser* steps_;
    QTableWidget* terms_;
};

}  // namespace qe
