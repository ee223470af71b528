#pragma once
// How raw images become a model's input tensor. Preprocessing is data, not code: it is stored
// beside the model as a small JSON sidecar ("<model>.preprocess.json") so that the GUI, the CLI and
// the tests agree on it, and a user can read and edit it.
//
// Order of the steps (each optional):
//   decode (OpenCV, BGR or gray) -> colour conversion to `color`
//   -> resize so the shorter side is `resizeShorter` (bilinear)
//   -> central crop of `cropFraction` of each side (TF-slim's central_crop)
//   -> resize to the model's input height x width (bilinear) when the size still differs
//   -> value = (pixel * scale - mean[c]) / std[c], written as NCHW float32.

#include "tensor/tensor.h"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace cv {
class Mat;
}

namespace qe {

enum class ColorOrder { Rgb, Bgr, Gray };

struct Preprocess {
    ColorOrder color = ColorOrder::Rgb;
    int resizeShorter = 0;        // 0: no shorter-side resize
    double cropFraction = 1.0;    // 1.0: no central crop
    double scale = 1.0;           // applied before mean/std
    std::vector<float> mean{0.f}; // one value, or one per channel
    std::vector<float> stdDev{1.f};
    // What the model's output indices mean, when known (shown in galleries and reports).
    std::vector<std::string> classNames;
    // The labels CSV column that matches the model's outputs, when the file has several (e.g.
    // "label_1001" for TensorFlow's MobileNets, whose class 0 is "background"); "" when not chosen.
    std::string labelColumn;

    // Presets offered when a model is opened for the first time.
    static Preprocess mnistStyle();     // gray, pixel/255
    static Preprocess imagenetStyle();  // RGB, resize 256 + crop 224/256, /255, ImageNet mean/std
    static std::vector<std::pair<std::string, Preprocess>> presets();

    // Throws qe::Error naming `source` (a file name) and the offending field.
    // The sidecar format:
    //   { "format": "quantexplorer-preprocess", "version": 1,
    //     "color": "gray" | "rgb" | "bgr", "resize_shorter": 0, "crop_fraction": 1.0,
    //     "scale": 0.00392156862745098, "mean": [0.0], "std": [1.0],
    //     "class_names": ["T-shirt/top", ...],       (optional)
    //     "label_column": "label_1001" }             (optional)
    // Unknown keys, wrong types and out-of-range values are errors.
    static Preprocess fromJson(const nlohmann::json& json, const std::string& source);
    nlohmann::json toJson() const;

    // The sidecar path for a model: "dir/name.onnx" -> "dir/name.preprocess.json".
    static std::filesystem::path sidecarPath(const std::filesystem::path& modelPath);
    static std::optional<Preprocess> loadSidecar(const std::filesystem::path& modelPath);
    // What the CLI and the GUI use for a model: its sidecar when there is one, else raw pixels
    // (0..255) in gray for one-channel models and RGB otherwise.
    static Preprocess forModel(const std::filesystem::path& modelPath, int channels);
    static Preprocess load(const std::filesystem::path& jsonPath);
    // Atomic write (temporary file + rename), so a crash never leaves half a file.
    void save(const std::filesystem::path& jsonPath) const;

    // One decoded image (8-bit, 1 or 3 channels in OpenCV's BGR order) into `out`, which points at
    // channels*height*width floats (one image of an NCHW batch).
    void apply(const cv::Mat& image, int channels, int height, int width, float* out) const;
};

}  // namespace qe
