#pragma once
// One row per node of the model in graph order: name, operator, output shape, parameters.
// Reads a SessionSnapshot; never computes anything itself.

#include "model/graph.h"

#include <QAbstractTableModel>

#include <memory>

namespace qe {

class LayerTableModel : public QAbstractTableModel {
    Q_OBJECT
public:
    enum Column { Name, Operator, OutputShape, Parameters, ColumnCount };

    explicit LayerTableModel(QObject* parent = nullptr);
    void setGraph(std::shared_ptr<const Graph> graph);

    int rowCount(const QModelIndex& parent = {}) const override;
    int columnCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role) const override;

private:
    std::shared_ptr<const Graph> graph_;
};

}  // namespace qe
