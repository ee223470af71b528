#pragma once
// Process-wide allocator settings for an application whose inference runs allocate and free the
// same large activation tensors again and again (tens of MB at batch 32).

#include <cstdint>
#include <optional>
#include <string>

namespace qe {

// glibc returns freed blocks above its mmap threshold (128 KiB to 32 MiB, adaptive) to the
// kernel at once, so every run pays a page fault per 4 KiB page it touches again, and the time
// of a run depends on what ran before it. This keeps every block in the heap for reuse (none gets
// a mapping of its own), in one heap for all threads, as ONNX Runtime's arena does: memory stays
// at its peak instead (the largest run's activations), up to 1 GiB of free heap before it is
// trimmed; freed tensors of 2 MiB and more also wait, up to 512 MiB, in tensor.cpp's pool for the
// next tensor of their size. Call once at the start of main(). Without glibc it does nothing.
void keepFreedMemoryForReuse();

// The most memory this process has held in RAM since it started (its peak resident set), in
// bytes; 0 where the system does not say.
std::uint64_t peakResidentBytes();
// The machine's memory in bytes; 0 where the system does not say.
std::uint64_t physicalMemoryBytes();

// "3G", "512M", "64k", "2000000000": a size in bytes (K, M, G are powers of 1024); nothing when
// the text is not one.
std::optional<std::uint64_t> parseByteSize(const std::string& text);
// parseByteSize of the value given to `option` (a command-line flag); qe::Error naming the flag
// and what it expects otherwise.
std::uint64_t byteSizeOption(const std::string& option, const std::string& text);

}  // namespace qe
