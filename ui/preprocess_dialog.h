#pragma once
// Asked once when a model without a preprocessing sidecar is opened: how images become its
// input. Shown only after the file has been read as a model (inspect()), with the input's shape
// and output count, and starting from the preset that fits its channels; the answer is saved
// beside the model ("<model>.preprocess.json"), so the CLI, the tests and the next session use
// the same. When the images' labels file has several label columns (ImageNet's label_1000 and
// label_1001), it offers them, first the one named for the model's output count, and the sidecar
// stores the choice as "label_column".

#include "data/preprocess.h"

#include <QDialog>
#include <QStringList>

class QComboBox;
class QDoubleSpinBox;
class QLineEdit;
class QSpinBox;

namespace qe {

// What the dialog shows about a model and the images it will meet.
struct ModelInputs {
    int channels = 0, height = 0, width = 0;  // the image input (C, H, W)
    std::int64_t outputs = 0;                 // the first output's class count; 0 when unknown
    QStringList labelColumns;                 // of the images' labels CSV; fewer than 2: no choice
};

class PreprocessDialog : public QDialog {
    Q_OBJECT
public:
    // Reads the model at `modelPath` (and the label columns of `dataPath`, when given). Slow for
    // a large model: call it on a worker. Throws qe::Error naming the file when it is not a model
    // the explorer can open (not ONNX, or no image input).
    static ModelInputs inspect(const QString& modelPath, const QString& dataPath);

    PreprocessDialog(const QString& modelPath, const ModelInputs& inputs, QWidget* parent = nullptr);
    // The preprocessing as entered; throws qe::Error naming the field that does not parse.
    Preprocess preprocess() const;
    QComboBox* presetBox() const { return preset_; }
    QComboBox* labelColumnBox() const { return labelColumn_; }  // hidden without a choice

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
    QComboBox* labelColumn_;
};

// A float as the shortest text that reads back as the same float: 0.485f is "0.485", not the
// "0.48500001" of its double value.
QString shortestText(float value);

}  // namespace qe
