// quantexplorer: the desktop application. With no arguments it opens the embedded default, the
// demo Fashion-MNIST model in resources/ on Debian's Fashion-MNIST test images, with the W8A8
// default configuration calibrated and evaluated.

#include "main_window.h"
#include "session.h"

#include "common/memory.h"

#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QFileInfo>

#include <cstdio>

namespace {

// The resources folder: beside the executable when installed, else the source tree's.
QString resourcesDir()
{
    const QString besideBinary = QCoreApplication::applicationDirPath() + "/../share/quantexplorer/resources";
    if (QFileInfo::exists(besideBinary))
        return besideBinary;
    return QStringLiteral(QE_RESOURCES_DIR);
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
    QCommandLineOption budget("memory-budget", "The most the evaluation caches may hold, in bytes or with K, M or G (3G); default "
                                               "a quarter of the machine's memory. Beyond it, edits recompute more images.",
                              "size");
    parser.addOption(budget);
    parser.addOption(screenshot);
    parser.addOption(precisionViews);
    parser.addOption(qatShots);
    parser.addOption(compare);
    parser.process(app);

    qe::MainWindow window;
    if (parser.isSet(images)) {
        bool isNumber = false;
        const int count = parser.value(images).toInt(&isNumber);
        if (!isNumber || count < 1) {
            std::fprintf(stderr, "--images: a number of images (1 or more), got '%s'\n", qPrintable(parser.value(images)));
            return 2;
        }
        window.setEvaluationImages(count);
    }
    if (parser.isSet(budget)) {
        const std::optional<std::uint64_t> bytes = qe::parseByteSize(parser.value(budget).toStdString());
        if (!bytes) {
            std::fprintf(stderr, "--memory-budget: a size in bytes, or with K, M or G (e.g. 3G), got '%s'\n",
                         qPrintable(parser.value(budget)));
            return 2;
        }
        window.session()->setCacheBudget(bytes);
    }
    if (parser.isSet(compare))
        window.compareWithFile(parser.value(compare));  // before the screenshot, which then waits for B
    if (parser.isSet(screenshot) && parser.isSet(qatShots)) {
        bool isNumber = false;
        const int steps = parser.value(qatShots).toInt(&isNumber);
        if (!isNumber || steps < 1) {
            std::fprintf(stderr, "--screenshot-qat: a number of training steps (1 or more), got '%s'\n",
                         qPrintable(parser.value(qatShots)));
            return 2;
        }
        const QString path = parser.value(screenshot);
        window.screenshotQat(steps, (path.endsWith(".png") ? path.chopped(4) : path) + "_qat.onnx");
    }
    if (parser.isSet(screenshot))
        window.saveScreenshotWhenReady(parser.value(screenshot), parser.isSet(precisionViews));
    window.show();
    window.openSession(parser.value(model), parser.value(data), parser.value(config));
    return app.exec();
}
