#include "common/atomic_file.h"

#include "common/error.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace qe {

namespace {

std::string systemError() { return std::strerror(errno); }

}  // namespace

void writeFileAtomically(const std::filesystem::path& path, const std::string& contents)
{
    // A new file of a unique name beside the target (O_EXCL: never an existing file or a symbolic
    // link planted there), written and flushed to disk, then renamed over the target. A process
    // killed at any point leaves the previous file whole; at worst a stray ".tmp-XXXXXX" remains.
    std::string temporary = path.string() + ".tmp-XXXXXX";
    const int fd = mkstemp(temporary.data());
    if (fd < 0)
        throw Error(path.string() + ": cannot create a temporary file beside it (" + systemError() + ")");
    auto fail = [&](const std::string& what) {
        const std::string message = path.string() + ": " + what + " (" + systemError() + ")";
        close(fd);
        unlink(temporary.c_str());
        throw Error(message);
    };
    std::size_t written = 0;
    while (written < contents.size()) {
        const ssize_t n = write(fd, contents.data() + written, contents.size() - written);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail("write error (disk full?)");
        written += static_cast<std::size_t>(n);
    }
    if (fchmod(fd, 0644) != 0 || fsync(fd) != 0)
        fail("cannot flush the file to disk");
    if (close(fd) != 0) {
        unlink(temporary.c_str());
        throw Error(path.string() + ": write error (" + systemError() + ")");
    }
    if (std::rename(temporary.c_str(), path.c_str()) != 0) {
        const std::string message = path.string() + ": cannot be replaced (" + systemError() + ")";
        unlink(temporary.c_str());
        throw Error(message);
    }
    // The rename itself reaches the disk with the folder's entry.
    const std::filesystem::path folder = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
    if (const int dir = open(folder.c_str(), O_RDONLY | O_DIRECTORY); dir >= 0) {
        fsync(dir);
        close(dir);
    }
}

}  // namespace qe
