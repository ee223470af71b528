#pragma once
// Mixed-precision search: the smallest configuration within an accuracy budget, or the most
// accurate one within a size budget, choosing per layer a weight width, an activation width or
// float.
//
// How: the layers' sensitivity (measured on the search images) predicts what each one-layer move
// to a cheaper setting costs in accuracy; starting from every layer at its most accurate setting,
// a greedy walk takes, at each step, the move with the least accuracy lost per byte (or bit
// operation) saved among the few best predicted ones, each evaluated for real (a one-layer change:
// the evaluator resumes at that layer). The walk goes down to the cheapest setting, then a
// refinement tries one-layer changes around the Pareto front. Every configuration evaluated is
// kept, and the Pareto front is marked among them.
//
// Honest accuracy: candidates are measured on search images that are neither the reported study's
// evaluation images nor its calibration images (see chooseSearchImages); the chosen configuration
// is then measured on the reported study's images, which is the accuracy the result reports.

#include "study/sensitivity.h"

#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace qe {

struct SearchBudget {
    enum class Kind { MaxAccuracyDrop, MaxSize };
    Kind kind = Kind::MaxAccuracyDrop;
    double maxAccuracyDropPoints = 0.5;  // top-1 points (percent) below float, on the search images
    double maxSize = 0;                  // bytes (SearchCost::SizeBytes) or bit operations (BitOperations)
};

// What "smaller" means: the weight bytes the configuration stores (ModelMetrics::sizeBytes), or
// bit operations per image (ModelMetrics::bitOperations: MACs x weight bits x activation bits).
enum class SearchCost { SizeBytes, BitOperations };

struct SearchOptions {
    SearchBudget budget;
    SearchCost cost = SearchCost::SizeBytes;
    std::vector<int> weightBits{2, 3, 4, 6, 8};
    std::vector<int> activationBits{4, 6, 8};
    // Keeping a layer in float is a candidate (for layers with weights: a layer without weights
    // costs the same at any width, so it keeps an activation width).
    bool allowFloat = true;
    // The search images: the first `searchImages` of this data set. Default: the last images of
    // the calibration set (the training split beside --data) after the calibration images.
    std::optional<std::filesystem::path> searchData;
    std::size_t searchImages = 1000;
};

struct SearchCandidate {
    QuantConfig config;
    double searchTop1 = 0;     // on the search images
    double searchOutputSqnrDb = 0;  // the output's SQNR against float on the search images
    double sizeBytes = 0;      // ModelMetrics::sizeBytes
    double bitOperations = 0;  // ModelMetrics::bitOperations
    std::map<std::string, PrecisionChoice> layers;  // every quantizable layer's setting
    bool onFront = false;      // on the Pareto front of all candidates evaluated (cost, searchTop1)
};

// Which images the search measures candidates on, and why they are not the reported ones.
struct SearchImages {
    std::filesystem::path path;
    std::size_t first = 0, count = 0;  // images [first, first + count) of `path`
    std::string description;           // "train-images-idx3-ubyte.gz, images 59000-59999"
};

struct SearchResult {
    QuantConfig chosen;
    double top1 = 0;            // the chosen configuration on the reported study's images
    double searchTop1 = 0;      // ... on the search images
    double floatTop1 = 0;       // float on the reported study's images
    double searchFloatTop1 = 0; // float on the search images (what the accuracy budget is against)
    double sizeBytes = 0, bitOperations = 0;  // the chosen configuration's
    double baseSizeBytes = 0;   // the base configuration's size
    SearchImages searchImages;
    std::vector<SearchCandidate> evaluated;  // in the order evaluated; onFront marks the Pareto front
    // Why the budget was not met and by how much ("" when it was): the chosen configuration is
    // then the closest one (the most accurate for an accuracy budget, the smallest for a size one).
    std::string shortfall;
    bool complete = true;  // false when cancelled: `evaluated` keeps everything measured so far
};

// The search images for `reported` (see SearchOptions::searchData); throws qe::Error when no
// images distinct from the evaluation and calibration images are available (no training split
// beside --data and no --search-data), saying what to give.
SearchImages chooseSearchImages(Study& reported, const QuantConfig& base, const SearchOptions& options);

// Runs the search. `onCandidate` is called after each evaluation (the window's Pareto view fills
// as it goes). Throws qe::Error for an unknown width before anything runs; when cancelled it
// returns what it has with complete = false (the chosen configuration is then the best of those
// evaluated, measured on the reported images only if that finished).
SearchResult searchMixedPrecision(Study& reported, const QuantConfig& base, const SearchOptions& options,
                                  const EvaluationProgress& progress,
                                  const std::function<void(const SearchCandidate&)>& onCandidate = {});

// The Pareto front of any list of (cost, accuracy) points: the indices of those that no other
// point beats (lower or equal cost and higher or equal accuracy, one of them strictly), sorted by
// cost. Of exact duplicates the first is kept. Used by the search, its tests, the CLI and the
// window's Pareto view (which also holds hand-made configurations).
std::vector<std::size_t> paretoFront(const std::vector<std::pair<double, double>>& costAndAccuracy);

// The cost the search minimises, of one evaluated configuration.
double searchCost(SearchCost cost, double sizeBytes, double bitOperations);

}  // namespace qe
