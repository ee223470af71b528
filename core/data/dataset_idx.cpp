// idx files (MNIST / Fashion-MNIST), plain or gzipped, with their labels file beside them.
#include "data/dataset_detail.h"

#include "common/error.h"
#include "common/limits.h"

#include <algorithm>

namespace qe::dataset_detail {

namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kFashionMnistNames = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                     "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

constexpr std::uint32_t kIdxImagesMagic = 0x00000803;  // unsigned byte data, 3 dimensions
constexpr std::uint32_t kIdxLabelsMagic = 0x00000801;  // unsigned byte data, 1 dimension

struct IdxArray {
    std::vector<std::uint8_t> bytes;  // the whole file; the payload starts at `offset`
    std::size_t offset = 0;
    std::vector<std::uint32_t> dims;
};

IdxArray readIdx(const fs::path& path, std::uint32_t expectedMagic, const char* kind)
{
    // The magic number is checked before reading everything, so a wrong multi-gigabyte file fails fast.
    const std::vector<std::uint8_t> head = readMaybeGzipped(path, 4);
    if (head.size() < 4)
        throw Error(path.string() + ": only " + std::to_string(head.size()) + " bytes, too short for an idx header");
    const std::uint32_t magic = readBigEndian32(head.data());
    if (magic != expectedMagic)
        throw Error(path.string() + ": magic number " + hex32(magic) + ", expected " + hex32(expectedMagic) +
                    " for an idx " + kind + " file" +
                    (expectedMagic == kIdxImagesMagic
                         ? " (data sets are idx image files, CIFAR-10 .bin batches, PNG/JPEG/BMP images or folders)"
                         : ""));

    IdxArray idx;
    const std::size_t rank = magic & 0xff;
    idx.offset = 4 + 4 * rank;
    const std::vector<std::uint8_t> header = readMaybeGzipped(path, idx.offset);
    if (header.size() < idx.offset)
        throw Error(path.string() + ": truncated idx header (" + std::to_string(header.size()) + " bytes)");
    // The element count saturates at a size no file in memory can have, so a corrupt header cannot overflow it.
    constexpr std::uint64_t kHuge = std::uint64_t{1} << 48;
    std::uint64_t elements = 1;
    for (std::size_t d = 0; d < rank; ++d) {
        const std::uint32_t dim = readBigEndian32(header.data() + 4 + 4 * d);
        idx.dims.push_back(dim);
        elements = (dim != 0 && elements > kHuge / dim) ? kHuge : elements * dim;
    }
    // What the header promises is checked before the payload is read: a header that claims a
    // billion images fails here, not after the reader has filled the memory.
    checkMemoryBudget(elements, path.string() + ": the idx header's " + kind);
    // One byte more than promised, to tell "unexpected bytes after" without reading them all.
    idx.bytes = readMaybeGzipped(path, idx.offset + static_cast<std::size_t>(elements) + 1);
    const std::size_t size = idx.bytes.size();
    const std::uint64_t payload = size - idx.offset;
    std::string shape;
    for (std::size_t d = 0; d < rank; ++d)
        shape += (d ? " x " : "") + std::to_string(idx.dims[d]);
    if (payload < elements)
        throw Error(path.string() + ": truncated: the header promises " + shape + " bytes of " + kind +
                    " but only " + std::to_string(payload) + " bytes follow");
    if (payload > elements)
        throw Error(path.string() + ": unexpected bytes after the " + shape + " " + kind);
    return idx;
}

// t10k-images-idx3-ubyte[.gz] -> t10k-labels-idx1-ubyte[.gz], with or without .gz.
std::optional<fs::path> siblingLabels(const fs::path& imagesPath)
{
    std::string name = imagesPath.filename().string();
    const auto images = name.find("images");
    const auto idx3 = name.find("idx3");
    if (images == std::string::npos || idx3 == std::string::npos)
        return std::nullopt;
    name.replace(images, 6, "labels");
    name.replace(name.find("idx3"), 4, "idx1");
    const fs::path base = imagesPath.parent_path() / name;
    std::vector<fs::path> candidates = {base};
    if (base.extension() == ".gz")
        candidates.push_back(fs::path(base).replace_extension());
    else
        candidates.push_back(fs::path(base.string() + ".gz"));
    for (const auto& candidate : candidates) {
        std::error_code ec;
        if (fs::is_regular_file(candidate, ec))
            return candidate;
    }
    return std::nullopt;
}

class IdxDataset final : public Dataset {
public:
    IdxDataset(const fs::path& path, const std::optional<fs::path>& labelsPath) : path_(path)
    {
        images_ = readIdx(path, kIdxImagesMagic, "images");
        count_ = images_.dims[0];
        rows_ = static_cast<int>(images_.dims[1]);
        cols_ = static_cast<int>(images_.dims[2]);
        if (count_ == 0 || rows_ <= 0 || cols_ <= 0)
            throw Error(path.string() + ": the idx header describes no images (" + std::to_string(count_) + " x " +
                        std::to_string(images_.dims[1]) + " x " + std::to_string(images_.dims[2]) + ")");

        const std::optional<fs::path> labelFile = labelsPath ? labelsPath : siblingLabels(path);
        if (labelFile) {
            const IdxArray labels = readIdx(*labelFile, kIdxLabelsMagic, "labels");
            if (labels.dims[0] != count_)
                throw Error(labelFile->string() + ": " + std::to_string(labels.dims[0]) + " labels but " +
                            path.string() + " has " + std::to_string(count_) + " images");
            labels_.assign(labels.bytes.begin() + static_cast<std::ptrdiff_t>(labels.offset), labels.bytes.end());
            labelsName_ = labelFile->filename().string();
        }
        fashion_ = lower(path.string()).find("fashion") != std::string::npos;
    }

    std::size_t size() const override { return count_; }

    cv::Mat image(std::size_t index) const override
    {
        checkIndex(*this, index);
        const std::size_t pixels = static_cast<std::size_t>(rows_) * static_cast<std::size_t>(cols_);
        const std::uint8_t* src = images_.bytes.data() + images_.offset + index * pixels;
        // Clone so that callers may modify the image without touching the data set.
        return cv::Mat(rows_, cols_, CV_8UC1, const_cast<std::uint8_t*>(src)).clone();
    }

    int label(std::size_t index) const override
    {
        checkIndex(*this, index);
        return labels_.empty() ? -1 : labels_[index];
    }

    std::string imageName(std::size_t index) const override { return indexName(index); }

    std::string description() const override
    {
        return std::string(fashion_ ? "Fashion-MNIST idx " : "idx images ") + path_.filename().string() + " (" +
               std::to_string(count_) + " images " + std::to_string(rows_) + "x" + std::to_string(cols_) +
               (labels_.empty() ? ", no labels)" : ", labels " + labelsName_ + ")");
    }

    std::vector<std::string> classNames() const override
    {
        // idx files carry no class names; the path is the only hint which set this is.
        if (fashion_)
            return kFashionMnistNames;
        if (!labels_.empty() && *std::max_element(labels_.begin(), labels_.end()) < 10)
            return {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
        return {};
    }

private:
    fs::path path_;
    IdxArray images_;
    std::size_t count_ = 0;
    int rows_ = 0;
    int cols_ = 0;
    std::vector<std::uint8_t> labels_;
    std::string labelsName_;
    bool fashion_ = false;
};

}  // namespace

std::unique_ptr<Dataset> openIdx(const fs::path& images, const std::optional<fs::path>& labels)
{
    return std::make_unique<IdxDataset>(images, labels);
}

}  // namespace qe::dataset_detail
