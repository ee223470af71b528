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
};

// Writes <dir>/report.md, <dir>/layer_sqnr.png and, when given, <dir>/weight_histograms.png and
// <dir>/confusion_matrix.png. Returns the files written. Each file is written atomically.
std::vector<std::filesystem::path> writeReport(const std::filesystem::path& dir, const ReportInput& input);

}  // namespace qe
