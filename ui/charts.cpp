#include "charts.h"

#include "common/atomic_file.h"
#include "common/error.h"
#include "layer_table_model.h"

#include <QAreaSeries>
#include <QBarCategoryAxis>
#include <QBarSeries>
#include <QBarSet>
#include <QBuffer>
#include <QContextMenuEvent>
#include <QFileDialog>
#include <QLegendMarker>
#include <QLineSeries>
#include <QLogValueAxis>
#include <QMenu>
#include <QMessageBox>
#include <QScatterSeries>
#include <QSvgGenerator>
#include <QToolTip>
#include <QValueAxis>

#include <algorithm>
#include <cmath>

namespace qe {

namespace {

// Colours that stay distinct on a projector and for the common colour-vision deficiencies
// (Okabe-Ito).
const QColor kBlue(0, 114, 178), kOrange(230, 159, 0), kRed(213, 94, 0), kGreen(0, 158, 115), kPurple(204, 121, 167),
    kSky(86, 180, 233), kYellow(240, 228, 66), kGrey(90, 90, 90);

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

void prepare(QChart* chart)
{
    chart->removeAllSeries();
    for (QAbstractAxis* axis : chart->axes())
        chart->removeAxis(axis), delete axis;
    chart->legend()->setAlignment(Qt::AlignBottom);
    chart->setMargins(QMargins(4, 4, 4, 4));
}

}  // namespace

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

// ---- HistogramChart ----------------------------------------------------------------------------

HistogramChart::HistogramChart(const QString& name, QWidget* parent) : ChartView(name, parent) {}

void HistogramChart::setHistogram(const std::optional<TensorHistogram>& histogram, const QString& title)
{
    histogram_ = histogram;
    title_ = title;
    rebuild();
}

void HistogramChart::setLogScale(bool on)
{
    logScale_ = on;
    rebuild();
}

void HistogramChart::rebuild()
{
    QChart* c = chart();
    prepare(c);
    c->setTitle(title_);
    if (!histogram_ || histogram_->histogram.counts.empty()) {
        c->legend()->hide();
        return;
    }
    c->legend()->show();
    const TensorHistogram& h = *histogram_;
    const Histogram& bins = h.histogram;
    const float width = bins.binWidth();
    // The observer's bins may extend past the data (see RangeObserver): draw the data's span, and
    // the clipping range and calibration ranges where they reach further.
    float lo = h.min, hi = h.max;
    if (h.clipRange) {
        lo = std::min(lo, h.clipRange->first);
        hi = std::max(hi, h.clipRange->second);
    }
    for (const auto& [method, range] : h.calibrationRanges) {
        lo = std::min(lo, range.first);
        hi = std::max(hi, range.second);
    }
    const float pad = std::max(1e-6f, 0.03f * (hi - lo));
    const double floor = logScale_ ? 0.5 : 0.0;  // log axes cannot show 0: empty bins sit on the floor
    // On a linear axis one spike (the exact zeros after a ReLU) would flatten everything else:
    // when the highest bin is over 4 times the next, the axis is scaled to the next one and the
    // spike runs off the top, with its count in the title.
    double peak = 1, second = 1;
    for (double count : bins.counts) {
        if (count > peak)
            second = peak, peak = count;
        else
            second = std::max(second, count);
    }
    QString title = title_;
    if (!logScale_ && peak > 4 * second) {
        title += tr("<br><small>the tallest bin (%1 values) runs off the scale; try the log scale</small>").arg(peak, 0, 'g', 3);
        peak = second;
    }
    c->setTitle(title);

    auto* all = new QLineSeries(c);
    auto* clipped = new QLineSeries(c);
    for (std::size_t k = 0; k < bins.counts.size(); ++k) {
        const double left = bins.low + float(k) * width, right = left + width;
        if (right < h.min - width || left > h.max + width)
            continue;
        const double count = std::max(floor, bins.counts[k]);
        const double centre = (left + right) / 2;
        const bool outside = h.clipRange && (centre < h.clipRange->first || centre > h.clipRange->second);
        all->append(left, count);
        all->append(right, count);
        clipped->append(left, outside ? count : floor);
        clipped->append(right, outside ? count : floor);
    }
    auto area = [&](QLineSeries* upper, QColor colour, const QString& name) {
        auto* base = new QLineSeries(c);
        for (const QPointF& p : upper->points())
            base->append(p.x(), floor);
        auto* series = new QAreaSeries(upper, base);
        QColor fill = colour;
        fill.setAlpha(150);
        series->setBrush(fill);
        series->setPen(QPen(colour, 1));
        series->setName(name);
        c->addSeries(series);
        return series;
    };
    area(all, kBlue, h.isWeight ? tr("weights") : tr("activations"));
    if (h.clipRange && h.clippedFraction > 0)
        area(clipped, kRed, tr("clipped %1%").arg(100.0 * h.clippedFraction, 0, 'g', 3));
    else
        delete clipped;

    // The calibration ranges, one bar per method above the histogram.
    const double top = logScale_ ? peak * 3 : peak * 1.08;
    const QColor methodColours[] = {kOrange, kGreen, kPurple, kSky, kGrey};
    std::vector<QAbstractSeries*> lines;
    int k = 0;
    for (const auto& [method, range] : h.calibrationRanges) {
        const double y = logScale_ ? top * std::pow(1.6, k) : top + peak * 0.07 * k;
        QPen pen(methodColours[k % 5], 3);
        auto* bar = segment(c, {range.first, y}, {range.second, y}, pen,
                            QString::fromStdString(method == "moving_average" ? std::string("moving avg") : method));
        bar->setPointsVisible(true);
        lines.push_back(bar);
        ++k;
    }
    const double ceiling = logScale_ ? top * std::pow(1.6, k + 1) : top + peak * 0.07 * (k + 1);

    // The levels: a rug of ticks on the floor, and full-height lines when there are few.
    if (!h.levels.empty()) {
        auto* rug = new QScatterSeries(c);
        rug->setMarkerShape(QScatterSeries::MarkerShapeRectangle);
        rug->setMarkerSize(5);
        rug->setColor(kGrey);
        rug->setBorderColor(kGrey);
        const double rugY = logScale_ ? 0.6 : peak * 0.01;
        for (float level : h.levels)
            if (level >= lo - pad && level <= hi + pad)
                rug->append(level, rugY);
        rug->setName(tr("%1 levels%2").arg(h.levels.size()).arg(h.isWeight ? tr(" (channel 0)") : QString()));
        lines.push_back(rug);
        if (h.levels.size() <= 16)
            for (float level : h.levels) {
                QPen pen(QColor(90, 90, 90, 120), 1, Qt::DotLine);
                auto* line = segment(c, {level, floor}, {level, top}, pen, {});
                lines.push_back(line);
            }
    }
    if (h.clipRange) {
        QPen pen(kRed, 2, Qt::DashLine);
        lines.push_back(segment(c, {h.clipRange->first, floor}, {h.clipRange->first, top}, pen,
                                tr("clip [%1, %2]").arg(h.clipRange->first, 0, 'g', 3).arg(h.clipRange->second, 0, 'g', 3)));
        lines.push_back(segment(c, {h.clipRange->second, floor}, {h.clipRange->second, top}, pen, {}));
    }
    for (QAbstractSeries* s : lines)
        c->addSeries(s);

    auto* x = new QValueAxis(c);
    x->setRange(lo - pad, hi + pad);
    x->setLabelFormat("%.3g");
    x->setTickCount(7);
    x->setTitleText(h.isWeight ? tr("weight value") : tr("activation value"));
    QAbstractAxis* y = nullptr;
    if (logScale_) {
        auto* log = new QLogValueAxis(c);
        log->setBase(10);
        log->setRange(floor, ceiling);
        log->setLabelFormat("%g");
        y = log;
    } else {
        auto* linear = new QValueAxis(c);
        linear->setRange(0, ceiling);
        linear->applyNiceNumbers();
        linear->setLabelFormat("%.3g");
        y = linear;
    }
    y->setTitleText(tr("count"));
    c->addAxis(x, Qt::AlignBottom);
    c->addAxis(y, Qt::AlignLeft);
    for (QAbstractSeries* s : c->series()) {
        s->attachAxis(x);
        s->attachAxis(y);
        if (s->name().isEmpty())
            hideFromLegend(c, s);
    }
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
        if (row >= 0)
            set->selectBar(row);
    }
}

QList<QBarSet*> ErrorChart::barSets() const
{
    return series_ ? series_->barSets() : QList<QBarSet*>{};
}

void ErrorChart::rebuild()
{
    QChart* c = chart();
    prepare(c);
    series_ = nullptr;
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
    series_ = new QBarSeries(c);
    auto makeSet = [&](int column, const QString& name, QColor colour) {
        auto* set = new QBarSet(name, series_);
        set->setColor(colour);
        set->setBorderColor(colour.darker(130));
        set->setSelectedColor(kYellow);
        for (int row = 0; row < rows; ++row) {
            const double v = model_->index(row, column).data(LayerTableModel::MetricRole).toDouble();
            // An exact layer has infinite SQNR and an inapplicable metric is NaN: no bar.
            set->append(std::isfinite(v) ? v : 0.0);
        }
        series_->append(set);
    };
    makeSet(accumulatedColumn, mode_ == RoundingNoise ? tr("rounding noise") : tr("accumulated"), kBlue);
    if (isolatedColumn >= 0)
        makeSet(isolatedColumn, tr("isolated"), kOrange);
    c->addSeries(series_);

    QStringList names;
    for (int row = 0; row < rows; ++row) {
        QString name = shortLayerName(model_->index(row, LayerTableModel::Name).data().toString());
        if (mode_ != RoundingNoise && std::isinf(model_->index(row, LayerTableModel::Sqnr).data(LayerTableModel::MetricRole).toDouble()))
            name += QStringLiteral(" \u221e");  // exact: infinite SQNR, no bar
        names << name;
    }
    auto* x = new QBarCategoryAxis(c);
    x->append(names);
    if (rows > 8)
        x->setLabelsAngle(-50);  // many layers: slanted, their names stay whole
    auto* y = new QValueAxis(c);
    y->setTitleText(unit);
    c->addAxis(x, Qt::AlignBottom);
    c->addAxis(y, Qt::AlignLeft);
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
        auto* line = segment(c, {-0.5, reference}, {rows - 0.5, reference}, QPen(kRed, 2, Qt::DashLine),
                             tr("uniform noise 1/\u221a12 = 0.289"));
        c->addSeries(line);
        line->attachAxis(x);
        line->attachAxis(y);
        maxValue = std::max(maxValue, reference);
    }
    y->setRange(0, maxValue > 0 ? maxValue * 1.1 : 1);
    y->applyNiceNumbers();
    connect(series_, &QBarSeries::clicked, this, [this](int index, QBarSet*) { emit layerClicked(index); });
    connect(series_, &QBarSeries::hovered, this, [this, names](bool on, int index, QBarSet* set) {
        if (on)
            QToolTip::showText(QCursor::pos(), QStringLiteral("%1 (%2): %3").arg(names.value(index), set->label()).arg(set->at(index), 0, 'g', 4), this);
    });
    setSelectedLayer(selected_);
}

// ---- HistoryChart ------------------------------------------------------------------------------

HistoryChart::HistoryChart(QWidget* parent) : ChartView(tr("history"), parent) {}

void HistoryChart::setHistory(const QList<Entry>& entries, const Entry& floatModel)
{
    QChart* c = chart();
    prepare(c);
    c->setTitle(tr("Configurations tried: accuracy against size"));
    if (entries.isEmpty())
        return;
    auto* path = new QLineSeries(c);
    path->setPen(QPen(QColor(150, 150, 150), 1, Qt::DotLine));
    path->setName(tr("order tried"));
    auto* tried = new QScatterSeries(c);
    tried->setName(tr("configurations"));
    tried->setColor(kBlue);
    tried->setMarkerSize(9);
    auto* current = new QScatterSeries(c);
    current->setName(tr("current"));
    current->setColor(kOrange);
    current->setMarkerSize(15);
    auto* reference = new QScatterSeries(c);
    reference->setName(tr("float"));
    reference->setMarkerShape(QScatterSeries::MarkerShapeRectangle);
    reference->setColor(kGreen);
    reference->setMarkerSize(11);
    double minX = floatModel.sizeKiB, maxX = floatModel.sizeKiB, minY = floatModel.top1, maxY = floatModel.top1;
    for (const Entry& e : entries) {
        path->append(e.sizeKiB, e.top1);
        tried->append(e.sizeKiB, e.top1);
        minX = std::min(minX, e.sizeKiB), maxX = std::max(maxX, e.sizeKiB);
        minY = std::min(minY, e.top1), maxY = std::max(maxY, e.top1);
    }
    current->append(entries.back().sizeKiB, entries.back().top1);
    reference->append(floatModel.sizeKiB, floatModel.top1);
    for (QAbstractSeries* s : std::initializer_list<QAbstractSeries*>{path, tried, reference, current})
        c->addSeries(s);
    auto* x = new QValueAxis(c);
    x->setTitleText(tr("model size (KiB)"));
    x->setRange(0, maxX * 1.08);
    x->setLabelFormat("%.0f");
    auto* y = new QValueAxis(c);
    y->setTitleText(tr("top-1 (%)"));
    const double spread = std::max(1.0, maxY - minY);
    y->setRange(std::max(0.0, minY - 0.15 * spread), std::min(100.0, maxY + 0.15 * spread));
    y->setLabelFormat("%.1f");
    c->addAxis(x, Qt::AlignBottom);
    c->addAxis(y, Qt::AlignLeft);
    for (QAbstractSeries* s : c->series())
        s->attachAxis(x), s->attachAxis(y);
    auto describe = [this, entries, floatModel](const QPointF& point, bool on) {
        if (!on)
            return;
        QString text = tr("float model: %1% at %2 KiB").arg(floatModel.top1, 0, 'f', 2).arg(floatModel.sizeKiB, 0, 'f', 1);
        for (const Entry& e : entries)
            if (std::abs(e.sizeKiB - point.x()) < 1e-6 && std::abs(e.top1 - point.y()) < 1e-6)
                text = tr("%1\ntop-1 %2%, agreement %3%, %4 KiB")
                           .arg(e.description).arg(e.top1, 0, 'f', 2).arg(e.agreement, 0, 'f', 2).arg(e.sizeKiB, 0, 'f', 1);
        QToolTip::showText(QCursor::pos(), text, this);
    };
    connect(tried, &QScatterSeries::hovered, this, describe);
    connect(current, &QScatterSeries::hovered, this, describe);
    connect(reference, &QScatterSeries::hovered, this, describe);
}

// ---- ImageErrorChart ---------------------------------------------------------------------------

ImageErrorChart::ImageErrorChart(QWidget* parent) : ChartView(tr("image_errors"), parent) {}

void ImageErrorChart::setErrors(const QStringList& layers, const QList<double>& imageSqnr, const QList<double>& allSqnr,
                                const QString& title)
{
    QChart* c = chart();
    prepare(c);
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
    add(imageSqnr, tr("this image"), kPurple);
    add(allSqnr, tr("all evaluation images"), kBlue);
    c->addSeries(series);
    auto* x = new QBarCategoryAxis(c);
    QStringList shortNames;
    for (const QString& layer : layers)
        shortNames << shortLayerName(layer);
    x->append(shortNames);
    if (layers.size() > 8)
        x->setLabelsAngle(-40);
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

}  // namespace qe
