#pragma once
// A dense, row-major tensor with shared, immutable-by-convention storage.
// Kernels never write into their inputs; reshape-like operators return views that share the
// buffer, so Flatten or Reshape of a large activation costs nothing.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace qe {

enum class DataType : std::uint8_t { Float32, Float64, Int8, UInt8, Int16, UInt16, Int32, Int64, Bool };

std::size_t dataTypeSize(DataType type);
std::string dataTypeName(DataType type);

template <class T> constexpr DataType dataTypeOf();
template <> constexpr DataType dataTypeOf<float>() { return DataType::Float32; }
template <> constexpr DataType dataTypeOf<double>() { return DataType::Float64; }
template <> constexpr DataType dataTypeOf<std::int8_t>() { return DataType::Int8; }
template <> constexpr DataType dataTypeOf<std::uint8_t>() { return DataType::UInt8; }
template <> constexpr DataType dataTypeOf<std::int16_t>() { return DataType::Int16; }
template <> constexpr DataType dataTypeOf<std::uint16_t>() { return DataType::UInt16; }
template <> constexpr DataType dataTypeOf<std::int32_t>() { return DataType::Int32; }
template <> constexpr DataType dataTypeOf<std::int64_t>() { return DataType::Int64; }
template <> constexpr DataType dataTypeOf<bool>() { return DataType::Bool; }

using Shape = std::vector<std::int64_t>;

std::string shapeToString(const Shape& shape);
// Product of the dimensions; throws qe::Error for a negative dimension or an element count that
// no real model needs (more than 2^32 elements), so absurd shapes never reach the allocator.
std::int64_t elementCount(const Shape& shape);
// The shape of multidirectional (numpy-style) broadcasting of two shapes; qe::Error naming both
// when they cannot be broadcast together.
Shape broadcastShapes(const Shape& a, const Shape& b);

// Frees the blocks of freed large tensors that wait to be reused (tensor.cpp's pool, at most 512
// MiB): for a new consumer of memory (another model's evaluation), whose sizes would not reuse
// them until they went stale.
void releaseIdleTensorBlocks();

class Tensor {
public:
    Tensor() = default;
    // Zero-initialised storage.
    Tensor(DataType type, Shape shape);
    // Storage left as the allocator gives it: for outputs a kernel writes completely (zeroing a
    // large activation first costs a pass over memory).
    static Tensor uninitialized(DataType type, Shape shape);

    template <class T> static Tensor fromValues(Shape shape, std::span<const T> values);
    template <class T> static Tensor fromValues(Shape shape, const std::vector<T>& values)
    {
        return fromValues<T>(std::move(shape), std::span<const T>(values));
    }
    template <class T> static Tensor scalar(T value) { return fromValues<T>({}, std::span<const T>(&value, 1)); }

    bool empty() const { return !storage_; }
    DataType dtype() const { return dtype_; }
    const Shape& shape() const { return shape_; }
    int rank() const { return static_cast<int>(shape_.size()); }
    std::int64_t dim(int axis) const { return shape_.at(static_cast<std::size_t>(axis)); }
    std::int64_t size() const { return count_; }
    std::size_t byteSize() const { return static_cast<std::size_t>(count_) * dataTypeSize(dtype_); }

    template <class T> const T* data() const
    {
        checkType(dataTypeOf<T>());
        return reinterpret_cast<const T*>(storage_.get());
    }
    template <class T> T* mutableData()
    {
        checkType(dataTypeOf<T>());
        return reinterpret_cast<T*>(storage_.get());
    }
    template <class T> std::span<const T> values() const { return {data<T>(), static_cast<std::size_t>(count_)}; }
    const std::byte* rawData() const { return storage_.get(); }
    // No other tensor shares this one's storage (a cache may then overwrite it in place).
    bool ownsStorageAlone() const { return storage_.use_count() == 1; }
    std::byte* mutableRawData() { return storage_.get(); }

    // Same storage, new shape with the same element count.
    Tensor reshaped(Shape shape) const;
    // A deep copy (for the rare kernel that must modify a copy).
    Tensor clone() const;
    // A deep copy in memory mapped for it alone, outside the heap and sized to the page: for
    // tensors kept long among many short-lived ones (the evaluator's caches). In the heap each
    // would pin the freed space around it, and one of 2 MiB or more is rounded up to whole
    // 2 MiB pages (allocateStorage).
    Tensor copyIntoOwnMapping() const;
    // Values converted to another type with C++ conversion semantics (float->int truncates).
    Tensor castTo(DataType type) const;
    // Integer-valued tensors (shape inputs, axes, pads) read as int64 whatever their storage type.
    std::vector<std::int64_t> toInt64Vector() const;
    std::vector<float> toFloatVector() const;

    std::string describe() const;  // "float32[1,3,224,224]"

private:
    void checkType(DataType requested) const;

    DataType dtype_ = DataType::Float32;
    Shape shape_;
    std::int64_t count_ = 0;
    std::shared_ptr<std::byte[]> storage_;
};

// Calls fn(T{}) with T the C++ type of `type`; used to write a kernel once for every type.
template <class Fn> decltype(auto) dispatchType(DataType type, Fn&& fn)
{
    switch (type) {
    case DataType::Float32: return fn(float{});
    case DataType::Float64: return fn(double{});
    case DataType::Int8: return fn(std::int8_t{});
    case DataType::UInt8: return fn(std::uint8_t{});
    case DataType::Int16: return fn(std::int16_t{});
    case DataType::UInt16: return fn(std::uint16_t{});
    case DataType::Int32: return fn(std::int32_t{});
    case DataType::Int64: return fn(std::int64_t{});
    case DataType::Bool: return fn(bool{});
    }
    return fn(float{});
}

}  // namespace qe
