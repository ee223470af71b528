// K-means codebook fitting for the KMeans scheme: Lloyd's algorithm on one block of weights,
// which paramsForWeights() (scheme.cpp) runs per block.

#include "quant/scheme_internal.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <span>

namespace qe::scheme_detail {
namespace {

constexpr int kMaxLloydIterations = 30;
constexpr int kMaxCodebookSize = 256;  // k-means takes at most 8 bits

}  // namespace

// It starts from the uniform grid of `levels` points spanning [min, max]. The first assignment is
// then exactly uniform min-max quantization, and no Lloyd step increases the MSE (the assignment
// step picks the nearest centroid for fixed centroids, the update step the best centroids for a
// fixed assignment), so the result is never worse than uniform min-max with the same level count.
//
// In 1-D with sorted values each cluster is an index range whose ends are found by binary search
// on the midpoints between neighbouring centroids, and its mean comes from prefix sums: one
// iteration costs O(levels * log n), not O(n).
int fitCodebook(std::span<float> values, std::span<double> prefix, int levels, float* codebook)
{
    std::sort(values.begin(), values.end());
    const std::size_t n = values.size();
    // Few distinct values: they are the codebook, exactly (zero error).
    int distinct = 0;
    for (std::size_t i = 0; i < n && distinct <= levels; ++i)
        distinct += i == 0 || values[i] != values[i - 1];
    if (distinct <= levels) {
        int k = 0;
        for (std::size_t i = 0; i < n; ++i)
            if (i == 0 || values[i] != values[i - 1])
                codebook[k++] = values[i];
        std::fill(codebook + k, codebook + levels, codebook[k - 1]);
        return distinct;
    }
    prefix[0] = 0.0;
    for (std::size_t i = 0; i < n; ++i)
        prefix[i + 1] = prefix[i] + values[i];
    const double lo = values.front(), hi = values.back();

    std::array<double, kMaxCodebookSize> centroids{};
    std::array<std::size_t, kMaxCodebookSize + 1> bounds{}, previousBounds{};
    for (int i = 0; i < levels; ++i)
        centroids[i] = levels == 1 ? lo : lo + (hi - lo) * i / (levels - 1);
    for (int iteration = 0; iteration < kMaxLloydIterations; ++iteration) {
        // Cluster i holds the values in [midpoint(i-1, i), midpoint(i, i+1)); a value exactly on a
        // midpoint goes to the upper centroid, as in fakeQuantize().
        bounds[0] = 0;
        bounds[levels] = n;
        for (int i = 1; i < levels; ++i) {
            const double midpoint = 0.5 * (centroids[i - 1] + centroids[i]);
            bounds[i] = static_cast<std::size_t>(
                std::lower_bound(values.begin(), values.end(), midpoint, [](float v, double m) { return v < m; }) - values.begin());
        }
        if (iteration > 0 && std::equal(bounds.begin(), bounds.begin() + levels + 1, previousBounds.begin()))
            break;  // same assignment, same centroids: converged
        previousBounds = bounds;
        for (int i = 0; i < levels; ++i)
            if (bounds[i + 1] > bounds[i])  // an empty cluster keeps its centroid
                centroids[i] = (prefix[bounds[i + 1]] - prefix[bounds[i]]) / static_cast<double>(bounds[i + 1] - bounds[i]);
    }
    std::sort(centroids.begin(), centroids.begin() + levels);
    for (int i = 0; i < levels; ++i)
        codebook[i] = static_cast<float>(centroids[i]);
    return levels;
}

}  // namespace qe::scheme_detail
