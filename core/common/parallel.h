#pragma once
// A parallel loop over independent tasks on the OpenMP threads. Exceptions must not leave an
// OpenMP region (that is std::terminate), so each task's exception is caught, and the one of the
// lowest index is rethrown after the loop: the message does not depend on thread timing.

#include <cstdint>
#include <exception>
#include <limits>

#include <omp.h>

namespace qe {

// Below this many multiply-adds (about 0.2 ms of work) a layer runs on one thread: waking the
// second thread and meeting it at the barrier costs more, above all when that core is busy.
constexpr std::int64_t kParallelMacThreshold = std::int64_t{1} << 22;

inline bool worthParallel(std::int64_t macs) { return macs >= kParallelMacThreshold && omp_get_max_threads() > 1; }

template <class Task> void parallelFor(std::int64_t count, Task&& task)
{
    std::exception_ptr error;
    std::int64_t errorIndex = std::numeric_limits<std::int64_t>::max();
#pragma omp parallel for schedule(dynamic) if (count > 1)
    for (std::int64_t i = 0; i < count; ++i) {
        try {
            task(i);
        } catch (...) {
#pragma omp critical(qe_parallel_for_error)
            if (i < errorIndex) {
                errorIndex = i;
                error = std::current_exception();
            }
        }
    }
    if (error)
        std::rethrow_exception(error);
}

}  // namespace qe
