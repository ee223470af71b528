// quantexplorer-cli eval: accuracy of a model on labelled images; with --config, of its
// quantization, layer by layer, and with --engine int8 of the integer-only engine too.

#include "cli/common.h"

#include "common/error.h"
#include "common/memory.h"
#include "model/operator_traits.h"

#include <iomanip>
#include <iostream>

namespace qe::cli {

namespace {

using nlohmann::json;

constexpr const char* kEvalUsage = R"(usage: quantexplorer-cli eval --model M.onnx --data PATH [options]

  --model PATH          the ONNX model (a <model>.preprocess.json beside it is used when present)
  --data PATH           idx image file (.gz or plain), CIFAR-10 .bin batch, image folder or image file
  --labels PATH         labels (idx1 file or CSV) when they are not found beside the data
  --label-column NAME   the CSV column holding the labels (default: the sidecar's "label_column", else
                        the column named for the model's output count, e.g. label_1001 for 1001
                        outputs, else "label", else the first "label*")
  --limit N             evaluate only the first N images
  --memory-budget SIZE  the most the evaluation may hold, caches included (bytes, or 512M, 3G); eval measures
                        once, so by default it caches nothing and keeps one batch per core in memory
  --batch N             images per inference batch (default 32)
  --color rgb|bgr|gray  channel order the model expects
  --scale S             multiply pixels (0..255) by S before mean/std
  --mean a[,b,c]        per-channel mean subtracted after scaling
  --std a[,b,c]         per-channel standard deviation divided after the mean
  --resize-shorter N    resize the shorter image side to N before cropping
  --crop-fraction F     central crop keeping fraction F of each side (TF-slim style), then resize
  --json                print one JSON object on stdout: {"top1", "top5", "count", ...}

quantization (see README, "Quantization"):
  --config C.json       quantize as the configuration says (fake-quantization simulation); the
                        JSON then adds float_top1, agreement, size_bytes and a "layers" array.
                        "--config model" uses a QDQ model's own scales and zero-points
  --save-config PATH    write the configuration that was used (e.g. the one read from a QDQ model)
  --engine E            simulate (default): fake quantization in the float engine; int8: also run the
                        integer-only engine (accuracy reported is then the engine's; --json adds
                        agreement_with_simulation, output_within_1_lsb and ms_per_image)
  --calib-data PATH     calibration images (default: the training split beside --data, e.g.
                        train-images-idx3-ubyte.gz beside t10k-images-idx3-ubyte.gz)
  --calib-count N       calibration images to use (default: the configuration's "images")
)";

// Without --config: the model as stored, on the evaluation images.
int evaluateStoredModel(const Options& options, Study& study)
{
    for (const char* flag : {"--calib-data", "--calib-count", "--save-config", "--equalization", "--relu6-as-relu",
                             "--bias-correction", "--adaround", "--adaround-iterations", "--adaround-images", "--smoothquant",
                             "--smoothquant-alpha"})
        if (options.has(flag))
            throw Error(std::string("option ") + flag + " needs --config");
    const std::size_t batch = static_cast<std::size_t>(std::max<long long>(1, options.integer("--batch").value_or(32)));
    const ClassificationResult result = study.evaluateStoredModel(batch, stderrProgress());
    if (options.has("--json")) {
        json out{{"top1", result.top1()}, {"top5", result.top5()}, {"count", result.count},
                 {"model", study.sources().model.string()}, {"data", study.dataset()->description()},
                 {"label_column", study.labelColumn()}, {"warnings", study.dataWarnings()},
                 {"peak_rss_bytes", peakResidentBytes()}};
        std::cout << out.dump() << "\n";
    } else {
        std::cout << std::fixed << std::setprecision(2) << "top-1: " << 100.0 * result.top1() << "%\n"
                  << "top-5: " << 100.0 * result.top5() << "%\n"
                  << "images: " << result.count << "\n"
                  << "peak memory: " << double(peakResidentBytes()) / (1 << 20) << " MiB\n";
    }
    return 0;
}

}  // namespace

int runEval(const std::vector<std::string>& args)
{
    if (printedHelp(args, (std::string(kEvalUsage) + kRepairUsage).c_str()))
        return 0;
    const Options options = optionsWithRepairs(args,
                          withPreprocessFlags({"--model", "--data", "--labels", "--label-column", "--limit", "--memory-budget", "--batch",
                                               "--config", "--calib-data", "--calib-count", "--save-config", "--engine"}),
                          {"--json"});
    const bool integerEngine = wantsIntegerEngine(options);
    if (integerEngine && !options.value("--config"))
        throw Error("--engine int8 needs --config (the quantization to run in integers)");
    const std::size_t limit = static_cast<std::size_t>(options.integer("--limit").value_or(0));
    StudySources sources = studySources(options, true, limit);
    // One evaluation: nothing is measured twice, so nothing is worth caching unless asked.
    if (!sources.cacheBudget)
        sources.cacheBudget = 0;
    Study study(std::move(sources));
    if (!study.dataset()->hasLabels())
        throw Error(study.dataset()->description() + ": has no labels; give them with --labels");
    if (!options.value("--config"))
        return evaluateStoredModel(options, study);

    const QuantConfig config = withRepairFlags(study.loadConfig(*options.value("--config")), options);
    if (auto save = options.value("--save-config"))
        config.save(*save);
    const StudyResult result = study.evaluate(config, {.integerEngine = integerEngine}, stderrProgress());
    // The accuracy reported is the integer engine's when it ran; the simulation's stays beside it.
    const ModelMetrics m = result.reportedMetrics();
    const std::optional<IntegerEvaluation>& integer = result.integer;
    const std::string modelPath = study.sources().model.string();
    const Dataset* dataset = study.dataset().get();

    if (options.has("--json")) {
        json layers = json::array();
        for (const LayerMetrics& l : m.layers) {
            json entry{{"name", l.name}, {"op", l.opType}, {"float", l.keepFloat},
                       {"accumulated", errorJson(l.accumulated)}, {"isolated", errorJson(l.isolated)},
                       {"clipped_fraction", l.clippedFraction}, {"rmse_over_scale", finite(l.rmseOverScale)},
                       {"weight_count", l.weightCount}, {"weight_bytes", l.weightBytes}};
            entry["weights"] = l.weights ? errorJson(*l.weights) : json(nullptr);
            if (integer)
                for (const LayerExecution& e : integer->layers)
                    if (e.layer == l.name) {
                        entry["integer"] = e.integer;
                        const auto traits = findOperator("", e.opType);  // graph inputs ("Input") have none
                        const bool hasGemm = traits && traits->role == OpRole::Weighted;
                        entry["kernel"] = !e.integer ? "float" : !hasGemm ? "integer" : e.kernel;
                        if (!e.integer)
                            entry["float_reason"] = e.reason;
                        const std::size_t index = static_cast<std::size_t>(&e - integer->layers.data());
                        entry["codes_equal_to_simulation"] = finite(integer->layerExactFraction[index]);
                        entry["codes_within_1_lsb_of_simulation"] = finite(integer->layerWithinOneLsbFraction[index]);
                        entry["alone_codes_equal_to_simulation"] = finite(integer->isolatedExactFraction[index]);
                        entry["alone_codes_within_1_lsb_of_simulation"] = finite(integer->isolatedWithinOneLsbFraction[index]);
                    }
            layers.push_back(entry);
        }
        json out{{"top1", m.top1}, {"top5", m.top5}, {"count", m.images}, {"float_top1", m.floatTop1},
                 {"float_top5", m.floatTop5}, {"agreement", m.agreement}, {"size_bytes", m.sizeBytes},
                 {"float_size_bytes", m.floatSizeBytes}, {"bits_per_weight", m.bitsPerWeight},
                 {"output_sqnr_db", finite(m.outputSqnrDb)}, {"model", modelPath},
                 {"data", dataset->description()}, {"label_column", study.labelColumn()}, {"warnings", study.dataWarnings()},
                 {"config", *options.value("--config")}, {"engine", integerEngine ? "int8" : "simulate"},
                 {"layers", layers}, {"repairs", repairsJson(result.repairs.get())}, {"peak_rss_bytes", peakResidentBytes()}};
        if (integer) {
            out["simulated_top1"] = integer->simulatedTop1;
            out["agreement_with_simulation"] = integer->agreementWithSimulation;
            out["agreement_with_simulation_up_to_ties"] = integer->agreementUpToTies;
            out["output_within_1_lsb"] = integer->outputWithinOneLsb;
            out["max_output_lsb_difference"] = integer->maxOutputLsbDifference;
            out["ms_per_image"] = integer->msPerImage;
            out["integer_layers"] = integer->integerLayers;
        }
        std::cout << out.dump() << "\n";
        return 0;
    }
    std::cout << std::fixed << std::setprecision(2);
    std::cout << "top-1: " << 100 * m.top1 << "% (float " << 100 * m.floatTop1 << "%)\n"
              << "top-5: " << 100 * m.top5 << "% (float " << 100 * m.floatTop5 << "%)\n"
              << "agreement with float: " << 100 * m.agreement << "%\n"
              << "output SQNR: " << m.outputSqnrDb << " dB\n"
              << "size: " << m.sizeBytes / 1024 << " KiB (float " << m.floatSizeBytes / 1024 << " KiB), "
              << m.bitsPerWeight << " bits per weight\n"
              << "images: " << m.images << "\n"
              << "peak memory: " << double(peakResidentBytes()) / (1 << 20) << " MiB\n";
    if (const RepairReport* repairs = result.repairs.get()) {
        std::cout << "repairs: " << repairs->smoothed.size() << " LayerNorms smoothed, " << repairs->equalized.size()
                  << " layer pairs equalized (" << repairs->equalizationSweeps
                  << " sweeps), " << repairs->biasCorrected.size() << " biases corrected, " << repairs->adaRounded.size()
                  << " layers AdaRounded";
        if (!repairs->skipped.empty())
            std::cout << "; not repaired: ";
        for (const SkippedRepair& skipped : repairs->skipped)
            std::cout << (&skipped == &repairs->skipped.front() ? "" : "; ") << skipped.layers << " (" << skipped.reason << ")";
        std::cout << "\n";
        for (const std::string& line : describeRepairs(*repairs))
            if (line.starts_with("SmoothQuant"))
                std::cout << "  " << line << "\n";
    }
    if (integer) {
        std::cout << "engine: int8, " << integer->integerLayers << " of " << integer->layers.size()
                  << " layers in integer arithmetic, " << std::setprecision(3) << integer->msPerImage << " ms per image\n"
                  << std::setprecision(2) << "simulation top-1: " << 100 * integer->simulatedTop1
                  << "%, agreement with the simulation: " << 100 * integer->agreementWithSimulation << "% ("
                  << 100 * integer->agreementUpToTies << "% up to tied scores), output within 1 LSB: "
                  << 100 * integer->outputWithinOneLsb << "%\n";
        const int engineColumn = columnWidth(integer->layers, [](const LayerExecution& e) { return e.layer; }, 28);
        for (std::size_t i = 0; i < integer->layers.size(); ++i) {
            const LayerExecution& e = integer->layers[i];
            std::cout << "  " << std::left << std::setw(engineColumn) << e.layer << std::right;
            if (e.integer)
                std::cout << "integer; codes equal to the simulation's: " << std::setw(6) << 100 * integer->layerExactFraction[i]
                          << "% (layer alone: " << std::setw(6) << 100 * integer->isolatedExactFraction[i] << "%), within 1 LSB: "
                          << std::setw(6) << 100 * integer->layerWithinOneLsbFraction[i] << "% (alone: " << std::setw(6)
                          << 100 * integer->isolatedWithinOneLsbFraction[i] << "%)\n";
            else
                std::cout << "float (" << e.reason << ")\n";
        }
    }
    std::cout << "\n";
    const int nameColumn = columnWidth(m.layers, [](const LayerMetrics& l) { return l.name; }, 28);
    const int opColumn = columnWidth(m.layers, [](const LayerMetrics& l) { return l.opType; }, 12);
    std::cout << std::left << std::setw(nameColumn) << "layer" << std::setw(opColumn) << "op" << std::right << std::setw(12)
              << "SQNR dB" << std::setw(12) << "isolated" << std::setw(12) << "weights" << std::setw(10) << "clipped"
              << std::setw(10) << "cosine" << "\n";
    for (const LayerMetrics& l : m.layers) {
        std::cout << std::left << std::setw(nameColumn) << l.name << std::setw(opColumn) << l.opType << std::right << std::setw(12)
                  << l.accumulated.sqnrDb << std::setw(12) << l.isolated.sqnrDb << std::setw(12)
                  << (l.weights ? std::to_string(l.weights->sqnrDb).substr(0, 6) : std::string("-")) << std::setw(9)
                  << 100 * l.clippedFraction << "%" << std::setw(10) << std::setprecision(5) << l.accumulated.cosine
                  << std::setprecision(2) << "\n";
    }
    return 0;
}

}  // namespace qe::cli
