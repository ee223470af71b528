#include "eval/accuracy.h"

#include "common/error.h"
#include "quant/image_batches.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace qe {

std::vector<int> topK(const float* scores, int classes, int k)
{
    std::vector<int> order(static_cast<std::size_t>(classes));
    std::iota(order.begin(), order.end(), 0);
    k = std::min(k, classes);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int a, int b) { return scores[a] > scores[b] || (scores[a] == scores[b] && a < b); });
    order.resize(static_cast<std::size_t>(k));
    return order;
}

Interval runningTop1Interval(const RunningTop1& r)
{
    if (r.total == 0 || r.scored == 0)
        return {0.0, 1.0};
    const double n = double(r.scored), total = double(r.total), p = double(r.correct) / n;
    if (r.scored >= r.total)
        return {p, p};
    constexpr double z = 1.959963984540054;  // the normal distribution's 97.5% quantile
    const double effective = n * (total - 1) / (total - n);
    const double z2 = z * z / effective;
    const double centre = (p + z2 / 2) / (1 + z2);
    const double half = z / (1 + z2) * std::sqrt(p * (1 - p) / effective + z2 / (4 * effective));
    // Every image left wrong, or every one right.
    const double lowest = double(r.correct) / total, highest = (double(r.correct) + total - n) / total;
    return {std::clamp(centre - half, lowest, highest), std::clamp(centre + half, lowest, highest)};
}

int TopKTally::add(const float* scores, int classes, int label)
{
    const std::vector<int> best = topK(scores, classes, 5);
    if (label >= 0) {
        ++labelled;
        top1Correct += best[0] == label;
        top5Correct += std::find(best.begin(), best.end(), label) != best.end();
    }
    return best[0];
}

ClassificationResult evaluateClassifier(const Executor& executor, const Dataset& dataset, const Preprocess& preprocess,
                                        const EvaluationOptions& options)
{
    const std::size_t total = options.limit ? std::min(options.limit, dataset.size()) : dataset.size();
    ClassificationResult result;
    result.predictions.reserve(total);
    TopKTally tally;
    auto scoreBatch = [&](std::size_t first, const Tensor& batch) {
        const std::size_t count = std::size_t(batch.dim(0));
        const Tensor output = runSingle(executor, batch).castTo(DataType::Float32);
        if (output.rank() < 1 || output.dim(0) != static_cast<std::int64_t>(count))
            throw Error(executor.graph().sourcePath + ": output " + output.describe() + " is not one score row per image");
        const int classes = static_cast<int>(output.size() / static_cast<std::int64_t>(count));
        for (std::size_t i = 0; i < count; ++i) {
            const float* row = output.data<float>() + i * static_cast<std::size_t>(classes);
            const int best = tally.add(row, classes, dataset.label(first + i));
            result.predictions.push_back(best);
            result.predictionScores.push_back(row[best]);
        }
        if (options.progress)
            options.progress(first + count, total);
    };
    forEachImageBatch(executor.graph(), dataset, preprocess, 0, total, options.batchSize, options.cancel, scoreBatch);
    result.count = tally.labelled;
    result.top1Correct = tally.top1Correct;
    result.top5Correct = tally.top5Correct;
    return result;
}

std::size_t ConfusionMatrix::total() const
{
    return std::accumulate(counts.begin(), counts.end(), std::size_t(0));
}

ConfusionMatrix confusionMatrix(const std::vector<int>& labels, const std::vector<int>& predictions)
{
    if (labels.size() != predictions.size())
        throw Error("confusion matrix: " + std::to_string(labels.size()) + " labels but " +
                    std::to_string(predictions.size()) + " predictions");
    ConfusionMatrix m;
    for (std::size_t i = 0; i < labels.size(); ++i)
        m.classes = std::max({m.classes, labels[i] + 1, predictions[i] + 1});
    m.counts.assign(std::size_t(m.classes) * std::size_t(m.classes), 0);
    for (std::size_t i = 0; i < labels.size(); ++i)
        if (labels[i] >= 0 && predictions[i] >= 0)
            ++m.counts[std::size_t(labels[i] * m.classes + predictions[i])];
    return m;
}

std::vector<ConfusedPair> mostConfusedPairs(const ConfusionMatrix& matrix, std::size_t count)
{
    std::vector<ConfusedPair> pairs;
    for (int label = 0; label < matrix.classes; ++label)
        for (int predicted = 0; predicted < matrix.classes; ++predicted)
            if (label != predicted && matrix.at(label, predicted) > 0)
                pairs.push_back({label, predicted, matrix.at(label, predicted)});
    std::stable_sort(pairs.begin(), pairs.end(), [](const ConfusedPair& a, const ConfusedPair& b) { return a.count > b.count; });
    if (pairs.size() > count)
        pairs.resize(count);
    return pairs;
}

std::vector<ClassAccuracy> classAccuracies(const ConfusionMatrix& matrix)
{
    std::vector<ClassAccuracy> classes;
    for (int label = 0; label < matrix.classes; ++label) {
        ClassAccuracy c{label, 0, matrix.at(label, label)};
        for (int predicted = 0; predicted < matrix.classes; ++predicted)
            c.images += matrix.at(label, predicted);
        if (c.images > 0)
            classes.push_back(c);
    }
    std::stable_sort(classes.begin(), classes.end(), [](const ClassAccuracy& a, const ClassAccuracy& b) {
        if (a.accuracy() != b.accuracy())
            return a.accuracy() < b.accuracy();
        return a.images > b.images;
    });
    return classes;
}

}  // namespace qe
