#include "quant/image_batches.h"

#include "engine/executor.h"

#include <algorithm>

namespace qe {

std::size_t modelBatchSize(const ImageInputGeometry& geometry, std::size_t requested)
{
    return geometry.fixedBatchOfOne ? 1 : std::max<std::size_t>(1, requested);
}

void forEachImageBatch(const Graph& graph, const Dataset& dataset, const Preprocess& preprocess, std::size_t first,
                       std::size_t count, std::size_t batchSize, const std::atomic<bool>* cancel,
                       const std::function<void(std::size_t offset, const Tensor& batch)>& visit)
{
    const ImageInputGeometry g = imageInputGeometry(graph);
    const std::size_t total = first < dataset.size() ? std::min(count, dataset.size() - first) : 0;
    const std::size_t step = modelBatchSize(g, batchSize);
    for (std::size_t offset = 0; offset < total; offset += step) {
        if (cancel && cancel->load())
            throw Cancelled();
        const std::size_t n = std::min(step, total - offset);
        visit(offset, makeBatch(dataset, first + offset, n, preprocess, g.channels, g.height, g.width));
    }
}

}  // namespace qe
