// CIFAR-10 binary batches: records of one label byte and 32x32 planar RGB pixels.
#include "data/dataset_detail.h"

#include "common/error.h"

#include <fstream>

namespace qe::dataset_detail {

namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kCifar10Names = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                "dog",      "frog",       "horse", "ship", "truck"};
constexpr std::size_t kCifarRecordSize = 1 + 3 * 32 * 32;

std::vector<std::string> readNameList(const fs::path& path)
{
    std::ifstream in(path);
    std::vector<std::string> names;
    std::string line;
    while (std::getline(in, line)) {
        line = trim(line);
        if (!line.empty())
            names.push_back(line);
    }
    return names;
}

class CifarDataset final : public Dataset {
public:
    explicit CifarDataset(const fs::path& path) : path_(path)
    {
        data_ = readPlain(path);
        if (data_.empty() || data_.size() % kCifarRecordSize != 0)
            throw Error(path.string() + ": size " + std::to_string(data_.size()) +
                        " bytes is not a positive multiple of 3073 (a CIFAR-10 record is 1 label byte + "
                        "3072 pixel bytes)");
        count_ = data_.size() / kCifarRecordSize;

        const fs::path meta = path.parent_path() / "batches.meta.txt";
        std::error_code ec;
        if (fs::is_regular_file(meta, ec))
            names_ = readNameList(meta);
        if (names_.empty())
            names_ = kCifar10Names;
        for (std::size_t i = 0; i < count_; ++i)
            if (data_[i * kCifarRecordSize] >= names_.size())
                throw Error(path.string() + ": record " + std::to_string(i) + " has label " +
                            std::to_string(data_[i * kCifarRecordSize]) + ", but there are only " +
                            std::to_string(names_.size()) + " classes (not a CIFAR-10 batch?)");
    }

    std::size_t size() const override { return count_; }

    cv::Mat image(std::size_t index) const override
    {
        checkIndex(*this, index);
        constexpr int kSide = 32;
        constexpr std::size_t kPlane = kSide * kSide;
        const std::uint8_t* record = data_.data() + index * kCifarRecordSize + 1;
        cv::Mat image(kSide, kSide, CV_8UC3);
        for (int y = 0; y < kSide; ++y) {
            auto* row = image.ptr<std::uint8_t>(y);
            for (int x = 0; x < kSide; ++x) {
                const std::size_t p = static_cast<std::size_t>(y * kSide + x);
                // Planar R, G, B in the file; interleaved B, G, R in OpenCV.
                row[3 * x + 0] = record[2 * kPlane + p];
                row[3 * x + 1] = record[kPlane + p];
                row[3 * x + 2] = record[p];
            }
        }
        return image;
    }

    int label(std::size_t index) const override
    {
        checkIndex(*this, index);
        return data_[index * kCifarRecordSize];
    }

    std::string imageName(std::size_t index) const override { return indexName(index); }

    std::string description() const override
    {
        return "CIFAR-10 batch " + path_.filename().string() + " (" + std::to_string(count_) + " images 32x32, labels)";
    }

    std::vector<std::string> classNames() const override { return names_; }

private:
    fs::path path_;
    std::vector<std::uint8_t> data_;
    std::size_t count_ = 0;
    std::vector<std::string> names_;
};

}  // namespace

std::unique_ptr<Dataset> openCifar(const fs::path& batch) { return std::make_unique<CifarDataset>(batch); }

}  // namespace qe::dataset_detail
