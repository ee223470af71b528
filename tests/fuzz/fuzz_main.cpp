// One libFuzzer executable per target: QE_FUZZ_TARGET names it (see CMakeLists.txt).

#include "fuzz_targets.h"

extern "C" int LLVMFuzzerInitialize(int*, char***)
{
    qe::fuzz::initialize();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    qe::fuzz::run(QE_FUZZ_TARGET, data, size);
    return 0;
}
