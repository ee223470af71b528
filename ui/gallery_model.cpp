#include "gallery_model.h"

#include "charts.h"

#include <QColor>
#include <QIcon>
#include <QPainter>
#include <QPixmap>

#include <algorithm>

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
    comparison_.reset();
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

void GalleryModel::setComparison(std::optional<ConfigComparison> comparison)
{
    if (!comparison && !comparison_)
        return;  // nothing changes (every evaluation without B comes here)
    comparison_ = std::move(comparison);
    refilter();
}

void GalleryModel::setDifferingOnly(bool differingOnly)
{
    differingOnly_ = differingOnly;
    refilter();
}

const DifferingImage* GalleryModel::differing(std::size_t image) const
{
    if (!comparison_)
        return nullptr;
    auto found = std::lower_bound(comparison_->differing.begin(), comparison_->differing.end(), image,
                                  [](const DifferingImage& d, std::size_t i) { return d.image < i; });
    return found != comparison_->differing.end() && found->image == image ? &*found : nullptr;
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
            if ((!changedOnly_ || (evaluation_ && changed(i))) && (!differingOnly_ || differing(i)))
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
        if (const DifferingImage* d = differing(image))
            return QStringLiteral("A: %1\nB: %2").arg(session_->className(d->predictionA), session_->className(d->predictionB));
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
    case Qt::ToolTipRole: {
        QString tip = tr("%1\nlabel: %2\nfloat: %3\nquantized: %4")
                          .arg(QString::fromStdString(session_->dataset->imageName(image)), session_->className(label),
                               session_->className(floatPrediction), session_->className(quantPrediction));
        if (const DifferingImage* d = differing(image))
            tip += tr("\nA: %1, B: %2 (%3)")
                       .arg(session_->className(d->predictionA), session_->className(d->predictionB), tr(outcomeName(d->outcome)));
        return tip;
    }
    }
    return {};
}

}  // namespace qe
