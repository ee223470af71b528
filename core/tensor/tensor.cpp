#include "tensor/tensor.h"

#include "common/error.h"
#include "common/limits.h"
#include "common/sanitizers.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace qe {

std::size_t dataTypeSize(DataType type)
{
    return dispatchType(type, [](auto v) { return sizeof(v); });
}

std::string dataTypeName(DataType type)
{
    switch (type) {
    case DataType::Float32: return "float32";
    case DataType::Float64: return "float64";
    case DataType::Int8: return "int8";
    case DataType::UInt8: return "uint8";
    case DataType::Int16: return "int16";
    case DataType::UInt16: return "uint16";
    case DataType::Int32: return "int32";
    case DataType::Int64: return "int64";
    case DataType::Bool: return "bool";
    }
    return "unknown";
}

std::string shapeToString(const Shape& shape)
{
    std::ostringstream out;
    out << '[';
    for (std::size_t i = 0; i < shape.size(); ++i)
        out << (i ? "," : "") << shape[i];
    out << ']';
    return out.str();
}

std::int64_t elementCount(const Shape& shape)
{
    constexpr std::int64_t kMaxElements = std::int64_t{1} << 32;
    std::int64_t count = 1;
    for (std::int64_t d : shape) {
        if (d < 0)
            throw Error("shape " + shapeToString(shape) + " has a negative dimension");
        if (d != 0 && count > kMaxElements / d)
            throw Error("shape " + shapeToString(shape) + " is absurdly large (more than 2^32 elements)");
        count *= d;
    }
    return count;
}

namespace {

#if defined(__linux__) && defined(MADV_HUGEPAGE)
constexpr std::size_t kHugePage = std::size_t{2} << 20;

// Freed large blocks kept for the next tensor of the same rounded size. A run allocates the same
// activation shapes batch after batch, and every fresh block costs page faults and the kernel
// zeroing its pages before a kernel writes them again: glibc trims the heap's top whenever more
// than the trim threshold (1 GiB, keepFreedMemoryForReuse) is free there, which the evaluator's
// batches of MobileNetV1 activations reach, and the kernel's page clearing then took a quarter of
// its evaluation. At most kIdleBytes wait here, the longest-waiting freed first. A tensor that
// finds no block of its size first frees stale blocks (idle through kStaleTakes large
// allocations: sizes the run no longer asks for) worth its size; blocks still in use batch after
// batch stay (freeing those on every miss, when two batches in flight had taken every block of a
// size, cost MobileNetV1 0.5's evaluation a fifth of its time in fresh pages). A new evaluator,
// whose sizes are another model's, empties the pool first (releaseIdleTensorBlocks), so the
// blocks it holds are the running evaluation's batches, which its budget counts. The table is
// fixed (a block is at least 2 MiB), so returning a block, which runs in a tensor's deleter,
// allocates nothing. Off under
// AddressSanitizer, so that it still sees every use after free.
class LargeBlocks {
public:
    static constexpr std::size_t kIdleBytes = std::size_t{512} << 20;
    static constexpr std::uint64_t kStaleTakes = 1024;  // a batch of MobileNetV1 takes about 120

    void* take(std::size_t size)
    {
        {
            const std::lock_guard lock(mutex_);
            ++takes_;
            for (std::size_t i = count_; i-- > 0;)  // the most recently freed first: warm in cache
                if (idle_[i].size == size) {
                    void* p = idle_[i].pointer;
                    remove(i);
                    return p;
                }
            // The oldest first: once one is not stale, none after it is.
            for (std::size_t freed = 0; freed < size && count_ > 0 && takes_ - idle_[0].givenAt > kStaleTakes;) {
                freed += idle_[0].size;
                std::free(idle_[0].pointer);
                remove(0);
            }
        }
        void* p = std::aligned_alloc(kHugePage, size);
        if (p)
            madvise(p, size, MADV_HUGEPAGE);  // advice only: without huge pages it is ordinary memory
        return p;
    }

    void give(void* p, std::size_t size) noexcept
    {
        if (QE_ADDRESS_SANITIZER || size > kIdleBytes) {
            std::free(p);
            return;
        }
        const std::lock_guard lock(mutex_);
        while (count_ > 0 && (idleBytes_ + size > kIdleBytes || count_ == idle_.size())) {
            std::free(idle_[0].pointer);
            remove(0);
        }
        idle_[count_++] = {p, size, takes_};
        idleBytes_ += size;
    }

    void releaseAll() noexcept
    {
        const std::lock_guard lock(mutex_);
        while (count_ > 0) {
            std::free(idle_[0].pointer);
            remove(0);
        }
    }

private:
    struct Block {
        void* pointer;
        std::size_t size;
        std::uint64_t givenAt;  // takes_ when it was freed
    };
    // Drops entry i, keeping the rest in the order they were freed.
    void remove(std::size_t i)
    {
        idleBytes_ -= idle_[i].size;
        std::copy(idle_.begin() + std::ptrdiff_t(i) + 1, idle_.begin() + std::ptrdiff_t(count_), idle_.begin() + std::ptrdiff_t(i));
        --count_;
    }
    std::mutex mutex_;
    std::array<Block, kIdleBytes / kHugePage> idle_{};  // [0, count_): oldest first
    std::size_t count_ = 0, idleBytes_ = 0;
    std::uint64_t takes_ = 0;
};

// Never destroyed: tensors freed during static destruction still return their blocks.
LargeBlocks& largeBlocks()
{
    static LargeBlocks* blocks = new LargeBlocks;
    return *blocks;
}
#endif

// Storage for `bytes`, zeroed or not. Large tensors (a batch of activations) get memory aligned
// to 2 MiB and marked for transparent huge pages: a kernel that walks tens of MB of activations
// then misses the TLB far less, and its speed no longer depends on where the allocator happened
// to place the buffer (measured in bench/README.md: up to 30% at batch 32). Their blocks are
// recycled (LargeBlocks).
std::shared_ptr<std::byte[]> allocateStorage(std::size_t bytes, bool zeroed, const Shape& shape)
{
    checkMemoryBudget(bytes, "tensor of shape " + shapeToString(shape));
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes >= kHugePage) {
        const std::size_t size = (bytes + kHugePage - 1) / kHugePage * kHugePage;
        if (void* p = largeBlocks().take(size)) {
            if (zeroed)
                std::memset(p, 0, bytes);
            return std::shared_ptr<std::byte[]>(static_cast<std::byte*>(p), [size](std::byte* q) { largeBlocks().give(q, size); });
        }
    }
#endif
    return zeroed ? std::shared_ptr<std::byte[]>(new std::byte[bytes]()) : std::shared_ptr<std::byte[]>(new std::byte[bytes]);
}

}  // namespace

void releaseIdleTensorBlocks()
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    largeBlocks().releaseAll();
#endif
}

Tensor Tensor::copyIntoOwnMapping() const
{
    if (empty())
        return {};
#if defined(__linux__)
    const std::size_t bytes = std::max<std::size_t>(1, byteSize());
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) {
#if defined(MADV_HUGEPAGE)
        // Whole huge pages where the mapping covers them: a 4 KiB page fault per page of the
        // evaluation images was a tenth of a ResNet-18 evaluation's faults. Advice only.
        if (bytes >= kHugePage)
            madvise(p, bytes, MADV_HUGEPAGE);
#endif
        std::memcpy(p, storage_.get(), byteSize());
        Tensor t = *this;
        t.storage_ = std::shared_ptr<std::byte[]>(static_cast<std::byte*>(p), [bytes](std::byte* q) { munmap(q, bytes); });
        return t;
    }
#endif
    return clone();
}

Tensor::Tensor(DataType type, Shape shape)
    : dtype_(type), shape_(std::move(shape)), count_(elementCount(shape_))
{
    // Always allocate at least one byte so that an empty tensor (0 elements) is not "no tensor".
    const std::size_t bytes = std::max<std::size_t>(1, byteSize());
    storage_ = allocateStorage(bytes, true, shape_);
}

Tensor Tensor::uninitialized(DataType type, Shape shape)
{
    Tensor t;
    t.dtype_ = type;
    t.shape_ = std::move(shape);
    t.count_ = elementCount(t.shape_);
    t.storage_ = allocateStorage(std::max<std::size_t>(1, t.byteSize()), false, t.shape_);
    return t;
}

template <class T> Tensor Tensor::fromValues(Shape shape, std::span<const T> values)
{
    Tensor t(dataTypeOf<T>(), std::move(shape));
    if (static_cast<std::int64_t>(values.size()) != t.count_)
        throw Error("tensor of shape " + shapeToString(t.shape_) + " needs " + std::to_string(t.count_) +
                    " values, got " + std::to_string(values.size()));
    std::copy(values.begin(), values.end(), t.mutableData<T>());
    return t;
}

template Tensor Tensor::fromValues<float>(Shape, std::span<const float>);
template Tensor Tensor::fromValues<double>(Shape, std::span<const double>);
template Tensor Tensor::fromValues<std::int8_t>(Shape, std::span<const std::int8_t>);
template Tensor Tensor::fromValues<std::uint8_t>(Shape, std::span<const std::uint8_t>);
template Tensor Tensor::fromValues<std::int16_t>(Shape, std::span<const std::int16_t>);
template Tensor Tensor::fromValues<std::uint16_t>(Shape, std::span<const std::uint16_t>);
template Tensor Tensor::fromValues<std::int32_t>(Shape, std::span<const std::int32_t>);
template Tensor Tensor::fromValues<std::int64_t>(Shape, std::span<const std::int64_t>);
template Tensor Tensor::fromValues<bool>(Shape, std::span<const bool>);

Tensor Tensor::reshaped(Shape shape) const
{
    if (elementCount(shape) != count_)
        throw Error("cannot reshape " + describe() + " to " + shapeToString(shape));
    Tensor view = *this;
    view.shape_ = std::move(shape);
    return view;
}

Tensor Tensor::clone() const
{
    Tensor copy(dtype_, shape_);
    if (byteSize())
        std::memcpy(copy.storage_.get(), storage_.get(), byteSize());
    return copy;
}

Tensor Tensor::castTo(DataType type) const
{
    if (type == dtype_)
        return *this;
    Tensor out(type, shape_);
    dispatchType(dtype_, [&](auto from) {
        using From = decltype(from);
        dispatchType(type, [&](auto to) {
            using To = decltype(to);
            const From* src = data<From>();
            To* dst = out.mutableData<To>();
            for (std::int64_t i = 0; i < count_; ++i)
                dst[i] = static_cast<To>(src[i]);
        });
    });
    return out;
}

std::vector<std::int64_t> Tensor::toInt64Vector() const
{
    const Tensor converted = castTo(DataType::Int64);
    auto v = converted.values<std::int64_t>();
    return {v.begin(), v.end()};
}

std::vector<float> Tensor::toFloatVector() const
{
    const Tensor converted = castTo(DataType::Float32);
    auto v = converted.values<float>();
    return {v.begin(), v.end()};
}

std::string Tensor::describe() const
{
    return dataTypeName(dtype_) + shapeToString(shape_);
}

void Tensor::checkType(DataType requested) const
{
    if (requested != dtype_)
        throw Error("tensor " + describe() + " accessed as " + dataTypeName(requested));
}

Shape broadcastShapes(const Shape& a, const Shape& b)
{
    const std::size_t rank = std::max(a.size(), b.size());
    Shape out(rank);
    for (std::size_t k = 0; k < rank; ++k) {
        const std::int64_t da = k < a.size() ? a[a.size() - 1 - k] : 1;
        const std::int64_t db = k < b.size() ? b[b.size() - 1 - k] : 1;
        if (da != db && da != 1 && db != 1)
            throw Error("shapes " + shapeToString(a) + " and " + shapeToString(b) + " cannot be broadcast together");
        out[rank - 1 - k] = da == 1 ? db : da;
    }
    return out;
}

}  // namespace qe
