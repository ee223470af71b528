// QuantEvaluator's histograms and channel ranges: what the window's charts and the CLI's
// `histogram` show of a tensor under a configuration (levels, clipping range, every calibration
// method's range, each channel's range and the share of it one range rounds to zero).
#include "eval/quant_evaluator.h"

#include "common/error.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace qe {

namespace {

// The fraction of the values outside [lo, hi], by the histogram's bin centres.
double clippedFraction(const Histogram& h, std::pair<float, float> range)
{
    double clipped = 0;
    for (std::size_t k = 0; k < h.counts.size(); ++k) {
        const float centre = h.low + (float(k) + 0.5f) * h.binWidth();
        if (centre < range.first || centre > range.second)
            clipped += h.counts[k];
    }
    return h.total() > 0 ? clipped / h.total() : 0.0;
}

// Whether `params` are the model's own parameters for the layer's tensor.
bool fromModel(const std::map<std::string, FixedTensorParams>& table, const std::string& layer, const QuantParams& params)
{
    auto it = table.find(layer);
    return it != table.end() && it->second.params == params;
}

// The block of `params` whose levels and range apply to all values of channel `channel` (-1: of
// the whole tensor with `channels` channels); none when its values span several blocks.
std::optional<std::size_t> blockOfChannel(const QuantParams& params, int channel, std::int64_t channels)
{
    if (params.blockCount() == 1)
        return 0;
    if (channel >= 0 && std::int64_t(params.blockCount()) == channels)
        return std::size_t(channel);
    return std::nullopt;
}

// For each channel (a contiguous run of `front`), the fraction of its non-zero values that
// `quantized` (in the same layout) makes 0.
std::vector<double> zeroFractions(const Tensor& front, const Tensor& quantized, std::int64_t channels)
{
    const std::int64_t per = front.size() / std::max<std::int64_t>(1, channels);
    const float* w = front.data<float>();
    const float* q = quantized.data<float>();
    std::vector<double> fractions(std::size_t(channels), 0.0);
    for (std::int64_t c = 0; c < channels; ++c) {
        std::int64_t zeroed = 0;
        for (std::int64_t i = c * per; i < (c + 1) * per; ++i)
            zeroed += w[i] != 0.f && q[i] == 0.f;
        fractions[std::size_t(c)] = per > 0 ? double(zeroed) / double(per) : 0.0;
    }
    return fractions;
}

}  // namespace

TensorHistogram QuantEvaluator::histogram(const QuantConfig& config, const std::string& tensor, int bins, int channel)
{
    TensorHistogram result;
    result.tensor = tensor;
    for (const QuantLayer& layer : layers_) {
        const LayerQuantConfig lc = config.resolve(layer.name);
        if (tensor == layer.weight) {
            result.layer = layer.name;
            result.isWeight = true;
            const Tensor& weights = graph_->initializers.at(layer.weight);
            const Tensor front = moveAxisToFront(weights, layer.weightChannelAxis);
            const std::int64_t channels = front.rank() >= 1 ? front.dim(0) : 1;
            if (channel < -1 || channel >= channels)
                throw Error("layer '" + layer.name + "' (weights '" + tensor + "') has " + std::to_string(channels) +
                            " output channels (0 to " + std::to_string(channels - 1) + "): no channel " + std::to_string(channel));
            result.channel = channel;
            result.channelCount = int(channels);
            const std::size_t per = std::size_t(front.size() / std::max<std::int64_t>(1, channels));
            RangeObserver observer(bins);
            if (channel >= 0)
                observer.observe(front.data<float>() + std::size_t(channel) * per, per);
            else
                observer.observe(weights);
            result.histogram = observer.histogram();
            result.min = observer.min();
            result.max = observer.max();
            if (!lc.keepFloat && lc.weights.quantize) {
                Tensor quantized;
                const QuantParams p = layerWeightParams(layer, lc.weights, weights, &fixed_, quantized);
                if (const auto block = blockOfChannel(p, channel, channels)) {
                    result.levels = quantizationLevels(p, *block);
                    result.clipRange = std::pair{p.rangeMin.at(*block), p.rangeMax.at(*block)};
                    result.clippedFraction = clippedFraction(result.histogram, *result.clipRange);
                }
                result.paramsFromModel = fromModel(fixed_.weights, layer.name, p);
                result.params = p;
            }
            return result;
        }
        if (tensor != layer.name && tensor != layer.output)
            continue;
        if (channel != -1)
            throw Error("'" + tensor + "' is the output of layer '" + layer.name + "': a channel picks an output channel of " +
                        (layer.weight.empty() ? "a layer's weights, and this layer has none"
                                              : "a layer's weights; ask for its weights, '" + layer.weight + "'"));
        ensureFloatCache({});
        if (inputs_.empty())
            throw Error("the histogram of activation '" + tensor + "' needs evaluation images");
        result.layer = layer.name;
        const std::string key = layer.output + "/" + std::to_string(bins);
        auto floatHistogram = floatHistograms_.find(key);
        if (floatHistogram == floatHistograms_.end()) {
            RangeObserver observer(bins);
            const std::set<std::string> only{layer.output};
            const bool cached = floatCached_.count(layer.output) != 0;
            for (std::size_t b = 0; b < inputs_.size(); ++b)  // computed again when not cached
                observer.observe(cached ? floatCache_[b].at(layer.output) : runFloat(b, nullptr, only).at(layer.output));
            floatHistogram = floatHistograms_.emplace(key, FloatHistogram{observer.histogram(), observer.min(), observer.max()}).first;
        }
        result.histogram = floatHistogram->second.histogram;
        result.min = floatHistogram->second.min;
        result.max = floatHistogram->second.max;
        auto calibrated = calibration_.observers.find(layer.output);
        const bool haveCalibration = calibrated != calibration_.observers.end() && !calibrated->second.empty();
        if (!lc.keepFloat && lc.activations.quantize) {
            // The evaluation's parameters: the model's own, else calibrated; a dynamic range is
            // each input's, shown here as the range over all evaluation images.
            std::optional<QuantParams> p;
            if (haveCalibration || !activationsFromCalibration(layer, lc, &fixed_))
                p = layerActivationParams(layer, lc, calibration_, &fixed_);
            if (!p && lc.activations.dynamic)
                p = paramsForRange(lc.activations, result.min, result.max);
            if (p) {
                result.levels = quantizationLevels(*p, 0);
                result.clipRange = std::pair{p->rangeMin[0], p->rangeMax[0]};
                result.clippedFraction = clippedFraction(result.histogram, *result.clipRange);
                result.paramsFromModel = fromModel(fixed_.activations, layer.name, *p);
                result.params = p;
            }
        }
        if (haveCalibration)
            for (const CalibrationMethodTraits& method : calibrationMethodTable()) {
                CalibrationSpec spec = lc.calibration;
                spec.method = method.method;
                spec.fixedRange.reset();  // what each method would choose
                result.calibrationRanges.emplace_back(std::string(method.name), calibrated->second.range(spec, lc.activations));
            }
        return result;
    }
    // Any other float tensor (a MaxPool or Reshape output): its values, without levels of its own,
    // since such tensors keep the quantization of the layer that produced their input.
    auto value = graph_->values.find(tensor);
    if (value != graph_->values.end() && value->second.dtype == DataType::Float32) {
        if (channel != -1)
            throw Error("'" + tensor + "' is not a layer's weights: a channel picks an output channel of a layer's weights");
        ensureFloatCache({});
        if (inputs_.empty())
            throw Error("the histogram of tensor '" + tensor + "' needs evaluation images");
        RunOptions run;
        run.capture = {tensor};
        RangeObserver observer(bins);
        for (const Tensor& batch : inputs_)
            observer.observe(floatExecutor_.run({{graph_->inputs[0].name, batch}}, run).at(tensor));
        result.histogram = observer.histogram();
        result.min = observer.min();
        result.max = observer.max();
        return result;
    }
    throw Error("no layer, activation or weight named '" + tensor + "' (see 'quantexplorer-cli info' for names)");
}

ChannelRanges QuantEvaluator::activationChannelRanges(const QuantConfig& config, const std::string& layerName)
{
    const auto layer = std::find_if(layers_.begin(), layers_.end(), [&](const QuantLayer& l) { return l.name == layerName; });
    if (layer == layers_.end())
        throw Error("no layer named '" + layerName + "' (see 'quantexplorer-cli info' for names)");
    ensureFloatCache({});
    if (inputs_.empty())
        throw Error("the channels of the activations of '" + layerName + "' need evaluation images");
    RunOptions run;
    run.capture = {layer->output};
    const auto outputOf = [&](const Tensor& batch) { return floatExecutor_.run({{graph_->inputs[0].name, batch}}, run).at(layer->output); };
    // Elements per step of the channel index: channels on axis 1 of NCHW, else on the last axis.
    const auto channelAxis = [](const Tensor& t) { return t.rank() == 4 ? 1 : std::max(0, t.rank() - 1); };
    const auto innerSize = [&](const Tensor& t) {
        std::int64_t inner = 1;
        for (int d = channelAxis(t) + 1; d < t.rank(); ++d)
            inner *= t.dim(d);
        return inner;
    };

    // First pass: each channel's range. Second: what the per-tensor range rounds to zero (the
    // batches are run twice rather than held: a large model's activations over 1000 images
    // would not fit).
    ChannelRanges result;
    result.layer = layerName;
    result.activations = true;
    std::int64_t channels = -1;
    for (const Tensor& batch : inputs_) {
        const Tensor out = outputOf(batch);
        if (out.dtype() != DataType::Float32 || out.rank() < 1)
            throw Error("layer '" + layerName + "' outputs " + out.describe() + ": its channels need a float tensor");
        const std::int64_t inner = innerSize(out);
        if (channels < 0) {
            channels = out.dim(channelAxis(out));
            result.min.assign(std::size_t(channels), std::numeric_limits<float>::infinity());
            result.max.assign(std::size_t(channels), -std::numeric_limits<float>::infinity());
        }
        const float* v = out.data<float>();
        for (std::int64_t i = 0; i < out.size(); ++i) {
            const std::size_t c = std::size_t((i / inner) % channels);
            result.min[c] = std::min(result.min[c], v[i]);
            result.max[c] = std::max(result.max[c], v[i]);
        }
        result.images += std::size_t(batch.dim(0));
    }
    const float lo = *std::min_element(result.min.begin(), result.min.end());
    const float hi = *std::max_element(result.max.begin(), result.max.end());
    TensorQuantSpec spec = config.resolve(layerName).activations;
    spec.granularity = Granularity::PerTensor;
    spec.dynamic = false;
    if (!schemeTraits(spec.scheme).forActivations)
        spec = QuantConfig{}.defaultActivations;
    const QuantParams perTensor = paramsForRange(spec, lo, hi);
    result.perTensorRange = {perTensor.rangeMin.at(0), perTensor.rangeMax.at(0)};
    std::vector<double> zero(std::size_t(channels), 0), nonZero(std::size_t(channels), 0);
    for (const Tensor& batch : inputs_) {
        const Tensor out = outputOf(batch);
        const Tensor quantized = fakeQuantize(out, perTensor);
        const std::int64_t inner = innerSize(out);
        const float* v = out.data<float>();
        const float* q = quantized.data<float>();
        for (std::int64_t i = 0; i < out.size(); ++i) {
            const std::size_t c = std::size_t((i / inner) % channels);
            if (v[i] != 0) {
                nonZero[c] += 1;
                zero[c] += q[i] == 0;
            }
        }
    }
    for (std::size_t c = 0; c < zero.size(); ++c)
        result.perTensorZeroFraction.push_back(nonZero[c] > 0 ? zero[c] / nonZero[c] : 0.0);
    return result;
}

ChannelRanges QuantEvaluator::channelRanges(const QuantConfig& config, const std::string& layerName) const
{
    for (const QuantLayer& layer : layers_) {
        if (layer.name != layerName)
            continue;
        if (layer.weight.empty())
            throw Error("layer '" + layerName + "' has no weights");
        const LayerQuantConfig lc = config.resolve(layer.name);
        const Tensor& weights = graph_->initializers.at(layer.weight);
        const Tensor front = moveAxisToFront(weights, layer.weightChannelAxis);
        const std::int64_t channels = front.rank() >= 1 ? front.dim(0) : 1;
        const std::int64_t per = front.size() / std::max<std::int64_t>(1, channels);
        ChannelRanges result;
        result.layer = layerName;
        const float* w = front.data<float>();
        for (std::int64_t c = 0; c < channels; ++c) {
            const auto [lo, hi] = std::minmax_element(w + c * per, w + (c + 1) * per);
            result.min.push_back(per > 0 ? *lo : 0.f);
            result.max.push_back(per > 0 ? *hi : 0.f);
        }
        // Per tensor, with the scheme and bits of the configuration (the default's when the
        // weights stay float), for comparison.
        TensorQuantSpec perTensor = lc.weights;
        perTensor.granularity = Granularity::PerTensor;
        perTensor.groupSize = 0;
        const QuantParams tensorParams = paramsForWeights(perTensor, front);
        result.perTensorRange = {tensorParams.rangeMin.at(0), tensorParams.rangeMax.at(0)};
        result.perTensorZeroFraction = zeroFractions(front, fakeQuantize(front, tensorParams), channels);
        if (!lc.keepFloat && lc.weights.quantize) {
            Tensor quantized;
            const QuantParams p = layerWeightParams(layer, lc.weights, weights, &fixed_, quantized);
            result.zeroFraction = zeroFractions(front, moveAxisToFront(quantized, layer.weightChannelAxis), channels);
            result.granularity = p.granularity;
            result.fromModel = fromModel(fixed_.weights, layer.name, p);
        }
        return result;
    }
    throw Error("no layer named '" + layerName + "' (see 'quantexplorer-cli info' for names)");
}

}  // namespace qe
