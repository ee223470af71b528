#pragma once
// The GUI's one door into core/: owns the model and the data set, runs every heavy step on a
// worker thread (QtConcurrent) and publishes immutable snapshots. Widgets only read snapshots.
//
// Each request gets its own cancellation flag and progress counters. A newer request cancels the
// older one, and results of a superseded request are dropped, so the window always shows the
// latest thing the user asked for. Workers never touch QObjects: progress is read from atomics
// by a timer on the GUI thread.

#include "data/dataset.h"
#include "eval/accuracy.h"
#include "model/graph.h"

#include <QFuture>
#include <QObject>
#include <QString>
#include <QTimer>

#include <atomic>
#include <memory>

namespace qe {

// Everything a view needs after a model and data set are loaded. Shared, never mutated.
struct SessionSnapshot {
    QString modelPath;
    QString dataPath;
    std::shared_ptr<const Graph> graph;
    std::shared_ptr<const Dataset> dataset;
    Preprocess preprocess;
};

// The state a worker shares with the GUI thread.
struct RequestState {
    std::atomic<bool> cancel{false};
    std::atomic<std::size_t> done{0}, total{0};
};

class Session : public QObject {
    Q_OBJECT
public:
    explicit Session(QObject* parent = nullptr);
    ~Session() override;

    // Loads both on a worker thread; emits loaded() or failed(). The previous session stays
    // intact until the new one has loaded completely.
    void open(const QString& modelPath, const QString& dataPath);
    // Evaluates the float model on the first `limit` images; emits evaluated() or failed().
    void evaluate(std::size_t limit);
    void cancel();

    std::shared_ptr<const SessionSnapshot> snapshot() const { return snapshot_; }

signals:
    void loaded();
    void progress(int done, int total);
    void evaluated(const qe::ClassificationResult& result);
    void failed(const QString& message);

private:
    // Cancels the running request and starts a new one; returns its state and generation.
    std::shared_ptr<RequestState> startRequest();
    bool isCurrent(quint64 generation) const { return generation == generation_; }
    // Delivers the worker's result (or failure) on the GUI thread, unless a newer request has
    // replaced this one.
    template <class T, class OnResult> void finish(QFuture<T> work, quint64 generation, OnResult onResult);

    std::shared_ptr<const SessionSnapshot> snapshot_;
    std::shared_ptr<RequestState> request_;
    quint64 generation_ = 0;
    QTimer progressTimer_;
};

}  // namespace qe

Q_DECLARE_METATYPE(qe::ClassificationResult)
