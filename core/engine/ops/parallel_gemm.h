#pragma once
// Y = A * B (row-major float matrices) split across the OpenMP threads by blocks of the larger
// output dimension. Eigen itself runs single-threaded (EIGEN_DONT_PARALLELIZE): we decide where
// threads pay off, because small layers (LeNet-size) lose more to thread wake-ups than they gain.

#include "common/parallel.h"

#include <Eigen/Core>

#include <cstdint>

#include <omp.h>

namespace qe {

template <class T>
using RowMajorMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Defined (for float and double) only in parallel_gemm.cpp, so that Eigen's product kernels live
// in one file that a sanitizer build can leave uninstrumented (see core/CMakeLists.txt).
// With transposeA / transposeB, the product takes the transpose of the stored a / b (Gemm's
// transA / transB) without copying it: a weight matrix stored [N, K] is read in place.
template <class T>
void parallelGemm(const Eigen::Ref<const RowMajorMatrix<T>>& a, bool transposeA, const Eigen::Ref<const RowMajorMatrix<T>>& b,
                  bool transposeB, Eigen::Ref<RowMajorMatrix<T>> y);

template <class T>
void parallelGemm(const Eigen::Ref<const RowMajorMatrix<T>>& a, const Eigen::Ref<const RowMajorMatrix<T>>& b,
                  Eigen::Ref<RowMajorMatrix<T>> y)
{
    parallelGemm<T>(a, false, b, false, y);
}

}  // namespace qe
