#include "layer_table_model.h"

#include <QLocale>

namespace qe {

LayerTableModel::LayerTableModel(QObject* parent) : QAbstractTableModel(parent) {}

void LayerTableModel::setGraph(std::shared_ptr<const Graph> graph)
{
    beginResetModel();
    graph_ = std::move(graph);
    endResetModel();
}

int LayerTableModel::rowCount(const QModelIndex& parent) const
{
    return parent.isValid() || !graph_ ? 0 : static_cast<int>(graph_->nodes.size());
}

int LayerTableModel::columnCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : ColumnCount;
}

QVariant LayerTableModel::data(const QModelIndex& index, int role) const
{
    if (!graph_ || !index.isValid())
        return {};
    const Node& node = graph_->nodes.at(static_cast<std::size_t>(index.row()));
    if (role == Qt::TextAlignmentRole && index.column() == Parameters)
        return QVariant(Qt::AlignRight | Qt::AlignVCenter);
    if (role != Qt::DisplayRole)
        return {};
    switch (index.column()) {
    case Name: return QString::fromStdString(node.name);
    case Operator: return QString::fromStdString(node.opType);
    case OutputShape: {
        auto it = graph_->values.find(node.outputs.empty() ? std::string() : node.outputs[0]);
        return it == graph_->values.end() ? QStringLiteral("?") : QString::fromStdString(symbolicShapeToString(it->second.shape));
    }
    case Parameters: {
        const auto count = graph_->parameterCount(node);
        return count ? QLocale().toString(qlonglong(count)) : QString();
    }
    }
    return {};
}

QVariant LayerTableModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation != Qt::Horizontal || role != Qt::DisplayRole)
        return {};
    switch (section) {
    case Name: return tr("Layer");
    case Operator: return tr("Operator");
    case OutputShape: return tr("Output shape");
    case Parameters: return tr("Parameters");
    }
    return {};
}

}  // namespace qe
