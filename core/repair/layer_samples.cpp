#include "repair/layer_samples.h"

#include "common/error.h"
#include "engine/executor.h"
#include "repair/channel_statistics.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <set>

namespace qe {
namespace {

// Batches stacked along axis 0 (every batch has the same shape after axis 0).
Tensor stack(const std::vector<Tensor>& batches)
{
    Shape shape = batches.front().shape();
    shape[0] = 0;
    for (const Tensor& b : batches)
        shape[0] += b.dim(0);
    Tensor all = Tensor::uninitialized(batches.front().dtype(), shape);
    std::byte* out = all.mutableRawData();
    for (const Tensor& b : batches) {
        std::memcpy(out, b.rawData(), b.byteSize());
        out += b.byteSize();
    }
    return all;
}

}  // namespace

std::map<std::string, LayerSamples> collectLayerSamples(const Graph& floatGraph, const std::vector<QuantLayer>& layers,
                                                        const Dataset& images, const Preprocess& preprocess,
                                                        std::size_t first, std::size_t count, const QuantPlan* quantized,
                                                        const RepairProgress& progress)
{
    if (count == 0 || first + count > images.size())
        throw Error("layer samples: images " + std::to_string(first) + " to " + std::to_string(first + count) + " of " +
                    images.description() + " (" + std::to_string(images.size()) + " images) do not exist");
    const std::string& feed = floatGraph.inputs.at(0).name;
    std::set<std::string> floatCapture;
    RunOptions inputRun;
    inputRun.cancel = progress.cancel;
    for (const QuantLayer& layer : layers) {
        if (layer.nodeIndex < 0 || layer.weight.empty())
            throw Error("layer samples: layer '" + layer.name + "' has no weights");
        const Node& node = floatGraph.nodes.at(static_cast<std::size_t>(layer.nodeIndex));
        if (quantized)
            inputRun.capture.insert(node.inputs.at(0));
        else
            floatCapture.insert(node.inputs.at(0));
        floatCapture.insert(node.outputs.at(0));
    }
    std::optional<Executor> quantizedModel;
    if (quantized)
        quantizedModel.emplace(quantized->graph);

    std::map<std::string, std::vector<Tensor>> inputBatches, outputBatches;
    const RepairImages range{.dataset = &images, .preprocess = &preprocess, .images = count, .first = first};
    forEachCalibrationBatch(floatGraph, floatCapture, range, progress, "layer samples",
                            [&](const Tensor& batch, const TensorMap& floatRun) {
                                // Without a plan, the float run captured the inputs too.
                                const TensorMap inputsRun =
                                    quantized ? runSimulated(*quantized, *quantizedModel, {{feed, batch}}, inputRun) : floatRun;
                                for (const QuantLayer& layer : layers) {
                                    const Node& node = floatGraph.nodes.at(static_cast<std::size_t>(layer.nodeIndex));
                                    inputBatches[layer.name].push_back(inputsRun.at(node.inputs.at(0)));
                                    outputBatches[layer.name].push_back(floatRun.at(node.outputs.at(0)));
                                }
                            });
    std::map<std::string, LayerSamples> samples;
    for (const QuantLayer& layer : layers)
        samples[layer.name] = {stack(inputBatches[layer.name]), stack(outputBatches[layer.name])};
    return samples;
}

}  // namespace qe
