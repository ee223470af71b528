#include "io/report.h"

#include "common/atomic_file.h"
#include "common/error.h"
#include "eval/accuracy.h"
#include "io/palette.h"
#include "io/qdq_export.h"

#include <nlohmann/json.hpp>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

namespace qe {

namespace {

// OpenCV draws in BGR.
cv::Scalar bgr(palette::Rgb c) { return cv::Scalar(c.b, c.g, c.r); }
const cv::Scalar kInk(40, 40, 40), kGrid(220, 220, 220), kBlue = bgr(palette::kBlue), kOrange = bgr(palette::kOrange),
                 kRed = bgr(palette::kRed), kGrey = bgr(palette::kGrey);
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

void text(cv::Mat& img, const std::string& s, cv::Point at, double size = 0.45, cv::Scalar color = kInk, int thickness = 1)
{
    cv::putText(img, s, at, kFont, size, color, thickness, cv::LINE_AA);
}

int textWidth(const std::string& s, double size = 0.45)
{
    int baseline = 0;
    return cv::getTextSize(s, kFont, size, 1, &baseline).width;
}

std::string fixed(double v, int digits)
{
    if (!std::isfinite(v))
        return v > 0 ? "inf" : "-";
    std::ostringstream out;
    out << std::fixed << std::setprecision(digits) << v;
    return out.str();
}

void savePng(const std::filesystem::path& path, const cv::Mat& img)
{
    std::vector<unsigned char> bytes;
    if (!cv::imencode(".png", img, bytes))
        throw Error(path.string() + ": cannot encode the chart as PNG");
    writeFileAtomically(path, std::string(bytes.begin(), bytes.end()));
}

// Horizontal bars, one row per layer: accumulated and isolated SQNR in dB.
cv::Mat sqnrChart(const ModelMetrics& m)
{
    int nameWidth = 120;
    for (const LayerMetrics& l : m.layers)
        nameWidth = std::max(nameWidth, textWidth(l.name) + 16);
    const int rowHeight = 30, top = 50, plotWidth = 520, width = nameWidth + plotWidth + 80;
    const int height = top + rowHeight * static_cast<int>(m.layers.size()) + 50;
    cv::Mat img(height, width, CV_8UC3, cv::Scalar(255, 255, 255));
    double maxDb = 10;
    for (const LayerMetrics& l : m.layers)
        for (double v : {l.accumulated.sqnrDb, l.isolated.sqnrDb})
            if (std::isfinite(v))
                maxDb = std::max(maxDb, v);
    maxDb = std::ceil(maxDb / 10) * 10;
    text(img, "SQNR per layer (dB, higher is better)", {10, 22}, 0.6, kInk, 1);
    cv::rectangle(img, {nameWidth, 30}, {nameWidth + 12, 40}, kBlue, cv::FILLED);
    text(img, "accumulated (model up to here)", {nameWidth + 18, 40});
    cv::rectangle(img, {nameWidth + 290, 30}, {nameWidth + 302, 40}, kOrange, cv::FILLED);
    text(img, "isolated (this layer alone)", {nameWidth + 308, 40});
    for (int db = 0; db <= maxDb; db += 10) {
        const int x = nameWidth + static_cast<int>(plotWidth * db / maxDb);
        cv::line(img, {x, top}, {x, height - 40}, kGrid);
        text(img, std::to_string(db), {x - 8, height - 22}, 0.4);
    }
    for (std::size_t i = 0; i < m.layers.size(); ++i) {
        const LayerMetrics& l = m.layers[i];
        const int y = top + static_cast<int>(i) * rowHeight;
        text(img, l.name, {nameWidth - textWidth(l.name) - 8, y + 19});
        auto bar = [&](double db, int offset, cv::Scalar color) {
            const bool exact = !std::isfinite(db);
            const double v = exact ? maxDb : std::max(0.0, db);
            const int x1 = nameWidth + static_cast<int>(plotWidth * v / maxDb);
            cv::rectangle(img, {nameWidth, y + offset}, {std::max(nameWidth + 1, x1), y + offset + 11}, color, cv::FILLED);
            text(img, exact ? "exact" : fixed(db, 1), {x1 + 4, y + offset + 10}, 0.38);
        };
        if (l.keepFloat) {
            text(img, "float", {nameWidth + 4, y + 19}, 0.45, kRed);
            continue;
        }
        bar(l.accumulated.sqnrDb, 3, kBlue);
        bar(l.isolated.sqnrDb, 15, kOrange);
    }
    return img;
}

// Small multiples: each weight tensor's histogram with its quantization levels as ticks.
cv::Mat histogramGrid(const std::vector<TensorHistogram>& histograms)
{
    const int cellW = 360, cellH = 190, columns = std::min<int>(3, static_cast<int>(histograms.size()));
    const int rows = (static_cast<int>(histograms.size()) + columns - 1) / columns;
    cv::Mat img(rows * cellH + 10, columns * cellW + 10, CV_8UC3, cv::Scalar(255, 255, 255));
    for (std::size_t k = 0; k < histograms.size(); ++k) {
        const TensorHistogram& h = histograms[k];
        const int ox = 10 + static_cast<int>(k % columns) * cellW, oy = 10 + static_cast<int>(k / columns) * cellH;
        const int plotW = cellW - 30, plotH = cellH - 60, baseY = oy + 30 + plotH;
        text(img, h.layer + " weights", {ox, oy + 14}, 0.45);
        const auto& counts = h.histogram.counts;
        if (counts.empty())
            continue;
        const double lo = h.histogram.low, hi = h.histogram.high;
        const double peak = std::max<double>(1, *std::max_element(counts.begin(), counts.end()));
        auto xOf = [&](double v) { return ox + static_cast<int>((v - lo) / std::max(1e-30, hi - lo) * plotW); };
        const double binWidth = (hi - lo) / static_cast<double>(counts.size());
        for (std::size_t b = 0; b < counts.size(); ++b) {
            const int x0 = xOf(lo + binWidth * static_cast<double>(b)), x1 = std::max(x0 + 1, xOf(lo + binWidth * static_cast<double>(b + 1)));
            const int y = baseY - static_cast<int>(plotH * static_cast<double>(counts[b]) / peak);
            cv::rectangle(img, {x0, y}, {x1 - 1, baseY}, kBlue, cv::FILLED);
        }
        // The levels as ticks under the axis; a thin band where they are too dense to tell apart.
        const bool dense = h.levels.size() > 64;
        for (float level : h.levels)
            if (level >= lo && level <= hi)
                cv::line(img, {xOf(level), baseY + 2}, {xOf(level), baseY + (dense ? 4 : 8)}, kGrey);
        if (h.clipRange) {
            for (float edge : {h.clipRange->first, h.clipRange->second})
                if (edge >= lo && edge <= hi)
                    cv::line(img, {xOf(edge), oy + 30}, {xOf(edge), baseY}, kRed, 1);
        }
        cv::line(img, {ox, baseY}, {ox + plotW, baseY}, kInk);
        text(img, fixed(lo, 3), {ox, baseY + 24}, 0.38);
        text(img, fixed(hi, 3), {ox + plotW - textWidth(fixed(hi, 3), 0.38), baseY + 24}, 0.38);
        const std::string levels = h.levels.empty() ? "float" : std::to_string(h.levels.size()) + " levels";
        text(img, levels, {ox + plotW - textWidth(levels, 0.4), oy + 14}, 0.4, kGrey);
    }
    return img;
}

cv::Mat confusionChart(const ModelMetrics& m)
{
    int classes = 0;
    for (int l : m.labels)
        classes = std::max(classes, l + 1);
    for (int p : m.predictions)
        classes = std::max(classes, p + 1);
    if (classes == 0 || classes > 100)
        return {};
    std::vector<int> counts(static_cast<std::size_t>(classes * classes), 0);
    std::vector<int> perLabel(static_cast<std::size_t>(classes), 0);
    for (std::size_t i = 0; i < m.labels.size() && i < m.predictions.size(); ++i)
        if (m.labels[i] >= 0) {
            ++counts[static_cast<std::size_t>(m.labels[i] * classes + m.predictions[i])];
            ++perLabel[static_cast<std::size_t>(m.labels[i])];
        }
    const int cell = std::max(8, std::min(40, 440 / classes)), left = 60, top = 50;
    cv::Mat img(top + cell * classes + 40, left + cell * classes + 20, CV_8UC3, cv::Scalar(255, 255, 255));
    text(img, "confusion matrix (rows: label, columns: quantized prediction)", {10, 22}, 0.45);
    for (int r = 0; r < classes; ++r)
        for (int c = 0; c < classes; ++c) {
            const double share = perLabel[static_cast<std::size_t>(r)] ? double(counts[static_cast<std::size_t>(r * classes + c)]) / perLabel[static_cast<std::size_t>(r)] : 0;
            const int shade = 255 - static_cast<int>(200 * share);
            cv::rectangle(img, {left + c * cell, top + r * cell}, {left + (c + 1) * cell - 1, top + (r + 1) * cell - 1},
                          r == c ? cv::Scalar(255, shade, shade) : cv::Scalar(shade, shade, 255), cv::FILLED);
            if (cell >= 28 && counts[static_cast<std::size_t>(r * classes + c)] > 0)
                text(img, std::to_string(counts[static_cast<std::size_t>(r * classes + c)]), {left + c * cell + 3, top + r * cell + cell / 2 + 4}, 0.33);
        }
    for (int k = 0; k < classes && cell >= 14; ++k) {
        text(img, std::to_string(k), {left - 25, top + k * cell + cell / 2 + 4}, 0.4);
        text(img, std::to_string(k), {left + k * cell + cell / 2 - 4, top - 6}, 0.4);
    }
    return img;
}

std::string percent(double v) { return fixed(100 * v, 2) + "%"; }

}  // namespace

ReportInput reportInputFor(QuantEvaluator& evaluator, const QuantConfig& config, const QuantPlan& plan, const ModelMetrics& metrics)
{
    ReportInput input;
    input.configText = config.toJson().dump(2);
    input.graph = &evaluator.graph();
    input.plan = &plan;
    input.metrics = &metrics;
    for (const QuantLayer& layer : evaluator.layers())
        if (!layer.weight.empty())
            input.weightHistograms.push_back(evaluator.histogram(config, layer.weight, 96));
    input.notes = exportQdq(plan).warnings;
    return input;
}

std::vector<std::filesystem::path> writeReport(const std::filesystem::path& dir, const ReportInput& in)
{
    if (!in.graph || !in.plan || !in.metrics)
        throw Error("report: needs the model, the plan and the metrics");
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec)
        throw Error(dir.string() + ": cannot create the report folder: " + ec.message());
    const ModelMetrics& m = *in.metrics;
    std::vector<std::filesystem::path> written;

    savePng(dir / "layer_sqnr.png", sqnrChart(m));
    written.push_back(dir / "layer_sqnr.png");
    if (!in.weightHistograms.empty()) {
        savePng(dir / "weight_histograms.png", histogramGrid(in.weightHistograms));
        written.push_back(dir / "weight_histograms.png");
    }
    const cv::Mat confusion = confusionChart(m);
    if (!confusion.empty()) {
        savePng(dir / "confusion_matrix.png", confusion);
        written.push_back(dir / "confusion_matrix.png");
    }

    std::ostringstream md;
    md << "# Quantization report\n\n";
    md << "| | |\n|---|---|\n";
    md << "| model | `" << in.modelPath << "` (" << in.graph->nodes.size() << " nodes, " << in.graph->parameterCount() << " parameters) |\n";
    md << "| data | " << in.dataDescription << " |\n";
    md << "| images evaluated | " << m.images << " |\n\n";
    md << "## Accuracy and size\n\n";
    md << "| | float | quantized |\n|---|---:|---:|\n";
    md << "| top-1 | " << percent(m.floatTop1) << " | " << percent(m.top1) << " |\n";
    md << "| top-5 | " << percent(m.floatTop5) << " | " << percent(m.top5) << " |\n";
    md << "| agreement with float (same top-1) | | " << percent(m.agreement) << " |\n";
    md << "| output SQNR | | " << fixed(m.outputSqnrDb, 2) << " dB |\n";
    md << "| size | " << fixed(m.floatSizeBytes / 1024, 1) << " KiB | " << fixed(m.sizeBytes / 1024, 1) << " KiB |\n";
    md << "| bits per weight | 32 | " << fixed(m.bitsPerWeight, 2) << " |\n\n";
    if (in.integer) {
        const IntegerEvaluation& r = *in.integer;
        md << "The integer-only int8 engine ran " << r.integerLayers << " of " << r.layers.size() << " layers in integers: top-1 "
           << percent(r.top1) << " (simulation " << percent(r.simulatedTop1) << "), the same top-1 as the simulation on "
           << percent(r.agreementWithSimulation) << " of the images, " << fixed(r.msPerImage, 3) << " ms per image.\n\n";
    }
    if (!in.repairs.empty()) {
        md << "## Repairs\n\nThe float model was repaired before quantization. Float accuracy and agreement are the original "
              "model's; each layer's error is against the repaired float model before bias correction and AdaRound.\n\n";
        for (const std::string& line : in.repairs)
            md << "- " << line << "\n";
        md << "\n";
    }
    md << "## Layers\n\n![SQNR per layer](layer_sqnr.png)\n\n";
    md << "| layer | op | weights | activations | SQNR dB (accumulated) | SQNR dB (isolated) | weight SQNR dB | cosine | clipped | weight KiB |";
    md << (in.integer ? " int8 engine |\n" : "\n");
    md << "|---|---|---|---|---:|---:|---:|---:|---:|---:|" << (in.integer ? "---|\n" : "\n");
    for (std::size_t i = 0; i < m.layers.size(); ++i) {
        const LayerMetrics& l = m.layers[i];
        const LayerQuantConfig& c = in.plan->plans.at(i).config;
        auto spec = [&](const TensorQuantSpec& s, bool present) {
            if (!present)
                return std::string("-");
            if (c.keepFloat || !s.quantize)
                return std::string("float");
            return std::string(schemeTraits(s.scheme).name) + " " + std::to_string(s.bits) +
                   (s.dynamic ? " dynamic" : "") + (s.granularity == Granularity::PerChannel ? " per-channel" : "") +
                   (s.granularity == Granularity::PerToken ? " per-token" : "");
        };
        md << "| " << l.name << " | " << l.opType << " | " << spec(c.weights, l.weightCount > 0) << " | " << spec(c.activations, true)
           << " | " << fixed(l.accumulated.sqnrDb, 2) << " | " << fixed(l.isolated.sqnrDb, 2) << " | "
           << (l.weights ? fixed(l.weights->sqnrDb, 2) : "-") << " | " << fixed(l.accumulated.cosine, 5) << " | "
           << percent(l.clippedFraction) << " | " << fixed(l.weightBytes / 1024, 2) << " |";
        if (in.integer) {
            std::string how = "-";
            for (const LayerExecution& e : in.integer->layers)
                if (e.layer == l.name)
                    how = e.integer ? "integer" : "float: " + e.reason;
            md << " " << how << " |";
        }
        md << "\n";
    }
    md << "\n";
    if (!in.weightHistograms.empty())
        md << "## Weights\n\nEach layer's weight histogram, as in the window: grey ticks are the representable levels, red lines the clipping range.\n\n"
              "![weight histograms](weight_histograms.png)\n\n";
    if (!confusion.empty()) {
        md << "## Confusion matrix\n\n![confusion matrix](confusion_matrix.png)\n\n";
    } else if (!m.labels.empty()) {
        // Too many classes to draw a readable matrix: its two readable summaries.
        const ConfusionMatrix matrix = confusionMatrix(m.labels, m.predictions);
        auto name = [&](int c) {
            const std::string number = std::to_string(c);
            return c < static_cast<int>(in.classNames.size()) ? number + " " + in.classNames[static_cast<std::size_t>(c)] : number;
        };
        md << "## Confusion matrix\n\n" << matrix.classes
           << " classes are too many to draw; the most frequent mistakes and the classes with the lowest accuracy "
              "(quantized model):\n\n";
        md << "| label | predicted as | images |\n|---|---|---:|\n";
        for (const ConfusedPair& p : mostConfusedPairs(matrix, 20))
            md << "| " << name(p.label) << " | " << name(p.predicted) << " | " << p.count << " |\n";
        md << "\n| class | images | top-1 |\n|---|---:|---:|\n";
        const std::vector<ClassAccuracy> classes = classAccuracies(matrix);
        for (std::size_t i = 0; i < classes.size() && i < 20; ++i)
            md << "| " << name(classes[i].label) << " | " << classes[i].images << " | " << percent(classes[i].accuracy()) << " |\n";
        md << "\n";
    }
    if (!in.notes.empty()) {
        md << "## Notes\n\n";
        for (const std::string& n : in.notes)
            md << "- " << n << "\n";
        md << "\n";
    }
    md << "## Configuration\n\n```json\n" << in.configText << "\n```\n";
    writeFileAtomically(dir / "report.md", md.str());
    written.push_back(dir / "report.md");
    return written;
}

}  // namespace qe
