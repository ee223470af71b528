#pragma once
// Work on a thread pool whose result comes back to the GUI thread: the one way the window starts
// background work (the Session's jobs and the model inspection before opening).
//
// Why not QtConcurrent::run and QFuture's result alone: Qt is not built with ThreadSanitizer, so
// the hand-off inside its thread pool, result store and continuations (futexes in its own library)
// is invisible to TSan, and every job looked like a race on its captures and its result. Here the
// outcome comes back through a std::mutex, which TSan sees; the way out is told to TSan in so many
// words: the GUI thread releases the job (everything it wrote for it) before queueing it and the
// worker acquires it first thing, and the task object Qt's templates build in between is written
// while TSan ignores the GUI thread. Without TSan the annotations are empty.

#include "common/sanitizers.h"

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

#if QE_THREAD_SANITIZER
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);
extern "C" void __tsan_acquire(void* address);
extern "C" void __tsan_release(void* address);
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
        std::mutex mutex;  // guards outcome
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
#if QE_THREAD_SANITIZER
    __tsan_release(shared.get());
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
#endif
    done = QtConcurrent::run(&pool, [shared]() {
#if QE_THREAD_SANITIZER
        __tsan_acquire(shared.get());
#endif
        JobOutcome<T> outcome;
        try {
            outcome.value.emplace(shared->work());
        } catch (...) {
            outcome.error = std::current_exception();
        }
        std::lock_guard lock(shared->mutex);
        shared->outcome = std::move(outcome);
    });
#if QE_THREAD_SANITIZER
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
#endif
    watcher->setFuture(done);
}

// Runs f() on receiver's thread later (queued), from any thread: what a worker uses to tell the
// GUI thread something while it works. The hand-off goes through Qt's event queue, which TSan
// cannot see, so it is told in the same words as above: released before posting, acquired first
// thing on the receiving thread, and the event object Qt builds in between written while TSan
// ignores this thread.
template <class F> void postToThreadOf(QObject* receiver, F f)
{
    auto shared = std::make_shared<F>(std::move(f));
#if QE_THREAD_SANITIZER
    __tsan_release(shared.get());
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
#endif
    QMetaObject::invokeMethod(
        receiver,
        [shared] {
#if QE_THREAD_SANITIZER
            __tsan_acquire(shared.get());
#endif
            (*shared)();
        },
        Qt::QueuedConnection);
#if QE_THREAD_SANITIZER
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
#endif
}

}  // namespace qe
