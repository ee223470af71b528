#pragma once
// Where to draw each node of a model: a layered layout for the window's graph view. Data flows
// down: a node's row is the length of the longest path to it from the graph inputs, so every edge
// points downwards and a residual branch (a skip connection joining an Add further down) shows as
// an edge spanning several rows beside the main path. Within a row, nodes keep the order of
// their first producer's column (then graph order), which keeps chains straight.

#include "model/graph.h"

#include <cstddef>
#include <vector>

namespace qe {

struct GraphLayout {
    struct Place {
        int row = 0;     // longest path from the inputs, in nodes
        int column = 0;  // position within the row, 0 at the left
    };
    std::vector<Place> nodes;  // parallel to graph.nodes
    struct Edge {
        std::size_t from = 0, to = 0;  // node indices: `to` reads an output of `from`
    };
    std::vector<Edge> edges;
    int rows = 0, columns = 0;  // the widest row's node count
};

// Constants (initializers) are not nodes and draw no edges. `graph.nodes` is in topological order.
GraphLayout layoutGraph(const Graph& graph);

}  // namespace qe
