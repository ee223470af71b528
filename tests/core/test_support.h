#pragma once
// Shared helpers for the tests: where the outside reference data lives, and closeness checks
// with the tolerances of the references we compare with.

#include "tensor/tensor.h"

#include <QString>
#include <QtTest>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
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

// Per-image top-1 of one model from reference_predictions.csv, indexed by image index.
inline std::vector<int> referenceTop1(const std::filesystem::path& csv, const std::string& model)
{
    std::ifstream in(csv);
    std::string line;
    std::getline(in, line);  // header: model,runtime,dataset,index,label,top1,top1_prob
    std::vector<int> top1;
    while (std::getline(in, line)) {
        std::vector<std::string> fields;
        std::stringstream row(line);
        std::string field;
        while (std::getline(row, field, ','))
            fields.push_back(field);
        if (fields.size() < 7 || fields[0] != model)
            continue;
        const auto index = static_cast<std::size_t>(std::stoul(fields[3]));
        if (top1.size() <= index)
            top1.resize(index + 1, -1);
        top1[index] = std::stoi(fields[5]);
    }
    return top1;
}

}  // namespace qe::test
