#pragma once
// A number in fixed notation with a given count of decimals ("0.73883" for 5), as reports, lesson
// texts and the integer trace print their numbers.

#include <algorithm>
#include <cstdio>
#include <string>

namespace qe {

inline std::string formatFixed(double value, int decimals)
{
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.*f", std::clamp(decimals, 0, 9), value);
    return buffer;
}

}  // namespace qe
