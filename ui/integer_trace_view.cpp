#include "integer_trace_view.h"

#include "session.h"

#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QShowEvent>
#include <QSpinBox>
#include <QSplitter>
#include <QTableWidget>
#include <QTextBrowser>
#include <QVBoxLayout>

namespace qe {

namespace {

// More rows than a student reads; the sum is over all of them all the same.
constexpr int kShownTerms = 4096;

QString bracketed(const std::vector<std::int64_t>& c)
{
    QStringList parts;
    for (std::int64_t v : c)
        parts << QString::number(v);
    return "[" + parts.join(", ") + "]";
}

QString real(double v, int decimals = 6) { return QString::number(v, 'g', decimals); }

}  // namespace

IntegerTraceView::IntegerTraceView(Session* session, QWidget* parent) : QWidget(parent), session_(session)
{
    heading_ = new QLabel(tr("Select a Conv, Gemm or MatMul layer that runs in integers."), this);
    heading_->setWordWrap(true);
    image_ = new QSpinBox(this);
    image_->setRange(0, 0);
    image_->setPrefix(tr("image "));
    coordinateRow_ = new QWidget(this);
    auto* coordinateLayout = new QHBoxLayout(coordinateRow_);
    coordinateLayout->setContentsMargins(0, 0, 0, 0);
    steps_ = new QTextBrowser(this);
    steps_->setObjectName("traceSteps");
    terms_ = new QTableWidget(0, 7, this);
    terms_->setObjectName("traceTerms");
    terms_->setHorizontalHeaderLabels({tr("input element"), tr("x"), tr("x \u2212 z_x"), tr("w"), tr("w \u2212 z_w"),
                                       tr("product"), tr("running sum")});
    terms_->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
    terms_->setEditTriggers(QAbstractItemView::NoEditTriggers);

    auto* controls = new QHBoxLayout;
    controls->addWidget(new QLabel(tr("Trace the output value at"), this));
    controls->addWidget(image_);
    controls->addWidget(coordinateRow_);
    controls->addStretch(1);
    auto* split = new QSplitter(Qt::Vertical, this);
    split->addWidget(steps_);
    split->addWidget(terms_);
    split->setStretchFactor(0, 3);
    split->setStretchFactor(1, 2);
    auto* layout = new QVBoxLayout(this);
    layout->addWidget(heading_);
    layout->addLayout(controls);
    layout->addWidget(split, 1);

    connect(image_, &QSpinBox::valueChanged, this, [this](int image) {
        imageIndex_ = std::size_t(image);
        request();
    });
    connect(session_, &Session::integerTraceReady, this, &IntegerTraceView::show);
    connect(session_, &Session::evaluated, this, &IntegerTraceView::request);  // the configuration may have changed
    connect(session_, &Session::integerTraceFailed, this, &IntegerTraceView::showFailure);
}

void IntegerTraceView::setLayer(const std::string& layer)
{
    if (layer == layer_)
        return;
    layer_ = layer;
    position_.clear();
    request();
}

void IntegerTraceView::setTarget(std::size_t image, const std::vector<std::int64_t>& position)
{
    imageIndex_ = image;
    position_ = position;
    const QSignalBlocker blocker(image_);
    image_->setMaximum(std::max(image_->maximum(), int(image)));
    image_->setValue(int(image));
    request();
}

void IntegerTraceView::refresh() { request(); }

void IntegerTraceView::showEvent(QShowEvent* event)
{
    QWidget::showEvent(event);
    request();
}

void IntegerTraceView::request()
{
    // A trace runs the int8 engine on an image: only for the tab in front.
    if (layer_.empty() || !session_->evaluation() || !isVisible())
        return;
    image_->setMaximum(std::max<int>(0, int(session_->evaluation()->metrics.images) - 1));
    session_->requestIntegerTrace(layer_, imageIndex_, position_);
}

void IntegerTraceView::makeCoordinateBoxes(const IntegerTrace& t)
{
    const std::size_t rank = t.outputShape.size();
    if (coordinates_.size() + 1 != rank) {
        qDeleteAll(coordinateRow_->findChildren<QWidget*>(QString(), Qt::FindDirectChildrenOnly));
        coordinates_.clear();
        QStringList names;
        if (t.opType == "Conv")
            names = {tr("channel "), tr("y "), tr("x ")};
        for (std::size_t d = 1; d < rank; ++d) {
            auto* box = new QSpinBox(coordinateRow_);
            const std::size_t fromEnd = rank - d;
            box->setPrefix(names.size() == int(rank) - 1 ? names[int(d) - 1] : fromEnd == 1 ? tr("column ") : tr("row "));
            coordinateRow_->layout()->addWidget(box);
            coordinates_.push_back(box);
            connect(box, &QSpinBox::valueChanged, this, [this] {
                position_ = {0};
                for (QSpinBox* b : coordinates_)
                    position_.push_back(b->value());
                request();
            });
        }
    }
    for (std::size_t d = 1; d < rank; ++d) {
        const QSignalBlocker blocker(coordinates_[d - 1]);
        coordinates_[d - 1]->setRange(0, int(t.outputShape[d] - 1));
        coordinates_[d - 1]->setValue(int(t.position[d]));
    }
}

void IntegerTraceView::show(std::shared_ptr<const IntegerTrace> trace)
{
    if (!trace || trace->layer != layer_)
        return;
    trace_ = trace;
    const IntegerTrace& t = *trace;
    position_ = t.position;
    makeCoordinateBoxes(t);
    heading_->setText(tr("<b>%1</b> (%2): output element %3 of %4, on image %5, as the int8 engine computes it.")
                          .arg(QString::fromStdString(t.layer), QString::fromStdString(t.opType), bracketed(t.position),
                               bracketed(t.outputShape))
                          .arg(imageIndex_));
    const std::size_t padded = std::count_if(t.terms.begin(), t.terms.end(), [](const IntegerTraceTerm& term) { return term.padding; });
    const double mantissa = std::ldexp(double(t.multiplier), -31);
    QString html = "<table cellspacing=0 cellpadding=4 border=1 style='border-collapse: collapse'>";
    auto row = [&html](const QString& step, const QString& how, const QString& value) {
        html += "<tr><td><b>" + step + "</b></td><td>" + how + "</td><td align=right><b>" + value + "</b></td></tr>";
    };
    row(tr("1. products"),
        tr("%1 products (x \u2212 z<sub>x</sub>)(w \u2212 z<sub>w</sub>) with z<sub>x</sub> = %2 (the input's zero-point), z<sub>w</sub> = %3 (the weights'); "
           "%4 of them fall in the padding, where x = z<sub>x</sub> and the product is 0. The table below lists them.")
            .arg(t.terms.size())
            .arg(t.inputZeroPoint)
            .arg(t.weightZeroPoint)
            .arg(padded),
        QString());
    row(tr("2. int32 sum"), tr("\u03a3 (x \u2212 z<sub>x</sub>)(w \u2212 z<sub>w</sub>)"), QString::number(t.accumulator));
    row(tr("3. bias"),
        tr("b / (s<sub>x</sub>\u00b7s<sub>w</sub>) = %1 / (%2 \u00b7 %3), rounded: the bias in accumulator units")
            .arg(real(t.bias), real(t.inputScale), real(t.weightScale)),
        QString::number(t.biasCode));
    row(tr("4. accumulator"), tr("%1 + %2").arg(t.accumulator).arg(t.biasCode), QString::number(t.biased));
    row(tr("5. multiplier"),
        tr("M = s<sub>x</sub>\u00b7s<sub>w</sub> / s<sub>y</sub> = %1 \u00b7 %2 / %3 = %4, stored as a Q0.31 mantissa m = %5 (m / 2\u00b3\u00b9 = %6) "
           "and a right shift n = %7: M = m \u00b7 2<sup>\u2212%7</sup>")
            .arg(real(t.inputScale), real(t.weightScale), real(t.outputScale), real(t.realMultiplier, 9))
            .arg(t.multiplier)
            .arg(real(mantissa, 9))
            .arg(t.rightShift),
        QString::number(t.multiplier));
    row(tr("6. rescale"),
        tr("%1 \u00b7 m = %2 (64 bits), divided by 2<sup>%3</sup> = %4 exactly; rounded half to even%5")
            .arg(t.biased)
            .arg(t.product)
            .arg(t.rightShift)
            .arg(real(std::ldexp(double(t.product), -t.rightShift), 9))
            .arg(t.tie ? tr(" (an exact tie: to the even neighbour)") : QString()),
        QString::number(t.rounded));
    row(tr("7. zero-point"), tr("%1 + z<sub>y</sub> (%2)").arg(t.rounded).arg(t.outputZeroPoint), QString::number(t.withZeroPoint));
    row(tr("8. clamp"),
        tr("to the codes [%1, %2]%3%4")
            .arg(t.codeMin)
            .arg(t.codeMax)
            .arg(t.codeMin > (t.outputSigned ? -128 : 0) ? tr(" (a fused Relu/Clip raises the lowest code)") : QString())
            .arg(t.clamped ? tr(": clamped") : QString()),
        QString::number(t.code));
    row(tr("int8 engine"),
        t.engineCode == t.code ? tr("the engine's own kernels wrote the same code at this position \u2714")
                               : tr("the engine wrote another code here \u2718"),
        QString::number(t.engineCode));
    row(tr("as a real value"), tr("s<sub>y</sub>\u00b7(q \u2212 z<sub>y</sub>) = %1 \u00b7 (%2 \u2212 %3)").arg(real(t.outputScale)).arg(t.code).arg(t.outputZeroPoint),
        real(t.dequantized));
    html += "</table>";
    steps_->setHtml(html);

    const int shown = std::min<int>(int(t.terms.size()), kShownTerms);
    terms_->setRowCount(shown);
    std::int64_t running = 0;
    for (int i = 0; i < shown; ++i) {
        const IntegerTraceTerm& term = t.terms[std::size_t(i)];
        running += term.product;
        const QStringList cells{term.padding ? tr("%1 (padding)").arg(bracketed(term.input)) : bracketed(term.input),
                                QString::number(term.inputCode),
                                QString::number(term.inputCode - t.inputZeroPoint),
                                QString::number(term.weightCode),
                                QString::number(term.weightCode - t.weightZeroPoint),
                                QString::number(term.product),
                                QString::number(running)};
        for (int c = 0; c < cells.size(); ++c) {
            auto* item = new QTableWidgetItem(cells[c]);
            item->setTextAlignment((c == 0 ? Qt::AlignLeft : Qt::AlignRight) | Qt::AlignVCenter);
            if (term.padding)
                item->setForeground(QColor(120, 120, 120));
            terms_->setItem(i, c, item);
        }
    }
    emit traced();
}

void IntegerTraceView::showFailure(const QString& layer, const QString& message)
{
    if (layer.toStdString() != layer_)
        return;
    trace_.reset();
    heading_->setText(tr("Cannot trace %1: %2").arg(layer, message));
    steps_->clear();
    terms_->setRowCount(0);
    emit traced();
}

}  // namespace qe
