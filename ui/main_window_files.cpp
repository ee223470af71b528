// MainWindow: opening and saving files (models, images, configurations), drag and drop, recent files,
// the title, and the question before unsaved changes are discarded.

#include "main_window.h"

#include "common/error.h"
#include "common/memory.h"
#include "background_job.h"
#include "config_document.h"
#include "preprocess_dialog.h"
#include "session.h"

#include <nlohmann/json.hpp>

#include <QCloseEvent>
#include <QDragEnterEvent>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QMenu>
#include <QMessageBox>
#include <QMimeData>
#include <QProgressBar>
#include <QInputDialog>
#include <QDialogButtonBox>
#include <QFormLayout>
#include <QLabel>
#include <QLocale>
#include <QSpinBox>
#include <QVBoxLayout>
#include <QSettings>
#include <QStandardPaths>
#include <QStatusBar>
#include <QToolButton>
#include <QUrl>

#include <set>

namespace qe {

namespace {

constexpr int kMaxRecentFiles = 10;

const QStringList kImageSuffixes = {"png", "jpg", "jpeg", "bmp"};

bool looksLikeImages(const QFileInfo& file)
{
    return file.isDir() || kImageSuffixes.contains(file.suffix().toLower()) || file.fileName().contains("-ubyte") ||
           file.suffix() == "bin";
}

// Which kind of JSON document `path` is, by its "format" key.
QString jsonFormat(const QString& path)
{
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly))
        return {};
    const QByteArray head = file.read(4096);
    if (head.contains("quantexplorer-preprocess"))
        return QStringLiteral("preprocess");
    return QStringLiteral("config");
}

}  // namespace

// ---- opening ------------------------------------------------------------------------------------

void MainWindow::openSession(const QString& modelPath, const QString& dataPath, const QString& configPath)
{
    // What Back to Previous Model offers once this model has loaded (showLoaded): nothing, unless
    // openFineTunedModel sets it after calling here. A model that fails to open changes nothing.
    previousOnLoad_.reset();
    pendingConfigPath_ = configPath;
    pendingConfig_.reset();
    keepConfigurationFor_.reset();
    // Scripted, a model without a sidecar is not asked about: it opens as the CLI opens it.
    const QString sidecar = QString::fromStdString(Preprocess::sidecarPath(modelPath.toStdString()).string());
    if (!QFileInfo::exists(sidecar))
        noteScripted(tr("%1 has no preprocessing sidecar: it opens with the defaults the CLI uses (raw 0..255 pixels, gray "
                        "for one input channel, RGB otherwise); open it once in the window, or write %2, to choose")
                         .arg(modelPath, sidecar));
    statusBar()->showMessage(tr("Loading %1 and %2 ...").arg(QFileInfo(modelPath).fileName(), QFileInfo(dataPath).fileName()));
    progress_->setRange(0, 0);
    progress_->show();
    cancel_->show();
    session_->open(modelPath, dataPath);
}

void MainWindow::openSessionWith(const QString& modelPath, const QString& dataPath, const QuantConfig& config,
                                 const QString& origin)
{
    openSession(modelPath, dataPath);
    pendingConfig_ = config;
    pendingConfigOrigin_ = origin;
}

void MainWindow::openFineTunedModel(const QString& path, const QString& dataPath, const QuantConfig& config)
{
    // What is shown now stays reachable: File > Back to Previous Model reopens it as it is.
    std::optional<PreviousModel> shown;
    if (!modelPath_.isEmpty())
        shown = PreviousModel{modelPath_, dataPath_, document_->config()};
    addRecent(path);
    openSessionWith(path, dataPath, config, tr("fine-tuned with QAT"));
    previousOnLoad_ = std::move(shown);
}

bool MainWindow::backToPreviousModel()
{
    if (!previousModel_ || !confirmDiscard())
        return false;
    const PreviousModel previous = *previousModel_;  // kept until it has loaded: a failure can be retried
    openSessionWith(previous.modelPath, previous.dataPath, previous.config,
                    tr("back to %1").arg(QFileInfo(previous.modelPath).fileName()));
    return true;
}

void MainWindow::openModel(const QString& path)
{
    if (!confirmDiscard())
        return;
    std::optional<Preprocess> sidecar;
    try {
        sidecar = Preprocess::loadSidecar(path.toStdString());
    } catch (const Error& e) {
        showError(QString::fromStdString(e.what()));
        return;
    }
    if (sidecar) {
        addRecent(path);
        openSession(path, dataPath_);
        return;
    }
    // The file is read as a model on a worker first: the question is asked (and a sidecar
    // written) only for a model the explorer can open, and shows its input and output.
    statusBar()->showMessage(tr("Reading %1 ...").arg(QFileInfo(path).fileName()));
    runInBackground(
        *QThreadPool::globalInstance(), this, [path, data = dataPath_] { return PreprocessDialog::inspect(path, data); },
        [this, path](JobOutcome<ModelInputs> outcome) {
            if (outcome.error) {
                pendingConfigPath_.clear();
                try {
                    std::rethrow_exception(outcome.error);
                } catch (const std::exception& e) {
                    showError(QString::fromStdString(e.what()));
                } catch (...) {
                    showError(tr("Unexpected error while reading %1").arg(path));
                }
                return;
            }
            statusBar()->clearMessage();
            askPreprocessingAndOpen(path, *outcome.value);
        });
}

void MainWindow::askPreprocessingAndOpen(const QString& path, const ModelInputs& inputs)
{
    // Asked once: the answer is saved beside the model for every later session.
    // A configuration dropped together with the model waits in pendingConfigPath_ meanwhile.
    const QString config = pendingConfigPath_;
    pendingConfigPath_.clear();
    if (scripted_) {  // nobody to ask: the CLI's defaults, said on stderr by openSession(), and no sidecar written
        addRecent(path);
        openSession(path, dataPath_, config);
        return;
    }
    PreprocessDialog dialog(path, inputs, this);
    if (dialog.exec() != QDialog::Accepted)
        return;
    try {
        const Preprocess p = dialog.preprocess();
        p.save(Preprocess::sidecarPath(path.toStdString()));
    } catch (const Error& e) {
        showError(QString::fromStdString(e.what()));
        return;
    }
    addRecent(path);
    openSession(path, dataPath_, config);
}

void MainWindow::setEvaluationImages(int images)
{
    setEvaluationSettings(images, session_->cacheBudget());
}

void MainWindow::setEvaluationSettings(int images, std::optional<std::uint64_t> cacheBudget)
{
    images = std::max(1, images);
    if (std::size_t(images) == session_->evaluationImages() && cacheBudget == session_->cacheBudget())
        return;
    session_->setEvaluationImages(std::size_t(images));
    session_->setCacheBudget(cacheBudget);
    if (!modelPath_.isEmpty() && !dataPath_.isEmpty() && session_->snapshot()) {
        // The same model and images again, with the configuration and its history kept.
        pendingConfigPath_.clear();
        const auto snapshot = session_->snapshot();
        const std::optional<PreviousModel> previous = previousModel_;
        openSession(modelPath_, dataPath_);
        keepConfigurationFor_ = snapshot->layerNames();
        previousOnLoad_ = previous;  // Back to Previous Model still goes where it went
    }
}

void MainWindow::askEvaluationSettings()
{
    QDialog dialog(this);
    dialog.setWindowTitle(tr("Evaluation Images and Memory"));
    auto* images = new QSpinBox(&dialog);
    images->setRange(1, 10'000'000);
    images->setValue(int(session_->evaluationImages()));
    auto* budget = new QSpinBox(&dialog);
    const double machineMiB = double(physicalMemoryBytes()) / (1 << 20);
    budget->setRange(0, std::max(1, int(machineMiB)));
    budget->setSuffix(tr(" MiB"));
    budget->setValue(int(double(session_->cacheBudget().value_or(QuantEvaluator::defaultCacheBudget())) / (1 << 20)));
    auto* form = new QFormLayout;
    form->addRow(tr("Evaluation images:"), images);
    form->addRow(tr("Memory for the evaluation:"), budget);
    auto* note = new QLabel(tr("<small>The first images of the data set are evaluated. To recompute only what follows an "
                               "edited layer, the activations of the later layers are kept for every image, from the earliest "
                               "layer whose activations fit in the memory given, which also holds the images and the "
                               "batches being measured (default a quarter of this machine's %1). An edit of a layer "
                               "before that runs the model again, with the same results, more slowly. Peak memory so "
                               "far: %2.</small>")
                                .arg(QLocale().formattedDataSize(qint64(physicalMemoryBytes()), 1, QLocale::DataSizeTraditionalFormat),
                                     QLocale().formattedDataSize(qint64(peakResidentBytes()), 1, QLocale::DataSizeTraditionalFormat)),
                            &dialog);
    note->setWordWrap(true);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, &dialog);
    connect(buttons, &QDialogButtonBox::accepted, &dialog, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, &dialog, &QDialog::reject);
    auto* layout = new QVBoxLayout(&dialog);
    layout->addLayout(form);
    layout->addWidget(note);
    layout->addWidget(buttons);
    if (dialog.exec() == QDialog::Accepted)
        setEvaluationSettings(images->value(), std::uint64_t(budget->value()) << 20);
}

void MainWindow::openImages(const QString& path)
{
    addRecent(path);
    // Same model, other images: the configuration and its undo history stay when the reloaded
    // model's layers are still the ones it was made for (startConfiguration checks).
    pendingConfigPath_.clear();
    const auto snapshot = session_->snapshot();
    openSession(modelPath_, path);
    if (snapshot)
        keepConfigurationFor_ = snapshot->layerNames();
}

bool MainWindow::openConfiguration(const QString& path)
{
    const auto snapshot = session_->snapshot();
    if (!snapshot) {
        pendingConfigPath_ = path;
        return true;
    }
    try {
        const QuantConfig config = QuantConfig::load(path.toStdString(), snapshot->layerNames());
        document_->edit(config, tr("open %1").arg(QFileInfo(path).fileName()));
        document_->markSaved(path);
        addRecent(path);
        return true;
    } catch (const Error& e) {
        showError(QString::fromStdString(e.what()));
        return false;
    }
}

void MainWindow::openPath(const QString& path)
{
    const QFileInfo info(path);
    if (!info.exists()) {
        showError(tr("%1: no such file or folder").arg(path));
        return;
    }
    if (info.suffix().toLower() == "onnx")
        openModel(path);
    else if (info.suffix().toLower() == "json") {
        if (jsonFormat(path) == "preprocess")
            showError(tr("%1 is a preprocessing sidecar: it is read from beside its model when the model opens.").arg(path));
        else
            openConfiguration(path);
    } else if (looksLikeImages(info) || info.fileName().endsWith(".gz"))
        openImages(path);
    else
        showError(tr("%1: expected an ONNX model (.onnx), a configuration (.json), a folder of images, an idx or "
                     "CIFAR file, or a PNG/JPEG/BMP image")
                      .arg(path));
}

void MainWindow::dragEnterEvent(QDragEnterEvent* event)
{
    if (event->mimeData()->hasUrls())
        event->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* event)
{
    // A model first, so that images and a configuration dropped with it apply to it.
    QStringList paths;
    for (const QUrl& url : event->mimeData()->urls())
        if (url.isLocalFile())
            paths << url.toLocalFile();
    std::stable_sort(paths.begin(), paths.end(), [](const QString& a, const QString& b) {
        auto rank = [](const QString& p) { return p.endsWith(".onnx") ? 0 : p.endsWith(".json") ? 2 : 1; };
        return rank(a) < rank(b);
    });
    QString model, images, config;
    for (const QString& path : paths) {
        const QFileInfo info(path);
        if (info.suffix().toLower() == "onnx")
            model = path;
        else if (info.suffix().toLower() == "json")
            config = path;
        else if (images.isEmpty())
            images = path;
    }
    event->acceptProposedAction();
    if (!model.isEmpty() && !images.isEmpty()) {
        dataPath_ = images;
        addRecent(images);
    }
    if (!model.isEmpty()) {
        openModel(model);
        if (!config.isEmpty())
            pendingConfigPath_ = config;
    } else if (!images.isEmpty()) {
        openPath(images);
        if (!config.isEmpty())
            pendingConfigPath_ = config;
    } else if (!config.isEmpty()) {
        openPath(config);
    }
}

void MainWindow::addRecent(const QString& path)
{
    QSettings settings;
    QStringList recent = settings.value("recentFiles").toStringList();
    recent.removeAll(QFileInfo(path).absoluteFilePath());
    recent.prepend(QFileInfo(path).absoluteFilePath());
    while (recent.size() > kMaxRecentFiles)
        recent.removeLast();
    settings.setValue("recentFiles", recent);
}

void MainWindow::rebuildRecentMenu()
{
    recentMenu_->clear();
    const QStringList recent = QSettings().value("recentFiles").toStringList();
    for (const QString& path : recent)
        recentMenu_->addAction(QFileInfo(path).fileName() + "  \u2014  " + QFileInfo(path).path(), this, [this, path] { openPath(path); });
    if (recent.isEmpty())
        recentMenu_->addAction(tr("(none)"))->setEnabled(false);
}

bool MainWindow::saveConfiguration(const QString& path)
{
    try {
        document_->save(path, QFileInfo(modelPath_).fileName());
        addRecent(path);
        statusBar()->showMessage(tr("Saved %1").arg(path), 5000);
        return true;
    } catch (const Error& e) {
        showError(QString::fromStdString(e.what()));
        return false;
    }
}

bool MainWindow::confirmDiscard(const QString& why)
{
    if (!document_->isModified())
        return true;
    if (endScriptedRun((why.isEmpty() ? QString() : why + " ") + tr("The configuration has unsaved changes; nobody is there to save them.")))
        return false;
    const auto answer = QMessageBox::question(this, tr("Unsaved configuration"),
                                              (why.isEmpty() ? QString() : why + "\n\n") +
                                                  tr("The configuration has unsaved changes. Save them first?"),
                                              QMessageBox::Save | QMessageBox::Discard | QMessageBox::Cancel);
    if (answer == QMessageBox::Cancel)
        return false;
    if (answer == QMessageBox::Save) {
        const QString path = QFileDialog::getSaveFileName(this, tr("Save Configuration"), document_->path(), tr("Configurations (*.json)"));
        return !path.isEmpty() && saveConfiguration(path);
    }
    return true;
}

void MainWindow::closeEvent(QCloseEvent* event)
{
    if (session_->isExporting() &&
        QMessageBox::question(this, tr("Export Running"),
                              tr("%1 is still running. Stop it and close? Nothing half-written is left behind.").arg(exportDescription_),
                              QMessageBox::Yes | QMessageBox::No) != QMessageBox::Yes) {
        event->ignore();
        return;
    }
    if (confirmDiscard())
        event->accept();
    else
        event->ignore();
}

void MainWindow::updateTitle()
{
    const QString model = modelPath_.isEmpty() ? QString() : QFileInfo(modelPath_).fileName() + " \u2014 ";
    const QString config = document_->path().isEmpty() ? tr("untitled configuration") : QFileInfo(document_->path()).fileName();
    setWindowTitle(QStringLiteral("%1%2[*] \u2014 Quantization Explorer").arg(model, config));
    setWindowModified(document_->isModified());
}

QString MainWindow::autosavePath() const
{
    return QStandardPaths::writableLocation(QStandardPaths::AppDataLocation) + "/autosave/" +
           QFileInfo(modelPath_).completeBaseName() + ".json";
}

void MainWindow::startConfiguration(const SessionSnapshot& snapshot)
{
    // New images for the same model: the configuration and its history stay when the layers
    // still match; otherwise it cannot apply, and unsaved changes are offered for saving first.
    if (keepConfigurationFor_) {
        const bool same = *keepConfigurationFor_ == snapshot.layerNames();
        keepConfigurationFor_.reset();
        if (same) {
            document_->setAutosavePath(autosavePath());
            session_->setConfig(document_->config());
            showConfigChanged();
            return;
        }
        confirmDiscard(tr("%1 no longer has the layers the configuration was made for, so the configuration starts "
                          "again from the model's default.")
                           .arg(QFileInfo(modelPath_).fileName()));
    }
    // The file asked for, else the model's own quantization (a QDQ model), else the W8A8 default.
    QuantConfig config;
    config.model = QFileInfo(modelPath_).fileName().toStdString();
    QString path;
    if (snapshot.modelConfig)
        config = *snapshot.modelConfig;
    if (!pendingConfigPath_.isEmpty()) {
        try {
            config = QuantConfig::load(pendingConfigPath_.toStdString(), snapshot.layerNames());
            path = pendingConfigPath_;
        } catch (const Error& e) {
            showError(QString::fromStdString(e.what()) + tr("\n\nThe default W8A8 configuration is used instead."));
        }
        pendingConfigPath_.clear();
    }
    QString origin = path.isEmpty() ? (snapshot.modelConfig ? tr("the model's own") : tr("W8A8 default")) : QFileInfo(path).fileName();
    if (pendingConfig_) {
        // A configuration in memory (the fine-tuned model's, or the one to go back to); only
        // layers of this model, as when it is read from a file.
        try {
            config = QuantConfig::fromJson(pendingConfig_->toJson(), pendingConfigOrigin_.toStdString(), snapshot.layerNames());
            origin = pendingConfigOrigin_;
        } catch (const Error& e) {
            showError(QString::fromStdString(e.what()) + tr("\n\nThe default W8A8 configuration is used instead."));
        }
        pendingConfig_.reset();
    }
    const QString start = origin;
    document_->setAutosavePath(autosavePath());
    document_->reset(config, path, tr("start: %1").arg(start));
}

}  // namespace qe
