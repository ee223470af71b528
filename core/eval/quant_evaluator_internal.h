#pragma once
// What quant_evaluator.cpp (the evaluation) and quant_evaluator_cache.cpp (the caches and the
// float reference run) both use. Internal to QuantEvaluator: not part of core's interface.

#include "eval/accuracy.h"
#include "eval/quant_evaluator.h"
#include "tensor/tensor.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

namespace qe::evaluator_detail {

// Counts one batch's top-1 into `running`, its rows being images first, first + 1, ... whose
// labels `label` gives (-1: unlabelled, not counted).
inline void countTop1(const Tensor& output, std::size_t first, const std::function<int(std::size_t)>& label, RunningTop1& running)
{
    const std::int64_t rows = output.rank() >= 1 ? output.dim(0) : 0;
    if (rows == 0)
        return;
    const int classes = int(output.size() / rows);
    TopKTally tally;
    for (std::int64_t r = 0; r < rows; ++r)
        tally.add(output.data<float>() + r * classes, classes, label(first + std::size_t(r)));
    running.correct += tally.top1Correct;
    running.scored += tally.labelled;
}

// How many of `labels` count towards top-1 (-1 marks an unlabelled image).
inline std::size_t labelledCount(const std::vector<int>& labels)
{
    return std::size_t(std::count_if(labels.begin(), labels.end(), [](int label) { return label >= 0; }));
}

// One batch done: its top-1 counted into `running` and reported with the images done so far, as
// `stage`, under one lock for every batch in flight.
inline void reportBatch(const EvaluationProgress& progress, const char* stage, const Tensor& output, std::size_t first,
                        const std::function<int(std::size_t)>& label, RunningTop1& running, std::size_t done, std::size_t total)
{
#pragma omp critical(qe_evaluator_progress)
    {
        if (progress.top1 && running.total > 0) {
            countTop1(output, first, label, running);
            progress.top1(stage, running);
        }
        if (progress.report)
            progress.report(stage, done, total);
    }
}

constexpr std::size_t kBatchSize = 32;
// A batch whose float activations take more than this is measured alone when it is not cached
// (ResNet-18 at 224 x 224 takes about 450 MB per batch of 32; the demo model 10 MB).
constexpr std::uint64_t kLargeBatchBytes = std::uint64_t(256) << 20;

// Puts `tensors` into `cache` outside the heap (Tensor::copyIntoOwnMapping): written over the
// cached tensor of the same name where it has the same type and shape and nothing else holds it
// (an edit's new values in the old memory: fresh pages would be zeroed by the kernel on every
// edit), else copied into a mapping of their own, names that shared storage still sharing it.
void keepOutsideHeap(const TensorMap& tensors, TensorMap& cache);

}  // namespace qe::evaluator_detail
