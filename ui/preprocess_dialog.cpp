#include "preprocess_dialog.h"

#include "common/error.h"
#include "data/dataset.h"
#include "engine/graph_preparation.h"
#include "study/study.h"

#include <QComboBox>
#include <QDialogButtonBox>
#include <QDoubleSpinBox>
#include <QFileInfo>
#include <QFormLayout>
#include <QLabel>
#include <QLineEdit>
#include <QSpinBox>

#include <nlohmann/json.hpp>

#include <charconv>

namespace qe {

namespace {

QString joinFloats(const std::vector<float>& values)
{
    QStringList parts;
    for (float v : values)
        parts << shortestText(v);
    return parts.join(", ");
}

std::vector<float> parseFloats(const QString& text, const char* field)
{
    std::vector<float> values;
    for (const QString& part : text.split(',', Qt::SkipEmptyParts)) {
        bool ok = false;
        const float v = part.trimmed().toFloat(&ok);
        if (!ok)
            throw Error(std::string(field) + ": expected numbers separated by commas, got '" + text.toStdString() + "'");
        values.push_back(v);
    }
    if (values.empty())
        throw Error(std::string(field) + ": expected at least one number");
    return values;
}

// The preset a model's input suggests: gray models are usually MNIST-like, colour ones ImageNet-like.
int presetFor(const ModelInputs& inputs)
{
    const auto presets = Preprocess::presets();
    const ColorOrder wanted = inputs.channels == 1 ? ColorOrder::Gray : ColorOrder::Rgb;
    for (std::size_t i = 0; i < presets.size(); ++i)
        if (presets[i].second.color == wanted)
            return int(i);
    return 0;
}

}  // namespace

QString shortestText(float value)
{
    char buffer[32];
    const auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value);
    return error == std::errc() ? QString::fromLatin1(buffer, int(end - buffer)) : QString::number(double(value));
}

ModelInputs PreprocessDialog::inspect(const QString& modelPath, const QString& dataPath)
{
    const Graph graph = loadOnnx(modelPath.toStdString());
    const ImageInputGeometry input = imageInputGeometry(graph);
    ModelInputs inputs{input.channels, input.height, input.width, outputClassCount(graph), {}};
    if (!dataPath.isEmpty()) {
        try {
            for (const std::string& column : labelColumns(dataPath.toStdString()))
                inputs.labelColumns << QString::fromStdString(column);
        } catch (const Error&) {
            // Unreadable labels are the images' problem, reported when they are opened.
        }
    }
    return inputs;
}

PreprocessDialog::PreprocessDialog(const QString& modelPath, const ModelInputs& inputs, QWidget* parent)
    : QDialog(parent), preset_(new QComboBox(this)), color_(new QComboBox(this)), resizeShorter_(new QSpinBox(this)),
      cropFraction_(new QDoubleSpinBox(this)), scale_(new QLineEdit(this)), mean_(new QLineEdit(this)), std_(new QLineEdit(this)),
      classNames_(new QLineEdit(this)), labelColumn_(new QComboBox(this))
{
    setWindowTitle(tr("Preprocessing for %1").arg(QFileInfo(modelPath).fileName()));
    auto* form = new QFormLayout(this);
    auto* intro = new QLabel(tr("How do images become this model's input? The answer is saved beside the model as<br><tt>%1</tt>")
                                 .arg(QString::fromStdString(Preprocess::sidecarPath(modelPath.toStdString()).filename().string())),
                             this);
    form->addRow(intro);
    auto* shape = new QLabel(tr("%1 channel%2, %3 \u00d7 %4 pixels (N \u00d7 %1 \u00d7 %4 \u00d7 %3)")
                                 .arg(inputs.channels)
                                 .arg(inputs.channels == 1 ? "" : "s")
                                 .arg(inputs.width)
                                 .arg(inputs.height),
                             this);
    shape->setObjectName("inputShape");
    form->addRow(tr("Model input"), shape);
    auto* outputs = new QLabel(inputs.outputs > 0 ? tr("%1 classes").arg(inputs.outputs) : tr("unknown"), this);
    outputs->setObjectName("outputCount");
    form->addRow(tr("Model output"), outputs);
    for (const auto& [name, p] : Preprocess::presets())
        preset_->addItem(QString::fromStdString(name));
    color_->addItem("gray", int(ColorOrder::Gray));
    color_->addItem("rgb", int(ColorOrder::Rgb));
    color_->addItem("bgr", int(ColorOrder::Bgr));
    resizeShorter_->setRange(0, 4096);
    resizeShorter_->setSpecialValueText(tr("no resize"));
    cropFraction_->setRange(0.05, 1.0);
    cropFraction_->setDecimals(4);
    cropFraction_->setSingleStep(0.0125);
    classNames_->setPlaceholderText(tr("optional: names separated by commas"));
    form->addRow(tr("Preset"), preset_);
    form->addRow(tr("Colour"), color_);
    form->addRow(tr("Resize shorter side to"), resizeShorter_);
    form->addRow(tr("Central crop fraction"), cropFraction_);
    form->addRow(tr("Scale (pixel \u00d7 scale)"), scale_);
    form->addRow(tr("Mean (per channel)"), mean_);
    form->addRow(tr("Std (per channel)"), std_);
    form->addRow(tr("Class names"), classNames_);
    // Only a labels file with several numberings needs a choice; the one that fits comes first.
    if (inputs.labelColumns.size() >= 2) {
        std::vector<std::string> columns;
        for (const QString& column : inputs.labelColumns)
            columns.push_back(column.toStdString());
        const QString fits = QString::fromStdString(labelColumnForOutputs(columns, inputs.outputs));
        for (const QString& column : inputs.labelColumns)
            labelColumn_->addItem(column == fits ? tr("%1 (matches the %2 outputs)").arg(column).arg(inputs.outputs) : column, column);
        labelColumn_->setCurrentIndex(std::max(0, labelColumn_->findData(fits)));
        form->addRow(tr("Label column"), labelColumn_);
    } else {
        labelColumn_->hide();
    }
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
    form->addRow(buttons);
    connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    connect(preset_, &QComboBox::currentIndexChanged, this, [this](int index) {
        if (index >= 0)
            showPreset(Preprocess::presets()[std::size_t(index)].second);
    });
    preset_->setCurrentIndex(presetFor(inputs));
    showPreset(Preprocess::presets()[std::size_t(preset_->currentIndex())].second);
}

void PreprocessDialog::showPreset(const Preprocess& p)
{
    color_->setCurrentIndex(color_->findData(int(p.color)));
    resizeShorter_->setValue(p.resizeShorter);
    cropFraction_->setValue(p.cropFraction);
    scale_->setText(QString::number(p.scale, 'g', 15));
    mean_->setText(joinFloats(p.mean));
    std_->setText(joinFloats(p.stdDev));
}

Preprocess PreprocessDialog::preprocess() const
{
    Preprocess p;
    p.color = ColorOrder(color_->currentData().toInt());
    p.resizeShorter = resizeShorter_->value();
    p.cropFraction = cropFraction_->value();
    bool ok = false;
    p.scale = scale_->text().toDouble(&ok);
    if (!ok || p.scale <= 0)
        throw Error("scale: expected a positive number, got '" + scale_->text().toStdString() + "'");
    p.mean = parseFloats(mean_->text(), "mean");
    p.stdDev = parseFloats(std_->text(), "std");
    for (const QString& name : classNames_->text().split(',', Qt::SkipEmptyParts))
        p.classNames.push_back(name.trimmed().toStdString());
    if (labelColumn_->count() > 0)
        p.labelColumn = labelColumn_->currentData().toString().toStdString();
    // The sidecar's own validation, so the dialog never writes a file the loader would reject.
    return Preprocess::fromJson(p.toJson(), "preprocessing");
}

}  // namespace qe
