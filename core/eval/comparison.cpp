#include "eval/comparison.h"

#include "common/error.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <unordered_map>

namespace qe {

double exactBinomialTwoSidedP(std::size_t k, std::size_t n)
{
    if (k > n)
        throw Error("binomial test: " + std::to_string(k) + " successes out of " + std::to_string(n) + " trials");
    if (n == 0)
        return 1;
    // P[X = i] = C(n, i) / 2^n, summed in logarithms: 2^n overflows a double past n = 1023.
    const std::size_t tail = std::min(k, n - k);
    const double logHalfToN = -double(n) * std::log(2.0);
    double sum = 0;
    for (std::size_t i = 0; i <= tail; ++i)
        sum += std::exp(std::lgamma(double(n) + 1) - std::lgamma(double(i) + 1) - std::lgamma(double(n - i) + 1) + logHalfToN);
    return std::min(1.0, 2 * sum);
}

const char* outcomeName(DifferingImage::Outcome outcome)
{
    switch (outcome) {
    case DifferingImage::Outcome::ARightBWrong: return "A right, B wrong";
    case DifferingImage::Outcome::BRightAWrong: return "B right, A wrong";
    case DifferingImage::Outcome::BothWrong: return "both wrong";
    case DifferingImage::Outcome::Unlabelled: return "no label";
    }
    return "?";
}

std::string ConfigComparison::verdict() const
{
    char text[200];
    const double points = 100 * top1Difference();
    if (aRightBWrong + bRightAWrong == 0)
        std::snprintf(text, sizeof text, "A and B are right on the same images: the same top-1");
    else if (mcnemarP < 0.05)
        std::snprintf(text, sizeof text, "B is %s than A by %.2f points of top-1; McNemar p = %.3g: unlikely to be chance",
                      points > 0 ? "better" : "worse", std::abs(points), mcnemarP);
    else
        std::snprintf(text, sizeof text, "top-1 differs by %+.2f points (B - A); McNemar p = %.3g: could be chance on %zu images",
                      points, mcnemarP, labelledImages);
    return text;
}

ConfigComparison compareEvaluations(const ModelMetrics& a, const ModelMetrics& b)
{
    if (a.predictions.size() != b.predictions.size() || a.labels != b.labels)
        throw Error("the two configurations were evaluated on different images (" + std::to_string(a.predictions.size()) +
                    " and " + std::to_string(b.predictions.size()) + "); a comparison needs the same ones");
    ConfigComparison c;
    c.images = a.predictions.size();
    c.top1A = a.top1, c.top1B = b.top1, c.top5A = a.top5, c.top5B = b.top5;
    c.agreementA = a.agreement, c.agreementB = b.agreement;
    c.sizeBytesA = a.sizeBytes, c.sizeBytesB = b.sizeBytes;
    c.outputSqnrDbA = a.outputSqnrDb, c.outputSqnrDbB = b.outputSqnrDb;

    std::unordered_map<std::string, const LayerMetrics*> layersOfB;
    for (const LayerMetrics& l : b.layers)
        layersOfB[l.name] = &l;
    for (const LayerMetrics& l : a.layers) {
        auto other = layersOfB.find(l.name);
        if (other == layersOfB.end())
            throw Error("layer " + l.name + " was evaluated under A but not under B; a comparison needs the same model");
        c.layers.push_back({l.name, l.accumulated, other->second->accumulated});
    }

    for (std::size_t i = 0; i < c.images; ++i) {
        const int label = i < a.labels.size() ? a.labels[i] : -1;
        c.labelledImages += label >= 0;
        if (a.predictions[i] == b.predictions[i])
            continue;
        DifferingImage d{i, label, a.predictions[i], b.predictions[i], DifferingImage::Outcome::BothWrong};
        if (label < 0)
            d.outcome = DifferingImage::Outcome::Unlabelled, ++c.unlabelled;
        else if (d.predictionA == label)
            d.outcome = DifferingImage::Outcome::ARightBWrong, ++c.aRightBWrong;
        else if (d.predictionB == label)
            d.outcome = DifferingImage::Outcome::BRightAWrong, ++c.bRightAWrong;
        else
            ++c.bothWrong;
        c.differing.push_back(d);
    }
    c.mcnemarP = exactBinomialTwoSidedP(c.bRightAWrong, c.aRightBWrong + c.bRightAWrong);
    return c;
}

}  // namespace qe
