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

// The layout of the input and output inside the convolution, by geometry alone (so that a
// convolution computes the same values inside a chain as alone). Grouped, depthwise and 1x1
// convolutions are fastest on 16-channel blocks (nChw16c), which MobileNet's chains then keep from
// one convolution to the next; the others let oneDNN choose (channels-last for its BRGEMM kernels
// on AVX-512). Measured with bench_engines on ResNet-18 and MobileNetV1 (bench/README.md).
Tag activationTag(const Shape& w, std::int64_t groups)
{
    return groups > 1 || (w[2] == 1 && w[3] == 1) ? Tag::nChw16c : Tag::any;
}

// Primitives per geometry, fused clamp and thread count (oneDNN fixes a primitive's threads when
// it is made).
const Primitive& primitiveFor(const Shape& x, const Shape& w, bool hasBias, const Window2D& win, std::int64_t groups,
                              const std::optional<std::pair<float, float>>& clamp)
{
    static std::mutex mutex;
    static std::map<std::string, std::unique_ptr<Primitive>> cache;
    const int threads = omp_get_max_threads();
    std::string key;
    for (std::int64_t v : {x[0], x[1], x[2], x[3], w[0], w[1], w[2], w[3], groups, std::int64_t(hasBias), win.strideH, win.strideW,
                           win.dilationH, win.dilationW, win.padTop, win.padLeft, win.padBottom, win.padRight,
                           std::int64_t(threads)})
        key += std::to_string(v) + ',';
    if (clamp)
        key += std::to_string(clamp->first) + ',' + std::to_string(clamp->second);
    std::lock_guard lock(mutex);
    auto& slot = cache[key];
    if (slot)
        return *slot;
    slot = std::make_unique<Primitive>();
    const std::int64_t oc = w[0];
    const memory::dims weightDims =
        groups == 1 ? memory::dims{oc, w[1], w[2], w[3]} : memory::dims{groups, oc / groups, w[1], w[2], w[3]};
    try {
        const memory::desc src({x[0], x[1], x[2], x[3]}, Type::f32, activationTag(w, groups));
        const memory::desc dst({x[0], oc, win.outH, win.outW}, Type::f32, activationTag(w, groups));
        const memory::desc weights(weightDims, Type::f32, Tag::any);
        const memory::desc bias = hasBias ? memory::desc({oc}, Type::f32, Tag::x) : memory::desc();
        const dnnl::convolution_forward::desc desc(
            dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src, weights, bias, dst,
            {win.strideH, win.strideW}, {win.dilationH - 1, win.dilationW - 1}, {win.padTop, win.padLeft},
            {win.padBottom, win.padRight});
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        if (clamp) {
            // clip: lo where x <= lo, hi where x > hi, else x; Relu as clip(0, inf) rather than
            // oneDNN's relu, whose 0 * x makes -0 of a negative x where the Relu kernel gives 0.
            dnnl::post_ops ops;
            ops.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, clamp->first, clamp->second);
            attr.set_post_ops(ops);
        }
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

std::optional<Tensor> fastFloatConvChain(const Tensor& x, const std::vector<FloatConvStage>& stages)
{
    if (stages.empty() || x.rank() != 4 || x.size() == 0)
        return std::nullopt;
    // Every stage's primitive first: the chain runs on oneDNN entirely or not at all.
    std::vector<const Primitive*> primitives;
    Shape in = x.shape();
    for (const FloatConvStage& stage : stages) {
        if (stage.weights.rank() != 4 || stage.weights.size() == 0 || stage.weights.dtype() != DataType::Float32)
            return std::nullopt;
        const Primitive& p = primitiveFor(in, stage.weights.shape(), !stage.bias.empty(), stage.window, stage.groups, stage.clamp);
        if (!p.optimized)
            return std::nullopt;
        primitives.push_back(&p);
        in = {in[0], stage.weights.dim(0), stage.window.outH, stage.window.outW};
    }
    // The activations in oneDNN's blocked layouts live in tensors from our pool (tensor.cpp), not
    // in memory oneDNN allocates: that is fresh pages on every call, and their page faults and
    // zeroing took a tenth of a ResNet-18 evaluation.
    std::vector<Tensor> blocked;
    auto pooled = [&blocked](const memory::desc& desc) {
        blocked.push_back(Tensor::uninitialized(DataType::UInt8, {std::int64_t(desc.get_size())}));
        return memory(desc, cpuEngine(), blocked.back().mutableRawData());
    };
    auto reorderedInto = [&pooled](const memory& from, const memory::desc& layout) {
        memory to = pooled(layout);
        onednn::reorder(from, to);
        return to;
    };
    const memory::desc plainSrc({x.dim(0), x.dim(1), x.dim(2), x.dim(3)}, Type::f32, Tag::nchw);
    const memory userSrc(plainSrc, cpuEngine(), const_cast<std::byte*>(x.rawData()));
    memory src = primitives[0]->pd.src_desc() == plainSrc ? userSrc : reorderedInto(userSrc, primitives[0]->pd.src_desc());
    Tensor out = Tensor::uninitialized(DataType::Float32, in);
    const memory::desc plainDst({in[0], in[1], in[2], in[3]}, Type::f32, Tag::nchw);
    const memory userDst(plainDst, cpuEngine(), out.mutableRawData());
    for (std::size_t k = 0; k < stages.size(); ++k) {
        const FloatConvStage& stage = stages[k];
        const Primitive& p = *primitives[k];
        if (p.pd.src_desc() != src.get_desc())  // consecutive stages in different layouts
            src = reorderedInto(src, p.pd.src_desc());
        const std::int64_t oc = stage.weights.dim(0);
        const Shape& w = stage.weights.shape();
        const memory::dims weightDims = stage.groups == 1 ? memory::dims{oc, w[1], w[2], w[3]}
                                                          : memory::dims{stage.groups, oc / stage.groups, w[1], w[2], w[3]};
        const memory::desc plainWeights(weightDims, Type::f32, stage.groups == 1 ? Tag::oihw : Tag::goihw);
        const bool last = k + 1 == stages.size();
        const memory dst = last && p.pd.dst_desc() == plainDst ? userDst : pooled(p.pd.dst_desc());
        const memory packed = p.pd.weights_desc() == plainWeights
                                  ? memory(plainWeights, cpuEngine(), const_cast<std::byte*>(stage.weights.rawData()))
                                  : packedWeights().get(stage.weights, plainWeights, p.pd.weights_desc());
        std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, packed}, {DNNL_ARG_DST, dst}};
        if (!stage.bias.empty())
            args.emplace(DNNL_ARG_BIAS, memory(p.pd.bias_desc(), cpuEngine(), const_cast<std::byte*>(stage.bias.rawData())));
        onednn::execute(p.primitive, p.pd.scratchpad_desc(), std::move(args));
        src = dst;
    }
    if (src != userDst)
        onednn::reorder(src, userDst);
    return out;
}

std::optional<Tensor> fastFloatConv(const Tensor& x, const Tensor& weights, const Tensor& bias, const Window2D& window,
                                    std::int64_t groups)
{
    return fastFloatConvChain(x, {FloatConvStage{weights, bias, window, groups, std::nullopt}});
}

#else

bool floatKernelsAvailable() { return false; }

std::optional<Tensor> fastFloatConv(const Tensor&, const Tensor&, const Tensor&, const Window2D&, std::int64_t)
{
    return std::nullopt;
}

std::optional<Tensor> fastFloatConvChain(const Tensor&, const std::vector<FloatConvStage>&) { return std::nullopt; }

#endif

}  // namespace qe
