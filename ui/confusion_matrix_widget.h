#pragma once
// The confusion matrix of the quantized model (true class by row, predicted class by column),
// painted as a heat map: each row is shaded by its share of the row's images, the diagonal in
// blue, the mistakes in red, so the classes quantization confuses stand out.

#include "eval/accuracy.h"

#include <QStringList>
#include <QWidget>

namespace qe {

class ConfusionMatrixWidget : public QWidget {
    Q_OBJECT
public:
    explicit ConfusionMatrixWidget(QWidget* parent = nullptr);
    void setMatrix(const ConfusionMatrix& matrix, const QStringList& classNames);
    const ConfusionMatrix& matrix() const { return matrix_; }
    QSize sizeHint() const override { return {420, 380}; }

protected:
    void paintEvent(QPaintEvent* event) override;
    void contextMenuEvent(QContextMenuEvent* event) override;

private:
    ConfusionMatrix matrix_;
    QStringList names_;
};

}  // namespace qe
