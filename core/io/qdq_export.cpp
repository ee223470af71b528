#include "io/qdq_export.h"

#include "common/error.h"
#include "quant/integer_layers.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

namespace qe {

namespace {

Tensor codesTensor(const std::vector<std::int32_t>& codes, const Shape& shape, bool isSigned)
{
    if (isSigned) {
        std::vector<std::int8_t> bytes(codes.begin(), codes.end());
        return Tensor::fromValues<std::int8_t>(shape, bytes);
    }
    std::vector<std::uint8_t> bytes(codes.begin(), codes.end());
    return Tensor::fromValues<std::uint8_t>(shape, bytes);
}

// A scale (and zero-point) tensor: a scalar per tensor, 1-D per channel.
Shape parameterShape(std::size_t count) { return count == 1 ? Shape{} : Shape{static_cast<std::int64_t>(count)}; }

std::string describe(const QuantParams& p)
{
    return std::string(schemeTraits(p.scheme).name) + " " + std::to_string(p.bits) + "-bit " + std::string(granularityName(p.granularity));
}

// A tensor's encoding: its parameters as the plan has them. `inQdqModel` false: the QDQ model
// cannot hold this quantization and has the tensor's dequantized float values.
TensorEncoding encodingOf(const std::string& tensor, const std::string& layer, const std::string& kind, const QuantParams& p,
                          bool inQdqModel)
{
    TensorEncoding e;
    e.tensor = tensor;
    e.layer = layer;
    e.kind = kind;
    e.scheme = schemeTraits(p.scheme).name;
    e.bits = p.bits;
    e.isSigned = p.isSigned;
    e.granularity = granularityName(p.granularity);
    e.axis = p.axis;
    e.codeMin = p.qmin;
    e.codeMax = p.qmax;
    e.inQdqModel = inQdqModel;
    if (const auto* u = std::get_if<UniformParams>(&p.values)) {
        e.scale = u->scale;
        e.zeroPoint = u->zeroPoint;
    } else if (const auto* f = std::get_if<FloatFormatParams>(&p.values)) {
        e.preScale = f->preScale;
    } else {
        for (std::size_t b = 0; b < p.blockCount(); ++b)
            e.levels.push_back(quantizationLevels(p, b));
    }
    return e;
}

}  // namespace

QdqModel exportQdq(const QuantPlan& plan)
{
    QdqModel out;
    Graph& g = out.graph;
    g = plan.graph;
    std::set<std::string> taken;
    std::vector<Node> weightNodes;                      // DequantizeLinear of initializers, first in the graph
    std::map<std::size_t, std::vector<Node>> afterNode;  // activation Q/DQ after the producing node
    std::vector<Node> afterInputs;                       // Q/DQ of graph inputs
    std::map<std::string, std::string> renamedInputs;    // graph input -> its dequantized name

    auto newName = [&](const std::string& base) {  // for tensors and nodes alike
        const std::string name = g.unusedName(base, taken);
        taken.insert(name);
        return name;
    };
    auto addInitializer = [&](const std::string& base, Tensor t) {
        const std::string name = newName(base);
        g.initializers[name] = std::move(t);
        return name;
    };
    auto makeNode = [&](const std::string& opType, const std::string& base, std::vector<std::string> inputs, std::vector<std::string> outputs) {
        Node n;
        n.name = newName(base + "_" + opType);
        n.opType = opType;
        n.inputs = std::move(inputs);
        n.outputs = std::move(outputs);
        return n;
    };
    auto dequantizeInitializer = [&](const std::string& tensor, Tensor codes, const std::vector<float>& scale,
                                     Tensor zeroPoint, int axis) {
        Node dq = makeNode("DequantizeLinear", tensor,
                           {addInitializer(tensor + "_quantized", std::move(codes)),
                            addInitializer(tensor + "_scale", Tensor::fromValues<float>(parameterShape(scale.size()), scale)),
                            addInitializer(tensor + "_zero_point", std::move(zeroPoint))},
                           {tensor});
        if (scale.size() > 1)
            dq.attributes["axis"] = std::int64_t{axis};
        g.initializers.erase(tensor);
        weightNodes.push_back(std::move(dq));
    };

    for (std::size_t i = 0; i < plan.layers.size(); ++i) {
        const QuantLayer& layer = plan.layers[i];
        const LayerPlan& lp = plan.plans[i];
        if (lp.config.keepFloat)
            continue;
        bool integerWeights = false;
        // Weights.
        if (lp.weightParams && !layer.weight.empty()) {
            const QuantParams& p = *lp.weightParams;
            if (isIntegerWeightParams(p)) {
                const Tensor& fq = plan.graph.initializers.at(layer.weight);
                const auto codes = uniformCodes(fq, p, p.axis);
                std::vector<std::int32_t> zp = p.uniform().zeroPoint;
                dequantizeInitializer(layer.weight, codesTensor(codes, fq.shape(), p.isSigned), p.uniform().scale,
                                      codesTensor(zp, parameterShape(zp.size()), p.isSigned), p.axis);
                out.encodings.push_back(encodingOf(layer.weight, layer.name, "weight", p, true));
                integerWeights = true;
            } else {
                out.warnings.push_back("layer '" + layer.name + "': weights " + describe(p) +
                                       " have no integer form in ONNX's 8-bit QDQ; written as their dequantized float values");
                out.encodings.push_back(encodingOf(layer.weight, layer.name, "weight", p, false));
            }
        }
        // Bias: int32 at input scale x weight scale, when the plan quantized it so.
        if (integerWeights && lp.biasInputScale > 0 && !layer.bias.empty()) {
            const std::vector<float>& weightScales = lp.weightParams->uniform().scale;
            const Tensor& b = plan.graph.initializers.at(layer.bias);
            std::vector<float> scale;
            std::vector<std::int32_t> codes;
            for (std::int64_t c = 0; c < b.size(); ++c) {
                const float s = static_cast<float>(static_cast<double>(lp.biasInputScale) * (weightScales.size() == 1 ? weightScales[0] : weightScales.at(static_cast<std::size_t>(c))));
                scale.push_back(s);
                codes.push_back(static_cast<std::int32_t>(std::clamp(std::nearbyint(static_cast<double>(b.data<float>()[c]) / s), -2147483648.0, 2147483647.0)));
            }
            if (weightScales.size() == 1 && b.size() > 1)
                scale.assign(scale.size(), scale[0]);
            std::vector<std::int32_t> zeros(scale.size(), 0);
            // A per-tensor weight scale gives one bias scale; keep it per channel anyway (axis 0).
            // 1-D codes, so that axis 0 is the channel axis whatever shape the bias had ([N] and
            // [1, N] broadcast alike in Conv and Gemm).
            dequantizeInitializer(layer.bias, Tensor::fromValues<std::int32_t>({b.size()}, codes), scale,
                                  Tensor::fromValues<std::int32_t>(parameterShape(zeros.size()), zeros), 0);
            TensorEncoding bias;
            bias.tensor = layer.bias;
            bias.layer = layer.name;
            bias.kind = "bias";
            bias.scheme = "symmetric";
            bias.bits = 32;
            bias.isSigned = true;
            bias.granularity = scale.size() > 1 ? "per_channel" : "per_tensor";
            bias.codeMin = std::numeric_limits<std::int32_t>::min();
            bias.codeMax = std::numeric_limits<std::int32_t>::max();
            bias.scale = scale;
            bias.zeroPoint = zeros;
            out.encodings.push_back(std::move(bias));
        }
        // Output activation.
        if (lp.dynamicActivations) {
            out.warnings.push_back("layer '" + layer.name + "': dynamic activation ranges are written in float (QDQ needs a static scale)");
            continue;
        }
        if (!lp.activationParams)
            continue;
        const QuantParams& a = *lp.activationParams;
        if (!isIntegerActivationParams(a)) {
            out.warnings.push_back("layer '" + layer.name + "': activations " + describe(a) +
                                   " have no integer form in ONNX's 8-bit QDQ; written in float");
            out.encodings.push_back(encodingOf(layer.output, layer.name, "activation", a, false));
            continue;
        }
        const float scale = a.uniform().scale[0];
        const std::int32_t zeroPoint = a.uniform().zeroPoint[0];
        const std::string tensor = layer.output;
        const bool isInput = layer.outputNodeIndex < 0;
        // The producer writes <tensor>_float (or the graph input itself); DequantizeLinear writes
        // the name every consumer reads, so no consumer changes (graph outputs keep their names).
        std::string source = tensor, target = tensor;
        if (isInput) {
            target = newName(tensor + "_dequantized");
            renamedInputs[tensor] = target;
        } else {
            source = newName(tensor + "_float");
            for (std::string& o : g.nodes[static_cast<std::size_t>(layer.outputNodeIndex)].outputs)
                if (o == tensor)
                    o = source;
        }
        std::vector<Node> inserted;
        const bool narrow = a.qmin != (a.isSigned ? -128 : 0) || a.qmax != (a.isSigned ? 127 : 255);
        std::string toQuantize = source;
        if (narrow) {
            // Fewer than 8 bits in 8-bit codes: QuantizeLinear saturates only to the storage's
            // range, so a Clip to the narrower range comes first (the same values as ours).
            const float lo = scale * static_cast<float>(a.qmin - zeroPoint);
            const float hi = scale * static_cast<float>(a.qmax - zeroPoint);
            toQuantize = newName(tensor + "_clipped");
            inserted.push_back(makeNode("Clip", tensor,
                                        {source, addInitializer(tensor + "_clip_min", Tensor::fromValues<float>({}, std::vector<float>{lo})),
                                         addInitializer(tensor + "_clip_max", Tensor::fromValues<float>({}, std::vector<float>{hi}))},
                                        {toQuantize}));
        }
        const std::string scaleName = addInitializer(tensor + "_scale", Tensor::fromValues<float>({}, std::vector<float>{scale}));
        const std::string zeroName = addInitializer(tensor + "_zero_point", codesTensor({zeroPoint}, {}, a.isSigned));
        const std::string codes = newName(tensor + "_quantized");
        inserted.push_back(makeNode("QuantizeLinear", tensor, {toQuantize, scaleName, zeroName}, {codes}));
        inserted.push_back(makeNode("DequantizeLinear", tensor, {codes, scaleName, zeroName}, {target}));
        auto& slot = isInput ? afterInputs : afterNode[static_cast<std::size_t>(layer.outputNodeIndex)];
        for (Node& n : inserted)
            slot.push_back(std::move(n));
        out.encodings.push_back(encodingOf(tensor, layer.name, "activation", a, true));
    }

    // Consumers of a quantized graph input read its dequantized form.
    for (Node& node : g.nodes)
        for (std::string& in : node.inputs)
            if (auto it = renamedInputs.find(in); it != renamedInputs.end())
                in = it->second;
    std::vector<Node> nodes = std::move(weightNodes);
    for (Node& n : afterInputs)
        nodes.push_back(std::move(n));
    for (std::size_t i = 0; i < g.nodes.size(); ++i) {
        nodes.push_back(std::move(g.nodes[i]));
        if (auto it = afterNode.find(i); it != afterNode.end())
            for (Node& n : it->second)
                nodes.push_back(std::move(n));
    }
    g.nodes = std::move(nodes);
    return out;
}

std::string encodingsJson(const std::vector<TensorEncoding>& encodings)
{
    nlohmann::json tensors = nlohmann::json::array();
    for (const TensorEncoding& e : encodings) {
        nlohmann::json t{{"tensor", e.tensor}, {"layer", e.layer}, {"kind", e.kind}, {"scheme", e.scheme}, {"bits", e.bits},
                         {"signed", e.isSigned}, {"granularity", e.granularity}, {"axis", e.axis}, {"code_min", e.codeMin},
                         {"code_max", e.codeMax}, {"scale", e.scale}, {"zero_point", e.zeroPoint}, {"in_qdq_model", e.inQdqModel}};
        if (!e.levels.empty())
            t["levels"] = e.levels;
        if (!e.preScale.empty())
            t["pre_scale"] = e.preScale;
        tensors.push_back(std::move(t));
    }
    return nlohmann::json{{"format", "quantexplorer-encodings"},
                          {"version", 1},
                          {"meaning", "real = scale * (code - zero_point); log2 and k-means tensors list their levels per block, "
                                      "floating-point formats their pre-scale (real = pre_scale * format(x / pre_scale)); "
                                      "in_qdq_model false: the QDQ model holds the tensor's dequantized float values"},
                          {"tensors", tensors}}
               .dump(2) + "\n";
}

std::string encodingsCsv(const std::vector<TensorEncoding>& encodings)
{
    std::ostringstream csv;
    csv.precision(9);
    csv << "tensor,layer,kind,scheme,bits,signed,granularity,axis,code_min,code_max,scale,zero_point,in_qdq_model,levels,pre_scale\n";
    auto quoted = [](const std::string& s) {
        std::string q = "\"";
        for (char c : s)
            q += c == '"' ? std::string("\"\"") : std::string(1, c);
        return q + "\"";
    };
    for (const TensorEncoding& e : encodings) {
        csv << quoted(e.tensor) << "," << quoted(e.layer) << "," << e.kind << "," << e.scheme << "," << e.bits << ","
            << (e.isSigned ? "true" : "false") << "," << e.granularity << "," << e.axis << "," << e.codeMin << "," << e.codeMax << ",";
        for (std::size_t i = 0; i < e.scale.size(); ++i)
            csv << (i ? ";" : "") << e.scale[i];
        csv << ",";
        for (std::size_t i = 0; i < e.zeroPoint.size(); ++i)
            csv << (i ? ";" : "") << e.zeroPoint[i];
        csv << "," << (e.inQdqModel ? "true" : "false") << ",";
        for (std::size_t b = 0; b < e.levels.size(); ++b) {
            csv << (b ? "|" : "");
            for (std::size_t i = 0; i < e.levels[b].size(); ++i)
                csv << (i ? ";" : "") << e.levels[b][i];
        }
        csv << ",";
        for (std::size_t i = 0; i < e.preScale.size(); ++i)
            csv << (i ? ";" : "") << e.preScale[i];
        csv << "\n";
    }
    return csv.str();
}

}  // namespace qe
