#include "sensitivity_view.h"

#include "common/error.h"
#include "config_document.h"
#include "io/palette.h"
#include "pareto_chart.h"

#include <QCheckBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QProgressBar>
#include <QPushButton>
#include <QTableView>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace qe {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
const QColor kNotMeasured(236, 236, 236);

QColor colourOf(palette::Rgb c) { return QColor(c.r, c.g, c.b); }

QString columnName(const PrecisionChoice& choice)
{
    return QString::fromStdString(describePrecision(choice)).toUpper();
}

}  // namespace

// ---- SensitivityModel ---------------------------------------------------------------------------

SensitivityModel::SensitivityModel(ConfigDocument* document, QObject* parent) : QAbstractTableModel(parent), document_(document)
{
    // The cell that shows each layer's current setting follows the document.
    connect(document_, &ConfigDocument::changed, this, [this] {
        if (rowCount() > 0)
            emit dataChanged(index(0, 0), index(rowCount() - 1, columnCount() - 1), {Qt::FontRole});
    });
}

void SensitivityModel::setSweep(std::shared_ptr<const SensitivitySnapshot> sweep, const std::vector<QuantLayer>& layers)
{
    std::vector<QuantLayer> measured;
    std::vector<PrecisionChoice> columns;
    if (sweep) {
        if (sweep->options.layers.empty())
            measured = layers;
        else
            for (const std::string& name : sweep->options.layers) {
                const auto layer = std::find_if(layers.begin(), layers.end(), [&](const QuantLayer& l) { return l.name == name; });
                QuantLayer unknown;  // not a layer of this model: the core will say so
                unknown.name = name;
                measured.push_back(layer != layers.end() ? *layer : unknown);
            }
        // Weights outer, activations inner, as the core measures them; a layer without weights
        // is measured at its activation widths alone, in columns of their own.
        for (int w : sweep->options.weightBits)
            for (int a : sweep->options.activationBits)
                columns.push_back({.weightBits = w, .activationBits = a});
        if (std::any_of(measured.begin(), measured.end(), [](const QuantLayer& l) { return l.weight.empty(); }))
            for (int a : sweep->options.activationBits)
                columns.push_back({.weightBits = 0, .activationBits = a});
        // Anything the core measured that the options did not predict still gets a column.
        for (const LayerSensitivity& layer : sweep->result.layers)
            for (const SensitivityPoint& p : layer.onlyThis) {
                const PrecisionChoice choice{.weightBits = p.weightBits, .activationBits = p.activationBits};
                if (std::find(columns.begin(), columns.end(), choice) == columns.end())
                    columns.push_back(choice);
            }
    }
    auto sameLayers = [&] {
        return std::equal(measured.begin(), measured.end(), layers_.begin(), layers_.end(),
                          [](const QuantLayer& a, const QuantLayer& b) { return a.name == b.name; });
    };
    if (sweep_ && sweep && columns == columns_ && sameLayers()) {
        // The same sweep, further on: the cells change in place, so the view keeps its scroll
        // position while the map fills.
        emit layoutAboutToBeChanged();
        sweep_ = std::move(sweep);
        order();
        emit layoutChanged();
        emit dataChanged(index(0, 0), index(rowCount() - 1, columnCount() - 1));
        return;
    }
    beginResetModel();
    sweep_ = std::move(sweep);
    layers_ = std::move(measured);
    columns_ = std::move(columns);
    order();
    endResetModel();
}

void SensitivityModel::setWorstFirst(bool worstFirst)
{
    beginResetModel();
    worstFirst_ = worstFirst;
    order();
    endResetModel();
}

void SensitivityModel::order()
{
    rows_.resize(layers_.size());
    std::iota(rows_.begin(), rows_.end(), 0);
    if (!worstFirst_)
        return;
    // A row's mean drop over its settings (only this layer quantized); unmeasured rows last.
    std::vector<double> mean(layers_.size(), -std::numeric_limits<double>::infinity());
    for (std::size_t i = 0; i < layers_.size(); ++i) {
        if (!sweep_ || i >= sweep_->result.layers.size())
            continue;
        const LayerSensitivity& layer = sweep_->result.layers[i];
        double sum = 0;
        for (const SensitivityPoint& p : layer.onlyThis)
            sum += sweep_->result.floatTop1 - p.top1;
        mean[i] = layer.onlyThis.empty() ? 0 : sum / double(layer.onlyThis.size());
    }
    std::stable_sort(rows_.begin(), rows_.end(), [&](int a, int b) { return mean[std::size_t(a)] > mean[std::size_t(b)]; });
}

std::string SensitivityModel::layerAt(int row) const
{
    return row >= 0 && row < rowCount() ? layers_[std::size_t(rows_[std::size_t(row)])].name : std::string();
}

int SensitivityModel::rowOf(const std::string& layer) const
{
    for (int row = 0; row < rowCount(); ++row)
        if (layerAt(row) == layer)
            return row;
    return -1;
}

PrecisionChoice SensitivityModel::choiceAt(int column) const
{
    if (isAllButThis(column))
        return {.keepFloat = true};
    return column >= 0 && std::size_t(column) < columns_.size() ? columns_[std::size_t(column)] : PrecisionChoice{};
}

const LayerSensitivity* SensitivityModel::measuredAt(int row) const
{
    if (!sweep_ || row < 0 || row >= rowCount())
        return nullptr;
    // The sweep measures in model order, so the i-th layer measured is the i-th layer listed.
    const std::size_t i = std::size_t(rows_[std::size_t(row)]);
    return i < sweep_->result.layers.size() ? &sweep_->result.layers[i] : nullptr;
}

const SensitivityPoint* SensitivityModel::pointAt(int row, int column) const
{
    const LayerSensitivity* layer = measuredAt(row);
    if (!layer || isAllButThis(column))
        return nullptr;
    const PrecisionChoice choice = choiceAt(column);
    for (const SensitivityPoint& p : layer->onlyThis)
        if (p.weightBits == choice.weightBits && p.activationBits == choice.activationBits)
            return &p;
    return nullptr;
}

double SensitivityModel::dropAt(int row, int column) const
{
    const LayerSensitivity* layer = measuredAt(row);
    if (!layer)
        return kNaN;
    const double floatTop1 = sweep_->result.floatTop1;
    if (isAllButThis(column))
        return 100.0 * (floatTop1 - layer->allButThisTop1);
    const SensitivityPoint* p = pointAt(row, column);
    return p ? 100.0 * (floatTop1 - p->top1) : kNaN;
}

bool SensitivityModel::isCurrentSetting(int row, int column) const
{
    return precisionOf(document_->config(), layers_[std::size_t(rows_[std::size_t(row)])]) == choiceAt(column);
}

QString SensitivityModel::describe(int row, int column) const
{
    const QString layer = QString::fromStdString(layerAt(row));
    const LayerSensitivity* measured = measuredAt(row);
    if (!measured)
        return tr("%1: not measured yet").arg(layer);
    const double floatTop1 = 100.0 * sweep_->result.floatTop1;
    if (isAllButThis(column))
        return tr("%1 in float, every other layer as the base configuration\ntop-1 %2% (float %3%, base %4%)\n"
                  "drop %5 points against float; keeping this layer in float gains %6 points over the base\n"
                  "click to keep %1 in float")
            .arg(layer)
            .arg(100.0 * measured->allButThisTop1, 0, 'f', 2)
            .arg(floatTop1, 0, 'f', 2)
            .arg(100.0 * sweep_->result.baseTop1, 0, 'f', 2)
            .arg(dropAt(row, column), 0, 'f', 2)
            .arg(100.0 * (measured->allButThisTop1 - sweep_->result.baseTop1), 0, 'f', 2);
    const SensitivityPoint* p = pointAt(row, column);
    const QString setting = columnName(choiceAt(column));
    if (!p)
        return tr("%1 at %2: not measured (%3)").arg(layer, setting, !layers_[std::size_t(rows_[std::size_t(row)])].weight.empty()
                                                                         ? tr("not a width of this sweep")
                                                                         : tr("the layer has no weights"));
    return tr("%1 at %2, only this layer quantized\ntop-1 %3% (float %4%)\ndrop %5 points against float\noutput SQNR %6\n"
              "click to apply %2 to %1")
        .arg(layer, setting)
        .arg(100.0 * p->top1, 0, 'f', 2)
        .arg(floatTop1, 0, 'f', 2)
        .arg(dropAt(row, column), 0, 'f', 2)
        .arg(sqnrWithUnit(p->outputSqnrDb));
}

int SensitivityModel::rowCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : int(rows_.size());
}

int SensitivityModel::columnCount(const QModelIndex& parent) const
{
    return parent.isValid() || columns_.empty() ? 0 : int(columns_.size()) + 1;
}

QVariant SensitivityModel::data(const QModelIndex& index, int role) const
{
    if (!index.isValid())
        return {};
    const double drop = dropAt(index.row(), index.column());
    switch (role) {
    case Qt::DisplayRole:
        return std::isnan(drop) ? QVariant() : QVariant(QString::number(std::max(drop, 0.0), 'f', drop < 9.95 ? 1 : 0));
    case DropRole:
        return drop;
    case Qt::BackgroundRole:
        return std::isnan(drop) ? kNotMeasured : colourOf(palette::dropColour(drop));
    case Qt::ForegroundRole: {
        // Dark cells get light text: the scale's last three classes.
        const bool dark = !std::isnan(drop) && drop >= palette::kDropClassLimits[std::size(palette::kDropClassLimits) - 3];
        return dark ? QColor(Qt::white) : QColor(Qt::black);
    }
    case Qt::FontRole: {
        if (!isCurrentSetting(index.row(), index.column()))
            return {};
        QFont font;
        font.setBold(true);
        font.setUnderline(true);
        return font;
    }
    case Qt::TextAlignmentRole:
        return int(Qt::AlignCenter);
    case Qt::ToolTipRole:
        return describe(index.row(), index.column());
    default:
        return {};
    }
}

QVariant SensitivityModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation == Qt::Vertical) {
        if (role == Qt::DisplayRole)
            return QString::fromStdString(layerAt(section));
        return {};
    }
    if (role == Qt::DisplayRole)
        return isAllButThis(section) ? tr("all but\nthis") : columnName(choiceAt(section));
    if (role == Qt::ToolTipRole)
        return isAllButThis(section) ? tr("Every layer but this one as the base configuration, this one in float")
                                     : tr("Only this layer quantized, at %1").arg(columnName(choiceAt(section)));
    return {};
}

// ---- SensitivityView ----------------------------------------------------------------------------

SensitivityView::SensitivityView(Session* session, ConfigDocument* document, QWidget* parent)
    : QWidget(parent), session_(session), document_(document), model_(new SensitivityModel(document, this)),
      table_(new QTableView(this)), measure_(new QPushButton(tr("Measure sensitivity"), this)),
      cancel_(new QPushButton(tr("Cancel"), this)), progress_(new QProgressBar(this)),
      worstFirst_(new QCheckBox(tr("Worst first"), this)), state_(new QLabel(this))
{
    setObjectName("sensitivityView");
    auto* layout = new QVBoxLayout(this);
    auto* bar = new QHBoxLayout;
    measure_->setToolTip(tr("Measure every layer's sensitivity against the current configuration, on the evaluation images"));
    cancel_->setToolTip(tr("Stop the sweep; the layers measured stay"));
    cancel_->setEnabled(false);
    progress_->setMaximumWidth(220);
    progress_->setFormat(tr("%v of %m layers"));
    progress_->hide();
    worstFirst_->setToolTip(tr("Sort the layers by their mean drop over the settings measured, the worst first"));
    bar->addWidget(measure_);
    bar->addWidget(cancel_);
    bar->addWidget(progress_);
    bar->addWidget(state_, 1);
    bar->addWidget(worstFirst_);
    layout->addLayout(bar);

    // The legend: the scale's classes, in points of top-1 lost against float.
    QString legend = tr("<small>Top-1 lost against float (points): ");
    const std::size_t classes = std::size(palette::kDropClassColours);
    for (std::size_t k = 0; k < classes; ++k) {
        const QString range = k == 0 ? tr("&lt; %1").arg(palette::kDropClassLimits[0])
                              : k + 1 == classes
                                  ? tr("\u2265 %1").arg(palette::kDropClassLimits[k - 1])
                                  : QStringLiteral("%1\u2013%2").arg(palette::kDropClassLimits[k - 1]).arg(palette::kDropClassLimits[k]);
        legend += QStringLiteral("<span style='background:%1'>&nbsp;&nbsp;&nbsp;&nbsp;</span>&nbsp;%2&nbsp;&nbsp;")
                      .arg(colourOf(palette::kDropClassColours[k]).name(), range);
    }
    legend += tr("<br>W<i>w</i>A<i>a</i>: only this layer quantized, weights to <i>w</i> bits and its output to <i>a</i> bits, in "
                 "its scheme; <i>all but this</i>: every other layer as the base configuration, this one in float. "
                 "Underlined: the layer's current setting. Hover a cell for its numbers; click it to apply that setting to "
                 "the layer.</small>");
    auto* legendLabel = new QLabel(legend, this);
    legendLabel->setWordWrap(true);
    legendLabel->setTextFormat(Qt::RichText);
    layout->addWidget(legendLabel);

    table_->setObjectName("sensitivityTable");
    table_->setModel(model_);
    table_->setSelectionMode(QAbstractItemView::NoSelection);
    table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    table_->setMouseTracking(true);
    table_->horizontalHeader()->setSectionResizeMode(QHeaderView::Fixed);
    table_->horizontalHeader()->setDefaultSectionSize(50);
    // Layer names in full: the header grows to the longest (the table scrolls sideways).
    table_->verticalHeader()->setSectionResizeMode(QHeaderView::Fixed);
    table_->verticalHeader()->setDefaultSectionSize(22);
    table_->verticalHeader()->setDefaultAlignment(Qt::AlignRight | Qt::AlignVCenter);
    layout->addWidget(table_, 1);

    connect(measure_, &QPushButton::clicked, this, &SensitivityView::measure);
    connect(cancel_, &QPushButton::clicked, session_, &Session::cancelSensitivity);
    connect(worstFirst_, &QCheckBox::toggled, model_, &SensitivityModel::setWorstFirst);
    connect(table_, &QTableView::clicked, this, [this](const QModelIndex& index) { applyCell(index.row(), index.column()); });
    connect(session_, &Session::sensitivityUpdated, this, &SensitivityView::showSweep);
    connect(session_, &Session::loaded, this, &SensitivityView::showSweep);
    connect(document_, &ConfigDocument::changed, this, &SensitivityView::showState);
    showSweep();
}

bool SensitivityView::measure()
{
    return session_->startSensitivitySweep(document_->config());
}

void SensitivityView::setWorstFirst(bool worstFirst)
{
    worstFirst_->setChecked(worstFirst);
}

bool SensitivityView::applyCell(int row, int column)
{
    const std::string layer = model_->layerAt(row);
    if (layer.empty() || column < 0 || column >= model_->columnCount())
        return false;
    const PrecisionChoice choice = model_->choiceAt(column);
    if (!model_->isAllButThis(column) && model_->measuredAt(row) && !model_->pointAt(row, column)) {
        emit message(tr("Not applied: %1 was not measured at %2.").arg(QString::fromStdString(layer), columnName(choice)));
        return false;
    }
    try {
        const QuantConfig edited = withLayerPrecision(document_->config(), layer, choice);
        document_->edit(edited, tr("%1 to %2 (sensitivity map)").arg(QString::fromStdString(layer),
                                                                       QString::fromStdString(describePrecision(choice))));
        return true;
    } catch (const Error& e) {
        emit message(tr("Not applied: %1").arg(QString::fromUtf8(e.what())));
        return false;
    }
}

void SensitivityView::showSweep()
{
    const auto snapshot = session_->snapshot();
    model_->setSweep(session_->sensitivity(), snapshot ? snapshot->layers : std::vector<QuantLayer>{});
    showState();
}

void SensitivityView::showState()
{
    const auto snapshot = session_->snapshot();
    const auto sweep = session_->sensitivity();
    measure_->setEnabled(snapshot != nullptr);
    const bool running = sweep && sweep->running;
    cancel_->setEnabled(running);
    progress_->setVisible(running);
    if (sweep) {
        progress_->setRange(0, int(sweep->layersToMeasure));
        progress_->setValue(int(sweep->result.layers.size()));
    }
    QString text;
    if (!snapshot)
        text = tr("Open a model and images first.");
    else if (!sweep)
        text = tr("Measure how much each layer costs on its own: %1 layers, each at every setting.").arg(snapshot->layers.size());
    else if (running)
        text = tr("Measuring %1 of %2 layers ...").arg(sweep->result.layers.size() + 1).arg(sweep->layersToMeasure);
    else if (!sweep->stopped.isEmpty())
        text = tr("Stopped (%1) after %2 of %3 layers.").arg(sweep->stopped).arg(sweep->result.layers.size()).arg(sweep->layersToMeasure);
    else
        text = tr("Float top-1 %1%, base %2%.").arg(100.0 * sweep->result.floatTop1, 0, 'f', 2).arg(100.0 * sweep->result.baseTop1, 0, 'f', 2);
    if (sweep && !(sweep->base == document_->config()))
        text += tr(" <i>Measured against the configuration as it was when the sweep started; the current one differs.</i>");
    state_->setText(text);
    state_->setTextFormat(Qt::RichText);
}

}  // namespace qe
