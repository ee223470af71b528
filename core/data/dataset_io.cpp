#include "data/dataset_detail.h"

#include "common/error.h"
#include "common/limits.h"
#include "data/image_header.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <fstream>

#include <opencv2/imgcodecs.hpp>
#include <zlib.h>

namespace qe::dataset_detail {

namespace fs = std::filesystem;

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

std::vector<std::uint8_t> readMaybeGzipped(const fs::path& path, std::size_t limit)
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

}  // namespace qe::dataset_detail
