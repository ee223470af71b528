#pragma once
// Y = A * B (row-major float matrices) split across the OpenMP threads by blocks of the larger
// output dimension. Eigen itself runs single-threaded (EIGEN_DONT_PARALLELIZE): we decide where
// threads pay off, because small layers (LeNet-size) lose more to thread wake-ups than they gain.

#include "common/parallel.h"

#include <Eigen/Core>

#include <algorithm>
#include <cstdint>

#include <omp.h>

namespace qe {

// Below this many multiply-adds (about 0.2 ms of work) a layer runs on one thread: waking the
// second thread and meeting it at the barrier costs more, above all when that core is busy.
constexpr std::int64_t kParallelMacThreshold = std::int64_t{1} << 22;

inline bool worthParallel(std::int64_t macs) { return macs >= kParallelMacThreshold && omp_get_max_threads() > 1; }

template <class T>
using RowMajorMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <class T>
void parallelGemm(const Eigen::Ref<const RowMajorMatrix<T>>& a, const Eigen::Ref<const RowMajorMatrix<T>>& b,
                  Eigen::Ref<RowMajorMatrix<T>> y)
{
    const std::int64_t m = a.rows(), k = a.cols(), n = b.cols();
    if (!worthParallel(m * k * n) || omp_in_parallel()) {
        y.noalias() = a * b;
        return;
    }
    // One block per thread; parallelFor carries any exception (Eigen may allocate) out of the region.
    const int threads = omp_get_max_threads();
    if (m >= n) {
        const std::int64_t block = (m + threads - 1) / threads;
        parallelFor(threads, [&](std::int64_t t) {
            const std::int64_t begin = t * block, count = std::min(block, m - begin);
            if (count > 0)
                y.middleRows(begin, count).noalias() = a.middleRows(begin, count) * b;
        });
    } else {
        // Column blocks a multiple of 16 wide keep the vectorised inner loops aligned.
        const std::int64_t block = ((n + threads - 1) / threads + 15) / 16 * 16;
        parallelFor(threads, [&](std::int64_t t) {
            const std::int64_t begin = t * block, count = std::min(block, n - begin);
            if (count > 0)
                y.middleCols(begin, count).noalias() = a * b.middleCols(begin, count);
        });
    }
}

}  // namespace qe
