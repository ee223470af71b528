#pragma once
// What the engine's oneDNN kernels share (engine/ops/float_kernels.cpp, the fp32 convolutions;
// engine/int8/kernels/fast_kernels.cpp, the int8 ones): one CPU engine, which implementations
// count as fast, running a primitive with a scratchpad of the calling thread's own, and copying
// memory into another layout. Only for sources of qe_engine, which links oneDNN.

#include <oneapi/dnnl/dnnl.hpp>

#include <unordered_map>

namespace qe::onednn {

dnnl::engine& cpuEngine();

// oneDNN's own reference implementations are slower than ours; only its JIT/BRGEMM kernels count.
bool isOptimized(const char* implementation);

// Runs a primitive with a scratchpad of its own, so that several threads may run the same
// primitive at once (the default library-managed scratchpad is shared). Waits for it to finish.
void execute(const dnnl::primitive& primitive, const dnnl::memory::desc& scratchpadDesc,
             std::unordered_map<int, dnnl::memory> args);

// `from` copied into new memory laid out as `layout`.
dnnl::memory reordered(const dnnl::memory& from, const dnnl::memory::desc& layout);
// `from` copied into `to` (the same values in another layout).
void reorder(const dnnl::memory& from, const dnnl::memory& to);

}  // namespace qe::onednn
