#pragma once
// Classification accuracy of a model on a data set: the loop the CLI, the GUI and the tests share.

#include "data/dataset.h"
#include "engine/executor.h"
#include "model/graph.h"

#include <atomic>
#include <cstddef>
#include <functional>
#include <vector>

namespace qe {

struct ClassificationResult {
    std::size_t count = 0;
    std::size_t top1Correct = 0, top5Correct = 0;
    std::vector<int> predictions;          // top-1 class per image
    std::vector<float> predictionScores;   // the top-1 output value per image
    double top1() const { return count ? double(top1Correct) / double(count) : 0.0; }
    double top5() const { return count ? double(top5Correct) / double(count) : 0.0; }
};

struct EvaluationOptions {
    std::size_t limit = 0;       // 0: all images
    std::size_t batchSize = 32;  // reduced to 1 for models with a fixed batch of one
    std::function<void(std::size_t done, std::size_t total)> progress;
    const std::atomic<bool>* cancel = nullptr;
};

// Images without a label (-1) count toward `count` only through predictions; top-1/top-5 are
// computed over labelled images.
ClassificationResult evaluateClassifier(const Executor& executor, const Dataset& dataset, const Preprocess& preprocess,
                                        const EvaluationOptions& options = {});

// Indices of the k largest values of one row of scores, largest first.
std::vector<int> topK(const float* scores, int classes, int k);

// Top-1 / top-5 counting over score rows; unlabelled rows (label -1) only give a prediction.
struct TopKTally {
    std::size_t labelled = 0, top1Correct = 0, top5Correct = 0;
    // Returns the row's top-1 class.
    int add(const float* scores, int classes, int label);
    double top1() const { return labelled ? double(top1Correct) / double(labelled) : 0.0; }
    double top5() const { return labelled ? double(top5Correct) / double(labelled) : 0.0; }
};

// Top-1 while an evaluation streams through a set: `correct` of the `scored` labelled images so
// far, of `total` labelled images in all.
struct RunningTop1 {
    std::size_t correct = 0, scored = 0, total = 0;
    double value() const { return scored ? double(correct) / double(scored) : 0.0; }
};

// Where the top-1 on all `total` images lies, at 95%, knowing `correct` of the `scored` so far
// (images in the order the set holds them, taken as a random sample of it): Wilson's score
// interval, with the finite-population correction as an effective sample size (scored * (total -
// 1) / (total - scored): what is unknown is only the images left), clipped to what the images
// left can still do. Once every image is scored the interval is the top-1 itself.
struct Interval {
    double low = 0, high = 0;
};
Interval runningTop1Interval(const RunningTop1& running);

// How often images of class `label` were predicted as class `predicted`. Unlabelled images (-1)
// are left out. The class count is the largest label or prediction seen plus one.
struct ConfusionMatrix {
    int classes = 0;
    std::vector<std::size_t> counts;  // row-major: counts[label * classes + predicted]
    std::size_t at(int label, int predicted) const { return counts[std::size_t(label * classes + predicted)]; }
    std::size_t total() const;
};
ConfusionMatrix confusionMatrix(const std::vector<int>& labels, const std::vector<int>& predictions);

// What a confusion matrix with many classes says in a readable form: the most frequent mistakes
// and each class's accuracy (a 1000 x 1000 matrix of a few hundred images is a grey block).
struct ConfusedPair {
    int label = 0, predicted = 0;
    std::size_t count = 0;
};
// The `count` largest off-diagonal cells, most frequent first (ties: smaller label, then
// prediction, first).
std::vector<ConfusedPair> mostConfusedPairs(const ConfusionMatrix& matrix, std::size_t count);
struct ClassAccuracy {
    int label = 0;
    std::size_t images = 0, correct = 0;
    double accuracy() const { return images ? double(correct) / double(images) : 0.0; }
};
// Every class with at least one labelled image, worst accuracy first (ties: more images, then
// smaller label, first).
std::vector<ClassAccuracy> classAccuracies(const ConfusionMatrix& matrix);

}  // namespace qe
