// quantexplorer-cli sensitivity: what each layer's quantization costs on its own, at each width,
// and what leaving it alone in float gives back.

#include "cli/common.h"

#include "common/error.h"
#include "study/sensitivity.h"

#include <iomanip>
#include <iostream>

namespace qe::cli {

namespace {

using nlohmann::json;

constexpr const char* kSensitivityUsage = R"(usage: quantexplorer-cli sensitivity --model M.onnx --data PATH --config BASE.json [options]

For each quantizable layer: the model's top-1 and output SQNR when only that layer is quantized,
at each weight and activation width (in the layer's scheme from BASE.json), and the top-1 when
every layer but that one is quantized as BASE.json says.

  --config C.json         the base configuration ("model": a QDQ model's own)
  --weight-bits LIST      weight widths to try (default 2,3,4,6,8)
  --activation-bits LIST  activation widths to try (default 4,6,8)
  --layers LIST           only these layers (default: all)
  --limit N               evaluate only the first N images of --data
  --memory-budget SIZE    the most the evaluation may hold, caches included (512M, 3G; default a
                          quarter of the machine's memory): the less, the more layers each step runs again
  --calib-data PATH       calibration images (default: the training split beside --data)
  --calib-count N         calibration images to use (default: the configuration's "images")
  --labels PATH, --label-column NAME, and the preprocessing flags of 'eval'
  --json                  one JSON object: float_top1, base_top1 and layers, each with name,
                          only_this (weight_bits, activation_bits, top1, output_sqnr_db) and
                          all_but_this_top1
)";

}  // namespace

int runSensitivity(const std::vector<std::string>& args)
{
    if (printedHelp(args, (std::string(kSensitivityUsage) + kRepairUsage).c_str()))
        return 0;
    const Options options = optionsWithRepairs(args,
                          withPreprocessFlags({"--model", "--data", "--labels", "--label-column", "--limit", "--memory-budget", "--config",
                                               "--calib-data", "--calib-count", "--weight-bits", "--activation-bits", "--layers"}),
                          {"--json"});
    const std::size_t limit = static_cast<std::size_t>(options.integer("--limit").value_or(0));
    SensitivityOptions sensitivity;
    sensitivity.weightBits = bitWidths(options, "--weight-bits").value_or(sensitivity.weightBits);
    sensitivity.activationBits = bitWidths(options, "--activation-bits").value_or(sensitivity.activationBits);
    Study study(studySources(options, true, limit));
    if (!study.dataset()->hasLabels())
        throw Error(study.dataset()->description() + ": has no labels; give them with --labels");
    const QuantConfig base = withRepairFlags(study.loadConfig(options.required("--config")), options);
    if (auto layers = options.value("--layers"))
        sensitivity.layers = layerList(study, "--layers", *layers);
    const SensitivityResult result = measureSensitivity(study, base, sensitivity, stderrProgress());

    if (options.has("--json")) {
        json layers = json::array();
        for (const LayerSensitivity& l : result.layers) {
            json points = json::array();
            for (const SensitivityPoint& p : l.onlyThis)
                points.push_back({{"weight_bits", p.weightBits ? json(p.weightBits) : json(nullptr)},
                                  {"activation_bits", p.activationBits},
                                  {"top1", p.top1},
                                  {"output_sqnr_db", finite(p.outputSqnrDb)},
                                  {"layer_bytes", p.layerBytes},
                                  {"layer_bit_operations", p.layerBitOperations}});
            layers.push_back({{"name", l.layer}, {"only_this", points}, {"all_but_this_top1", finite(l.allButThisTop1)}});
        }
        const json out{{"float_top1", result.floatTop1}, {"base_top1", result.baseTop1}, {"layers", layers},
                       {"count", study.evaluationImages()}, {"model", study.sources().model.string()},
                       {"data", study.dataset()->description()}, {"config", options.required("--config")},
                       {"warnings", study.dataWarnings()}};
        std::cout << out.dump() << "\n";
        return 0;
    }
    std::cout << std::fixed << std::setprecision(2) << "top-1: float " << 100 * result.floatTop1 << "%, base "
              << 100 * result.baseTop1 << "% (" << study.evaluationImages() << " images)\n"
              << "each layer: top-1 with every layer but it quantized, then the points of top-1 lost against\n"
              << "float with only it quantized, at each setting (wN: weight bits, aN: activation bits)\n\n";
    for (const LayerSensitivity& l : result.layers) {
        std::cout << std::left << std::setw(28) << l.layer << std::right << std::setw(7) << 100 * l.allButThisTop1 << "%  ";
        for (const SensitivityPoint& p : l.onlyThis)
            std::cout << "  " << describePrecision({p.weightBits, p.activationBits, false}) << " " << 100 * (result.floatTop1 - p.top1);
        std::cout << "\n";
    }
    return 0;
}

}  // namespace qe::cli
