#pragma once
// The entry points of the fuzz targets (issue 12). Each takes one input as libFuzzer gives it and
// returns normally when the code under test either accepts the input or refuses it with qe::Error;
// anything else (another exception, a crash, a sanitizer report) is a finding.
// The libFuzzer executables (fuzz_main.cpp, built with QE_BUILD_FUZZERS) and the regression test
// that replays tests/fuzz/regressions/<target>/ in the normal suite call the same functions.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace qe::fuzz {

using Entry = void (*)(const std::uint8_t* data, std::size_t size);

struct Target {
    const char* name;  // the folder under tests/fuzz/regressions/ and the executable fuzz_<name>
    Entry entry;
};

// Every target, in a fixed order.
const std::vector<Target>& targets();

// Calls the entry of `name`; throws std::invalid_argument for an unknown name.
void run(const std::string& name, const std::uint8_t* data, std::size_t size);

// Sets what every target needs once per process: a small memory budget (so a size check, not
// the machine, refuses absurd inputs) and a scratch folder for targets that read files.
void initialize();

}  // namespace qe::fuzz
