#include "common/memory.h"

#include "common/error.h"

#include <stdexcept>

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__unix__)
#include <sys/resource.h>
#include <unistd.h>
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
    // One heap for every thread: glibc gives each thread's arena back to the kernel as soon as
    // all its blocks are freed, whatever the trim threshold, so the evaluator's worker threads
    // refaulted (and the kernel zeroed) their activations on every edit: a third of the window's
    // time on MobileNetV1 0.5 (bench/README.md). The lock is taken once per tensor, not per value.
    mallopt(M_ARENA_MAX, 1);
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

std::uint64_t physicalMemoryBytes()
{
#if defined(__unix__)
    const long pages = sysconf(_SC_PHYS_PAGES), pageSize = sysconf(_SC_PAGESIZE);
    if (pages > 0 && pageSize > 0)
        return std::uint64_t(pages) * std::uint64_t(pageSize);
#endif
    return 0;
}

std::optional<std::uint64_t> parseByteSize(const std::string& text)
{
    std::size_t used = 0;
    double value = -1;
    try {
        value = std::stod(text, &used);
    } catch (const std::exception&) {
        return std::nullopt;
    }
    const std::string suffix = text.substr(used);
    const double unit = suffix.empty()                     ? 1.0
                        : suffix == "K" || suffix == "k" ? 1024.0
                        : suffix == "M" || suffix == "m" ? 1024.0 * 1024
                        : suffix == "G" || suffix == "g" ? 1024.0 * 1024 * 1024
                                                         : -1.0;
    if (unit < 0 || !(value >= 0) || value * unit > 1e18)
        return std::nullopt;
    return std::uint64_t(value * unit);
}

std::uint64_t byteSizeOption(const std::string& option, const std::string& text)
{
    const std::optional<std::uint64_t> bytes = parseByteSize(text);
    if (!bytes)
        throw Error(option + ": a size in bytes, or with K, M or G (e.g. 3G), got '" + text + "'");
    return *bytes;
}

}  // namespace qe
