#pragma once
// A small, strict command-line parser: --flag value and --switch, unknown flags are errors.

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace qe::cli {

class Options {
public:
    // `valued` flags take one value, `switches` take none; a flag of `defaults` may omit its value
    // (next comes another option or nothing) and then has the default. Throws qe::Error for
    // anything else.
    Options(const std::vector<std::string>& args, const std::set<std::string>& valued, const std::set<std::string>& switches,
            const std::map<std::string, std::string>& defaults = {});

    bool has(const std::string& flag) const;
    std::optional<std::string> value(const std::string& flag) const;
    std::string required(const std::string& flag) const;
    std::optional<double> number(const std::string& flag) const;
    std::optional<long long> integer(const std::string& flag) const;
    std::optional<std::vector<float>> floatList(const std::string& flag) const;  // "a,b,c"
    std::optional<std::vector<long long>> integerList(const std::string& flag) const;  // "0,5,7,7", each >= 0

private:
    std::map<std::string, std::string> values_;
    std::set<std::string> switches_;
};

}  // namespace qe::cli
