#include "engine/ops/float_kernels.h"

#ifdef QE_HAVE_ONEDNN
#include "engine/onednn.h"
#endif

#include <list>
#include <map>
#include <mutex>
#include <omp.h>
#include <string>
#include <unordered_map>
#include <vector>

namespace qe {

#ifdef QE_HAVE_ONEDNN

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using Type = memory::data_type;

using onednn::cpuEngine;
using onednn::isOptimized;

struct Primitive {
    bool optimized = false;
    dnnl::convolution_forward::primitive_desc pd;
    dnnl::convolution_forward primitive;
};

// The layout of the input and output inside the convolution. Grouped and depthwise convolutions
// are fastest on 16-channel blocks (nChw16c); the others let oneDNN choose (channels-last for its
// BRGEMM kernels on AVX-512). Measured with bench_engines on ResNet-18 and MobileNetV1 (bench/README.md).
Tag activationTag(std::int64_t groups) { return groups > 1 ? Tag::nChw16c : Tag::any; }

// Primitives per geometry and thread count (oneDNN fixes a primitive's threads when it is made).
const Primitive& primitiveFor(const Shape& x, const Shape& w, bool hasBias, const Window2D& win, std::int64_t groups)
{
    static std::mutex mutex;
    static std::map<std::string, std::unique_ptr<Primitive>> cache;
    const int threads = omp_get_max_threads();
    std::string key;
    for (std::int64_t v : {x[0], x[1], x[2], x[3], w[0], w[1], w[2], w[3], groups, std::int64_t(hasBias), win.strideH, win.strideW,
                           win.dilationH, win.dilationW, win.padTop, win.padLeft, win.padBottom, win.padRight,
                           std::int64_t(threads)})
        key += std::to_string(v) + ',';
    std::lock_guard lock(mutex);
    auto& slot = cache[key];
    if (slot)
        return *slot;
    slot = std::make_unique<Primitive>();
    const std::int64_t oc = w[0];
    const memory::dims weightDims =
        groups == 1 ? memory::dims{oc, w[1], w[2], w[3]} : memory::dims{groups, oc / groups, w[1], w[2], w[3]};
    try {
        const memory::desc src({x[0], x[1], x[2], x[3]}, Type::f32, activationTag(groups));
        const memory::desc dst({x[0], oc, win.outH, win.outW}, Type::f32, activationTag(groups));
        const memory::desc weights(weightDims, Type::f32, Tag::any);
        const memory::desc bias = hasBias ? memory::desc({oc}, Type::f32, Tag::x) : memory::desc();
        const dnnl::convolution_forward::desc desc(
            dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src, weights, bias, dst,
            {win.strideH, win.strideW}, {win.dilationH - 1, win.dilationW - 1}, {win.padTop, win.padLeft},
            {win.padBottom, win.padRight});
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        slot->pd = dnnl::convolution_forward::primitive_desc(desc, attr, cpuEngine());
        slot->optimized = isOptimized(slot->pd.impl_info_str());
        if (slot->optimized)
            slot->primitive = dnnl::convolution_forward(slot->pd);
    } catch (const dnnl::error&) {
        slot->optimized = false;
    }
    return *slot;
}

// The weights packed into the layout a primitive chose, per weight tensor: packing every call
// would cost a pass over all weights per image at batch 1. The entry keeps the tensor (so its
// storage, the key, cannot be reused by another tensor while cached); the least recently used
// entries go when the cache holds more than kPackedBytes (the simulation makes new weights at
// every edit, so old ones must not pile up).
class PackedWeights {
public:
    memory get(const Tensor& weights, const memory::desc& plain, const memory::desc& packed)
    {
        std::lock_guard lock(mutex_);
        for (auto it = entries_.begin(); it != entries_.end(); ++it)
            if (it->weights.rawData() == weights.rawData() && it->packed.get_desc() == packed) {
                entries_.splice(entries_.begin(), entries_, it);
                return it->packed;
            }
        const memory result = onednn::reordered(memory(plain, cpuEngine(), const_cast<std::byte*>(weights.rawData())), packed);
        entries_.push_front({weights, result});
        bytes_ += packed.get_size();
        while (bytes_ > kPackedBytes && entries_.size() > 1) {
            bytes_ -= entries_.back().packed.get_desc().get_size();
            entries_.pop_back();
        }
        return result;
    }

private:
    static constexpr std::size_t kPackedBytes = std::size_t(128) << 20;  // ResNet-18 packs to 47 MB
    struct Entry {
        Tensor weights;
        memory packed;
    };
    std::mutex mutex_;
    std::list<Entry> entries_;
    std::size_t bytes_ = 0;
};

PackedWeights& packedWeights()
{
    static PackedWeights cache;
    return cache;
}

}  // namespace

bool floatKernelsAvailable() { return true; }

std::optional<Tensor> fastFloatConv(const Tensor& x, const Tensor& weights, const Tensor& bias, const Window2D& window,
                                    std::int64_t groups)
{
    if (x.rank() != 4 || weights.rank() != 4 || x.size() == 0 || weights.size() == 0)
        return std::nullopt;
    const bool hasBias = !bias.empty();
    const Primitive& p = primitiveFor(x.shape(), weights.shape(), hasBias, window, groups);
    if (!p.optimized)
        return std::nullopt;
    const std::int64_t oc = weights.dim(0);
    const memory::dims weightDims = groups == 1 ? memory::dims{oc, weights.dim(1), weights.dim(2), weights.dim(3)}
                                                : memory::dims{groups, oc / groups, weights.dim(1), weights.dim(2), weights.dim(3)};
    const memory::desc plainWeights(weightDims, Type::f32, groups == 1 ? Tag::oihw : Tag::goihw);
    const memory::desc plainSrc({x.dim(0), x.dim(1), x.dim(2), x.dim(3)}, Type::f32, Tag::nchw);
    const memory::desc plainDst({x.dim(0), oc, window.outH, window.outW}, Type::f32, Tag::nchw);

    Tensor out = Tensor::uninitialized(DataType::Float32, {x.dim(0), oc, window.outH, window.outW});
    const memory userSrc(plainSrc, cpuEngine(), const_cast<std::byte*>(x.rawData()));
    const memory userDst(plainDst, cpuEngine(), out.mutableRawData());
    const memory src = p.pd.src_desc() == plainSrc ? userSrc : onednn::reordered(userSrc, p.pd.src_desc());
    const memory dst = p.pd.dst_desc() == plainDst ? userDst : memory(p.pd.dst_desc(), cpuEngine());
    const memory packed = p.pd.weights_desc() == plainWeights
                              ? memory(plainWeights, cpuEngine(), const_cast<std::byte*>(weights.rawData()))
                              : packedWeights().get(weights, plainWeights, p.pd.weights_desc());
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, packed}, {DNNL_ARG_DST, dst}};
    if (hasBias)
        args.emplace(DNNL_ARG_BIAS, memory(p.pd.bias_desc(), cpuEngine(), const_cast<std::byte*>(bias.rawData())));
    onednn::execute(p.primitive, p.pd.scratchpad_desc(), std::move(args));
    if (dst != userDst)
        onednn::reorder(dst, userDst);
    return out;
}

#else

bool floatKernelsAvailable() { return false; }

std::optional<Tensor> fastFloatConv(const Tensor&, const Tensor&, const Tensor&, const Window2D&, std::int64_t)
{
    return std::nullopt;
}

#endif

}  // namespace qe
