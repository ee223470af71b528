#include "data/dataset.h"

#include "common/error.h"
#include "common/limits.h"
#include "common/parallel.h"
#include "data/image_header.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <limits>
#include <map>
#include <set>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <zlib.h>

namespace qe {

namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kFashionMnistNames = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                     "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
const std::vector<std::string> kCifar10Names = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                "dog",      "frog",       "horse", "ship", "truck"};

constexpr std::uint32_t kIdxImagesMagic = 0x00000803;  // unsigned byte data, 3 dimensions
constexpr std::uint32_t kIdxLabelsMagic = 0x00000801;  // unsigned byte data, 1 dimension
constexpr std::size_t kCifarRecordSize = 1 + 3 * 32 * 32;

std::string lower(std::string s)
{
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

std::string trim(const std::string& s)
{
    const auto begin = s.find_first_not_of(" \t\r\n");
    if (begin == std::string::npos)
        return {};
    const auto end = s.find_last_not_of(" \t\r\n");
    return s.substr(begin, end - begin + 1);
}

bool isImageFile(const fs::path& path)
{
    const std::string ext = lower(path.extension().string());
    return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

bool isHidden(const fs::path& path)
{
    const std::string name = path.filename().string();
    return !name.empty() && name[0] == '.';
}

// "#123" for images that have no file name.
std::string indexName(std::size_t index)
{
    std::string name = "#";
    name += std::to_string(index);
    return name;
}

std::uint32_t readBigEndian32(const std::uint8_t* p)
{
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

std::string hex32(std::uint32_t v)
{
    std::array<char, 11> buf{};
    std::snprintf(buf.data(), buf.size(), "0x%08x", v);
    return buf.data();
}

// zlib reads plain files transparently, so one reader serves both "x-ubyte" and "x-ubyte.gz".
// Reads at most `limit` (decompressed) bytes.
std::vector<std::uint8_t> readMaybeGzipped(const fs::path& path,
                                           std::size_t limit = std::numeric_limits<std::size_t>::max())
{
    gzFile file = gzopen(path.string().c_str(), "rb");
    if (!file)
        throw Error(path.string() + ": cannot open the file");
    gzbuffer(file, 1 << 17);
    std::vector<std::uint8_t> data;
    std::array<std::uint8_t, 1 << 16> chunk{};
    const std::uint64_t budget = memoryBudgetBytes();
    while (data.size() < limit) {
        if (data.size() > budget) {
            gzclose(file);
            checkMemoryBudget(data.size(), path.string() + ": decompressed, the file");
        }
        const auto want = static_cast<unsigned>(std::min<std::size_t>(chunk.size(), limit - data.size()));
        const int n = gzread(file, chunk.data(), want);
        if (n <= 0)
            break;
        data.insert(data.end(), chunk.begin(), chunk.begin() + n);
    }
    // A truncated .gz stream is not a read error for gzread; only gzerror tells (Z_BUF_ERROR).
    int status = Z_OK;
    const char* message = gzerror(file, &status);
    std::string what = message ? message : "";
    const std::string prefix = path.string() + ": ";  // zlib names the file itself
    if (what.rfind(prefix, 0) == 0)
        what.erase(0, prefix.size());
    gzclose(file);
    if (status != Z_OK)
        throw Error(path.string() + ": cannot decompress (" + what + "); the file is damaged or truncated");
    return data;
}

std::vector<std::uint8_t> readPlain(const fs::path& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw Error(path.string() + ": cannot open the file");
    std::error_code ec;
    const std::uintmax_t fileSize = fs::file_size(path, ec);
    if (!ec)
        checkMemoryBudget(fileSize, path.string());
    std::vector<std::uint8_t> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad())
        throw Error(path.string() + ": read error");
    return data;
}

cv::Mat decodeImage(const fs::path& path)
{
    const std::vector<std::uint8_t> bytes = readPlain(path);
    // The size the header declares is checked before OpenCV allocates it: a small file may
    // declare gigapixels.
    const std::optional<ImageHeader> header = readImageHeader(bytes.data(), bytes.size());
    if (!header)
        throw Error(path.string() + ": cannot decode the image: not a PNG, JPEG or BMP file (its header is missing, unrecognised or cut short)");
    checkMemoryBudget(header->decodedBytes(), path.string() + ": a " + std::to_string(header->width) + " x " +
                                                  std::to_string(header->height) + " " + header->format + " image");
    cv::Mat image;
    try {
        image = cv::imdecode(bytes, cv::IMREAD_UNCHANGED);
    } catch (const cv::Exception& e) {
        throw Error(path.string() + ": OpenCV cannot decode the image (" + e.what() + ")");
    }
    if (image.empty())
        throw Error(path.string() + ": OpenCV cannot decode the image (its pixel data is damaged or cut short)");
    if (image.depth() == CV_16U)
        image.convertTo(image, CV_8U, 1.0 / 257.0);  // 65535 -> 255 exactly
    if (image.depth() != CV_8U)
        throw Error(path.string() + ": unsupported pixel depth (expected 8 or 16 bits per channel)");
    if (image.channels() != 1 && image.channels() != 3 && image.channels() != 4)
        throw Error(path.string() + ": has " + std::to_string(image.channels()) +
                    " channels; expected gray, colour or colour with alpha");
    return image;
}

void checkIndex(const Dataset& dataset, std::size_t index)
{
    if (index >= dataset.size())
        throw Error(dataset.description() + ": image index " + std::to_string(index) + " is out of range (" +
                    std::to_string(dataset.size()) + " images)");
}

// ---------------------------------------------------------------------------------------------
// idx (MNIST / Fashion-MNIST)

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

// ---------------------------------------------------------------------------------------------
// CIFAR-10 binary batches

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

// ---------------------------------------------------------------------------------------------
// Image files: class folders, flat folders with a labels file, single images

struct ImageEntry {
    fs::path path;
    std::string name;
    int label = -1;
};

class ImageFilesDataset final : public Dataset {
public:
    ImageFilesDataset(std::vector<ImageEntry> entries, std::vector<std::string> classNames, std::string description)
        : entries_(std::move(entries)), classNames_(std::move(classNames)), description_(std::move(description))
    {
    }

    std::size_t size() const override { return entries_.size(); }

    cv::Mat image(std::size_t index) const override
    {
        checkIndex(*this, index);
        return decodeImage(entries_[index].path);
    }

    int label(std::size_t index) const override
    {
        checkIndex(*this, index);
        return entries_[index].label;
    }

    std::string imageName(std::size_t index) const override
    {
        checkIndex(*this, index);
        return entries_[index].name;
    }

    std::string description() const override { return description_; }
    std::vector<std::string> classNames() const override { return classNames_; }

private:
    std::vector<ImageEntry> entries_;
    std::vector<std::string> classNames_;
    std::string description_;
};

std::vector<fs::path> listImages(const fs::path& folder)
{
    std::vector<fs::path> files;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(folder, ec)) {
        std::error_code typeError;
        if (entry.is_regular_file(typeError) && isImageFile(entry.path()) && !isHidden(entry.path()))
            files.push_back(entry.path());
    }
    if (ec)
        throw Error(folder.string() + ": cannot list the folder (" + ec.message() + ")");
    std::sort(files.begin(), files.end());
    return files;
}

std::vector<fs::path> listSubfolders(const fs::path& folder)
{
    std::vector<fs::path> folders;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(folder, ec)) {
        std::error_code typeError;
        if (entry.is_directory(typeError) && !isHidden(entry.path()))
            folders.push_back(entry.path());
    }
    if (ec)
        throw Error(folder.string() + ": cannot list the folder (" + ec.message() + ")");
    std::sort(folders.begin(), folders.end());
    return folders;
}

// One CSV line into fields; quoted fields may contain commas and doubled quotes.
std::vector<std::string> splitCsvLine(const std::string& line, const std::string& where)
{
    std::vector<std::string> fields;
    std::string field;
    bool quoted = false;
    bool wasQuoted = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (quoted) {
            if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
                field += '"';
                ++i;
            } else if (c == '"') {
                quoted = false;
            } else {
                field += c;
            }
        } else if (c == '"') {
            quoted = true;
            wasQuoted = true;
        } else if (c == ',') {
            fields.push_back(wasQuoted ? field : trim(field));
            field.clear();
            wasQuoted = false;
        } else {
            field += c;
        }
    }
    if (quoted)
        throw Error(where + ": unterminated quoted field");
    fields.push_back(wasQuoted ? field : trim(field));
    return fields;
}

// A spreadsheet program's UTF-8 byte order mark before a labels file's header.
void dropByteOrderMark(std::string& firstLine)
{
    if (firstLine.rfind("\xEF\xBB\xBF", 0) == 0)
        firstLine.erase(0, 3);
}

// A header that names a label column: "label", "label_1001", "Label" ...
bool isLabelColumn(const std::string& header) { return lower(header).rfind("label", 0) == 0; }

std::optional<std::size_t> findColumn(const std::vector<std::string>& header, std::initializer_list<const char*> names)
{
    for (const char* name : names)
        for (std::size_t i = 0; i < header.size(); ++i)
            if (lower(header[i]) == name)
                return i;
    return std::nullopt;
}

std::optional<int> parseInt(const std::string& text)
{
    int value = 0;
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc() || ptr != end || text.empty())
        return std::nullopt;
    return value;
}

struct LabelsFile {
    std::vector<ImageEntry> entries;  // in the row order of the file
    std::vector<std::string> classNames;
};

// Rows name files in `folder`; `files` are the images found there.
LabelsFile readLabelsCsv(const fs::path& csvPath, const fs::path& folder, const std::string& labelColumnName)
{
    std::ifstream in(csvPath, std::ios::binary);
    if (!in)
        throw Error(csvPath.string() + ": cannot open the labels file");
    const std::string csv = csvPath.string();
    auto where = [&](int line) { return csv + " line " + std::to_string(line); };

    std::vector<std::string> header;
    std::optional<std::size_t> fileColumn, labelColumn, nameColumn;
    std::map<std::string, int> seen;  // file name -> line, to report duplicates
    std::map<int, std::string> names;
    LabelsFile result;
    std::string line;
    int lineNumber = 0;
    while (std::getline(in, line)) {
        ++lineNumber;
        if (lineNumber == 1)
            dropByteOrderMark(line);
        if (trim(line).empty())
            continue;
        std::vector<std::string> fields = splitCsvLine(line, where(lineNumber));

        if (header.empty()) {
            header = std::move(fields);
            fileColumn = findColumn(header, {"file", "filename", "image"}).value_or(0);
            if (!labelColumnName.empty()) {
                labelColumn = findColumn(header, {labelColumnName.c_str()});
                if (!labelColumn)
                    throw Error(where(lineNumber) + ": no column named \"" + labelColumnName + "\" in the header");
            }
            if (!labelColumn)
                labelColumn = findColumn(header, {"label"});
            for (std::size_t i = 0; i < header.size() && !labelColumn; ++i)
                if (isLabelColumn(header[i]))
                    labelColumn = i;
            if (!labelColumn)
                labelColumn = 1;
            if (header.size() <= std::max(*fileColumn, *labelColumn))
                throw Error(where(lineNumber) + ": the header needs a file name column and a label column, e.g. "
                                                "\"file,label\"");
            if (parseInt(header[*labelColumn]))
                throw Error(where(lineNumber) + ": \"" + header[*labelColumn] +
                            "\" looks like a label, but the first row must be a header such as \"file,label\"");
            nameColumn = findColumn(header, {"class", "class_name", "description"});
            continue;
        }

        if (fields.size() <= std::max(*fileColumn, *labelColumn))
            throw Error(where(lineNumber) + ": " + std::to_string(fields.size()) + " columns, expected at least " +
                        std::to_string(std::max(*fileColumn, *labelColumn) + 1));
        const std::string& file = fields[*fileColumn];
        const std::string& labelText = fields[*labelColumn];
        const auto label = parseInt(labelText);
        if (!label || *label < -1)
            throw Error(where(lineNumber) + ": label '" + labelText + "' is not an integer >= 0 (or -1 for unknown)");
        const fs::path imagePath = folder / file;
        std::error_code ec;
        if (file.empty() || !fs::is_regular_file(imagePath, ec))
            throw Error(where(lineNumber) + ": image '" + file + "' (column \"" + header[*fileColumn] +
                        "\") not found in " + folder.string());
        if (const auto [it, inserted] = seen.emplace(file, lineNumber); !inserted)
            throw Error(where(lineNumber) + ": image '" + file + "' is listed twice (first on line " +
                        std::to_string(it->second) + ")");
        if (nameColumn && *label >= 0 && *nameColumn < fields.size() && !fields[*nameColumn].empty())
            names.emplace(*label, fields[*nameColumn]);
        result.entries.push_back({imagePath, file, *label});
    }
    if (header.empty())
        throw Error(csv + ": empty; expected a header row such as \"file,label\" and one row per image");

    // Class names are known only where rows name them; the other indices keep their number. A label
    // far beyond any real class count would make that list absurd, so then there are no names.
    constexpr int kMaxNamedClasses = 100000;
    if (!names.empty() && names.rbegin()->first < kMaxNamedClasses) {
        const int count = names.rbegin()->first + 1;
        for (int i = 0; i < count; ++i) {
            const auto it = names.find(i);
            result.classNames.push_back(it != names.end() ? it->second : std::to_string(i));
        }
    }
    return result;
}

// The labels CSV of a flat image folder: `labelsPath`, else labels.csv inside it.
std::optional<fs::path> labelsCsvOf(const fs::path& folder, const std::optional<fs::path>& labelsPath)
{
    if (labelsPath)
        return labelsPath;
    std::error_code ec;
    if (fs::is_regular_file(folder / "labels.csv", ec))
        return folder / "labels.csv";
    return std::nullopt;
}

std::unique_ptr<Dataset> openFlatFolder(const fs::path& folder, const std::optional<fs::path>& labelsPath,
                                        const std::string& labelColumn)
{
    const std::vector<fs::path> files = listImages(folder);
    const std::optional<fs::path> csv = labelsCsvOf(folder, labelsPath);
    if (!csv) {
        if (files.empty())
            throw Error(folder.string() + ": no PNG, JPEG or BMP images found");
        std::vector<ImageEntry> entries;
        for (const auto& file : files)
            entries.push_back({file, file.filename().string(), -1});
        return std::make_unique<ImageFilesDataset>(std::move(entries), std::vector<std::string>{},
                                                   "image folder " + folder.filename().string() + " (" +
                                                       std::to_string(files.size()) + " images, no labels)");
    }

    LabelsFile labels = readLabelsCsv(*csv, folder, labelColumn);
    // The labels file decides the order (it is often shuffled on purpose); unlisted images follow.
    std::set<std::string> listed;
    for (const auto& entry : labels.entries)
        listed.insert(entry.name);
    for (const auto& file : files)
        if (!listed.count(file.filename().string()))
            labels.entries.push_back({file, file.filename().string(), -1});
    if (labels.entries.empty())
        throw Error(folder.string() + ": no PNG, JPEG or BMP images found (labels file " + csv->string() + ")");
    const std::string description = "image folder " + folder.filename().string() + " (" +
                                    std::to_string(labels.entries.size()) + " images, labels " +
                                    csv->filename().string() + ")";
    return std::make_unique<ImageFilesDataset>(std::move(labels.entries), std::move(labels.classNames), description);
}

std::unique_ptr<Dataset> openClassFolders(const fs::path& folder, const std::vector<fs::path>& classFolders)
{
    std::vector<ImageEntry> entries;
    std::vector<std::string> classNames;
    for (const auto& classFolder : classFolders) {
        const int label = static_cast<int>(classNames.size());
        const std::string className = classFolder.filename().string();
        classNames.push_back(className);
        for (const auto& file : listImages(classFolder))
            entries.push_back({file, className + "/" + file.filename().string(), label});
    }
    if (entries.empty())
        throw Error(folder.string() + ": no PNG, JPEG or BMP images found in the class subfolders");
    const std::string description = "class folders " + folder.filename().string() + " (" +
                                    std::to_string(entries.size()) + " images, " +
                                    std::to_string(classNames.size()) + " classes)";
    return std::make_unique<ImageFilesDataset>(std::move(entries), std::move(classNames), description);
}

}  // namespace

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
        return std::make_unique<ImageFilesDataset>(std::vector<ImageEntry>{{path, path.filename().string(), -1}},
                                                   std::vector<std::string>{}, "image " + path.filename().string());
    }
    if (ext == ".bin") {
        if (labelsPath)
            throw Error(labelsPath->string() + ": a CIFAR-10 batch carries its own labels; no labels file expected");
        return std::make_unique<CifarDataset>(path);
    }
    // Anything else must be an idx image file; its magic number is checked on reading.
    return std::make_unique<IdxDataset>(path, labelsPath);
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
