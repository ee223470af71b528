#pragma once
// Two evaluated configurations of one model on the same images, side by side (A/B): how their
// accuracy, agreement with float and size differ, how each layer's accumulated error differs, and
// the images whose top-1 prediction differs between them, sorted by which one is right.
//
// Whether B is "really" better than A is a paired question (the same images): only the images
// where exactly one of them is right carry information. McNemar's exact test asks how likely a
// split of those discordant images at least as uneven as the one seen would be if A and B were
// equally good (each discordant image a fair coin): the two-sided exact binomial p-value.

#include "eval/quant_evaluator.h"

#include <cstddef>
#include <string>
#include <vector>

namespace qe {

// One image whose top-1 prediction differs between A and B.
struct DifferingImage {
    enum class Outcome { ARightBWrong, BRightAWrong, BothWrong, Unlabelled };
    std::size_t image = 0;  // index among the evaluation images
    int label = -1, predictionA = -1, predictionB = -1;
    Outcome outcome = Outcome::BothWrong;
};

// A layer's accumulated error (the quantized model up to it against float) under A and under B.
struct LayerComparison {
    std::string name;
    ErrorStats a, b;
};

struct ConfigComparison {
    std::size_t images = 0, labelledImages = 0;  // top-1 counts only the labelled ones
    double top1A = 0, top1B = 0, top5A = 0, top5B = 0;
    double agreementA = 0, agreementB = 0;  // with the float model's top-1
    double sizeBytesA = 0, sizeBytesB = 0;
    double outputSqnrDbA = 0, outputSqnrDbB = 0;
    std::vector<LayerComparison> layers;  // A's layers in graph order
    std::vector<DifferingImage> differing;  // in image order
    // Counts of `differing` by outcome. bRightAWrong - aRightBWrong equals
    // (top1B - top1A) * labelledImages: only these images move top-1.
    std::size_t aRightBWrong = 0, bRightAWrong = 0, bothWrong = 0, unlabelled = 0;
    // McNemar's exact two-sided p-value on the discordant images (aRightBWrong, bRightAWrong);
    // 1 when there are none. Small (say below 0.05): the difference in top-1 is unlikely to be
    // chance on these images.
    double mcnemarP = 1;

    double top1Difference() const { return top1B - top1A; }
    // "B is better/worse than A by ... (p = ...)", or that the difference could be chance.
    std::string verdict() const;
};

// `a` and `b` must come from the same images (same count and labels); throws qe::Error otherwise.
ConfigComparison compareEvaluations(const ModelMetrics& a, const ModelMetrics& b);

// The two-sided exact binomial test of `k` successes against n - k at p = 1/2 (McNemar's exact
// test when they are the discordant pairs): min(1, 2 * P[X <= min(k, n-k)]), X ~ Binomial(n, 1/2).
double exactBinomialTwoSidedP(std::size_t k, std::size_t n);

const char* outcomeName(DifferingImage::Outcome outcome);  // "A right, B wrong", ...

}  // namespace qe
