// QuantEvaluator's caches: for every evaluation image, the tensors from one node on that a run
// resumed at a later layer needs (planCache picks the node from the memory budget), kept outside
// the heap; and the float reference run that fills them (ensureFloatCache).
#include "eval/quant_evaluator.h"
#include "eval/quant_evaluator_internal.h"

#include "common/memory.h"
#include "common/parallel.h"
#include "common/sanitizers.h"
#include "quant/image_batches.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

namespace qe {

using namespace evaluator_detail;

namespace {

// The bytes the tensors of `maps` hold, each storage counted once (a fused activation's output
// shares its input's), those in `excluded` not at all.
std::uint64_t storageBytes(const std::vector<const TensorMap*>& maps, const std::vector<const std::byte*>& excluded)
{
    std::set<const std::byte*> seen(excluded.begin(), excluded.end());
    std::uint64_t bytes = 0;
    for (const TensorMap* map : maps)
        for (const auto& [name, tensor] : *map)
            if (!tensor.empty() && seen.insert(tensor.rawData()).second)
                bytes += tensor.byteSize();
    return bytes;
}

}  // namespace

void evaluator_detail::keepOutsideHeap(const TensorMap& tensors, TensorMap& cache)
{
    std::map<const std::byte*, Tensor> copies;
    for (const auto& [name, tensor] : tensors) {
        if (tensor.empty())
            continue;
        auto old = cache.find(name);
        if (old != cache.end() && old->second.rawData() == tensor.rawData())
            continue;  // already the cached tensor
        if (old != cache.end() && old->second.dtype() == tensor.dtype() && old->second.shape() == tensor.shape() &&
            old->second.ownsStorageAlone()) {
            std::memcpy(old->second.mutableRawData(), tensor.rawData(), tensor.byteSize());
            continue;
        }
        auto copy = copies.find(tensor.rawData());
        if (copy == copies.end() || copy->second.size() != tensor.size() || copy->second.dtype() != tensor.dtype())
            copy = copies.insert_or_assign(tensor.rawData(), tensor.copyIntoOwnMapping()).first;
        cache[name] = copy->second.reshaped(tensor.shape());
    }
}

// A sanitizer build spends several bytes of memory per byte the caches hold (ThreadSanitizer's
// shadow and metadata about 5-8, AddressSanitizer's redzones and quarantine about 2-3): its
// default budget shrinks in proportion, so that a test run under it fits the machine as a normal
// run does (a window test under TSan otherwise grew past 22 GB on a 24 GB machine).
#if QE_THREAD_SANITIZER
constexpr std::uint64_t kMemoryPerCachedByte = 8;
#elif QE_ADDRESS_SANITIZER
constexpr std::uint64_t kMemoryPerCachedByte = 3;
#else
constexpr std::uint64_t kMemoryPerCachedByte = 1;
#endif

std::uint64_t QuantEvaluator::defaultCacheBudget()
{
    const std::uint64_t memory = physicalMemoryBytes();
    return (memory > 0 ? memory / 4 : std::uint64_t(2) << 30) / kMemoryPerCachedByte;
}

void QuantEvaluator::clearQuantizedCache()
{
    previousPlan_.reset();
    for (TensorMap& map : quantCache_)
        map.clear();
    quantOutputs_.clear();
    layerCache_.clear();
    imageErrorsCurrent_ = false;
}

void QuantEvaluator::setCacheBudget(std::uint64_t bytes)
{
    if (bytes == cacheBudget_)
        return;
    cacheBudget_ = bytes;
    releaseCaches();
}

void QuantEvaluator::releaseCaches()
{
    releaseIdleTensorBlocks();  // the other evaluator's tensors are of other sizes
    clearQuantizedCache();
    quantCache_.clear();
    inputs_.clear();
    floatCache_.clear();
    floatOutputs_.clear();
    firstBatchFloats_.clear();
    imageErrors_.clear();
}

std::uint64_t QuantEvaluator::cachedBytes() const
{
    std::vector<const TensorMap*> maps;
    for (const TensorMap& map : floatCache_)
        maps.push_back(&map);
    for (const TensorMap& map : quantCache_)
        maps.push_back(&map);
    std::vector<const std::byte*> batches;  // the float caches hold the batches too: not counted
    for (const Tensor& batch : inputs_)
        batches.push_back(batch.rawData());
    return storageBytes(maps, batches);
}

std::set<std::string> QuantEvaluator::floatCaptures() const
{
    std::set<std::string> capture;
    for (const QuantLayer& layer : layers_) {
        capture.insert(layer.output);
        for (const std::string& in : layer.inputs)
            capture.insert(in);
    }
    return capture;
}

void QuantEvaluator::planCache(const TensorMap& sample, std::size_t rows)
{
    const std::vector<Node>& nodes = graph_->nodes;
    // Where each tensor's life ends: its last reader, else its producer. The graph input counts
    // for the quantized cache (a resumed run is fed it quantized), not for the float one
    // (inputs_ holds it).
    const std::string& inputName = graph_->inputs[0].name;
    lifeEnd_.clear();
    lifeEnd_[inputName] = 0;
    for (std::size_t n = 0; n < nodes.size(); ++n) {
        for (const std::string& in : nodes[n].inputs)
            if (auto it = lifeEnd_.find(in); it != lifeEnd_.end())
                it->second = n;
        for (const std::string& out : nodes[n].outputs)
            if (!out.empty())
                lifeEnd_[out] = n;
    }
    // Per image, the bytes whose life ends at each node: float layer activations (a storage that
    // several names share counted once, at its latest end) and the quantized run's tensors (each
    // counted: the simulation's quantized tensors share less).
    const std::set<std::string> layerTensors = floatCaptures();
    std::vector<double> endingAt(nodes.size() + 1, 0.0);
    std::map<const std::byte*, std::pair<std::size_t, double>> floatStorage;  // end, bytes per image
    double perBatch = 0;  // float and quantized, one batch
    for (const auto& [name, end] : lifeEnd_) {
        auto tensor = sample.find(name);
        if (tensor == sample.end() || tensor->second.empty())
            continue;
        const double bytes = double(tensor->second.byteSize());
        endingAt[end] += bytes / double(rows);
        perBatch += bytes;
        if (layerTensors.count(name) && name != inputName) {
            auto [it, added] = floatStorage.try_emplace(tensor->second.rawData(), end, bytes / double(rows));
            it->second.first = std::max(it->second.first, end);
        }
    }
    for (const auto& [storage, endAndBytes] : floatStorage) {
        endingAt[endAndBytes.first] += endAndBytes.second;
        perBatch += endAndBytes.second * double(rows);
    }
    floatBytesPerBatch_ = std::uint64_t(perBatch / 2);
    // Held besides the caches: the preprocessed images, both models' outputs, the per-image
    // errors, and the batches being measured (one at a time when large, else two), each about
    // twice its activations at the heap's high-water mark (ResNet-18 at 224: 2.3-2.7 GB for 1.2
    // GB of float and quantized activations: the kernels' scratch, the isolated errors'
    // temporaries, the rounding of large blocks to 2 MiB pages).
    double held = 0;
    for (const Tensor& batch : inputs_)
        held += double(batch.byteSize());
    const std::string& output = graph_->outputs.at(0).name;
    if (auto it = sample.find(output); it != sample.end())
        held += 2.0 * double(it->second.byteSize()) / double(rows) * double(evaluationImages_);
    held += double(layers_.size() * evaluationImages_ * sizeof(ErrorAccumulator));
    held += 2 * perBatch * (floatBytesPerBatch_ > kLargeBatchBytes ? 1 : 2);
    // And a twentieth of the budget for the rest of the process (the window, the model, the
    // libraries: 0.15-0.3 GB beside ResNet-18's 6 GB).
    held += double(cacheBudget_) / 20;
    cacheRoom_ = double(cacheBudget_) > held ? std::uint64_t(double(cacheBudget_) - held) : 0;
    // The earliest start whose suffix fits.
    cacheStart_ = nodes.size();
    double suffix = endingAt[nodes.size()] * double(evaluationImages_);
    for (std::size_t start = nodes.size(); start-- > 0;) {
        suffix += endingAt[start] * double(evaluationImages_);
        if (suffix > double(cacheRoom_))
            break;
        cacheStart_ = start;
    }
    floatCached_.clear();
    quantCached_.clear();
    for (const auto& [name, end] : lifeEnd_) {
        if (end < cacheStart_)
            continue;
        quantCached_.insert(name);
        if (layerTensors.count(name) && name != inputName)
            floatCached_.insert(name);
    }
}

void QuantEvaluator::moveCacheStart(std::size_t node)
{
    cacheStart_ = node;
    auto ended = [&](const std::string& name) {
        auto it = lifeEnd_.find(name);
        return it == lifeEnd_.end() || it->second < node;
    };
    std::erase_if(floatCached_, ended);
    std::erase_if(quantCached_, ended);
    const std::string& input = graph_->inputs[0].name;
    for (TensorMap& map : floatCache_)
        std::erase_if(map, [&](const auto& entry) { return entry.first != input && ended(entry.first); });
    for (TensorMap& map : quantCache_)
        std::erase_if(map, [&](const auto& entry) { return ended(entry.first); });
}

void QuantEvaluator::ensureInputs()
{
    if (!inputs_.empty() || evaluationImages_ == 0)
        return;
    const ImageInputGeometry g = imageInputGeometry(*graph_);
    const std::size_t batchSize = modelBatchSize(g, kBatchSize);
    const std::size_t batches = (evaluationImages_ + batchSize - 1) / batchSize;
    std::vector<Tensor> inputs(batches);
    parallelFor(static_cast<std::int64_t>(batches), [&](std::int64_t b) {
        const std::size_t first = std::size_t(b) * batchSize, count = std::min(batchSize, evaluationImages_ - first);
        inputs[b] = makeBatch(*evaluation_, first, count, preprocess_, g.channels, g.height, g.width).copyIntoOwnMapping();
    });
    inputs_ = std::move(inputs);
}

void QuantEvaluator::ensureFloatCache(const EvaluationProgress& progress)
{
    // The float reference is made when every batch has its (possibly deferred) output slot.
    if ((!inputs_.empty() && floatOutputs_.size() == inputs_.size()) || evaluationImages_ == 0)
        return;
    ensureInputs();
    const ImageInputGeometry g = imageInputGeometry(*graph_);
    const std::size_t batchSize = modelBatchSize(g, kBatchSize);
    const std::string& inputName = graph_->inputs[0].name;
    const std::string& outputName = graph_->outputs.at(0).name;
    // Built aside and committed at the end: a cancelled run must not leave a partial cache.
    const std::size_t batches = inputs_.size();
    std::vector<int> labels(evaluationImages_);
    for (std::size_t i = 0; i < evaluationImages_; ++i)
        labels[i] = evaluation_->label(i);
    try {
        // The first batch, every tensor of it, says what the caches would take.
        // It is batch 0's float run too.
        std::vector<TensorMap> cache(batches);
        std::vector<Tensor> outputs(batches);
        TensorMap first;
        {
            RunOptions all;
            all.captureAll = true;
            all.cancel = progress.cancel;
            first = floatExecutor_.run({{inputName, inputs_[0]}}, all);
            planCache(first, std::size_t(inputs_[0].dim(0)));
            outputsPerImage_.clear();
            for (const QuantLayer& layer : layers_) {
                const Tensor& out = first.at(layer.output);
                outputsPerImage_.push_back(double(out.size()) / double(std::max<std::int64_t>(1, out.dim(0))));
            }
        }
        std::set<std::string> capture = floatCached_;
        capture.insert(outputName);
        // Float top-1 as the batches come in.
        RunningTop1 running;
        const auto label = [&labels](std::size_t image) { return labels[image]; };
        running.total = labelledCount(labels);
        std::atomic<std::size_t> imagesDone{0};
        const bool nothingCached = cacheStart_ == graph_->nodes.size();
        auto runBatch = [&](std::size_t b) {
            TensorMap map = b == 0 ? std::move(first) : runFloat(b, progress.cancel, capture);
            std::erase_if(map, [&](const auto& entry) { return !capture.count(entry.first); });
            outputs[b] = floatOutputOf(b, map, progress.cancel);
            if (!floatCached_.count(outputName))
                map.erase(outputName);
            map.erase(inputName);
            keepOutsideHeap(map, cache[b]);
            cache[b][inputName] = inputs_[b];  // shares its storage
            const std::size_t done = imagesDone += std::size_t(inputs_[b].dim(0));
            if (!nothingCached)  // else the evaluation makes the float outputs: no float phase to report
                reportBatch(progress, "float reference", outputs[b], b * batchSize, label, running, done, evaluationImages_);
        };
        // With nothing to cache (a one-shot `eval`, or a budget too small for the last node's
        // tensors), the evaluation streams every batch's float tensors anyway: it makes the float
        // outputs too (floatOutputs_[b] left empty), rather than a float pass here over every
        // image that keeps only their outputs.
        if (nothingCached) {
            const std::set<std::string> measured = floatCaptures();
            for (const std::string& name : measured)
                if (auto it = first.find(name); it != first.end() && name != inputName)
                    firstBatchFloats_[name] = it->second;
            runBatch(0);
            for (std::size_t b = 1; b < batches; ++b)
                cache[b][inputName] = inputs_[b];
        } else if (floatBytesPerBatch_ > kLargeBatchBytes) {  // one at a time, as evaluate() measures them
            for (std::size_t b = 0; b < batches; ++b)
                runBatch(b);
        } else {  // small batches two at a time
            parallelFor(static_cast<std::int64_t>(batches), [&](std::int64_t b) { runBatch(std::size_t(b)); });
        }
        floatCache_ = std::move(cache);
        quantCache_.assign(batches, {});
        floatOutputs_ = std::move(outputs);
        labels_ = std::move(labels);
        imageErrors_.assign(layers_.size(), std::vector<ErrorAccumulator>(evaluationImages_));
        imageErrorsCurrent_ = false;
    } catch (...) {
        inputs_.clear();
        throw;
    }
}

}  // namespace qe
