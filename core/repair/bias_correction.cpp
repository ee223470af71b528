#include "repair/bias_correction.h"

#include "common/error.h"
#include "engine/operator.h"
#include "model/operator_traits.h"
#include "repair/equalization.h"
#include "repair/weight_channels.h"

#include <cmath>
#include <limits>

namespace qe {

std::map<std::string, std::vector<double>> measureQuantizationShift(const Graph& graph, const std::vector<QuantLayer>& layers,
                                                                    const std::map<std::string, Tensor>& quantizedWeights,
                                                                    const RepairImages& images, const RepairProgress& progress)
{
    std::set<std::string> capture;
    for (const QuantLayer& layer : layers)
        capture.insert(graph.nodes.at(std::size_t(layer.nodeIndex)).input(0));
    struct Sums {
        std::vector<double> sum, unused;
        std::size_t count = 0;
    };
    std::map<std::string, Sums> sums;
    forEachCalibrationBatch(graph, capture, images, progress, "bias correction", [&](const Tensor&, const TensorMap& run) {
        for (const QuantLayer& layer : layers) {
            const Node& node = graph.nodes.at(std::size_t(layer.nodeIndex));
            std::vector<const Tensor*> inputs;
            for (const std::string& name : node.inputs)
                inputs.push_back(name.empty() ? nullptr : graph.isInitializer(name) ? &graph.initializers.at(name) : &run.at(name));
            const Tensor exact = runNode(node, graph.opsetVersion, inputs).at(0);
            inputs.at(std::size_t(operatorTraits(node.name, node.opType).weightInput)) = &quantizedWeights.at(layer.name);
            Tensor difference = runNode(node, graph.opsetVersion, inputs).at(0).clone();
            float* d = difference.mutableData<float>();
            for (std::int64_t k = 0; k < difference.size(); ++k)
                d[k] -= exact.data<float>()[k];
            Sums& s = sums[layer.name];
            accumulateChannelMoments(difference, activationChannelAxis(difference, layer.opType == "Conv"), s.sum, s.unused, s.count);
        }
    });
    std::map<std::string, std::vector<double>> shift;
    for (auto& [name, s] : sums) {
        for (double& v : s.sum)
            v /= double(std::max<std::size_t>(1, s.count));
        shift[name] = std::move(s.sum);
    }
    return shift;
}

std::vector<double> analyticalQuantizationShift(const Graph& graph, const QuantLayer& layer, const Tensor& quantizedWeights,
                                                const std::vector<double>& expectedInput)
{
    const Tensor& weights = graph.initializers.at(layer.weight);
    Tensor error = quantizedWeights.clone();
    float* e = error.mutableData<float>();
    for (std::int64_t k = 0; k < error.size(); ++k)
        e[k] -= weights.data<float>()[k];
    return responseToConstantInput(error, weightChannels(graph, layer), expectedInput);
}

std::vector<double> expectedActivation(const Graph& graph, const QuantLayer& producer, const ChannelStatistics& preActivation)
{
    double lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
    if (!producer.fusedActivation.empty()) {
        // The activation's bounds, by running it on the extremes: Relu gives [0, +huge], Relu6 [0, 6].
        const Node& node = graph.nodes.at(std::size_t(producer.outputNodeIndex));
        const Tensor extremes = Tensor::fromValues<float>({2}, std::vector<float>{-1e30f, 1e30f});
        std::vector<const Tensor*> inputs{&extremes};
        for (std::size_t k = 1; k < node.inputs.size(); ++k) {
            if (!node.inputs[k].empty() && !graph.isInitializer(node.inputs[k]))
                throw Error("layer '" + producer.name + "': the bounds of its " + node.opType + " are computed, not constants");
            inputs.push_back(node.inputs[k].empty() ? nullptr : &graph.initializers.at(node.inputs[k]));
        }
        const Tensor bounds = runNode(node, graph.opsetVersion, inputs).at(0);
        if (bounds.data<float>()[0] > -1e29f)
            lo = bounds.data<float>()[0];
        if (bounds.data<float>()[1] < 1e29f)
            hi = bounds.data<float>()[1];
    }
    std::vector<double> expected;
    for (std::size_t c = 0; c < preActivation.mean.size(); ++c)
        expected.push_back(clippedNormalMean(preActivation.mean[c], preActivation.stddev[c], lo, hi));
    return expected;
}

void subtractFromBias(Graph& graph, const QuantLayer& layer, const std::vector<double>& shift)
{
    Tensor& bias = graph.initializers.at(ownBias(graph, layer, std::int64_t(shift.size())));
    float* b = bias.mutableData<float>();
    for (std::size_t o = 0; o < shift.size(); ++o)
        b[o] -= float(shift[o]);
}

}  // namespace qe
