#pragma once
// Limits on what a file may make us allocate. Every reader checks the size a file declares
// (a tensor's shape, an idx header, a decompressed stream) against the memory budget before it
// allocates, so a corrupt or hostile file gets a clear qe::Error instead of an out-of-memory kill.
//
// The budget is the machine's physical memory, or QE_MEMORY_BUDGET_MB when that is set (tests
// and fuzzers set it low). Header-only: the readers in every core/ library include it.

#include "common/error.h"

#include <cstdint>
#include <cstdlib>
#include <string>

#include <unistd.h>

namespace qe {

// Bytes one allocation may take: QE_MEMORY_BUDGET_MB (a positive integer) when set, else the
// physical memory. The variable is read on every call, so a test can change it with setenv.
inline std::uint64_t memoryBudgetBytes()
{
    if (const char* text = std::getenv("QE_MEMORY_BUDGET_MB")) {
        char* end = nullptr;
        const unsigned long long mb = std::strtoull(text, &end, 10);
        if (end != text && *end == '\0' && mb > 0 && mb < (std::uint64_t{1} << 40))
            return mb << 20;
    }
    static const std::uint64_t physical = [] {
        const long pages = sysconf(_SC_PHYS_PAGES);
        const long pageSize = sysconf(_SC_PAGE_SIZE);
        if (pages > 0 && pageSize > 0)
            return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(pageSize);
        return std::uint64_t{16} << 30;
    }();
    return physical;
}

inline std::string describeBytes(std::uint64_t bytes)
{
    if (bytes >= (std::uint64_t{1} << 30))
        return std::to_string(bytes >> 30) + " GiB";
    if (bytes >= (std::uint64_t{1} << 20))
        return std::to_string(bytes >> 20) + " MiB";
    return std::to_string(bytes) + " bytes";
}

// Throws when `bytes` (what `what` declares it needs) is over the memory budget.
inline void checkMemoryBudget(std::uint64_t bytes, const std::string& what)
{
    const std::uint64_t budget = memoryBudgetBytes();
    if (bytes > budget)
        throw Error(what + " needs " + describeBytes(bytes) + ", more than the memory budget of " + describeBytes(budget) +
                    " (set QE_MEMORY_BUDGET_MB to change it)");
}

}  // namespace qe
