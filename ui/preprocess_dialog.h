#pragma once
// Asked once when a model without a preprocessing sidecar is opened: how images become its
// input. Starts from a preset; the answer is saved beside the model ("<model>.preprocess.json"),
// so the CLI, the tests and the next session use the same.

#include "data/preprocess.h"

#include <QDialog>

class QComboBox;
class QDoubleSpinBox;
class QLineEdit;
class QSpinBox;

namespace qe {

class PreprocessDialog : public QDialog {
    Q_OBJECT
public:
    explicit PreprocessDialog(const QString& modelPath, QWidget* parent = nullptr);
    // The preprocessing as entered; throws qe::Error naming the field that does not parse.
    Preprocess preprocess() const;

private:
    void showPreset(const Preprocess& p);
    QComboBox* preset_;
    QComboBox* color_;
    QSpinBox* resizeShorter_;
    QDoubleSpinBox* cropFraction_;
    QLineEdit* scale_;
    QLineEdit* mean_;
    QLineEdit* std_;
    QLineEdit* classNames_;
};

}  // namespace qe
