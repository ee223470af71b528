// quantexplorer-cli compare: two quantization configurations of one model on the same labelled
// images (A/B): the differences in accuracy and size, each layer's error under both, and the
// images whose prediction differs, with which configuration is right.

#include "cli/common.h"

#include "common/error.h"
#include "eval/comparison.h"

#include <iomanip>
#include <iostream>

namespace qe::cli {

namespace {

using nlohmann::json;

constexpr const char* kCompareUsage = R"(usage: quantexplorer-cli compare --model M.onnx --data PATH --config A.json --config-b B.json [options]

  --model PATH          the ONNX model (a <model>.preprocess.json beside it is used when present)
  --data PATH           labelled images (as for eval); both configurations see the same ones
  --config A.json       configuration A ("model": a QDQ model's own quantization)
  --config-b B.json     configuration B
  --labels PATH, --label-column NAME, --limit N, --calib-data PATH, --calib-count N and the
  preprocessing flags (--color, --scale, --mean, --std, --resize-shorter, --crop-fraction): as for eval
  --json                print one JSON object: top1_a, top1_b, top1_difference, counts of the images
                        whose prediction differs (a_right_b_wrong, b_right_a_wrong, both_wrong),
                        mcnemar_p, "layers" (accumulated SQNR under A and B) and "differing"
                        (image, label, prediction_a, prediction_b, outcome)

McNemar's exact test: of the images where exactly one configuration is right, how uneven a split
could come from chance if A and B were equally good. A small p (say < 0.05): the difference in
top-1 is more than the noise of this many images.
)";

const char* outcomeKey(DifferingImage::Outcome outcome)
{
    switch (outcome) {
    case DifferingImage::Outcome::ARightBWrong: return "a_right_b_wrong";
    case DifferingImage::Outcome::BRightAWrong: return "b_right_a_wrong";
    case DifferingImage::Outcome::BothWrong: return "both_wrong";
    case DifferingImage::Outcome::Unlabelled: return "unlabelled";
    }
    return "?";
}

}  // namespace

int runCompare(const std::vector<std::string>& args)
{
    if (printedHelp(args, (std::string(kCompareUsage) + kRepairUsage).c_str()))
        return 0;
    const Options options = optionsWithRepairs(args,
                          withPreprocessFlags({"--model", "--data", "--labels", "--label-column", "--limit", "--memory-budget", "--config",
                                               "--config-b", "--calib-data", "--calib-count"}),
                          {"--json"});
    const std::string pathA = options.required("--config"), pathB = options.required("--config-b");
    const std::size_t limit = static_cast<std::size_t>(options.integer("--limit").value_or(0));
    Study study(studySources(options, true, limit));
    if (!study.dataset()->hasLabels())
        throw Error(study.dataset()->description() + ": has no labels; give them with --labels");
    const QuantConfig configA = withRepairFlags(study.loadConfig(pathA), options);
    const QuantConfig configB = withRepairFlags(study.loadConfig(pathB), options);
    const StudyResult a = study.evaluate(configA, {}, stderrProgress());
    const StudyResult b = study.evaluate(configB, {}, stderrProgress());
    const ConfigComparison c = compareEvaluations(a.metrics, b.metrics);

    if (options.has("--json")) {
        json layers = json::array();
        for (const LayerComparison& l : c.layers)
            layers.push_back({{"name", l.name}, {"sqnr_db_a", finite(l.a.sqnrDb)}, {"sqnr_db_b", finite(l.b.sqnrDb)},
                              {"mse_a", l.a.mse}, {"mse_b", l.b.mse}});
        json differing = json::array();
        for (const DifferingImage& d : c.differing)
            differing.push_back({{"image", d.image}, {"label", d.label}, {"prediction_a", d.predictionA},
                                 {"prediction_b", d.predictionB}, {"outcome", outcomeKey(d.outcome)}});
        json out{{"config_a", pathA}, {"config_b", pathB}, {"model", study.sources().model.string()},
                 {"data", study.dataset()->description()}, {"label_column", study.labelColumn()},
                 {"warnings", study.dataWarnings()}, {"count", c.images}, {"labelled", c.labelledImages},
                 {"top1_a", c.top1A}, {"top1_b", c.top1B}, {"top1_difference", c.top1Difference()},
                 {"top5_a", c.top5A}, {"top5_b", c.top5B}, {"agreement_a", c.agreementA}, {"agreement_b", c.agreementB},
                 {"size_bytes_a", c.sizeBytesA}, {"size_bytes_b", c.sizeBytesB},
                 {"output_sqnr_db_a", finite(c.outputSqnrDbA)}, {"output_sqnr_db_b", finite(c.outputSqnrDbB)},
                 {"differing_count", c.differing.size()}, {"a_right_b_wrong", c.aRightBWrong},
                 {"b_right_a_wrong", c.bRightAWrong}, {"both_wrong", c.bothWrong}, {"unlabelled", c.unlabelled},
                 {"mcnemar_p", c.mcnemarP}, {"verdict", c.verdict()}, {"layers", layers}, {"differing", differing}};
        std::cout << out.dump() << "\n";
        return 0;
    }
    const std::vector<std::string> classes = study.classNames();
    auto className = [&](int index) {
        return index >= 0 && std::size_t(index) < classes.size() ? classes[std::size_t(index)]
               : index < 0                                       ? std::string("-")
                                                                 : std::to_string(index);
    };
    std::cout << std::fixed << std::setprecision(2) << "A: " << pathA << "\nB: " << pathB << "\n"
              << std::setw(24) << std::left << "" << std::right << std::setw(12) << "A" << std::setw(12) << "B"
              << std::setw(12) << "B - A" << "\n";
    auto row = [](const char* what, double a, double b, double scale, const char* unit) {
        std::cout << std::left << std::setw(24) << what << std::right << std::setw(11) << scale * a << unit << std::setw(11)
                  << scale * b << unit << std::setw(11) << std::showpos << scale * (b - a) << std::noshowpos << unit << "\n";
    };
    row("top-1", c.top1A, c.top1B, 100, "%");
    row("top-5", c.top5A, c.top5B, 100, "%");
    row("agreement with float", c.agreementA, c.agreementB, 100, "%");
    row("output SQNR", c.outputSqnrDbA, c.outputSqnrDbB, 1, " ");
    row("size (KiB)", c.sizeBytesA, c.sizeBytesB, 1.0 / 1024, " ");
    std::cout << "images: " << c.images << ", prediction differs on " << c.differing.size() << ": A right and B wrong "
              << c.aRightBWrong << ", B right and A wrong " << c.bRightAWrong << ", both wrong " << c.bothWrong;
    if (c.unlabelled)
        std::cout << ", unlabelled " << c.unlabelled;
    std::cout << "\n" << c.verdict() << "\n\n";
    const int nameColumn = columnWidth(c.layers, [](const LayerComparison& l) { return l.name; }, 28);
    std::cout << std::left << std::setw(nameColumn) << "layer" << std::right << std::setw(12) << "SQNR A dB" << std::setw(12)
              << "SQNR B dB" << "\n";
    for (const LayerComparison& l : c.layers)
        std::cout << std::left << std::setw(nameColumn) << l.name << std::right << std::setw(12) << l.a.sqnrDb << std::setw(12)
                  << l.b.sqnrDb << "\n";
    std::cout << "\n" << std::left << std::setw(8) << "image" << std::setw(16) << "label" << std::setw(16) << "A"
              << std::setw(16) << "B" << "outcome\n";
    for (const DifferingImage& d : c.differing)
        std::cout << std::left << std::setw(8) << d.image << std::setw(16) << className(d.label) << std::setw(16)
                  << className(d.predictionA) << std::setw(16) << className(d.predictionB) << outcomeName(d.outcome) << "\n";
    return 0;
}

}  // namespace qe::cli
