#pragma once
// In-place editors for the layer table's configuration columns: combo boxes fed by the scheme,
// granularity and calibration tables, and a spin box limited to the scheme's bit widths. A combo
// box commits as soon as a value is picked.

#include <QStyledItemDelegate>

namespace qe {

class LayerEditDelegate : public QStyledItemDelegate {
    Q_OBJECT
public:
    using QStyledItemDelegate::QStyledItemDelegate;
    QWidget* createEditor(QWidget* parent, const QStyleOptionViewItem& option, const QModelIndex& index) const override;
    void setEditorData(QWidget* editor, const QModelIndex& index) const override;
    void setModelData(QWidget* editor, QAbstractItemModel* model, const QModelIndex& index) const override;
};

}  // namespace qe
