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
    // The lists, once per evaluation (a million cells for ImageNet: not in every paint).
    pairs_.clear();
    accuracy_.clear();
    const int n = matrix_.classes;
    for (int truth = 0; truth < n; ++truth) {
        ClassAccuracy row{truth, 0, matrix_.at(truth, truth)};
        for (int predicted = 0; predicted < n; ++predicted) {
            const std::size_t count = matrix_.at(truth, predicted);
            row.images += count;
            if (predicted != truth && count > 0)
                pairs_.push_back({truth, predicted, count});
        }
        if (row.images > 0)
            accuracy_.push_back(row);
    }
    std::stable_sort(pairs_.begin(), pairs_.end(), [](const ConfusedPair& a, const ConfusedPair& b) { return a.count > b.count; });
    if (pairs_.size() > kListed)
        pairs_.resize(kListed);
    std::stable_sort(accuracy_.begin(), accuracy_.end(), [](const ClassAccuracy& a, const ClassAccuracy& b) {
        return a.accuracy() != b.accuracy() ? a.accuracy() < b.accuracy() : a.images > b.images;
    });
    setToolTip(showsMatrix() ? tr("Rows: true class; columns: the quantized model's prediction")
                             : tr("%1 classes are too many for a matrix: the most frequent mistakes of the quantized model, "
                                  "and the classes it gets right least often")
                                   .arg(n));
    update();
}

QString ConfusionMatrixWidget::className(int k) const
{
    return k < names_.size() ? QStringLiteral("%1 %2").arg(k).arg(names_[k]) : QString::number(k);
}

void ConfusionMatrixWidget::contextMenuEvent(QContextMenuEvent* event)
{
    showSaveImageMenu(this, QStringLiteral("confusion_matrix"), event->globalPos());
}

void ConfusionMatrixWidget::paintEvent(QPaintEvent*)
{
    QPainter painter(this);
    painter.fillRect(rect(), palette().base());
    if (matrix_.classes == 0) {
        painter.drawText(rect(), Qt::AlignCenter, tr("No labelled images"));
        return;
    }
    if (showsMatrix())
        paintMatrix(painter);
    else
        paintLists(painter);
}

void ConfusionMatrixWidget::paintLists(QPainter& painter)
{
    const QFontMetrics metrics(font());
    const int line = metrics.height() + 2, half = width() / 2;
    QFont bold = font();
    bold.setBold(true);
    auto column = [&](int left, const QString& title, const QStringList& rows) {
        painter.setFont(bold);
        painter.setPen(palette().color(QPalette::Text));
        painter.drawText(QRect(left + 4, 2, half - 8, line), Qt::AlignLeft | Qt::AlignVCenter, title);
        painter.setFont(font());
        for (int k = 0; k < rows.size() && (k + 2) * line < height(); ++k)
            painter.drawText(QRect(left + 4, (k + 1) * line + 4, half - 8, line), Qt::AlignLeft | Qt::AlignVCenter,
                             metrics.elidedText(rows[k], Qt::ElideMiddle, half - 8));
    };
    QStringList confused;
    for (const ConfusedPair& p : pairs_) {
        std::size_t truthImages = 0;
        for (const ClassAccuracy& a : accuracy_)
            if (a.label == p.truth)
                truthImages = a.images;
        confused << tr("%1 \u00d7  %2 \u2192 %3 (of %4)").arg(p.count).arg(className(p.truth), className(p.predicted)).arg(truthImages);
    }
    if (confused.isEmpty())
        confused << tr("no mistakes");
    QStringList worst;
    for (std::size_t k = 0; k < accuracy_.size() && k < kListed; ++k) {
        const ClassAccuracy& a = accuracy_[k];
        worst << tr("%1: %2 of %3 right (%4)").arg(className(a.label)).arg(a.correct).arg(a.images).arg(percentText(a.accuracy()));
    }
    column(0, tr("Most confused (count \u00d7 true \u2192 predicted)"), confused);
    column(half, tr("Lowest per-class accuracy (%1 classes with images)").arg(accuracy_.size()), worst);
}

void ConfusionMatrixWidget::paintMatrix(QPainter& painter)
{
    const int n = matrix_.classes;
    auto name = [&](int k) { return className(k); };
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
