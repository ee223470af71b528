#pragma once
// Guided lessons (Help > Lessons): a lesson is a file of steps; each step opens a model, sets a
// configuration, selects a layer and a view, and explains what to look at in text whose numbers
// are filled in from the live evaluation, never written into the file. A step may ask a question
// that is checked against the same live numbers. The format is documented in
// resources/lessons/README.md; loadLesson checks a file completely and names the file, the step
// and the field of the first thing wrong.

#include "quant/config.h"
#include "quant/playground.h"
#include "study/study.h"

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace qe {

// The window's views a step can bring to the front, by their names in lesson files.
const std::vector<std::string>& lessonViews();

// A question a step asks. `answer` says what the right answer is, from the live numbers:
//   "lowest_layer" / "highest_layer": the layer whose value of `fact` (a layer.* fact) is the
//       lowest / highest of the layers that have it; the student names the layer;
//   "number": the value of `fact` (a layer.* fact: the step's layer's), within `tolerance`; the
//       student types a number.
struct LessonQuestion {
    std::string prompt;
    std::string answer;
    std::string fact;
    double tolerance = 0;
};

// Which output value of the step's layer the Integer arithmetic view traces: an evaluation image
// and the element's coordinates (empty: the first element).
struct LessonTrace {
    std::size_t image = 0;
    std::vector<std::int64_t> position;
};

struct LessonStep {
    std::string title;
    std::string text;  // with {fact} or {fact:decimals} placeholders (lessonFactKeys)
    // An example model's name (a file of resources/models without ".onnx") or a path relative to
    // the lesson's folder; empty: the model stays.
    std::string model;
    std::optional<std::filesystem::path> modelPath;  // the model resolved by resolveLessonModel
    // Images (a file or a folder) relative to the lesson's folder, for a model that needs its own
    // (an ImageNet model in a lesson folder a teacher made); empty: the images stay.
    std::string data;
    std::optional<std::filesystem::path> dataPath;
    std::optional<QuantConfig> config;               // empty: the configuration stays
    std::string layer;                               // empty: the selection stays
    std::string view;                                // one of lessonViews(); empty: the view stays
    std::string highlight;                           // what to point at, in the view's words
    std::optional<LessonQuestion> question;
    std::optional<PlaygroundSettings> playground;  // the playground's values and settings (view "playground")
    std::optional<LessonTrace> trace;              // the value to trace (view "integer")
};

struct Lesson {
    std::filesystem::path path;
    std::string title, summary;
    std::vector<LessonStep> steps;
};

// Reads and checks a lesson file: qe::Error "FILE: step N ("TITLE"): FIELD: what was expected"
// for the first problem. `examplesFolder` resolves example model names.
Lesson loadLesson(const std::filesystem::path& path, const std::filesystem::path& examplesFolder);
// Every *.json lesson of a folder, by file name; a malformed file is an error naming it.
std::vector<Lesson> loadLessons(const std::filesystem::path& folder, const std::filesystem::path& examplesFolder);

// The numbers a step's text and question can name, each with what it means; "layer." facts are
// those of the selected layer.
struct LessonFactInfo {
    std::string key, meaning;
    int decimals = 2;  // how {key} prints without ":decimals"
};
const std::vector<LessonFactInfo>& lessonFactKeys();

// The facts of the two teaching views, which are not part of an evaluation: the playground's
// ("playground.*") and the traced integer value's ("trace.*"). The window passes those of what it
// shows; the handout computes them for the step.
using LessonViewFacts = std::map<std::string, double>;
LessonViewFacts playgroundFacts(const Playground& playground);
LessonViewFacts integerTraceFacts(const IntegerTrace& trace);

// The live values of the facts for an evaluation and a selected layer (empty: no layer facts),
// with the views' facts. A fact that does not apply (a layer without weights has no weight SQNR,
// a model evaluated without the int8 engine has no engine facts, a view not shown) is absent.
std::map<std::string, double> lessonFacts(const StudyResult& result, const std::string& layer, const LessonViewFacts& views = {});
// The same facts for every layer, by layer name (what questions about layers compare).
std::map<std::string, std::map<std::string, double>> lessonLayerFacts(const StudyResult& result);

// The text with each {fact} replaced by its live value; a fact without a value prints "n/a".
// "{{" and "}}" print braces. {layer.name} and {layer.op} print the selected layer's name and
// operator.
std::string renderLessonText(const std::string& text, const StudyResult& result, const std::string& layer,
                             const LessonViewFacts& views = {});

struct LessonAnswerCheck {
    bool correct = false;
    std::string expected;     // the right answer from the live numbers
    std::string explanation;  // one sentence with the numbers
};
// `layer` is the step's layer, whose facts a "number" question may ask for.
LessonAnswerCheck checkLessonAnswer(const LessonQuestion& question, const std::string& answer, const StudyResult& result,
                                    const std::string& layer = {}, const LessonViewFacts& views = {});

// A lesson written down for a class (the handout): the lesson run start to end on `sources`
// (each step's model replaces sources.model, its data sources.data), and <dir>/handout.md with each step's title, what
// to look at, its text with the numbers of that run, its question with the right answer, and the
// step's report (Study::writeReport: per-layer SQNR chart, weight histograms, metrics) in
// <dir>/step_N/. A step with a playground or a trace gets their numbers too (the trace of the
// step's layer, traced on the step's image, as a table of its arithmetic). The CLI's `lesson` and the lessons panel's Handout... write the same files.
struct LessonHandout {
    std::vector<std::filesystem::path> files;
    std::vector<StudyResult> steps;      // each step's evaluation, in order
    std::vector<LessonViewFacts> views;  // each step's playground and trace facts
};
LessonHandout writeLessonHandout(const Lesson& lesson, StudySources sources, const std::filesystem::path& dir,
                                 const EvaluationProgress& progress = {});

}  // namespace qe
