#include "cli/common.h"

#include "common/memory.h"

#include "common/error.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <memory>
#include <sstream>
#include <unistd.h>

namespace qe::cli {

namespace {

const std::set<std::string> kPreprocessFlags = {"--color", "--scale", "--mean", "--std", "--resize-shorter", "--crop-fraction"};

// The preprocessing flags, applied over the model's sidecar (or its defaults).
void applyPreprocessFlags(const Options& options, Preprocess& p)
{
    if (auto color = options.value("--color")) {
        if (*color == "rgb")
            p.color = ColorOrder::Rgb;
        else if (*color == "bgr")
            p.color = ColorOrder::Bgr;
        else if (*color == "gray")
            p.color = ColorOrder::Gray;
        else
            throw Error("option --color expects rgb, bgr or gray, got '" + *color + "'");
    }
    if (auto s = options.number("--scale"))
        p.scale = *s;
    if (auto m = options.floatList("--mean"))
        p.mean = *m;
    if (auto s = options.floatList("--std")) {
        for (float v : *s)
            if (v == 0.f)
                throw Error("option --std: a standard deviation of 0 is not allowed");
        p.stdDev = *s;
    }
    if (auto r = options.integer("--resize-shorter"))
        p.resizeShorter = static_cast<int>(*r);
    if (auto f = options.number("--crop-fraction")) {
        if (*f <= 0 || *f > 1)
            throw Error("option --crop-fraction expects a value in (0, 1], got " + std::to_string(*f));
        p.cropFraction = *f;
    }
}

}  // namespace

bool printedHelp(const std::vector<std::string>& args, const char* usage)
{
    for (const std::string& a : args)
        if (a == "--help" || a == "-h") {
            std::cout << usage;
            return true;
        }
    return false;
}

std::set<std::string> withPreprocessFlags(std::set<std::string> flags)
{
    flags.insert(kPreprocessFlags.begin(), kPreprocessFlags.end());
    return flags;
}

StudySources studySources(const Options& options, bool dataRequired, std::size_t evaluationImages, bool modelRequired)
{
    StudySources s;
    if (modelRequired)
        s.model = options.required("--model");
    if (dataRequired)
        s.data = options.required("--data");
    else if (auto d = options.value("--data"))
        s.data = *d;
    if (auto l = options.value("--labels"))
        s.labels = *l;
    s.labelColumn = options.value("--label-column").value_or("");
    if (auto c = options.value("--calib-data"))
        s.calibrationData = *c;
    if (auto n = options.integer("--calib-count"))
        s.calibrationImages = static_cast<std::size_t>(std::max<long long>(0, *n));
    s.evaluationImages = evaluationImages;
    s.cacheBudget = memoryBudget(options);
    s.adjustPreprocess = [options](Preprocess& p) { applyPreprocessFlags(options, p); };
    s.warn = [](const std::string& message) { std::cerr << "warning: " << message << "\n"; };
    return s;
}

std::optional<std::uint64_t> memoryBudget(const Options& options)
{
    const auto text = options.value("--memory-budget");
    if (!text)
        return std::nullopt;
    return byteSizeOption("--memory-budget", *text);
}

bool wantsIntegerEngine(const Options& options)
{
    const std::string engine = options.value("--engine").value_or("simulate");
    if (engine != "simulate" && engine != "int8")
        throw Error("--engine: expected 'simulate' or 'int8', got '" + engine + "'");
    return engine == "int8";
}

EvaluationProgress stderrProgress()
{
    if (!isatty(STDERR_FILENO))
        return {};
    struct State {
        std::string stage;
        std::chrono::steady_clock::time_point start;
        std::string top1Stage;  // the stage whose images `top1` counts
        RunningTop1 top1;
    };
    auto state = std::make_shared<State>();
    EvaluationProgress progress;
    progress.top1 = [state](const std::string& stage, const RunningTop1& top1) {
        state->top1Stage = stage;
        state->top1 = top1;
    };
    progress.report = [state](const std::string& stage, std::size_t done, std::size_t total) {
        const auto now = std::chrono::steady_clock::now();
        if (stage != state->stage) {
            state->stage = stage;
            state->start = now;
        }
        const double fraction = total ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
        const double elapsed = std::chrono::duration<double>(now - state->start).count();
        const int width = 30, filled = static_cast<int>(fraction * width);
        std::string bar = "[" + std::string(static_cast<std::size_t>(filled), '#') + std::string(static_cast<std::size_t>(width - filled), '.') + "]";
        std::cerr << "\r" << stage << " " << bar << " " << static_cast<int>(100 * fraction) << "% " << done << "/" << total;
        if (done > 0 && done < total && state->top1Stage == stage && state->top1.scored > 0 && state->top1.scored < state->top1.total) {
            const Interval interval = runningTop1Interval(state->top1);
            char text[96];
            std::snprintf(text, sizeof text, " top-1 %.1f%% (95%%: %.1f-%.1f%%)", 100 * state->top1.value(), 100 * interval.low,
                          100 * interval.high);
            std::cerr << text;
        }
        if (done > 0 && done < total)
            std::cerr << " ETA " << static_cast<int>(std::ceil(elapsed / fraction - elapsed)) << " s   ";
        else
            std::cerr << "          ";
        std::cerr << (done >= total ? "\n" : "") << std::flush;
    };
    return progress;
}

nlohmann::json finite(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

nlohmann::json errorJson(const ErrorStats& e)
{
    return {{"sqnr_db", finite(e.sqnrDb)}, {"mse", e.mse}, {"cosine", e.cosine}, {"max_abs_error", e.maxAbsError}};
}

std::optional<std::vector<int>> bitWidths(const Options& options, const std::string& flag)
{
    const std::optional<std::vector<float>> values = options.floatList(flag);
    if (!values)
        return std::nullopt;
    std::vector<int> widths;
    for (float v : *values) {
        if (v != std::floor(v) || v < 1 || v > 32)
            throw Error("option " + flag + " expects bit widths like 2,4,8; '" + *options.value(flag) + "' has " +
                        std::to_string(v));
        widths.push_back(static_cast<int>(v));
    }
    return widths;
}

std::vector<std::string> layerList(const Study& study, const std::string& flag, const std::string& value)
{
    std::vector<std::string> layers;
    std::stringstream stream(value);
    std::string name;
    while (std::getline(stream, name, ',')) {
        bool known = false;
        std::string all;
        for (const QuantLayer& layer : study.layers()) {
            known = known || layer.name == name;
            all += (all.empty() ? "" : ", ") + layer.name;
        }
        if (!known)
            throw Error("option " + flag + ": the model has no layer '" + name + "' (its layers: " + all + ")");
        layers.push_back(name);
    }
    return layers;
}

const char* const kRepairUsage = R"(
repairs of the float model before quantization (see README, "Repairs"), over any configuration:
  --equalization        cross-layer equalization with high-bias absorption (Nagel et al. 2019);
                        pairs with a ReLU6 between them are skipped (it cannot be rescaled per channel)
  --relu6-as-relu       equalize through ReLU6 by making it a ReLU, as the paper does for MobileNets
                        (changes the float model; the float reference stays the original)
  --bias-correction [M] correct the mean shift weight quantization causes, per output channel:
                        empirical (default: measured on the calibration images) or analytical
                        (from folded batch normalization statistics)
  --adaround            learn each weight's rounding (up or down) layer by layer on the calibration
                        images, against the float model's outputs (Nagel et al. 2020); last
  --adaround-iterations N  Adam steps per layer (default 10000)
  --adaround-images M   calibration images each layer learns on (default 256)
  --smoothquant         SmoothQuant (Xiao et al. 2023): divide each LayerNorm's output channels by
                        s_j and multiply the rows of the MatMul/Gemm weights reading it by s_j, with
                        s_j = max|x_j|^alpha / max|w_j|^(1-alpha) measured on the calibration images
  --smoothquant-alpha A the share of the activation range moved into the weights (default 0.5)
)";

Options optionsWithRepairs(const std::vector<std::string>& args, std::set<std::string> valued, std::set<std::string> switches)
{
    valued.insert({"--bias-correction", "--adaround-iterations", "--adaround-images", "--smoothquant-alpha"});
    switches.insert({"--equalization", "--relu6-as-relu", "--adaround", "--smoothquant"});
    return Options(args, valued, switches, {{"--bias-correction", "empirical"}});
}

QuantConfig withRepairFlags(QuantConfig config, const Options& options)
{
    if (options.has("--equalization"))
        config.repairs.equalization = true;
    if (options.has("--relu6-as-relu"))
        config.repairs.relu6AsRelu = true;
    if (auto mode = options.value("--bias-correction")) {
        const auto parsed = biasCorrectionFromName(*mode);
        if (!parsed)
            throw Error("option --bias-correction expects empirical, analytical or none, got '" + *mode + "'");
        config.repairs.biasCorrection = *parsed;
    }
    if (options.has("--adaround"))
        config.repairs.adaRound.enabled = true;
    const auto positive = [&](const std::string& flag) -> std::optional<int> {
        const std::optional<long long> n = options.integer(flag);
        if (n && (*n < 1 || *n > std::numeric_limits<int>::max()))
            throw Error("option " + flag + " expects an integer >= 1, got " + *options.value(flag));
        return n ? std::optional(int(*n)) : std::nullopt;
    };
    if (auto n = positive("--adaround-iterations"))
        config.repairs.adaRound.iterations = *n;
    if (auto n = positive("--adaround-images"))
        config.repairs.adaRound.images = *n;
    if (options.has("--smoothquant"))
        config.repairs.smoothQuant = true;
    if (auto alpha = options.value("--smoothquant-alpha")) {
        char* end = nullptr;
        const double a = std::strtod(alpha->c_str(), &end);
        if (alpha->empty() || *end != '\0' || !(a >= 0 && a <= 1))
            throw Error("option --smoothquant-alpha expects a number from 0 to 1, got '" + *alpha + "'");
        config.repairs.smoothQuantAlpha = float(a);
    }
    return config;
}

nlohmann::json repairsJson(const RepairReport* report)
{
    using nlohmann::json;
    if (!report)
        return nullptr;
    json layers = json::object();
    json pairs = json::array();
    for (const EqualizedPair& p : report->equalized) {
        pairs.push_back({{"first", p.first}, {"second", p.second}, {"between", p.between},
                         {"relu6_made_relu", p.clipBecameRelu}, {"scales", p.scales},
                         {"first_ranges_before", p.firstRangesBefore}, {"first_ranges_after", p.firstRangesAfter},
                         {"second_ranges_before", p.secondRangesBefore}, {"second_ranges_after", p.secondRangesAfter},
                         {"absorbed_bias", p.absorbed}, {"absorption", p.absorptionStatistics}});
        for (const std::string& layer : {p.first, p.second})
            if (!layers.contains(layer) || layers[layer].back() != "equalization")
                layers[layer].push_back("equalization");
    }
    json corrected = json::array();
    for (const BiasCorrectionReport& b : report->biasCorrected) {
        corrected.push_back({{"layer", b.layer}, {"mode", std::string(biasCorrectionName(b.mode))},
                             {"statistics", b.statistics}, {"shift", b.shift}});
        layers[b.layer].push_back("bias_correction");
    }
    json rounded = json::array();
    for (const AdaRoundReport& a : report->adaRounded) {
        rounded.push_back({{"layer", a.layer}, {"iterations", a.iterations}, {"images", a.images},
                           {"flipped_fraction", a.flippedFraction}, {"flipped_per_channel", a.flippedPerChannel},
                           {"nearest_error", a.nearestError}, {"adaround_error", a.adaRoundError}});
        layers[a.layer].push_back("adaround");
    }
    json smoothed = json::array();
    for (const SmoothedGroup& g : report->smoothed) {
        smoothed.push_back({{"layer_norm", g.layerNorm}, {"consumers", g.consumers}, {"alpha", g.alpha}, {"images", g.images},
                            {"activation_max", g.activationMax}, {"weight_max", g.weightMax}, {"scales", g.scales}});
        layers[g.layerNorm].push_back("smoothquant");
        for (const std::string& c : g.consumers)
            layers[c].push_back("smoothquant");
    }
    json skipped = json::array();
    for (const SkippedRepair& s : report->skipped)
        skipped.push_back({{"layers", s.layers}, {"reason", s.reason}});
    return {{"layers", layers}, {"smoothquant", smoothed}, {"equalization", pairs}, {"equalization_sweeps", report->equalizationSweeps},
            {"bias_correction", corrected}, {"adaround", rounded}, {"skipped", skipped}};
}

}  // namespace qe::cli
