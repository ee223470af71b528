#pragma once
// The GUI's one door into core/: owns the model and the data set, runs every heavy step on a
// worker thread (QtConcurrent) and publishes immutable snapshots. Widgets only read snapshots.

#include "data/dataset.h"
#include "eval/accuracy.h"
#include "model/graph.h"

#include <QFutureWatcher>
#include <QObject>
#include <QString>

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
    std::shared_ptr<const SessionSnapshot> snapshot_;
    std::shared_ptr<std::atomic<bool>> cancel_;
};

}  // namespace qe

Q_DECLARE_METATYPE(qe::ClassificationResult)
