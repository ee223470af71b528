// quantexplorer-cli search: mixed precision. The smallest configuration within an accuracy budget
// (or the most accurate within a size budget), found on held-out search images and reported on
// --data, written as a normal configuration file.

#include "cli/common.h"

#include "common/error.h"
#include "study/precision_search.h"

#include <algorithm>
#include <iomanip>
#include <iostream>

namespace qe::cli {

namespace {

using nlohmann::json;

constexpr const char* kSearchUsage = R"(usage: quantexplorer-cli search --model M.onnx --data PATH --config BASE.json
                              (--max-accuracy-drop P | --max-size-bytes N | --max-bops N) [options]

Chooses per layer a weight width, an activation width or float (in the layer's scheme from
BASE.json). Candidates are measured on search images that are neither --data nor the calibration
images; the chosen configuration's top-1 is then measured on --data.

  --config C.json         the base configuration: schemes, granularity, calibration
  --max-accuracy-drop P   the smallest configuration within P points of float top-1
  --max-size-bytes N      the most accurate configuration of at most N bytes (--cost size)
  --max-bops N            the most accurate configuration of at most N bit operations (--cost bops)
  --cost size|bops        what smaller means: weight bytes (size_bytes, default) or bit operations
                          per image (MACs x weight bits x activation bits)
  --out OUT.json          write the chosen configuration (a normal configuration file)
  --weight-bits LIST      weight widths to choose from (default 2,3,4,6,8)
  --activation-bits LIST  activation widths to choose from (default 4,6,8)
  --no-float              never keep a layer in float
  --search-data PATH      the search images (default: the last images of the training split beside
                          --data, after the calibration images)
  --search-images N       how many search images (default 1000)
  --limit N               report on only the first N images of --data
  --memory-budget SIZE    the most the evaluation may hold, caches included (512M, 3G; default a
                          quarter of the machine's memory): the less, the more layers each step runs again
  --calib-data PATH, --calib-count N, --labels PATH, --label-column NAME, preprocessing flags
  --json                  one JSON object: top1, search_top1, float_top1, size_bytes,
                          base_size_bytes, shortfall, and pareto (each point with size_bytes,
                          bit_operations, search_top1 and its layers' bits)

A budget no configuration meets still succeeds (exit 0): the closest configuration is chosen and
"shortfall" says by how much it misses.
)";

json layersJson(const std::map<std::string, PrecisionChoice>& layers)
{
    json out = json::object();
    for (const auto& [name, c] : layers)
        out[name] = c.keepFloat ? json{{"float", true}}
                                : json{{"weight_bits", c.weightBits ? json(c.weightBits) : json(nullptr)},
                                       {"activation_bits", c.activationBits}};
    return out;
}

SearchOptions searchOptions(const Options& options)
{
    SearchOptions search;
    const std::string cost = options.value("--cost").value_or("size");
    if (cost != "size" && cost != "bops")
        throw Error("--cost: expected 'size' or 'bops', got '" + cost + "'");
    search.cost = cost == "size" ? SearchCost::SizeBytes : SearchCost::BitOperations;
    const int budgets = options.has("--max-accuracy-drop") + options.has("--max-size-bytes") + options.has("--max-bops");
    if (budgets != 1)
        throw Error("give exactly one budget: --max-accuracy-drop P, --max-size-bytes N or --max-bops N");
    if (auto drop = options.number("--max-accuracy-drop")) {
        if (*drop < 0)
            throw Error("option --max-accuracy-drop expects points of top-1 (0 or more), got " + *options.value("--max-accuracy-drop"));
        search.budget = {SearchBudget::Kind::MaxAccuracyDrop, *drop, 0};
    }
    for (const auto& [flag, unit] : {std::pair{"--max-size-bytes", SearchCost::SizeBytes}, {"--max-bops", SearchCost::BitOperations}})
        if (auto size = options.number(flag)) {
            if (!(*size > 0))
                throw Error(std::string("option ") + flag + " expects a positive number, got " + *options.value(flag));
            if (unit != search.cost)
                throw Error(std::string(flag) + " needs --cost " + (unit == SearchCost::SizeBytes ? "size" : "bops"));
            search.budget = {SearchBudget::Kind::MaxSize, 0, *size};
        }
    search.weightBits = bitWidths(options, "--weight-bits").value_or(search.weightBits);
    search.activationBits = bitWidths(options, "--activation-bits").value_or(search.activationBits);
    search.allowFloat = !options.has("--no-float");
    if (auto data = options.value("--search-data"))
        search.searchData = *data;
    if (auto n = options.integer("--search-images"))
        search.searchImages = static_cast<std::size_t>(*n);
    return search;
}

}  // namespace

int runSearch(const std::vector<std::string>& args)
{
    if (printedHelp(args, (std::string(kSearchUsage) + kRepairUsage).c_str()))
        return 0;
    const Options options = optionsWithRepairs(args,
                          withPreprocessFlags({"--model", "--data", "--labels", "--label-column", "--limit", "--memory-budget", "--config",
                                               "--calib-data", "--calib-count", "--weight-bits", "--activation-bits",
                                               "--max-accuracy-drop", "--max-size-bytes", "--max-bops", "--cost", "--out",
                                               "--search-data", "--search-images"}),
                          {"--json", "--no-float"});
    const SearchOptions search = searchOptions(options);
    const std::size_t limit = static_cast<std::size_t>(options.integer("--limit").value_or(0));
    Study study(studySources(options, true, limit));
    if (!study.dataset()->hasLabels())
        throw Error(study.dataset()->description() + ": has no labels; give them with --labels");
    const QuantConfig base = withRepairFlags(study.loadConfig(options.required("--config")), options);
    const SearchResult result = searchMixedPrecision(study, base, search, stderrProgress());
    if (auto out = options.value("--out"))
        result.chosen.save(*out);

    // The Pareto front, cheapest first.
    std::vector<const SearchCandidate*> front;
    for (const SearchCandidate& c : result.evaluated)
        if (c.onFront)
            front.push_back(&c);
    std::sort(front.begin(), front.end(), [&](const SearchCandidate* a, const SearchCandidate* b) {
        return searchCost(search.cost, a->sizeBytes, a->bitOperations) < searchCost(search.cost, b->sizeBytes, b->bitOperations);
    });
    if (options.has("--json")) {
        json pareto = json::array();
        for (const SearchCandidate* c : front)
            pareto.push_back({{"size_bytes", c->sizeBytes}, {"bit_operations", c->bitOperations}, {"search_top1", c->searchTop1},
                              {"layers", layersJson(c->layers)}});
        std::map<std::string, PrecisionChoice> chosenLayers;
        for (const SearchCandidate& c : result.evaluated)
            if (c.config == result.chosen)
                chosenLayers = c.layers;
        const json out{{"top1", result.top1}, {"search_top1", result.searchTop1}, {"float_top1", result.floatTop1},
                       {"search_float_top1", result.searchFloatTop1}, {"size_bytes", result.sizeBytes},
                       {"bit_operations", result.bitOperations}, {"base_size_bytes", result.baseSizeBytes},
                       {"shortfall", result.shortfall}, {"layers", layersJson(chosenLayers)},
                       {"evaluated", result.evaluated.size()}, {"pareto", pareto},
                       {"search_data", result.searchImages.description}, {"search_images", result.searchImages.count},
                       {"count", study.evaluationImages()}, {"data", study.dataset()->description()},
                       {"model", study.sources().model.string()}, {"config", options.required("--config")},
                       {"cost", search.cost == SearchCost::SizeBytes ? "size" : "bops"},
                       {"out", options.value("--out").value_or("")}, {"warnings", study.dataWarnings()}};
        std::cout << out.dump() << "\n";
        return 0;
    }
    std::cout << std::fixed << std::setprecision(2);
    if (!result.shortfall.empty())
        std::cout << "budget not met: " << result.shortfall << "\n";
    std::cout << "chosen: top-1 " << 100 * result.top1 << "% on " << study.dataset()->description() << " (float "
              << 100 * result.floatTop1 << "%), " << 100 * result.searchTop1 << "% on the search images ("
              << result.searchImages.description << ", float " << 100 * result.searchFloatTop1 << "%)\n"
              << "size: " << result.sizeBytes / 1024 << " KiB (base " << result.baseSizeBytes / 1024 << " KiB), "
              << std::setprecision(3) << result.bitOperations / 1e9 << " G bit operations per image\n"
              << result.evaluated.size() << " configurations evaluated; the Pareto front:\n";
    std::cout << std::setprecision(2);
    for (const SearchCandidate* c : front) {
        std::cout << "  " << std::setw(10) << c->sizeBytes / 1024 << " KiB  " << std::setw(6) << 100 * c->searchTop1 << "%  ";
        for (const auto& [name, choice] : c->layers)
            std::cout << " " << name << "=" << describePrecision(choice);
        std::cout << "\n";
    }
    if (auto out = options.value("--out"))
        std::cout << "wrote " << *out << "\n";
    return 0;
}

}  // namespace qe::cli
