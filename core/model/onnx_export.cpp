#include "model/onnx_export.h"

#include "common/atomic_file.h"
#include "common/error.h"

#include <onnx/onnx_pb.h>

#include <cstring>
#include <set>

namespace qe {

namespace {

int onnxType(DataType type)
{
    switch (type) {
    case DataType::Float32: return onnx::TensorProto::FLOAT;
    case DataType::Float64: return onnx::TensorProto::DOUBLE;
    case DataType::Int8: return onnx::TensorProto::INT8;
    case DataType::UInt8: return onnx::TensorProto::UINT8;
    case DataType::Int16: return onnx::TensorProto::INT16;
    case DataType::UInt16: return onnx::TensorProto::UINT16;
    case DataType::Int32: return onnx::TensorProto::INT32;
    case DataType::Int64: return onnx::TensorProto::INT64;
    case DataType::Bool: return onnx::TensorProto::BOOL;
    }
    return onnx::TensorProto::UNDEFINED;
}

void writeTensor(const Tensor& t, const std::string& name, onnx::TensorProto& proto)
{
    proto.set_name(name);
    proto.set_data_type(onnxType(t.dtype()));
    for (std::int64_t d : t.shape())
        proto.add_dims(d);
    // Raw data is little-endian, as the tensor's own storage on every platform we build for.
    proto.set_raw_data(std::string(reinterpret_cast<const char*>(t.rawData()), t.size() * dataTypeSize(t.dtype())));
}

void writeValueInfo(const ValueInfo& v, onnx::ValueInfoProto& proto)
{
    proto.set_name(v.name);
    auto* tensor = proto.mutable_type()->mutable_tensor_type();
    tensor->set_elem_type(onnxType(v.dtype));
    if (!v.shapeKnown)
        return;
    auto* shape = tensor->mutable_shape();
    for (const Dim& d : v.shape) {
        auto* dim = shape->add_dim();
        if (d.isDynamic())
            dim->set_dim_param(d.symbol.empty() ? "N" : d.symbol);
        else
            dim->set_dim_value(d.value);
    }
}

void writeAttribute(const std::string& key, const AttributeValue& value, onnx::AttributeProto& a)
{
    a.set_name(key);
    std::visit(
        [&](const auto& v) {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, std::int64_t>) {
                a.set_type(onnx::AttributeProto::INT);
                a.set_i(v);
            } else if constexpr (std::is_same_v<T, float>) {
                a.set_type(onnx::AttributeProto::FLOAT);
                a.set_f(v);
            } else if constexpr (std::is_same_v<T, std::string>) {
                a.set_type(onnx::AttributeProto::STRING);
                a.set_s(v);
            } else if constexpr (std::is_same_v<T, std::vector<std::int64_t>>) {
                a.set_type(onnx::AttributeProto::INTS);
                for (std::int64_t i : v)
                    a.add_ints(i);
            } else if constexpr (std::is_same_v<T, std::vector<float>>) {
                a.set_type(onnx::AttributeProto::FLOATS);
                for (float f : v)
                    a.add_floats(f);
            } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
                a.set_type(onnx::AttributeProto::STRINGS);
                for (const std::string& s : v)
                    a.add_strings(s);
            } else {
                a.set_type(onnx::AttributeProto::TENSOR);
                writeTensor(v, "", *a.mutable_t());
            }
        },
        value);
}


}  // namespace

Graph upgradeOpset(const Graph& source, std::int64_t opset)
{
    if (source.opsetVersion >= opset)
        return source;
    Graph g = source;
    const std::int64_t from = source.opsetVersion;
    auto addInt64s = [&](const std::string& base, const std::vector<std::int64_t>& values) {
        const std::string name = g.unusedName(base);
        g.initializers[name] = Tensor::fromValues<std::int64_t>({static_cast<std::int64_t>(values.size())}, values);
        return name;
    };
    for (Node& node : g.nodes) {
        const std::string& op = node.opType;
        if (!node.domain.empty() && node.domain != "ai.onnx")
            continue;
        if ((op == "Softmax" || op == "LogSoftmax" || op == "Hardmax") && from < 13 && opset >= 13) {
            // Before 13: flatten from `axis` (default 1) on. Same as axis = last for 2-D inputs.
            const auto shape = g.values.count(node.input(0)) ? g.values.at(node.input(0)).shape : SymbolicShape{};
            const std::int64_t axis = node.intAttribute("axis", 1);
            if (shape.empty() || !(axis == static_cast<std::int64_t>(shape.size()) - 1 || axis == -1))
                throw Error("node '" + node.name + "' (" + op + "): its opset " + std::to_string(from) +
                            " meaning (flatten from axis " + std::to_string(axis) + ") has no opset " + std::to_string(opset) +
                            " form here");
            node.attributes["axis"] = std::int64_t{-1};
        } else if ((op == "Squeeze" || op == "Unsqueeze") && from < 13 && opset >= 13 && node.hasAttribute("axes")) {
            const auto axes = node.intsAttribute("axes");
            node.attributes.erase("axes");
            node.inputs.resize(1);
            node.inputs.push_back(addInt64s(node.name + "_axes", axes));
        } else if (op == "Split" && from < 13 && opset >= 13 && node.hasAttribute("split")) {
            const auto split = node.intsAttribute("split");
            node.attributes.erase("split");
            node.inputs.resize(1);
            node.inputs.push_back(addInt64s(node.name + "_split", split));
        } else if (op == "Clip" && from < 11 && opset >= 11) {
            const float lo = node.floatAttribute("min", -std::numeric_limits<float>::infinity());
            const float hi = node.floatAttribute("max", std::numeric_limits<float>::infinity());
            node.attributes.erase("min");
            node.attributes.erase("max");
            const std::string loName = g.unusedName(node.name + "_min");
            g.initializers[loName] = Tensor::fromValues<float>({}, std::vector<float>{lo});
            const std::string hiName = g.unusedName(node.name + "_max");
            g.initializers[hiName] = Tensor::fromValues<float>({}, std::vector<float>{hi});
            node.inputs = {node.input(0), loName, hiName};
        } else if ((op == "Pad" && from < 11) || (op == "ReduceMean" && opset >= 18) || (op == "Upsample") ||
                   (op == "BatchNormalization" && from < 9) || (op == "Dropout" && from < 12) || (op == "Slice" && from < 10)) {
            throw Error("node '" + node.name + "' (" + op + "): changing the model from opset " + std::to_string(from) + " to " +
                        std::to_string(opset) + " is not supported for this operator");
        }
    }
    g.opsetVersion = opset;
    return g;
}

std::string serializeOnnx(const Graph& source, const ExportOptions& options)
{
    const Graph g = upgradeOpset(source, options.minimumOpset);
    onnx::ModelProto model;
    model.set_ir_version(7);  // ONNX 1.8+, read by every ONNX Runtime since 1.6
    model.set_producer_name(options.producerName);
    auto* opset = model.add_opset_import();
    opset->set_domain("");
    opset->set_version(g.opsetVersion);
    auto* graph = model.mutable_graph();
    graph->set_name(g.name.empty() ? "graph" : g.name);
    for (const auto& [name, tensor] : g.initializers)
        writeTensor(tensor, name, *graph->add_initializer());
    for (const ValueInfo& v : g.inputs)
        writeValueInfo(v, *graph->add_input());
    for (const ValueInfo& v : g.outputs)
        writeValueInfo(v, *graph->add_output());
    for (const Node& n : g.nodes) {
        auto* node = graph->add_node();
        node->set_name(n.name);
        node->set_op_type(n.opType);
        if (!n.domain.empty())
            node->set_domain(n.domain);
        for (const std::string& in : n.inputs)
            node->add_input(in);
        for (const std::string& out : n.outputs)
            node->add_output(out);
        for (const auto& [key, value] : n.attributes)
            writeAttribute(key, value, *node->add_attribute());
    }
    std::string bytes;
    if (!model.SerializeToString(&bytes))
        throw Error("cannot serialize the ONNX model (is it larger than 2 GiB?)");
    return bytes;
}

void saveOnnx(const Graph& graph, const std::filesystem::path& path, const ExportOptions& options)
{
    writeFileAtomically(path, serializeOnnx(graph, options));
}

}  // namespace qe
