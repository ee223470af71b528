// Reading lesson files: their JSON, each step's fields, and the paths they name (kept inside the
// lesson's folder).
#include "lesson/lesson.h"
#include "lesson/lesson_internal.h"

#include "common/error.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <functional>
#include <sstream>

namespace qe {

namespace fs = std::filesystem;
using nlohmann::json;
using lesson_internal::checkText;

namespace {

[[noreturn]] void failAt(const fs::path& path, int step, const std::string& title, const std::string& field, const std::string& what)
{
    std::string where = path.string();
    if (step > 0)
        where += ": step " + std::to_string(step) + (title.empty() ? "" : " (\"" + title + "\")");
    throw Error(where + ": " + field + ": " + what);
}

std::string requiredString(const json& j, const std::string& key, const std::function<void(const std::string&)>& fail)
{
    if (!j.contains(key))
        fail("missing; expected a string");
    if (!j[key].is_string() || j[key].get<std::string>().empty())
        fail("expected a non-empty string, found " + std::string(j[key].type_name()));
    return j[key].get<std::string>();
}

std::string optionalString(const json& j, const std::string& key, const std::function<void(const std::string&)>& fail)
{
    if (!j.contains(key))
        return {};
    if (!j[key].is_string())
        fail("expected a string, found " + std::string(j[key].type_name()));
    return j[key].get<std::string>();
}

// A file or folder named by a lesson, inside the lesson's folder (a lesson from elsewhere must not
// make the app read files outside the folder the user chose, not through a symbolic link either).
fs::path resolveInsideFolder(const std::string& name, const fs::path& lessonFolder, bool folderAllowed,
                             const std::function<void(const std::string&)>& fail)
{
    const fs::path named(name);
    if (named.is_absolute())
        fail("\"" + name + "\": expected a path relative to the lesson's folder");
    for (const fs::path& part : named)
        if (part == "..")
            fail("\"" + name + "\" leads out of the lesson's folder; expected a path inside it");
    const fs::path path = lessonFolder / named;
    if (!fs::is_regular_file(path) && !(folderAllowed && fs::is_directory(path)))
        fail("\"" + name + "\": no such " + (folderAllowed ? "file or folder" : "file") + " (" + path.string() + ")");
    const fs::path resolved = fs::canonical(path), folder = fs::canonical(lessonFolder.empty() ? fs::path(".") : lessonFolder);
    const auto [end, unused] = std::mismatch(folder.begin(), folder.end(), resolved.begin(), resolved.end());
    if (end != folder.end())
        fail("\"" + name + "\" leads out of the lesson's folder (to " + resolved.string() + "); expected a path inside it");
    return resolved;
}

// A model named by a lesson: an example's name, or a path inside the lesson's folder.
fs::path resolveModel(const std::string& model, const fs::path& lessonFolder, const fs::path& examplesFolder,
                      const std::function<void(const std::string&)>& fail)
{
    const fs::path named(model);
    if (!named.has_parent_path() && named.extension().empty()) {
        const fs::path example = examplesFolder / (model + ".onnx");
        if (!fs::is_regular_file(example))
            fail("\"" + model + "\" is not an example model (no " + example.string() + ")");
        return example;
    }
    if (named.is_absolute())
        fail("\"" + model + "\": expected an example's name or a path relative to the lesson's folder");
    return resolveInsideFolder(model, lessonFolder, false, fail);
}

using FieldFailure = std::function<std::function<void(const std::string&)>(const std::string&)>;

// "playground": {"values": [...], "scheme": "affine", "bits": 4, "range": [min, max]}; checked by
// quantizing it once.
PlaygroundSettings readPlayground(const json& p, const FieldFailure& fail)
{
    if (!p.is_object())
        fail("playground")("expected an object with values, scheme, bits and range");
    for (const auto& [key, value] : p.items())
        if (key != "values" && key != "scheme" && key != "bits" && key != "range")
            fail("playground." + key)("not a playground field; expected values, scheme, bits or range");
    PlaygroundSettings settings;
    if (!p.contains("values") || !p["values"].is_array())
        fail("playground.values")("expected an array of numbers");
    for (const json& v : p["values"]) {
        if (!v.is_number())
            fail("playground.values")("expected numbers, found " + std::string(v.type_name()));
        settings.values.push_back(v.get<float>());
    }
    if (p.contains("scheme")) {
        const std::optional<Scheme> scheme = p["scheme"].is_string() ? schemeFromName(p["scheme"].get<std::string>()) : std::nullopt;
        if (!scheme)
            fail("playground.scheme")("expected a scheme's name (affine, symmetric, power_of_two, log2, fp8_e4m3, ...)");
        settings.scheme = *scheme;
    }
    if (p.contains("bits")) {
        if (!p["bits"].is_number_integer())
            fail("playground.bits")("expected a whole number of bits");
        settings.bits = p["bits"].get<int>();
    }
    if (p.contains("range")) {
        const json& r = p["range"];
        if (!r.is_array() || r.size() != 2 || !r[0].is_number() || !r[1].is_number())
            fail("playground.range")("expected [min, max]");
        settings.rangeMin = r[0].get<float>();
        settings.rangeMax = r[1].get<float>();
    }
    try {
        quantizePlayground(settings);
    } catch (const Error& e) {
        fail("playground")(e.what());
    }
    return settings;
}

// "trace": {"image": 0, "position": [0, 3, 5, 5]}
LessonTrace readTrace(const json& t, const FieldFailure& fail)
{
    if (!t.is_object())
        fail("trace")("expected an object with image and position");
    for (const auto& [key, value] : t.items())
        if (key != "image" && key != "position")
            fail("trace." + key)("not a trace field; expected image or position");
    LessonTrace trace;
    if (t.contains("image")) {
        if (!t["image"].is_number_unsigned())
            fail("trace.image")("expected an image number of at least 0");
        trace.image = t["image"].get<std::size_t>();
    }
    if (t.contains("position")) {
        if (!t["position"].is_array() || t["position"].size() > 8)
            fail("trace.position")("expected the output element's coordinates, e.g. [0, 3, 5, 5]");
        for (const json& v : t["position"]) {
            if (!v.is_number_unsigned())
                fail("trace.position")("expected coordinates of at least 0");
            trace.position.push_back(v.get<std::int64_t>());
        }
    }
    return trace;
}

}  // namespace

Lesson loadLesson(const fs::path& path, const fs::path& examplesFolder)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw Error(path.string() + ": cannot read the lesson file");
    std::stringstream bytes;
    bytes << in.rdbuf();
    json j;
    try {
        j = json::parse(bytes.str());
    } catch (const json::exception& e) {
        throw Error(path.string() + ": not valid JSON: " + e.what());
    }
    auto failTop = [&](const std::string& field) {
        return [&, field](const std::string& what) { failAt(path, 0, "", field, what); };
    };
    if (!j.is_object())
        failAt(path, 0, "", "the file", "expected a JSON object");
    if (j.value("format", "") != "quantexplorer-lesson")
        failTop("format")("expected \"quantexplorer-lesson\"");
    if (!j.contains("version") || !j["version"].is_number_integer() || j["version"].get<int>() != 1)
        failTop("version")("expected 1");
    Lesson lesson;
    lesson.path = path;
    lesson.title = requiredString(j, "title", failTop("title"));
    lesson.summary = optionalString(j, "summary", failTop("summary"));
    if (!j.contains("steps") || !j["steps"].is_array() || j["steps"].empty())
        failTop("steps")("expected a non-empty array of steps");
    static const std::set<std::string> stepKeys{"title", "text", "model", "data", "config", "layer", "view", "highlight",
                                                "question", "playground", "trace"};
    static const std::set<std::string> answers{"lowest_layer", "highest_layer", "number"};
    int number = 0;
    for (const json& s : j["steps"]) {
        ++number;
        LessonStep step;
        if (!s.is_object())
            failAt(path, number, "", "the step", "expected a JSON object");
        if (s.contains("title") && s["title"].is_string())
            step.title = s["title"].get<std::string>();
        auto fail = [&](const std::string& field) {
            return [&, field](const std::string& what) { failAt(path, number, step.title, field, what); };
        };
        for (const auto& [key, value] : s.items())
            if (!stepKeys.count(key))
                fail(key)("not a step field; expected title, text, model, data, config, layer, view, highlight, question, "
                          "playground or trace");
        step.title = requiredString(s, "title", fail("title"));
        step.text = requiredString(s, "text", fail("text"));
        checkText(step.text, fail("text"));
        step.model = optionalString(s, "model", fail("model"));
        if (!step.model.empty())
            step.modelPath = resolveModel(step.model, path.parent_path(), examplesFolder, fail("model"));
        step.data = optionalString(s, "data", fail("data"));
        if (!step.data.empty())
            step.dataPath = resolveInsideFolder(step.data, path.parent_path(), true, fail("data"));
        if (s.contains("config")) {
            if (!s["config"].is_object())
                fail("config")("expected a configuration object (the format of a quantexplorer-config file)");
            json config = s["config"];
            config.emplace("format", "quantexplorer-config");
            config.emplace("version", 1);
            step.config = QuantConfig::fromJson(config, path.string() + ": step " + std::to_string(number) + ": config");
        }
        step.layer = optionalString(s, "layer", fail("layer"));
        step.view = optionalString(s, "view", fail("view"));
        if (!step.view.empty() && std::find(lessonViews().begin(), lessonViews().end(), step.view) == lessonViews().end()) {
            std::string names;
            for (const std::string& v : lessonViews())
                names += (names.empty() ? "" : ", ") + v;
            fail("view")("\"" + step.view + "\" is not a view; expected one of " + names);
        }
        step.highlight = optionalString(s, "highlight", fail("highlight"));
        if (s.contains("question")) {
            const json& q = s["question"];
            if (!q.is_object())
                fail("question")("expected an object with prompt, answer and fact");
            LessonQuestion question;
            question.prompt = requiredString(q, "prompt", fail("question.prompt"));
            question.answer = requiredString(q, "answer", fail("question.answer"));
            if (!answers.count(question.answer))
                fail("question.answer")("\"" + question.answer + "\"; expected lowest_layer, highest_layer or number");
            question.fact = requiredString(q, "fact", fail("question.fact"));
            if (!lesson_internal::isNumericFact(question.fact))
                fail("question.fact")("\"" + question.fact + "\" is not a number fact (resources/lessons/README.md lists them)");
            if (question.answer != "number" && question.fact.rfind("layer.", 0) != 0)
                fail("question.fact")("a question about layers compares a layer.* fact, not \"" + question.fact + "\"");
            if (question.answer == "number" && question.fact.rfind("layer.", 0) == 0 && step.layer.empty())
                fail("question.fact")("\"" + question.fact + "\" is a layer's number: the step needs a \"layer\"");
            if (q.contains("tolerance")) {
                if (!q["tolerance"].is_number() || !std::isfinite(q["tolerance"].get<double>()) || q["tolerance"].get<double>() < 0)
                    fail("question.tolerance")("expected a number of at least 0");
                question.tolerance = q["tolerance"].get<double>();
            }
            step.question = question;
        }
        if (s.contains("playground"))
            step.playground = readPlayground(s["playground"], fail);
        if (s.contains("trace"))
            step.trace = readTrace(s["trace"], fail);
        lesson.steps.push_back(std::move(step));
    }
    return lesson;
}

std::vector<Lesson> loadLessons(const fs::path& folder, const fs::path& examplesFolder)
{
    std::vector<fs::path> files;
    std::error_code error;
    for (const fs::directory_entry& entry : fs::directory_iterator(folder, error))
        if (entry.is_regular_file() && entry.path().extension() == ".json")
            files.push_back(entry.path());
    if (error)
        throw Error(folder.string() + ": cannot list the lessons: " + error.message());
    std::sort(files.begin(), files.end());
    std::vector<Lesson> lessons;
    for (const fs::path& file : files)
        lessons.push_back(loadLesson(file, examplesFolder));
    return lessons;
}

}  // namespace qe
