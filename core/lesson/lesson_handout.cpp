// A lesson's handout: every step run on its own settings, written as Markdown with the live numbers,
// the charts and the teaching views' tables.
#include "lesson/lesson.h"
#include "lesson/lesson_internal.h"

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/format.h"

#include <sstream>

namespace qe {

namespace fs = std::filesystem;

namespace {

// The playground as a Markdown table: each value, its code, the value it stands for and the error.
std::string playgroundTable(const Playground& p)
{
    std::ostringstream md;
    md << "| value | code | dequantized | error | clipped |\n|---:|---:|---:|---:|:---:|\n";
    for (const PlaygroundValue& v : p.values)
        md << "| " << formatFixed(v.value, 4) << " | " << v.code << " | " << formatFixed(v.dequantized, 4) << " | "
           << formatFixed(v.error, 4) << " | " << (v.clipped ? "yes" : "") << " |\n";
    return md.str();
}

// The trace as a Markdown table of its arithmetic, one row per step.
std::string integerTraceTable(const IntegerTrace& t)
{
    std::ostringstream md;
    std::string at;
    for (std::int64_t c : t.position)
        at += (at.empty() ? "" : ", ") + std::to_string(c);
    md << "Output element [" << at << "] of `" << t.layer << "` (" << t.opType << "), step by step as the int8 engine computes it:\n\n";
    md << "| step | value |\n|---|---:|\n";
    for (const IntegerTraceStep& step : integerTraceSteps(t))
        md << "| " << step.what << " | " << (step.result ? "**" + step.value + "**" : step.value) << " |\n";
    return md.str();
}

}  // namespace

LessonHandout writeLessonHandout(const Lesson& lesson, StudySources sources, const fs::path& dir, const EvaluationProgress& progress)
{
    LessonHandout handout;
    std::unique_ptr<Study> study;
    QuantConfig config;
    std::optional<PlaygroundSettings> playground;
    LessonTrace trace;
    std::string layer;  // the layer selected: the step's, else the one before
    std::ostringstream md;
    md << "# " << lesson.title << "\n\n";
    if (!lesson.summary.empty())
        md << lesson.summary << "\n\n";
    md << "Lesson file: `" << lesson.path.filename().string() << "`.\n\n";
    int number = 0;
    for (const LessonStep& step : lesson.steps) {
        ++number;
        if (step.modelPath || step.dataPath) {
            if (step.modelPath)
                sources.model = *step.modelPath;
            if (step.dataPath)
                sources.data = *step.dataPath;
            study = std::make_unique<Study>(sources, progress);
        }
        if (!study)
            throw Error(lesson.path.string() + ": step 1 (\"" + lesson.steps.front().title +
                        "\"): model: missing; the first step must open a model");
        if (step.config)
            config = *step.config;
        const StudyResult result = study->evaluate(config, {}, progress);
        const std::string stepDir = "step_" + std::to_string(number);
        ReportRequest request;
        request.current = &result;
        const WrittenReport report = study->writeReport(config, dir / stepDir, request, progress);
        handout.files.insert(handout.files.end(), report.written.files.begin(), report.written.files.end());

        md << "## Step " << number << ": " << step.title << "\n\n";
        md << "Model `" << sources.model.filename().string() << "`, " << result.metrics.images << " images";
        if (!step.layer.empty())
            md << ", layer `" << step.layer << "`";
        if (!step.view.empty())
            md << ", view *" << step.view << "*";
        md << ".\n\n";
        if (!step.highlight.empty())
            md << "**Look at:** " << step.highlight << "\n\n";
        // The teaching views' numbers: the playground as the step sets it (or as the step before
        // left it), and the step's layer traced when the step shows the Integer arithmetic view.
        if (step.playground)
            playground = *step.playground;
        LessonViewFacts views;
        if (playground) {
            const Playground shown = quantizePlayground(*playground);
            views = playgroundFacts(shown);
            if (step.view == "playground")
                md << playgroundTable(shown) << "\n";
        }
        if (step.trace)
            trace = *step.trace;
        if (!step.layer.empty())
            layer = step.layer;
        if (step.view == "integer" && !layer.empty()) {
            // A layer the configuration keeps in float has no integer arithmetic to show: said in
            // the handout (its trace.* numbers print n/a), the rest of the lesson written.
            try {
                const IntegerTrace traced = study->traceIntegerOutput(config, layer, trace.image, trace.position, progress);
                views.merge(integerTraceFacts(traced));
                md << integerTraceTable(traced) << "\n";
            } catch (const Error& e) {
                md << "*No integer arithmetic to show: " << e.what() << ".*\n\n";
            }
        }
        md << renderLessonText(step.text, result, layer, views) << "\n\n";
        if (step.question) {
            const LessonAnswerCheck answer = checkLessonAnswer(*step.question, "", result, layer, views);
            md << "**Question:** " << step.question->prompt << "\n\n";
            md << "**Answer:** " << (answer.expected.empty() ? "none in this run" : answer.expected);
            if (step.question->answer != "number")
                md << ". " << answer.explanation;  // which layer, with its number
            md << "\n\n";
        }
        md << "![per-layer SQNR](" << stepDir << "/layer_sqnr.png)\n\n";
        md << "The step's full report: [" << stepDir << "/report.md](" << stepDir << "/report.md).\n\n";
        handout.steps.push_back(result);
        handout.views.push_back(views);
    }
    const fs::path path = dir / "handout.md";
    fs::create_directories(dir);
    writeFileAtomically(path, md.str());
    handout.files.insert(handout.files.begin(), path);
    return handout;
}

}  // namespace qe
