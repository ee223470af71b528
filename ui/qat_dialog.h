#pragma once
// Tools > Fine-Tune with QAT: quantization-aware training (core/train/qat.h) from the document's
// configuration. The settings (epochs or steps, batch, optimizer, learning rate, seed, how many
// training images), a live chart of the training loss per step and the held-out top-1 at every
// checkpoint against the post-training and float lines, progress and Cancel (which keeps the best
// checkpoint's weights). At the end: float, post-training and fine-tuned top-1, each layer's
// accumulated SQNR before and after, and "Open Fine-Tuned Model...", which saves the model where
// the user says and opens it in the window with the configuration it was trained for (File >
// Back to Previous Model returns). Closing the dialog cancels a running training.

#include "session.h"

#include <QDialog>

#include <memory>

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineSeries;
class QProgressBar;
class QPushButton;
class QSpinBox;
class QTableWidget;
class QValueAxis;

namespace qe {

class ChartView;
class ConfigDocument;

class QatDialog : public QDialog {
    Q_OBJECT
public:
    QatDialog(Session* session, ConfigDocument* document, QWidget* parent = nullptr);

    // What the form asks for.
    QatOptions options() const;
    // Starts training from the document's configuration; false (and says why) when it cannot.
    bool start();
    // Writes the fine-tuned model (and its preprocessing sidecar) to `path` and emits
    // fineTunedModelSaved(); false, with the error shown, when it cannot.
    bool saveResult(const QString& path);
    std::shared_ptr<const QatResult> result() const { return result_; }

    QSpinBox* epochs() const { return epochs_; }
    QSpinBox* steps() const { return steps_; }
    QSpinBox* batchSize() const { return batch_; }
    QComboBox* optimizer() const { return optimizer_; }
    QDoubleSpinBox* learningRate() const { return learningRate_; }
    QSpinBox* trainImages() const { return trainImages_; }
    QSpinBox* checkpointEvery() const { return checkpointEvery_; }
    QCheckBox* learnRanges() const { return learnRanges_; }
    QSpinBox* batchNormEpochs() const { return batchNormEpochs_; }
    QPushButton* startButton() const { return start_; }
    QPushButton* cancelButton() const { return cancel_; }
    QPushButton* openButton() const { return open_; }
    QLabel* outcome() const { return outcome_; }
    QTableWidget* layerTable() const { return layers_; }
    ChartView* chart() const { return chartView_; }
    QLineSeries* lossSeries() const { return loss_; }
    QLineSeries* top1Series() const { return top1_; }

signals:
    // The fine-tuned model is at `path`; `config` is the configuration it was trained for and
    // `dataPath` the images it was measured on.
    void fineTunedModelSaved(const QString& path, const QString& dataPath, const qe::QuantConfig& config);

protected:
    void done(int result) override;

private:
    void showRunning(bool running);
    void showProgress(const QString& stage, int step, int steps, double loss);
    void showCheckpoint(const QatCheckpoint& checkpoint);
    void showFinished(std::shared_ptr<const QatResult> result);
    void showLayers(const QatResult& result);
    void showTop1Range(double lowest);  // percent
    void resetChart();  // empty series, the post-training and float lines of the evaluation shown
    void askWhereAndSave();

    Session* session_;
    ConfigDocument* document_;
    QSpinBox* epochs_;
    QSpinBox* steps_;
    QSpinBox* batch_;
    QComboBox* optimizer_;
    QDoubleSpinBox* learningRate_;
    QSpinBox* trainImages_;
    QSpinBox* checkpointEvery_;
    QCheckBox* learnRanges_;
    QSpinBox* batchNormEpochs_;
    QSpinBox* seed_;
    QLabel* trainingData_;
    ChartView* chartView_;
    QLineSeries* loss_;
    QLineSeries* top1_;
    QLineSeries* ptqLine_;
    QLineSeries* floatLine_;
    QValueAxis* stepAxis_;
    QValueAxis* lossAxis_;
    QValueAxis* top1Axis_;
    QProgressBar* progress_;
    QLabel* outcome_;
    QTableWidget* layers_;
    QPushButton* start_;
    QPushButton* cancel_;
    QPushButton* open_;
    std::shared_ptr<const QatResult> result_;
    // The model and images the run trained on: saving uses its preprocessing and names, even
    // when another model has been opened since.
    std::shared_ptr<const SessionSnapshot> trainedOn_;
    double maxLoss_ = 0;
    int lastPlottedStep_ = 0;
    int chartSteps_ = 0;  // the step count the step axis was ranged for
};

}  // namespace qe
