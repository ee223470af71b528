// quantexplorer-cli histogram: one tensor's histogram with its quantization levels, clipping
// range and the range every calibration method would choose.

#include "cli/common.h"

#include "common/error.h"

#include <climits>
#include <iostream>
#include <optional>

namespace qe::cli {

namespace {

using nlohmann::json;

constexpr const char* kHistogramUsage = R"(usage: quantexplorer-cli histogram --model M.onnx --config C.json --tensor NAME [options]

  --tensor NAME         a layer name (its output activation), a weight initializer name, or any
                        other float tensor of the graph (shown without levels)
  --data PATH           images for activation histograms (not needed for weights)
  --calib-data PATH     calibration images (default: the training split beside --data)
  --calib-count N       calibration images (default: the configuration's "images")
  --limit N             images to histogram activations over (default 1000)
  --bins N              histogram bins (default 128)
  --channel N           weights only: output channel N alone, with that channel's levels and
                        clipping range (per-channel quantization gives each its own); default:
                        the whole tensor (per-channel weights then list no levels)
  --channels            activations only: each channel's range over the images (axis 1 of an NCHW
                        tensor, else the last: a transformer's hidden channels) and the share of
                        its values one per-tensor range rounds to 0; which channels are outliers
  --json                one JSON object: counts, range, levels, clip range, calibration ranges
  (and the preprocessing flags of 'eval')
)";

}  // namespace

int runHistogram(const std::vector<std::string>& args)
{
    if (printedHelp(args, (std::string(kHistogramUsage) + kRepairUsage).c_str()))
        return 0;
    const Options options = optionsWithRepairs(args,
                          withPreprocessFlags({"--model", "--config", "--tensor", "--data", "--labels", "--label-column",
                                               "--calib-data", "--calib-count", "--limit", "--bins", "--channel"}),
                          {"--json", "--channels"});
    const std::size_t images = static_cast<std::size_t>(options.integer("--limit").value_or(1000));
    Study study(studySources(options, false, images));
    const QuantConfig config = withRepairFlags(study.loadConfig(options.required("--config")), options);
    const std::optional<long long> channel = options.integer("--channel");  // the parser refuses negative numbers
    const TensorHistogram h = study.histogram(config, options.required("--tensor"),
                                              static_cast<int>(options.integer("--bins").value_or(128)), stderrProgress(),
                                              channel ? static_cast<int>(std::min<long long>(*channel, INT_MAX)) : -1);

    json out{{"tensor", h.tensor}, {"layer", h.layer}, {"kind", h.isWeight ? "weight" : "activation"},
             {"min", h.min}, {"max", h.max},
             {"low", h.histogram.low}, {"high", h.histogram.high}, {"counts", h.histogram.counts},
             {"levels", h.levels}, {"clipped_fraction", h.clippedFraction}};
    if (h.isWeight) {
        out["channel"] = h.channel >= 0 ? json(h.channel) : json(nullptr);  // null: the whole tensor
        out["channel_count"] = h.channelCount;
    }
    out["clip_range"] = h.clipRange ? json{h.clipRange->first, h.clipRange->second} : json(nullptr);
    json ranges = json::object();
    for (const auto& [method, range] : h.calibrationRanges)
        ranges[method] = {range.first, range.second};
    out["calibration_ranges"] = ranges;
    std::optional<ChannelRanges> channels;
    if (options.has("--channels")) {
        if (h.isWeight || h.layer.empty())
            throw Error("option --channels takes a layer's activations; '" + h.tensor + "' is " +
                        (h.isWeight ? "a weight tensor" : "not a layer's output"));
        channels = study.activationChannelRanges(config, h.layer, stderrProgress());
        out["channels"] = {{"min", channels->min}, {"max", channels->max}, {"images", channels->images},
                           {"per_tensor_range", {channels->perTensorRange.first, channels->perTensorRange.second}},
                           {"per_tensor_zero_fraction", channels->perTensorZeroFraction}};
    }
    if (options.has("--json")) {
        std::cout << out.dump() << "\n";
        return 0;
    }
    if (h.layer.empty())
        std::cout << h.tensor << " (not a quantization point; it keeps its producer's levels): range [";
    else
        std::cout << h.tensor << (h.channel >= 0 ? " channel " + std::to_string(h.channel) + " of " + std::to_string(h.channelCount) : "")
                  << " (" << (h.isWeight ? "weights" : "activations") << " of layer " << h.layer << "): range [";
    std::cout << h.min << ", " << h.max << "], " << h.levels.size() << " levels";
    if (h.clipRange)
        std::cout << ", clipped to [" << h.clipRange->first << ", " << h.clipRange->second << "] ("
                  << 100 * h.clippedFraction << "% clipped)";
    std::cout << "\n";
    for (const auto& [method, range] : h.calibrationRanges)
        std::cout << "  " << method << ": [" << range.first << ", " << range.second << "]\n";
    if (channels) {
        std::cout << "channels over " << channels->images << " images (range, share rounding to 0 with one per-tensor range):\n";
        for (std::size_t c = 0; c < channels->min.size(); ++c)
            std::cout << "  " << c << ": [" << channels->min[c] << ", " << channels->max[c] << "], "
                      << 100 * channels->perTensorZeroFraction[c] << "%\n";
    }
    return 0;
}

}  // namespace qe::cli
