#include "confusion_matrix_widget.h"

#include "charts.h"

#include <QContextMenuEvent>
#include <QPainter>

#include <algorithm>

namespace qe {

ConfusionMatrixWidget::ConfusionMatrixWidget(QWidget* parent) : QWidget(parent)
{
    setMinimumSize(260, 180);
    setAutoFillBackground(true);
    setToolTip(tr("Rows: true class; columns: the quantized model's prediction"));
}

void ConfusionMatrixWidget::setMatrix(const ConfusionMatrix& matrix, const QStringList& classNames)
{
    matrix_ = matrix;
    names_ = classNames;
    update();
}

void ConfusionMatrixWidget::contextMenuEvent(QContextMenuEvent* event)
{
    showSaveImageMenu(this, QStringLiteral("confusion_matrix"), event->globalPos());
}

void ConfusionMatrixWidget::paintEvent(QPaintEvent*)
{
    QPainter painter(this);
    painter.fillRect(rect(), palette().base());
    const int n = matrix_.classes;
    if (n == 0) {
        painter.drawText(rect(), Qt::AlignCenter, tr("No labelled images"));
        return;
    }
    auto name = [&](int k) { return k < names_.size() ? QStringLiteral("%1 %2").arg(k).arg(names_[k]) : QString::number(k); };
    const QFontMetrics metrics(font());
    int labelWidth = 0;
    for (int k = 0; k < n; ++k)
        labelWidth = std::max(labelWidth, metrics.horizontalAdvance(name(k)));
    labelWidth = std::min(labelWidth + 8, width() / 3);
    const int titleHeight = metrics.height() + 4;
    const QRect grid(labelWidth, titleHeight, width() - labelWidth - 4, height() - titleHeight - metrics.height() - 6);
    const double cellW = double(grid.width()) / n, cellH = double(grid.height()) / n;

    painter.drawText(QRect(grid.left(), 0, grid.width(), titleHeight), Qt::AlignCenter, tr("predicted (quantized) \u2192"));
    const bool showText = cellW >= 22 && cellH >= metrics.height();
    for (int row = 0; row < n; ++row) {
        std::size_t rowTotal = 0;
        for (int column = 0; column < n; ++column)
            rowTotal += matrix_.at(row, column);
        for (int column = 0; column < n; ++column) {
            const std::size_t count = matrix_.at(row, column);
            const double share = rowTotal ? double(count) / double(rowTotal) : 0.0;
            // Mistakes are rare, so their shade is stretched (x4) to stay visible.
            const double strength = row == column ? share : std::min(1.0, 4.0 * share);
            const QColor hue = row == column ? QColor(0, 114, 178) : QColor(213, 94, 0);
            QColor fill = QColor::fromRgbF(1 - strength * (1 - hue.redF()), 1 - strength * (1 - hue.greenF()),
                                           1 - strength * (1 - hue.blueF()));
            const QRectF cell(grid.left() + column * cellW, grid.top() + row * cellH, cellW, cellH);
            painter.fillRect(cell, fill);
            painter.setPen(QColor(220, 220, 220));
            painter.drawRect(cell);
            if (showText && count) {
                painter.setPen(strength > 0.55 ? Qt::white : Qt::black);
                painter.drawText(cell, Qt::AlignCenter, QString::number(count));
            }
        }
        painter.setPen(palette().color(QPalette::Text));
        const QRectF label(0, grid.top() + row * cellH, labelWidth - 4, cellH);
        painter.drawText(label, Qt::AlignRight | Qt::AlignVCenter, metrics.elidedText(name(row), Qt::ElideRight, labelWidth - 4));
    }
    // Column labels: class indices (the names are on the rows, in the same order).
    if (cellW >= 10)
        for (int column = 0; column < n; ++column)
            painter.drawText(QRectF(grid.left() + column * cellW, grid.bottom() + 2, cellW, metrics.height()), Qt::AlignCenter,
                             QString::number(column));
}

}  // namespace qe
