#include "engine/int8/kernels/fast_kernels.h"

#include "common/error.h"

#ifdef QE_HAVE_ONEDNN
#include "engine/onednn.h"
#endif

#include <algorithm>
#include <cstring>
#include <omp.h>
#include <string_view>

namespace qe::int8 {

#ifdef QE_HAVE_ONEDNN

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using Type = memory::data_type;

using onednn::cpuEngine;
using onednn::execute;
using onednn::isOptimized;

// The weights, given in `plain` layout, copied into the layout the primitive chose (`packed`),
// once when the primitive is made.
memory packWeights(const Tensor& weights, const memory::desc& plain, const memory::desc& packed)
{
    return onednn::reordered(memory(plain, cpuEngine(), const_cast<std::byte*>(weights.rawData())), packed);
}

}  // namespace

bool fastKernelsAvailable() { return true; }

bool libraryHasMatrixUnits()
{
    static const bool amx = dnnl::get_effective_cpu_isa() == dnnl::cpu_isa::avx512_core_amx;
    return amx;
}

// One oneDNN convolution of a channels-last u8 input (padded already, or padded with zeros by
// oneDNN), with s32 output.
struct ConvPrimitive {
    bool optimized = false;
    dnnl::convolution_forward primitive;
    dnnl::convolution_forward::primitive_desc pd;
    memory packedWeights;
};

namespace {

// `srcNhwc` is the input as the primitive reads it; `padBegin`/`padEnd` the zero padding oneDNN
// adds itself ({0, 0} when the input comes padded already).
ConvPrimitive makeConvPrimitive(const Tensor& weights, std::int64_t groups, const Shape& srcNhwc, const Window2D& w,
                                memory::dims padBegin, memory::dims padEnd)
{
    ConvPrimitive c;
    const std::int64_t n = srcNhwc[0], ph = srcNhwc[1], pw = srcNhwc[2], channels = srcNhwc[3];
    const std::int64_t oc = weights.dim(0), kh = weights.dim(2), kw = weights.dim(3);
    try {
        const memory::desc src({n, channels, ph, pw}, Type::u8, Tag::nhwc);
        const memory::desc dst({n, oc, w.outH, w.outW}, Type::s32, Tag::nhwc);
        const memory::dims weightDims = groups == 1 ? memory::dims{oc, channels, kh, kw}
                                                    : memory::dims{groups, oc / groups, channels / groups, kh, kw};
        const memory::desc weightDesc(weightDims, Type::s8, Tag::any);
        const dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src,
                                                   weightDesc, dst, {w.strideH, w.strideW}, {w.dilationH - 1, w.dilationW - 1},
                                                   padBegin, padEnd);
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        c.pd = dnnl::convolution_forward::primitive_desc(desc, attr, cpuEngine());
        c.optimized = isOptimized(c.pd.impl_info_str());
        if (c.optimized) {
            c.primitive = dnnl::convolution_forward(c.pd);
            c.packedWeights = packWeights(weights, {weightDims, Type::s8, groups == 1 ? Tag::oihw : Tag::goihw}, c.pd.weights_desc());
        }
    } catch (const dnnl::error&) {
        c.optimized = false;  // this geometry is not supported
    }
    return c;
}

}  // namespace

struct FastConv::Compiled {
    bool optimized = false;
    ConvPrimitive main;
    ConvPrimitive windowSums;  // sum of the input over each window and group (weight zero-points only)
    bool libraryPads = false;  // oneDNN pads with zeros itself (the input zero-point is 0)
    Shape paddedNhwc, outputNhwc;
};

FastConv::FastConv(Tensor weights, std::vector<std::int32_t> weightZeroPoints, std::int64_t groups)
    : weights_(std::move(weights)), weightZeroPoints_(std::move(weightZeroPoints)), groups_(groups)
{
    if (weights_.dtype() != DataType::Int8 || weights_.rank() != 4 || weights_.size() == 0 || groups_ < 1 ||
        weights_.dim(0) % groups_ != 0)
        throw Error("fast convolution: expected int8 [OC, IC/groups, KH, KW] weights, got " + weights_.describe() + " for " +
                    std::to_string(groups_) + " groups");
    if (weightZeroPoints_.size() == 1)
        weightZeroPoints_.assign(static_cast<std::size_t>(weights_.dim(0)), weightZeroPoints_[0]);
    if (static_cast<std::int64_t>(weightZeroPoints_.size()) != weights_.dim(0))
        throw Error("fast convolution: expected 1 or " + std::to_string(weights_.dim(0)) + " weight zero-points");
    hasWeightZeroPoints_ = std::any_of(weightZeroPoints_.begin(), weightZeroPoints_.end(), [](std::int32_t z) { return z != 0; });
    if (hasWeightZeroPoints_) {
        // One output per group, all-ones weights: the window sums of the input.
        const std::int64_t groupChannels = weights_.dim(1);
        ones_ = Tensor(DataType::Int8, {groups_, groupChannels, weights_.dim(2), weights_.dim(3)});
        std::fill_n(ones_.mutableData<std::int8_t>(), ones_.size(), std::int8_t{1});
    }
    const std::int64_t perChannel = weights_.size() / weights_.dim(0);
    const std::int8_t* w = weights_.data<std::int8_t>();
    for (std::int64_t o = 0; o < weights_.dim(0); ++o) {
        std::int32_t sum = 0;
        for (std::int64_t i = 0; i < perChannel; ++i)
            sum += w[o * perChannel + i];
        weightSums_.push_back(sum);
    }
}

FastConv::~FastConv() = default;

const FastConv::Compiled& FastConv::compiled(const Shape& in, const Window2D& w, bool zeroPointIsZero) const
{
    // oneDNN fixes a primitive's thread count when it is created, so the count is part of the key.
    std::string key;
    for (std::int64_t v : {in[0], in[1], in[2], in[3], w.strideH, w.strideW, w.padTop, w.padLeft, w.outH, w.outW,
                           std::int64_t{omp_get_max_threads()}, std::int64_t{zeroPointIsZero}})
        key += std::to_string(v) + ",";
    std::lock_guard lock(mutex_);
    auto found = cache_.find(key);
    if (found != cache_.end())
        return *found->second;
    auto c = std::make_shared<Compiled>();
    const std::int64_t n = in[0], h = in[1], wd = in[2], channels = in[3];
    const std::int64_t oc = weights_.dim(0), kh = weights_.dim(2), kw = weights_.dim(3);
    c->outputNhwc = {n, w.outH, w.outW, oc};
    // The bottom/right padding that makes the output exactly outH x outW (ONNX may give more).
    const std::int64_t padBottom = (w.outH - 1) * w.strideH + w.dilationH * (kh - 1) + 1 - h - w.padTop;
    const std::int64_t padRight = (w.outW - 1) * w.strideW + w.dilationW * (kw - 1) + 1 - wd - w.padLeft;
    // A zero-point of 0 (e.g. after a Relu) is what oneDNN pads with itself: no padded copy.
    c->libraryPads = zeroPointIsZero && padBottom >= 0 && padRight >= 0;
    memory::dims padBegin{0, 0}, padEnd{0, 0};
    if (c->libraryPads) {
        c->paddedNhwc = in;
        padBegin = {w.padTop, w.padLeft};
        padEnd = {padBottom, padRight};
    } else {
        c->paddedNhwc = {n, h + w.padTop + std::max<std::int64_t>(0, padBottom), wd + w.padLeft + std::max<std::int64_t>(0, padRight), channels};
    }
    c->main = makeConvPrimitive(weights_, groups_, c->paddedNhwc, w, padBegin, padEnd);
    c->optimized = c->main.optimized;
    if (c->optimized && hasWeightZeroPoints_) {
        c->windowSums = makeConvPrimitive(ones_, groups_, c->paddedNhwc, w, padBegin, padEnd);
        c->optimized = c->windowSums.optimized;
    }
    return *cache_.emplace(key, c).first->second;
}

FastConv::Geometry FastConv::geometry(const Shape& nhwc, const Window2D& window) const
{
    // A pointwise convolution (1x1, stride 1, no padding) treats every image row as an image of
    // its own, so that even one large image is cut into chunks.
    const bool pointwise = weights_.dim(2) == 1 && weights_.dim(3) == 1 && window.strideH == 1 && window.strideW == 1 &&
                           window.padTop == 0 && window.padLeft == 0 && window.padBottom == 0 && window.padRight == 0;
    Geometry g{nhwc, window};
    if (pointwise) {
        g.shape = {nhwc[0] * nhwc[1], 1, nhwc[2], nhwc[3]};
        g.window.inH = g.window.outH = 1;
    }
    return g;
}

bool FastConv::supports(const Shape& inputNhwc, const Window2D& window, std::int32_t inputZeroPoint) const
{
    // Chunks hold one or more images (or rows); what runs on one runs on several.
    const Geometry g = geometry(inputNhwc, window);
    return compiled({1, g.shape[1], g.shape[2], g.shape[3]}, g.window, inputZeroPoint == 0).optimized;
}

std::vector<std::int32_t> FastConv::inputZeroPointTerm(std::int32_t inputZeroPoint) const
{
    std::vector<std::int32_t> term;
    for (std::int32_t sum : weightSums_)
        term.push_back(static_cast<std::int32_t>(0u - static_cast<std::uint32_t>(inputZeroPoint) * static_cast<std::uint32_t>(sum)));
    return term;
}

void FastConv::accumulateInChunks(const Tensor& nhwc, std::int32_t inputZeroPoint, const Window2D& nhwcWindow,
                                  const ChunkConsumer& consume, bool leaveInputZeroPointTerm) const
{
    const Geometry g = geometry(nhwc.shape(), nhwcWindow);
    const Tensor input = nhwc.reshaped(g.shape);
    const Window2D& window = g.window;
    const std::int64_t n = input.dim(0), h = input.dim(1), w = input.dim(2), channels = input.dim(3);
    const std::int64_t outChannels = weights_.dim(0);
    // Images per chunk: about 1 MiB of accumulators, so they are still in cache when requantized
    // (a whole batch of int32 accumulators would be four times the size of its inputs, and
    // writing and re-reading it from memory cost more than the convolution).
    const std::int64_t perImage = window.outH * window.outW * outChannels;
    const std::int64_t chunk = std::clamp<std::int64_t>((std::int64_t{1} << 18) / std::max<std::int64_t>(1, perImage), 1, n);
    thread_local std::vector<std::int32_t> accumulators;
    thread_local std::vector<std::uint8_t> padded;
    for (std::int64_t first = 0; first < n; first += chunk) {
        const std::int64_t count = std::min(chunk, n - first);
        const Compiled& c = compiled({count, h, w, channels}, window, inputZeroPoint == 0);
        if (!c.optimized)
            throw Error("fast convolution: no optimized kernel for input " + input.describe());
        // Padded positions must hold the zero-point (real 0). Unless it is 0, the input is padded
        // here and the convolution itself runs unpadded (oneDNN 2.6's own source zero-points
        // corrupt memory in some kernels). Then sum (x - zx) w = sum x w - zx sum w everywhere.
        const std::uint8_t* src = input.data<std::uint8_t>() + first * h * w * channels;
        if (c.paddedNhwc[1] != h || c.paddedNhwc[2] != w) {
            const std::int64_t ph = c.paddedNhwc[1], pw = c.paddedNhwc[2];
            padded.resize(static_cast<std::size_t>(count * ph * pw * channels));
            std::uint8_t* dst = padded.data();
            const auto zero = static_cast<std::uint8_t>(inputZeroPoint);
            const std::int64_t rowBytes = pw * channels, left = window.padLeft * channels, inner = w * channels;
            // Row by row: the zero-point around, the image row in the middle (each byte written once).
#pragma omp parallel for schedule(static) if (count * ph * rowBytes >= (1 << 16))
            for (std::int64_t row = 0; row < count * ph; ++row) {
                const std::int64_t b = row / ph, y = row % ph - window.padTop;
                std::uint8_t* out = dst + row * rowBytes;
                if (y < 0 || y >= h) {
                    std::memset(out, zero, static_cast<std::size_t>(rowBytes));
                    continue;
                }
                std::memset(out, zero, static_cast<std::size_t>(left));
                std::memcpy(out + left, src + (b * h + y) * inner, static_cast<std::size_t>(inner));
                std::memset(out + left + inner, zero, static_cast<std::size_t>(rowBytes - left - inner));
            }
            src = padded.data();
        }
        accumulators.resize(static_cast<std::size_t>(count * perImage));
        auto run = [&](const ConvPrimitive& p, std::int32_t* out) {
            execute(p.primitive, p.pd.scratchpad_desc(),
                    {{DNNL_ARG_SRC, memory(p.pd.src_desc(), cpuEngine(), const_cast<std::uint8_t*>(src))},
                     {DNNL_ARG_WEIGHTS, p.packedWeights},
                     {DNNL_ARG_DST, memory(p.pd.dst_desc(), cpuEngine(), out)}});
        };
        run(c.main, accumulators.data());
        const std::int64_t pixels = count * window.outH * window.outW;
        if (inputZeroPoint != 0 && !leaveInputZeroPointTerm) {
            std::int32_t* acc = accumulators.data();
            const std::int32_t* sums = weightSums_.data();
            for (std::int64_t p = 0; p < pixels; ++p)
                for (std::int64_t o = 0; o < outChannels; ++o)
                    acc[p * outChannels + o] -= inputZeroPoint * sums[o];
        }
        if (hasWeightZeroPoints_) {
            // sum (x - zx)(w - zw) = [sum x w - zx sum w] - zw (sum x - zx K), K = window size.
            thread_local std::vector<std::int32_t> windowSums;
            windowSums.resize(static_cast<std::size_t>(pixels * groups_));
            run(c.windowSums, windowSums.data());
            const std::int32_t offset = inputZeroPoint * static_cast<std::int32_t>(weights_.size() / outChannels);
            const std::int64_t perGroup = outChannels / groups_;
            std::int32_t* acc = accumulators.data();
            for (std::int64_t p = 0; p < pixels; ++p)
                for (std::int64_t o = 0; o < outChannels; ++o)
                    acc[p * outChannels + o] -= weightZeroPoints_[static_cast<std::size_t>(o)] * (windowSums[static_cast<std::size_t>(p * groups_ + o / perGroup)] - offset);
        }
        consume(accumulators.data(), first * window.outH * window.outW, pixels);
    }
}

Tensor FastConv::accumulate(const Tensor& input, std::int32_t inputZeroPoint, const Window2D& window) const
{
    const std::int64_t oc = weights_.dim(0);
    Tensor out(DataType::Int32, {input.dim(0), window.outH, window.outW, oc});
    accumulateInChunks(input, inputZeroPoint, window, [&](const std::int32_t* acc, std::int64_t firstPixel, std::int64_t pixels) {
        std::copy_n(acc, pixels * oc, out.mutableData<std::int32_t>() + firstPixel * oc);
    });
    return out;
}

struct FastMatMul::Compiled {
    dnnl::matmul primitive;
    dnnl::matmul::primitive_desc pd;
    memory packedWeights;
};

FastMatMul::FastMatMul(Tensor weights, std::vector<std::int32_t> weightZeroPoints)
    : weights_(std::move(weights)), weightZeroPoints_(std::move(weightZeroPoints))
{
    if (weights_.dtype() != DataType::Int8 || weights_.rank() != 2)
        throw Error("fast matrix product: expected int8 [K, N] weights, got " + weights_.describe());
    const std::int64_t k = weights_.dim(0), n = weights_.dim(1);
    if (weightZeroPoints_.size() == 1)
        weightZeroPoints_.assign(static_cast<std::size_t>(n), weightZeroPoints_[0]);
    if (static_cast<std::int64_t>(weightZeroPoints_.size()) != n)
        throw Error("fast matrix product: expected 1 or " + std::to_string(n) + " weight zero-points");
    columnSums_.assign(static_cast<std::size_t>(n), 0);
    const std::int8_t* w = weights_.data<std::int8_t>();
    for (std::int64_t i = 0; i < k; ++i)
        for (std::int64_t j = 0; j < n; ++j)
            columnSums_[static_cast<std::size_t>(j)] += w[i * n + j];
}

FastMatMul::~FastMatMul() = default;

const FastMatMul::Compiled& FastMatMul::compiled(std::int64_t rows) const
{
    const std::pair<std::int64_t, int> key{rows, omp_get_max_threads()};  // see FastConv::compiled
    std::lock_guard lock(mutex_);
    auto found = cache_.find(key);
    if (found != cache_.end())
        return *found->second;
    auto c = std::make_shared<Compiled>();
    const std::int64_t k = weights_.dim(0), n = weights_.dim(1);
    const memory::desc a({rows, k}, Type::u8, Tag::ab), b({k, n}, Type::s8, Tag::any), y({rows, n}, Type::s32, Tag::ab);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    c->pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, y), attr, cpuEngine());
    c->primitive = dnnl::matmul(c->pd);
    c->packedWeights = packWeights(weights_, {{k, n}, Type::s8, Tag::ab}, c->pd.weights_desc());
    return *cache_.emplace(key, c).first->second;
}

Tensor FastMatMul::accumulate(const Tensor& input, std::int32_t inputZeroPoint) const
{
    if (input.dtype() != DataType::UInt8 || input.rank() != 2 || input.dim(1) != weights_.dim(0))
        throw Error("fast matrix product: expected uint8 [M, " + std::to_string(weights_.dim(0)) + "] input, got " + input.describe());
    const std::int64_t rows = input.dim(0), n = weights_.dim(1);
    const Compiled& c = compiled(rows);
    Tensor out = Tensor::uninitialized(DataType::Int32, {rows, n});
    execute(c.primitive, c.pd.scratchpad_desc(),
            {{DNNL_ARG_SRC, memory(c.pd.src_desc(), cpuEngine(), const_cast<std::byte*>(input.rawData()))},
             {DNNL_ARG_WEIGHTS, c.packedWeights},
             {DNNL_ARG_DST, memory(c.pd.dst_desc(), cpuEngine(), out.mutableRawData())}});
    // (x - zx) . (w - zw) = x . w - zx sum(w) - zw (sum(x) - zx K): a matrix product has no
    // padding, so both terms are exact.
    const std::int64_t k = weights_.dim(0);
    const std::uint8_t* x = input.data<std::uint8_t>();
    std::int32_t* y = out.mutableData<std::int32_t>();
    for (std::int64_t i = 0; i < rows; ++i) {
        std::int32_t rowSum = 0;
        for (std::int64_t j = 0; j < k; ++j)
            rowSum += x[i * k + j];
        const std::int32_t centred = rowSum - inputZeroPoint * static_cast<std::int32_t>(k);
        for (std::int64_t j = 0; j < n; ++j)
            y[i * n + j] -= inputZeroPoint * columnSums_[static_cast<std::size_t>(j)] + weightZeroPoints_[static_cast<std::size_t>(j)] * centred;
    }
    return out;
}

#else  // built without oneDNN

bool fastKernelsAvailable() { return false; }
bool libraryHasMatrixUnits() { return false; }
struct FastConv::Compiled {};
FastConv::FastConv(Tensor weights, std::vector<std::int32_t> weightZeroPoints, std::int64_t groups)
    : weights_(std::move(weights)), weightZeroPoints_(std::move(weightZeroPoints)), groups_(groups) {}
FastConv::~FastConv() = default;
bool FastConv::supports(const Shape&, const Window2D&, std::int32_t) const { return false; }
Tensor FastConv::accumulate(const Tensor&, std::int32_t, const Window2D&) const
{
    throw Error("fast convolution: built without oneDNN");
}
std::vector<std::int32_t> FastConv::inputZeroPointTerm(std::int32_t) const { return {}; }
void FastConv::accumulateInChunks(const Tensor&, std::int32_t, const Window2D&, const ChunkConsumer&, bool) const
{
    throw Error("fast convolution: built without oneDNN");
}
struct FastMatMul::Compiled {};
FastMatMul::FastMatMul(Tensor weights, std::vector<std::int32_t> weightZeroPoints)
    : weights_(std::move(weights)), weightZeroPoints_(std::move(weightZeroPoints)) {}
FastMatMul::~FastMatMul() = default;
Tensor FastMatMul::accumulate(const Tensor&, std::int32_t) const { throw Error("fast matrix product: built without oneDNN"); }

#endif

}  // namespace qe::int8
