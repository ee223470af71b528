#include "common/memory.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__unix__)
#include <sys/resource.h>
#endif

namespace qe {

void keepFreedMemoryForReuse()
{
#if defined(__GLIBC__)
    // Blocks up to 32 MiB (glibc's largest threshold; a batch of 32 MobileNet activations is
    // 26 MB) from the heap rather than their own mappings, and the heap's top not trimmed below 1 GiB.
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    // Larger blocks (a batch of 32 ResNet-18 activations is 100 MB) from the heap too: a mapping of
    // their own is zeroed page by page on every use, which took a fifth of the fp32 engine's time.
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

std::uint64_t peakResidentBytes()
{
#if defined(__unix__)
    rusage usage{};
    if (getrusage(RUSAGE_SELF, &usage) == 0)
        return std::uint64_t(usage.ru_maxrss) * 1024;  // Linux reports kilobytes
#endif
    return 0;
}

}  // namespace qe
