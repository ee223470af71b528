#pragma once
// The configuration's repair switches, above the layer table: cross-layer equalization (and
// whether it may make a ReLU6 a ReLU), bias correction, and AdaRound with its iterations and
// calibration images. They are the top-level "repairs" of the configuration, which every layer
// inherits unless its row in the table overrides it; each change is one undoable edit of the
// document. Beside them, what the last evaluation's repairs did, in one line.

#include "repair/repair.h"

#include <QWidget>

#include <memory>

class QCheckBox;
class QComboBox;
class QLabel;
class QSpinBox;
class QDoubleSpinBox;

namespace qe {

class ConfigDocument;

class RepairBar : public QWidget {
    Q_OBJECT
public:
    explicit RepairBar(ConfigDocument* document, QWidget* parent = nullptr);
    // What the evaluation's repairs did (null: it asked for none); `current`: it belongs to the
    // configuration shown (else the line is greyed until the new one arrives).
    void setReport(std::shared_ptr<const RepairReport> report, bool current);

    QCheckBox* equalization() const { return equalization_; }
    QCheckBox* relu6AsRelu() const { return relu6AsRelu_; }
    QComboBox* biasCorrection() const { return biasCorrection_; }
    QCheckBox* adaRound() const { return adaRound_; }
    QSpinBox* adaRoundIterations() const { return iterations_; }
    QSpinBox* adaRoundImages() const { return images_; }
    QCheckBox* smoothQuant() const { return smoothQuant_; }
    QDoubleSpinBox* smoothQuantAlpha() const { return alpha_; }
    QLabel* summary() const { return summary_; }

signals:
    // A change the configuration does not allow (the message names the field).
    void editRejected(const QString& message);

private:
    void showConfig();
    void propose();  // the switches as they are now, as one edit

    ConfigDocument* document_;
    QCheckBox *equalization_, *relu6AsRelu_, *adaRound_, *smoothQuant_;
    QComboBox* biasCorrection_;
    QSpinBox *iterations_, *images_;
    QDoubleSpinBox* alpha_;
    QLabel* summary_;
};

// "13 pairs equalized · 14 biases corrected · AdaRound on 14 layers (3.1% flipped) · 2 skipped".
QString repairSummary(const RepairReport& report);

}  // namespace qe
