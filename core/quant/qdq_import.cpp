#include "quant/qdq_import.h"

#include "common/error.h"
#include "engine/operator.h"
#include "engine/graph_preparation.h"

#include <cmath>
#include <map>

namespace qe {

namespace {

struct LinearQuantization {
    std::vector<float> scale;
    std::vector<std::int32_t> zeroPoint;
    DataType type = DataType::UInt8;
    int axis = 1;
};

LinearQuantization readParameters(const Graph& graph, const Node& node)
{
    LinearQuantization q;
    if (!graph.isInitializer(node.input(1)))
        throw Error("node '" + node.name + "': the scale must be an initializer to be imported");
    q.scale = graph.initializers.at(node.input(1)).toFloatVector();
    if (!node.input(2).empty()) {
        if (!graph.isInitializer(node.input(2)))
            throw Error("node '" + node.name + "': the zero point must be an initializer to be imported");
        const Tensor& zp = graph.initializers.at(node.input(2));
        q.type = zp.dtype();
        for (std::int64_t v : zp.toInt64Vector())
            q.zeroPoint.push_back(static_cast<std::int32_t>(v));
    } else {
        q.zeroPoint.assign(q.scale.size(), 0);
    }
    q.axis = static_cast<int>(node.intAttribute("axis", 1));
    // A model from another tool is checked as any input: scales the arithmetic can use, one zero
    // point per scale, 8-bit codes.
    const std::string where = graph.sourcePath + ": node '" + node.name + "'";
    if (q.scale.empty())
        throw Error(where + ": the scale '" + node.input(1) + "' has no values");
    for (float scale : q.scale)
        if (!std::isfinite(scale) || !(scale > 0.0f))
            throw Error(where + ": the scale '" + node.input(1) + "' holds " + std::to_string(scale) +
                        "; expected finite positive numbers");
    if (q.zeroPoint.size() != q.scale.size())
        throw Error(where + ": " + std::to_string(q.zeroPoint.size()) + " zero points for " +
                    std::to_string(q.scale.size()) + " scales; expected one zero point per scale");
    if (q.type != DataType::Int8 && q.type != DataType::UInt8)
        throw Error(where + ": the zero point is " + dataTypeName(q.type) + "; expected int8 or uint8");
    const std::int32_t low = q.type == DataType::Int8 ? -128 : 0;
    for (std::int32_t zp : q.zeroPoint)
        if (zp < low || zp > low + 255)
            throw Error(where + ": zero point " + std::to_string(zp) + " is outside the 8-bit range");
    return q;
}

// The spec and parameters that describe an 8-bit linear quantization read from the model.
FixedTensorParams describe(const LinearQuantization& q, int channelAxis)
{
    const bool isSigned = q.type == DataType::Int8;
    bool zeroPointsZero = true;
    for (std::int32_t zp : q.zeroPoint)
        zeroPointsZero = zeroPointsZero && zp == 0;
    FixedTensorParams fixed;
    fixed.spec.scheme = zeroPointsZero && isSigned ? Scheme::Symmetric : Scheme::Affine;
    fixed.spec.bits = 8;
    fixed.spec.isSigned = isSigned;
    fixed.spec.granularity = q.scale.size() > 1 ? Granularity::PerChannel : Granularity::PerTensor;
    fixed.params = uniformParams(fixed.spec.scheme, 8, isSigned, q.scale, q.zeroPoint);
    QuantParams& p = fixed.params;
    p.axis = q.scale.size() > 1 ? channelAxis : 0;
    // The model's codes may use the full 8-bit range (TFLite activations) even when symmetric.
    p.qmin = isSigned ? -128 : 0;
    p.qmax = isSigned ? 127 : 255;
    for (std::size_t i = 0; i < q.scale.size(); ++i) {
        p.rangeMin.push_back(q.scale[i] * float(p.qmin - q.zeroPoint[i]));
        p.rangeMax.push_back(q.scale[i] * float(p.qmax - q.zeroPoint[i]));
    }
    return fixed;
}

}  // namespace

std::optional<ImportedQuantization> importQdq(const Graph& graph)
{
    bool hasQdq = false;
    for (const Node& node : graph.nodes)
        hasQdq = hasQdq || node.opType == "QuantizeLinear" || node.opType == "DequantizeLinear";
    if (!hasQdq)
        return std::nullopt;

    ImportedQuantization result;
    Graph g = graph;
    std::map<std::string, LinearQuantization> weightQuantization;      // by dequantized weight name
    std::map<std::string, LinearQuantization> activationQuantization;  // by the float tensor that was quantized
    std::map<std::string, std::string> replacement;                    // DQ output -> float tensor
    std::vector<Node> kept;
    for (const Node& node : g.nodes) {
        if (node.opType == "DequantizeLinear" && g.isInitializer(node.input(0))) {
            // A constant: dequantize it once; the float graph reads the values the model meant.
            std::vector<const Tensor*> inputs;
            for (const std::string& in : node.inputs)
                inputs.push_back(in.empty() ? nullptr : &g.initializers.at(in));
            g.initializers[node.outputs[0]] = runNode(node, g.opsetVersion, std::move(inputs)).at(0);
            if (g.initializers.at(node.input(0)).dtype() != DataType::Int32)  // int32 biases stay float
                weightQuantization[node.outputs[0]] = readParameters(g, node);
            continue;
        }
        if (node.opType == "QuantizeLinear") {
            // Weights kept in float and quantized in the graph (Q(W) -> DQ) are weight
            // quantization; anything else is an activation.
            auto& table = g.isInitializer(node.input(0)) ? weightQuantization : activationQuantization;
            table[node.input(0)] = readParameters(g, node);
            replacement[node.outputs[0]] = node.input(0);
            continue;
        }
        if (node.opType == "DequantizeLinear") {
            auto it = replacement.find(node.input(0));
            if (it == replacement.end())
                throw Error("node '" + node.name + "': DequantizeLinear of '" + node.input(0) +
                            "', which no QuantizeLinear produced; only Q -> DQ pairs can be imported");
            replacement[node.outputs[0]] = it->second;
            continue;
        }
        kept.push_back(node);
    }
    for (Node& node : kept)
        for (std::string& in : node.inputs)
            if (auto it = replacement.find(in); it != replacement.end())
                in = it->second;
    // A graph output that was a DQ output now reads the float tensor through an Identity.
    for (ValueInfo& output : g.outputs)
        if (auto it = replacement.find(output.name); it != replacement.end()) {
            Node identity;
            identity.name = output.name + "_float";
            identity.opType = "Identity";
            identity.inputs = {it->second};
            identity.outputs = {output.name};
            kept.push_back(identity);
        }
    g.nodes = std::move(kept);
    g.values.clear();
    g = foldConstants(std::move(g));
    inferShapes(g);

    for (const QuantLayer& layer : findQuantLayers(g)) {
        if (!layer.weight.empty())
            if (auto it = weightQuantization.find(layer.weight); it != weightQuantization.end()) {
                result.params.weights[layer.name] = describe(it->second, layer.weightChannelAxis);
                ++result.weightTensors;
            }
        if (auto it = activationQuantization.find(layer.output); it != activationQuantization.end()) {
            result.params.activations[layer.name] = describe(it->second, 0);
            ++result.activationTensors;
        }
    }

    // The configuration: the most common weight and activation specs as defaults, overrides
    // where a layer differs, and float where the model left a tensor unquantized.
    auto mostCommon = [](const std::map<std::string, FixedTensorParams>& table, TensorQuantSpec fallback) {
        std::map<std::string, std::pair<int, TensorQuantSpec>> counts;
        for (const auto& [layer, fixed] : table) {
            const std::string key = std::to_string(int(fixed.spec.scheme)) + "/" + std::to_string(int(fixed.spec.granularity)) +
                                    "/" + std::to_string(fixed.spec.isSigned.value_or(true));
            ++counts[key].first;
            counts[key].second = fixed.spec;
        }
        int best = 0;
        for (const auto& [key, entry] : counts)
            if (entry.first > best) {
                best = entry.first;
                fallback = entry.second;
            }
        return fallback;
    };
    QuantConfig& config = result.config;
    config.model = graph.sourcePath;
    config.defaultWeights = mostCommon(result.params.weights, config.defaultWeights);
    config.defaultActivations = mostCommon(result.params.activations, config.defaultActivations);
    auto overrideFor = [](const TensorQuantSpec& base, const TensorQuantSpec& wanted) {
        TensorQuantOverride o;
        if (wanted.quantize != base.quantize)
            o.quantize = wanted.quantize;
        if (wanted.scheme != base.scheme)
            o.scheme = wanted.scheme;
        if (wanted.granularity != base.granularity)
            o.granularity = wanted.granularity;
        if (wanted.isSigned != base.isSigned)
            o.isSigned = wanted.isSigned;
        return o;
    };
    for (const QuantLayer& layer : findQuantLayers(g)) {
        LayerOverride o;
        TensorQuantSpec notQuantized;
        notQuantized.quantize = false;
        if (!layer.weight.empty()) {
            auto it = result.params.weights.find(layer.name);
            o.weights = overrideFor(config.defaultWeights, it != result.params.weights.end() ? it->second.spec : notQuantized);
        }
        auto it = result.params.activations.find(layer.name);
        o.activations = overrideFor(config.defaultActivations, it != result.params.activations.end() ? it->second.spec : notQuantized);
        if (!o.empty())
            config.layers[layer.name] = o;
    }
    result.floatGraph = std::move(g);
    return result;
}

}  // namespace qe
