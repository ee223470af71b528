#pragma once
// Inside core/data: what the data-set readers share (dataset_io.cpp) and how openDataset
// (dataset.cpp) reaches each format's reader (dataset_idx.cpp, dataset_cifar.cpp,
// dataset_images.cpp). Not part of core/'s interface.

#include "data/dataset.h"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace qe::dataset_detail {

std::string lower(std::string s);
std::string trim(const std::string& s);
bool isImageFile(const std::filesystem::path& path);
bool isHidden(const std::filesystem::path& path);
std::string indexName(std::size_t index);  // "#123" for images that have no file name
std::uint32_t readBigEndian32(const std::uint8_t* p);
std::string hex32(std::uint32_t v);
// zlib reads plain files transparently, so one reader serves both "x-ubyte" and "x-ubyte.gz".
// Reads at most `limit` (decompressed) bytes; refuses more than the memory budget.
std::vector<std::uint8_t> readMaybeGzipped(const std::filesystem::path& path,
                                           std::size_t limit = std::numeric_limits<std::size_t>::max());
std::vector<std::uint8_t> readPlain(const std::filesystem::path& path);
// A PNG, JPEG or BMP file as 8-bit gray, BGR or BGRA; its declared size is checked against the
// memory budget before OpenCV decodes it.
cv::Mat decodeImage(const std::filesystem::path& path);
void checkIndex(const Dataset& dataset, std::size_t index);

// The readers, one per format.
std::unique_ptr<Dataset> openIdx(const std::filesystem::path& images, const std::optional<std::filesystem::path>& labels);
std::unique_ptr<Dataset> openCifar(const std::filesystem::path& batch);
std::unique_ptr<Dataset> openSingleImage(const std::filesystem::path& image);
std::unique_ptr<Dataset> openFlatFolder(const std::filesystem::path& folder,
                                        const std::optional<std::filesystem::path>& labelsPath,
                                        const std::string& labelColumn);
std::unique_ptr<Dataset> openClassFolders(const std::filesystem::path& folder,
                                          const std::vector<std::filesystem::path>& classFolders);
std::vector<std::filesystem::path> listSubfolders(const std::filesystem::path& folder);

// Labels CSV files (dataset_images.cpp).
std::optional<std::filesystem::path> labelsCsvOf(const std::filesystem::path& folder,
                                                 const std::optional<std::filesystem::path>& labelsPath);
std::vector<std::string> splitCsvLine(const std::string& line, const std::string& where);
void dropByteOrderMark(std::string& firstLine);
bool isLabelColumn(const std::string& header);

}  // namespace qe::dataset_detail
