#include "model/graph_layout.h"

#include <algorithm>
#include <map>
#include <string>

namespace qe {

GraphLayout layoutGraph(const Graph& graph)
{
    GraphLayout layout;
    const std::size_t n = graph.nodes.size();
    layout.nodes.resize(n);
    std::map<std::string, std::size_t> producer;  // tensor -> node index
    for (std::size_t i = 0; i < n; ++i)
        for (const std::string& out : graph.nodes[i].outputs)
            if (!out.empty())
                producer[out] = i;

    // Rows: the longest path from the inputs (nodes come in topological order).
    std::vector<std::vector<std::size_t>> predecessors(n);
    for (std::size_t i = 0; i < n; ++i) {
        for (const std::string& in : graph.nodes[i].inputs) {
            auto it = producer.find(in);
            if (in.empty() || it == producer.end() || it->second >= i)
                continue;
            if (std::find(predecessors[i].begin(), predecessors[i].end(), it->second) != predecessors[i].end())
                continue;  // x * x: one edge
            predecessors[i].push_back(it->second);
            layout.edges.push_back({it->second, i});
            layout.nodes[i].row = std::max(layout.nodes[i].row, layout.nodes[it->second].row + 1);
        }
        layout.rows = std::max(layout.rows, layout.nodes[i].row + 1);
    }

    // Columns: row by row, ordered by the leftmost predecessor's column, then graph order.
    std::vector<std::vector<std::size_t>> byRow(static_cast<std::size_t>(layout.rows));
    for (std::size_t i = 0; i < n; ++i)
        byRow[static_cast<std::size_t>(layout.nodes[i].row)].push_back(i);
    for (std::vector<std::size_t>& row : byRow) {
        auto key = [&](std::size_t i) {
            int leftmost = -1;
            for (std::size_t p : predecessors[i])
                leftmost = leftmost < 0 ? layout.nodes[p].column : std::min(leftmost, layout.nodes[p].column);
            return leftmost;
        };
        std::stable_sort(row.begin(), row.end(), [&](std::size_t a, std::size_t b) { return key(a) < key(b); });
        for (std::size_t c = 0; c < row.size(); ++c)
            layout.nodes[row[c]].column = static_cast<int>(c);
        layout.columns = std::max(layout.columns, static_cast<int>(row.size()));
    }
    return layout;
}

}  // namespace qe
