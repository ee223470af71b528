#include "model/operator_traits.h"

#include "common/error.h"

#include <array>

namespace qe {

namespace {

#define QE_TRAITS_ROW(Name, Role, Weight, Bias, Fuses, Family, ...) \
    OperatorTraits{#Name, OpRole::Role, Weight, Bias, Fuses, IntegerFamily::Family},
constexpr std::array kOperators{QE_OPERATORS(QE_TRAITS_ROW)};
#undef QE_TRAITS_ROW

const OperatorTraits* rowOf(std::string_view opType)
{
    for (const OperatorTraits& row : kOperators)
        if (row.name == opType)
            return &row;
    return nullptr;
}

}  // namespace

std::optional<OperatorTraits> findOperator(std::string_view domain, std::string_view opType)
{
    const OperatorTraits* row = domain.empty() || domain == "ai.onnx" ? rowOf(opType) : nullptr;
    return row ? std::optional<OperatorTraits>(*row) : std::nullopt;
}

const OperatorTraits& operatorTraits(const std::string& nodeName, const std::string& opType)
{
    if (const OperatorTraits* row = rowOf(opType))
        return *row;
    throw Error(unsupportedOperatorMessage(nodeName, opType, ""));
}

std::vector<std::string> supportedOperators()
{
    std::vector<std::string> names;
    for (const OperatorTraits& row : kOperators)
        names.emplace_back(row.name);
    return names;
}

std::string unsupportedOperatorMessage(const std::string& nodeName, const std::string& opType, const std::string& domain)
{
    return "node '" + nodeName + "': operator '" + opType + "'" + (domain.empty() ? "" : " (domain '" + domain + "')") +
           " is not supported";
}

bool makesNewValues(OpRole role)
{
    switch (role) {
    case OpRole::Weighted:
    case OpRole::Elementwise:
    case OpRole::Lookup:
    case OpRole::Averaging:
    case OpRole::Normalizing:
    case OpRole::Joining:
        return true;
    case OpRole::Moving:
    case OpRole::Float:
    case OpRole::Shape:
    case OpRole::Quantized:
        return false;
    }
    return false;
}

bool keepsInputParameters(OpRole role) { return role == OpRole::Moving; }

}  // namespace qe
