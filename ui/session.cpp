#include "session.h"

#include "common/error.h"
#include "engine/executor.h"
#include "model/onnx_import.h"

#include <QtConcurrent>

namespace qe {

Session::Session(QObject* parent) : QObject(parent), request_(std::make_shared<RequestState>())
{
    qRegisterMetaType<qe::ClassificationResult>();
    progressTimer_.setInterval(100);
    connect(&progressTimer_, &QTimer::timeout, this, [this] {
        const auto total = request_->total.load();
        if (total > 0)
            emit progress(int(request_->done.load()), int(total));
    });
}

Session::~Session()
{
    cancel();
}

void Session::cancel()
{
    request_->cancel.store(true);
    progressTimer_.stop();
}

std::shared_ptr<RequestState> Session::startRequest()
{
    cancel();
    request_ = std::make_shared<RequestState>();
    ++generation_;
    progressTimer_.start();
    return request_;
}

void Session::open(const QString& modelPath, const QString& dataPath)
{
    auto state = startRequest();
    const quint64 generation = generation_;
    (void)QtConcurrent::run([state, modelPath, dataPath]() -> std::shared_ptr<const SessionSnapshot> {
        auto snapshot = std::make_shared<SessionSnapshot>();
        snapshot->modelPath = modelPath;
        snapshot->dataPath = dataPath;
        snapshot->graph = std::make_shared<const Graph>(loadOnnx(modelPath.toStdString()));
        if (state->cancel)
            throw Cancelled();
        snapshot->dataset = openDataset(dataPath.toStdString());
        snapshot->preprocess = Preprocess::forModel(modelPath.toStdString(), imageInputGeometry(*snapshot->graph).channels);
        return snapshot;
    }).then(this, [this, generation](std::shared_ptr<const SessionSnapshot> snapshot) {
        if (!isCurrent(generation))
            return;  // the user has asked for something newer
        progressTimer_.stop();
        snapshot_ = std::move(snapshot);
        emit loaded();
    }).onFailed(this, [](const Cancelled&) {
    }).onFailed(this, [this, generation](const Error& e) {
        if (isCurrent(generation))
            emit failed(QString::fromStdString(e.what()));
    }).onFailed(this, [this, generation](const std::exception& e) {
        if (isCurrent(generation))
            emit failed(QStringLiteral("Unexpected error: %1").arg(e.what()));
    });
}

void Session::evaluate(std::size_t limit)
{
    if (!snapshot_)
        return;
    auto state = startRequest();
    const quint64 generation = generation_;
    auto snapshot = snapshot_;
    (void)QtConcurrent::run([snapshot, state, limit]() {
        const Executor executor(*snapshot->graph);
        EvaluationOptions options;
        options.limit = limit;
        options.cancel = &state->cancel;
        options.progress = [state](std::size_t done, std::size_t total) {
            state->total = total;
            state->done = done;
        };
        return evaluateClassifier(executor, *snapshot->dataset, snapshot->preprocess, options);
    }).then(this, [this, generation](const ClassificationResult& result) {
        if (!isCurrent(generation))
            return;
        progressTimer_.stop();
        emit evaluated(result);
    }).onFailed(this, [](const Cancelled&) {
    }).onFailed(this, [this, generation](const Error& e) {
        if (isCurrent(generation))
            emit failed(QString::fromStdString(e.what()));
    }).onFailed(this, [this, generation](const std::exception& e) {
        if (isCurrent(generation))
            emit failed(QStringLiteral("Unexpected error: %1").arg(e.what()));
    });
}

}  // namespace qe
