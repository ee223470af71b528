#include "layer_edit_delegate.h"

#include "layer_table_model.h"

#include <QComboBox>
#include <QSpinBox>

namespace qe {

namespace {

QString text(std::string_view s)
{
    return QString::fromUtf8(s.data(), qsizetype(s.size()));
}

}  // namespace

QWidget* LayerEditDelegate::createEditor(QWidget* parent, const QStyleOptionViewItem& option, const QModelIndex& index) const
{
    const int column = index.column();
    if (column == LayerTableModel::WeightBits || column == LayerTableModel::ActivationBits) {
        // The bit widths the layer's current scheme allows.
        const QModelIndex schemeIndex =
            index.siblingAtColumn(column == LayerTableModel::WeightBits ? LayerTableModel::WeightScheme : LayerTableModel::ActivationScheme);
        const SchemeTraits& traits = schemeTraits(Scheme(schemeIndex.data(Qt::EditRole).toInt()));
        auto* spin = new QSpinBox(parent);
        spin->setRange(traits.minBits, traits.maxBits);
        spin->setSuffix(tr(" bits"));
        spin->setFrame(false);
        return spin;
    }
    auto* combo = new QComboBox(parent);
    switch (column) {
    case LayerTableModel::WeightScheme:
    case LayerTableModel::ActivationScheme:
        for (const SchemeTraits& traits : schemeTable()) {
            if (column == LayerTableModel::WeightScheme ? !traits.forWeights : !traits.forActivations)
                continue;
            combo->addItem(text(traits.displayName), int(traits.scheme));
            combo->setItemData(combo->count() - 1, text(traits.tradeOff), Qt::ToolTipRole);
        }
        break;
    case LayerTableModel::WeightGranularity:
        for (Granularity g : {Granularity::PerTensor, Granularity::PerChannel, Granularity::PerGroup})
            combo->addItem(text(granularityName(g)).replace('_', ' '), int(g));
        break;
    case LayerTableModel::WeightRange:
        combo->addItem(tr("min-max"), int(WeightRange::MinMax));
        combo->setItemData(combo->count() - 1, tr("Each block's smallest and largest weight"), Qt::ToolTipRole);
        combo->addItem(tr("MSE"), int(WeightRange::Mse));
        combo->setItemData(combo->count() - 1,
                           tr("Each block's range clipped where the squared quantization error is least: one outlier no longer "
                              "coarsens every other weight's step"),
                           Qt::ToolTipRole);
        break;
    case LayerTableModel::Calibration:
        for (const CalibrationMethodTraits& method : calibrationMethodTable()) {
            combo->addItem(text(method.displayName), int(method.method));
            combo->setItemData(combo->count() - 1, text(method.tradeOff), Qt::ToolTipRole);
        }
        combo->addItem(tr("dynamic, per tensor"), LayerTableModel::kDynamicRange + int(Granularity::PerTensor));
        combo->setItemData(combo->count() - 1, tr("Each input's own min and max, taken at run time: no calibration, a little work per image"),
                           Qt::ToolTipRole);
        combo->addItem(tr("dynamic, per token"), LayerTableModel::kDynamicRange + int(Granularity::PerToken));
        combo->setItemData(combo->count() - 1,
                           tr("A range per row of the last axis (per token of a transformer), taken at run time: one outlier "
                              "token no longer coarsens every other token's step. Runs in float in the int8 engine."),
                           Qt::ToolTipRole);
        break;
    case LayerTableModel::BiasCorrection:
        for (BiasCorrection mode : {BiasCorrection::None, BiasCorrection::Empirical, BiasCorrection::Analytical})
            combo->addItem(text(biasCorrectionName(mode)), int(mode));
        break;
    default:
        delete combo;
        return QStyledItemDelegate::createEditor(parent, option, index);
    }
    // A pick is a decision: commit it without waiting for the editor to lose focus.
    connect(combo, &QComboBox::activated, this, [this, combo] {
        emit const_cast<LayerEditDelegate*>(this)->commitData(combo);
        emit const_cast<LayerEditDelegate*>(this)->closeEditor(combo);
    });
    return combo;
}

void LayerEditDelegate::setEditorData(QWidget* editor, const QModelIndex& index) const
{
    const int value = index.data(Qt::EditRole).toInt();
    if (auto* spin = qobject_cast<QSpinBox*>(editor))
        spin->setValue(value);
    else if (auto* combo = qobject_cast<QComboBox*>(editor))
        combo->setCurrentIndex(std::max(0, combo->findData(value)));
    else
        QStyledItemDelegate::setEditorData(editor, index);
}

void LayerEditDelegate::setModelData(QWidget* editor, QAbstractItemModel* model, const QModelIndex& index) const
{
    if (auto* spin = qobject_cast<QSpinBox*>(editor)) {
        spin->interpretText();
        model->setData(index, spin->value(), Qt::EditRole);
    } else if (auto* combo = qobject_cast<QComboBox*>(editor)) {
        model->setData(index, combo->currentData(), Qt::EditRole);
    } else {
        QStyledItemDelegate::setModelData(editor, model, index);
    }
}

}  // namespace qe
