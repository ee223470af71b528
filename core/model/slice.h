#pragma once
// Slice's geometry, shared by its kernel and its shape rule: which elements of each axis a Slice
// keeps, with starts and ends clamped as the ONNX operator definition gives them.

#include "common/error.h"
#include "model/graph.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace qe {

struct SliceGeometry {
    Shape shape;                      // the output's
    std::vector<std::int64_t> begin;  // per input axis: the first element kept
    std::vector<std::int64_t> step;   // per input axis: the distance between kept elements
};

// `axes` and `steps` may be empty (every axis in order, steps of 1). Errors are plain qe::Errors;
// the caller (the kernel, the shape rule) names the node.
inline SliceGeometry sliceGeometry(const Shape& input, const std::vector<std::int64_t>& starts,
                                   const std::vector<std::int64_t>& ends, std::vector<std::int64_t> axes,
                                   std::vector<std::int64_t> steps)
{
    const auto rank = static_cast<std::int64_t>(input.size());
    if (axes.empty())
        for (std::size_t i = 0; i < starts.size(); ++i)
            axes.push_back(static_cast<std::int64_t>(i));
    if (steps.empty())
        steps.assign(starts.size(), 1);
    if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
        throw Error("starts, ends, axes and steps must have the same length");

    SliceGeometry g{input, std::vector<std::int64_t>(input.size(), 0), std::vector<std::int64_t>(input.size(), 1)};
    for (std::size_t i = 0; i < starts.size(); ++i) {
        if (axes[i] < -rank || axes[i] >= rank)
            throw Error("axis " + std::to_string(axes[i]) + " is out of range for rank " + std::to_string(rank));
        const auto d = static_cast<std::size_t>(axes[i] < 0 ? axes[i] + rank : axes[i]);
        const std::int64_t n = input[d], s = steps[i];
        if (s == 0)
            throw Error("step 0 is not allowed");
        // Clamping as the ONNX definition gives it (other bounds for negative steps).
        std::int64_t start = starts[i] < 0 ? starts[i] + n : starts[i];
        std::int64_t end = ends[i] < 0 ? ends[i] + n : ends[i];
        if (s > 0) {
            start = std::clamp<std::int64_t>(start, 0, n);
            end = std::clamp<std::int64_t>(end, 0, n);
        } else {
            start = std::clamp<std::int64_t>(start, 0, n - 1);
            end = std::clamp<std::int64_t>(end, -1, n - 1);
        }
        g.shape[d] = s > 0 ? std::max<std::int64_t>(0, (end - start + s - 1) / s)
                           : std::max<std::int64_t>(0, (start - end + (-s) - 1) / (-s));
        g.begin[d] = start;
        g.step[d] = s;
    }
    return g;
}

}  // namespace qe
