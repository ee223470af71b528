// quantexplorer-cli trace: one output value of an integer layer, step by step as the int8 engine
// computes it (lesson 10; the window's Integer arithmetic view shows the same trace).

#include "cli/common.h"

#include "common/error.h"

#include <algorithm>
#include <iostream>

namespace qe::cli {

namespace {

using nlohmann::json;

constexpr const char* kTraceUsage = R"(usage: quantexplorer-cli trace --model M.onnx --data PATH --layer NAME [options]

  --layer NAME          a Conv, Gemm or MatMul layer that runs in integers under the configuration
  --config C.json       the configuration (default: W8A8, the defaults of a configuration file)
  --image N             the evaluation image (default 0)
  --position A,B,...    the output element's coordinates, batch first (default: all 0), e.g. 0,5,7,7
  --calib-data PATH     calibration images (default: the training split beside --data)
  --calib-count N       calibration images (default: the configuration's "images")
  --json                one JSON object: every step's number and every product
  (and the preprocessing flags of 'eval')
)";

}  // namespace

int runTrace(const std::vector<std::string>& args)
{
    if (printedHelp(args, kTraceUsage))
        return 0;
    const Options options(args,
                          withPreprocessFlags({"--model", "--data", "--labels", "--label-column", "--calib-data", "--calib-count",
                                               "--config", "--layer", "--image", "--position"}),
                          {"--json"});
    const std::size_t image = static_cast<std::size_t>(options.integer("--image").value_or(0));
    std::vector<std::int64_t> position;
    if (const auto list = options.integerList("--position"))
        position.assign(list->begin(), list->end());
    Study study(studySources(options, true, image + 1));
    const QuantConfig config = options.has("--config") ? study.loadConfig(options.required("--config")) : QuantConfig{};
    const IntegerTrace t = study.traceIntegerOutput(config, options.required("--layer"), image, position, stderrProgress());

    if (options.has("--json")) {
        json terms = json::array();
        for (const IntegerTraceTerm& term : t.terms)
            terms.push_back({{"input", term.input}, {"padding", term.padding}, {"x", term.inputCode}, {"w", term.weightCode},
                             {"product", term.product}});
        std::cout << json{{"layer", t.layer}, {"op", t.opType}, {"image", image}, {"position", t.position},
                          {"output_shape", t.outputShape}, {"input_scale", t.inputScale}, {"input_zero_point", t.inputZeroPoint},
                          {"weight_scale", t.weightScale}, {"weight_zero_point", t.weightZeroPoint},
                          {"output_scale", t.outputScale}, {"output_zero_point", t.outputZeroPoint}, {"terms", terms},
                          {"accumulator", t.accumulator}, {"bias", t.bias}, {"bias_code", t.biasCode}, {"biased", t.biased},
                          {"real_multiplier", t.realMultiplier}, {"multiplier", t.multiplier}, {"right_shift", t.rightShift},
                          {"product", t.product}, {"tie", t.tie}, {"exact", t.exactRescaled}, {"rounded", t.rounded},
                          {"with_zero_point", t.withZeroPoint}, {"code_min", t.codeMin}, {"code_max", t.codeMax},
                          {"clamped", t.clamped}, {"code", t.code}, {"engine_code", t.engineCode}, {"dequantized", t.dequantized}}
                         .dump()
                  << "\n";
        return 0;
    }
    std::cout << t.layer << " (" << t.opType << "), output element [";
    for (std::size_t i = 0; i < t.position.size(); ++i)
        std::cout << (i ? "," : "") << t.position[i];
    std::cout << "] on image " << image << ":\n";
    const std::vector<IntegerTraceStep> steps = integerTraceSteps(t);
    std::size_t width = 0;
    for (const IntegerTraceStep& step : steps)
        width = std::max(width, step.what.size());
    for (const IntegerTraceStep& step : steps) {
        std::cout << "  " << step.what << std::string(width + 2 - step.what.size(), ' ') << step.value;
        if (step.engine)
            std::cout << (t.engineCode == t.code ? " (the same)" : " (DIFFERENT)");
        std::cout << "\n";
    }
    return 0;
}

}  // namespace qe::cli
