#pragma once
// AdaRound (Nagel et al., "Up or Down? Adaptive Rounding for Post-Training Quantization", 2020):
// for one weighted layer, learn whether each weight rounds down or up so that the layer's output
// on calibration data stays close to the float model's. The scale and zero-point stay as given;
// every code ends up floor(w/s) + z or floor(w/s) + z + 1, clamped to the code range.
//
// Per weight, a continuous variable V chooses between the two neighbours through the rectified
// sigmoid h(V) = clamp(sigmoid(V) * (zeta - gamma) + gamma, 0, 1), zeta = 1.1, gamma = -0.1:
//     w~ = s * (clamp(floor(w/s) + z + h(V), qmin, qmax) - z)
// V starts where h(V) = frac(w/s), so the soft weights start at the float weights. Adam minimises
//     mean over samples of ||W x - W~ x||^2  +  lambda * sum(1 - |2 h(V) - 1|^beta)
// where the first term sums over the output channels (AIMET's reconstruction loss) and the
// regulariser, off for the first 20% of the iterations, pushes each h(V) to 0 or 1 while beta
// anneals from 20 to 2 (cosine, as AIMET does). Finally each weight rounds up where h(V) >= 0.5.
//
// A "sample" is one row of the layer as a matrix product: a Gemm/MatMul input vector, or the
// receptive field of one output position of a Conv (all groups at once; strides, pads, dilations
// and groups are applied once, when the inputs are unfolded). Each step takes a random batch of
// rows, so no step computes a whole feature map. The computation is float32, in Eigen.

#include "model/graph.h"
#include "quant/layers.h"
#include "quant/scheme.h"
#include "repair/channel_statistics.h"
#include "tensor/tensor.h"

#include <cstdint>
#include <string>
#include <vector>

namespace qe {

struct AdaRoundOptions {
    int iterations = 10000;        // AIMET's default_num_iterations
    int batchSize = 32;            // images per step (BRECQ's and AIMET's examples' batch)
    // A Conv contributes this many output positions of each image to a step (fewer when the
    // feature map is smaller); the rows of a step are batchSize * that. Gemm/MatMul: one row each.
    int positionsPerImage = 32;
    // Rows unfolded for the whole optimisation: at most this many positions of each input image
    // (a random subset, fixed for the run). Bounds the memory of the first, large feature maps.
    int maxPositionsPerImage = 512;
    float regularization = 0.01f;  // lambda, AIMET's default_reg_param
    float betaStart = 20.f, betaEnd = 2.f;  // AIMET's default_beta_range
    float warmup = 0.2f;           // fraction of iterations without the regulariser (default_warm_start)
    float learningRate = 1e-3f;    // Adam
    // Reconstruct after the layer's fused Relu/Clip (the paper's asymmetric reconstruction): an
    // error the activation clips away does not count.
    bool throughFusedActivation = true;
    std::uint64_t seed = 20200420;
    // Threads for the row blocks of the products (OpenMP, as common/parallel.h's loops); 0: as many
    // as OpenMP allows (omp_get_max_threads(), so OMP_NUM_THREADS holds here as in the engine).
    // Called inside a parallelFor task, the products run serially (nested OpenMP regions do), so
    // the two never oversubscribe the cores.
    int threads = 0;
    // The repairs' one progress and cancellation (repair() passes its own): reported as `stage`
    // every few hundred iterations; the flag is polled each iteration (throws qe::Cancelled).
    RepairProgress progress;
    std::string stage = "AdaRound";
};

struct AdaRoundStatistics {
    double flippedFraction = 0;  // weights whose code differs from nearest rounding's
    // Mean over the unfolded rows of the squared output error summed over channels (the loss's
    // first term), on the data given, all rows: with the float weights (what the inputs' own
    // error costs; 0 up to float rounding when the inputs are the float model's), nearest
    // rounding and AdaRound's rounding.
    double floatError = 0, nearestError = 0, adaRoundError = 0;
    int iterations = 0;
    std::int64_t rows = 0;        // unfolded rows optimised on
    std::int64_t rowsPerStep = 0;
    // Where the time went, in milliseconds: unfolding and set-up, the steps' forward (soft
    // weights, product, loss), backward (gradients by hand), Adam, and the whole call.
    double setupMs = 0, forwardMs = 0, backwardMs = 0, adamMs = 0, totalMs = 0;
};

struct AdaRoundResult {
    // Integer codes in the layout of the model's weights (Gemm keeps [K, N] or [N, K]).
    std::vector<std::int32_t> codes;
    Tensor weights;  // scale * (code - zero point): the fake-quantized weights to run with
    AdaRoundStatistics statistics;
};

// AdaRound for `layer` (a Conv, Gemm or MatMul of `graph`; its weights and bias are the graph's
// initializers) with the uniform weight parameters `weightParams` (per tensor or per output
// channel, as quantizeLayerWeights makes them).
// `inputs` is the layer's data input over some images (N x C x H x W for a Conv, N x K or
// N x ... x K for a Gemm/MatMul): ideally as the quantized model before it computes it.
// `targets` is the float model's output of the layer node for the same images, before any fused
// activation. qe::Error naming the layer when the operator, the scheme, the shapes or the
// options do not fit; qe::Cancelled when cancelled.
AdaRoundResult adaRound(const Graph& graph, const QuantLayer& layer, const QuantParams& weightParams, const Tensor& inputs,
                        const Tensor& targets, const AdaRoundOptions& options = {});

}  // namespace qe
