// quantexplorer-cli lesson: a lesson file run start to end, written down as a handout.

#include "cli/common.h"

#include "lesson/lesson.h"

#include <iostream>

namespace qe::cli {

namespace {

using nlohmann::json;

constexpr const char* kLessonUsage = R"(usage: quantexplorer-cli lesson --lesson L.json --data PATH --out DIR [options]

  --lesson L.json       the lesson (resources/lessons/README.md describes the format)
  --data PATH           the images the steps are evaluated on (not needed when the lesson names its own)
  --out DIR             writes DIR/handout.md (each step's text with the numbers of this run, what
                        to look at, its question and the right answer) and DIR/step_N/ (the
                        step's report: report.md, layer_sqnr.png, weight_histograms.png, ...)
  --examples DIR        where the lesson's example models are (default: resources/models)
  --limit N             evaluate the first N images (default: all)
  --calib-data PATH, --calib-count N, --labels PATH, --label-column NAME: as for 'eval'
  --json                one JSON object on stdout: the files written and each step's numbers
  (and the preprocessing flags of 'eval')
)";

}  // namespace

int runLesson(const std::vector<std::string>& args)
{
    if (printedHelp(args, kLessonUsage))
        return 0;
    const Options options(args,
                          withPreprocessFlags({"--lesson", "--data", "--out", "--examples", "--labels", "--label-column", "--limit",
                                               "--calib-data", "--calib-count", "--memory-budget"}),
                          {"--json"});
    const std::filesystem::path examples = options.value("--examples").value_or(QE_RESOURCES_DIR "/models");
    const Lesson lesson = loadLesson(options.required("--lesson"), examples);
    const std::filesystem::path dir = options.required("--out");
    const StudySources sources =
        studySources(options, !lesson.steps.front().dataPath, static_cast<std::size_t>(options.integer("--limit").value_or(0)), false);
    const LessonHandout handout = writeLessonHandout(lesson, sources, dir, stderrProgress());
    if (options.has("--json")) {
        json files = json::array(), steps = json::array();
        for (const auto& f : handout.files)
            files.push_back(f.string());
        for (std::size_t i = 0; i < handout.steps.size(); ++i) {
            const LessonStep& step = lesson.steps[i];
            steps.push_back({{"title", step.title},
                             {"layer", step.layer},
                             {"text", renderLessonText(step.text, handout.steps[i], step.layer, handout.views[i])},
                             {"facts", lessonFacts(handout.steps[i], step.layer, handout.views[i])}});
        }
        std::cout << json{{"lesson", lesson.title}, {"files", files}, {"steps", steps}}.dump() << "\n";
    } else {
        std::cout << "wrote " << handout.files.front().string() << " and " << handout.files.size() - 1 << " files of "
                  << lesson.steps.size() << " steps\n";
    }
    return 0;
}

}  // namespace qe::cli
