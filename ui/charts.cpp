#include "charts.h"

#include "common/atomic_file.h"
#include "common/error.h"
#include "layer_table_model.h"

#include <QAreaSeries>
#include <QBarCategoryAxis>
#include <QBarSeries>
#include <QHorizontalBarSeries>
#include <QBarSet>
#include <QApplication>
#include <QBuffer>
#include <QContextMenuEvent>
#include <QFileDialog>
#include <QLegendMarker>
#include <QLineSeries>
#include <QLogValueAxis>
#include <QMenu>
#include <QMessageBox>
#include <QSvgGenerator>
#include <QToolTip>
#include <QValueAxis>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

namespace qe {

namespace {

using namespace colours;

}  // namespace

void hideFromLegend(QChart* chart, QAbstractSeries* series)
{
    for (QLegendMarker* marker : chart->legend()->markers(series))
        marker->setVisible(false);
}

QLineSeries* segment(QChart* chart, QPointF a, QPointF b, QPen pen, const QString& name)
{
    auto* line = new QLineSeries(chart);
    line->append(a);
    line->append(b);
    line->setPen(pen);
    line->setName(name);
    return line;
}

void prepareChart(QChart* chart)
{
    chart->removeAllSeries();
    for (QAbstractAxis* axis : chart->axes())
        chart->removeAxis(axis), delete axis;
    chart->legend()->setAlignment(Qt::AlignBottom);
    chart->setMargins(QMargins(4, 4, 4, 4));
}

QString percentText(double fraction)
{
    const double percent = 100.0 * fraction;
    if (percent == 0)
        return QStringLiteral("0%");
    // Fixed notation with three significant digits however small: 0.0000399%, never 3.99e-05.
    const int decimals = std::clamp(2 - int(std::floor(std::log10(std::abs(percent)))), 0, 12);
    return QString::number(percent, 'f', decimals) + '%';
}

QString accuracyText(double fraction)
{
    return QString::number(100.0 * fraction, 'f', 2) + '%';
}

QString sqnrText(double db, int decimals)
{
    if (std::isnan(db))
        return {};
    if (std::isinf(db))
        return db > 0 ? QObject::tr("exact") : QStringLiteral("\u2212\u221e");
    return QString::number(db, 'f', decimals);
}

QString sqnrWithUnit(double db, int decimals)
{
    return std::isfinite(db) ? sqnrText(db, decimals) + QStringLiteral(" dB") : sqnrText(db, decimals);
}

QString shortLayerName(const QString& name)
{
    QStringList parts = name.split('/', Qt::SkipEmptyParts);
    if (name.startsWith('/') && parts.size() >= 2)
        parts.removeLast();
    return parts.isEmpty() ? name : parts.join('/');
}

// ---- ChartView ---------------------------------------------------------------------------------

ChartView::ChartView(const QString& name, QWidget* parent) : QChartView(new QChart(), parent), name_(name)
{
    setRenderHint(QPainter::Antialiasing);
    chart()->setAnimationOptions(QChart::NoAnimation);  // live updates must not lag behind
    setMinimumSize(240, 140);
}

void ChartView::contextMenuEvent(QContextMenuEvent* event)
{
    showSaveImageMenu(this, name_, event->globalPos());
}

void ChartView::paintEvent(QPaintEvent* event)
{
    matchWindowFont();
    QChartView::paintEvent(event);
}

void ChartView::matchWindowFont()
{
    if (!ownTitleFont_) {
        ownTitleFont_ = chart()->titleFont();
        ownLegendFont_ = chart()->legend()->font();
    }
    const bool enlarged = font() != QApplication::font();
    QFont title = font();
    title.setBold(true);
    // Only what differs is set: setting a font lays the chart out again and paints once more.
    if (const QFont wanted = enlarged ? title : *ownTitleFont_; chart()->titleFont() != wanted)
        chart()->setTitleFont(wanted);
    if (const QFont wanted = enlarged ? font() : *ownLegendFont_; chart()->legend()->font() != wanted)
        chart()->legend()->setFont(wanted);
    if (!enlarged)
        return;
    for (QAbstractAxis* axis : chart()->axes()) {
        if (axis->labelsFont() != font())
            axis->setLabelsFont(font());
        if (axis->titleFont() != font())
            axis->setTitleFont(font());
    }
}

void saveWidgetImage(QWidget* widget, const QString& title, const QString& path)
{
    QBuffer buffer;
    buffer.open(QIODevice::WriteOnly);
    if (path.endsWith(".svg", Qt::CaseInsensitive)) {
        QSvgGenerator svg;
        svg.setOutputDevice(&buffer);
        svg.setSize(widget->size());
        svg.setViewBox(widget->rect());
        svg.setTitle(title);
        QPainter painter(&svg);
        widget->render(&painter);
    } else {
        // Twice the screen resolution, so that a slide or a paper stays sharp.
        QImage image(widget->size() * 2, QImage::Format_ARGB32_Premultiplied);
        image.setDevicePixelRatio(2);
        image.fill(Qt::white);
        QPainter painter(&image);
        widget->render(&painter);
        painter.end();
        if (!image.save(&buffer, "PNG"))
            throw Error(path.toStdString() + ": could not encode the image as PNG");
    }
    writeFileAtomically(path.toStdString(), buffer.data().toStdString());
}

void showSaveImageMenu(QWidget* widget, const QString& name, const QPoint& globalPos)
{
    QMenu menu(widget);
    auto save = [widget, name](const QString& filter, const QString& suffix) {
        const QString path = QFileDialog::getSaveFileName(widget, QObject::tr("Save Chart"), name + suffix, filter);
        if (path.isEmpty())
            return;
        try {
            saveWidgetImage(widget, name, path);
        } catch (const Error& e) {
            QMessageBox::warning(widget, QObject::tr("Save Chart"), QString::fromStdString(e.what()));
        }
    };
    menu.addAction(QObject::tr("Save as PNG..."), widget, [save] { save(QObject::tr("PNG images (*.png)"), ".png"); });
    menu.addAction(QObject::tr("Save as SVG..."), widget, [save] { save(QObject::tr("SVG drawings (*.svg)"), ".svg"); });
    menu.exec(globalPos);
}

// ---- ErrorChart --------------------------------------------------------------------------------

ErrorChart::ErrorChart(QAbstractItemModel* layerModel, QWidget* parent) : ChartView(tr("layer_errors"), parent), model_(layerModel)
{
    connect(model_, &QAbstractItemModel::modelReset, this, &ErrorChart::rebuild);
    connect(model_, &QAbstractItemModel::dataChanged, this, &ErrorChart::rebuild);
    rebuild();
}

void ErrorChart::setMode(Mode mode)
{
    mode_ = mode;
    rebuild();
}

void ErrorChart::setSelectedLayer(int row)
{
    selected_ = row;
    if (!series_)
        return;
    for (QBarSet* set : series_->barSets()) {
        set->deselectAllBars();
        if (row >= 0 && row < fullNames_.size())
            set->selectBar(barOfRow(row));
    }
}

int ErrorChart::barOfRow(int row) const
{
    // The bars run from the last layer (bar 0, at the bottom) to the first (on top); the mapping
    // is its own inverse.
    return int(fullNames_.size()) - 1 - row;
}

QRect ErrorChart::layerBarRect(int row) const
{
    if (!series_ || row < 0 || row >= fullNames_.size())
        return {};
    // The band of the layer's category, across the plot area, in this widget's coordinates.
    const QRectF plot = chart()->plotArea();
    const double centre = chart()->mapToPosition(QPointF(0, barOfRow(row)), series_).y();
    const double band = plot.height() / double(fullNames_.size());
    const QRectF inChart(plot.left(), centre - band / 2, plot.width(), band);
    return mapFromScene(chart()->mapToScene(inChart)).boundingRect();
}

QList<QBarSet*> ErrorChart::barSets() const
{
    return series_ ? series_->barSets() : QList<QBarSet*>{};
}

QBarCategoryAxis* ErrorChart::layerAxis() const
{
    for (QAbstractAxis* axis : chart()->axes(Qt::Vertical))
        if (auto* categories = qobject_cast<QBarCategoryAxis*>(axis))
            return categories;
    return nullptr;
}

QString ErrorChart::barDescription(int index, QBarSet* set) const
{
    if (!set || index < 0 || index >= fullNames_.size())
        return {};
    return QStringLiteral("%1\n%2: %3").arg(fullNames_[rowOfBar(index)], set->label()).arg(set->at(index), 0, 'g', 4);
}

void ErrorChart::setComparison(std::optional<Comparison> comparison)
{
    if (!comparison && !comparison_)
        return;  // nothing to redraw (every evaluation without B comes here)
    comparison_ = std::move(comparison);
    rebuild();
}

double ErrorChart::comparisonValue(int row) const
{
    const std::string name = model_->index(row, LayerTableModel::Name).data().toString().toStdString();
    for (const LayerMetrics& l : comparison_->b)
        if (l.name == name)
            return mode_ == SqnrDb ? l.accumulated.sqnrDb : mode_ == Mse ? l.accumulated.mse : l.rmseOverScale;
    return std::numeric_limits<double>::quiet_NaN();
}

void ErrorChart::rebuild()
{
    QChart* c = chart();
    prepareChart(c);
    series_ = nullptr;
    fullNames_.clear();
    const int rows = model_->rowCount();
    if (rows == 0)
        return;
    int accumulatedColumn = LayerTableModel::Sqnr, isolatedColumn = LayerTableModel::IsolatedSqnr;
    QString unit = tr("SQNR (dB), higher is better");
    if (mode_ == Mse) {
        accumulatedColumn = LayerTableModel::Mse;
        isolatedColumn = LayerTableModel::IsolatedMse;
        unit = tr("MSE, lower is better");
    } else if (mode_ == RoundingNoise) {
        accumulatedColumn = LayerTableModel::RoundingNoise;
        isolatedColumn = -1;
        unit = tr("RMS rounding error / step");
    }
    c->setTitle(mode_ == RoundingNoise ? tr("Activation rounding noise per layer") : tr("Error per layer"));
    series_ = new QHorizontalBarSeries(c);
    auto makeSet = [&](const QString& name, QColor colour, const std::function<double(int row)>& valueOf) {
        auto* set = new QBarSet(name, series_);
        set->setColor(colour);
        set->setBorderColor(colour.darker(130));
        set->setSelectedColor(yellow);
        for (int bar = 0; bar < rows; ++bar) {
            const double v = valueOf(rows - 1 - bar);
            // An exact layer has infinite SQNR and an inapplicable metric is NaN: no bar.
            set->append(std::isfinite(v) ? v : 0.0);
        }
        series_->append(set);
    };
    auto column = [&](int column) {
        return [this, column](int row) { return model_->index(row, column).data(LayerTableModel::MetricRole).toDouble(); };
    };
    const QString accumulatedName = mode_ == RoundingNoise ? tr("rounding noise") : tr("accumulated");
    if (comparison_) {
        makeSet(tr("A: %1").arg(comparison_->nameA), blue, column(accumulatedColumn));
        makeSet(tr("B: %1").arg(comparison_->nameB), purple, [&](int row) { return comparisonValue(row); });
    } else {
        makeSet(accumulatedName, blue, column(accumulatedColumn));
        if (isolatedColumn >= 0)
            makeSet(tr("isolated"), orange, column(isolatedColumn));
    }
    c->addSeries(series_);

    QStringList names;
    for (int row = 0; row < rows; ++row) {
        const QString full = model_->index(row, LayerTableModel::Name).data().toString();
        QString name = shortLayerName(full);
        if (mode_ != RoundingNoise && std::isinf(model_->index(row, LayerTableModel::Sqnr).data(LayerTableModel::MetricRole).toDouble()))
            name += QStringLiteral(" \u221e");  // exact: infinite SQNR, no bar
        // Category names must be unique: two layers with the same short name keep their row.
        if (names.contains(name))
            name += QStringLiteral(" #%1").arg(row);
        names << name;
        fullNames_ << full;
    }
    // Horizontal bar charts draw the first category at the bottom, and Qt 6.4's category axis
    // ignores setReverse(): the categories (and the bars) go in from the last layer to the first,
    // so the first layer is on top, as in the table. barOfRow() maps between the two orders.
    std::reverse(names.begin(), names.end());
    auto* y = new QBarCategoryAxis(c);
    y->append(names);
    y->setTruncateLabels(false);   // every name whole: the chart is as wide as the longest needs
    auto* x = new QValueAxis(c);
    x->setTitleText(unit);
    x->setLabelFormat("%.3g");
    c->addAxis(y, Qt::AlignLeft);
    c->addAxis(x, Qt::AlignBottom);
    series_->attachAxis(x);
    series_->attachAxis(y);
    double maxValue = 0;
    for (QBarSet* set : series_->barSets())
        for (int i = 0; i < set->count(); ++i)
            maxValue = std::max(maxValue, set->at(i));
    if (mode_ == RoundingNoise) {
        // Uniform rounding noise has an RMS of step/sqrt(12): the reference a well-calibrated
        // uniform layer sits on.
        const double reference = 1.0 / std::sqrt(12.0);
        auto* line = segment(c, {reference, -0.5}, {reference, rows - 0.5}, QPen(red, 2, Qt::DashLine),
                             tr("uniform noise 1/\u221a12 = 0.289"));
        c->addSeries(line);
        line->attachAxis(x);
        line->attachAxis(y);
        maxValue = std::max(maxValue, reference);
    }
    x->setRange(0, maxValue > 0 ? maxValue * 1.1 : 1);
    x->applyNiceNumbers();
    // One row of bars per layer, readable however many layers there are: the window scrolls.
    const int rowHeight = 10 + 9 * int(series_->count());
    setMinimumHeight(std::max(240, rows * rowHeight + 110));
    connect(series_, &QHorizontalBarSeries::clicked, this, [this](int index, QBarSet*) { emit layerClicked(rowOfBar(index)); });
    connect(series_, &QHorizontalBarSeries::hovered, this, [this](bool on, int index, QBarSet* set) {
        const QString text = on ? barDescription(index, set) : QString();
        setToolTip(text);  // shown by the view's own tool-tip event, which would hide a bare showText
        if (on)
            QToolTip::showText(QCursor::pos(), text, this);
    });
    setSelectedLayer(selected_);
}

// ---- ImageErrorChart ---------------------------------------------------------------------------

ImageErrorChart::ImageErrorChart(QWidget* parent) : ChartView(tr("image_errors"), parent) {}

void ImageErrorChart::setErrors(const QStringList& layers, const QList<double>& imageSqnr, const QList<double>& allSqnr,
                                const QString& title)
{
    QChart* c = chart();
    prepareChart(c);
    c->setTitle(title);
    if (layers.isEmpty())
        return;
    auto* series = new QBarSeries(c);
    auto add = [&](const QList<double>& values, const QString& name, QColor colour) {
        auto* set = new QBarSet(name, series);
        set->setColor(colour);
        for (double v : values)
            set->append(std::isfinite(v) ? v : 0.0);
        series->append(set);
    };
    add(imageSqnr, tr("this image"), purple);
    add(allSqnr, tr("all evaluation images"), blue);
    c->addSeries(series);
    // More layers than leave room for a name under each pair of bars (a MobileNet's 28 names were
    // all elided to "..."): number them in table order, and name each bar on hover.
    auto* x = new QBarCategoryAxis(c);
    const bool numbered = layers.size() > kMaxNamedImageErrorLayers;
    QStringList categories;
    for (qsizetype i = 0; i < layers.size(); ++i)
        categories << (numbered ? QString::number(i + 1) : shortLayerName(layers[i]));
    x->append(categories);
    if (numbered)
        x->setTitleText(tr("layer, numbered as in the table (hover a bar for its name)"));
    else if (layers.size() > 8)
        x->setLabelsAngle(-40);
    connect(series, &QBarSeries::hovered, this, [this, layers](bool on, int index, QBarSet* set) {
        const QString text = on && index >= 0 && index < layers.size()
                                 ? QStringLiteral("%1\n%2: %3 dB").arg(layers[index], set->label()).arg(set->at(index), 0, 'f', 1)
                                 : QString();
        setToolTip(text);  // as ErrorChart: the view's own tool-tip event would hide a bare showText
        if (!text.isEmpty())
            QToolTip::showText(QCursor::pos(), text, this);
    });
    auto* y = new QValueAxis(c);
    y->setTitleText(tr("SQNR (dB)"));
    double maxValue = 1;
    for (QBarSet* set : series->barSets())
        for (int i = 0; i < set->count(); ++i)
            maxValue = std::max(maxValue, set->at(i));
    y->setRange(0, maxValue * 1.1);
    y->applyNiceNumbers();
    c->addAxis(x, Qt::AlignBottom);
    c->addAxis(y, Qt::AlignLeft);
    series->attachAxis(x);
    series->attachAxis(y);
}

QBarCategoryAxis* ImageErrorChart::layerAxis() const
{
    for (QAbstractAxis* axis : chart()->axes(Qt::Horizontal))
        if (auto* categories = qobject_cast<QBarCategoryAxis*>(axis))
            return categories;
    return nullptr;
}

}  // namespace qe
