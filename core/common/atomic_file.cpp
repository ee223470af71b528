#include "common/atomic_file.h"

#include "common/error.h"

#include <fstream>

namespace qe {

void writeFileAtomically(const std::filesystem::path& path, const std::string& contents)
{
    std::filesystem::path temporary = path;
    temporary += ".tmp";
    {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        if (!out)
            throw Error(temporary.string() + ": cannot be created for writing");
        out << contents;
        out.close();
        if (!out) {
            std::error_code ignored;
            std::filesystem::remove(temporary, ignored);
            throw Error(temporary.string() + ": write error (disk full?)");
        }
    }
    std::error_code ec;
    std::filesystem::rename(temporary, path, ec);
    if (ec) {
        std::error_code ignored;
        std::filesystem::remove(temporary, ignored);
        throw Error(path.string() + ": cannot be replaced (" + ec.message() + ")");
    }
}

}  // namespace qe
