#pragma once
// The colours of every chart, in the window (ui/charts.cpp) and in reports (report.cpp), so that a
// legend means the same in both. Okabe-Ito: they stay distinct on a projector and for the common
// colour-vision deficiencies.

#include <cstddef>
#include <cstdint>
#include <iterator>

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

// Accuracy lost, in points of top-1 against float: a sequential scale (ColorBrewer's YlOrRd,
// light to dark), for the sensitivity map. Its lightness falls steadily from the first class to
// the last, so it reads the same for the common colour-vision deficiencies and in grey, which a
// set of distinct hues like Okabe-Ito's would not. Class i holds drops below kDropClassLimits[i];
// the last holds every larger drop.
constexpr double kDropClassLimits[] = {0.25, 0.5, 1, 2, 5, 10, 20};
constexpr Rgb kDropClassColours[] = {{255, 255, 204}, {255, 237, 160}, {254, 217, 118}, {254, 178, 76},
                                     {253, 141, 60},  {252, 78, 42},   {227, 26, 28},   {177, 0, 38}};
static_assert(std::size(kDropClassColours) == std::size(kDropClassLimits) + 1, "one colour a class, one more than the limits");

// The colour of a drop of `points` (a gain counts as no drop).
constexpr Rgb dropColour(double points)
{
    std::size_t k = 0;
    while (k < std::size(kDropClassLimits) && !(points < kDropClassLimits[k]))
        ++k;
    return kDropClassColours[k];
}

}  // namespace qe::palette
