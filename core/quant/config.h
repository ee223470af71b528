#pragma once
// The quantization configuration: what the user chose, per layer, as a versioned JSON document
// that people hand-edit, diff and commit:
//
// { "format": "quantexplorer-config", "version": 1,
//   "model": "fashion_cnn.onnx",
//   "calibration": { "images": 512, "method": "percentile", "percentile": 99.99 },
//   "default": { "weights":     { "scheme": "symmetric", "bits": 8, "granularity": "per_channel" },
//                "activations": { "scheme": "affine", "bits": 8, "dynamic": false } },
//   "repairs": { "equalization": true, "bias_correction": "empirical" },
//   "layers": { "conv2": { "weights": { "scheme": "kmeans", "bits": 4 } },
//               "fc2":   { "float": true, "repairs": { "bias_correction": "none" } } } }
//
// A layer's "weights"/"activations" override the default field by field; "float": true leaves the
// whole layer in float; { "float": true } inside "weights" or "activations" leaves just that tensor
// in float (the hybrid case); a layer's "calibration" overrides the default calibration, and may
// give its activations a fixed "range": [min, max] instead (learned by QAT with LSQ, or by hand).
// Tensor spec keys: scheme, bits, granularity (per_tensor | per_channel | per_group), group_size,
// signed, dynamic (activations only), range (weights only: "minmax", the default, or "mse", each
// block's range clipped to the least squared error; k-means ignores it), float.
// "repairs" (top level, overridden per layer field by field) changes the float model before it is
// quantized (core/repair/): "equalization" (true | false) rescales the channels of consecutive
// layers (a pair is equalized when both of its layers have it on), "relu6_as_relu" (true |
// false) lets it through a ReLU6 after the pair's first layer by making that a ReLU (a change of
// the float model, off by default), "bias_correction" (none |
// empirical | analytical) subtracts the mean shift weight quantization causes from the layer's
// bias, "adaround" (true | false | { "enabled": true, "iterations": 10000, "images": 256 }; at the
// top level an object without "enabled" switches it on, in a layer it inherits the switch) learns
// each weight's rounding on calibration images, last.
// Written only where a repair is on (top level) or overridden (a layer).
// Unknown keys, wrong types, bits out of the scheme's range, k-means for activations, per-group
// without group_size, or a layer the model lacks are errors naming the field ("layers.conv2.weights.bits").
//
// Merging rules. "default" overrides the built-in defaults and a layer overrides "default" the same
// way, field by field, and the result is validated after merging (so "granularity": "per_group"
// may take group_size from the default). One coupling: a scheme given without bits keeps the
// inherited bit width if the new scheme allows it, else takes the scheme's default width (an
// 8-bit default switched to "fp16" gets 16 bits; switched to "kmeans" it keeps 8 if k-means
// allows 8). A layer's calibration overrides the top-level one field by field too ("images" is
// top-level only). Fields are validated even where a tensor stays float, so turning quantization
// back on never exposes an invalid choice; keepFloat does not clear the specs' `quantize`, the
// engine checks both. An empty layer override is the same as none and is neither kept nor written.
// toJson writes "default" in full, layers with only their overridden fields, and a parameter
// that the chosen method or granularity does not use (percentile for minmax, group_size for
// per_channel) only when it differs from its default, so fromJson(toJson(c)) == c exactly.

#include "quant/calibration.h"
#include "quant/scheme.h"

#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace qe {

// The repairs of a layer's float weights before quantization (core/repair/repair.h).
enum class BiasCorrection { None, Empirical, Analytical };
std::string_view biasCorrectionName(BiasCorrection mode);
std::optional<BiasCorrection> biasCorrectionFromName(std::string_view name);

// AdaRound (core/repair/adaround.h) as the last repair: learned rounding of the layer's weights on
// `images` calibration images, `iterations` Adam steps per layer.
struct AdaRoundSpec {
    bool enabled = false;
    int iterations = 10000;  // AIMET's default_num_iterations
    int images = 256;        // calibration images whose layer inputs and outputs it reconstructs
    bool operator==(const AdaRoundSpec&) const = default;
};

struct RepairSpec {
    bool equalization = false;
    // Equalize through a ReLU6 (Clip(0, 6)) by making it a ReLU, as the paper and AIMET do: that
    // changes the float model, which equalization otherwise never does.
    bool relu6AsRelu = false;
    BiasCorrection biasCorrection = BiasCorrection::None;
    AdaRoundSpec adaRound;
    // SmoothQuant (core/repair/smoothquant.h) into this layer's weights from the LayerNorm before
    // it, with migration strength alpha in [0, 1].
    bool smoothQuant = false;
    float smoothQuantAlpha = 0.5f;
    bool any() const { return equalization || biasCorrection != BiasCorrection::None || adaRound.enabled || smoothQuant; }
    bool operator==(const RepairSpec&) const = default;
};

struct RepairOverride {
    std::optional<bool> equalization;
    std::optional<bool> relu6AsRelu;
    std::optional<BiasCorrection> biasCorrection;
    std::optional<bool> adaRound;
    std::optional<int> adaRoundIterations;
    std::optional<int> adaRoundImages;
    std::optional<bool> smoothQuant;
    std::optional<float> smoothQuantAlpha;
    bool empty() const
    {
        return !equalization && !relu6AsRelu && !biasCorrection && !adaRound && !adaRoundIterations && !adaRoundImages &&
               !smoothQuant && !smoothQuantAlpha;
    }
    RepairSpec appliedTo(RepairSpec base) const;
    bool operator==(const RepairOverride&) const = default;
};

// A partial TensorQuantSpec: only the fields a layer overrides.
struct TensorQuantOverride {
    std::optional<bool> quantize;
    std::optional<Scheme> scheme;
    std::optional<int> bits;
    std::optional<Granularity> granularity;
    std::optional<int> groupSize;
    std::optional<bool> isSigned;
    std::optional<bool> dynamic;
    std::optional<WeightRange> range;
    bool empty() const;
    TensorQuantSpec appliedTo(TensorQuantSpec base) const;
    bool operator==(const TensorQuantOverride&) const = default;
};

struct LayerOverride {
    bool keepFloat = false;  // "float": true
    TensorQuantOverride weights, activations;
    std::optional<CalibrationSpec> calibration;
    RepairOverride repairs;
    bool empty() const { return !keepFloat && weights.empty() && activations.empty() && !calibration && repairs.empty(); }
    bool operator==(const LayerOverride&) const = default;
};

// What one layer ends up with after the default and its override are combined.
struct LayerQuantConfig {
    bool keepFloat = false;
    TensorQuantSpec weights, activations;
    CalibrationSpec calibration;
    RepairSpec repairs;
    bool operator==(const LayerQuantConfig&) const = default;
};

struct QuantConfig {
    std::string model;                 // the model file name the configuration was made for
    int calibrationImages = 512;
    CalibrationSpec calibration;
    TensorQuantSpec defaultWeights{true, Scheme::Symmetric, 8, Granularity::PerChannel, 0, std::nullopt, false};
    TensorQuantSpec defaultActivations{true, Scheme::Affine, 8, Granularity::PerTensor, 0, std::nullopt, false};
    RepairSpec repairs;
    std::map<std::string, LayerOverride> layers;

    LayerQuantConfig resolve(const std::string& layer) const;
    bool operator==(const QuantConfig&) const = default;

    // `source` names the file in error messages. `layerNames`, when given, are the model's
    // quantizable layers; a configuration naming any other layer is an error.
    static QuantConfig fromJson(const nlohmann::json& json, const std::string& source,
                                const std::optional<std::set<std::string>>& layerNames = std::nullopt);
    static QuantConfig load(const std::filesystem::path& path,
                            const std::optional<std::set<std::string>>& layerNames = std::nullopt);
    // Writes only what differs from the defaults of the format, with stable key order, so that
    // files diff well. save() is atomic (temporary file + rename).
    nlohmann::json toJson() const;
    void save(const std::filesystem::path& path) const;
};

// Validates one spec on its own (bits within the scheme's range, k-means not for activations, ...);
// throws qe::Error naming `field`.
void validateSpec(const TensorQuantSpec& spec, bool forActivations, const std::string& field);

}  // namespace qe
