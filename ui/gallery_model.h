#pragma once
// The evaluation images as thumbnails with their label, the float prediction and the quantized
// one, for the gallery. Optionally only the images whose prediction quantization changed, and, in
// an A/B comparison, only those whose prediction differs between A and B (each showing both).
// Reads the session's snapshots; computes nothing.

#include "eval/comparison.h"
#include "session.h"

#include <QAbstractListModel>
#include <QColor>

namespace qe {

class GalleryModel : public QAbstractListModel {
    Q_OBJECT
public:
    static constexpr int ImageIndexRole = Qt::UserRole + 1;  // the image's index in the data set
    explicit GalleryModel(QObject* parent = nullptr);
    void setSession(std::shared_ptr<const SessionSnapshot> session);
    void setEvaluation(std::shared_ptr<const EvaluationSnapshot> evaluation);
    void setChangedOnly(bool changedOnly);
    bool changedOnly() const { return changedOnly_; }
    // A/B: the comparison of the evaluation shown (A) with configuration B; nullopt: none.
    void setComparison(std::optional<ConfigComparison> comparison);
    void setDifferingOnly(bool differingOnly);  // only the images A and B predict differently
    bool differingOnly() const { return differingOnly_; }
    int changedCount() const;
    // The frame around a thumbnail: green when the quantized prediction is right, red when wrong.
    static QColor frameColour(bool right);

    int rowCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role) const override;

private:
    void refilter();
    bool changed(std::size_t image) const;
    const DifferingImage* differing(std::size_t image) const;  // null when A and B agree (or no B)
    std::shared_ptr<const SessionSnapshot> session_;
    std::shared_ptr<const EvaluationSnapshot> evaluation_;
    std::optional<ConfigComparison> comparison_;
    bool changedOnly_ = false, differingOnly_ = false;
    std::vector<std::size_t> shown_;  // image indices in display order
};

}  // namespace qe
