#pragma once
// The confusion matrix of the quantized model (true class by row, predicted class by column),
// painted as a heat map: each row is shaded by its share of the row's images, the diagonal in
// blue, the mistakes in red, so the classes quantization confuses stand out.

#include "eval/accuracy.h"

#include <QStringList>
#include <QWidget>

#include <vector>

class QPainter;

namespace qe {

// With many classes (ImageNet's 1000) the cells would be under a pixel, a grey block: the widget
// then lists the most confused pairs and the classes with the lowest accuracy instead.
class ConfusionMatrixWidget : public QWidget {
    Q_OBJECT
public:
    // Up to this many classes the matrix is drawn; above, the lists.
    static constexpr int kMaxMatrixClasses = 20;
    static constexpr std::size_t kListed = 15;  // rows in each list
    struct ConfusedPair {
        int truth = 0, predicted = 0;
        std::size_t count = 0;
    };
    struct ClassAccuracy {
        int label = 0;
        std::size_t images = 0, correct = 0;
        double accuracy() const { return images ? double(correct) / double(images) : 0.0; }
    };

    explicit ConfusionMatrixWidget(QWidget* parent = nullptr);
    void setMatrix(const ConfusionMatrix& matrix, const QStringList& classNames);
    const ConfusionMatrix& matrix() const { return matrix_; }
    bool showsMatrix() const { return matrix_.classes <= kMaxMatrixClasses; }
    // The most frequent mistakes (true class, predicted class), most frequent first.
    const std::vector<ConfusedPair>& confusedPairs() const { return pairs_; }
    // The classes that have images, lowest accuracy first (then most images first).
    const std::vector<ClassAccuracy>& classAccuracy() const { return accuracy_; }
    QString className(int k) const;
    QSize sizeHint() const override { return {420, 380}; }

protected:
    void paintEvent(QPaintEvent* event) override;
    void contextMenuEvent(QContextMenuEvent* event) override;

private:
    void paintMatrix(QPainter& painter);
    void paintLists(QPainter& painter);
    ConfusionMatrix matrix_;
    QStringList names_;
    std::vector<ConfusedPair> pairs_;
    std::vector<ClassAccuracy> accuracy_;
};

}  // namespace qe
