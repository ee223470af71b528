#include "playground_view.h"

#include "common/error.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QMouseEvent>
#include <QPainter>
#include <QRegularExpression>
#include <QSpinBox>
#include <QTableWidget>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>

namespace qe {

namespace {

QString number(double v, int decimals = 4) { return QString::number(v, 'f', decimals); }

// "0.5, -1.2 3" -> values; std::nullopt (with the offending word) when one is not a number.
std::optional<std::vector<float>> parseValues(const QString& text, QString* bad)
{
    std::vector<float> values;
    for (const QString& word : text.split(QRegularExpression("[,;\\s]+"), Qt::SkipEmptyParts)) {
        bool ok = false;
        const float v = word.toFloat(&ok);
        if (!ok || !std::isfinite(v)) {
            *bad = word;
            return std::nullopt;
        }
        values.push_back(v);
    }
    return values;
}

QString joinValues(const std::vector<float>& values)
{
    QStringList words;
    for (float v : values)
        words << QString::number(double(v), 'g', 4);
    return words.join(", ");
}

}  // namespace

PlaygroundView::PlaygroundView(QWidget* parent) : QWidget(parent)
{
    values_ = new QLineEdit(this);
    values_->setObjectName("playgroundValues");
    values_->setToolTip(tr("The values to quantize, separated by commas (at most %1); or drag them on the line below")
                            .arg(PlaygroundSettings::kMaxValues));
    scheme_ = new QComboBox(this);
    for (const SchemeTraits& traits : schemeTable())
        if (traits.forActivations)
            scheme_->addItem(QString::fromUtf8(traits.displayName.data(), int(traits.displayName.size())), int(traits.scheme));
    bits_ = new QSpinBox(this);
    bits_->setSuffix(tr(" bits"));
    clip_ = new QCheckBox(tr("Clip to"), this);
    clip_->setToolTip(tr("Unchecked: the range is the values' minimum and maximum (min-max calibration)"));
    rangeMin_ = new QDoubleSpinBox(this);
    rangeMax_ = new QDoubleSpinBox(this);
    for (QDoubleSpinBox* box : {rangeMin_, rangeMax_}) {
        box->setRange(-1e6, 1e6);
        box->setDecimals(3);
        box->setSingleStep(0.1);
    }
    line_ = new NumberLine(this);
    table_ = new QTableWidget(0, 5, this);
    table_->setHorizontalHeaderLabels({tr("value x"), tr("code q"), tr("stored level"), tr("error (level \u2212 x)"), tr("clipped")});
    table_->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
    table_->verticalHeader()->setVisible(false);
    table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    summary_ = new QLabel(this);
    summary_->setWordWrap(true);
    summary_->setTextFormat(Qt::RichText);
    error_ = new QLabel(this);
    error_->setStyleSheet("color: #b00020");
    error_->setWordWrap(true);

    auto* valuesRow = new QHBoxLayout;
    valuesRow->addWidget(new QLabel(tr("Values:"), this));
    valuesRow->addWidget(values_, 1);
    auto* controls = new QHBoxLayout;
    controls->addWidget(scheme_);
    controls->addWidget(bits_);
    controls->addWidget(clip_);
    controls->addWidget(rangeMin_);
    controls->addWidget(new QLabel(tr("to"), this));
    controls->addWidget(rangeMax_);
    controls->addStretch(1);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(valuesRow);
    layout->addLayout(controls);
    layout->addWidget(error_);
    layout->addWidget(line_, 2);
    layout->addWidget(summary_);
    layout->addWidget(table_, 3);

    connect(values_, &QLineEdit::editingFinished, this, &PlaygroundView::readControls);
    connect(scheme_, &QComboBox::currentIndexChanged, this, &PlaygroundView::readControls);
    connect(bits_, &QSpinBox::valueChanged, this, &PlaygroundView::readControls);
    connect(clip_, &QCheckBox::toggled, this, &PlaygroundView::readControls);
    connect(rangeMin_, &QDoubleSpinBox::valueChanged, this, &PlaygroundView::readControls);
    connect(rangeMax_, &QDoubleSpinBox::valueChanged, this, &PlaygroundView::readControls);
    connect(line_, &NumberLine::valueDragged, this, [this](int index, float value) {
        PlaygroundSettings s = settings_;
        s.values.at(static_cast<std::size_t>(index)) = value;
        apply(s);
        showControls();
    });

    // A first tensor to play with: small activations with one outlier.
    PlaygroundSettings start;
    start.values = {-0.42f, -0.1f, 0.f, 0.13f, 0.37f, 0.55f, 0.8f, 2.4f};
    start.scheme = Scheme::Affine;
    start.bits = 3;
    setSettings(start);
}

void PlaygroundView::setSettings(const PlaygroundSettings& settings)
{
    apply(settings);
    showControls();
}

void PlaygroundView::showControls()
{
    const QSignalBlocker b1(values_), b2(scheme_), b3(bits_), b4(clip_), b5(rangeMin_), b6(rangeMax_);
    if (!values_->hasFocus())
        values_->setText(joinValues(settings_.values));
    scheme_->setCurrentIndex(scheme_->findData(int(settings_.scheme)));
    const SchemeTraits& traits = schemeTraits(settings_.scheme);
    bits_->setRange(traits.minBits, traits.maxBits);
    bits_->setValue(settings_.bits);
    bits_->setEnabled(traits.minBits != traits.maxBits);
    clip_->setChecked(settings_.rangeMin.has_value());
    rangeMin_->setEnabled(clip_->isChecked());
    rangeMax_->setEnabled(clip_->isChecked());
    if (playground_) {
        rangeMin_->setValue(playground_->rangeMin);
        rangeMax_->setValue(playground_->rangeMax);
    }
}

void PlaygroundView::readControls()
{
    PlaygroundSettings s = settings_;
    QString bad;
    const auto values = parseValues(values_->text(), &bad);
    if (!values) {
        error_->setText(tr("\"%1\" is not a number; expected values separated by commas.").arg(bad));
        return;
    }
    s.values = *values;
    s.scheme = Scheme(scheme_->currentData().toInt());
    const SchemeTraits& traits = schemeTraits(s.scheme);
    s.bits = std::clamp(bits_->value(), traits.minBits, traits.maxBits);
    if (clip_->isChecked()) {
        // Checked just now: start from the range in force, which the student then narrows.
        const bool fresh = !settings_.rangeMin && playground_;
        s.rangeMin = fresh ? playground_->rangeMin : float(rangeMin_->value());
        s.rangeMax = fresh ? playground_->rangeMax : float(rangeMax_->value());
    } else {
        s.rangeMin.reset();
        s.rangeMax.reset();
    }
    apply(s);
    showControls();
}

void PlaygroundView::apply(const PlaygroundSettings& settings)
{
    try {
        playground_ = quantizePlayground(settings);
        settings_ = settings;
        error_->clear();
    } catch (const Error& e) {
        error_->setText(QString::fromStdString(e.what()));
        return;
    }
    const Playground& p = *playground_;
    line_->setPlayground(playground_);
    table_->setRowCount(int(p.values.size()));
    for (int i = 0; i < int(p.values.size()); ++i) {
        const PlaygroundValue& v = p.values[std::size_t(i)];
        const QStringList cells{number(v.value), QString::number(v.code), number(v.dequantized), number(v.error),
                                v.clipped ? tr("yes") : QString()};
        for (int c = 0; c < cells.size(); ++c) {
            auto* item = new QTableWidgetItem(cells[c]);
            item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
            if (v.clipped)
                item->setForeground(QColor(176, 0, 32));
            table_->setItem(i, c, item);
        }
    }
    // The formulas with this tensor's numbers.
    QString text;
    const QString range = tr("[%1, %2]").arg(number(p.rangeMin, 3), number(p.rangeMax, 3));
    if (p.scale) {
        const double s = *p.scale;
        text = tr("<b>%1, %2 bits</b>: codes %3 to %4 (%5 levels); range %6 %7.<br>"
                  "step <b>s = %8</b>, zero-point <b>z = %9</b>: &nbsp; q = clamp(round(x / s) + z, %3, %4), &nbsp; "
                  "level = s\u00b7(q \u2212 z). Half a step is %10: no rounding error is larger inside the range.")
                   .arg(scheme_->currentText())
                   .arg(p.params.bits)
                   .arg(p.params.qmin)
                   .arg(p.params.qmax)
                   .arg(p.levels.size())
                   .arg(range, settings_.rangeMin ? tr("(clipped by hand)") : tr("(the values' min and max)"))
                   .arg(number(s, 5))
                   .arg(*p.zeroPoint)
                   .arg(number(s / 2, 5));
    } else {
        text = tr("<b>%1, %2 bits</b>: %3 levels in the range %4; not evenly spaced, so no single step: each value goes to the "
                  "nearest level.")
                   .arg(scheme_->currentText())
                   .arg(p.params.bits)
                   .arg(p.levels.size())
                   .arg(range);
    }
    text += tr("<br>Clipped: <b>%1</b> of %2 values. Largest error <b>%3</b>, RMS error %4, SQNR <b>%5</b>.")
                .arg(p.clipped)
                .arg(p.values.size())
                .arg(number(p.maxAbsError))
                .arg(number(p.rmsError))
                .arg(std::isfinite(p.sqnrDb) ? tr("%1 dB").arg(p.sqnrDb, 0, 'f', 1) : tr("infinite (every value is a level)"));
    summary_->setText(text);
    emit changed();
}

NumberLine::NumberLine(QWidget* parent) : QWidget(parent)
{
    setObjectName("numberLine");
    setMouseTracking(true);
    setToolTip(tr("Drag a value (a blue dot) sideways; the orange dot is the level it is stored as"));
}

void NumberLine::setPlayground(const std::optional<Playground>& playground)
{
    playground_ = playground;
    if (playground_ && dragged_ < 0) {  // the axis stays put while a value is dragged
        double lo = playground_->rangeMin, hi = playground_->rangeMax;
        for (const PlaygroundValue& v : playground_->values) {
            lo = std::min(lo, double(v.value));
            hi = std::max(hi, double(v.value));
        }
        const double margin = std::max(1e-3, (hi - lo) * 0.08);
        lo_ = lo - margin;
        hi_ = hi + margin;
    }
    update();
}

double NumberLine::xOf(double value) const
{
    const double left = 24, right = width() - 24.0;
    return left + (value - lo_) / (hi_ - lo_) * (right - left);
}

double NumberLine::valueAt(double x) const
{
    const double left = 24, right = width() - 24.0;
    return lo_ + (x - left) / (right - left) * (hi_ - lo_);
}

void NumberLine::paintEvent(QPaintEvent*)
{
    QPainter painter(this);
    painter.setRenderHint(QPainter::Antialiasing);
    painter.fillRect(rect(), palette().base());
    if (!playground_)
        return;
    const Playground& p = *playground_;
    const int axisY = height() * 2 / 3, valueY = this->valueY();
    // The clipping range, shaded; outside it every value lands on an end level.
    painter.fillRect(QRectF(QPointF(xOf(p.rangeMin), valueY - 14), QPointF(xOf(p.rangeMax), axisY + 10)), QColor(46, 125, 50, 28));
    painter.setPen(QPen(palette().text().color(), 1.5));
    painter.drawLine(QPointF(xOf(lo_), axisY), QPointF(xOf(hi_), axisY));
    // The levels: a tick each (those of a floating-point format thin out to one in n).
    const std::size_t every = std::max<std::size_t>(1, p.levels.size() / 256);
    painter.setPen(QPen(QColor(90, 90, 90), 1));
    for (std::size_t i = 0; i < p.levels.size(); i += every)
        painter.drawLine(QPointF(xOf(p.levels[i]), axisY - 8), QPointF(xOf(p.levels[i]), axisY + 8));
    const QFontMetrics metrics(font());
    // Few levels: each one's code under its tick, where they fit.
    if (p.scale && p.levels.size() <= 32 && xOf(p.levels.back()) - xOf(p.levels.front()) > 24.0 * double(p.levels.size())) {
        QFont small = font();
        small.setPointSizeF(font().pointSizeF() * 0.8);
        painter.setFont(small);
        painter.setPen(QColor(90, 90, 90));
        const QFontMetrics smallMetrics(small);
        for (float level : p.levels) {
            const QString code = QString::number(std::lround(level / *p.scale) + *p.zeroPoint);
            painter.drawText(QPointF(xOf(level) - smallMetrics.horizontalAdvance(code) / 2.0, axisY - 12), code);
        }
        painter.setFont(font());
    }
    // Zero, and the range's ends, labelled.
    painter.setPen(palette().text().color());
    auto label = [&](double v, const QString& text) {
        painter.drawText(QPointF(xOf(v) - metrics.horizontalAdvance(text) / 2.0, axisY + 10 + metrics.ascent()), text);
    };
    label(p.rangeMin, QString::number(p.rangeMin, 'g', 3));
    label(p.rangeMax, QString::number(p.rangeMax, 'g', 3));
    if (p.rangeMin < 0 && p.rangeMax > 0 && xOf(0) - xOf(p.rangeMin) > 30 && xOf(p.rangeMax) - xOf(0) > 30)
        label(0, "0");
    // Each value (blue, above) and the level it is stored as (orange on the axis; red when clipped).
    for (const PlaygroundValue& v : p.values) {
        const QColor stored = v.clipped ? QColor(176, 0, 32) : QColor(230, 120, 0);
        painter.setPen(QPen(stored, 1.2, Qt::DashLine));
        painter.drawLine(QPointF(xOf(v.value), valueY), QPointF(xOf(v.dequantized), axisY));
        painter.setPen(Qt::NoPen);
        painter.setBrush(stored);
        painter.drawEllipse(QPointF(xOf(v.dequantized), axisY), 5, 5);
        painter.setBrush(QColor(21, 101, 192));
        painter.drawEllipse(QPointF(xOf(v.value), valueY), 6, 6);
    }
}

void NumberLine::mousePressEvent(QMouseEvent* event)
{
    if (!playground_)
        return;
    double best = 12;  // pixels: how near a dot a press picks it
    dragged_ = -1;
    for (std::size_t i = 0; i < playground_->values.size(); ++i) {
        const double d = std::hypot(event->position().x() - xOf(playground_->values[i].value), event->position().y() - valueY());
        if (d < best) {
            best = d;
            dragged_ = int(i);
        }
    }
}

void NumberLine::mouseMoveEvent(QMouseEvent* event)
{
    if (dragged_ >= 0 && (event->buttons() & Qt::LeftButton)) {
        const double x = std::clamp(event->position().x(), xOf(lo_), xOf(hi_));
        emit valueDragged(dragged_, float(valueAt(x)));
    }
}

void NumberLine::mouseReleaseEvent(QMouseEvent*)
{
    dragged_ = -1;
    setPlayground(playground_);  // the axis fits the values again
}

}  // namespace qe
