#include "session.h"

#include "common/error.h"
#include "engine/executor.h"
#include "model/onnx_import.h"

#include <QMetaObject>
#include <QPointer>
#include <QtConcurrent>

namespace qe {

Session::Session(QObject* parent) : QObject(parent), cancel_(std::make_shared<std::atomic<bool>>(false))
{
    qRegisterMetaType<qe::ClassificationResult>();
}

Session::~Session()
{
    cancel();
}

void Session::cancel()
{
    cancel_->store(true);
}

void Session::open(const QString& modelPath, const QString& dataPath)
{
    cancel();
    cancel_ = std::make_shared<std::atomic<bool>>(false);
    QPointer<Session> self(this);
    (void)QtConcurrent::run([self, modelPath, dataPath]() -> std::shared_ptr<const SessionSnapshot> {
        auto snapshot = std::make_shared<SessionSnapshot>();
        snapshot->modelPath = modelPath;
        snapshot->dataPath = dataPath;
        snapshot->graph = std::make_shared<const Graph>(loadOnnx(modelPath.toStdString()));
        snapshot->dataset = openDataset(dataPath.toStdString());
        const ImageInputGeometry geometry = imageInputGeometry(*snapshot->graph);
        if (auto sidecar = Preprocess::loadSidecar(modelPath.toStdString()))
            snapshot->preprocess = *sidecar;
        else if (geometry.channels == 1)
            snapshot->preprocess = Preprocess::mnistStyle();
        return snapshot;
    }).then(this, [this](std::shared_ptr<const SessionSnapshot> snapshot) {
        snapshot_ = std::move(snapshot);
        emit loaded();
    }).onFailed(this, [this](const Error& e) {
        emit failed(QString::fromStdString(e.what()));
    }).onFailed(this, [this](const std::exception& e) {
        emit failed(QStringLiteral("Unexpected error: %1").arg(e.what()));
    });
}

void Session::evaluate(std::size_t limit)
{
    if (!snapshot_)
        return;
    auto snapshot = snapshot_;
    auto cancelFlag = cancel_;
    QPointer<Session> self(this);
    (void)QtConcurrent::run([snapshot, cancelFlag, limit, self]() {
        const Executor executor(*snapshot->graph);
        EvaluationOptions options;
        options.limit = limit;
        options.cancel = cancelFlag.get();
        options.progress = [self](std::size_t done, std::size_t total) {
            // Queued to the GUI thread; the worker never touches widgets.
            QMetaObject::invokeMethod(self.data(), "progress", Qt::QueuedConnection, Q_ARG(int, int(done)), Q_ARG(int, int(total)));
        };
        return evaluateClassifier(executor, *snapshot->dataset, snapshot->preprocess, options);
    }).then(this, [this](const ClassificationResult& result) {
        emit evaluated(result);
    }).onFailed(this, [](const Cancelled&) {
        // A newer request replaced this one; nothing to report.
    }).onFailed(this, [this](const Error& e) {
        emit failed(QString::fromStdString(e.what()));
    }).onFailed(this, [this](const std::exception& e) {
        emit failed(QStringLiteral("Unexpected error: %1").arg(e.what()));
    });
}

}  // namespace qe
