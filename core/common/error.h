#pragma once
// One exception type for everything the user can get wrong (bad files, unsupported operators,
// bad configuration). Its message always names the file, node or field and what was expected;
// the CLI prints it and exits with code 2, the GUI shows it in a dialog.

#include <stdexcept>
#include <string>

namespace qe {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace qe
