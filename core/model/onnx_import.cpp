#include "model/onnx_import.h"

#include "common/error.h"
#include "common/limits.h"
#include "model/operator_traits.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <queue>
#include <set>
#include <sstream>

namespace qe {

namespace {

std::string readFile(const std::filesystem::path& path)
{
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in)
        throw Error(path.string() + ": cannot open file");
    // Read at once into a string of the file's size: copying through a string stream grows its
    // buffer by doubling, and for a 45 MB model those copies and their fresh pages cost a tenth of
    // a second. A file without a size (a pipe) is copied through the stream.
    const std::streamoff size = in.tellg();
    if (size < 0) {
        in.clear();
        std::ostringstream buffer;
        buffer << in.rdbuf();
        return buffer.str();
    }
    std::string bytes(static_cast<std::size_t>(size), '\0');
    in.seekg(0);
    if (!in.read(bytes.data(), size))
        throw Error(path.string() + ": cannot read file");
    return bytes;
}


// Copies the typed repeated field of a TensorProto into the tensor, converting element by element.
template <class Field> void copyTypedField(const Field& field, Tensor& tensor, const std::string& what)
{
    if (static_cast<std::int64_t>(field.size()) != tensor.size())
        throw Error(what + ": has " + std::to_string(field.size()) + " values, shape " + shapeToString(tensor.shape()) +
                    " needs " + std::to_string(tensor.size()));
    dispatchType(tensor.dtype(), [&](auto v) {
        using T = decltype(v);
        T* out = tensor.mutableData<T>();
        for (int i = 0; i < field.size(); ++i)
            out[i] = static_cast<T>(field.Get(i));
    });
}

// A non-negative decimal integer from an external_data entry.
std::int64_t parseExternalDataNumber(const std::string& text, const std::string& what, const std::string& key)
{
    std::int64_t value = 0;
    if (text.empty() || text.size() > 18)
        throw Error(what + ": external data '" + key + "' is '" + text + "'; expected a non-negative integer");
    for (char c : text) {
        if (c < '0' || c > '9')
            throw Error(what + ": external data '" + key + "' is '" + text + "'; expected a non-negative integer");
        value = value * 10 + (c - '0');
    }
    return value;
}

// The file an external_data 'location' names. Only files inside the model's folder are allowed:
// a model from elsewhere must not make us read /etc/passwd or ../../secret, directly or through a
// symbolic link.
std::filesystem::path externalDataFile(const std::string& location, const std::string& what, const std::filesystem::path& dir)
{
    namespace fs = std::filesystem;
    const fs::path relative(location);
    if (location.find('\0') != std::string::npos || relative.is_absolute() || relative.has_root_name() ||
        relative.has_root_directory())
        throw Error(what + ": external data location '" + location +
                    "' is an absolute path; only files inside the model's folder are allowed");
    for (const fs::path& part : relative)
        if (part == "..")
            throw Error(what + ": external data location '" + location +
                        "' contains '..'; only files inside the model's folder are allowed");
    const fs::path file = dir / relative;
    std::error_code ec;
    const fs::path realDir = fs::weakly_canonical(dir.empty() ? fs::path(".") : dir, ec);
    const fs::path realFile = ec ? fs::path() : fs::weakly_canonical(file, ec);
    if (ec)
        throw Error(what + ": external data file '" + file.string() + "' cannot be resolved (" + ec.message() + ")");
    const auto [dirEnd, fileIt] = std::mismatch(realDir.begin(), realDir.end(), realFile.begin(), realFile.end());
    if (dirEnd != realDir.end())
        throw Error(what + ": external data file '" + file.string() + "' leads outside the model's folder (to '" +
                    realFile.string() + "', through a symbolic link)");
    return file;
}

Tensor convertTensor(const onnx::TensorProto& proto, const std::string& what, const std::filesystem::path& externalDataDir)
{
    const DataType type = convertDataType(proto.data_type(), what);
    Shape shape(proto.dims().begin(), proto.dims().end());
    // The declared size is checked against the data present before anything is allocated: a
    // 10-byte initializer that claims 1e12 elements must not cost 4 TB.
    std::uint64_t declaredBytes = 0;
    try {
        declaredBytes = static_cast<std::uint64_t>(elementCount(shape)) * dataTypeSize(type);
    } catch (const Error& e) {
        throw Error(what + ": " + e.what());
    }
    const bool external = proto.data_location() == onnx::TensorProto::EXTERNAL;
    if (!external && proto.has_raw_data() && proto.raw_data().size() != declaredBytes)
        throw Error(what + ": raw_data has " + std::to_string(proto.raw_data().size()) + " bytes, shape " +
                    shapeToString(shape) + " needs " + std::to_string(declaredBytes));
    Tensor tensor;
    try {
        tensor = Tensor(type, shape);
    } catch (const Error& e) {
        throw Error(what + ": " + e.what());
    }
    if (external) {
        std::string location;
        std::int64_t offset = 0;
        std::int64_t length = -1;
        for (const auto& entry : proto.external_data()) {
            if (entry.key() == "location")
                location = entry.value();
            else if (entry.key() == "offset")
                offset = parseExternalDataNumber(entry.value(), what, "offset");
            else if (entry.key() == "length")
                length = parseExternalDataNumber(entry.value(), what, "length");
        }
        if (location.empty())
            throw Error(what + ": external data has no 'location'");
        const std::filesystem::path file = externalDataFile(location, what, externalDataDir);
        std::ifstream in(file, std::ios::binary);
        if (!in)
            throw Error(what + ": external data file '" + file.string() + "' cannot be opened");
        const auto bytes = static_cast<std::int64_t>(tensor.byteSize());
        if (length >= 0 && length != bytes)
            throw Error(what + ": external data length " + std::to_string(length) + " does not match " +
                        std::to_string(bytes) + " bytes of " + tensor.describe());
        in.seekg(offset);
        in.read(reinterpret_cast<char*>(tensor.mutableRawData()), bytes);
        if (in.gcount() != bytes)
            throw Error(what + ": external data file '" + file.string() + "' is too short (truncated?)");
        return tensor;
    }
    if (proto.has_raw_data()) {
        const std::string& raw = proto.raw_data();
        if (raw.size() != tensor.byteSize())
            throw Error(what + ": raw_data has " + std::to_string(raw.size()) + " bytes, " + tensor.describe() +
                        " needs " + std::to_string(tensor.byteSize()));
        if (!raw.empty())
            std::memcpy(tensor.mutableRawData(), raw.data(), raw.size());  // ONNX raw data is little-endian, as is x86
        return tensor;
    }
    switch (proto.data_type()) {
    case onnx::TensorProto::FLOAT: copyTypedField(proto.float_data(), tensor, what); break;
    case onnx::TensorProto::DOUBLE: copyTypedField(proto.double_data(), tensor, what); break;
    case onnx::TensorProto::INT64: copyTypedField(proto.int64_data(), tensor, what); break;
    default: copyTypedField(proto.int32_data(), tensor, what); break;
    }
    return tensor;
}

AttributeValue convertAttribute(const onnx::AttributeProto& attr, const std::string& what, const std::filesystem::path& dir)
{
    switch (attr.type()) {
    case onnx::AttributeProto::FLOAT: return attr.f();
    case onnx::AttributeProto::INT: return static_cast<std::int64_t>(attr.i());
    case onnx::AttributeProto::STRING: return attr.s();
    case onnx::AttributeProto::TENSOR: return convertTensor(attr.t(), what, dir);
    case onnx::AttributeProto::FLOATS: return std::vector<float>(attr.floats().begin(), attr.floats().end());
    case onnx::AttributeProto::INTS: return std::vector<std::int64_t>(attr.ints().begin(), attr.ints().end());
    case onnx::AttributeProto::STRINGS: return std::vector<std::string>(attr.strings().begin(), attr.strings().end());
    default: break;
    }
    throw Error(what + ": attribute type " +
                onnx::AttributeProto::AttributeType_Name(attr.type()) + " is not supported");
}

ValueInfo convertValueInfo(const onnx::ValueInfoProto& proto, const std::string& source)
{
    ValueInfo info;
    info.name = proto.name();
    if (!proto.has_type())
        return info;
    if (!proto.type().has_tensor_type())
        throw Error(source + ": tensor '" + proto.name() +
                    "': element type is a sequence, map or optional; only tensors are supported");
    const auto& tensorType = proto.type().tensor_type();
    if (tensorType.elem_type() != 0)
        info.dtype = convertDataType(tensorType.elem_type(), source + ": tensor '" + proto.name() + "'");
    if (tensorType.has_shape()) {
        info.shapeKnown = true;
        for (const auto& d : tensorType.shape().dim()) {
            Dim dim;
            if (d.has_dim_value() && d.dim_value() >= 0)
                dim.value = d.dim_value();
            else
                dim.symbol = d.has_dim_param() ? d.dim_param() : std::string();
            info.shape.push_back(dim);
        }
    }
    return info;
}

// Kahn's algorithm; a leftover node means a cycle, and we name the nodes on it.
std::vector<Node> topologicalSort(std::vector<Node> nodes, const std::set<std::string>& available, const std::string& source)
{
    std::map<std::string, std::size_t> producerOf;
    for (std::size_t i = 0; i < nodes.size(); ++i)
        for (const std::string& out : nodes[i].outputs) {
            if (out.empty())
                continue;
            if (producerOf.count(out) || available.count(out))
                throw Error(source + ": tensor '" + out + "' is produced twice (by node '" + nodes[i].name + "')");
            producerOf[out] = i;
        }
    std::vector<int> pending(nodes.size(), 0);
    std::vector<std::vector<std::size_t>> dependents(nodes.size());
    for (std::size_t i = 0; i < nodes.size(); ++i)
        for (const std::string& in : nodes[i].inputs) {
            if (in.empty() || available.count(in))
                continue;
            auto it = producerOf.find(in);
            if (it == producerOf.end())
                throw Error(source + ": node '" + nodes[i].name + "' (" + nodes[i].opType + ") reads '" + in +
                            "', which is neither a graph input, an initializer nor any node's output (missing initializer?)");
            ++pending[i];
            dependents[it->second].push_back(i);
        }
    std::queue<std::size_t> ready;
    for (std::size_t i = 0; i < nodes.size(); ++i)
        if (pending[i] == 0)
            ready.push(i);
    std::vector<Node> sorted;
    sorted.reserve(nodes.size());
    std::vector<bool> done(nodes.size(), false);
    while (!ready.empty()) {
        const std::size_t i = ready.front();
        ready.pop();
        done[i] = true;
        sorted.push_back(nodes[i]);
        for (std::size_t d : dependents[i])
            if (--pending[d] == 0)
                ready.push(d);
    }
    if (sorted.size() != nodes.size()) {
        std::string names;
        for (std::size_t i = 0; i < nodes.size(); ++i)
            if (!done[i])
                names += (names.empty() ? "'" : ", '") + nodes[i].name + "'";
        throw Error(source + ": the graph has a cycle through node(s) " + names);
    }
    return sorted;
}

}  // namespace

DataType convertDataType(int onnxType, const std::string& what)
{
    switch (onnxType) {
    case onnx::TensorProto::FLOAT: return DataType::Float32;
    case onnx::TensorProto::DOUBLE: return DataType::Float64;
    case onnx::TensorProto::INT8: return DataType::Int8;
    case onnx::TensorProto::UINT8: return DataType::UInt8;
    case onnx::TensorProto::INT16: return DataType::Int16;
    case onnx::TensorProto::UINT16: return DataType::UInt16;
    case onnx::TensorProto::INT32: return DataType::Int32;
    case onnx::TensorProto::INT64: return DataType::Int64;
    case onnx::TensorProto::BOOL: return DataType::Bool;
    default: break;
    }
    throw Error(what + ": element type " + std::to_string(onnxType) + " (" +
                onnx::TensorProto::DataType_Name(static_cast<onnx::TensorProto::DataType>(onnxType)) +
                ") is not supported; expected float, double, (u)int8/16, int32, int64 or bool");
}

Tensor loadTensorProtoFile(const std::filesystem::path& path, std::string* name)
{
    const std::string bytes = readFile(path);
    onnx::TensorProto proto;
    if (!proto.ParseFromString(bytes))
        throw Error(path.string() + ": not a valid TensorProto file");
    if (name)
        *name = proto.name();
    return convertTensor(proto, path.string(), path.parent_path());
}

Graph readOnnx(const std::filesystem::path& path)
{
    return readOnnxFromMemory(readFile(path), path.string(), path.parent_path());
}

Graph readOnnxFromMemory(const std::string& bytes, const std::string& source, const std::filesystem::path& externalDataDir)
{
    onnx::ModelProto model;
    if (bytes.empty())
        throw Error(source + ": the file is empty");
    if (!model.ParseFromString(bytes))
        throw Error(source + ": not a valid ONNX model (the protobuf cannot be parsed; truncated or not an ONNX file)");
    if (!model.has_graph() || model.graph().node_size() == 0)
        throw Error(source + ": the ONNX model has no graph nodes (truncated or not an ONNX model?)");

    // Operators first: "operator X is not supported" is the most useful thing to tell a user.
    for (int i = 0; i < model.graph().node_size(); ++i) {
        const auto& proto = model.graph().node(i);
        if (!findOperator(proto.domain(), proto.op_type()))
            throw Error(source + ": " +
                        unsupportedOperatorMessage(proto.name().empty() ? proto.op_type() + "_" + std::to_string(i) : proto.name(),
                                                   proto.op_type(), proto.domain()));
    }

    Graph graph;
    graph.sourcePath = source;
    graph.name = model.graph().name();
    for (const auto& opset : model.opset_import())
        if (opset.domain().empty() || opset.domain() == "ai.onnx")
            graph.opsetVersion = opset.version();
    if (graph.opsetVersion == 0)
        throw Error(source + ": the model imports no opset of the default ONNX domain");
    if (graph.opsetVersion > 18)
        throw Error(source + ": opset " + std::to_string(graph.opsetVersion) + " is newer than supported (up to 18)");

    const onnx::GraphProto& g = model.graph();
    for (const auto& init : g.initializer()) {
        if (init.name().empty())
            throw Error(source + ": an initializer has no name");
        graph.initializers[init.name()] = convertTensor(init, source + ": initializer '" + init.name() + "'", externalDataDir);
    }
    for (const auto& input : g.input()) {
        if (graph.isInitializer(input.name()))  // IR-3 models list initializers as inputs too
            continue;
        // A negative size is no size. (0 is valid ONNX, an empty tensor, and the ONNX tests use it;
        // an image input with a 0 is refused where the model is used as a classifier,
        // imageInputGeometry.)
        if (input.type().has_tensor_type() && input.type().tensor_type().has_shape())
            for (int d = 0; d < input.type().tensor_type().shape().dim_size(); ++d) {
                const auto& dim = input.type().tensor_type().shape().dim(d);
                if (dim.has_dim_value() && dim.dim_value() < 0)
                    throw Error(source + ": graph input '" + input.name() + "': dimension " + std::to_string(d) +
                                " is " + std::to_string(dim.dim_value()) + "; expected a size >= 0 or a symbol");
            }
        graph.inputs.push_back(convertValueInfo(input, source));
    }
    for (const auto& output : g.output())
        graph.outputs.push_back(convertValueInfo(output, source));
    for (const auto& vi : g.value_info())
        graph.values[vi.name()] = convertValueInfo(vi, source);

    std::set<std::string> nodeNames;
    for (int i = 0; i < g.node_size(); ++i) {
        const auto& proto = g.node(i);
        Node node;
        node.opType = proto.op_type();
        node.domain = proto.domain() == "ai.onnx" ? "" : proto.domain();
        // Names must be unique: per-layer configuration refers to them.
        const std::string base = proto.name().empty() ? node.opType + "_" + std::to_string(i) : proto.name();
        node.name = base;
        for (int suffix = 1; !nodeNames.insert(node.name).second; ++suffix)
            node.name = base + "_" + std::to_string(suffix);
        node.inputs.assign(proto.input().begin(), proto.input().end());
        node.outputs.assign(proto.output().begin(), proto.output().end());
        for (const auto& attr : proto.attribute())
            node.attributes[attr.name()] =
                convertAttribute(attr, source + ": node '" + node.name + "' attribute '" + attr.name() + "'", externalDataDir);
        graph.nodes.push_back(std::move(node));
    }

    std::set<std::string> available;
    for (const auto& [name, tensor] : graph.initializers)
        available.insert(name);
    for (const ValueInfo& input : graph.inputs)
        available.insert(input.name);
    graph.nodes = topologicalSort(std::move(graph.nodes), available, source);
    for (const ValueInfo& output : graph.outputs)
        if (!available.count(output.name) && !graph.producer(output.name))
            throw Error(source + ": graph output '" + output.name + "' is not produced by any node");

    return graph;
}

}  // namespace qe
