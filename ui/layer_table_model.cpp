#include "layer_table_model.h"

#include "charts.h"

#include "common/error.h"

#include <QColor>
#include <QLocale>
#include <QPalette>

#include <cmath>
#include <limits>

namespace qe {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

QString formatScheme(Scheme scheme)
{
    return QString::fromUtf8(schemeTraits(scheme).name.data(), qsizetype(schemeTraits(scheme).name.size()));
}

QString csvField(QString text)
{
    if (text.contains(',') || text.contains('"') || text.contains('\n'))
        return '"' + text.replace('"', "\"\"") + '"';
    return text;
}

}  // namespace

LayerField layerFieldOf(int column)
{
    switch (column) {
    case LayerTableModel::WeightScheme: return LayerField::WeightScheme;
    case LayerTableModel::WeightBits: return LayerField::WeightBits;
    case LayerTableModel::WeightGranularity: return LayerField::WeightGranularity;
    case LayerTableModel::WeightRange: return LayerField::WeightRange;
    case LayerTableModel::ActivationScheme: return LayerField::ActivationScheme;
    case LayerTableModel::ActivationBits: return LayerField::ActivationBits;
    case LayerTableModel::Calibration: return LayerField::Calibration;
    case LayerTableModel::Equalization: return LayerField::Equalization;
    case LayerTableModel::BiasCorrection: return LayerField::BiasCorrection;
    case LayerTableModel::AdaRound: return LayerField::AdaRound;
    default: return LayerField::KeepFloat;
    }
}

LayerTableModel::LayerTableModel(ConfigDocument* document, QObject* parent) : QAbstractTableModel(parent), document_(document)
{
    connect(document_, &ConfigDocument::changed, this, &LayerTableModel::showConfigChanged);
}

void LayerTableModel::setSession(std::shared_ptr<const SessionSnapshot> session)
{
    beginResetModel();
    session_ = std::move(session);
    evaluation_.reset();
    endResetModel();
}

void LayerTableModel::showConfigChanged()
{
    // The configuration columns, and the metrics, which are greyed until they are re-evaluated.
    if (rowCount() > 0)
        emit dataChanged(index(0, WeightScheme), index(rowCount() - 1, ColumnCount - 1));
}

void LayerTableModel::setEvaluation(std::shared_ptr<const EvaluationSnapshot> evaluation)
{
    evaluation_ = std::move(evaluation);
    if (rowCount() > 0)
        emit dataChanged(index(0, 0), index(rowCount() - 1, ColumnCount - 1));
}

std::string LayerTableModel::layerName(int row) const
{
    return session_ && row >= 0 && row < rowCount() ? session_->layers[std::size_t(row)].name : std::string();
}

int LayerTableModel::rowOf(const std::string& layer) const
{
    for (int row = 0; row < rowCount(); ++row)
        if (session_->layers[std::size_t(row)].name == layer)
            return row;
    return -1;
}

bool LayerTableModel::hasWeights(int row) const
{
    return !session_->layers[std::size_t(row)].weight.empty();
}

LayerQuantConfig LayerTableModel::resolved(int row) const
{
    return document_->config().resolve(layerName(row));
}

int LayerTableModel::rowCount(const QModelIndex& parent) const
{
    return parent.isValid() || !session_ ? 0 : int(session_->layers.size());
}

int LayerTableModel::columnCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : ColumnCount;
}

double LayerTableModel::metric(int row, int column) const
{
    if (!evaluation_ || std::size_t(row) >= evaluation_->metrics.layers.size())
        return kNaN;
    const LayerMetrics& m = evaluation_->metrics.layers[std::size_t(row)];
    switch (column) {
    case Sqnr: return m.accumulated.sqnrDb;
    case IsolatedSqnr: return m.isolated.sqnrDb;
    case Mse: return m.accumulated.mse;
    case IsolatedMse: return m.isolated.mse;
    case Cosine: return m.accumulated.cosine;
    case WeightSqnr: return m.weights ? m.weights->sqnrDb : kNaN;
    case Clipped: return 100.0 * m.clippedFraction;
    case RoundingNoise: return m.rmseOverScale;
    case SizeKiB: return m.weightCount ? m.weightBytes / 1024.0 : kNaN;
    }
    return kNaN;
}

QVariant LayerTableModel::displayValue(int row, int column) const
{
    const QuantLayer& layer = session_->layers[std::size_t(row)];
    const Graph& graph = *session_->graph;
    const LayerQuantConfig c = resolved(row);
    const bool weightsFloat = c.keepFloat || !c.weights.quantize;
    const bool activationsFloat = c.keepFloat || !c.activations.quantize;
    switch (column) {
    case Name: return QString::fromStdString(layer.name);
    case Operator:
        return QString::fromStdString(layer.fusedActivation.empty() ? layer.opType : layer.opType + "+" + layer.fusedActivation);
    case OutputShape: {
        auto it = graph.values.find(layer.output);
        return it == graph.values.end() ? QStringLiteral("?") : QString::fromStdString(symbolicShapeToString(it->second.shape));
    }
    case WeightShape:
        return layer.weight.empty() ? QString() : QString::fromStdString(shapeToString(graph.initializers.at(layer.weight).shape()));
    case Parameters: {
        const auto count = layer.nodeIndex < 0 ? 0 : graph.parameterCount(graph.nodes[std::size_t(layer.nodeIndex)]);
        return count ? QLocale().toString(qlonglong(count)) : QString();
    }
    case WeightScheme:
        return layer.weight.empty() ? QString() : weightsFloat ? QStringLiteral("float") : formatScheme(c.weights.scheme);
    case WeightBits: return layer.weight.empty() || weightsFloat ? QVariant() : QVariant(c.weights.bits);
    case WeightGranularity:
        return layer.weight.empty() || weightsFloat ? QString()
                                                    : QString::fromUtf8(granularityName(c.weights.granularity).data()).replace('_', ' ');
    case WeightRange:  // k-means fits its codebook to the values: no range to choose
        return layer.weight.empty() || weightsFloat || c.weights.scheme == Scheme::KMeans ? QString()
               : c.weights.range == qe::WeightRange::Mse                                  ? tr("MSE")
                                                                                         : tr("min-max");
    case ActivationScheme: return activationsFloat ? QStringLiteral("float") : formatScheme(c.activations.scheme);
    case ActivationBits: return activationsFloat ? QVariant() : QVariant(c.activations.bits);
    case Calibration:
        if (activationsFloat)
            return QString();
        if (c.activations.dynamic)
            return c.activations.granularity == Granularity::PerToken ? tr("dynamic per token") : tr("dynamic");
        // A QDQ model's own activation scales are not calibrated: the core's plan says so while
        // the layer still asks for what they describe.
        if (evaluation_ && std::size_t(row) < evaluation_->plans.size() && evaluation_->plans[std::size_t(row)].activationsFromModel &&
            evaluation_->plans[std::size_t(row)].config.activations == c.activations)
            return tr("from model file");
        if (c.calibration.fixedRange)
            return tr("fixed [%1, %2]").arg(double(c.calibration.fixedRange->first), 0, 'g', 3).arg(double(c.calibration.fixedRange->second), 0, 'g', 3);
        return QString::fromUtf8(calibrationMethodName(c.calibration.method).data());
    case KeepFloat: case Equalization: case AdaRound: return QVariant();
    case BiasCorrection:
        return layer.weight.empty() ? QString() : QString::fromUtf8(biasCorrectionName(c.repairs.biasCorrection).data());
    case Repaired: return repairMarks(row);
    case Sqnr: case IsolatedSqnr: case WeightSqnr: return sqnrText(metric(row, column));
    case Mse: case IsolatedMse: {
        const double v = metric(row, column);
        return std::isnan(v) ? QString() : QString::number(v, 'e', 2);
    }
    case Cosine: {
        const double v = metric(row, column);
        return std::isnan(v) ? QString() : QString::number(v, 'f', 5);
    }
    case Clipped: {
        const double v = metric(row, column);
        return std::isnan(v) ? QString() : QString::number(v, 'f', 3) + '%';
    }
    case RoundingNoise: {
        const double v = metric(row, column);
        return std::isnan(v) ? QString() : QString::number(v, 'f', 3);
    }
    case SizeKiB: {
        const double v = metric(row, column);
        return std::isnan(v) ? QString() : QString::number(v, 'f', 1);
    }
    }
    return {};
}

QVariant LayerTableModel::data(const QModelIndex& index, int role) const
{
    if (!session_ || !index.isValid())
        return {};
    const int row = index.row(), column = index.column();
    const LayerQuantConfig c = resolved(row);
    switch (role) {
    case Qt::DisplayRole: return displayValue(row, column);
    case Qt::EditRole:
        switch (column) {
        case WeightScheme: return int(c.weights.scheme);
        case ActivationScheme: return int(c.activations.scheme);
        case WeightBits: return c.weights.bits;
        case ActivationBits: return c.activations.bits;
        case WeightGranularity: return int(c.weights.granularity);
        case WeightRange: return int(c.weights.range);
        case Calibration:
            return c.activations.dynamic ? kDynamicRange + int(c.activations.granularity) : int(c.calibration.method);
        case KeepFloat: return c.keepFloat;
        case Equalization: return c.repairs.equalization;
        case BiasCorrection: return int(c.repairs.biasCorrection);
        case AdaRound: return c.repairs.adaRound.enabled;
        }
        return displayValue(row, column);
    case MetricRole:
        if (isMetric(column))
            return metric(row, column);
        if (column == Parameters || column == Name)
            return row;  // graph order
        return displayValue(row, column);
    case Qt::CheckStateRole:
        if (column == KeepFloat)
            return c.keepFloat ? Qt::Checked : Qt::Unchecked;
        if ((column == Equalization || column == AdaRound) && hasWeights(row))
            return (column == Equalization ? c.repairs.equalization : c.repairs.adaRound.enabled) ? Qt::Checked : Qt::Unchecked;
        return {};
    case Qt::TextAlignmentRole:
        if (isMetric(column) || column == Parameters || column == WeightBits || column == ActivationBits)
            return QVariant(Qt::AlignRight | Qt::AlignVCenter);
        return {};
    case Qt::ForegroundRole:
        // Metrics of an older configuration stay visible, greyed, until the new ones arrive.
        if ((isMetric(column) || column == Repaired) && evaluation_ && !(evaluation_->config == document_->config()))
            return QColor(Qt::gray);
        return {};
    case Qt::ToolTipRole:
        if (column == WeightScheme && !c.keepFloat && c.weights.quantize && hasWeights(row))
            return QString::fromUtf8(schemeTraits(c.weights.scheme).tradeOff.data());
        if (column == ActivationScheme && !c.keepFloat && c.activations.quantize)
            return QString::fromUtf8(schemeTraits(c.activations.scheme).tradeOff.data());
        if (column == Calibration && c.calibration.fixedRange)
            return tr("A fixed range from the configuration file (learned by quantization-aware training with LSQ, or set by "
                      "hand): no calibration. Pick a method to calibrate it again.");
        if (column == Calibration)
            return QString::fromUtf8(calibrationMethodTable()[std::size_t(c.calibration.method)].tradeOff.data());
        if (column == Repaired)
            return repairDescription(row);
        return {};
    }
    return {};
}

Qt::ItemFlags LayerTableModel::flags(const QModelIndex& index) const
{
    Qt::ItemFlags f = QAbstractTableModel::flags(index);
    if (!session_ || !index.isValid())
        return f;
    const int column = index.column();
    const LayerQuantConfig c = resolved(index.row());
    if (column == KeepFloat)
        return f | Qt::ItemIsUserCheckable;
    // The repairs change float weights, so they stay editable on a layer kept in float.
    if ((column == Equalization || column == AdaRound) && hasWeights(index.row()))
        return f | Qt::ItemIsUserCheckable;
    if (column == BiasCorrection && hasWeights(index.row()))
        return f | Qt::ItemIsEditable;
    const bool weightColumn = column == WeightScheme || column == WeightBits || column == WeightGranularity || column == WeightRange;
    const bool activationColumn = column == ActivationScheme || column == ActivationBits || column == Calibration;
    if (c.keepFloat)
        return f;
    if (weightColumn && hasWeights(index.row()))
        return f | Qt::ItemIsEditable;
    if (activationColumn)
        return f | Qt::ItemIsEditable;
    return f;
}

bool LayerTableModel::setData(const QModelIndex& index, const QVariant& value, int role)
{
    if (!session_ || !index.isValid() || !isConfiguration(index.column()))
        return false;
    if (role != Qt::EditRole && !(role == Qt::CheckStateRole && isCheckable(index.column())))
        return false;
    std::vector<int> rows = editScope_ ? editScope_(index.row()) : std::vector<int>{index.row()};
    std::vector<std::string> layers;
    for (int row : rows)
        // Weight and repair edits skip the selected layers that have no weights (an Add, the input).
        if (!(isWeightColumn(index.column()) && !hasWeights(row)))
            layers.push_back(layerName(row));
    if (layers.empty())
        return false;
    LayerFieldValue fieldValue;
    switch (index.column()) {
    case WeightScheme: case ActivationScheme: fieldValue = Scheme(value.toInt()); break;
    case WeightBits: case ActivationBits: fieldValue = value.toInt(); break;
    case WeightGranularity: fieldValue = Granularity(value.toInt()); break;
    case WeightRange: fieldValue = qe::WeightRange(value.toInt()); break;
    case Calibration:
        if (value.toInt() >= kDynamicRange)
            fieldValue = Granularity(value.toInt() - kDynamicRange);
        else
            fieldValue = CalibrationMethod(value.toInt());
        break;
    case KeepFloat: case Equalization: case AdaRound:
        fieldValue = role == Qt::CheckStateRole ? value.value<Qt::CheckState>() == Qt::Checked : value.toBool();
        break;
    case BiasCorrection: fieldValue = qe::BiasCorrection(value.toInt()); break;
    }
    const LayerField field = std::holds_alternative<Granularity>(fieldValue) && index.column() == Calibration
                                 ? LayerField::DynamicRange
                                 : layerFieldOf(index.column());
    try {
        QuantConfig edited = withLayerEdit(document_->config(), layers, field, fieldValue);
        if (edited == document_->config())
            return false;
        document_->edit(edited, QString::fromStdString(describeLayerEdit(layers, field, fieldValue)));
        return true;
    } catch (const Error& e) {
        emit editRejected(QString::fromStdString(e.what()));
        return false;
    }
}

QVariant LayerTableModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation != Qt::Horizontal)
        return {};
    if (role == Qt::ToolTipRole) {
        switch (section) {
        case Sqnr: return tr("Accumulated SQNR: the quantized model up to this layer against float (higher is better)");
        case IsolatedSqnr: return tr("Isolated SQNR: only this layer quantized, on float input");
        case Mse: return tr("Accumulated mean squared error");
        case IsolatedMse: return tr("Isolated mean squared error");
        case Cosine: return tr("Cosine similarity of the accumulated output with float");
        case WeightSqnr: return tr("SQNR of the quantized weights alone");
        case Clipped: return tr("Float activations outside the clipping range");
        case RoundingNoise: return tr("RMS activation rounding error in quantization steps; uniform noise gives 1/\u221a12 = 0.289");
        case SizeKiB: return tr("Weight storage under this configuration (codes, scales, zero-points, codebooks)");
        case WeightRange:
            return tr("Weight ranges: each channel's (or group's) extremes, or MSE: clipped where the squared quantization error "
                      "is least, so that one outlier weight does not coarsen every other weight's step (helps at 4 bits and below)");
        case KeepFloat: return tr("Keep the whole layer in float");
        case Equalization:
            return tr("Cross-layer equalization: rescale this layer's output channels and the next layer's input channels so "
                      "that their weight ranges match (a pair is equalized when both layers have it on)");
        case BiasCorrection:
            return tr("Bias correction: subtract the mean output shift that weight quantization causes (empirical: measured "
                      "on calibration images; analytical: from the folded BatchNormalization statistics)");
        case AdaRound: return tr("AdaRound: learn whether each weight rounds up or down to reconstruct the layer's output");
        case Repaired: return tr("What the repairs did: E equalized, B bias corrected, A AdaRound, ! a requested repair skipped");
        }
        return {};
    }
    if (role != Qt::DisplayRole)
        return {};
    switch (section) {
    case Name: return tr("Layer");
    case Operator: return tr("Operator");
    case OutputShape: return tr("Output");
    case WeightShape: return tr("Weights");
    case Parameters: return tr("Params");
    case WeightScheme: return tr("W scheme");
    case WeightBits: return tr("W bits");
    case WeightGranularity: return tr("Granularity");
    case WeightRange: return tr("W range");
    case ActivationScheme: return tr("A scheme");
    case ActivationBits: return tr("A bits");
    case Calibration: return tr("Calibration");
    case KeepFloat: return tr("Float");
    case Equalization: return tr("Equalize");
    case BiasCorrection: return tr("Bias corr.");
    case AdaRound: return tr("AdaRound");
    case Repaired: return tr("Repaired");
    case Sqnr: return tr("SQNR dB");
    case IsolatedSqnr: return tr("Isolated dB");
    case Mse: return tr("MSE");
    case IsolatedMse: return tr("Isolated MSE");
    case Cosine: return tr("Cosine");
    case WeightSqnr: return tr("Weight dB");
    case Clipped: return tr("Clipped");
    case RoundingNoise: return tr("Noise/step");
    case SizeKiB: return tr("KiB");
    }
    return {};
}

QString LayerTableModel::repairMarks(int row) const
{
    if (!evaluation_ || !evaluation_->repairs)
        return {};
    const LayerRepairs repairs = layerRepairs(*evaluation_->repairs, layerName(row));
    QStringList marks;
    if (repairs.equalizedAsFirst || repairs.equalizedAsSecond)
        marks << QStringLiteral("E");
    if (repairs.biasCorrection)
        marks << QStringLiteral("B");
    if (repairs.adaRound)
        marks << QStringLiteral("A");
    if (!repairs.skipped.empty())
        marks << QStringLiteral("!");
    return marks.join(' ');
}

QString LayerTableModel::repairDescription(int row) const
{
    if (!evaluation_ || !evaluation_->repairs)
        return {};
    QStringList lines;
    for (const std::string& line : describeLayerRepairs(layerRepairs(*evaluation_->repairs, layerName(row))))
        lines << QString::fromStdString(line);
    return lines.join('\n');
}

QString LayerTableModel::toCsv() const
{
    QStringList lines;
    QStringList header;
    for (int column = 0; column < ColumnCount; ++column)
        header << csvField(headerData(column, Qt::Horizontal, Qt::DisplayRole).toString());
    lines << header.join(',');
    for (int row = 0; row < rowCount(); ++row) {
        QStringList fields;
        for (int column = 0; column < ColumnCount; ++column) {
            QString text;
            if (isCheckable(column))
                text = data(index(row, column), Qt::EditRole).toBool() ? "true" : "false";
            else if (isMetric(column)) {
                const double v = metric(row, column);
                text = std::isnan(v) ? QString() : std::isinf(v) ? QStringLiteral("inf") : QString::number(v, 'g', 10);
            } else if (column == Parameters) {
                const QuantLayer& layer = session_->layers[std::size_t(row)];
                text = layer.nodeIndex < 0 ? QString()
                                           : QString::number(session_->graph->parameterCount(session_->graph->nodes[std::size_t(layer.nodeIndex)]));
            } else
                text = displayValue(row, column).toString();
            fields << csvField(text);
        }
        lines << fields.join(',');
    }
    return lines.join('\n') + '\n';
}

}  // namespace qe
