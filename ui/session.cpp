#include "session.h"

#include "common/error.h"
#include "engine/executor.h"
#include "model/onnx_import.h"

#include <QUnhandledException>
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

template <class T, class OnResult> void Session::finish(QFuture<T> work, quint64 generation, OnResult onResult)
{
    auto fail = [this, generation](const QString& message) {
        if (!isCurrent(generation))
            return;
        progressTimer_.stop();
        emit failed(message);
    };
    // QtConcurrent::run wraps exceptions that are not QExceptions in QUnhandledException, so the
    // original is taken out and classified here.
    auto classify = [fail](std::exception_ptr exception) {
        try {
            std::rethrow_exception(exception);
        } catch (const Cancelled&) {
            // A newer request replaced this one; nothing to report.
        } catch (const Error& e) {
            fail(QString::fromStdString(e.what()));
        } catch (const std::exception& e) {
            fail(QStringLiteral("Unexpected error: %1").arg(e.what()));
        } catch (...) {
            fail(QStringLiteral("Unexpected error"));
        }
    };
    work.then(this, [this, generation, onResult](T result) {
            if (!isCurrent(generation))
                return;
            progressTimer_.stop();
            onResult(std::move(result));
        })
        .onFailed(this, [classify](const QUnhandledException& e) { classify(e.exception()); })
        .onFailed(this, [classify]() { classify(std::current_exception()); });
}

void Session::open(const QString& modelPath, const QString& dataPath)
{
    auto state = startRequest();
    const quint64 generation = generation_;
    auto work = QtConcurrent::run([state, modelPath, dataPath]() -> std::shared_ptr<const SessionSnapshot> {
        auto snapshot = std::make_shared<SessionSnapshot>();
        snapshot->modelPath = modelPath;
        snapshot->dataPath = dataPath;
        snapshot->graph = std::make_shared<const Graph>(loadOnnx(modelPath.toStdString()));
        if (state->cancel)
            throw Cancelled();
        snapshot->dataset = openDataset(dataPath.toStdString());
        snapshot->preprocess = Preprocess::forModel(modelPath.toStdString(), imageInputGeometry(*snapshot->graph).channels);
        return snapshot;
    });
    finish(work, generation, [this](std::shared_ptr<const SessionSnapshot> snapshot) {
        snapshot_ = std::move(snapshot);
        emit loaded();
    });
}

void Session::evaluate(std::size_t limit)
{
    if (!snapshot_)
        return;
    auto state = startRequest();
    const quint64 generation = generation_;
    auto snapshot = snapshot_;
    auto work = QtConcurrent::run([snapshot, state, limit]() {
        const Executor executor(*snapshot->graph);
        EvaluationOptions options;
        options.limit = limit;
        options.cancel = &state->cancel;
        options.progress = [state](std::size_t done, std::size_t total) {
            state->total = total;
            state->done = done;
        };
        return evaluateClassifier(executor, *snapshot->dataset, snapshot->preprocess, options);
    });
    finish(work, generation, [this](const ClassificationResult& result) { emit evaluated(result); });
}

}  // namespace qe
