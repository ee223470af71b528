#pragma once
// Shared helpers for the tests: where the outside reference data lives, and closeness checks
// with the tolerances of the references we compare with.

#include "tensor/tensor.h"

#include <QString>
#include <QtTest>

#include <cmath>
#include <filesystem>
#include <string>

namespace qe::test {

inline std::filesystem::path sharedDir() { return QE_SHARED_DIR; }
inline std::filesystem::path sourceDir() { return QE_SOURCE_DIR; }
inline std::filesystem::path binaryDir() { return QE_BINARY_DIR; }

// Skips the current test with a message when `path` does not exist.
#define QE_REQUIRE_PATH(path)                                                                        \
    do {                                                                                             \
        if (!std::filesystem::exists(path))                                                          \
            QSKIP(qPrintable(QString("needs %1, which is absent").arg(QString::fromStdString((path).string())))); \
    } while (0)

// numpy.testing.assert_allclose semantics: |actual - expected| <= atol + rtol * |expected|.
// Returns an empty string when close, else a description of the worst element.
inline std::string compareClose(const Tensor& actual, const Tensor& expected, double rtol, double atol)
{
    if (actual.dtype() != expected.dtype())
        return "type " + dataTypeName(actual.dtype()) + " != expected " + dataTypeName(expected.dtype());
    if (actual.shape() != expected.shape())
        return "shape " + shapeToString(actual.shape()) + " != expected " + shapeToString(expected.shape());
    const Tensor a = actual.castTo(DataType::Float64), e = expected.castTo(DataType::Float64);
    const double* pa = a.data<double>();
    const double* pe = e.data<double>();
    std::int64_t worst = -1;
    double worstExcess = 0;
    for (std::int64_t i = 0; i < a.size(); ++i) {
        if (std::isnan(pa[i]) && std::isnan(pe[i]))
            continue;
        if (std::isinf(pe[i]) && pa[i] == pe[i])
            continue;
        const double excess = std::abs(pa[i] - pe[i]) - (atol + rtol * std::abs(pe[i]));
        if (excess > worstExcess || (std::isnan(excess))) {
            worstExcess = std::isnan(excess) ? INFINITY : excess;
            worst = i;
        }
    }
    if (worst < 0)
        return {};
    return "element " + std::to_string(worst) + ": " + std::to_string(pa[worst]) + " vs expected " + std::to_string(pe[worst]);
}

}  // namespace qe::test
