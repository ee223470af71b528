#include "gallery_model.h"

#include "charts.h"

#include <QColor>
#include <QIcon>
#include <QPainter>
#include <QPixmap>

namespace qe {

GalleryModel::GalleryModel(QObject* parent) : QAbstractListModel(parent) {}

QColor GalleryModel::frameColour(bool right)
{
    // The red the window's text promises, not the charts' vermillion (which reads as orange).
    return right ? colours::green : colours::plainRed;
}

void GalleryModel::setSession(std::shared_ptr<const SessionSnapshot> session)
{
    session_ = std::move(session);
    evaluation_.reset();
    refilter();
}

void GalleryModel::setEvaluation(std::shared_ptr<const EvaluationSnapshot> evaluation)
{
    evaluation_ = std::move(evaluation);
    refilter();
}

void GalleryModel::setChangedOnly(bool changedOnly)
{
    changedOnly_ = changedOnly;
    refilter();
}

bool GalleryModel::changed(std::size_t image) const
{
    const ModelMetrics& m = evaluation_->metrics;
    return image < m.predictions.size() && m.predictions[image] != m.floatPredictions[image];
}

int GalleryModel::changedCount() const
{
    if (!evaluation_)
        return 0;
    int count = 0;
    for (std::size_t i = 0; i < evaluation_->metrics.predictions.size(); ++i)
        count += changed(i);
    return count;
}

void GalleryModel::refilter()
{
    beginResetModel();
    shown_.clear();
    if (session_)
        for (std::size_t i = 0; i < std::size_t(session_->thumbnails.size()); ++i)
            if (!changedOnly_ || (evaluation_ && changed(i)))
                shown_.push_back(i);
    endResetModel();
}

int GalleryModel::rowCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : int(shown_.size());
}

QVariant GalleryModel::data(const QModelIndex& index, int role) const
{
    if (!session_ || !index.isValid() || index.row() >= int(shown_.size()))
        return {};
    const std::size_t image = shown_[std::size_t(index.row())];
    const int label = session_->dataset->label(image);
    const bool evaluated = evaluation_ && image < evaluation_->metrics.predictions.size();
    const int floatPrediction = evaluated ? evaluation_->metrics.floatPredictions[image] : -1;
    const int quantPrediction = evaluated ? evaluation_->metrics.predictions[image] : -1;
    switch (role) {
    case ImageIndexRole: return qulonglong(image);
    case Qt::DisplayRole:
        if (!evaluated)
            return QStringLiteral("#%1").arg(image);
        if (floatPrediction == quantPrediction)
            return session_->className(quantPrediction);
        return QStringLiteral("%1\n\u2192 %2").arg(session_->className(floatPrediction), session_->className(quantPrediction));
    case Qt::DecorationRole: {
        // The thumbnail with a frame: green when the quantized prediction is right, red when wrong.
        QPixmap pixmap = QPixmap::fromImage(session_->thumbnails[qsizetype(image)]);
        if (evaluated && label >= 0) {
            QPainter painter(&pixmap);
            painter.setPen(QPen(frameColour(quantPrediction == label), 4));
            painter.drawRect(pixmap.rect().adjusted(1, 1, -2, -2));
        }
        return QIcon(pixmap);
    }
    case Qt::ForegroundRole:
        return evaluated && floatPrediction != quantPrediction ? QColor(213, 94, 0) : QVariant();
    case Qt::ToolTipRole:
        return tr("%1\nlabel: %2\nfloat: %3\nquantized: %4")
            .arg(QString::fromStdString(session_->dataset->imageName(image)), session_->className(label),
                 session_->className(floatPrediction), session_->className(quantPrediction));
    }
    return {};
}

}  // namespace qe
