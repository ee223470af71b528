#pragma once
// The Playground tab (lesson 1, scale and zero-point): a few values the student types or drags
// on a number line, quantized by the core (quantizePlayground: the same paramsForRange and
// fakeQuantize as a layer's activations) with the scheme, bits and clipping range chosen here.
// The number line shows the levels, each value and the level it rounds to, and the clipping range;
// the table each value's code, the value it stands for and the error.

#include "quant/playground.h"

#include <QWidget>

#include <optional>

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QSpinBox;
class QTableWidget;

namespace qe {

class NumberLine;

class PlaygroundView : public QWidget {
    Q_OBJECT
public:
    explicit PlaygroundView(QWidget* parent = nullptr);

    PlaygroundSettings settings() const { return settings_; }
    // Shows these values and settings (a lesson step's); an invalid one is refused with the
    // reason shown, and the previous settings stay.
    void setSettings(const PlaygroundSettings& settings);
    // What is shown (null while the settings are invalid).
    const std::optional<Playground>& playground() const { return playground_; }

    QLineEdit* valuesEdit() const { return values_; }
    QComboBox* schemeBox() const { return scheme_; }
    QSpinBox* bitsBox() const { return bits_; }
    QTableWidget* table() const { return table_; }
    NumberLine* numberLine() const { return line_; }
    QLabel* summary() const { return summary_; }
    QLabel* errorLabel() const { return error_; }  // why the values typed were refused

signals:
    void changed();  // the settings or a value changed; playground() is up to date

private:
    void apply(const PlaygroundSettings& settings);  // quantize, show, emit changed()
    void readControls();                             // the controls' settings, applied
    void showControls();                             // the controls from settings_

    PlaygroundSettings settings_;
    std::optional<Playground> playground_;
    QLineEdit* values_;
    QComboBox* scheme_;
    QSpinBox* bits_;
    QCheckBox* clip_;
    QDoubleSpinBox* rangeMin_;
    QDoubleSpinBox* rangeMax_;
    NumberLine* line_;
    QTableWidget* table_;
    QLabel* summary_;
    QLabel* error_;
};

// The values on a number line with the quantization levels; a value dragged sideways moves.
class NumberLine : public QWidget {
    Q_OBJECT
public:
    explicit NumberLine(QWidget* parent = nullptr);
    void setPlayground(const std::optional<Playground>& playground);
    QSize sizeHint() const override { return {600, 150}; }
    QSize minimumSizeHint() const override { return {300, 120}; }
    // The horizontal pixel of a value and back (for dragging, and for the tests).
    double xOf(double value) const;
    double valueAt(double x) const;
    int valueY() const { return height() / 3; }

signals:
    void valueDragged(int index, float value);

protected:
    void paintEvent(QPaintEvent*) override;
    void mousePressEvent(QMouseEvent* event) override;
    void mouseMoveEvent(QMouseEvent* event) override;
    void mouseReleaseEvent(QMouseEvent* event) override;

private:
    std::optional<Playground> playground_;
    double lo_ = -1, hi_ = 1;  // the axis' ends
    int dragged_ = -1;
};

}  // namespace qe
