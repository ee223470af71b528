#pragma once
// The one metrics model: a row per quantizable layer in graph order, with the layer's shape, its
// configuration (editable) and the live metrics of the last evaluation. The table shows it, and
// the error chart reads the same numbers from it (MetricRole), so a number on a chart is always
// the number in the table. It computes nothing and owns no configuration: it reads the
// session's snapshots and the document's configuration, and an edit in a cell is proposed to the
// document, which records it for undo; the cells follow the document's changed().

#include "config_document.h"
#include "config_edits.h"
#include "session.h"

#include <QAbstractTableModel>

#include <functional>
#include <memory>

namespace qe {

class LayerTableModel : public QAbstractTableModel {
    Q_OBJECT
public:
    enum Column {
        Name, Operator, OutputShape, WeightShape, Parameters,
        WeightScheme, WeightBits, WeightGranularity, WeightRange, ActivationScheme, ActivationBits, Calibration, KeepFloat,
        Equalization, BiasCorrection, AdaRound,  // the layer's repair switches (overrides of the bar's)
        Repaired,                                // what the repairs did to it, from the evaluation's report
        Sqnr, IsolatedSqnr, Mse, IsolatedMse, Cosine, WeightSqnr, Clipped, RoundingNoise, SizeKiB,
        ColumnCount
    };
    // The raw number behind a metric cell (double; NaN where it does not apply), for sorting and
    // for the charts. Infinite SQNR (an exact layer) stays +inf.
    static constexpr int MetricRole = Qt::UserRole + 1;
    // The Calibration column's edit value is a CalibrationMethod for a static range, or
    // kDynamicRange + Granularity (per tensor, per token) for a range taken at run time.
    static constexpr int kDynamicRange = 100;

    // `document` holds the configuration shown (at once, after every change) and takes the edits.
    explicit LayerTableModel(ConfigDocument* document, QObject* parent = nullptr);
    void setSession(std::shared_ptr<const SessionSnapshot> session);
    // The evaluation whose metrics are shown (greyed while they belong to an older configuration).
    void setEvaluation(std::shared_ptr<const EvaluationSnapshot> evaluation);
    // Which rows an edit of `row` applies to: the view's selected rows when `row` is one of them.
    void setEditScope(std::function<std::vector<int>(int row)> scope) { editScope_ = std::move(scope); }

    std::string layerName(int row) const;
    int rowOf(const std::string& layer) const;
    bool hasWeights(int row) const;
    static bool isMetric(int column) { return column >= Sqnr; }
    static bool isConfiguration(int column) { return column >= WeightScheme && column <= AdaRound; }
    // The columns that only apply to a layer with weights.
    static bool isWeightColumn(int column)
    {
        return (column >= WeightScheme && column <= WeightRange) || (column >= Equalization && column <= Repaired);
    }
    static bool isCheckable(int column) { return column == KeepFloat || column == Equalization || column == AdaRound; }
    // "E B A": what the evaluation's repairs did to the layer in `row` (empty when nothing), and
    // the sentences that say it with the numbers (the cell's tooltip).
    QString repairMarks(int row) const;
    QString repairDescription(int row) const;

    int rowCount(const QModelIndex& parent = {}) const override;
    int columnCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role) const override;
    Qt::ItemFlags flags(const QModelIndex& index) const override;
    bool setData(const QModelIndex& index, const QVariant& value, int role) override;

    // The whole table as CSV (a header row, then one row per layer; raw numbers, not rounded).
    QString toCsv() const;

signals:
    // An edit the configuration does not allow (the message names the layer and the field).
    void editRejected(const QString& message);

private:
    void showConfigChanged();
    QVariant displayValue(int row, int column) const;
    double metric(int row, int column) const;
    LayerQuantConfig resolved(int row) const;

    std::shared_ptr<const SessionSnapshot> session_;
    std::shared_ptr<const EvaluationSnapshot> evaluation_;
    ConfigDocument* document_;
    std::function<std::vector<int>(int)> editScope_;
};

// The field a configuration column edits.
LayerField layerFieldOf(int column);

}  // namespace qe
