#include "data/preprocess.h"

#include "common/limits.h"

#include "common/atomic_file.h"
#include "common/error.h"

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

namespace qe {

namespace {

constexpr const char* kFormat = "quantexplorer-preprocess";
constexpr int kVersion = 1;

struct ColorName {
    ColorOrder color;
    const char* name;
    int channels;
};
constexpr ColorName kColors[] = {
    {ColorOrder::Gray, "gray", 1},
    {ColorOrder::Rgb, "rgb", 3},
    {ColorOrder::Bgr, "bgr", 3},
};

const ColorName& colorInfo(ColorOrder color)
{
    for (const auto& c : kColors)
        if (c.color == color)
            return c;
    throw Error("preprocess: unknown colour order");
}

std::string typeName(const nlohmann::json& value)
{
    return value.type_name();
}

[[noreturn]] void fail(const std::string& source, const std::string& field, const std::string& what)
{
    throw Error(source + ": field \"" + field + "\" " + what);
}

double readNumber(const nlohmann::json& json, const std::string& source, const std::string& field)
{
    const auto& value = json.at(field);
    if (!value.is_number())
        fail(source, field, "must be a number, got " + typeName(value));
    const double v = value.get<double>();
    if (!std::isfinite(v))
        fail(source, field, "must be finite");
    return v;
}

std::vector<float> readFloats(const nlohmann::json& json, const std::string& source, const std::string& field)
{
    const auto& value = json.at(field);
    if (!value.is_array() || value.empty())
        fail(source, field, "must be a non-empty array of numbers, got " + typeName(value));
    std::vector<float> out;
    for (std::size_t i = 0; i < value.size(); ++i) {
        // Checked as the float it is kept as: 1e90 is a finite double but an infinite float.
        if (!value[i].is_number() || !std::isfinite(value[i].get<float>()))
            fail(source, field, "element " + std::to_string(i) + " must be a finite number within float range (|x| < 3.4e38)");
        out.push_back(value[i].get<float>());
    }
    return out;
}

// Mean and std are either shared by all channels or given per channel.
void checkPerChannel(const std::vector<float>& values, int channels, const std::string& source,
                     const std::string& field)
{
    if (values.size() != 1 && values.size() != static_cast<std::size_t>(channels))
        fail(source, field,
             "has " + std::to_string(values.size()) + " values; expected 1 or " + std::to_string(channels) +
                 " (one per channel)");
}

void checkStd(const std::vector<float>& stdDev, const std::string& source)
{
    for (float s : stdDev)
        if (s == 0.f)
            fail(source, "std", "must not contain 0 (it divides the pixel values)");
}

}  // namespace

Preprocess Preprocess::mnistStyle()
{
    Preprocess p;
    p.color = ColorOrder::Gray;
    p.scale = 1.0 / 255.0;
    p.mean = {0.f};
    p.stdDev = {1.f};
    return p;
}

Preprocess Preprocess::imagenetStyle()
{
    Preprocess p;
    p.color = ColorOrder::Rgb;
    p.resizeShorter = 256;
    p.cropFraction = 224.0 / 256.0;
    p.scale = 1.0 / 255.0;
    p.mean = {0.485f, 0.456f, 0.406f};
    p.stdDev = {0.229f, 0.224f, 0.225f};
    return p;
}

std::vector<std::pair<std::string, Preprocess>> Preprocess::presets()
{
    Preprocess raw;
    raw.color = ColorOrder::Rgb;

    // (p - 128) / 128 maps 0..255 onto [-1, 1), the convention of many TFLite/MobileNet models.
    Preprocess symmetric;
    symmetric.color = ColorOrder::Rgb;
    symmetric.mean = {128.f};
    symmetric.stdDev = {128.f};

    return {
        {"MNIST-style (gray, /255)", mnistStyle()},
        {"ImageNet-style (RGB, mean/std)", imagenetStyle()},
        {"Raw 0..255 RGB", raw},
        {"[-1,1] RGB ((p-128)/128)", symmetric},
    };
}

Preprocess Preprocess::fromJson(const nlohmann::json& json, const std::string& source)
{
    if (!json.is_object())
        throw Error(source + ": expected a JSON object, got " + typeName(json));

    static const std::set<std::string> known = {"format", "version",       "color", "resize_shorter",
                                                "crop_fraction", "scale", "mean",  "std",
                                                "class_names", "label_column"};
    for (const auto& [key, value] : json.items())
        if (!known.count(key))
            throw Error(source + ": unknown field \"" + key +
                        "\" (known: format, version, color, resize_shorter, crop_fraction, scale, mean, std, "
                        "class_names, label_column)");

    const bool formatOk =
        json.contains("format") && json["format"].is_string() && json["format"].get<std::string>() == kFormat;
    if (!formatOk)
        fail(source, "format", std::string("must be the string \"") + kFormat + "\"");
    const bool versionOk = json.contains("version") && json["version"].is_number_integer() &&
                           json["version"].get<std::int64_t>() == kVersion;
    if (!versionOk)
        fail(source, "version", "must be the integer " + std::to_string(kVersion));

    // Fields other than format and version are optional and default to "no change".
    Preprocess p;
    if (json.contains("color")) {
        const auto& value = json["color"];
        if (!value.is_string())
            fail(source, "color", "must be a string, got " + typeName(value));
        const std::string name = value.get<std::string>();
        bool found = false;
        for (const auto& c : kColors)
            if (name == c.name) {
                p.color = c.color;
                found = true;
            }
        if (!found)
            fail(source, "color", "is \"" + name + "\"; expected \"gray\", \"rgb\" or \"bgr\"");
    }
    if (json.contains("resize_shorter")) {
        const auto& value = json["resize_shorter"];
        if (!value.is_number_integer())
            fail(source, "resize_shorter", "must be an integer, got " + typeName(value));
        const auto v = value.get<std::int64_t>();
        if (v < 0 || v > 100000)
            fail(source, "resize_shorter", "is " + std::to_string(v) + "; expected 0 (off) or a size in pixels");
        p.resizeShorter = static_cast<int>(v);
    }
    if (json.contains("crop_fraction")) {
        p.cropFraction = readNumber(json, source, "crop_fraction");
        if (!(p.cropFraction > 0.0 && p.cropFraction <= 1.0))
            fail(source, "crop_fraction", "must be in (0, 1]");
    }
    if (json.contains("scale")) {
        p.scale = readNumber(json, source, "scale");
        if (!(p.scale > 0.0))
            fail(source, "scale", "must be positive");
    }
    const int channels = colorInfo(p.color).channels;
    if (json.contains("mean")) {
        p.mean = readFloats(json, source, "mean");
        checkPerChannel(p.mean, channels, source, "mean");
    }
    if (json.contains("std")) {
        p.stdDev = readFloats(json, source, "std");
        checkPerChannel(p.stdDev, channels, source, "std");
        checkStd(p.stdDev, source);
    }
    if (json.contains("class_names")) {
        const auto& value = json["class_names"];
        if (!value.is_array())
            fail(source, "class_names", "must be an array of strings, got " + typeName(value));
        for (std::size_t i = 0; i < value.size(); ++i) {
            if (!value[i].is_string())
                fail(source, "class_names", "element " + std::to_string(i) + " must be a string");
            p.classNames.push_back(value[i].get<std::string>());
        }
    }
    if (json.contains("label_column")) {
        if (!json["label_column"].is_string())
            fail(source, "label_column", "must be a string (a column of the labels CSV), got " + typeName(json["label_column"]));
        p.labelColumn = json["label_column"].get<std::string>();
    }
    return p;
}

nlohmann::json Preprocess::toJson() const
{
    nlohmann::json json = {
        {"format", kFormat},
        {"version", kVersion},
        {"color", colorInfo(color).name},
        {"resize_shorter", resizeShorter},
        {"crop_fraction", cropFraction},
        {"scale", scale},
        {"mean", mean},
        {"std", stdDev},
    };
    if (!classNames.empty())
        json["class_names"] = classNames;
    if (!labelColumn.empty())
        json["label_column"] = labelColumn;
    return json;
}

std::filesystem::path Preprocess::sidecarPath(const std::filesystem::path& modelPath)
{
    auto path = modelPath;
    path.replace_extension(".preprocess.json");
    return path;
}

std::optional<Preprocess> Preprocess::loadSidecar(const std::filesystem::path& modelPath)
{
    const auto path = sidecarPath(modelPath);
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
        return std::nullopt;
    return load(path);
}

Preprocess Preprocess::load(const std::filesystem::path& jsonPath)
{
    std::ifstream in(jsonPath, std::ios::binary);
    if (!in)
        throw Error(jsonPath.string() + ": cannot open the preprocessing file");
    nlohmann::json json;
    try {
        json = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
        throw Error(jsonPath.string() + ": not valid JSON (" + e.what() + ")");
    }
    return fromJson(json, jsonPath.string());
}

Preprocess Preprocess::forModel(const std::filesystem::path& modelPath, int channels)
{
    if (auto sidecar = loadSidecar(modelPath))
        return *sidecar;
    Preprocess raw;
    raw.color = channels == 1 ? ColorOrder::Gray : ColorOrder::Rgb;
    return raw;
}

void Preprocess::save(const std::filesystem::path& jsonPath) const
{
    writeFileAtomically(jsonPath, toJson().dump(2) + '\n');
}

void Preprocess::apply(const cv::Mat& image, int channels, int height, int width, float* out) const
{
    if (image.empty())
        throw Error("preprocess: the image is empty");
    if (image.depth() != CV_8U || (image.channels() != 1 && image.channels() != 3 && image.channels() != 4))
        throw Error("preprocess: expected an 8-bit image with 1, 3 or 4 channels, got depth " +
                    std::to_string(image.depth()) + " with " + std::to_string(image.channels()) + " channels");
    if (height <= 0 || width <= 0)
        throw Error("preprocess: the model input size " + std::to_string(height) + "x" + std::to_string(width) +
                    " is not positive");
    const ColorName& target = colorInfo(color);
    if (channels != target.channels)
        throw Error(std::string("preprocess: color \"") + target.name + "\" gives " +
                    std::to_string(target.channels) + " channel(s) but the model expects " +
                    std::to_string(channels));
    checkPerChannel(mean, channels, "preprocess", "mean");
    checkPerChannel(stdDev, channels, "preprocess", "std");
    checkStd(stdDev, "preprocess");
    if (!(cropFraction > 0.0 && cropFraction <= 1.0))
        throw Error("preprocess: crop_fraction " + std::to_string(cropFraction) + " is not in (0, 1]");

    cv::Mat img;
    const int in = image.channels();
    switch (color) {
    case ColorOrder::Gray:
        if (in == 1)
            img = image;
        else
            cv::cvtColor(image, img, in == 3 ? cv::COLOR_BGR2GRAY : cv::COLOR_BGRA2GRAY);
        break;
    case ColorOrder::Rgb:
        cv::cvtColor(image, img, in == 1 ? cv::COLOR_GRAY2RGB : in == 3 ? cv::COLOR_BGR2RGB : cv::COLOR_BGRA2RGB);
        break;
    case ColorOrder::Bgr:
        if (in == 3)
            img = image;
        else
            cv::cvtColor(image, img, in == 1 ? cv::COLOR_GRAY2BGR : cv::COLOR_BGRA2BGR);
        break;
    }

    if (resizeShorter > 0) {
        // The longer side is truncated like torchvision's Resize(int), the usual reference for these models.
        const int rows = img.rows;
        const int cols = img.cols;
        int newRows = resizeShorter;
        int newCols = resizeShorter;
        if (rows < cols)
            newCols = static_cast<int>(std::clamp<std::int64_t>(std::int64_t{resizeShorter} * cols / rows, 1, INT32_MAX));
        else if (cols < rows)
            newRows = static_cast<int>(std::clamp<std::int64_t>(std::int64_t{resizeShorter} * rows / cols, 1, INT32_MAX));
        if (newRows != rows || newCols != cols) {
            // A sidecar's size times an image's aspect ratio can ask for billions of pixels
            // (found by the sidecar fuzzer: resize_shorter 88880 wanted 11 GB): checked first.
            checkMemoryBudget(static_cast<std::uint64_t>(newRows) * static_cast<std::uint64_t>(newCols) * img.elemSize(),
                              "preprocess: resizing a " + std::to_string(cols) + "x" + std::to_string(rows) + " image to " +
                                  std::to_string(newCols) + "x" + std::to_string(newRows));
            cv::Mat resized;
            cv::resize(img, resized, cv::Size(newCols, newRows), 0, 0, cv::INTER_LINEAR);
            img = resized;
        }
    }

    if (cropFraction < 1.0) {
        // tf.image.central_crop: begin = int((L - L * fraction) / 2), size = L - 2 * begin, so the crop
        // stays centred to the pixel even when L * fraction is not an integer.
        auto begin = [&](int length) { return static_cast<int>((length - length * cropFraction) / 2); };
        const int top = begin(img.rows);
        const int left = begin(img.cols);
        img = img(cv::Rect(left, top, img.cols - 2 * left, img.rows - 2 * top));
    }

    if (img.rows != height || img.cols != width) {
        cv::Mat resized;
        cv::resize(img, resized, cv::Size(width, height), 0, 0, cv::INTER_LINEAR);
        img = resized;
    }

    const float s = static_cast<float>(scale);
    const std::size_t plane = static_cast<std::size_t>(height) * static_cast<std::size_t>(width);
    for (int c = 0; c < channels; ++c) {
        const float m = mean.size() == 1 ? mean[0] : mean[static_cast<std::size_t>(c)];
        const float d = stdDev.size() == 1 ? stdDev[0] : stdDev[static_cast<std::size_t>(c)];
        float* dst = out + static_cast<std::size_t>(c) * plane;
        for (int y = 0; y < height; ++y) {
            const std::uint8_t* row = img.ptr<std::uint8_t>(y);
            for (int x = 0; x < width; ++x)
                dst[static_cast<std::size_t>(y) * static_cast<std::size_t>(width) + static_cast<std::size_t>(x)] =
                    (static_cast<float>(row[x * channels + c]) * s - m) / d;
        }
    }
}

}  // namespace qe
