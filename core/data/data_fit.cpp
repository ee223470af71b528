#include "data/data_fit.h"

#include <opencv2/core.hpp>

#include <algorithm>
#include <cstdlib>

namespace qe {

namespace {

// Images decoded for the channel and size checks: enough to see a mixed folder, few enough to
// cost nothing next to an evaluation.
constexpr std::size_t kImagesLooked = 16;

std::string size(int width, int height) { return std::to_string(width) + "\u00d7" + std::to_string(height); }

// The class count a labels column is named for: "label_1001" -> 1001; 0 when it names none.
std::int64_t classCountInName(const std::string& column)
{
    const std::size_t underscore = column.rfind('_');
    if (underscore == std::string::npos || underscore + 1 >= column.size())
        return 0;
    const std::string digits = column.substr(underscore + 1);
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }) || digits.size() > 9)
        return 0;
    return std::atoll(digits.c_str());
}

}  // namespace

std::vector<std::string> dataFitWarnings(const Dataset& data, std::size_t images, const ModelInputOutput& model,
                                         const std::string& labelColumn)
{
    std::vector<std::string> warnings;
    const std::size_t count = images ? std::min(images, data.size()) : data.size();

    // Channels and size, from the first images.
    int minChannels = 4, maxChannels = 0, minWidth = 0, minHeight = 0;
    bool sameSize = true;
    const std::size_t looked = std::min(count, kImagesLooked);
    for (std::size_t i = 0; i < looked; ++i) {
        const cv::Mat image = data.image(i);
        minChannels = std::min(minChannels, image.channels());
        maxChannels = std::max(maxChannels, image.channels());
        if (i == 0) {
            minWidth = image.cols;
            minHeight = image.rows;
        } else if (image.cols != minWidth || image.rows != minHeight) {
            sameSize = false;
            if (image.cols * image.rows < minWidth * minHeight) {
                minWidth = image.cols;
                minHeight = image.rows;
            }
        }
    }
    if (looked > 0 && model.channels == 3 && maxChannels == 1)
        warnings.push_back("the images are grayscale (1 channel) but the model takes 3 colour channels: each gray image "
                           "is copied into all three, which a model trained on colour images rarely recognises");
    else if (looked > 0 && model.channels == 1 && minChannels == 3)
        warnings.push_back("the images are in colour (3 channels) but the model takes 1 channel: they are converted to gray");
    if (looked > 0 && model.height > 0 && model.width > 0 && (minWidth < model.width || minHeight < model.height))
        warnings.push_back(std::string(sameSize ? "the images are " : "the smallest of the first images is ") +
                           size(minWidth, minHeight) + " pixels but the model's input is " + size(model.width, model.height) +
                           ": they are enlarged to fit, so the model sees blurred images of another size than it was trained on");

    // Labels against the model's outputs.
    if (model.outputs <= 0 || !data.hasLabels())
        return warnings;
    int maxLabel = -1;
    std::size_t outOfRange = 0;
    for (std::size_t i = 0; i < count; ++i) {
        const int label = data.label(i);
        maxLabel = std::max(maxLabel, label);
        outOfRange += label >= model.outputs;
    }
    const std::string outputs = std::to_string(model.outputs);
    if (maxLabel >= model.outputs) {
        warnings.push_back("labels go up to " + std::to_string(maxLabel) + " but the model has " + outputs + " outputs (classes 0 to " +
                           std::to_string(model.outputs - 1) + "): " + std::to_string(outOfRange) + " of " +
                           std::to_string(count) + " images can never be classified right");
    } else {
        const std::int64_t classes = std::max<std::int64_t>(std::int64_t(data.classNames().size()), maxLabel + 1);
        if (classes > 0 && 2 * classes <= model.outputs)
            warnings.push_back("the data set has " + std::to_string(classes) + " classes but the model has " + outputs +
                               " outputs: its labels are not numbered like the model's classes, so top-1 means nothing");
    }
    const std::int64_t named = classCountInName(labelColumn);
    if (named > 0 && named != model.outputs)
        warnings.push_back("labels come from column \"" + labelColumn + "\", numbered for " + std::to_string(named) +
                           " classes, but the model has " + outputs + " outputs: every label may be one class off "
                           "(choose the column named for " + outputs + ")");
    return warnings;
}

}  // namespace qe
