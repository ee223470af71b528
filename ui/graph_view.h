#pragma once
// The model as a graph: every node in a layered layout (core's layoutGraph: data flows down,
// residual branches are the long edges beside the main path), each layer's nodes coloured by the
// accumulated error at that layer. Clicking a node selects its layer everywhere; selecting a
// layer elsewhere highlights it here. Ctrl + wheel zooms; "Fit" shows the whole model.

#include "quant/layers.h"

#include <QGraphicsView>

#include <map>
#include <vector>

namespace qe {

struct Graph;

class GraphView : public QGraphicsView {
    Q_OBJECT
public:
    explicit GraphView(QWidget* parent = nullptr);

    // A new model: builds the scene (no colours until setErrors).
    void setModel(const Graph& graph, const std::vector<QuantLayer>& layers);
    // The accumulated SQNR (dB) at each layer (parallel to the layers given to setModel; +inf:
    // exact, NaN: not measured). Layers kept in float are drawn as such.
    void setErrors(const std::vector<double>& accumulatedSqnrDb, const std::vector<bool>& keptInFloat);
    void setSelectedLayer(int layer);
    void fitWholeModel();

    // For tests: the node items, by node index, and the layer each stands for (-1: none).
    int nodeCount() const { return static_cast<int>(nodes_.size()); }
    int edgeCount() const { return edgeCount_; }
    int layerOfNode(int node) const;
    QColor nodeColour(int node) const;

    // The colour of an accumulated SQNR: the legend's bands (palette.h).
    static QColor colourForSqnr(double sqnrDb);

signals:
    void layerClicked(int layer);

protected:
    void mousePressEvent(QMouseEvent* event) override;
    void wheelEvent(QWheelEvent* event) override;

private:
    struct NodeItem {
        class QGraphicsRectItem* box = nullptr;
        int layer = -1;
        QString tooltip;
    };
    std::vector<NodeItem> nodes_;
    int edgeCount_ = 0;
    int selected_ = -1;
};

}  // namespace qe
