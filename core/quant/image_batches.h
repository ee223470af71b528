#pragma once
// The one loop over a data set's images in batches, shared by calibration, the repairs'
// statistics, the accuracy evaluation and the int8 engine's comparison with the simulation: the
// batch size the model allows (one image at a time when its graph pins the batch to 1, as
// mnist-8's Reshape does), cancellation before each batch, and preprocessing into the model's
// input geometry.

#include "data/dataset.h"
#include "data/preprocess.h"
#include "model/graph.h"
#include "tensor/tensor.h"

#include <atomic>
#include <cstddef>
#include <functional>

namespace qe {

// `requested` images per batch, or 1 when the model's input allows no other batch.
std::size_t modelBatchSize(const ImageInputGeometry& geometry, std::size_t requested);

// Images [first, first + count) of `dataset` (count clipped to what it has), `batchSize` (as
// modelBatchSize allows) at a time, each batch preprocessed for `graph`'s image input;
// visit(offset, batch) gets the batch's first image relative to `first`. Throws qe::Cancelled
// when `cancel` is set before a batch.
void forEachImageBatch(const Graph& graph, const Dataset& dataset, const Preprocess& preprocess, std::size_t first,
                       std::size_t count, std::size_t batchSize, const std::atomic<bool>* cancel,
                       const std::function<void(std::size_t offset, const Tensor& batch)>& visit);

}  // namespace qe
