#include "engine/ops/parallel_gemm.h"

#include "common/parallel.h"

#include <algorithm>

namespace qe {

namespace {

template <class A, class B, class Y>
void splitProduct(const A& a, const B& b, Y& y)
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

}  // namespace

template <class T>
void parallelGemm(const Eigen::Ref<const RowMajorMatrix<T>>& a, bool transposeA, const Eigen::Ref<const RowMajorMatrix<T>>& b,
                  bool transposeB, Eigen::Ref<RowMajorMatrix<T>> y)
{
    if (transposeA && transposeB)
        splitProduct(a.transpose(), b.transpose(), y);
    else if (transposeA)
        splitProduct(a.transpose(), b, y);
    else if (transposeB)
        splitProduct(a, b.transpose(), y);
    else
        splitProduct(a, b, y);
}

template void parallelGemm<float>(const Eigen::Ref<const RowMajorMatrix<float>>&, bool,
                                  const Eigen::Ref<const RowMajorMatrix<float>>&, bool, Eigen::Ref<RowMajorMatrix<float>>);
template void parallelGemm<double>(const Eigen::Ref<const RowMajorMatrix<double>>&, bool,
                                   const Eigen::Ref<const RowMajorMatrix<double>>&, bool, Eigen::Ref<RowMajorMatrix<double>>);

}  // namespace qe
