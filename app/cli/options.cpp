#include "cli/options.h"

#include "common/error.h"

#include <algorithm>
#include <cctype>
#include <sstream>

namespace qe::cli {

Options::Options(const std::vector<std::string>& args, const std::set<std::string>& valued, const std::set<std::string>& switches,
                 const std::map<std::string, std::string>& defaults)
{
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        if (switches.count(arg)) {
            switches_.insert(arg);
        } else if (auto fallback = defaults.find(arg); fallback != defaults.end() &&
                                                        (i + 1 >= args.size() || args[i + 1].starts_with("--"))) {
            values_[arg] = fallback->second;
        } else if (valued.count(arg)) {
            if (i + 1 >= args.size())
                throw Error("option " + arg + " needs a value");
            values_[arg] = args[++i];
        } else {
            throw Error("unknown option '" + arg + "' (see --help)");
        }
    }
}

bool Options::has(const std::string& flag) const { return switches_.count(flag) || values_.count(flag); }

std::optional<std::string> Options::value(const std::string& flag) const
{
    auto it = values_.find(flag);
    return it == values_.end() ? std::nullopt : std::optional(it->second);
}

std::string Options::required(const std::string& flag) const
{
    auto v = value(flag);
    if (!v)
        throw Error("option " + flag + " is required (see --help)");
    return *v;
}

std::optional<double> Options::number(const std::string& flag) const
{
    auto v = value(flag);
    if (!v)
        return std::nullopt;
    try {
        std::size_t used = 0;
        const double d = std::stod(*v, &used);
        if (used == v->size())
            return d;
    } catch (const std::exception&) {
    }
    throw Error("option " + flag + " expects a number, got '" + *v + "'");
}

std::optional<long long> Options::integer(const std::string& flag) const
{
    auto v = value(flag);
    if (!v)
        return std::nullopt;
    try {
        std::size_t used = 0;
        const long long n = std::stoll(*v, &used);
        if (used == v->size() && n >= 0)
            return n;
    } catch (const std::exception&) {
    }
    throw Error("option " + flag + " expects a non-negative integer, got '" + *v + "'");
}

std::optional<std::vector<float>> Options::floatList(const std::string& flag) const
{
    auto v = value(flag);
    if (!v)
        return std::nullopt;
    std::vector<float> values;
    std::stringstream stream(*v);
    std::string item;
    while (std::getline(stream, item, ',')) {
        try {
            std::size_t used = 0;
            values.push_back(std::stof(item, &used));
            if (used != item.size())
                throw std::invalid_argument(item);
        } catch (const std::exception&) {
            throw Error("option " + flag + " expects comma-separated numbers, got '" + *v + "'");
        }
    }
    if (values.empty())
        throw Error("option " + flag + " expects comma-separated numbers, got '" + *v + "'");
    return values;
}

std::optional<std::vector<long long>> Options::integerList(const std::string& flag) const
{
    auto v = value(flag);
    if (!v)
        return std::nullopt;
    const Error wrong("option " + flag + " expects comma-separated whole numbers of at least 0, e.g. 0,5,7,7, got '" + *v + "'");
    std::vector<long long> values;
    std::stringstream stream(*v);
    std::string item;
    while (std::getline(stream, item, ',')) {
        // std::stoll alone would take "-3" and " 7"; only digits are a coordinate.
        if (item.empty() || !std::all_of(item.begin(), item.end(), [](unsigned char c) { return std::isdigit(c); }))
            throw wrong;
        try {
            values.push_back(std::stoll(item));
        } catch (const std::exception&) {  // out of range
            throw wrong;
        }
    }
    if (values.empty())
        throw wrong;
    return values;
}

}  // namespace qe::cli
