#include "engine/onednn.h"

#include <string_view>
#include <vector>

namespace qe::onednn {

dnnl::engine& cpuEngine()
{
    static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
    return engine;
}

bool isOptimized(const char* implementation) { return std::string_view(implementation).find("ref") == std::string_view::npos; }

void execute(const dnnl::primitive& primitive, const dnnl::memory::desc& scratchpadDesc,
             std::unordered_map<int, dnnl::memory> args)
{
    thread_local std::vector<std::byte> scratch;  // grows to the largest need, never cleared per call
    if (scratch.size() < scratchpadDesc.get_size())
        scratch.resize(scratchpadDesc.get_size());
    args.emplace(DNNL_ARG_SCRATCHPAD, dnnl::memory(scratchpadDesc, cpuEngine(), scratch.data()));
    dnnl::stream stream(cpuEngine());
    primitive.execute(stream, args);
    stream.wait();
}

void reorder(const dnnl::memory& from, const dnnl::memory& to)
{
    dnnl::memory source = from, target = to;  // handles: the same memory
    dnnl::stream stream(cpuEngine());
    dnnl::reorder(source, target).execute(stream, source, target);
    stream.wait();
}

dnnl::memory reordered(const dnnl::memory& from, const dnnl::memory::desc& layout)
{
    dnnl::memory to(layout, cpuEngine());
    reorder(from, to);
    return to;
}

}  // namespace qe::onednn
