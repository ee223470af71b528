// quantexplorer: the desktop application. With no arguments it opens the embedded default, the
// demo Fashion-MNIST model in resources/ on Debian's Fashion-MNIST test images, with the W8A8
// default configuration calibrated and evaluated.

#include "main_window.h"
#include "session.h"

#include "common/error.h"
#include "common/memory.h"

#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QFileInfo>

#include <cstdio>
#include <optional>

namespace {

// The resources folder: beside the executable when installed, else the source tree's.
QString resourcesDir()
{
    const QString besideBinary = QCoreApplication::applicationDirPath() + "/../share/quantexplorer/resources";
    if (QFileInfo::exists(besideBinary))
        return besideBinary;
    return QStringLiteral(QE_RESOURCES_DIR);
}

// The value of a flag that counts something (1 or more); nothing, with the reason on stderr,
// for anything else.
std::optional<int> positiveCount(const QCommandLineParser& parser, const QCommandLineOption& option, const char* what)
{
    bool isNumber = false;
    const int count = parser.value(option).toInt(&isNumber);
    if (isNumber && count >= 1)
        return count;
    std::fprintf(stderr, "--%s: a number of %s (1 or more), got '%s'\n", qPrintable(option.names().first()), what,
                 qPrintable(parser.value(option)));
    return std::nullopt;
}

}  // namespace

int main(int argc, char** argv)
{
    qe::keepFreedMemoryForReuse();
    QApplication app(argc, argv);
    QApplication::setApplicationName("Quantization Explorer");
    QApplication::setOrganizationName("QuantizationExplorer");

    QCommandLineParser parser;
    parser.setApplicationDescription("Explore neural-network quantization interactively.");
    parser.addHelpOption();
    QCommandLineOption model("model", "ONNX model to open.", "path", resourcesDir() + "/models/fashion_cnn.onnx");
    QCommandLineOption data("data", "Images to evaluate on.", "path",
                            "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
    QCommandLineOption config("config", "Quantization configuration (JSON) to start from (default: W8A8).", "path");
    QCommandLineOption screenshot("screenshot",
                                  "Save PNGs of the main views once they are ready (PATH, PATH_details, _accuracy, _images) and PATH.json (the summary line's numbers and warnings), then quit.",
                                  "png");
    parser.addOption(model);
    parser.addOption(data);
    parser.addOption(config);
    QCommandLineOption compare("compare", "Configuration B (JSON) to compare the current one with (A/B), once the model has loaded.",
                               "path");
    QCommandLineOption precisionViews("screenshot-precision",
                                      "With --screenshot: then run a sensitivity sweep and a mixed-precision search with the dialog's "
                                      "defaults and save PATH_sensitivity, _search and _pareto too (minutes on a large model; the search "
                                      "needs the training split beside the images).");
    QCommandLineOption qatShots("screenshot-qat",
                                "With --screenshot (instead of the precision views): then fine-tune with QAT for STEPS steps from "
                                "the configuration shown, save PATH_qat (the dialog), write the fine-tuned model as PATH_qat.onnx "
                                "and save PATH_qat_model (the window on it).",
                                "steps");
    QCommandLineOption images("images", "How many evaluation images (default 1000; Tools > Evaluation Images and Memory...). The caches keep "
                                        "every layer's activations per image: fewer images, less memory.", "count");
    parser.addOption(images);
    QCommandLineOption budget("memory-budget", "The most the evaluation may hold (images, caches, batches being measured), in bytes or "
                                               "with K, M or G (3G); default a quarter of the machine's memory. The less, the more "
                                               "layers an edit runs again.",
                              "size");
    parser.addOption(budget);
    parser.addOption(screenshot);
    parser.addOption(precisionViews);
    parser.addOption(qatShots);
    parser.addOption(compare);
    QCommandLineOption lessonShot("screenshot-lesson",
                                  "With --screenshot (instead of the views): once the model is evaluated, open the lesson FILE in "
                                  "Help > Lessons, go to step --lesson-step (default 1), wait for its evaluation, save PATH and quit.",
                                  "file");
    QCommandLineOption lessonStep("lesson-step", "With --screenshot-lesson: the step shown (1 is the first).", "number");
    parser.addOption(lessonShot);
    parser.addOption(lessonStep);
    QCommandLineOption presentation("presentation", "Start in presentation mode (View > Presentation Mode) at 1280x720.");
    parser.addOption(presentation);
    parser.process(app);

    qe::MainWindow window;
    window.setExamplesFolder(resourcesDir() + "/models");
    window.setLessonsFolder(resourcesDir() + "/lessons");
    if (parser.isSet(images)) {
        const std::optional<int> count = positiveCount(parser, images, "images");
        if (!count)
            return 2;
        window.setEvaluationImages(*count);
    }
    if (parser.isSet(budget)) {
        try {
            window.session()->setCacheBudget(qe::byteSizeOption("--memory-budget", parser.value(budget).toStdString()));
        } catch (const qe::Error& e) {
            std::fprintf(stderr, "%s\n", e.what());
            return 2;
        }
    }
    if (parser.isSet(compare))
        window.compareWithFile(parser.value(compare));  // before the screenshot, which then waits for B
    if (parser.isSet(screenshot) && parser.isSet(qatShots)) {
        const std::optional<int> steps = positiveCount(parser, qatShots, "training steps");
        if (!steps)
            return 2;
        const QString path = parser.value(screenshot);
        window.screenshotQat(*steps, (path.endsWith(".png") ? path.chopped(4) : path) + "_qat.onnx");
    }
    if (parser.isSet(screenshot) && parser.isSet(lessonShot)) {
        const std::optional<int> step = parser.isSet(lessonStep) ? positiveCount(parser, lessonStep, "lesson step") : 1;
        if (!step)
            return 2;
        window.screenshotLessonWhenReady(parser.value(lessonShot), *step - 1, parser.value(screenshot));
    } else if (parser.isSet(screenshot)) {
        window.saveScreenshotWhenReady(parser.value(screenshot), parser.isSet(precisionViews));
    }
    if (parser.isSet(presentation)) {
        window.setPresentationMode(true);
        window.resize(1280, 720);
    }
    window.show();
    window.openSession(parser.value(model), parser.value(data), parser.value(config));
    return app.exec();
}
