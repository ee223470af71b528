#pragma once
// Sliding-window geometry shared by Conv, the pooling operators, their int8 steps and their shape
// rules: kernel, strides, dilations, padding (explicit or auto_pad) and the output size, as the
// ONNX operator definitions give them.

#include "common/error.h"
#include "model/graph.h"

#include <cstdint>
#include <string>

namespace qe {

struct Window2D {
    std::int64_t kernelH = 1, kernelW = 1;
    std::int64_t strideH = 1, strideW = 1;
    std::int64_t dilationH = 1, dilationW = 1;
    std::int64_t padTop = 0, padLeft = 0, padBottom = 0, padRight = 0;
    std::int64_t inH = 1, inW = 1;
    std::int64_t outH = 1, outW = 1;
};

// `spatialRank` is 1 or 2 (1-D windows are 2-D windows of height 1). `ceilMode` is for pooling.
// Errors are plain qe::Errors; the caller (a kernel, a shape rule) names the node.
inline Window2D makeWindow(const Node& node, int spatialRank, std::int64_t inH, std::int64_t inW,
                           std::int64_t kernelH, std::int64_t kernelW, bool ceilMode)
{
    auto pick = [&](const std::vector<std::int64_t>& values, std::int64_t fallback) {
        if (values.empty())
            return std::pair{fallback, fallback};
        if (static_cast<int>(values.size()) != spatialRank)
            throw Error("expects " + std::to_string(spatialRank) + " values per spatial attribute, got " +
                                  std::to_string(values.size()));
        return spatialRank == 1 ? std::pair{std::int64_t{1}, values[0]} : std::pair{values[0], values[1]};
    };
    Window2D w;
    w.inH = inH;
    w.inW = inW;
    w.kernelH = kernelH;
    w.kernelW = kernelW;
    std::tie(w.strideH, w.strideW) = pick(node.intsAttribute("strides"), 1);
    std::tie(w.dilationH, w.dilationW) = pick(node.intsAttribute("dilations"), 1);
    if (w.strideH < 1 || w.strideW < 1 || w.dilationH < 1 || w.dilationW < 1)
        throw Error("strides and dilations must be positive");

    const std::int64_t effH = w.dilationH * (kernelH - 1) + 1;
    const std::int64_t effW = w.dilationW * (kernelW - 1) + 1;
    const std::string autoPad = node.stringAttribute("auto_pad", "NOTSET");
    if (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
        auto same = [&](std::int64_t in, std::int64_t stride, std::int64_t eff, std::int64_t& begin, std::int64_t& end,
                        std::int64_t& out) {
            out = (in + stride - 1) / stride;
            const std::int64_t total = std::max<std::int64_t>(0, (out - 1) * stride + eff - in);
            begin = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2;
            end = total - begin;
        };
        same(inH, w.strideH, effH, w.padTop, w.padBottom, w.outH);
        same(inW, w.strideW, effW, w.padLeft, w.padRight, w.outW);
        return w;
    }
    if (autoPad != "NOTSET" && autoPad != "VALID")
        throw Error("auto_pad '" + autoPad + "' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID");
    if (autoPad == "NOTSET") {
        const auto pads = node.intsAttribute("pads");
        if (!pads.empty()) {
            if (static_cast<int>(pads.size()) != 2 * spatialRank)
                throw Error("'pads' needs " + std::to_string(2 * spatialRank) + " values");
            if (spatialRank == 1) {
                w.padLeft = pads[0];
                w.padRight = pads[1];
            } else {
                w.padTop = pads[0];
                w.padLeft = pads[1];
                w.padBottom = pads[2];
                w.padRight = pads[3];
            }
        }
    }
    auto outSize = [&](std::int64_t in, std::int64_t padSum, std::int64_t eff, std::int64_t stride, std::int64_t padBegin) {
        const std::int64_t span = in + padSum - eff;
        if (span < 0)
            throw Error("the window (" + std::to_string(eff) + ") is larger than the padded input (" +
                                  std::to_string(in + padSum) + ")");
        std::int64_t out = (ceilMode ? (span + stride - 1) / stride : span / stride) + 1;
        // With ceil_mode the last window must start inside the input or its leading padding.
        if (ceilMode && (out - 1) * stride >= in + padBegin)
            --out;
        return out;
    };
    w.outH = outSize(inH, w.padTop + w.padBottom, effH, w.strideH, w.padTop);
    w.outW = outSize(inW, w.padLeft + w.padRight, effW, w.strideW, w.padLeft);
    return w;
}

}  // namespace qe
