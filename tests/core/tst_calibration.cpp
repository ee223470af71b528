// Activation-range calibration against outside references: exact extremes, PyTorch's
// MovingAverageMinMaxObserver, closed-form quantiles, the analytic MSE-optimal clipping of a
// Gaussian, and an independent numpy implementation of TensorRT's entropy calibration (PyTorch's
// and numpy's results come from scripts/make_calibration_references.py, run at test time).

#include "common/error.h"
#include "quant/calibration.h"
#include "test_support.h"

#include <nlohmann/json.hpp>

#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <random>

using namespace qe;
namespace fs = std::filesystem;

namespace {

// How far a histogram-based quantile may be from the exact one: the streaming histogram
// interpolates inside a bin, so anything beyond two bin widths is a bug, not resolution.
constexpr double kQuantileBins = 2.0;
// PyTorch keeps its running extremes in float32 like we do; the tolerance only absorbs a
// contracted multiply-add.
constexpr double kMovingAverageRelTol = 1e-6;
// A streamed (re-binned) histogram may move the entropy threshold far along a flat divergence
// curve; what must hold is that the threshold is still nearly optimal on the exact histogram.
constexpr double kStreamedEntropyExcess = 0.05;

TensorQuantSpec quantSpec(Scheme scheme, int bits, std::optional<bool> isSigned = std::nullopt)
{
    TensorQuantSpec spec;
    spec.scheme = scheme;
    spec.bits = bits;
    spec.isSigned = isSigned;
    return spec;
}

CalibrationSpec calibrationSpec(CalibrationMethod method, double percentile = 99.99, double constant = 0.01)
{
    CalibrationSpec spec;
    spec.method = method;
    spec.percentile = percentile;
    spec.movingAverageConstant = constant;
    return spec;
}

void observeInBatches(RangeObserver& observer, const std::vector<float>& values, std::size_t batches)
{
    const std::size_t size = (values.size() + batches - 1) / batches;
    for (std::size_t first = 0; first < values.size(); first += size)
        observer.observe(values.data() + first, std::min(size, values.size() - first));
}

std::vector<float> readFloats(const fs::path& path, std::size_t count)
{
    std::vector<float> values(count);
    std::ifstream in(path, std::ios::binary);
    in.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(count * sizeof(float)));
    if (in.gcount() != static_cast<std::streamsize>(count * sizeof(float)))
        throw std::runtime_error(path.string() + " is too short");
    return values;
}

// numpy.percentile's default (linear interpolation between order statistics).
double sampleQuantile(std::vector<float> values, double q)
{
    const double position = q * double(values.size() - 1);
    const auto below = static_cast<std::size_t>(std::floor(position));
    std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(below), values.end());
    const double a = values[below];
    if (below + 1 >= values.size())
        return a;
    const double b = *std::min_element(values.begin() + static_cast<std::ptrdiff_t>(below) + 1, values.end());
    return a + (position - double(below)) * (b - a);
}

// Fake quantization on the raw samples with our own small quantizers (round half away from zero;
// the tie rule does not matter for continuous data).
double fakeQuantMse(const std::vector<float>& values, Scheme scheme, int bits, float lo, float hi)
{
    double sum = 0;
    if (scheme == Scheme::Symmetric) {  // signed, narrow range
        const double qmax = std::exp2(bits - 1) - 1;
        const double scale = std::max(-double(lo), double(hi)) / qmax;
        for (float x : values) {
            const double q = std::clamp(std::round(x / scale), -qmax, qmax);
            sum += (q * scale - x) * (q * scale - x);
        }
    } else {  // affine, 2^bits levels, zero point nudged so that 0 is exact
        const double levels = std::exp2(bits) - 1;
        const double scale = (double(hi) - lo) / levels;
        const double zeroPoint = std::round(-lo / scale);
        for (float x : values) {
            const double q = std::clamp(std::round(x / scale) + zeroPoint, 0.0, levels);
            sum += ((q - zeroPoint) * scale - x) * ((q - zeroPoint) * scale - x);
        }
    }
    return sum / double(values.size());
}

// Analytic clipping of N(0, 1): E[(|x| - a)^2 ; |x| > a] = 2 [(1 + a^2) Q(a) - a phi(a)].
double gaussianTail(double a) { return 0.5 * std::erfc(a / std::sqrt(2.0)); }
double gaussianClipError(double a)
{
    const double phi = std::exp(-a * a / 2) / std::sqrt(2 * M_PI);
    return 2 * ((1 + a * a) * gaussianTail(a) - a * phi);
}

template <class F> double goldenSectionMinimum(F f, double lo, double hi)
{
    const double g = (std::sqrt(5.0) - 1) / 2;
    for (int i = 0; i < 200; ++i) {
        const double c = hi - g * (hi - lo), d = lo + g * (hi - lo);
        if (f(c) < f(d))
            hi = d;
        else
            lo = c;
    }
    return (lo + hi) / 2;
}

// The MSE-optimal clipping a/sigma of a Gaussian for our grids, with the objective our MSE search
// uses (clipping error plus step^2/12 on the mass inside): narrow symmetric steps a/(2^(b-1)-1),
// affine steps 2a/(2^b-1). For ReLU(N(0, 1)) on an affine [0, a] grid (steps a/(2^b-1)) only the
// upper tail is clipped, and the exact zeros (half the mass) have no rounding error.
double gaussianOptimalClip(Scheme scheme, int bits, bool relu)
{
    if (relu) {
        const double step = 1 / (std::exp2(bits) - 1);
        return goldenSectionMinimum(
            [&](double a) { return gaussianClipError(a) / 2 + (a * step) * (a * step) / 12 * (0.5 - gaussianTail(a)); }, 0.5, 8);
    }
    const double step = scheme == Scheme::Symmetric ? 1 / (std::exp2(bits - 1) - 1) : 2 / (std::exp2(bits) - 1);
    return goldenSectionMinimum(
        [&](double a) { return gaussianClipError(a) + (a * step) * (a * step) / 12 * (1 - 2 * gaussianTail(a)); }, 0.5, 8);
}

}  // namespace

class TestCalibration : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void methodTable();
    void badInputIsAnError_data();
    void badInputIsAnError();
    void minMaxIsExactAndOrderFree();
    void movingAverageMatchesPyTorch_data();
    void movingAverageMatchesPyTorch();
    void percentileMatchesQuantiles_data();
    void percentileMatchesQuantiles();
    void mseFindsTheOptimalGaussianClipping_data();
    void mseFindsTheOptimalGaussianClipping();
    void mseClipsMoreAtFewerBits();
    void entropyMatchesReferenceImplementation_data();
    void entropyMatchesReferenceImplementation();
    void clippingMethodsIgnoreOutliers();
    void histogramGrowthPreservesMass_data();
    void histogramGrowthPreservesMass();
    void histogramCountsEachValueInItsBin_data();
    void histogramCountsEachValueInItsBin();

private:
    QTemporaryDir referenceDir_;
    nlohmann::json manifest_;
    QString skipReason_;
};

void TestCalibration::initTestCase()
{
    QVERIFY(referenceDir_.isValid());
    skipReason_ = test::runReferenceScript("make_calibration_references.py", referenceDir_.path(),
                                           "python3-torch and python3-numpy for the reference results");
    if (!skipReason_.isEmpty())
        return;
    manifest_ = nlohmann::json::parse(std::ifstream(fs::path(referenceDir_.path().toStdString()) / "manifest.json"));
}

void TestCalibration::methodTable()
{
    const auto& table = calibrationMethodTable();
    const std::array<std::string_view, kCalibrationMethodCount> names{"minmax", "moving_average", "percentile", "mse", "entropy"};
    for (int i = 0; i < kCalibrationMethodCount; ++i) {
        const CalibrationMethodTraits& row = table[static_cast<std::size_t>(i)];
        QCOMPARE(int(row.method), i);
        QCOMPARE(row.name, names[static_cast<std::size_t>(i)]);
        QCOMPARE(calibrationMethodName(row.method), row.name);
        QCOMPARE(calibrationMethodFromName(row.name), std::optional(row.method));
        QVERIFY(!row.displayName.empty());
        QVERIFY2(row.tradeOff.size() > 20 && row.tradeOff.back() == '.', row.tradeOff.data());
    }
    QCOMPARE(calibrationMethodFromName("kl"), std::nullopt);
    QCOMPARE(calibrationMethodFromName("MinMax"), std::nullopt);
}

void TestCalibration::badInputIsAnError_data()
{
    QTest::addColumn<int>("method");
    for (const CalibrationMethodTraits& row : calibrationMethodTable())
        QTest::newRow(row.name.data()) << int(row.method);
}

void TestCalibration::badInputIsAnError()
{
    QFETCH(int, method);
    const CalibrationSpec calibration = calibrationSpec(CalibrationMethod(method));
    const TensorQuantSpec spec = quantSpec(Scheme::Affine, 8);
    RangeObserver observer;
    try {
        (void)observer.range(calibration, spec);
        QFAIL("an empty observer gave a range");
    } catch (const Error& e) {
        QVERIFY2(std::string(e.what()).find("no activations observed") != std::string::npos, e.what());
    }

    // A non-finite value rejects the whole batch and leaves the observer as it was.
    const std::vector<float> bad{1.f, NAN, 2.f}, inf{1.f, INFINITY};
    QVERIFY_THROWS_EXCEPTION(Error, observer.observe(bad.data(), bad.size()));
    QVERIFY_THROWS_EXCEPTION(Error, observer.observe(inf.data(), inf.size()));
    const std::vector<float> firstBad{-INFINITY, 1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f, 8.f};
    QVERIFY_THROWS_EXCEPTION(Error, observer.observe(firstBad.data(), firstBad.size()));
    try {  // the error names the value
        observer.observe(bad.data(), bad.size());
    } catch (const Error& e) {
        QVERIFY2(std::string(e.what()).find("activation 1 of the batch") != std::string::npos, e.what());
    }
    QVERIFY(observer.empty());
    QVERIFY_THROWS_EXCEPTION(Error, observer.observe(Tensor(DataType::Int8, {4})));

    const std::vector<float> good{-1.f, 0.5f, 2.f};
    observer.observe(good.data(), good.size());
    QCOMPARE(observer.count(), std::uint64_t(3));
    QVERIFY_THROWS_EXCEPTION(Error, observer.observe(bad.data(), bad.size()));
    QCOMPARE(observer.count(), std::uint64_t(3));
    QCOMPARE(observer.max(), 2.f);
    const auto [lo, hi] = observer.range(calibration, spec);
    QVERIFY(lo < 0 && hi > 0 && lo >= -2 && hi <= 2);

    if (CalibrationMethod(method) == CalibrationMethod::Percentile) {
        QVERIFY_THROWS_EXCEPTION(Error, observer.range(calibrationSpec(CalibrationMethod::Percentile, 0), spec));
        QVERIFY_THROWS_EXCEPTION(Error, observer.range(calibrationSpec(CalibrationMethod::Percentile, 100.5), spec));
    }
    if (CalibrationMethod(method) == CalibrationMethod::MovingAverage) {
        QVERIFY_THROWS_EXCEPTION(Error, observer.range(calibrationSpec(CalibrationMethod::MovingAverage, 99.99, 0), spec));
        QVERIFY_THROWS_EXCEPTION(Error, observer.range(calibrationSpec(CalibrationMethod::MovingAverage, 99.99, 1.5), spec));
    }
    if (CalibrationMethod(method) == CalibrationMethod::Mse || CalibrationMethod(method) == CalibrationMethod::Entropy)
        QVERIFY_THROWS_EXCEPTION(Error, observer.range(calibration, quantSpec(Scheme::Symmetric, 1)));
}

void TestCalibration::minMaxIsExactAndOrderFree()
{
    std::mt19937 rng(11);
    std::vector<std::vector<float>> batches;
    for (int b = 0; b < 12; ++b) {
        std::normal_distribution<float> normal(0.5f * float(b % 5), 1.f + 0.3f * float(b));
        std::vector<float> batch(3000);
        for (float& v : batch)
            v = normal(rng);
        batches.push_back(std::move(batch));
    }
    float exactMin = INFINITY, exactMax = -INFINITY;
    for (const auto& batch : batches) {
        const auto [mn, mx] = std::minmax_element(batch.begin(), batch.end());
        exactMin = std::min(exactMin, *mn);
        exactMax = std::max(exactMax, *mx);
    }
    std::vector<std::size_t> order(batches.size());
    std::iota(order.begin(), order.end(), 0);
    for (int permutation = 0; permutation < 3; ++permutation) {
        if (permutation == 1)
            std::reverse(order.begin(), order.end());
        if (permutation == 2)
            std::shuffle(order.begin(), order.end(), rng);
        RangeObserver observer;
        for (std::size_t b : order)
            observer.observe(Tensor::fromValues<float>({3, 1000}, batches[b]));
        QCOMPARE(observer.min(), exactMin);
        QCOMPARE(observer.max(), exactMax);
        QCOMPARE(observer.range(calibrationSpec(CalibrationMethod::MinMax), quantSpec(Scheme::Affine, 8)),
                 (std::pair{exactMin, exactMax}));
    }

    // Non-negative data: the range is extended to include 0.
    RangeObserver positive;
    const std::vector<float> values{3.f, 1.5f, 7.25f};
    positive.observe(values.data(), values.size());
    QCOMPARE(positive.range(calibrationSpec(CalibrationMethod::MinMax), quantSpec(Scheme::Affine, 8)), (std::pair{0.f, 7.25f}));
}

void TestCalibration::movingAverageMatchesPyTorch_data()
{
    QTest::addColumn<int>("index");
    QTest::newRow("constant 0.01") << 0;
    QTest::newRow("constant 0.1") << 1;
    QTest::newRow("constant 0.5") << 2;
}

void TestCalibration::movingAverageMatchesPyTorch()
{
    if (!skipReason_.isEmpty())
        QSKIP(qPrintable(skipReason_));
    QFETCH(int, index);
    const nlohmann::json& reference = manifest_["moving_average"];
    const auto batches = reference["batches"].get<std::size_t>(), batchSize = reference["batch_size"].get<std::size_t>();
    const std::vector<float> values =
        readFloats(fs::path(referenceDir_.path().toStdString()) / reference["file"].get<std::string>(), batches * batchSize);
    const nlohmann::json& expected = reference["results"].at(static_cast<std::size_t>(index));
    const double expectedMin = expected["min"], expectedMax = expected["max"];

    // One observer serves every constant: the constant is applied when the range is asked for.
    RangeObserver observer;
    observeInBatches(observer, values, batches);
    const auto [lo, hi] = observer.range(calibrationSpec(CalibrationMethod::MovingAverage, 99.99, expected["constant"]),
                                         quantSpec(Scheme::Affine, 8));
    qInfo("averaged [%.7g, %.7g], PyTorch [%.7g, %.7g], min-max [%g, %g]", lo, hi, expectedMin, expectedMax,
          observer.min(), observer.max());
    QVERIFY2(std::abs(lo - expectedMin) <= kMovingAverageRelTol * std::abs(expectedMin), qPrintable(QString::number(lo - expectedMin)));
    QVERIFY2(std::abs(hi - expectedMax) <= kMovingAverageRelTol * std::abs(expectedMax), qPrintable(QString::number(hi - expectedMax)));
    // The averages ignore the rare outlier batches that min-max keeps.
    QVERIFY(hi < observer.max());
}

void TestCalibration::percentileMatchesQuantiles_data()
{
    QTest::addColumn<QString>("distribution");
    QTest::addColumn<QString>("order");
    QTest::addColumn<double>("percentile");
    for (const char* order : {"as drawn", "ascending", "descending"}) {
        QTest::addRow("exponential 99.9, %s", order) << "exponential" << order << 99.9;
        QTest::addRow("uniform [-1, 3] 99.9, %s", order) << "uniform" << order << 99.9;
    }
    QTest::newRow("exponential 99.99, as drawn") << "exponential" << "as drawn" << 99.99;
    QTest::newRow("uniform [-1, 3] 90, as drawn") << "uniform" << "as drawn" << 90.0;
}

void TestCalibration::percentileMatchesQuantiles()
{
    QFETCH(QString, distribution);
    QFETCH(QString, order);
    QFETCH(double, percentile);
    constexpr std::size_t n = 1'000'000;
    const double p = percentile / 100;
    std::mt19937 rng(2024);
    std::vector<float> values(n);
    double analyticHigh = 0, analyticLow = 0, density = 0;  // density at the quantile, for its sampling error
    if (distribution == "exponential") {
        std::exponential_distribution<float> exponential(1.f);
        for (float& v : values)
            v = exponential(rng);
        analyticHigh = -std::log(1 - p);
        density = 1 - p;
    } else {
        std::uniform_real_distribution<float> uniform(-1.f, 3.f);
        for (float& v : values)
            v = uniform(rng);
        analyticHigh = -1 + 4 * p;
        analyticLow = -1 + 4 * (1 - p);
        density = 0.25;
    }
    // Growing ranges: sorted batches make the histogram grow (or shift) with almost every batch.
    if (order == "ascending")
        std::sort(values.begin(), values.end());
    if (order == "descending")
        std::sort(values.begin(), values.end(), std::greater<>());

    RangeObserver observer;
    observeInBatches(observer, values, 100);
    const auto [lo, hi] = observer.range(calibrationSpec(CalibrationMethod::Percentile, percentile), quantSpec(Scheme::Affine, 8));
    const double bin = observer.histogram().binWidth();
    const double sampleHigh = sampleQuantile(values, p);
    // The standard deviation of a sample quantile: sqrt(p (1 - p) / n) / density.
    const double sampling = std::sqrt(p * (1 - p) / double(n)) / density;
    qInfo("hi %.5f, sample quantile %.5f, analytic %.5f (bin %.5f, sampling sd %.5f)", hi, sampleHigh, analyticHigh, bin, sampling);
    QVERIFY2(std::abs(hi - sampleHigh) <= kQuantileBins * bin, qPrintable(QString::number((hi - sampleHigh) / bin) + " bins"));
    QVERIFY(std::abs(hi - analyticHigh) <= kQuantileBins * bin + 4 * sampling);
    if (distribution == "exponential") {
        QCOMPARE(lo, 0.f);
    } else {  // signed data: the same fraction clipped at the bottom
        const double sampleLow = sampleQuantile(values, 1 - p);
        qInfo("lo %.5f, sample quantile %.5f, analytic %.5f", lo, sampleLow, analyticLow);
        QVERIFY2(std::abs(lo - sampleLow) <= kQuantileBins * bin, qPrintable(QString::number((lo - sampleLow) / bin) + " bins"));
        QVERIFY(std::abs(lo - analyticLow) <= kQuantileBins * bin + 4 * sampling);
    }
    // The 100th percentile is the exact maximum.
    QCOMPARE(observer.range(calibrationSpec(CalibrationMethod::Percentile, 100), quantSpec(Scheme::Affine, 8)).second, observer.max());
}

void TestCalibration::mseFindsTheOptimalGaussianClipping_data()
{
    QTest::addColumn<int>("scheme");
    QTest::addColumn<int>("bits");
    QTest::addColumn<bool>("relu");
    // In sigmas. The 8-bit optimum sits near 4 sigma, where 1e6 samples leave a few dozen values,
    // so it moves with the seed (over ten seeds: +-0.03 signed, +-0.16 for ReLU, whose one tail
    // holds half as many); the 4-bit optimum moves by +-0.01.
    QTest::addColumn<double>("tolerance");
    QTest::newRow("symmetric 4-bit") << int(Scheme::Symmetric) << 4 << false << 0.05;
    QTest::newRow("symmetric 8-bit") << int(Scheme::Symmetric) << 8 << false << 0.1;
    QTest::newRow("affine 4-bit") << int(Scheme::Affine) << 4 << false << 0.05;
    QTest::newRow("affine 8-bit") << int(Scheme::Affine) << 8 << false << 0.1;
    // Were the zeros charged rounding noise, the 4-bit optimum would be 2.71, not 2.90.
    QTest::newRow("relu, affine 4-bit") << int(Scheme::Affine) << 4 << true << 0.05;
    QTest::newRow("relu, affine 8-bit") << int(Scheme::Affine) << 8 << true << 0.3;
}

void TestCalibration::mseFindsTheOptimalGaussianClipping()
{
    QFETCH(int, scheme);
    QFETCH(int, bits);
    QFETCH(bool, relu);
    QFETCH(double, tolerance);
    // The closed form our expectation comes from reproduces Banner et al. (ACIQ, "Post training
    // 4-bit quantization of convolutional networks for rapid-deployment", NeurIPS 2019): with their
    // 2^M bins over [-a, a] (rounding noise a^2 / (3 * 4^M)), the Gaussian optimum at M = 4 is 2.55 sigma.
    const double aciq4 = goldenSectionMinimum([](double a) { return gaussianClipError(a) + a * a / (3 * 256.0); }, 0.5, 8);
    QVERIFY2(std::abs(aciq4 - 2.55) < 0.02, qPrintable(QString::number(aciq4)));

    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.f, 1.f);
    std::vector<float> values(1'000'000);
    for (float& v : values)
        v = relu ? std::max(normal(rng), 0.f) : normal(rng);
    RangeObserver observer;
    observeInBatches(observer, values, 50);
    const TensorQuantSpec spec = quantSpec(Scheme(scheme), bits);
    const auto [lo, hi] = observer.range(calibrationSpec(CalibrationMethod::Mse), spec);
    const double maxAbs = std::max(-observer.min(), observer.max());
    const double clip = relu || Scheme(scheme) == Scheme::Symmetric ? std::max(-lo, hi) : (hi - lo) / 2.0;
    const double expected = gaussianOptimalClip(Scheme(scheme), bits, relu);
    const double chosenMse = fakeQuantMse(values, Scheme(scheme), bits, lo, hi);
    const double minMaxMse = fakeQuantMse(values, Scheme(scheme), bits, observer.min(), observer.max());
    qInfo("range [%.4f, %.4f], clip %.4f sigma, analytic optimum %.4f, max |x| %.3f; MSE %.4g vs min-max %.4g", lo, hi,
          clip, expected, maxAbs, chosenMse, minMaxMse);
    QVERIFY(hi > 0 && clip < maxAbs);
    QVERIFY(relu ? lo == 0 : lo < 0);
    QVERIFY2(std::abs(clip - expected) <= tolerance, qPrintable(QString::number(clip - expected)));
    QVERIFY2(chosenMse <= minMaxMse, qPrintable(QString("%1 > %2").arg(chosenMse).arg(minMaxMse)));
}

void TestCalibration::mseClipsMoreAtFewerBits()
{
    std::mt19937 rng(6);
    std::normal_distribution<float> normal(0.f, 2.f);
    std::vector<float> values(200'000);
    for (float& v : values)
        v = normal(rng);
    RangeObserver observer;
    observeInBatches(observer, values, 10);
    for (Scheme scheme : {Scheme::Symmetric, Scheme::Affine, Scheme::PowerOfTwo}) {
        double previous = 0;
        for (int bits : {3, 4, 6, 8}) {
            const auto [lo, hi] = observer.range(calibrationSpec(CalibrationMethod::Mse), quantSpec(scheme, bits));
            qInfo("scheme %d, %d bits: [%.4f, %.4f]", int(scheme), bits, lo, hi);
            QVERIFY(hi > previous);
            QVERIFY(hi < observer.max());
            previous = hi;
        }
    }
    // Non-negative data keeps 0 as its lower end.
    for (float& v : values)
        v = std::max(v, 0.f);
    RangeObserver relu;
    relu.observe(values.data(), values.size());
    const auto [lo, hi] = relu.range(calibrationSpec(CalibrationMethod::Mse), quantSpec(Scheme::Affine, 4));
    QCOMPARE(lo, 0.f);
    QVERIFY(hi > 0 && hi < relu.max());
}

void TestCalibration::entropyMatchesReferenceImplementation_data()
{
    QTest::addColumn<QString>("dataset");
    QTest::addColumn<int>("quantBins");
    QTest::addColumn<int>("scheme");
    QTest::addColumn<int>("bits");
    // A 2048-bin observer over [0, max] (ReLU data, one batch) is the reference's grid and a
    // 4096-bin observer over [-M, M] folds exactly onto it: same histogram, same threshold. Streamed,
    // the observer's grid grows and is re-binned, which perturbs the histogram.
    QTest::addColumn<int>("observerBins");
    QTest::addColumn<int>("batches");
    QTest::addColumn<bool>("sameHistogram");
    QTest::newRow("relu, symmetric 4-bit (8 levels)") << "relu_gaussian" << 8 << int(Scheme::Symmetric) << 4 << 2048 << 1 << true;
    QTest::newRow("relu, symmetric 8-bit (128 levels)") << "relu_gaussian" << 128 << int(Scheme::Symmetric) << 8 << 2048 << 1 << true;
    QTest::newRow("relu, affine 8-bit (256 levels)") << "relu_gaussian" << 256 << int(Scheme::Affine) << 8 << 2048 << 1 << true;
    QTest::newRow("laplace, symmetric 4-bit (8 levels)") << "laplace" << 8 << int(Scheme::Symmetric) << 4 << 4096 << 1 << true;
    QTest::newRow("laplace, symmetric 8-bit (128 levels)") << "laplace" << 128 << int(Scheme::Symmetric) << 8 << 4096 << 1 << true;
    // 0: the default observer, as calibration runs it. (With 2048 bins, the 4-bit row ends 8.8%
    // above the minimum divergence: too coarse once re-binned.)
    for (int bins : {0, 4096}) {
        const char* label = bins ? "4096 bins" : "default bins";
        QTest::addRow("relu streamed, affine 8-bit, %s", label) << "relu_gaussian" << 256 << int(Scheme::Affine) << 8 << bins << 40 << false;
        QTest::addRow("laplace streamed, symmetric 8-bit, %s", label) << "laplace" << 128 << int(Scheme::Symmetric) << 8 << bins << 40 << false;
        QTest::addRow("laplace streamed, symmetric 4-bit, %s", label) << "laplace" << 8 << int(Scheme::Symmetric) << 4 << bins << 40 << false;
    }
}

void TestCalibration::entropyMatchesReferenceImplementation()
{
    if (!skipReason_.isEmpty())
        QSKIP(qPrintable(skipReason_));
    QFETCH(QString, dataset);
    QFETCH(int, quantBins);
    QFETCH(int, scheme);
    QFETCH(int, bits);
    QFETCH(int, observerBins);
    QFETCH(int, batches);
    QFETCH(bool, sameHistogram);
    nlohmann::json entry, reference;
    for (const auto& e : manifest_["entropy"])
        if (e["name"] == dataset.toStdString())
            entry = e;
    QVERIFY2(!entry.is_null(), "data set missing from the manifest");
    for (const auto& c : entry["cases"])
        if (c["quant_bins"] == quantBins)
            reference = c;
    QVERIFY2(!reference.is_null(), "case missing from the manifest");
    const std::vector<float> values =
        readFloats(fs::path(referenceDir_.path().toStdString()) / entry["file"].get<std::string>(), entry["count"]);

    RangeObserver observer = observerBins > 0 ? RangeObserver(observerBins) : RangeObserver();
    observeInBatches(observer, values, static_cast<std::size_t>(batches));
    const auto [lo, hi] = observer.range(calibrationSpec(CalibrationMethod::Entropy), quantSpec(Scheme(scheme), bits));
    const double bin = entry["abs_max"].get<double>() / 2048;
    const double expected = reference["threshold"];
    // How good our threshold is by the reference's own measure: its divergence on the reference
    // histogram, relative to the minimum there.
    const auto kept = static_cast<int>(std::lround(hi / bin));
    const auto& divergences = reference["divergences"];
    const int first = reference["first_candidate"];
    QVERIFY(kept >= first && kept - first < int(divergences.size()));
    const double excess = divergences[std::size_t(kept - first)].get<double>() /
                          divergences[std::size_t(reference["bins_kept"].get<int>() - first)].get<double>() - 1;
    qInfo("threshold %.5f, reference %.5f (%d bins kept): %.0f bins apart, divergence %.2f%% above the minimum", hi, expected,
          reference["bins_kept"].get<int>(), (hi - expected) / bin, 100 * excess);
    if (sameHistogram)
        QVERIFY2(std::abs(hi - expected) <= bin * (1 + 1e-6), qPrintable(QString::number((hi - expected) / bin) + " bins"));
    else  // the divergence curve is flat and noisy: hundreds of candidates lie within 5% of its minimum
        QVERIFY2(excess <= kStreamedEntropyExcess, qPrintable(QString::number(100 * excess) + "%"));
    if (observer.min() < 0)
        QCOMPARE(lo, -hi);
    else
        QCOMPARE(lo, 0.f);
}

void TestCalibration::clippingMethodsIgnoreOutliers()
{
    std::mt19937 rng(9);
    std::exponential_distribution<float> exponential(1.f);
    std::bernoulli_distribution sign(0.5);
    std::vector<float> values(100'000);
    for (float& v : values)
        v = sign(rng) ? exponential(rng) : -exponential(rng);  // Laplace(0, 1)
    for (std::size_t i : {100, 30'000, 60'000, 90'000})
        values[i] = i % 20'000 == 0 ? 1000.f : -1000.f;
    RangeObserver observer;
    observeInBatches(observer, values, 20);
    QCOMPARE(observer.max(), 1000.f);
    const TensorQuantSpec spec = quantSpec(Scheme::Symmetric, 8);
    for (CalibrationMethod method : {CalibrationMethod::Percentile, CalibrationMethod::Entropy}) {
        const auto [lo, hi] = observer.range(calibrationSpec(method, 99.99), spec);
        qInfo("%s: [%.3f, %.3f]", calibrationMethodName(method).data(), lo, hi);
        QVERIFY2(-lo > 5.f && hi > 5.f && -lo < 100.f && hi < 100.f, "an outlier set the range");
    }
    // Squared error is what MSE minimises, and it rightly keeps these outliers: clipping four
    // values at 1000 to t < 100 costs 4 * 900^2 = 3.2e6, more than the 1e5 * (1000/127)^2 / 12
    // = 5.2e5 of rounding noise a full range costs.
    const auto [lo, hi] = observer.range(calibrationSpec(CalibrationMethod::Mse), spec);
    qInfo("mse: [%.3f, %.3f]", lo, hi);
    QVERIFY(hi > 500.f && hi <= 1000.f);
}

void TestCalibration::histogramGrowthPreservesMass_data()
{
    QTest::addColumn<QString>("pattern");
    QTest::addColumn<int>("bins");
    for (const char* pattern : {"widening both ways", "ascending", "descending", "constant zero first", "constant first"})
        for (int bins : {2048, 100})
            QTest::addRow("%s, %d bins", pattern, bins) << pattern << bins;
}

void TestCalibration::histogramGrowthPreservesMass()
{
    QFETCH(QString, pattern);
    QFETCH(int, bins);
    std::mt19937 rng(3);
    std::vector<std::vector<float>> batches;
    for (int b = 0; b < 30; ++b) {
        std::normal_distribution<float> normal(0.05f * float(b), 0.1f * float(b + 1));
        std::vector<float> batch(5000 + 37 * std::size_t(b));
        for (float& v : batch)
            v = normal(rng);
        batches.push_back(std::move(batch));
    }
    if (pattern == "ascending" || pattern == "descending") {
        std::vector<float> all;
        for (const auto& batch : batches)
            all.insert(all.end(), batch.begin(), batch.end());
        std::sort(all.begin(), all.end());
        if (pattern == "descending")
            std::reverse(all.begin(), all.end());
        batches.clear();
        for (std::size_t first = 0; first < all.size(); first += 4000)
            batches.emplace_back(all.begin() + std::ptrdiff_t(first), all.begin() + std::ptrdiff_t(std::min(all.size(), first + 4000)));
    }
    if (pattern == "constant zero first")
        batches.insert(batches.begin(), std::vector<float>(1000, 0.f));
    if (pattern == "constant first")
        batches.insert(batches.begin(), std::vector<float>(1000, 0.75f));

    RangeObserver observer(bins);
    std::uint64_t count = 0;
    for (const auto& batch : batches) {
        observer.observe(batch.data(), batch.size());
        count += batch.size();
        const Histogram& h = observer.histogram();
        QCOMPARE(h.total(), double(count));
        QVERIFY(h.low <= observer.min() && h.high >= observer.max());
    }
    const Histogram& h = observer.histogram();
    QCOMPARE(h.counts.size(), std::size_t(bins));
    QCOMPARE(observer.count(), count);
    // At most about twice as wide as the data (plus a bin for alignment).
    QVERIFY2(h.high - h.low <= 2 * (observer.max() - observer.min()) + 2 * h.binWidth(),
             qPrintable(QString("[%1, %2] for data in [%3, %4]").arg(h.low).arg(h.high).arg(observer.min()).arg(observer.max())));
    // The old bins nest in the grown ones, so the streamed counts are those of binning all values
    // at once on the final grid, up to values within rounding of a bin edge.
    std::vector<double> direct(std::size_t(bins), 0.0);
    const double scale = bins / (double(h.high) - h.low);
    for (const auto& batch : batches)
        for (float v : batch)
            direct[std::size_t(std::clamp<long>(long((double(v) - h.low) * scale), 0, bins - 1))] += 1;
    double moved = 0;
    for (int k = 0; k < bins; ++k)
        moved += std::abs(direct[std::size_t(k)] - h.counts[std::size_t(k)]) / 2;
    qInfo("range [%g, %g] for data in [%g, %g]; %g of %llu values in another bin than direct binning", h.low, h.high,
          observer.min(), observer.max(), moved, static_cast<unsigned long long>(count));
    QVERIFY2(moved <= 1e-4 * double(count), qPrintable(QString::number(moved)));
}

// One batch's histogram spans exactly its [min, max], so each value's bin is floor((v - min) /
// width), the largest value in the last bin: counted here one value at a time, against the
// observer's counts on both of its paths (few values: one count at a time; many: the bins in
// vector blocks into four integer sub-histograms). ReLU-like data puts a third in one bin.
void TestCalibration::histogramCountsEachValueInItsBin_data()
{
    QTest::addColumn<int>("count");
    QTest::addColumn<int>("bins");
    QTest::newRow("few values") << 1000 << 2048;
    QTest::newRow("many values, ragged last block") << 300'007 << 2048;
    QTest::newRow("many values, default bins") << 1'000'000 << 8192;
}

void TestCalibration::histogramCountsEachValueInItsBin()
{
    QFETCH(int, count);
    QFETCH(int, bins);
    std::mt19937 rng(11);
    std::normal_distribution<float> normal(0.2f, 1.f);
    std::vector<float> values(static_cast<std::size_t>(count));
    for (float& v : values)
        v = std::max(0.f, normal(rng));
    RangeObserver observer(bins);
    observer.observe(values.data(), values.size());
    const Histogram& h = observer.histogram();
    QCOMPARE(h.low, *std::min_element(values.begin(), values.end()));
    QCOMPARE(h.high, *std::max_element(values.begin(), values.end()));
    std::vector<double> expected(static_cast<std::size_t>(bins), 0.0);
    const double width = (double(h.high) - double(h.low)) / bins;
    for (float v : values) {
        const auto k = static_cast<std::int64_t>(std::floor((double(v) - double(h.low)) / width));
        expected[static_cast<std::size_t>(std::clamp<std::int64_t>(k, 0, bins - 1))] += 1;
    }
    std::size_t differing = 0;
    for (int j = 0; j < bins; ++j)
        differing += h.counts[std::size_t(j)] != expected[std::size_t(j)];
    // (v - low) * (bins / width) and (v - low) / width may round apart at a bin edge: a value or
    // two may sit in the neighbouring bin, never more.
    QVERIFY2(differing <= 4, qPrintable(QString::number(differing) + " bins differ"));
    QCOMPARE(h.total(), double(count));
    QCOMPARE(h.counts[0], expected[0]);  // the zeros (a third of the values): one bin, counted exactly
}

QTEST_APPLESS_MAIN(TestCalibration)
#include "tst_calibration.moc"
