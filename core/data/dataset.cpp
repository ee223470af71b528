// openDataset picks the reader by what the path is (dataset_idx.cpp, dataset_cifar.cpp,
// dataset_images.cpp); makeBatch preprocesses images into a batch; data-set slices.
#include "data/dataset.h"

#include "common/error.h"
#include "common/parallel.h"
#include "data/dataset_detail.h"

#include <fstream>

namespace qe {

namespace fs = std::filesystem;
using namespace dataset_detail;

bool Dataset::hasLabels() const
{
    for (std::size_t i = 0; i < size(); ++i)
        if (label(i) >= 0)
            return true;
    return false;
}

std::unique_ptr<Dataset> openDataset(const fs::path& path, const std::optional<fs::path>& labelsPath,
                                     const std::string& labelColumn)
{
    std::error_code ec;
    if (!fs::exists(path, ec))
        throw Error(path.string() + ": no such file or folder");
    if (labelsPath && !fs::is_regular_file(*labelsPath, ec))
        throw Error(labelsPath->string() + ": labels file not found");

    if (fs::is_directory(path, ec)) {
        std::error_code csvError;
        if (labelsPath || fs::is_regular_file(path / "labels.csv", csvError))
            return openFlatFolder(path, labelsPath, labelColumn);
        const auto subfolders = listSubfolders(path);
        if (!subfolders.empty())
            return openClassFolders(path, subfolders);
        return openFlatFolder(path, std::nullopt, labelColumn);
    }

    if (!fs::is_regular_file(path, ec))
        throw Error(path.string() + ": not a regular file or folder");
    const std::string ext = lower(path.extension().string());
    if (isImageFile(path)) {
        if (labelsPath)
            throw Error(labelsPath->string() + ": a labels file applies to idx files and image folders, not to the "
                                               "single image " + path.string());
        return openSingleImage(path);
    }
    if (ext == ".bin") {
        if (labelsPath)
            throw Error(labelsPath->string() + ": a CIFAR-10 batch carries its own labels; no labels file expected");
        return openCifar(path);
    }
    // Anything else must be an idx image file; its magic number is checked on reading.
    return openIdx(path, labelsPath);
}

Tensor makeBatch(const Dataset& dataset, std::size_t first, std::size_t count, const Preprocess& preprocess,
                 int channels, int height, int width)
{
    if (channels <= 0 || height <= 0 || width <= 0)
        throw Error("batch shape " + std::to_string(channels) + "x" + std::to_string(height) + "x" +
                    std::to_string(width) + " is not positive");
    if (first > dataset.size() || count > dataset.size() - first)
        throw Error(dataset.description() + ": images " + std::to_string(first) + ".." +
                    std::to_string(first + count) + " are out of range (" + std::to_string(dataset.size()) +
                    " images)");

    Tensor batch(DataType::Float32, Shape{static_cast<std::int64_t>(count), channels, height, width});
    float* out = batch.mutableData<float>();
    const std::size_t imageSize =
        static_cast<std::size_t>(channels) * static_cast<std::size_t>(height) * static_cast<std::size_t>(width);

    parallelFor(static_cast<std::int64_t>(count), [&](std::int64_t i) {
        const std::size_t index = first + static_cast<std::size_t>(i);
        const cv::Mat image = dataset.image(index);
        try {
            preprocess.apply(image, channels, height, width, out + static_cast<std::size_t>(i) * imageSize);
        } catch (const Error& e) {
            throw Error(dataset.description() + ", image " + dataset.imageName(index) + ": " + e.what());
        } catch (const cv::Exception& e) {
            throw Error(dataset.description() + ", image " + dataset.imageName(index) +
                        ": OpenCV failed in preprocessing (" + e.what() + ")");
        }
    });
    return batch;
}

std::vector<std::string> labelColumns(const fs::path& path, const std::optional<fs::path>& labelsPath)
{
    std::error_code ec;
    std::optional<fs::path> csv;
    if (fs::is_directory(path, ec))
        csv = labelsCsvOf(path, labelsPath);
    else if (labelsPath && labelsPath->extension() == ".csv")
        csv = labelsPath;
    std::vector<std::string> columns;
    if (!csv)
        return columns;
    std::ifstream in(*csv, std::ios::binary);
    std::string line;
    if (!in || !std::getline(in, line))
        return columns;
    dropByteOrderMark(line);
    for (const std::string& name : splitCsvLine(line, csv->string() + " line 1"))
        if (isLabelColumn(name))
            columns.push_back(name);
    return columns;
}

std::optional<std::filesystem::path> trainingSplitBeside(const std::filesystem::path& evaluationData)
{
    const std::string name = evaluationData.filename().string();
    if (name.rfind("t10k-", 0) != 0)
        return std::nullopt;
    const auto candidate = evaluationData.parent_path() / ("train-" + name.substr(5));
    if (std::filesystem::exists(candidate))
        return candidate;
    return std::nullopt;
}

namespace {

class DatasetSlice final : public Dataset {
public:
    DatasetSlice(std::shared_ptr<const Dataset> whole, std::size_t first, std::size_t count)
        : whole_(std::move(whole)), first_(first), count_(count)
    {
    }
    std::size_t size() const override { return count_; }
    cv::Mat image(std::size_t index) const override { return whole_->image(first_ + index); }
    int label(std::size_t index) const override { return whole_->label(first_ + index); }
    std::string imageName(std::size_t index) const override { return whole_->imageName(first_ + index); }
    std::string description() const override
    {
        return whole_->description() + ", images " + std::to_string(first_) + "-" + std::to_string(first_ + count_ - 1);
    }
    std::vector<std::string> classNames() const override { return whole_->classNames(); }

private:
    std::shared_ptr<const Dataset> whole_;
    std::size_t first_, count_;
};

}  // namespace

std::shared_ptr<const Dataset> datasetSlice(std::shared_ptr<const Dataset> whole, std::size_t first, std::size_t count)
{
    if (count == 0 || first + count > whole->size())
        throw Error(whole->description() + ": images " + std::to_string(first) + "-" + std::to_string(first + count) +
                    " are not all there (it has " + std::to_string(whole->size()) + ")");
    return std::make_shared<DatasetSlice>(std::move(whole), first, count);
}

}  // namespace qe
