#pragma once
// The explorer's main window. This first version shows the model's layers and the float
// model's accuracy on the loaded images; the quantization views build on it.

#include <QMainWindow>

class QLabel;
class QProgressBar;
class QTableView;

namespace qe {

class LayerTableModel;
class Session;
struct ClassificationResult;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    explicit MainWindow(QWidget* parent = nullptr);
    void openSession(const QString& modelPath, const QString& dataPath);
    // For scripts/screenshot: once the evaluation has been shown, save the window as a PNG and quit.
    void saveScreenshotWhenReady(const QString& path);

private:
    void openModelDialog();
    void openImagesDialog();
    void showLoaded();
    void showAccuracy(const ClassificationResult& result);
    void showError(const QString& message);

    Session* session_;
    LayerTableModel* layers_;
    QTableView* table_;
    QLabel* summary_;
    QLabel* accuracy_;
    QProgressBar* progress_;
    QString modelPath_, dataPath_;
};

}  // namespace qe
