// quantexplorer-cli: the headless front end. Its subcommands, flags, JSON keys and exit codes
// are a stable interface that other tools script: 0 success, 2 bad input (message on stderr),
// 1 an unexpected internal failure. Each command is one file in this folder; every step they
// take is the Study's (core/study).

#include "cli/common.h"

#include "common/error.h"
#include "common/memory.h"

#include <iostream>

namespace {

constexpr const char* kUsage = R"(quantexplorer-cli - explore neural-network quantization from the command line

usage: quantexplorer-cli <command> [options]

commands:
  info       show a model's nodes, operators, shapes and parameter counts
  eval       run a model on a labelled data set and report top-1 / top-5 accuracy; with
             --config, quantize it as configured and report what each layer lost
  histogram  one weight or activation tensor's histogram with its quantization levels
  export     write the quantized model as QDQ ONNX (for ONNX Runtime, TensorRT) and the
             table of every tensor's scale and zero-point (JSON or CSV)
  report     write a Markdown report with PNG charts: model, data, configuration, accuracy,
             size and every layer's metrics
  sensitivity  each layer's cost alone: top-1 and output SQNR with only that layer quantized at
             each width, and with every layer but that one quantized
  search     mixed precision: the smallest configuration within an accuracy budget, or the
             most accurate within a size budget, with the Pareto front of those evaluated
  compare    two configurations on the same images (A/B): the differences in accuracy, size
             and per-layer error, the images whose prediction differs, and whether the
             difference is more than chance (McNemar's exact test)
  qat        quantization-aware training: fine-tune the model with a configuration's
             quantizers in its forward pass, and write the fine-tuned model
  lesson     run a lesson file (resources/lessons) start to end and write its handout: each
             step's text with the live numbers, the answers to its questions, its charts
  trace      one output value of an integer layer, step by step as the int8 engine computes
             it: products of codes, int32 sum, bias, Q0.31 multiplier and shift, rounding, clamp

Run 'quantexplorer-cli <command> --help' for the options of a command.
Exit codes: 0 success, 2 bad input (the error is on stderr), 1 internal failure.
)";

}  // namespace

int main(int argc, char** argv)
{
    qe::keepFreedMemoryForReuse();
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
        std::cout << kUsage;
        return args.empty() ? 2 : 0;
    }
    const std::string command = args[0];
    args.erase(args.begin());
    try {
        if (command == "info")
            return qe::cli::runInfo(args);
        if (command == "eval")
            return qe::cli::runEval(args);
        if (command == "histogram")
            return qe::cli::runHistogram(args);
        if (command == "export")
            return qe::cli::runExport(args);
        if (command == "report")
            return qe::cli::runReport(args);
        if (command == "sensitivity")
            return qe::cli::runSensitivity(args);
        if (command == "search")
            return qe::cli::runSearch(args);
        if (command == "compare")
            return qe::cli::runCompare(args);
        if (command == "qat")
            return qe::cli::runQat(args);
        if (command == "lesson")
            return qe::cli::runLesson(args);
        if (command == "trace")
            return qe::cli::runTrace(args);
        std::cerr << "error: unknown command '" << command << "'\n\n" << kUsage;
        return 2;
    } catch (const qe::Error& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "internal error: " << e.what() << "\n";
        return 1;
    }
}
