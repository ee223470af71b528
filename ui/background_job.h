#pragma once
// Work on a thread pool whose result comes back to the GUI thread: the one way the window starts
// background work (the Session's jobs and the model inspection before opening).
//
// Why not QtConcurrent::run and QFuture's result alone: Qt is not built with ThreadSanitizer, so
// the hand-off inside its thread pool, result store and continuations (futexes in its own library)
// is invisible to TSan, and every job looked like a race on its captures and its result. Here the
// work and its outcome travel through a std::mutex, which TSan sees; the only object Qt's
// templates copy between the threads is the task holding one shared_ptr, built while TSan ignores
// the GUI thread's writes (nothing else is written in that window). Without TSan the annotations
// are empty and the mutex costs nothing next to a job.

#include <QFutureWatcher>
#include <QObject>
#include <QThreadPool>
#include <QtConcurrent>

#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

#if defined(__SANITIZE_THREAD__)
#define QE_THREAD_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define QE_THREAD_SANITIZER 1
#endif
#endif

#ifdef QE_THREAD_SANITIZER
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);
#endif

namespace qe {

// What a background job ended with: its value, or the exception it threw.
template <class T> struct JobOutcome {
    std::optional<T> value;
    std::exception_ptr error;
};

// Runs work() on `pool` and then onDone(JobOutcome<T>) on receiver's thread, unless receiver is
// gone by then (the work still runs to its end).
template <class Work, class OnDone> void runInBackground(QThreadPool& pool, QObject* receiver, Work work, OnDone onDone)
{
    using T = std::invoke_result_t<Work&>;
    struct Shared {
        explicit Shared(Work w) : work(std::move(w)) {}
        std::mutex mutex;  // held by the GUI thread until the task is queued; then guards outcome
        Work work;
        JobOutcome<T> outcome;
    };
    auto shared = std::make_shared<Shared>(std::move(work));

    auto* watcher = new QFutureWatcher<void>(receiver);
    QObject::connect(watcher, &QFutureWatcherBase::finished, receiver, [watcher, shared, onDone = std::move(onDone)]() mutable {
        watcher->deleteLater();
        JobOutcome<T> outcome;
        {
            std::lock_guard lock(shared->mutex);
            outcome = std::move(shared->outcome);
        }
        onDone(std::move(outcome));
    });

    QFuture<void> done;
    {
        std::lock_guard queued(shared->mutex);
#ifdef QE_THREAD_SANITIZER
        AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
#endif
        done = QtConcurrent::run(&pool, [shared]() {
            JobOutcome<T> outcome;
            try {
                Work* work;
                {
                    std::lock_guard lock(shared->mutex);  // waits for the GUI thread to let go
                    work = &shared->work;
                }
                outcome.value.emplace((*work)());
            } catch (...) {
                outcome.error = std::current_exception();
            }
            std::lock_guard lock(shared->mutex);
            shared->outcome = std::move(outcome);
        });
#ifdef QE_THREAD_SANITIZER
        AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
#endif
    }
    watcher->setFuture(done);
}

}  // namespace qe
