#pragma once
// Finds and loads the training module (training_module.h) the first time a user trains, so that
// nothing else pays for libtorch. Looked for, in order: $QE_TRAINING_MODULE (a file), beside the
// executable, in ../lib from the executable's folder, and in the build tree it was built in.

#include "train/training_module.h"

#include <filesystem>

namespace qe {

// The module's entry point; qe::Error saying where it looked and why loading failed otherwise.
TrainingEntry trainingModuleEntry();
// The file it was loaded from (empty before the first successful load).
std::filesystem::path trainingModulePath();

}  // namespace qe
