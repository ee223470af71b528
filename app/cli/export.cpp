// quantexplorer-cli export: the quantized model as QDQ ONNX, and every tensor's encodings.

#include "cli/common.h"

#include <iostream>

namespace qe::cli {

namespace {

using nlohmann::json;

constexpr const char* kExportUsage = R"(usage: quantexplorer-cli export --model M.onnx --config C.json --out Q.onnx [options]

  --model PATH          the float ONNX model (or a QDQ model with --config model)
  --config C.json       the quantization to write ("model": a QDQ model's own)
  --out Q.onnx          the QDQ model: QuantizeLinear/DequantizeLinear around activations, int8
                        weights with per-channel scales, int32 biases (opset >= 13); the model's
                        preprocessing is written beside it as Q.preprocess.json
  --encodings E         also write every quantized tensor's scale and zero-point: E.json or E.csv
  --calib-data PATH     calibration images for static activation ranges (default: the training
                        split beside --data; needed unless the configuration is the model's own)
  --data PATH           images (only used to find the calibration split beside them)
  --calib-count N       calibration images (default: the configuration's "images")
  --json                one JSON object on stdout: files written, tensors, warnings
  (and the preprocessing flags of 'eval')
Choices ONNX's 8-bit QDQ cannot express (k-means, log2, fp8/fp16/bf16, per-group, dynamic ranges)
are written in float and listed as warnings on stderr; nothing is changed silently.
)";

}  // namespace

int runExport(const std::vector<std::string>& args)
{
    if (printedHelp(args, (std::string(kExportUsage) + kRepairUsage).c_str()))
        return 0;
    const Options options = optionsWithRepairs(args,
                          withPreprocessFlags({"--model", "--config", "--out", "--encodings", "--calib-data", "--calib-count",
                                               "--data", "--labels", "--label-column"}),
                          {"--json"});
    const std::filesystem::path out = options.required("--out");
    std::optional<std::filesystem::path> encodings;
    if (auto e = options.value("--encodings"))
        encodings = *e;  // its extension is checked before anything is written
    Study study(studySources(options, false, 0));
    const QuantConfig config = withRepairFlags(study.loadConfig(options.required("--config")), options);
    const ExportedFiles written = study.exportQdqModel(config, out, encodings, stderrProgress());
    const std::filesystem::path& sidecar = written.files[1];
    for (const std::string& w : written.warnings)
        std::cerr << "warning: " << w << "\n";
    const std::size_t activations = written.activationEncodings, weights = written.weightEncodings;
    if (options.has("--json")) {
        json j{{"out", out.string()}, {"preprocess", sidecar.string()},
               {"opset", std::max<std::int64_t>(13, study.graph().opsetVersion)},
               {"quantized_activations", activations}, {"quantized_weights_and_biases", weights}, {"warnings", written.warnings},
               {"repairs", repairsJson(written.repairs.get())}};
        j["encodings"] = encodings ? json(encodings->string()) : json(nullptr);
        std::cout << j.dump() << "\n";
    } else {
        std::cout << "wrote " << out.string() << " (and its preprocessing, " << sidecar.filename().string() << "): " << activations
                  << " activations and " << weights << " weights/biases quantized"
                  << (written.warnings.empty() ? "" : ", " + std::to_string(written.warnings.size()) + " warnings") << "\n";
        if (encodings)
            std::cout << "wrote " << encodings->string() << "\n";
    }
    return 0;
}

}  // namespace qe::cli
