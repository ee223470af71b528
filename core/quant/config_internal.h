#pragma once
// Inside core/quant: what the configuration's two files share. config.cpp holds the model of the
// configuration (overrides, resolution, validateSpec); config_json.cpp the file format (reading it
// with its error messages, writing it, load and save). Not part of core's interface: everything
// else goes through config.h.

#include "quant/config.h"

#include <string>
#include <string_view>
#include <utility>

namespace qe::config_detail {

// Each bias correction mode and its name in the file (biasCorrectionName, and the reader's
// "expected one of" list).
inline constexpr std::pair<BiasCorrection, std::string_view> kBiasCorrections[] = {
    {BiasCorrection::None, "none"}, {BiasCorrection::Empirical, "empirical"}, {BiasCorrection::Analytical, "analytical"}};

// JSON text of a string, quoted and escaped, for messages (config_json.cpp).
std::string jsonQuoted(std::string_view text);

// The path of `key` inside `path` as people write it ("layers.conv2.weights", an ONNX name in
// brackets), for messages naming a field: the reader's and validateSpec's (config_json.cpp).
std::string child(const std::string& path, std::string_view key);

// The names of the schemes for activations, or for weights, comma-separated (config.cpp).
std::string schemeNames(bool forActivations);

}  // namespace qe::config_detail
