#include "data/image_header.h"

#include <cstring>
#include <limits>

namespace qe {
namespace {

std::uint32_t bigEndian16(const std::uint8_t* p) { return (std::uint32_t{p[0]} << 8) | p[1]; }
std::uint32_t bigEndian32(const std::uint8_t* p) { return (bigEndian16(p) << 16) | bigEndian16(p + 2); }
std::uint32_t littleEndian16(const std::uint8_t* p) { return std::uint32_t{p[0]} | (std::uint32_t{p[1]} << 8); }
std::uint32_t littleEndian32(const std::uint8_t* p) { return littleEndian16(p) | (littleEndian16(p + 2) << 16); }

std::optional<ImageHeader> pngHeader(const std::uint8_t* bytes, std::size_t size)
{
    // Signature (8), then the IHDR chunk first: length (4), "IHDR", width, height, bit depth, colour type.
    if (size < 26 || std::memcmp(bytes + 12, "IHDR", 4) != 0)
        return std::nullopt;
    ImageHeader header{"PNG", bigEndian32(bytes + 16), bigEndian32(bytes + 20)};
    header.bytesPerSample = bytes[24] == 16 ? 2 : 1;
    // OpenCV decodes gray with alpha, and a palette (which may carry transparency), to four channels.
    switch (bytes[25]) {
    case 0: header.channels = 1; break;   // gray
    case 2: header.channels = 3; break;   // RGB
    default: header.channels = 4; break;  // palette, gray + alpha, RGBA
    }
    return header;
}

std::optional<ImageHeader> jpegHeader(const std::uint8_t* bytes, std::size_t size)
{
    // Segments after the start-of-image marker until a start-of-frame (SOF0-SOF15 but DHT C4,
    // JPG C8, DAC CC), which holds precision, height, width and the component count.
    std::size_t at = 2;
    while (at + 4 <= size) {
        if (bytes[at] != 0xFF)
            return std::nullopt;
        const std::uint8_t marker = bytes[at + 1];
        if (marker == 0xFF) {  // fill byte
            ++at;
            continue;
        }
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // markers without a length
            at += 2;
            continue;
        }
        if (marker == 0xD9 || marker == 0xDA)  // end of image, or the scan began without a frame
            return std::nullopt;
        const std::size_t length = bigEndian16(bytes + at + 2);
        const bool startOfFrame = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
        if (startOfFrame) {
            if (length < 8 || at + 10 > size)
                return std::nullopt;
            ImageHeader header{"JPEG", bigEndian16(bytes + at + 7), bigEndian16(bytes + at + 5)};
            header.channels = bytes[at + 9] >= 3 ? 3 : 1;  // OpenCV decodes YCbCr and CMYK to BGR
            return header;
        }
        if (length < 2)
            return std::nullopt;
        at += 2 + length;
    }
    return std::nullopt;
}

std::optional<ImageHeader> bmpHeader(const std::uint8_t* bytes, std::size_t size)
{
    // File header (14 bytes), then the DIB header: its size says which layout follows.
    if (size < 26)
        return std::nullopt;
    const std::uint32_t dibSize = littleEndian32(bytes + 14);
    ImageHeader header{"BMP"};
    std::uint32_t bitsPerPixel = 0;
    if (dibSize == 12) {  // OS/2 BITMAPCOREHEADER: 16-bit width and height
        header.width = littleEndian16(bytes + 18);
        header.height = littleEndian16(bytes + 20);
        bitsPerPixel = littleEndian16(bytes + 24);
    } else if (dibSize >= 40 && size >= 30) {
        const auto width = static_cast<std::int32_t>(littleEndian32(bytes + 18));
        const auto height = static_cast<std::int32_t>(littleEndian32(bytes + 22));  // negative: stored top-down
        if (width < 0 || height == std::numeric_limits<std::int32_t>::min())
            return std::nullopt;
        header.width = static_cast<std::uint32_t>(width);
        header.height = static_cast<std::uint32_t>(height < 0 ? -height : height);
        bitsPerPixel = littleEndian16(bytes + 28);
    } else {
        return std::nullopt;
    }
    header.channels = bitsPerPixel == 32 ? 4 : 3;
    return header;
}

}  // namespace

std::uint64_t ImageHeader::decodedBytes() const
{
    // Saturates instead of wrapping: 2^32 x 2^32 pixels must not look small.
    constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
    const std::uint64_t perPixel = static_cast<std::uint64_t>(channels) * static_cast<std::uint64_t>(bytesPerSample);
    std::uint64_t bytes = width;
    for (const std::uint64_t factor : {std::uint64_t{height}, perPixel}) {
        if (factor != 0 && bytes > kMax / factor)
            return kMax;
        bytes *= factor;
    }
    return bytes;
}

std::optional<ImageHeader> readImageHeader(const std::uint8_t* bytes, std::size_t size)
{
    static constexpr std::uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (size >= 8 && std::memcmp(bytes, kPngSignature, 8) == 0)
        return pngHeader(bytes, size);
    if (size >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF)
        return jpegHeader(bytes, size);
    if (size >= 2 && bytes[0] == 'B' && bytes[1] == 'M')
        return bmpHeader(bytes, size);
    return std::nullopt;
}

}  // namespace qe
