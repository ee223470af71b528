#pragma once
// Says exactly how much a quantization configuration costs: per layer (accumulated and
// isolated error, weight error, clipping, rounding noise) and for the whole model (accuracy,
// agreement with float, output SQNR, size). It keeps the float activations of the evaluation
// images and the previous quantized run, so that after one layer's change only that layer and
// what follows it are recomputed.

#include "data/dataset.h"
#include "eval/accuracy.h"
#include "engine/executor.h"
#include "quant/simulator.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace qe {

// How far `approx` is from `reference`, accumulated over any number of tensor pairs.
class ErrorAccumulator {
public:
    void add(const Tensor& reference, const Tensor& approx);
    void add(const float* reference, const float* approx, std::size_t count);
    // As add(), with approx[i] = approxOf(values[i]) made on the fly: a fake quantization read
    // once is never stored (a tensor written and read again took more time than the sums).
    // Defined in quant_evaluator.cpp, the one file that uses it (built with OpenMP's simd).
    template <class ApproxOf>
    void addMapped(const float* reference, const float* values, std::size_t count, ApproxOf approxOf);
    // Adds what `other` accumulated (the evaluator sums per batch, then the batches in order).
    void merge(const ErrorAccumulator& other);
    std::size_t count() const { return count_; }
    double mse() const;
    double sqnrDb() const;    // 10 log10(signal power / noise power); +inf when exact
    double cosine() const;    // 1 when identical
    double maxAbsError() const { return maxAbs_; }

private:
    double signal_ = 0, noise_ = 0, dot_ = 0, normApprox_ = 0, maxAbs_ = 0;  // signal_ is also |reference|^2
    std::size_t count_ = 0;
};

struct ErrorStats {
    double mse = 0, sqnrDb = std::numeric_limits<double>::infinity(), cosine = 1, maxAbsError = 0;
    static ErrorStats from(const ErrorAccumulator& a);
};

struct LayerMetrics {
    std::string name, opType;
    bool keepFloat = false;
    ErrorStats accumulated;  // the quantized model up to here vs the float model
    ErrorStats isolated;     // this layer alone quantized, float input
    std::optional<ErrorStats> weights;  // weight quantization error
    std::int64_t weightCount = 0;
    double weightBytes = 0;             // storage of the weights under the configuration
    // Multiply-accumulates per image (weights x output positions; 0 for a layer without weights),
    // and bit operations: MACs x weight bits x activation bits, a tensor in float counting 32.
    double macs = 0, bitOperations = 0;
    double clippedFraction = 0;         // float activations outside the clipping range
    // RMS of the activation rounding error inside the range, in units of the quantization step;
    // uniform noise gives 1/sqrt(12) = 0.289. Exact zeros, which ReLU makes common and which
    // quantize without error, are left out. NaN where it does not apply (float, non-uniform).
    double rmseOverScale = std::numeric_limits<double>::quiet_NaN();
};

struct ModelMetrics {
    std::size_t images = 0;
    double top1 = 0, top5 = 0, floatTop1 = 0, floatTop5 = 0;
    double agreement = 0;     // fraction of images where quantized and float top-1 agree
    double outputSqnrDb = 0;
    double sizeBytes = 0, floatSizeBytes = 0;
    double bitsPerWeight = 32;
    double bitOperations = 0;  // per image, summed over the layers (LayerMetrics::bitOperations)
    std::vector<LayerMetrics> layers;
    std::vector<int> predictions, floatPredictions, labels;
    std::size_t recomputedFromNode = 0;  // where the last evaluation resumed (0: full run)
};

// A histogram of one tensor with what the configuration puts on it.
struct TensorHistogram {
    std::string tensor, layer;
    bool isWeight = false;
    Histogram histogram;                  // its bins may extend past the data: see min/max
    float min = 0.f, max = 0.f;           // the extremes of the data
    std::vector<float> levels;            // representable values (empty for float)
    std::optional<std::pair<float, float>> clipRange;
    double clippedFraction = 0;
    // The ranges every calibration method would choose (activations only), by method name.
    std::vector<std::pair<std::string, std::pair<float, float>>> calibrationRanges;
    // The parameters in force on the tensor, as the evaluation uses them (a QDQ model's own while
    // the configuration asks for what the file holds); none for float. `levels` and `clipRange`
    // are those of the block shown: the tensor's, or the channel's when there is one per channel.
    std::optional<QuantParams> params;
    bool paramsFromModel = false;  // they are the model's own
    // Weights: the output channel shown (-1: all of them) and how many there are. All channels of
    // per-channel or per-group parameters have no common levels or range: both are left empty.
    int channel = -1;
    int channelCount = 0;
};

// Each output channel of a layer's weights beside the range one per-tensor quantizer would give
// them all: why per-tensor quantization breaks layers whose channels differ in scale (a
// MobileNet's depthwise convolutions), where whole channels round to zero.
struct ChannelRanges {
    std::string layer;
    std::vector<float> min, max;  // each channel's values
    // The weights' scheme and bits quantized per tensor: the clipping range, and for each channel
    // the fraction of its non-zero weights that round to 0.
    std::pair<float, float> perTensorRange{0.f, 0.f};
    std::vector<double> perTensorZeroFraction;
    // The same fraction under the parameters in force (empty when the weights stay float), and
    // their granularity.
    std::vector<double> zeroFraction;
    std::optional<Granularity> granularity;
    bool fromModel = false;  // the parameters in force are the model's own (a QDQ file's)
    // An activation's channels (activationChannelRanges) instead of the weights': each channel's
    // values over `images` evaluation images, per tensor with the layer's activation scheme.
    bool activations = false;
    std::size_t images = 0;
};

struct EvaluationProgress {
    std::function<void(const std::string& stage, std::size_t done, std::size_t total)> report;
    // Top-1 as the images stream in ("float reference", then "quantized model"): called after each
    // batch, before its `report`, from whichever thread ran it (one call at a time); optional.
    // Batches finish in any order, so `scored` grows by whole batches, not always from the start.
    std::function<void(const std::string& stage, const RunningTop1& top1)> top1;
    const std::atomic<bool>* cancel = nullptr;
};

// Only `progress`'s cancellation: for evaluations inside a larger job that reports on its own.
inline EvaluationProgress cancellationOnly(const EvaluationProgress& progress)
{
    EvaluationProgress quiet;
    quiet.cancel = progress.cancel;
    return quiet;
}

// What a quantized model's float activations are compared with, when it is not the evaluated
// graph itself (a repaired model, core/repair/): `layers` gives every layer's float output (same
// tensor names as the evaluated graph), `outputs` the model's output (the original model's, so
// that accuracy and agreement with float are the original's).
struct FloatReference {
    std::shared_ptr<const Graph> layers, outputs;
};

// The evaluator keeps, for every evaluation image, the activations an edit needs again: the
// float inputs and outputs of the layers and every tensor of the last quantized run, from one node
// on (the cache start) to the end of the graph, so that an edit at or after that node recomputes
// only what follows the edited layer, on every image. A budget bounds what the evaluator holds:
// the preprocessed images, the models' outputs, the caches and the batches in flight. The cache
// start is the earliest node whose suffix fits: a late layer's tensors are small (ResNet-18's last
// block holds 1/30 of what its first layers do), so the late layers of a large model stay
// interactive on many images while an edit before the cache start runs the whole graph again.
// Results are the same either way.
class QuantEvaluator {
public:
    // A quarter of the machine's memory.
    static std::uint64_t defaultCacheBudget();
    // `evaluation` images are the ones metrics are reported on (the first `evaluationImages`); it
    // may be null for weight-only questions (weight histograms).
    QuantEvaluator(std::shared_ptr<const Graph> graph, std::shared_ptr<const Dataset> evaluation, Preprocess preprocess,
                   std::size_t evaluationImages, FloatReference reference = {});

    const Graph& graph() const { return *graph_; }
    const std::vector<QuantLayer>& layers() const { return layers_; }

    // Observes the float activations of `images` calibration images (a separate set).
    void calibrate(const Dataset& calibrationSet, std::size_t images, const EvaluationProgress& progress = {});
    bool isCalibrated() const { return calibration_.images > 0; }
    std::size_t calibrationImages() const { return calibration_.images; }  // observed by the last calibrate()
    // Takes `other`'s calibration and fixed parameters (an evaluator of the same graph on other
    // images: the mixed-precision search's), so that both resolve a configuration alike.
    void shareCalibrationOf(const QuantEvaluator& other);
    // Parameters that came with the model (a QDQ file): used while a layer's configuration asks
    // for exactly what they describe.
    void setFixedParams(FixedParams params);
    // Whether `config` has static activations that neither calibration nor fixed params cover.
    bool needsCalibration(const QuantConfig& config) const;

    // The plan `config` resolves to with this evaluator's calibration and fixed parameters (what
    // the simulation runs, and what the integer engine lowers).
    QuantPlan plan(const QuantConfig& config) const;

    // Throws qe::Error for configurations that do not fit the model; Cancelled when cancelled.
    // With LayerDetail::CostOnly each layer gets only its name, size and operation counts (what
    // the sensitivity sweep and the mixed-precision search read): its errors, clipping and
    // rounding noise are not measured and stay at their defaults. That halves a sweep's time,
    // since a layer's isolated error runs the layer again over every image.
    enum class LayerDetail { Full, CostOnly };
    ModelMetrics evaluate(const QuantConfig& config, const EvaluationProgress& progress = {}, LayerDetail detail = LayerDetail::Full);

    // `tensor` is a layer name (its output activation), a weight initializer, or any float tensor
    // of the graph (shown without levels when it is not a quantization point).
    // For a weight, `channel` picks one output channel (-1: the whole tensor); a channel out of
    // range, or one asked of anything but a layer's weights, is a qe::Error naming the layer.
    TensorHistogram histogram(const QuantConfig& config, const std::string& tensor, int bins = 128, int channel = -1);
    // The per-channel ranges of a layer's weights under `config` (qe::Error when it has none).
    ChannelRanges channelRanges(const QuantConfig& config, const std::string& layer) const;
    // The per-channel ranges of a layer's float output activation over the evaluation images
    // (channels on axis 1 of an NCHW image tensor, else on the last axis: a transformer's hidden
    // channels), with what one per-tensor range of the layer's activation scheme would round to 0:
    // which channels are outliers, and what they cost the others.
    ChannelRanges activationChannelRanges(const QuantConfig& config, const std::string& layer);

    // What the last completed evaluate() decided per layer (parallel to layers()): the parameters
    // the UI's layer details explain. Empty before the first evaluation and after a cancelled one.
    std::vector<LayerPlan> lastPlans() const;
    // The accumulated error at every layer's output for one evaluation image (an index below the
    // evaluation image count), from the last completed evaluate(); parallel to layers().
    std::vector<ErrorStats> imageLayerErrors(std::size_t image) const;

    // Drops the caches (for benchmarks comparing full and incremental runs).
    void clearQuantizedCache();

    // Drops every cache, the preprocessed images too (another evaluator of the same study is to
    // use the memory); the next evaluation builds them again.
    void releaseCaches();
    // The most the evaluator may hold, in bytes (default: defaultCacheBudget()). A new budget
    // drops the caches; the next evaluation builds them again within it.
    void setCacheBudget(std::uint64_t bytes);
    std::uint64_t cacheBudget() const { return cacheBudget_; }
    // What the activation caches hold now (float and quantized; tensors sharing storage counted
    // once), and the first node whose activations they hold (graph().nodes.size(): none; 0: all).
    std::uint64_t cachedBytes() const;
    std::size_t cacheStartNode() const { return cacheStart_; }

private:
    // One batch's contribution to a layer's metrics; the batches' are merged in batch order.
    struct LayerPartial {
        ErrorAccumulator isolated, accumulated;
        std::size_t clipped = 0, total = 0, inside = 0;
        double noise = 0;
    };
    // The evaluation images, decoded and preprocessed into inputs_ (once).
    void ensureInputs();
    void ensureFloatCache(const EvaluationProgress& progress);
    // Chooses the cache start for the budget, from one batch's float tensors (every tensor of
    // the graph, `rows` images).
    void planCache(const TensorMap& sample, std::size_t rows);
    // Drops the cached tensors whose life ends before `node` (a later cache start).
    void moveCacheStart(std::size_t node);
    // Batch `batch`'s float tensors named by `capture` (run now), of the nodes before `endNode`.
    TensorMap runFloat(std::size_t batch, const std::atomic<bool>* cancel, const std::set<std::string>& capture,
                       std::size_t endNode = std::numeric_limits<std::size_t>::max()) const;
    // Batch `batch`'s float model output: from `floats` (a run of reference_.layers that captured
    // it), or from the original model when the reference is another graph.
    Tensor floatOutputOf(std::size_t batch, const TensorMap& floats, const std::atomic<bool>* cancel) const;
    std::set<std::string> floatCaptures() const;  // every layer's inputs and output
    // This layer's isolated error, clipping and rounding noise on one batch's float activations.
    void accumulateOwn(const QuantPlan& plan, std::size_t layerIndex, const TensorMap& floats, LayerPartial& partial) const;
    // The metrics that depend only on this layer's own plan: its cost (name, size, operations),
    // then isolated and weight error, clipping and rounding noise (from the merged batches).
    LayerMetrics layerCost(const QuantPlan& plan, std::size_t layerIndex) const;
    LayerMetrics ownLayerMetrics(const QuantPlan& plan, std::size_t layerIndex, const LayerPartial& merged) const;

    std::shared_ptr<const Graph> graph_;
    std::shared_ptr<const Dataset> evaluation_;
    Preprocess preprocess_;
    std::size_t evaluationImages_;
    std::vector<QuantLayer> layers_;
    FloatReference reference_;  // both set: graph_ itself unless given
    Executor floatExecutor_;    // runs reference_.layers
    std::optional<Executor> outputExecutor_;  // runs reference_.outputs when it is another graph
    CalibrationData calibration_;
    FixedParams fixed_;

    std::uint64_t cacheBudget_ = defaultCacheBudget();
    std::vector<Tensor> inputs_;        // preprocessed evaluation batches (all of them)
    // Per batch: the float model's output; left empty by ensureFloatCache when nothing is cached,
    // for evaluate()'s streamed float run to make.
    std::vector<Tensor> floatOutputs_;
    // When nothing is cached: the first batch's float layer inputs and outputs from the run that
    // sized the caches, kept for the next evaluation's measurement of that batch (instead of
    // running the batch a second time), dropped when that evaluation ends.
    TensorMap firstBatchFloats_;
    std::vector<double> outputsPerImage_;  // per layer: output values per image
    std::vector<int> labels_;

    // The caches, per batch, of the tensors whose life ends at or after cacheStart_ (their last
    // reader, or their producer when none reads them): exactly what a run resumed at any node
    // from there on is fed, and what the layers from there on are measured on.
    std::size_t cacheStart_ = 0;
    std::uint64_t cacheRoom_ = 0;                   // what the budget leaves for them
    std::map<std::string, std::size_t> lifeEnd_;    // per tensor made by a node: where its life ends
    std::set<std::string> floatCached_, quantCached_;  // the names the caches hold
    std::vector<TensorMap> floatCache_;  // per batch: float layer inputs and outputs (and the batch)
    std::uint64_t floatBytesPerBatch_ = 0;  // the first batch's float layer activations

    // The previous quantized run, for incremental recomputation.
    std::unique_ptr<QuantPlan> previousPlan_;
    std::vector<TensorMap> quantCache_;  // per batch: the quantized run's tensors
    std::vector<Tensor> quantOutputs_;   // per batch: the quantized model's output
    std::vector<std::optional<LayerMetrics>> layerCache_;  // the previous run's per-layer metrics
    // Per layer, per evaluation image: the accumulated error of the last full evaluation.
    std::vector<std::vector<ErrorAccumulator>> imageErrors_;
    bool imageErrorsCurrent_ = false;

    // Histograms of float activations over the evaluation images, by "tensor/bins": they do not
    // depend on the configuration, and observing every activation again took the GUI's update
    // after an edit past its time budget.
    struct FloatHistogram {
        Histogram histogram;
        float min = 0.f, max = 0.f;
    };
    std::map<std::string, FloatHistogram> floatHistograms_;
};

}  // namespace qe
