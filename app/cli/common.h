#pragma once
// What the CLI's commands share: reading the model, data and preprocessing flags into a Study,
// progress on stderr, and the JSON forms of metrics.

#include "cli/options.h"

#include "eval/quant_evaluator.h"
#include "study/study.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace qe::cli {

// Each command: its arguments after the command name; returns the exit code.
int runInfo(const std::vector<std::string>& args);
int runEval(const std::vector<std::string>& args);
int runHistogram(const std::vector<std::string>& args);
int runExport(const std::vector<std::string>& args);
int runReport(const std::vector<std::string>& args);
int runLesson(const std::vector<std::string>& args);
int runTrace(const std::vector<std::string>& args);
int runSensitivity(const std::vector<std::string>& args);
int runSearch(const std::vector<std::string>& args);
int runCompare(const std::vector<std::string>& args);
int runQat(const std::vector<std::string>& args);

// Prints `usage` when the arguments ask for --help (or -h); the command then returns 0.
bool printedHelp(const std::vector<std::string>& args, const char* usage);

// `flags` plus the preprocessing flags every command with images takes (--color, --scale, ...).
std::set<std::string> withPreprocessFlags(std::set<std::string> flags);

// The options of a command that takes --config: `valued` and `switches` plus the repair flags,
// --equalization and --bias-correction [empirical|analytical|none] (empirical when no mode follows).
Options optionsWithRepairs(const std::vector<std::string>& args, std::set<std::string> valued, std::set<std::string> switches);
// The repair flags' lines of a command's --help.
extern const char* const kRepairUsage;
// `config` with the repair flags switched on over it, globally (a layer's own "repairs" override
// still applies to that layer).
QuantConfig withRepairFlags(QuantConfig config, const Options& options);
// Which repairs ran on which layers, with their numbers (null when none was asked for).
nlohmann::json repairsJson(const RepairReport* report);

// The study the options describe: --model, --data (required or optional), --labels,
// --label-column, --calib-data, --calib-count and the preprocessing flags. Warnings go to stderr.
// `modelRequired` false: --model is not a flag of the command (a lesson names its models).
StudySources studySources(const Options& options, bool dataRequired, std::size_t evaluationImages, bool modelRequired = true);
// --memory-budget SIZE (bytes, or with a K, M or G suffix: 3G): the most the evaluation's
// evaluation may hold, caches included; none when not given. qe::Error for anything else.
std::optional<std::uint64_t> memoryBudget(const Options& options);

// A list of bit widths ("2,4,8"): positive integers; nullopt when the flag is absent. Whether the
// layers' schemes allow them is checked where they are applied (withLayerPrecision).
std::optional<std::vector<int>> bitWidths(const Options& options, const std::string& flag);

// The model's layers named by a comma-separated flag value; qe::Error naming an unknown one.
std::vector<std::string> layerList(const Study& study, const std::string& flag, const std::string& value);

// --engine simulate (the default) or int8: whether the integer engine runs too.
bool wantsIntegerEngine(const Options& options);

// Progress of long runs on stderr: a bar with the time left when stderr is a terminal, nothing
// otherwise (logs of scripts stay clean; --json output is on stdout either way).
EvaluationProgress stderrProgress();

// JSON has no infinity: an exact (error-free) SQNR is written as null.
nlohmann::json finite(double v);
nlohmann::json errorJson(const ErrorStats& e);

// The width of a text table's column: its longest entry plus two spaces, at least `minimum`, so
// exporters' long node names ("/encoder/layers/encoder_layer_0/self_attention/MatMul") keep the
// columns after them aligned.
template <class Range, class Field> int columnWidth(const Range& rows, Field field, int minimum)
{
    std::size_t widest = 0;
    for (const auto& row : rows)
        widest = std::max(widest, std::string(field(row)).size());
    return std::max(minimum, static_cast<int>(widest) + 2);
}

}  // namespace qe::cli
