// QuantEvaluator's error statistics and the evaluation itself (the caches and the float
// reference run are in quant_evaluator_cache.cpp, the histograms in quant_evaluator_histograms.cpp).
#include "eval/quant_evaluator.h"
#include "eval/quant_evaluator_internal.h"

#include "common/error.h"
#include "common/parallel.h"
#include "engine/conv_chains.h"
#include "engine/int8/integer_engine.h"
#include "engine/operator.h"
#include "eval/accuracy.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

namespace qe {

// ---- error statistics -------------------------------------------------------------------------

template <class ApproxOf>
void ErrorAccumulator::addMapped(const float* reference, const float* values, std::size_t count, ApproxOf approxOf)
{
    // Separate reductions so that the compiler can vectorise the loop.
    double signal = 0, noise = 0, dot = 0, normApprox = 0, maxAbs = 0;
#pragma omp simd reduction(+ : signal, noise, dot, normApprox) reduction(max : maxAbs)
    for (std::size_t i = 0; i < count; ++i) {
        const double r = reference[i], a = approxOf(values[i]), e = a - r;
        signal += r * r;
        noise += e * e;
        dot += r * a;
        normApprox += a * a;
        maxAbs = std::max(maxAbs, std::abs(e));
    }
    signal_ += signal;
    noise_ += noise;
    dot_ += dot;
    normApprox_ += normApprox;
    maxAbs_ = std::max(maxAbs_, maxAbs);
    count_ += count;
}

void ErrorAccumulator::add(const float* reference, const float* approx, std::size_t count)
{
    addMapped(reference, approx, count, [](float a) { return a; });
}

void ErrorAccumulator::merge(const ErrorAccumulator& other)
{
    signal_ += other.signal_;
    noise_ += other.noise_;
    dot_ += other.dot_;
    normApprox_ += other.normApprox_;
    maxAbs_ = std::max(maxAbs_, other.maxAbs_);
    count_ += other.count_;
}

void ErrorAccumulator::add(const Tensor& reference, const Tensor& approx)
{
    if (reference.shape() != approx.shape())
        throw Error("cannot compare " + reference.describe() + " with " + approx.describe());
    add(reference.data<float>(), approx.data<float>(), static_cast<std::size_t>(reference.size()));
}

double ErrorAccumulator::mse() const { return count_ ? noise_ / double(count_) : 0.0; }

double ErrorAccumulator::sqnrDb() const
{
    if (noise_ == 0)
        return std::numeric_limits<double>::infinity();
    return 10.0 * std::log10(std::max(signal_, 1e-300) / noise_);
}

double ErrorAccumulator::cosine() const
{
    if (signal_ == 0 || normApprox_ == 0)
        return signal_ == normApprox_ ? 1.0 : 0.0;
    return dot_ / std::sqrt(signal_ * normApprox_);
}

ErrorStats ErrorStats::from(const ErrorAccumulator& a)
{
    return {a.mse(), a.sqnrDb(), a.cosine(), a.maxAbsError()};
}

// ---- evaluator --------------------------------------------------------------------------------

using namespace evaluator_detail;

namespace {

// Storage of a weight tensor under its parameters: the codes, plus per-block scale and
// zero-point (or codebook), as a device would keep them.
double weightBytes(const Tensor& weight, const std::optional<QuantParams>& params)
{
    if (!params)
        return 4.0 * double(weight.size());
    const SchemeTraits& traits = schemeTraits(params->scheme);
    double bytes = double(weight.size()) * params->bits / 8.0;
    const double blocks = double(params->blockCount());
    if (traits.family == SchemeFamily::Codebook)
        for (int fitted : params->codebook().fitted)  // the centroids each block keeps
            bytes += 4.0 * fitted;
    else if (traits.family != SchemeFamily::FloatingPoint || traits.format->preScaled)  // a scale per block, and a zero-point
        bytes += blocks * (4.0 + (traits.integerForm ? 4.0 : 0.0));
    return bytes;
}

}  // namespace

QuantEvaluator::QuantEvaluator(std::shared_ptr<const Graph> graph, std::shared_ptr<const Dataset> evaluation,
                               Preprocess preprocess, std::size_t evaluationImages, FloatReference reference)
    : graph_(std::move(graph)), evaluation_(std::move(evaluation)), preprocess_(std::move(preprocess)),
      evaluationImages_(evaluation_ ? std::min(evaluationImages, evaluation_->size()) : 0),
      layers_(findQuantLayers(*graph_)),
      reference_{reference.layers ? reference.layers : graph_, reference.outputs ? reference.outputs : graph_},
      floatExecutor_(*reference_.layers)
{
    if (reference_.outputs != reference_.layers)
        outputExecutor_.emplace(*reference_.outputs);
    if (layers_.empty())
        throw Error(graph_->sourcePath + ": the model has no layers to quantize");
    releaseIdleTensorBlocks();  // blocks of another model's sizes (tensor.h)
}

void QuantEvaluator::calibrate(const Dataset& calibrationSet, std::size_t images, const EvaluationProgress& progress)
{
    CalibrationOptions options;
    options.images = images;
    options.batchSize = kBatchSize;  // the evaluation batches' size, so that they can be observed as they are
    options.cancel = progress.cancel;
    // Calibrating on the evaluation images: observe the batches the evaluation decodes anyway
    // rather than decoding them twice (decoding is a twentieth of a ResNet-18 evaluation). The
    // evaluation images are decoded here only when calibration reads every one of them.
    if (&calibrationSet == evaluation_.get()) {
        if (std::min(images, calibrationSet.size()) >= evaluationImages_)
            ensureInputs();
        options.preparedBatches = &inputs_;
    }
    if (progress.report)
        options.progress = [&](std::size_t done, std::size_t total) { progress.report("calibrating", done, total); };
    calibration_ = qe::calibrate(*graph_, layers_, calibrationSet, preprocess_, options);
    // The last evaluation is stale if it used calibrated ranges. One whose static ranges all came
    // from elsewhere (the model file, fixed ranges in the configuration) is not, and keeps its
    // caches: the window calibrates after such an evaluation, for the histograms' method ranges.
    bool usedCalibration = !previousPlan_;
    if (previousPlan_)
        for (std::size_t i = 0; i < previousPlan_->plans.size(); ++i)
            usedCalibration |= activationsFromCalibration(previousPlan_->layers[i], previousPlan_->plans[i].config, &fixed_);
    if (usedCalibration)
        clearQuantizedCache();
}

void QuantEvaluator::shareCalibrationOf(const QuantEvaluator& other)
{
    calibration_ = other.calibration_;
    fixed_ = other.fixed_;
    clearQuantizedCache();
}

void QuantEvaluator::setFixedParams(FixedParams params)
{
    fixed_ = std::move(params);
    clearQuantizedCache();
}

bool QuantEvaluator::needsCalibration(const QuantConfig& config) const
{
    if (isCalibrated())
        return false;
    for (const QuantLayer& layer : layers_)
        if (activationsFromCalibration(layer, config.resolve(layer.name), &fixed_))
            return true;
    return false;
}

TensorMap QuantEvaluator::runFloat(std::size_t batch, const std::atomic<bool>* cancel, const std::set<std::string>& capture,
                                   std::size_t endNode) const
{
    RunOptions run;
    run.cancel = cancel;
    run.capture = capture;
    run.endNode = endNode;
    return floatExecutor_.run({{graph_->inputs[0].name, inputs_[batch]}}, run);
}

namespace {

// Over an activation's float values: how many fall outside [lo, hi], how many inside (exact zeros
// left out: ReLU's zeros quantize without error), and the squared rounding error of those inside,
// with quantizedAt(k) the k-th value quantized.
struct NoiseSums {
    std::int64_t clipped = 0, inside = 0;
    double noise = 0;
};
template <class QuantizedAt>
NoiseSums sumClippingAndNoise(const float* values, std::int64_t count, float lo, float hi, QuantizedAt quantizedAt)
{
    // A simd reduction, branch-free: one sum carried from value to value waited on each addition
    // (a seventh of MobileNetV1's whole evaluation), and the loop the compiler left scalar took a
    // fifth of it. It vectorizes only without selects between floating-point results (the
    // compiler does not speculate arithmetic that may trap), hence the products with 0/1 below,
    // and only on local sums (not on a lambda's captured references).
    std::int64_t clipped = 0, inside = 0;
    double noise = 0;
#pragma omp simd reduction(+ : clipped, inside, noise)
    for (std::int64_t k = 0; k < count; ++k) {
        const float v = values[k];
        const int outside = int(v < lo) + int(v > hi);  // at most one holds
        const float counted = (outside == 0 && v != 0.f) ? 1.f : 0.f;
        // Against v clamped to the range, which is v wherever it counts and finite where v is
        // infinite (so that 0 * (q - v) is not NaN). Exact: inside the range the quantized value
        // is within half a step of v, so the two are within a factor of 2 of each other (or the
        // quantized value is 0), and Sterbenz's lemma makes their difference exact; its square is
        // exact in double. The difference is taken in double so that the compiler cannot fuse it
        // with the product inside quantizedAt (an FMA would subtract the unrounded product, not
        // the quantized float).
        const double e = (double(quantizedAt(k)) - double(std::min(std::max(v, lo), hi))) * double(counted);
        clipped += outside;
        inside += std::int64_t(counted);
        noise += e * e;
    }
    return {clipped, inside, noise};
}

}  // namespace

Tensor QuantEvaluator::floatOutputOf(std::size_t batch, const TensorMap& floats, const std::atomic<bool>* cancel) const
{
    const std::string& outputName = graph_->outputs.at(0).name;
    if (!outputExecutor_)
        return floats.at(outputName);
    RunOptions outputOnly;
    outputOnly.cancel = cancel;
    return outputExecutor_->run({{graph_->inputs[0].name, inputs_[batch]}}, outputOnly).at(outputName);
}

void QuantEvaluator::accumulateOwn(const QuantPlan& plan, std::size_t layerIndex, const TensorMap& floats,
                                   LayerPartial& partial) const
{
    const QuantLayer& layer = plan.layers[layerIndex];
    const LayerPlan& lp = plan.plans[layerIndex];
    // Isolated error: the layer's node (and its fused activation) on float inputs, with this
    // plan's weights.
    const Tensor& reference = floats.at(layer.output);
    Tensor value;
    if (layer.nodeIndex < 0) {
        value = reference;
    } else {
        auto runLayerNode = [&](int index, const Tensor* fusedInput) {
            const Node& node = plan.graph.nodes[static_cast<std::size_t>(index)];
            std::vector<const Tensor*> inputs;
            for (const std::string& name : node.inputs) {
                if (name.empty())
                    inputs.push_back(nullptr);
                else if (plan.graph.isInitializer(name))
                    inputs.push_back(&plan.graph.initializers.at(name));
                else
                    inputs.push_back(fusedInput ? fusedInput : &floats.at(name));
            }
            return runNode(node, plan.graph.opsetVersion, std::move(inputs)).at(0);
        };
        // A Conv and its Relu/Clip as one oneDNN run (the same values, no pass for the clamp).
        std::optional<Tensor> run;
        if (layer.outputNodeIndex != layer.nodeIndex && layer.outputNodeIndex >= 0)
            if (const auto chain = convWithActivation(plan.graph, std::size_t(layer.nodeIndex), std::size_t(layer.outputNodeIndex)))
                run = runConvChain(plan.graph, *chain, floats.at(plan.graph.nodes[std::size_t(layer.nodeIndex)].input(0)));
        if (run) {
            value = std::move(*run);
        } else {
            value = runLayerNode(layer.nodeIndex, nullptr);
            if (layer.outputNodeIndex != layer.nodeIndex)
                value = runLayerNode(layer.outputNodeIndex, &value);
        }
    }
    // A static per-tensor uniform grid (the common case) is applied inside the sums below rather
    // than written to tensors and read back.
    const std::optional<UniformRounding> rounding = lp.activationParams ? singleUniformRounding(*lp.activationParams) : std::nullopt;
    if (rounding) {
        if (reference.shape() != value.shape())
            throw Error("cannot compare " + reference.describe() + " with " + value.describe());
        partial.isolated.addMapped(reference.data<float>(), value.data<float>(), std::size_t(reference.size()), *rounding);
    } else {
        if (lp.activationParams || lp.dynamicActivations)
            value = fakeQuantize(value, activationParamsFor(lp, value));
        partial.isolated.add(reference, value);
    }

    // Clipping and rounding noise of the static activation range.
    if (!lp.activationParams)
        return;
    const QuantParams& p = *lp.activationParams;
    const bool uniform = schemeTraits(p.scheme).integerForm;
    const float* values = reference.data<float>();
    const float lo = p.rangeMin[0], hi = p.rangeMax[0];
    const std::int64_t count = reference.size();
    NoiseSums sums;
    if (rounding) {
        const UniformRounding r = *rounding;
        sums = sumClippingAndNoise(values, count, lo, hi, [&](std::int64_t k) { return r(values[k]); });
    } else {
        const Tensor q = uniform ? fakeQuantize(reference, p) : Tensor();
        const float* quantized = uniform ? q.data<float>() : values;
        sums = sumClippingAndNoise(values, count, lo, hi, [&](std::int64_t k) { return quantized[k]; });
    }
    auto [clipped, inside, noise] = sums;
    if (!uniform)  // no grid: no rounding error (only the clipping counts)
        inside = 0, noise = 0;
    partial.clipped += static_cast<std::size_t>(clipped);
    partial.inside += static_cast<std::size_t>(inside);
    partial.noise += noise;
    partial.total += static_cast<std::size_t>(reference.size());
}

LayerMetrics QuantEvaluator::layerCost(const QuantPlan& plan, std::size_t i) const
{
    const QuantLayer& layer = layers_[i];
    const LayerPlan& lp = plan.plans[i];
    LayerMetrics m;
    m.name = layer.name;
    m.opType = layer.opType;
    m.keepFloat = lp.config.keepFloat;
    if (!layer.weight.empty()) {
        const Tensor& w = graph_->initializers.at(layer.weight);
        m.weightCount = w.size();
        m.weightBytes = weightBytes(w, lp.weightParams);
        if (i < outputsPerImage_.size()) {
            // Each weight is used once per output position of its channel.
            const double perImage = outputsPerImage_[i];
            const double channels = double(std::max<std::int64_t>(1, w.dim(layer.weightChannelAxis)));
            m.macs = double(w.size()) * perImage / channels;
            const int weightBits = lp.weightParams ? lp.weightParams->bits : 32;
            const int activationBits = lp.activationParams ? lp.activationParams->bits
                                       : lp.dynamicActivations ? lp.config.activations.bits
                                                               : 32;
            m.bitOperations = m.macs * weightBits * activationBits;
        }
    }
    return m;
}

LayerMetrics QuantEvaluator::ownLayerMetrics(const QuantPlan& plan, std::size_t i, const LayerPartial& merged) const
{
    const QuantLayer& layer = layers_[i];
    const LayerPlan& lp = plan.plans[i];
    LayerMetrics m = layerCost(plan, i);
    m.isolated = ErrorStats::from(merged.isolated);
    if (!layer.weight.empty()) {
        const Tensor& w = graph_->initializers.at(layer.weight);
        if (lp.weightParams) {
            ErrorAccumulator werr;
            werr.add(w, plan.quantizedWeights.at(layer.weight));
            m.weights = ErrorStats::from(werr);
        }
    }
    if (!lp.activationParams)
        return m;
    const QuantParams& p = *lp.activationParams;
    const bool uniform = schemeTraits(p.scheme).integerForm;
    m.clippedFraction = merged.total ? double(merged.clipped) / double(merged.total) : 0.0;
    if (uniform && merged.inside && p.uniform().scale[0] > 0)
        m.rmseOverScale = std::sqrt(merged.noise / double(merged.inside)) / p.uniform().scale[0];
    return m;
}

QuantPlan QuantEvaluator::plan(const QuantConfig& config) const
{
    return makePlan(*graph_, layers_, config, calibration_, previousPlan_.get(), &fixed_);
}

ModelMetrics QuantEvaluator::evaluate(const QuantConfig& config, const EvaluationProgress& progress, LayerDetail detail)
{
    ensureFloatCache(progress);
    auto plan = std::make_unique<QuantPlan>(makePlan(*graph_, layers_, config, calibration_, previousPlan_.get(), &fixed_));
    // The layers that run in integers are simulated on the int8 engine's kernels: the same codes,
    // several times faster than the float kernel on integer-valued operands.
    attachIntegerKernels(*plan, previousPlan_.get());
    const Executor executor(plan->graph);
    const std::size_t batches = inputs_.size();
    const std::size_t nodes = graph_->nodes.size();
    const std::string& outputName = graph_->outputs.at(0).name;

    // Resume from the first node whose layer changed: everything before it is as last time.
    std::size_t startNode = 0;
    if (previousPlan_ && quantOutputs_.size() == batches) {
        startNode = nodes;
        for (std::size_t i = 0; i < layers_.size(); ++i)
            if (!(plan->plans[i] == previousPlan_->plans[i]))
                startNode = std::min<std::size_t>(startNode, layers_[i].nodeIndex < 0 ? 0 : std::size_t(layers_[i].nodeIndex));
    }
    if (startNode == 0)
        quantOutputs_.assign(batches, {});
    // Until this run completes, the caches hold a mix of old and new batches: forget the old plan
    // so that a cancelled or failed run is followed by a full one.
    std::unique_ptr<QuantPlan> previousPlan = std::move(previousPlan_);

    // What each layer needs measured again: its own metrics when its plan changed, its
    // accumulated error when anything before its output changed.
    if (layerCache_.size() != layers_.size())
        layerCache_.assign(layers_.size(), std::nullopt);
    std::vector<char> needOwn(layers_.size(), 0), needAccumulated(layers_.size(), 0);
    for (std::size_t i = 0; i < layers_.size(); ++i) {
        if (detail == LayerDetail::CostOnly)
            continue;
        const QuantLayer& layer = layers_[i];
        const bool planUnchanged = previousPlan && previousPlan->plans[i] == plan->plans[i] && layerCache_[i];
        const bool upstreamOfChange = layer.outputNodeIndex < 0 || std::size_t(layer.outputNodeIndex) < startNode;
        needOwn[i] = !planUnchanged;
        needAccumulated[i] = !(planUnchanged && upstreamOfChange && startNode > 0);
    }
    // The tensors each batch is measured on, float and quantized.
    const std::string& inputName = graph_->inputs[0].name;
    std::set<std::string> floatNeeded, quantNeeded{outputName};
    for (std::size_t i = 0; i < layers_.size(); ++i) {
        if (needOwn[i])
            floatNeeded.insert(layers_[i].inputs.begin(), layers_[i].inputs.end());
        if (needOwn[i] || needAccumulated[i])
            floatNeeded.insert(layers_[i].output);
        if (needAccumulated[i])
            quantNeeded.insert(layers_[i].output);
    }
    const bool floatsCached = std::all_of(floatNeeded.begin(), floatNeeded.end(), [&](const std::string& name) {
        return name == inputName || floatCached_.count(name) != 0;
    });
    // The quantized run resumes at startNode when the caches hold what it is fed (everything
    // whose life ends from the cache start on) and every quantized output to be measured before
    // it; otherwise it runs from the start.
    std::size_t quantStart = startNode;
    for (std::size_t i = 0; i < layers_.size(); ++i)
        if (needAccumulated[i] && std::size_t(std::max(0, layers_[i].outputNodeIndex)) < quantStart &&
            !quantCached_.count(layers_[i].output))
            quantStart = 0;
    if (quantStart < cacheStart_)
        quantStart = 0;
    std::set<std::string> quantCaptures = quantCached_;
    quantCaptures.insert(quantNeeded.begin(), quantNeeded.end());

    // Batches are independent: run them on both cores (kernels inside run single-threaded then),
    // each measured while its activations are at hand.
    std::vector<std::vector<LayerPartial>> partials(batches, std::vector<LayerPartial>(layers_.size()));
    std::atomic<std::size_t> imagesDone{0};
    // Top-1 as the batches come in; every batch has the first one's size but the last.
    RunningTop1 running;
    if (progress.top1)
        running.total = labelledCount(labels_);
    const std::size_t batchSize = batches ? std::size_t(inputs_[0].dim(0)) : 0;
    const auto label = [this](std::size_t image) { return labels_.at(image); };
    auto measureBatch = [&](std::size_t b) {
        // The float tensors the caches lack are made before the caches start: only those nodes
        // run again (all of them when the reference is another graph).
        // A batch whose float output the float reference pass left to this run (nothing cached)
        // has its float model run to the end here.
        TensorMap streamedFloat;
        const TensorMap* floats = &floatCache_[b];
        const bool floatOutputMissing = floatOutputs_[b].empty();
        if ((!floatsCached && !floatNeeded.empty()) || floatOutputMissing) {
            const bool sameGraph = reference_.layers == graph_;
            std::set<std::string> capture = floatNeeded;
            if (floatOutputMissing && sameGraph)
                capture.insert(outputName);
            const std::size_t endNode = sameGraph && !floatOutputMissing ? cacheStart_ : std::numeric_limits<std::size_t>::max();
            streamedFloat = floatCache_[b];
            // The first batch's tensors from the run that sized the caches, when they are all there.
            const bool fromFirstRun = b == 0 && !capture.empty() && std::all_of(capture.begin(), capture.end(), [&](const std::string& name) {
                return name == inputName || firstBatchFloats_.count(name);
            });
            if (fromFirstRun) {
                for (const std::string& name : capture)
                    if (name != inputName)
                        streamedFloat[name] = firstBatchFloats_.at(name);
            } else if (!capture.empty()) {
                for (auto& [name, tensor] : runFloat(b, progress.cancel, capture, endNode))
                    streamedFloat[name] = std::move(tensor);
            }
            if (floatOutputMissing)
                floatOutputs_[b] = floatOutputOf(b, streamedFloat, progress.cancel);
            floats = &streamedFloat;
        }
        TensorMap produced;
        if (quantStart < nodes) {
            RunOptions run;
            run.capture = quantCaptures;
            run.cancel = progress.cancel;
            run.startNode = quantStart;
            // A resumed run is fed the cached tensors, the graph input among them quantized.
            TensorMap feeds = quantStart == 0 ? TensorMap{{inputName, inputs_[b]}} : quantCache_[b];
            produced = runSimulated(*plan, executor, std::move(feeds), run);
            TensorMap kept;
            for (const auto& [name, tensor] : produced)
                if (quantCached_.count(name))
                    kept[name] = tensor;
            keepOutsideHeap(kept, quantCache_[b]);
            quantOutputs_[b] = produced.at(outputName);
        }
        auto quantized = [&](const std::string& name) -> const Tensor& {
            auto it = produced.find(name);
            return it != produced.end() ? it->second : quantCache_[b].at(name);
        };
        const std::size_t rows = std::size_t(inputs_[b].dim(0));
        // The layers share the cores when this is the only batch in flight (else each batch has
        // one and this loop runs on it).
        parallelFor(std::int64_t(layers_.size()), [&](std::int64_t index) {
            const auto i = std::size_t(index);
            if (needOwn[i])
                accumulateOwn(*plan, i, *floats, partials[b][i]);
            if (!needAccumulated[i])
                return;
            // Per image (kept for imageLayerErrors), then merged.
            const Tensor& reference = floats->at(layers_[i].output);
            const Tensor& approx = quantized(layers_[i].output);
            const std::size_t perImage = std::size_t(reference.size()) / rows;
            if (reference.shape() != approx.shape() || perImage * rows != std::size_t(reference.size())) {
                partials[b][i].accumulated.add(reference, approx);  // refuses tensors that differ in shape
                return;
            }
            for (std::size_t r = 0; r < rows; ++r) {
                ErrorAccumulator image;
                image.add(reference.data<float>() + r * perImage, approx.data<float>() + r * perImage, perImage);
                partials[b][i].accumulated.merge(image);
                imageErrors_[i][b * batchSize + r] = image;
            }
        });
        const std::size_t done = imagesDone += rows;
        reportBatch(progress, "quantized model", quantOutputs_[b], b * batchSize, label, running, done, evaluationImages_);
    };
    // Batches that run from the start hold their activations while measured: when those are
    // large, one batch at a time (its kernels using every core) halves the memory two batches in
    // flight would take.
    const bool floatOutputsMissing = std::any_of(floatOutputs_.begin(), floatOutputs_.end(), [](const Tensor& t) { return t.empty(); });
    const bool streamed = !floatsCached || floatOutputsMissing || (quantStart == 0 && cacheStart_ > 0);
    if (streamed && floatBytesPerBatch_ > kLargeBatchBytes) {
        for (std::size_t b = 0; b < batches; ++b)
            measureBatch(b);
    } else {
        parallelFor(static_cast<std::int64_t>(batches), [&](std::int64_t b) { measureBatch(std::size_t(b)); });
    }
    firstBatchFloats_.clear();  // used by batch 0, or not needed: a cost-only run must not keep it

    ModelMetrics metrics;
    metrics.images = labels_.size();
    metrics.recomputedFromNode = std::min(quantStart, startNode);
    metrics.labels = labels_;

    // Whole model: accuracy, agreement, output SQNR.
    ErrorAccumulator outputError;
    TopKTally quantizedTally, floatTally;
    std::size_t agree = 0;
    for (std::size_t b = 0; b < batches; ++b) {
        const Tensor& reference = floatOutputs_[b];
        const Tensor& quantized = quantOutputs_[b];
        outputError.add(reference, quantized);
        const std::int64_t rows = reference.rank() >= 1 ? reference.dim(0) : 0;
        if (rows != quantized.dim(0) || rows == 0)
            throw Error(graph_->sourcePath + ": output " + reference.describe() + " is not one score row per image");
        const std::int64_t classes = reference.size() / rows;
        for (std::int64_t r = 0; r < rows; ++r) {
            const int label = labels_[metrics.predictions.size()];
            const int q = quantizedTally.add(quantized.data<float>() + r * classes, int(classes), label);
            const int f = floatTally.add(reference.data<float>() + r * classes, int(classes), label);
            metrics.predictions.push_back(q);
            metrics.floatPredictions.push_back(f);
            agree += q == f;
        }
    }
    metrics.top1 = quantizedTally.top1();
    metrics.top5 = quantizedTally.top5();
    metrics.floatTop1 = floatTally.top1();
    metrics.floatTop5 = floatTally.top5();
    metrics.agreement = metrics.predictions.empty() ? 0 : double(agree) / double(metrics.predictions.size());
    metrics.outputSqnrDb = outputError.sqnrDb();

    // Per layer: a layer's own metrics are reused while its plan is unchanged, and its
    // accumulated error while the run resumed after its output; the rest from the batches.
    std::vector<LayerMetrics> layerMetrics(layers_.size());
    parallelFor(static_cast<std::int64_t>(layers_.size()), [&](std::int64_t index) {
        const auto i = static_cast<std::size_t>(index);
        if (detail == LayerDetail::CostOnly) {
            layerMetrics[i] = layerCost(*plan, i);
            return;
        }
        LayerPartial merged;
        for (std::size_t b = 0; b < batches; ++b) {
            const LayerPartial& part = partials[b][i];
            merged.isolated.merge(part.isolated);
            merged.accumulated.merge(part.accumulated);
            merged.clipped += part.clipped;
            merged.total += part.total;
            merged.inside += part.inside;
            merged.noise += part.noise;
        }
        LayerMetrics m = needOwn[i] ? ownLayerMetrics(*plan, i, merged) : *layerCache_[i];
        if (needAccumulated[i])
            m.accumulated = ErrorStats::from(merged.accumulated);
        layerMetrics[i] = std::move(m);
    });
    partials.clear();
    std::set<std::string> countedWeights;
    double weightBytesTotal = 0, weightCountTotal = 0;
    for (std::size_t i = 0; i < layers_.size(); ++i) {
        const LayerMetrics& m = layerMetrics[i];
        if (!layers_[i].weight.empty() && countedWeights.insert(layers_[i].weight).second) {
            weightBytesTotal += m.weightBytes;
            weightCountTotal += double(m.weightCount);
        }
        metrics.bitOperations += m.bitOperations;
        // Cost-only metrics are not a layer's metrics: the next full evaluation measures them.
        layerCache_[i] = detail == LayerDetail::Full ? std::optional<LayerMetrics>(m) : std::nullopt;
        metrics.layers.push_back(m);
    }

    // Size: quantized weights as planned; every other initializer (biases, constants) in float.
    double otherBytes = 0, floatBytes = 0;
    for (const auto& [name, tensor] : graph_->initializers) {
        floatBytes += double(tensor.byteSize());
        if (!countedWeights.count(name))
            otherBytes += double(tensor.byteSize());
    }
    metrics.sizeBytes = weightBytesTotal + otherBytes;
    metrics.floatSizeBytes = floatBytes;
    metrics.bitsPerWeight = weightCountTotal > 0 ? 8.0 * weightBytesTotal / weightCountTotal : 32.0;

    // The quantized run's tensors can take more than planned: start the caches later until they
    // fit.
    while (cacheStart_ < nodes && cachedBytes() > cacheRoom_)
        moveCacheStart(cacheStart_ + 1);
    imageErrorsCurrent_ = detail == LayerDetail::Full;

    previousPlan_ = std::move(plan);
    return metrics;
}

std::vector<LayerPlan> QuantEvaluator::lastPlans() const
{
    return previousPlan_ ? previousPlan_->plans : std::vector<LayerPlan>{};
}

std::vector<ErrorStats> QuantEvaluator::imageLayerErrors(std::size_t image) const
{
    if (!previousPlan_ || !imageErrorsCurrent_)
        throw Error("per-image errors need a completed evaluation");
    if (image >= labels_.size())
        throw Error("image " + std::to_string(image) + " is not one of the " + std::to_string(labels_.size()) +
                    " evaluation images");
    std::vector<ErrorStats> errors;
    for (const std::vector<ErrorAccumulator>& layer : imageErrors_)
        errors.push_back(ErrorStats::from(layer.at(image)));
    return errors;
}

}  // namespace qe
