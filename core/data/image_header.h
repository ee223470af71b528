#pragma once
// The size an image file declares, read from its header before anything is decoded. A PNG of a
// few kilobytes can declare 60000 x 60000 pixels; OpenCV would allocate the 10 GB before it found
// out whether the pixels are there. Reading the header first lets the data set readers refuse such
// a file against the memory budget (common/limits.h) with a clear error.
//
// Only the formats the data set readers accept: PNG, JPEG (baseline and progressive) and BMP.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace qe {

struct ImageHeader {
    std::string format;      // "PNG", "JPEG" or "BMP"
    std::uint32_t width = 0, height = 0;
    // As decoded: 1 to 4. For a BMP an upper bound (its header gives bits per pixel only).
    int channels = 0;
    int bytesPerSample = 1;  // 2 for 16-bit PNG
    // What decoding allocates for the pixels.
    std::uint64_t decodedBytes() const;
};

// The header of the image in `bytes`; nullopt when `bytes` does not start like a PNG, JPEG or BMP
// file, or its header is cut short or names no size.
std::optional<ImageHeader> readImageHeader(const std::uint8_t* bytes, std::size_t size);

}  // namespace qe
