#include "train/training_module_loader.h"

#include "common/error.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

namespace qe {
namespace {

constexpr const char* kModuleFile = "libquantexplorer_training.so";

struct LoadedModule {
    TrainingEntry entry = nullptr;
    std::filesystem::path path;
    std::string error;
};

std::vector<std::filesystem::path> candidates()
{
    std::vector<std::filesystem::path> paths;
    if (const char* env = std::getenv("QE_TRAINING_MODULE"); env && *env)
        paths.emplace_back(env);
    std::error_code ec;
    const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        paths.push_back(exe.parent_path() / kModuleFile);
        paths.push_back(exe.parent_path().parent_path() / "lib" / kModuleFile);
    }
#ifdef QE_TRAINING_MODULE_DIR
    paths.push_back(std::filesystem::path(QE_TRAINING_MODULE_DIR) / kModuleFile);
#endif
    return paths;
}

LoadedModule load()
{
    LoadedModule module;
    std::string tried;
    for (const std::filesystem::path& path : candidates()) {
        std::error_code ec;
        if (!std::filesystem::is_regular_file(path, ec)) {
            tried += "\n  " + path.string() + ": not there";
            continue;
        }
        // RTLD_LOCAL: libtorch's symbols stay out of the program's namespace.
        void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
            tried += "\n  " + path.string() + ": " + dlerror();
            continue;
        }
        void* symbol = dlsym(handle, kTrainingEntryName);
        if (!symbol) {
            tried += "\n  " + path.string() + ": has no " + kTrainingEntryName;
            dlclose(handle);
            continue;
        }
        module.entry = reinterpret_cast<TrainingEntry>(symbol);
        module.path = path;
        return module;
    }
    module.error = std::string("the training module ") + kModuleFile +
                   " (built with libtorch; set QE_TRAINING_MODULE to its path) could not be loaded:" + tried;
    return module;
}

const LoadedModule& loadedModule()
{
    static const LoadedModule module = load();  // once; thread-safe initialisation
    return module;
}

}  // namespace

TrainingEntry trainingModuleEntry()
{
    const LoadedModule& module = loadedModule();
    if (!module.entry)
        throw Error(module.error);
    return module.entry;
}

std::filesystem::path trainingModulePath() { return loadedModule().path; }

}  // namespace qe
