#include "study/precision_search.h"

#include "common/error.h"
#include "study/study.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>

namespace qe {

namespace {

// The one-layer moves (on different layers) evaluated for real at each greedy step: enough to
// correct the sensitivity's additive guess, few enough to scale.
constexpr std::size_t kMovesEvaluatedPerStep = 3;
// Top-1 is coarse (one image is 0.1 points on 1000): the output's noise breaks its ties, weighted
// so little that it never outweighs a whole image.
constexpr double kNoiseTieBreak = 1e-5;

double noisePower(double sqnrDb) { return std::isfinite(sqnrDb) ? std::pow(10.0, -sqnrDb / 10.0) : 0.0; }

// One layer's setting with what the sensitivity says it costs and keeps.
struct Option {
    PrecisionChoice choice;
    double cost = 0;       // this layer's share of the search cost
    double top1 = 0;       // the model's with only this layer at this setting
    double noise = 0;      // the output's relative noise power then
};

struct LayerOptions {
    std::string layer;
    std::vector<Option> options;  // most costly first
};

std::string pointsText(double fraction)
{
    std::ostringstream out;
    out.precision(2);
    out << std::fixed << 100.0 * fraction;
    return out.str();
}

class Search {
public:
    Search(Study& study, const QuantConfig& base, const SearchOptions& options, const EvaluationProgress& progress,
           const std::function<void(const SearchCandidate&)>& onCandidate)
        : study_(study), base_(base), options_(options), progress_(progress), onCandidate_(onCandidate)
    {
    }

    void measureOptions(const SearchOptions& options)
    {
        SensitivityOptions s{.weightBits = options.weightBits, .activationBits = options.activationBits, .layers = {}, .allButThis = false};
        const SensitivityResult sensitivity = measureSensitivity(study_, base_, s, quietProgress("sensitivity"));
        if (!sensitivity.complete)
            throw Cancelled();
        floatTop1_ = sensitivity.floatTop1;
        // The float cost of each layer: from the all-float configuration's metrics.
        QuantConfig allFloat = base_;
        for (const QuantLayer& l : study_.layers())
            allFloat = withLayerPrecision(allFloat, l.name, {.keepFloat = true});
        const ModelMetrics floatMetrics = study_.evaluate(allFloat, kCostOnlyRequest, quiet()).metrics;
        for (std::size_t i = 0; i < sensitivity.layers.size(); ++i) {
            const LayerSensitivity& l = sensitivity.layers[i];
            const LayerMetrics& f = floatMetrics.layers[i];
            LayerOptions layer{.layer = l.layer, .options = {}};
            // Float is a choice for a layer's weights; a layer without weights costs nothing at
            // any width, so float would always win there and it keeps an activation width.
            if (options.allowFloat && f.weightCount > 0)
                layer.options.push_back({{.keepFloat = true}, searchCost(options.cost, f.weightBytes, f.bitOperations),
                                         sensitivity.floatTop1, 0.0});
            for (const SensitivityPoint& p : l.onlyThis)
                layer.options.push_back({{p.weightBits, p.activationBits, false}, searchCost(options.cost, p.layerBytes, p.layerBitOperations),
                                         p.top1, noisePower(p.outputSqnrDb)});
            // Most accurate first among equal costs, so that the walk starts at the best.
            std::stable_sort(layer.options.begin(), layer.options.end(), [](const Option& a, const Option& b) {
                return a.cost != b.cost ? a.cost > b.cost : a.top1 - kNoiseTieBreak * a.noise > b.top1 - kNoiseTieBreak * b.noise;
            });
            layers_.push_back(layer);
        }
    }

    // Greedy: from every layer at its most accurate setting, one layer one move cheaper at a time.
    void walk()
    {
        std::vector<std::size_t> current(layers_.size(), 0);
        std::size_t at = evaluate(current);
        while (!walkCanStop(candidates_[at])) {
            struct Move {
                std::size_t layer, option;
                double predictedLossPerCost, saved;
            };
            std::vector<Move> moves;
            for (std::size_t l = 0; l < layers_.size(); ++l) {
                const Option& now = layers_[l].options[current[l]];
                for (std::size_t o = current[l] + 1; o < layers_[l].options.size(); ++o) {
                    const Option& next = layers_[l].options[o];
                    const double saved = now.cost - next.cost;
                    if (saved > 0)
                        moves.push_back({l, o, std::max(0.0, loss(now, next)) / saved, saved});
                }
            }
            if (moves.empty())
                break;
            // Among moves predicted to lose nothing (top-1 is coarse), the larger saving first.
            std::stable_sort(moves.begin(), moves.end(), [](const Move& a, const Move& b) {
                return a.predictedLossPerCost != b.predictedLossPerCost ? a.predictedLossPerCost < b.predictedLossPerCost : a.saved > b.saved;
            });
            // The best prediction of each of a few layers, measured: the one really losing least
            // per cost saved wins.
            const double atCost = cost(candidates_[at]), atScore = score(candidates_[at]);
            std::size_t best = at;
            std::vector<std::size_t> bestSettings;
            double bestRatio = std::numeric_limits<double>::infinity();
            std::set<std::size_t> triedLayers;
            for (const Move& move : moves) {
                if (triedLayers.size() == kMovesEvaluatedPerStep)
                    break;
                if (!triedLayers.insert(move.layer).second)
                    continue;
                std::vector<std::size_t> next = current;
                next[move.layer] = move.option;
                const std::size_t c = evaluate(next);
                const double ratio = (atScore - score(candidates_[c])) / std::max(1e-12, atCost - cost(candidates_[c]));
                if (ratio < bestRatio) {
                    bestRatio = ratio;
                    best = c;
                    bestSettings = next;
                }
            }
            current = bestSettings;
            at = best;
        }
    }

    // Around the front: every one-step change of one layer (cheaper or dearer) of the front's
    // configurations nearest the budget, until nothing new joins the front or the evaluations
    // run out.
    void refine(std::size_t maxEvaluations)
    {
        std::set<std::vector<std::size_t>> expanded;
        const std::size_t stop = candidates_.size() + maxEvaluations;
        bool grew = true;
        while (grew && candidates_.size() < stop) {
            grew = false;
            markFront();
            std::vector<std::size_t> front;
            for (std::size_t i = 0; i < candidates_.size(); ++i)
                if (candidates_[i].onFront && !expanded.count(settings_[i]))
                    front.push_back(i);
            // Those nearest the budget's edge first.
            std::sort(front.begin(), front.end(), [&](std::size_t a, std::size_t b) { return distanceToBudget(a) < distanceToBudget(b); });
            for (std::size_t i : front) {
                expanded.insert(settings_[i]);
                const std::vector<std::size_t> around = settings_[i];
                for (std::size_t l = 0; l < layers_.size() && candidates_.size() < stop; ++l)
                    for (int step : {+1, -1}) {
                        const long o = long(around[l]) + step;
                        if (o < 0 || o >= long(layers_[l].options.size()))
                            continue;
                        std::vector<std::size_t> next = around;
                        next[l] = std::size_t(o);
                        if (seen_.count(next) || candidates_.size() >= stop)
                            continue;
                        evaluate(next);
                        grew = true;
                    }
            }
        }
        markFront();
    }

    void markFront()
    {
        std::vector<std::pair<double, double>> points;
        for (const SearchCandidate& c : candidates_)
            points.push_back({cost(c), c.searchTop1});
        for (SearchCandidate& c : candidates_)
            c.onFront = false;
        for (std::size_t i : paretoFront(points))
            candidates_[i].onFront = true;
    }

    // The cheapest candidate within an accuracy budget, the most accurate within a size budget;
    // else the closest, with the shortfall said.
    std::size_t choose(std::string& shortfall) const
    {
        const bool byAccuracy = options_.budget.kind == SearchBudget::Kind::MaxAccuracyDrop;
        std::optional<std::size_t> best, closest;
        for (std::size_t i = 0; i < candidates_.size(); ++i) {
            const SearchCandidate& c = candidates_[i];
            if (meetsBudget(c)) {
                if (!best || (byAccuracy ? cost(c) < cost(candidates_[*best]) ||
                                               (cost(c) == cost(candidates_[*best]) && c.searchTop1 > candidates_[*best].searchTop1)
                                         : c.searchTop1 > candidates_[*best].searchTop1 ||
                                               (c.searchTop1 == candidates_[*best].searchTop1 && cost(c) < cost(candidates_[*best]))))
                    best = i;
            }
            if (!closest || (byAccuracy ? c.searchTop1 > candidates_[*closest].searchTop1 : cost(c) < cost(candidates_[*closest])))
                closest = i;
        }
        if (best)
            return *best;
        if (!closest)
            throw Cancelled();
        const SearchCandidate& c = candidates_[*closest];
        if (byAccuracy)
            shortfall = "no configuration evaluated is within " + pointsText(options_.budget.maxAccuracyDropPoints / 100) +
                        " points of float top-1 on the search images; the most accurate is " +
                        pointsText(floatTop1_ - c.searchTop1) + " points below float";
        else
            shortfall = "no configuration evaluated is within " + std::to_string(std::llround(options_.budget.maxSize)) +
                        (options_.cost == SearchCost::SizeBytes ? " bytes" : " bit operations") + "; the smallest takes " +
                        std::to_string(std::llround(cost(c)));
        return *closest;
    }

    std::vector<SearchCandidate> candidates_;
    double floatTop1_ = 0;

private:
    double cost(const SearchCandidate& c) const { return searchCost(options_.cost, c.sizeBytes, c.bitOperations); }
    double score(const SearchCandidate& c) const { return c.searchTop1 - kNoiseTieBreak * noisePower(c.searchOutputSqnrDb); }
    double loss(const Option& from, const Option& to) const
    {
        return (from.top1 - kNoiseTieBreak * from.noise) - (to.top1 - kNoiseTieBreak * to.noise);
    }
    bool meetsBudget(const SearchCandidate& c) const
    {
        if (options_.budget.kind == SearchBudget::Kind::MaxAccuracyDrop)
            return 100.0 * (floatTop1_ - c.searchTop1) <= options_.budget.maxAccuracyDropPoints + 1e-9;
        return cost(c) <= options_.budget.maxSize;
    }
    // How far past the budget's edge (either side), in the budget's own measure relative to it.
    double distanceToBudget(std::size_t i) const
    {
        const SearchCandidate& c = candidates_[i];
        if (options_.budget.kind == SearchBudget::Kind::MaxAccuracyDrop)
            return std::abs(100.0 * (floatTop1_ - c.searchTop1) - options_.budget.maxAccuracyDropPoints);
        return std::abs(cost(c) - options_.budget.maxSize) / std::max(1.0, options_.budget.maxSize);
    }
    // The walk goes on past the budget only a little: the front beyond it is not asked for.
    bool walkCanStop(const SearchCandidate& c) const
    {
        if (options_.budget.kind == SearchBudget::Kind::MaxAccuracyDrop) {
            const double margin = std::max(1.0, options_.budget.maxAccuracyDropPoints);
            return 100.0 * (floatTop1_ - c.searchTop1) > options_.budget.maxAccuracyDropPoints + margin;
        }
        return cost(c) <= options_.budget.maxSize;
    }

    EvaluationProgress quiet() const { return cancellationOnly(progress_); }
    EvaluationProgress quietProgress(const std::string& stage) const
    {
        EvaluationProgress p = quiet();
        if (progress_.report)
            p.report = [this, stage](const std::string&, std::size_t done, std::size_t total) { progress_.report(stage, done, total); };
        return p;
    }

    QuantConfig configOf(const std::vector<std::size_t>& settings) const
    {
        QuantConfig config = base_;
        for (std::size_t l = 0; l < layers_.size(); ++l)
            config = withLayerPrecision(config, layers_[l].layer, layers_[l].options[settings[l]].choice);
        return config;
    }

    // The candidate's index; a setting evaluated before is not evaluated again.
    std::size_t evaluate(const std::vector<std::size_t>& settings)
    {
        if (auto it = seen_.find(settings); it != seen_.end())
            return it->second;
        SearchCandidate c;
        c.config = configOf(settings);
        const ModelMetrics m = study_.evaluate(c.config, kCostOnlyRequest, quiet()).metrics;
        c.searchTop1 = m.top1;
        c.sizeBytes = m.sizeBytes;
        c.bitOperations = m.bitOperations;
        c.searchOutputSqnrDb = m.outputSqnrDb;
        for (std::size_t l = 0; l < layers_.size(); ++l)
            c.layers[layers_[l].layer] = layers_[l].options[settings[l]].choice;
        seen_[settings] = candidates_.size();
        settings_.push_back(settings);
        candidates_.push_back(std::move(c));
        if (progress_.report)
            progress_.report("search", candidates_.size(), candidates_.size());
        if (onCandidate_)
            onCandidate_(candidates_.back());
        return candidates_.size() - 1;
    }

    Study& study_;
    const QuantConfig& base_;
    const SearchOptions& options_;
    const EvaluationProgress& progress_;
    const std::function<void(const SearchCandidate&)>& onCandidate_;
    std::vector<LayerOptions> layers_;
    std::map<std::vector<std::size_t>, std::size_t> seen_;
    std::vector<std::vector<std::size_t>> settings_;  // parallel to candidates_
};

}  // namespace

double searchCost(SearchCost cost, double sizeBytes, double bitOperations)
{
    return cost == SearchCost::SizeBytes ? sizeBytes : bitOperations;
}

std::vector<std::size_t> paretoFront(const std::vector<std::pair<double, double>>& costAndAccuracy)
{
    std::vector<std::size_t> order(costAndAccuracy.size());
    for (std::size_t i = 0; i < order.size(); ++i)
        order[i] = i;
    // By cost, the more accurate first among equal costs, the earlier first among duplicates:
    // then a point is on the front exactly when it beats every cheaper one's accuracy.
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        const auto& [ca, aa] = costAndAccuracy[a];
        const auto& [cb, ab] = costAndAccuracy[b];
        return ca != cb ? ca < cb : aa > ab;
    });
    std::vector<std::size_t> front;
    double best = -std::numeric_limits<double>::infinity();
    for (std::size_t i : order)
        if (costAndAccuracy[i].second > best) {
            front.push_back(i);
            best = costAndAccuracy[i].second;
        }
    return front;
}

namespace {

struct OpenedSearchImages {
    SearchImages where;
    std::shared_ptr<const Dataset> images;
};

OpenedSearchImages openSearchImages(Study& reported, const QuantConfig& base, const SearchOptions& options)
{
    if (options.searchImages == 0)
        throw Error("the search needs at least one search image (--search-images)");
    OpenedSearchImages result;
    std::shared_ptr<const Dataset> whole;
    if (options.searchData) {
        result.where.path = *options.searchData;
        whole = openDataset(*options.searchData, std::nullopt, reported.labelColumn());
        if (reported.sources().data && std::filesystem::equivalent(*options.searchData, *reported.sources().data))
            throw Error("--search-data " + options.searchData->string() + " is the evaluation data (--data): the search must not "
                        "measure the images it reports");
        result.where.first = 0;
        result.where.count = std::min(options.searchImages, whole->size());
    } else {
        const std::optional<std::filesystem::path> calibration = reported.calibrationPath();
        if (!calibration || (reported.sources().data && *calibration == *reported.sources().data))
            throw Error("the search needs images apart from --data and the calibration images, and no training split was found "
                        "beside --data: give --search-data (or --calib-data with more images than the calibration takes)");
        result.where.path = *calibration;
        whole = reported.calibrationSet();
        // The last images of the calibration set, after those calibration takes.
        const std::size_t calibrated = std::min(reported.calibrationImageCount(base), whole->size());
        if (calibrated >= whole->size())
            throw Error(calibration->string() + ": all its " + std::to_string(whole->size()) +
                        " images calibrate; the search needs others: give --search-data");
        result.where.first = std::max(calibrated, whole->size() - std::min(options.searchImages, whole->size()));
        result.where.count = whole->size() - result.where.first;
    }
    if (!whole->hasLabels())
        throw Error(whole->description() + ": the search images have no labels");
    result.images = datasetSlice(whole, result.where.first, result.where.count);
    result.where.description = result.images->description();
    return result;
}

}  // namespace

SearchImages chooseSearchImages(Study& reported, const QuantConfig& base, const SearchOptions& options)
{
    return openSearchImages(reported, base, options).where;
}

SearchResult searchMixedPrecision(Study& reported, const QuantConfig& base, const SearchOptions& options,
                                  const EvaluationProgress& progress,
                                  const std::function<void(const SearchCandidate&)>& onCandidate)
{
    if (options.budget.kind == SearchBudget::Kind::MaxAccuracyDrop && !(options.budget.maxAccuracyDropPoints >= 0))
        throw Error("--max-accuracy-drop expects points of top-1 (0 or more)");
    if (options.budget.kind == SearchBudget::Kind::MaxSize && !(options.budget.maxSize > 0))
        throw Error("--max-size-bytes expects a positive size");
    if (options.weightBits.empty() || options.activationBits.empty())
        throw Error("the search needs at least one weight width and one activation width");
    const OpenedSearchImages images = openSearchImages(reported, base, options);
    const EvaluationProgress quiet = cancellationOnly(progress);

    SearchResult result;
    result.searchImages = images.where;
    const std::unique_ptr<Study> searchStudy = reported.onOtherImages(images.images, images.where.path, base, quiet);
    Search search(*searchStudy, base, options, progress, onCandidate);
    try {
        result.baseSizeBytes = searchStudy->evaluate(base, kCostOnlyRequest, quiet).metrics.sizeBytes;
        search.measureOptions(options);
        search.walk();
        // The refinement may take as many evaluations again as the walk, at least enough to
        // settle a small model's front.
        search.refine(std::max<std::size_t>(search.candidates_.size(), 40));
    } catch (const Cancelled&) {
        result.complete = false;
    }
    search.markFront();
    result.evaluated = search.candidates_;
    result.searchFloatTop1 = search.floatTop1_;
    if (result.evaluated.empty())
        return result;
    const SearchCandidate& chosen = result.evaluated[search.choose(result.shortfall)];
    result.chosen = chosen.config;
    result.searchTop1 = chosen.searchTop1;
    result.sizeBytes = chosen.sizeBytes;
    result.bitOperations = chosen.bitOperations;
    if (!result.complete)
        return result;
    // The accuracy reported: the chosen configuration on the reported images.
    try {
        const ModelMetrics m = reported.evaluate(result.chosen, kCostOnlyRequest, quiet).metrics;
        result.top1 = m.top1;
        result.floatTop1 = m.floatTop1;
    } catch (const Cancelled&) {
        result.complete = false;
    }
    return result;
}

}  // namespace qe
