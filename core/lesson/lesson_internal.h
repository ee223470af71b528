// Shared by the lesson library's three files (facts, lesson files, handouts); not for outside use.
#pragma once

#include <functional>
#include <string>

namespace qe::lesson_internal {

// True when `key` names a numeric fact (lessonFactKeys() less the words layer.name and layer.op).
bool isNumericFact(const std::string& key);

// Calls `fail` for a malformed placeholder of `text` or one that names no fact.
void checkText(const std::string& text, const std::function<void(const std::string&)>& fail);

}  // namespace qe::lesson_internal
