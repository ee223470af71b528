#include "graph_view.h"

#include "io/palette.h"
#include "model/graph.h"
#include "model/graph_layout.h"

#include <QGraphicsRectItem>
#include <QGraphicsScene>
#include <QGraphicsSimpleTextItem>
#include <QMouseEvent>
#include <QPainterPath>
#include <QWheelEvent>

#include <cmath>

namespace qe {

namespace {

constexpr double kNodeWidth = 170, kNodeHeight = 34, kRowGap = 26, kColumnGap = 24;

QColor colour(palette::Rgb c) { return QColor(c.r, c.g, c.b); }

const QColor kNotALayer(235, 235, 235), kFloatLayer(255, 255, 255), kUnmeasured(210, 210, 210);

// The node's name as the table shows it, shortened to fit a box.
QString shortName(const std::string& name)
{
    QString s = QString::fromStdString(name);
    if (s.size() > 24)
        s = "\u2026" + s.right(23);
    return s;
}

}  // namespace

GraphView::GraphView(QWidget* parent) : QGraphicsView(parent)
{
    setScene(new QGraphicsScene(this));
    setRenderHint(QPainter::Antialiasing);
    setDragMode(QGraphicsView::ScrollHandDrag);
    setTransformationAnchor(QGraphicsView::AnchorUnderMouse);
    setObjectName("graphView");
}

QColor GraphView::colourForSqnr(double sqnrDb)
{
    if (std::isnan(sqnrDb))
        return kUnmeasured;
    if (sqnrDb >= 30)
        return colour(palette::kGreen);
    if (sqnrDb >= 20)
        return colour(palette::kYellow);
    if (sqnrDb >= 10)
        return colour(palette::kOrange);
    return colour(palette::kRed);
}

void GraphView::setModel(const Graph& graph, const std::vector<QuantLayer>& layers)
{
    scene()->clear();
    nodes_.assign(graph.nodes.size(), {});
    selected_ = -1;
    const GraphLayout layout = layoutGraph(graph);
    edgeCount_ = static_cast<int>(layout.edges.size());

    // A layer's own node and its fused activation stand for the layer.
    for (std::size_t l = 0; l < layers.size(); ++l) {
        if (layers[l].nodeIndex >= 0 && std::size_t(layers[l].nodeIndex) < nodes_.size())
            nodes_[std::size_t(layers[l].nodeIndex)].layer = int(l);
        if (layers[l].outputNodeIndex >= 0 && std::size_t(layers[l].outputNodeIndex) < nodes_.size())
            nodes_[std::size_t(layers[l].outputNodeIndex)].layer = int(l);
    }
    // Rows are centred on the widest one, so a chain runs straight down the middle.
    std::vector<int> rowWidth(std::size_t(layout.rows), 0);
    for (const GraphLayout::Place& p : layout.nodes)
        rowWidth[std::size_t(p.row)] = std::max(rowWidth[std::size_t(p.row)], p.column + 1);
    std::vector<QPointF> corners;
    for (const GraphLayout::Place& p : layout.nodes) {
        const double offset = (layout.columns - rowWidth[std::size_t(p.row)]) * (kNodeWidth + kColumnGap) / 2;
        corners.emplace_back(offset + p.column * (kNodeWidth + kColumnGap), p.row * (kNodeHeight + kRowGap));
    }

    QPen edgePen(QColor(120, 120, 120), 1.2);
    for (const GraphLayout::Edge& e : layout.edges) {
        const QPointF from = corners[e.from] + QPointF(kNodeWidth / 2, kNodeHeight);
        const QPointF to = corners[e.to] + QPointF(kNodeWidth / 2, 0);
        QPainterPath path(from);
        const double bend = (to.y() - from.y()) / 2;
        // A skip connection (more than one row) bows out to the side, so it is seen beside the chain.
        const double side = layout.nodes[e.to].row - layout.nodes[e.from].row > 1 ? kNodeWidth * 0.75 : 0;
        path.cubicTo(from + QPointF(side, bend), to + QPointF(side, -bend), to);
        scene()->addPath(path, edgePen)->setZValue(-1);
    }
    for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
        const Node& node = graph.nodes[i];
        NodeItem& item = nodes_[i];
        item.box = scene()->addRect(QRectF(corners[i], QSizeF(kNodeWidth, kNodeHeight)), QPen(QColor(90, 90, 90)), kNotALayer);
        auto* label = new QGraphicsSimpleTextItem(QString::fromStdString(node.opType) + "\n" + shortName(node.name), item.box);
        QFont font = label->font();
        font.setPointSizeF(7.5);
        label->setFont(font);
        label->setPos(corners[i] + QPointF(6, 2));
        item.tooltip = QString::fromStdString(node.name) + " (" + QString::fromStdString(node.opType) + ")";
        if (item.layer >= 0)
            item.tooltip += tr("\nlayer %1: %2").arg(item.layer).arg(QString::fromStdString(layers[std::size_t(item.layer)].name));
        item.box->setToolTip(item.tooltip);
        item.box->setData(0, int(i));
    }
    scene()->setSceneRect(scene()->itemsBoundingRect().adjusted(-20, -20, 20, 20));
    fitWholeModel();
}

void GraphView::setErrors(const std::vector<double>& accumulatedSqnrDb, const std::vector<bool>& keptInFloat)
{
    for (NodeItem& item : nodes_) {
        if (!item.box || item.layer < 0)
            continue;
        const auto l = std::size_t(item.layer);
        const bool isFloat = l < keptInFloat.size() && keptInFloat[l];
        const double sqnr = l < accumulatedSqnrDb.size() ? accumulatedSqnrDb[l] : std::nan("");
        item.box->setBrush(isFloat ? kFloatLayer : colourForSqnr(sqnr));
        QString tip = item.tooltip;
        if (isFloat)
            tip += tr("\nkept in float");
        else if (std::isinf(sqnr))
            tip += tr("\naccumulated error: exact");
        else if (!std::isnan(sqnr))
            tip += tr("\naccumulated SQNR %1 dB").arg(sqnr, 0, 'f', 1);
        item.box->setToolTip(tip);
    }
}

void GraphView::setSelectedLayer(int layer)
{
    selected_ = layer;
    for (NodeItem& item : nodes_)
        if (item.box)
            item.box->setPen(item.layer == layer && layer >= 0 ? QPen(colour(palette::kBlue), 3) : QPen(QColor(90, 90, 90)));
    for (const NodeItem& item : nodes_)
        if (item.box && item.layer == layer && layer >= 0) {
            ensureVisible(item.box);
            break;
        }
}

void GraphView::fitWholeModel()
{
    resetTransform();
    const QRectF all = scene()->sceneRect();
    if (all.isEmpty() || viewport()->width() <= 0)
        return;
    // The whole model, but never so small that the boxes cannot be read: scroll instead.
    const double scale = std::min({1.0, viewport()->width() / all.width(), viewport()->height() / all.height()});
    setTransform(QTransform::fromScale(std::max(scale, 0.55), std::max(scale, 0.55)));
    centerOn(all.center().x(), all.top());
}

int GraphView::layerOfNode(int node) const
{
    return node >= 0 && node < nodeCount() ? nodes_[std::size_t(node)].layer : -1;
}

QColor GraphView::nodeColour(int node) const
{
    return node >= 0 && node < nodeCount() && nodes_[std::size_t(node)].box ? nodes_[std::size_t(node)].box->brush().color() : QColor();
}

void GraphView::mousePressEvent(QMouseEvent* event)
{
    for (QGraphicsItem* item = itemAt(event->pos()); item; item = item->parentItem())
        if (item->data(0).isValid()) {
            const int layer = layerOfNode(item->data(0).toInt());
            if (layer >= 0)
                emit layerClicked(layer);
            break;
        }
    QGraphicsView::mousePressEvent(event);
}

void GraphView::wheelEvent(QWheelEvent* event)
{
    if (!(event->modifiers() & Qt::ControlModifier)) {
        QGraphicsView::wheelEvent(event);
        return;
    }
    const double factor = event->angleDelta().y() > 0 ? 1.15 : 1 / 1.15;
    scale(factor, factor);
}

}  // namespace qe
