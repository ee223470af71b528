#pragma once
// Saving what the user made without ever leaving half a file: write beside the target, then
// rename over it. A crash or a full disk leaves either the old file or the new one.

#include <filesystem>
#include <string>

namespace qe {

// Throws qe::Error naming the file and what went wrong.
void writeFileAtomically(const std::filesystem::path& path, const std::string& contents);

}  // namespace qe
