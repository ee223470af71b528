#pragma once
// The colours of every chart, in the window (ui/charts.cpp) and in reports (report.cpp), so that a
// legend means the same in both. Okabe-Ito: they stay distinct on a projector and for the common
// colour-vision deficiencies.

#include <cstdint>

namespace qe::palette {

struct Rgb {
    std::uint8_t r, g, b;
};

constexpr Rgb kBlue{0, 114, 178};     // accumulated error; the histogram's values
constexpr Rgb kOrange{230, 159, 0};   // isolated error; the current configuration
constexpr Rgb kRed{213, 94, 0};       // clipping: the clip range and the clipped mass; layers kept in float
constexpr Rgb kGreen{0, 158, 115};
constexpr Rgb kPurple{204, 121, 167};
constexpr Rgb kSky{86, 180, 233};
constexpr Rgb kYellow{240, 228, 66};
constexpr Rgb kGrey{90, 90, 90};      // quantization levels

}  // namespace qe::palette
