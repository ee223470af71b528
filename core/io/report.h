#pragma once
// A session written down: a Markdown report with PNG charts (drawn with OpenCV, so the CLI needs
// no display) of the model, the data, the configuration, the accuracy and size, and every
// layer's metrics. The GUI and `quantexplorer-cli report` write the same files.

#include "eval/integer_evaluation.h"
#include "eval/quant_evaluator.h"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace qe {

struct ReportInput {
    std::string modelPath, dataDescription, configText;  // configText: the configuration's JSON
    const Graph* graph = nullptr;
    const QuantPlan* plan = nullptr;
    const ModelMetrics* metrics = nullptr;
    const IntegerEvaluation* integer = nullptr;      // optional: the int8 engine's results
    std::vector<TensorHistogram> weightHistograms;   // optional: drawn as small multiples
    std::vector<std::string> notes;                  // e.g. export warnings
    std::vector<std::string> repairs;                // what the repairs did (repair/repair.h's describeRepairs)
    std::vector<std::string> classNames;             // optional: names for the confusion tables
};

// The parts every front end fills the same way: the graph, plan, metrics and configuration, each
// weight layer's histogram, and the export warnings (what QDQ cannot express) as notes. The
// caller adds the model path, the data description and, if it ran, the int8 engine's results.
// The returned input points into `evaluator`, `plan` and `metrics`.
ReportInput reportInputFor(QuantEvaluator& evaluator, const QuantConfig& config, const QuantPlan& plan, const ModelMetrics& metrics);

// Writes <dir>/report.md, <dir>/layer_sqnr.png and, when given, <dir>/weight_histograms.png and
// <dir>/confusion_matrix.png (up to 100 classes; with more, report.md lists the most confused
// pairs and the classes with the lowest accuracy instead). Returns the files written. Each file is written atomically.
std::vector<std::filesystem::path> writeReport(const std::filesystem::path& dir, const ReportInput& input);

}  // namespace qe
