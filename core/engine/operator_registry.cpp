#include "engine/operator.h"

#include "common/error.h"

#include <new>

#include <array>
#include <utility>

namespace qe {

namespace {
struct RegistryEntry {
    std::string_view name;
    Kernel kernel;
};

#define QE_REGISTRY_ENTRY(Name, ...) RegistryEntry{#Name, &run##Name},
constexpr std::array kRegistry{QE_OPERATORS(QE_REGISTRY_ENTRY)};
#undef QE_REGISTRY_ENTRY
}  // namespace

const Tensor& OpContext::input(std::size_t i) const
{
    if (!hasInput(i))
        throw Error("input " + std::to_string(i) + " is required but missing");
    return *inputs[i];
}

Kernel findKernel(std::string_view domain, std::string_view opType)
{
    if (!domain.empty() && domain != "ai.onnx")
        return nullptr;
    for (const RegistryEntry& entry : kRegistry)
        if (entry.name == opType)
            return entry.kernel;
    return nullptr;
}

std::vector<Tensor> runKernel(Kernel kernel, const OpContext& context)
{
    const std::string where = "node '" + context.node.name + "' (" + context.node.opType + "): ";
    try {
        return kernel(context);
    } catch (const Error& e) {
        throw Error(where + e.what());
    } catch (const std::bad_alloc&) {
        throw Error(where + "out of memory");
    } catch (const std::exception& e) {
        throw Error(where + "unexpected failure: " + e.what());
    }
}

std::vector<Tensor> runNode(const Node& node, std::int64_t opset, std::vector<const Tensor*> inputs)
{
    const Kernel kernel = findKernel(node.domain, node.opType);
    if (!kernel)
        throw Error(unsupportedOperatorMessage(node.name, node.opType, node.domain));
    return runKernel(kernel, OpContext{node, opset, std::move(inputs)});
}

std::optional<std::pair<float, float>> activationBounds(const Graph& graph, const Node& activation, float extreme)
{
    const Tensor extremes = Tensor::fromValues<float>({2}, std::vector<float>{-extreme, extreme});
    std::vector<const Tensor*> in{&extremes};
    for (std::size_t i = 1; i < activation.inputs.size(); ++i) {
        const std::string& name = activation.inputs[i];
        if (!name.empty() && !graph.isInitializer(name))
            return std::nullopt;
        in.push_back(name.empty() ? nullptr : &graph.initializers.at(name));
    }
    const Tensor ends = runNode(activation, graph.opsetVersion, in).at(0);
    return std::pair{ends.data<float>()[0], ends.data<float>()[1]};
}

void failNode(const OpContext& context, const std::string& message)
{
    (void)context;  // the executor prefixes the node name and operator
    throw Error(message);
}

std::int64_t normalizeAxis(const OpContext& context, std::int64_t axis, std::int64_t rank)
{
    if (axis < -rank || axis >= rank)
        failNode(context, "axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
    return axis < 0 ? axis + rank : axis;
}

}  // namespace qe
