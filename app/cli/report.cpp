// quantexplorer-cli report: a Markdown report with PNG charts of one configuration.

#include "cli/common.h"

#include <iostream>

namespace qe::cli {

namespace {

using nlohmann::json;

constexpr const char* kReportUsage = R"(usage: quantexplorer-cli report --model M.onnx --config C.json --data PATH --out DIR [options]

  --out DIR             writes DIR/report.md, DIR/layer_sqnr.png, DIR/weight_histograms.png and
                        DIR/confusion_matrix.png
  --engine int8         also run the integer-only engine and report it beside the simulation
  --limit N             evaluate the first N images (default: all)
  --calib-data PATH, --calib-count N, --labels PATH, --label-column NAME: as for 'eval'
  --json                one JSON object on stdout: the files written
  (and the preprocessing flags of 'eval')
)";

}  // namespace

int runReport(const std::vector<std::string>& args)
{
    if (printedHelp(args, (std::string(kReportUsage) + kRepairUsage).c_str()))
        return 0;
    const Options options = optionsWithRepairs(args,
                          withPreprocessFlags({"--model", "--config", "--data", "--out", "--labels", "--label-column", "--limit",
                                               "--calib-data", "--calib-count", "--engine"}),
                          {"--json"});
    const std::filesystem::path dir = options.required("--out");
    const bool integerEngine = wantsIntegerEngine(options);
    Study study(studySources(options, true, static_cast<std::size_t>(options.integer("--limit").value_or(0))));
    const QuantConfig config = withRepairFlags(study.loadConfig(options.required("--config")), options);
    ReportRequest request;
    request.integerEngine = integerEngine ? ReportRequest::IntegerEngine::Yes : ReportRequest::IntegerEngine::No;
    const WrittenReport report = study.writeReport(config, dir, request, stderrProgress());
    if (options.has("--json")) {
        json list = json::array();
        for (const auto& f : report.written.files)
            list.push_back(f.string());
        std::cout << json{{"files", list}, {"repairs", repairsJson(report.repairs.get())}}.dump() << "\n";
    } else {
        for (const auto& f : report.written.files)
            std::cout << "wrote " << f.string() << "\n";
    }
    return 0;
}

}  // namespace qe::cli
