// The scheme table and the quantizers (core/quant/scheme.h), against outside references first:
// PyTorch's fake_quantize kernels, observers and half/bfloat16 conversions, and the OCP FP8 tables
// built from the specification's bit definitions, all produced at test time by
// scripts/make_quantizer_references.py. Then properties every scheme in schemeTable() must have
// (ggml's test-quantize-fns pattern: loop over the table, check against named tolerances).

#include "common/error.h"
#include "quant/scheme.h"
#include "test_support.h"

#include <nlohmann/json.hpp>

#include <QProcess>
#include <QtTest>

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <fstream>
#include <random>
#include <set>

using namespace qe;
namespace fs = std::filesystem;
using nlohmann::json;

Q_DECLARE_METATYPE(qe::TensorQuantSpec)
Q_DECLARE_METATYPE(qe::Scheme)
Q_DECLARE_METATYPE(qe::SchemeFamily)
Q_DECLARE_METATYPE(qe::Granularity)

namespace {

// The version the test expects from the script's manifest; older data is regenerated.
constexpr int kReferenceVersion = 1;
const fs::path kReferenceDir = test::referenceDir("quantizer_refs");

// Uniform quantization error inside the clipping range is at most scale/2, plus float rounding of
// x * (1/scale), of the output product and of the scale itself: a few float epsilons of the
// magnitudes involved.
constexpr double kUniformSlack = 4 * FLT_EPSILON;
// K-means centroids are fitted in double and stored as float, so "never worse than uniform" holds
// up to this relative MSE difference.
constexpr double kKMeansMseSlack = 1e-6;
// Relative RMS error (RMSE / RMS of the data) allowed at each scheme's default bit width on the
// Laplace weights of everySchemeHasTheProperties() (measured per tensor, the worst granularity:
// affine 0.012, symmetric 0.014, power-of-two 0.021, log2 0.21, k-means 0.16, fp16 1.9e-4, bf16
// 1.6e-3, E4M3 0.025, E5M2 0.055). About 1.5x headroom; a wrong scale, rounding or block assignment
// exceeds these by far. Theory agrees: uniform steps of range/255 give range/255/sqrt(12), fp16
// and bf16 keep 11 and 8 significant bits, FP8 E4M3 and E5M2 4 and 3.
struct RmseTolerance {
    Scheme scheme;
    double maxRelativeRmse;
};
constexpr RmseTolerance kRmseTolerances[] = {
    {Scheme::Affine, 0.02},   {Scheme::Symmetric, 0.02}, {Scheme::PowerOfTwo, 0.035},
    {Scheme::Log2, 0.3},      {Scheme::KMeans, 0.24},    {Scheme::Fp16, 3e-4},
    {Scheme::Bf16, 2.5e-3},   {Scheme::Fp8E4M3, 0.04},   {Scheme::Fp8E5M2, 0.08},
};
static_assert(std::size(kRmseTolerances) == kSchemeCount, "one RMSE tolerance per scheme");

bool sameFloat(float a, float b)
{
    return (std::isnan(a) && std::isnan(b)) || std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b);
}

// Empty when `actual` equals `expected` bit for bit (any NaN equals any NaN), else the count of
// differences and the first few.
std::string bitwiseDifferences(std::span<const float> input, std::span<const float> actual, std::span<const float> expected)
{
    if (actual.size() != expected.size())
        return "size " + std::to_string(actual.size()) + " != expected " + std::to_string(expected.size());
    std::size_t count = 0;
    std::string details;
    for (std::size_t i = 0; i < actual.size(); ++i) {
        if (sameFloat(actual[i], expected[i]))
            continue;
        if (++count <= 3) {
            char line[160];
            std::snprintf(line, sizeof line, "\n  [%zu] input %.9g (0x%08x): got %.9g, expected %.9g", i, double(input[i]),
                          std::bit_cast<std::uint32_t>(input[i]), double(actual[i]), double(expected[i]));
            details += line;
        }
    }
    return count == 0 ? std::string() : std::to_string(count) + " of " + std::to_string(actual.size()) + " values differ:" + details;
}

Tensor mapValues(const Tensor& t, float (*fn)(float))
{
    std::vector<float> v = t.toFloatVector();
    std::transform(v.begin(), v.end(), v.begin(), fn);
    return Tensor::fromValues<float>(t.shape(), v);
}

// Laplace-distributed weights (heavy tails, as trained weights) with a different spread in every
// output channel, and some exact zeros; or Gaussian ones. Fixed seeds.
Tensor randomWeights(const Shape& shape, bool laplace, unsigned seed)
{
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> spread(0.05f, 1.f), uniform(-0.5f, 0.5f);
    std::normal_distribution<float> normal;
    Tensor t(DataType::Float32, shape);
    float* v = t.mutableData<float>();
    const std::int64_t channels = shape.empty() ? 1 : shape[0], inner = t.size() / channels;
    for (std::int64_t c = 0; c < channels; ++c) {
        const float b = spread(rng);
        for (std::int64_t i = 0; i < inner; ++i) {
            const float u = uniform(rng);
            v[c * inner + i] = laplace ? -b * std::copysign(std::log1p(-2 * std::abs(u)), u) : b * normal(rng);
            if ((c * inner + i) % 13 == 0)
                v[c * inner + i] = 0.f;
        }
    }
    return t;
}

// The contiguous element ranges of the parameter blocks of a weight tensor, worked out here
// rather than taken from the implementation: per channel along axis 0, groups along the rest.
std::vector<std::pair<std::int64_t, std::int64_t>> weightBlockRanges(Granularity g, int groupSize, const Shape& shape)
{
    std::int64_t n = 1;
    for (auto d : shape)
        n *= d;
    if (g == Granularity::PerTensor)
        return {{0, n}};
    const std::int64_t inner = n / shape[0];
    const std::int64_t step = g == Granularity::PerGroup ? groupSize : inner;
    std::vector<std::pair<std::int64_t, std::int64_t>> ranges;
    for (std::int64_t c = 0; c < shape[0]; ++c)
        for (std::int64_t start = 0; start < inner; start += step)
            ranges.emplace_back(c * inner + start, c * inner + std::min(start + step, inner));
    return ranges;
}

double meanSquaredError(const Tensor& a, const Tensor& b)
{
    double sum = 0;
    for (std::int64_t i = 0; i < a.size(); ++i) {
        const double d = double(a.data<float>()[i]) - b.data<float>()[i];
        sum += d * d;
    }
    return sum / double(a.size());
}

// MSE of rounding each block to the nearest of 2^bits evenly spaced levels spanning its [min, max]
// (plain uniform min-max quantization, computed by brute force).
double uniformMinMaxMse(const Tensor& w, Granularity g, int bits)
{
    const int levels = 1 << bits;
    const float* v = w.data<float>();
    double sum = 0;
    for (auto [begin, end] : weightBlockRanges(g, 0, w.shape())) {
        const auto [lo, hi] = std::minmax_element(v + begin, v + end);
        for (std::int64_t i = begin; i < end; ++i) {
            double best = INFINITY;
            for (int k = 0; k < levels; ++k) {
                const double level = *lo + (double(*hi) - *lo) * k / (levels - 1);
                best = std::min(best, (v[i] - level) * (v[i] - level));
            }
            sum += best;
        }
    }
    return sum / double(w.size());
}

TensorQuantSpec makeSpec(Scheme scheme, int bits, Granularity g = Granularity::PerTensor, int groupSize = 0,
                         std::optional<bool> isSigned = std::nullopt)
{
    TensorQuantSpec spec;
    spec.scheme = scheme;
    spec.bits = bits;
    spec.granularity = g;
    spec.groupSize = groupSize;
    spec.isSigned = isSigned;
    return spec;
}

bool isPowerOfTwo(float x)
{
    int exponent = 0;
    return x > 0 && std::frexp(x, &exponent) == 0.5f;
}

}  // namespace

class TestQuantizer : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();

    void tableRows_data();
    void tableRows();
    void runsInIntegersRule();
    void kmeansCodebookNoLargerThanTheDistinctWeights();
    void namesRoundTrip();

    void uniformMatchesPyTorch_data();
    void uniformMatchesPyTorch();
    void paramsMatchPyTorchObservers_data();
    void paramsMatchPyTorchObservers();
    void halfFormatsMatchPyTorch_data();
    void halfFormatsMatchPyTorch();
    void fp8MatchesOcpTables_data();
    void fp8MatchesOcpTables();
    void floatFormatFacts();

    void everySchemeHasTheProperties_data();
    void everySchemeHasTheProperties();
    void kmeansIsNeverWorseThanUniform_data();
    void kmeansIsNeverWorseThanUniform();
    void mseWeightRangeMinimisesTheError_data();
    void mseWeightRangeMinimisesTheError();
    void affineKeepsZeroExact_data();
    void affineKeepsZeroExact();
    void powerOfTwoScales_data();
    void powerOfTwoScales();
    void log2Levels();
    void defaultSignedness();
    void perGroupBlocks();
    void perTokenRanges();
    void badSpecsAreErrors_data();
    void badSpecsAreErrors();

private:
    void addReferenceRows(std::initializer_list<std::string_view> kinds);
    json referenceCase(const QString& name) const;
    // The case's description, its input and PyTorch's (or the OCP table's) expected output.
    std::tuple<json, Tensor, Tensor> referenceTensors(const QString& name) const;

    QString skipReason_;
    json manifest_;
};

void TestQuantizer::initTestCase()
{
    const fs::path manifestPath = kReferenceDir / "manifest.json";
    auto upToDate = [&] {
        if (!fs::exists(manifestPath))
            return false;
        manifest_ = json::parse(std::ifstream(manifestPath));
        return manifest_.value("version", 0) == kReferenceVersion;
    };
    if (upToDate())
        return;
    skipReason_ = test::runReferenceScript("make_quantizer_references.py", QString::fromStdString(kReferenceDir.string()),
                                           "python3-torch and python3-numpy to make the PyTorch/OCP reference data");
    if (!skipReason_.isEmpty())
        return;
    QVERIFY2(upToDate(), "the script did not write a manifest of the expected version");
}

void TestQuantizer::addReferenceRows(std::initializer_list<std::string_view> kinds)
{
    QTest::addColumn<QString>("name");
    if (!skipReason_.isEmpty())
        return;
    for (const json& c : manifest_["cases"])
        if (std::find(kinds.begin(), kinds.end(), c["kind"].get<std::string>()) != kinds.end()) {
            const std::string name = c["name"].get<std::string>();
            QTest::newRow(name.c_str()) << QString::fromStdString(name);
        }
}

std::tuple<json, Tensor, Tensor> TestQuantizer::referenceTensors(const QString& name) const
{
    json c = referenceCase(name);
    const Shape shape = c["shape"].get<Shape>();
    Tensor input = test::readRawFloats(kReferenceDir / c["input"].get<std::string>(), shape);
    Tensor expected = test::readRawFloats(kReferenceDir / c["expected"].get<std::string>(), shape);
    return {std::move(c), std::move(input), std::move(expected)};
}

json TestQuantizer::referenceCase(const QString& name) const
{
    for (const json& c : manifest_["cases"])
        if (c["name"] == name.toStdString())
            return c;
    return {};
}

// ---------------------------------------------------------------------------------------------
// The table

void TestQuantizer::tableRows_data()
{
    // What configuration files and the UI rely on (names as written in configuration files).
    QTest::addColumn<Scheme>("scheme");
    QTest::addColumn<QString>("name");
    QTest::addColumn<SchemeFamily>("family");
    QTest::addColumn<int>("minBits");
    QTest::addColumn<int>("maxBits");
    QTest::addColumn<bool>("forActivations");
    QTest::newRow("affine") << Scheme::Affine << "affine" << SchemeFamily::Uniform << 2 << 16 << true;
    QTest::newRow("symmetric") << Scheme::Symmetric << "symmetric" << SchemeFamily::Uniform << 2 << 16 << true;
    QTest::newRow("power_of_two") << Scheme::PowerOfTwo << "power_of_two" << SchemeFamily::Uniform << 2 << 16 << true;
    QTest::newRow("log2") << Scheme::Log2 << "log2" << SchemeFamily::Logarithmic << 3 << 8 << true;
    QTest::newRow("kmeans") << Scheme::KMeans << "kmeans" << SchemeFamily::Codebook << 1 << 8 << false;
    QTest::newRow("fp16") << Scheme::Fp16 << "fp16" << SchemeFamily::FloatingPoint << 16 << 16 << true;
    QTest::newRow("bf16") << Scheme::Bf16 << "bf16" << SchemeFamily::FloatingPoint << 16 << 16 << true;
    QTest::newRow("fp8_e4m3") << Scheme::Fp8E4M3 << "fp8_e4m3" << SchemeFamily::FloatingPoint << 8 << 8 << true;
    QTest::newRow("fp8_e5m2") << Scheme::Fp8E5M2 << "fp8_e5m2" << SchemeFamily::FloatingPoint << 8 << 8 << true;
}

void TestQuantizer::tableRows()
{
    QFETCH(Scheme, scheme);
    QFETCH(QString, name);
    QFETCH(SchemeFamily, family);
    QFETCH(int, minBits);
    QFETCH(int, maxBits);
    QFETCH(bool, forActivations);
    const SchemeTraits& row = schemeTable()[static_cast<std::size_t>(scheme)];
    QCOMPARE(row.scheme, scheme);
    QCOMPARE(&schemeTraits(scheme), &row);
    QCOMPARE(QString::fromUtf8(row.name.data(), qsizetype(row.name.size())), name);
    QCOMPARE(row.family, family);
    QCOMPARE(row.minBits, minBits);
    QCOMPARE(row.maxBits, maxBits);
    QVERIFY(row.defaultBits >= minBits && row.defaultBits <= maxBits);
    QVERIFY(row.forWeights);
    QCOMPARE(row.forActivations, forActivations);
    QVERIFY(!row.displayName.empty());
    QVERIFY2(row.tradeOff.size() > 40 && row.tradeOff.back() == '.', "the trade-off is one full sentence");
    // Integer codes exist for the uniform schemes only; floating-point formats carry their
    // constants, and saturate to exactly the format's largest finite value.
    QCOMPARE(row.integerForm, family == SchemeFamily::Uniform);
    QCOMPARE(row.format != nullptr, family == SchemeFamily::FloatingPoint);
    if (row.format && row.format->saturate) {
        const float huge = 1e30f;
        const float saturated = scheme == Scheme::Fp8E4M3 ? roundToFp8E4M3(huge) : roundToFp8E5M2(huge);
        QCOMPARE(double(saturated), row.format->maxFinite);
    }
    if (scheme == Scheme::Fp16)
        QCOMPARE(row.format->maxFinite, 65504.0);  // IEEE 754 binary16
}

void TestQuantizer::kmeansCodebookNoLargerThanTheDistinctWeights()
{
    // Issue 19: a 3x3 depthwise channel (9 weights) listed 256 "fitted" centroids at 8 bits. Its
    // codebook is its distinct weights, exactly; a channel with more distinct weights than levels
    // gets the full codebook.
    std::vector<float> values;
    for (int i = 0; i < 9; ++i)
        values.push_back(0.1f * float(i) - 0.3f);  // channel 0: 9 distinct weights
    for (int i = 0; i < 9; ++i)
        values.push_back(i < 5 ? 0.5f : -0.25f);    // channel 1: 2 distinct weights
    const Tensor weights = Tensor::fromValues<float>({2, 1, 3, 3}, values);
    const QuantParams p = paramsForWeights(makeSpec(Scheme::KMeans, 8, Granularity::PerChannel), weights);
    QCOMPARE(p.codebook().fitted, (std::vector<int>{9, 2}));
    std::vector<float> channel0(values.begin(), values.begin() + 9);
    std::sort(channel0.begin(), channel0.end());
    QCOMPARE(quantizationLevels(p, 0), channel0);
    QCOMPARE(quantizationLevels(p, 1), (std::vector<float>{-0.25f, 0.5f}));
    const Tensor q = fakeQuantize(weights, p);
    for (std::int64_t i = 0; i < q.size(); ++i)
        QCOMPARE(q.data<float>()[i], values[std::size_t(i)]);  // exact: every weight is a centroid
    // 2 bits, 9 distinct weights: Lloyd's algorithm fits all 4 centroids.
    const QuantParams two = paramsForWeights(makeSpec(Scheme::KMeans, 2, Granularity::PerChannel), weights);
    QCOMPARE(two.codebook().fitted, (std::vector<int>{4, 2}));
    QCOMPARE(quantizationLevels(two, 0).size(), std::size_t{4});
}

void TestQuantizer::runsInIntegersRule()
{
    // The one rule the int8 engine, the simulation and the QDQ export share: uniform, <= 8 bits.
    QVERIFY(runsInIntegers(Scheme::Affine, 8));
    QVERIFY(runsInIntegers(Scheme::Symmetric, 4));
    QVERIFY(runsInIntegers(Scheme::PowerOfTwo, 2));
    QVERIFY(!runsInIntegers(Scheme::Affine, 9));
    QVERIFY(!runsInIntegers(Scheme::Log2, 4));
    QVERIFY(!runsInIntegers(Scheme::KMeans, 4));
    QVERIFY(!runsInIntegers(Scheme::Fp8E4M3, 8));
    QVERIFY(!runsInIntegers(Scheme::Fp16, 16));
    // Parameters are of their scheme's kind, and asking for another kind is an error naming it.
    const QuantParams log2 = paramsForRange(makeSpec(Scheme::Log2, 4), -1.f, 1.f);
    QVERIFY(std::holds_alternative<Log2Params>(log2.values));
    QVERIFY_THROWS_EXCEPTION(Error, log2.uniform());
    try {
        log2.uniform();
    } catch (const Error& e) {
        QVERIFY(QString(e.what()).contains("log2"));
    }
    const QuantParams fp8 = paramsForRange(makeSpec(Scheme::Fp8E4M3, 8), -1.f, 1.f);
    QVERIFY(std::holds_alternative<FloatFormatParams>(fp8.values));
    QCOMPARE(fp8.blockCount(), std::size_t{1});
}

void TestQuantizer::namesRoundTrip()
{
    for (const SchemeTraits& row : schemeTable())
        QCOMPARE(schemeFromName(row.name), std::optional<Scheme>(row.scheme));
    QCOMPARE(schemeFromName("int8"), std::nullopt);
    QCOMPARE(schemeFromName("Affine"), std::nullopt);  // names are case-sensitive, as in the files
    QCOMPARE(granularityName(Granularity::PerTensor), std::string_view("per_tensor"));
    QCOMPARE(granularityName(Granularity::PerChannel), std::string_view("per_channel"));
    QCOMPARE(granularityName(Granularity::PerGroup), std::string_view("per_group"));
    for (Granularity g : {Granularity::PerTensor, Granularity::PerChannel, Granularity::PerGroup})
        QCOMPARE(granularityFromName(granularityName(g)), std::optional<Granularity>(g));
    QCOMPARE(granularityFromName("per_row"), std::nullopt);
}

// ---------------------------------------------------------------------------------------------
// Outside references

void TestQuantizer::uniformMatchesPyTorch_data() { addReferenceRows({"fake_quantize_per_tensor", "fake_quantize_per_channel"}); }

void TestQuantizer::uniformMatchesPyTorch()
{
    if (!skipReason_.isEmpty())
        QSKIP(qPrintable(skipReason_));
    QFETCH(QString, name);
    const auto [c, input, expected] = referenceTensors(name);
    const Shape& shape = input.shape();

    QuantParams params;
    params.scheme = Scheme::Affine;
    params.bits = c["bits"];
    params.qmin = c["qmin"];
    params.qmax = c["qmax"];
    params.isSigned = params.qmin < 0;
    if (c["kind"] == "fake_quantize_per_tensor") {
        params.granularity = Granularity::PerTensor;
        params.uniform().scale = {c["scale"].get<float>()};
        params.uniform().zeroPoint = {c["zero_point"].get<std::int32_t>()};
    } else {
        params.granularity = Granularity::PerChannel;
        params.axis = c["axis"];
        params.uniform().scale = c["scales"].get<std::vector<float>>();
        params.uniform().zeroPoint = c["zero_points"].get<std::vector<std::int32_t>>();
    }
    const Tensor actual = fakeQuantize(input, params);
    QCOMPARE(actual.shape(), shape);
    const std::string diff = bitwiseDifferences(input.values<float>(), actual.values<float>(), expected.values<float>());
    QVERIFY2(diff.empty(), diff.c_str());
}

void TestQuantizer::paramsMatchPyTorchObservers_data() { addReferenceRows({"observer_per_tensor", "observer_per_channel"}); }

void TestQuantizer::paramsMatchPyTorchObservers()
{
    if (!skipReason_.isEmpty())
        QSKIP(qPrintable(skipReason_));
    QFETCH(QString, name);
    const json c = referenceCase(name);
    const Scheme scheme = c["scheme"] == "affine" ? Scheme::Affine : Scheme::Symmetric;
    const bool perChannel = c["kind"] == "observer_per_channel";
    const TensorQuantSpec spec = makeSpec(scheme, c["bits"], perChannel ? Granularity::PerChannel : Granularity::PerTensor, 0,
                                          c["signed"].get<bool>());
    QuantParams params;
    std::vector<float> scales;
    std::vector<std::int32_t> zeroPoints;
    if (perChannel) {
        const Tensor weights = test::readRawFloats(kReferenceDir / c["input"].get<std::string>(), c["shape"].get<Shape>());
        params = paramsForWeights(spec, weights);
        scales = c["scales"].get<std::vector<float>>();
        zeroPoints = c["zero_points"].get<std::vector<std::int32_t>>();
        // Dynamic per-token ranges of the same values laid out as rows (one row per channel) are
        // PyTorch's per-channel observer on axis 0 too.
        TensorQuantSpec perToken = spec;
        perToken.granularity = Granularity::PerToken;
        perToken.dynamic = true;
        const std::int64_t channels = weights.dim(0);
        const QuantParams tokens = paramsForTokens(perToken, Tensor::fromValues<float>({1, channels, weights.size() / channels}, weights.toFloatVector()));
        QCOMPARE(tokens.blockCount(), scales.size());
        for (std::size_t b = 0; b < scales.size(); ++b) {
            QVERIFY2(sameFloat(tokens.uniform().scale[b], scales[b]), qPrintable(QString("token %1").arg(b)));
            QCOMPARE(tokens.uniform().zeroPoint[b], zeroPoints[b]);
        }
    } else {
        params = paramsForRange(spec, c["min"].get<float>(), c["max"].get<float>());
        scales = {c["scale"].get<float>()};
        zeroPoints = {c["zero_point"].get<std::int32_t>()};
    }
    QCOMPARE(params.qmin, c["qmin"].get<std::int32_t>());
    QCOMPARE(params.qmax, c["qmax"].get<std::int32_t>());
    QCOMPARE(params.blockCount(), scales.size());
    for (std::size_t b = 0; b < scales.size(); ++b) {
        QVERIFY2(sameFloat(params.uniform().scale[b], scales[b]),
                 qPrintable(QString("block %1: scale %2, PyTorch %3").arg(b).arg(params.uniform().scale[b], 0, 'g', 9).arg(scales[b], 0, 'g', 9)));
        QCOMPARE(params.uniform().zeroPoint[b], zeroPoints[b]);
    }
}

void TestQuantizer::halfFormatsMatchPyTorch_data() { addReferenceRows({"fp16", "bf16"}); }

void TestQuantizer::halfFormatsMatchPyTorch()
{
    if (!skipReason_.isEmpty())
        QSKIP(qPrintable(skipReason_));
    QFETCH(QString, name);
    const auto [c, input, expected] = referenceTensors(name);
    const Shape& shape = input.shape();
    const bool fp16 = c["kind"] == "fp16";

    const Tensor scalar = mapValues(input, fp16 ? roundToFp16 : roundToBf16);
    std::string diff = bitwiseDifferences(input.values<float>(), scalar.values<float>(), expected.values<float>());
    QVERIFY2(diff.empty(), diff.c_str());
    // The tensor path: no pre-scale, whatever range the parameters were made for.
    const QuantParams params = paramsForRange(makeSpec(fp16 ? Scheme::Fp16 : Scheme::Bf16, 16), -1.f, 1.f);
    const Tensor tensor = fakeQuantize(input, params);
    diff = bitwiseDifferences(input.values<float>(), tensor.values<float>(), expected.values<float>());
    QVERIFY2(diff.empty(), diff.c_str());
}

void TestQuantizer::fp8MatchesOcpTables_data() { addReferenceRows({"fp8_e4m3", "fp8_e5m2"}); }

void TestQuantizer::fp8MatchesOcpTables()
{
    if (!skipReason_.isEmpty())
        QSKIP(qPrintable(skipReason_));
    QFETCH(QString, name);
    const auto [c, input, expected] = referenceTensors(name);
    const Shape& shape = input.shape();
    const bool e4m3 = c["kind"] == "fp8_e4m3";

    const Tensor scalar = mapValues(input, e4m3 ? roundToFp8E4M3 : roundToFp8E5M2);
    std::string diff = bitwiseDifferences(input.values<float>(), scalar.values<float>(), expected.values<float>());
    QVERIFY2(diff.empty(), diff.c_str());

    // With amax equal to the format's max the pre-scale is exactly 1, so the tensor path must give
    // the table's values too, and its levels must be the table's finite values.
    const float largest = c["largest"];
    const QuantParams params = paramsForRange(makeSpec(e4m3 ? Scheme::Fp8E4M3 : Scheme::Fp8E5M2, 8), -largest, largest);
    QCOMPARE(params.floatFormat().preScale.at(0), 1.f);
    const Tensor tensor = fakeQuantize(input, params);
    diff = bitwiseDifferences(input.values<float>(), tensor.values<float>(), expected.values<float>());
    QVERIFY2(diff.empty(), diff.c_str());
    const std::vector<float> levels = quantizationLevels(params);
    QCOMPARE(levels.size(), c["finite_values"].get<std::size_t>());
    QCOMPARE(levels.back(), largest);
    QCOMPARE(levels.front(), -largest);
    QCOMPARE(*std::upper_bound(levels.begin(), levels.end(), 0.f), c["smallest_subnormal"].get<float>());
}

void TestQuantizer::floatFormatFacts()
{
    // Published facts, independent of the reference script. OCP OFP8 specification, table 1:
    // E4M3 max 448 = 1.75 * 2^8, min normal 2^-6, min subnormal 2^-9, no infinities;
    // E5M2 max 57344 = 1.75 * 2^15, min normal 2^-14, min subnormal 2^-16.
    QCOMPARE(roundToFp8E4M3(448.f), 448.f);
    QCOMPARE(roundToFp8E4M3(1e9f), 448.f);
    QCOMPARE(roundToFp8E4M3(-INFINITY), -448.f);
    QCOMPARE(roundToFp8E4M3(464.f), 448.f);  // the midpoint to 480, which would be the NaN code
    QCOMPARE(roundToFp8E4M3(std::ldexp(1.f, -6)), std::ldexp(1.f, -6));
    QCOMPARE(roundToFp8E4M3(std::ldexp(1.f, -9)), std::ldexp(1.f, -9));
    QCOMPARE(roundToFp8E4M3(std::ldexp(1.f, -10)), 0.f);              // tie between 0 and 2^-9: even code 0
    QCOMPARE(roundToFp8E4M3(std::ldexp(1.5f, -10)), std::ldexp(1.f, -9));
    QVERIFY(std::signbit(roundToFp8E4M3(-1e-6f)));                    // -0 exists in E4M3
    QVERIFY(std::isnan(roundToFp8E4M3(NAN)));
    QCOMPARE(roundToFp8E4M3(1.0625f), 1.f);                           // 1 + 2^-4 ties to the even 1.0
    QCOMPARE(roundToFp8E4M3(1.1875f), 1.25f);                         // 1 + 3 * 2^-4 ties to the even 1.25
    QCOMPARE(roundToFp8E5M2(57344.f), 57344.f);
    QCOMPARE(roundToFp8E5M2(61440.f), 57344.f);
    QCOMPARE(roundToFp8E5M2(INFINITY), 57344.f);
    QCOMPARE(roundToFp8E5M2(std::ldexp(1.f, -14)), std::ldexp(1.f, -14));
    QCOMPARE(roundToFp8E5M2(std::ldexp(1.f, -16)), std::ldexp(1.f, -16));
    QCOMPARE(roundToFp8E5M2(std::ldexp(1.f, -17)), 0.f);
    QVERIFY(std::isnan(roundToFp8E5M2(NAN)));
    // IEEE binary16: max 65504, min subnormal 2^-24, overflow from 65520 on.
    QCOMPARE(roundToFp16(65504.f), 65504.f);
    QCOMPARE(roundToFp16(65519.f), 65504.f);
    QCOMPARE(roundToFp16(65520.f), INFINITY);
    QCOMPARE(roundToFp16(std::ldexp(1.f, -24)), std::ldexp(1.f, -24));
    QCOMPARE(roundToFp16(std::ldexp(1.f, -25)), 0.f);
    QCOMPARE(roundToFp16(0.1f), 0.0999755859375f);
    // bfloat16: the upper half of a binary32, 8 significant bits.
    QCOMPARE(roundToBf16(1.f + std::ldexp(1.f, -8)), 1.f);
    QCOMPARE(roundToBf16(1.f + 3 * std::ldexp(1.f, -8)), 1.f + std::ldexp(1.f, -6));
    QCOMPARE(roundToBf16(FLT_MAX), INFINITY);
    QVERIFY(std::isnan(roundToBf16(NAN)));
    // Level counts: 2 * 127 - 1 finite E4M3 values, 2 * 124 - 1 finite E5M2 values (+0 and -0 are one level).
    QCOMPARE(quantizationLevels(paramsForRange(makeSpec(Scheme::Fp8E4M3, 8), 0.f, 448.f)).size(), std::size_t(253));
    QCOMPARE(quantizationLevels(paramsForRange(makeSpec(Scheme::Fp8E5M2, 8), 0.f, 57344.f)).size(), std::size_t(247));
    // fp16 levels of [0, 1]: 2^14 + 1 values (exponent fields 0..14 and 1.0), too many to list.
    QVERIFY(quantizationLevels(paramsForRange(makeSpec(Scheme::Fp16, 16), 0.f, 1.f)).empty());
    // fp16 levels of [1, 2]: 1024 + 1 values spaced 2^-10.
    const std::vector<float> levels = quantizationLevels(paramsForRange(makeSpec(Scheme::Fp16, 16), 1.f, 2.f));
    QCOMPARE(levels.size(), std::size_t(1025));
    QCOMPARE(levels[1] - levels[0], std::ldexp(1.f, -10));
}

// ---------------------------------------------------------------------------------------------
// Properties of every scheme

void TestQuantizer::everySchemeHasTheProperties_data()
{
    QTest::addColumn<Scheme>("scheme");
    QTest::addColumn<int>("bits");
    QTest::addColumn<Granularity>("granularity");
    QTest::addColumn<bool>("defaultBits");
    for (const SchemeTraits& row : schemeTable())
        for (int bits : std::set<int>{row.minBits, row.defaultBits, row.maxBits})
            for (Granularity g : {Granularity::PerTensor, Granularity::PerChannel, Granularity::PerGroup}) {
                const std::string name = std::string(row.name) + " " + std::to_string(bits) + " bits " + std::string(granularityName(g));
                QTest::newRow(name.c_str()) << row.scheme << bits << g << (bits == row.defaultBits);
            }
}

void TestQuantizer::everySchemeHasTheProperties()
{
    QFETCH(Scheme, scheme);
    QFETCH(int, bits);
    QFETCH(Granularity, granularity);
    QFETCH(bool, defaultBits);
    constexpr int kGroupSize = 16;
    const Shape shape{12, 3, 5, 5};  // 75 weights per channel: groups of 16 leave a last group of 11
    const Tensor w = randomWeights(shape, true, 7);
    const QuantParams params = paramsForWeights(makeSpec(scheme, bits, granularity, kGroupSize), w);
    const auto blocks = weightBlockRanges(granularity, kGroupSize, shape);
    QCOMPARE(params.blockCount(), blocks.size());

    const Tensor q = fakeQuantize(w, params);
    QCOMPARE(q.shape(), shape);
    const float* x = w.data<float>();
    const float* y = q.data<float>();

    // Idempotence: what a device stores is already on the grid.
    const Tensor qq = fakeQuantize(q, params);
    const std::string diff = bitwiseDifferences(q.values<float>(), qq.values<float>(), q.values<float>());
    QVERIFY2(diff.empty(), ("not idempotent: " + diff).c_str());

    const SchemeFamily family = schemeTraits(scheme).family;
    for (std::size_t b = 0; b < blocks.size(); ++b) {
        const auto [begin, end] = blocks[b];
        // At most 2^bits distinct values per block, each of them one of the block's levels.
        const std::set<float> distinct(y + begin, y + end);
        QVERIFY2(distinct.size() <= (std::size_t{1} << bits), qPrintable(QString("block %1: %2 distinct values").arg(b).arg(distinct.size())));
        const std::vector<float> levels = quantizationLevels(params, b);
        QVERIFY(std::is_sorted(levels.begin(), levels.end()));
        QVERIFY(levels.size() <= (std::size_t{1} << bits));
        if (!levels.empty())  // fp16/bf16 list no levels when there are too many to draw
            for (float v : distinct)
                QVERIFY2(std::binary_search(levels.begin(), levels.end(), v), qPrintable(QString("block %1: %2 is not a level").arg(b).arg(v)));
        for (std::int64_t i = begin; i < end; ++i) {
            // Real 0.0 stays exactly 0 (zero padding, ReLU); a k-means codebook need not contain 0.
            if (x[i] == 0.f && scheme != Scheme::KMeans)
                QVERIFY2(y[i] == 0.f, qPrintable(QString("element %1: 0 became %2").arg(i).arg(y[i])));
            // Uniform: the error inside the clipping range is at most half a step.
            if (family == SchemeFamily::Uniform && x[i] >= params.rangeMin[b] && x[i] <= params.rangeMax[b]) {
                const double bound = params.uniform().scale[b] / 2.0 +
                    kUniformSlack * (std::abs(x[i]) + std::abs(params.rangeMin[b]) + std::abs(params.rangeMax[b]));
                QVERIFY2(std::abs(double(x[i]) - y[i]) <= bound,
                         qPrintable(QString("element %1: %2 -> %3, scale %4").arg(i).arg(x[i]).arg(y[i]).arg(params.uniform().scale[b])));
            }
        }
    }

    if (defaultBits) {
        double signal = 0;
        for (std::int64_t i = 0; i < w.size(); ++i)
            signal += double(x[i]) * x[i];
        const double relativeRmse = std::sqrt(meanSquaredError(w, q) / (signal / double(w.size())));
        const double tolerance = kRmseTolerances[static_cast<std::size_t>(scheme)].maxRelativeRmse;
        QCOMPARE(kRmseTolerances[static_cast<std::size_t>(scheme)].scheme, scheme);
        QVERIFY2(relativeRmse <= tolerance, qPrintable(QString("relative RMSE %1 > %2").arg(relativeRmse).arg(tolerance)));
    }
}

void TestQuantizer::kmeansIsNeverWorseThanUniform_data()
{
    QTest::addColumn<bool>("laplace");
    QTest::addColumn<Granularity>("granularity");
    QTest::addColumn<int>("bits");
    for (bool laplace : {true, false})
        for (Granularity g : {Granularity::PerTensor, Granularity::PerChannel})
            for (int bits : {1, 2, 3, 4, 6}) {
                const std::string name = std::string(laplace ? "laplace " : "gaussian ") + std::string(granularityName(g)) + " " +
                    std::to_string(bits) + " bits";
                QTest::newRow(name.c_str()) << laplace << g << bits;
            }
}

void TestQuantizer::kmeansIsNeverWorseThanUniform()
{
    QFETCH(bool, laplace);
    QFETCH(Granularity, granularity);
    QFETCH(int, bits);
    const Tensor w = randomWeights({32, 16, 3, 3}, laplace, laplace ? 11 : 12);
    const QuantParams params = paramsForWeights(makeSpec(Scheme::KMeans, bits, granularity), w);
    const std::size_t levels = std::size_t{1} << bits;
    QCOMPARE(params.codebook().centroids.size(), params.blockCount() * levels);
    for (std::size_t b = 0; b < params.blockCount(); ++b)
        QVERIFY(std::is_sorted(params.codebook().centroids.begin() + std::ptrdiff_t(b * levels), params.codebook().centroids.begin() + std::ptrdiff_t((b + 1) * levels)));

    const double kmeans = meanSquaredError(w, fakeQuantize(w, params));
    const double minMax = uniformMinMaxMse(w, granularity, bits);
    QVERIFY2(kmeans <= minMax * (1 + kKMeansMseSlack), qPrintable(QString("k-means MSE %1 > uniform min-max %2").arg(kmeans).arg(minMax)));
    if (bits >= schemeTraits(Scheme::Affine).minBits) {
        const Tensor affine = fakeQuantize(w, paramsForWeights(makeSpec(Scheme::Affine, bits, granularity), w));
        const double affineMse = meanSquaredError(w, affine);
        QVERIFY2(kmeans <= affineMse * (1 + kKMeansMseSlack), qPrintable(QString("k-means MSE %1 > affine %2").arg(kmeans).arg(affineMse)));
        qInfo("k-means MSE / affine MSE: %.3f", kmeans / affineMse);
    }
}

void TestQuantizer::mseWeightRangeMinimisesTheError_data()
{
    QTest::addColumn<Scheme>("scheme");
    QTest::addColumn<int>("bits");
    for (Scheme scheme : {Scheme::Symmetric, Scheme::Affine, Scheme::PowerOfTwo, Scheme::Log2, Scheme::Fp8E4M3})
        for (int bits : {3, 4, 8}) {
            const SchemeTraits& t = schemeTraits(scheme);
            if (bits >= t.minBits && bits <= t.maxBits)
                QTest::addRow("%s %d bits", std::string(t.name).c_str(), bits) << scheme << bits;
        }
}

// "range": "mse" for weights: each channel's error is at most min-max's, and clearly below it in
// all at 3 and 4 bits on Laplace-distributed weights (whose extremes lie far out in the tails). For
// symmetric and affine grids the error is also checked against a search of this test's own over
// 2000 clippings, quantizing by hand.
void TestQuantizer::mseWeightRangeMinimisesTheError()
{
    QFETCH(Scheme, scheme);
    QFETCH(int, bits);
    const Tensor w = randomWeights({8, 16, 3, 3}, true, 21);
    const std::int64_t inner = 16 * 3 * 3;
    TensorQuantSpec spec = makeSpec(scheme, bits, Granularity::PerChannel);
    const QuantParams minMax = paramsForWeights(spec, w);
    spec.range = WeightRange::Mse;
    const QuantParams mse = paramsForWeights(spec, w);
    const Tensor qMinMax = fakeQuantize(w, minMax), qMse = fakeQuantize(w, mse);
    const float* v = w.data<float>();
    auto channelError = [&](const Tensor& q, std::int64_t c) {
        double sum = 0;
        for (std::int64_t i = c * inner; i < (c + 1) * inner; ++i)
            sum += (double(q.data<float>()[i]) - v[i]) * (double(q.data<float>()[i]) - v[i]);
        return sum;
    };
    // The best error over clippings [f lo, f hi] of a symmetric or affine grid, by hand.
    auto bestByHand = [&](std::int64_t c) {
        const auto [lo, hi] = std::minmax_element(v + c * inner, v + (c + 1) * inner);
        const double qmax = double((1 << (bits - 1)) - 1), levels = double((1 << bits) - 1);
        double best = INFINITY;
        for (int k = 1; k <= 2000; ++k) {
            const double f = k / 2000.0, a = f * std::min(double(*lo), 0.0), b = f * std::max(double(*hi), 0.0);
            const double step = scheme == Scheme::Symmetric ? std::max(-a, b) / qmax : (b - a) / levels;
            // Codes -qmax..qmax (symmetric) or -2^(b-1)..2^(b-1)-1 with a zero-point (affine).
            const double low = scheme == Scheme::Symmetric ? -qmax : -std::pow(2.0, bits - 1);
            const double high = scheme == Scheme::Symmetric ? qmax : low + levels;
            const double zeroPoint = scheme == Scheme::Symmetric ? 0 : std::clamp(low - std::nearbyint(a / step), low, high);
            double sum = 0;
            for (std::int64_t i = c * inner; i < (c + 1) * inner; ++i) {
                const double code = std::clamp(std::nearbyint(v[i] / step) + zeroPoint, low, high);
                sum += ((code - zeroPoint) * step - v[i]) * ((code - zeroPoint) * step - v[i]);
            }
            best = std::min(best, sum);
        }
        return best;
    };
    for (std::int64_t c = 0; c < 8; ++c) {
        const double ours = channelError(qMse, c), wide = channelError(qMinMax, c);
        QVERIFY2(ours <= wide * (1 + 1e-6), qPrintable(QString("channel %1: MSE range %2 > min-max %3").arg(c).arg(ours).arg(wide)));
        QVERIFY(mse.rangeMax[std::size_t(c)] <= minMax.rangeMax[std::size_t(c)]);
        QVERIFY(mse.rangeMin[std::size_t(c)] >= minMax.rangeMin[std::size_t(c)]);
        if (scheme == Scheme::Symmetric || scheme == Scheme::Affine) {
            // Our 100 candidates against 2000: within 2% of the finer search.
            const double reference = bestByHand(c);
            QVERIFY2(ours <= reference * 1.02 + 1e-12, qPrintable(QString("channel %1: %2 against %3 by hand").arg(c).arg(ours).arg(reference)));
        }
    }
    qInfo("MSE ranges / min-max: %.3f of the squared error", meanSquaredError(w, qMse) / meanSquaredError(w, qMinMax));
    if (bits <= 4 && schemeTraits(scheme).family == SchemeFamily::Uniform)
        QVERIFY2(meanSquaredError(w, qMse) < 0.9 * meanSquaredError(w, qMinMax),
                 qPrintable(QString("%1 against %2").arg(meanSquaredError(w, qMse)).arg(meanSquaredError(w, qMinMax))));
    // k-means has no range to clip: "mse" leaves its codebook as it is.
    TensorQuantSpec kmeans = makeSpec(Scheme::KMeans, 4, Granularity::PerChannel);
    const QuantParams plain = paramsForWeights(kmeans, w);
    kmeans.range = WeightRange::Mse;
    QVERIFY(paramsForWeights(kmeans, w) == plain);
}

void TestQuantizer::affineKeepsZeroExact_data()
{
    QTest::addColumn<float>("min");
    QTest::addColumn<float>("max");
    QTest::addColumn<int>("bits");
    QTest::addColumn<bool>("isSigned");
    const std::pair<float, float> ranges[] = {{-0.37f, 1.91f}, {0.2f, 0.9f}, {-3.f, -1.f}, {-1e-3f, 7e4f}, {0.f, 0.f}, {-2.5f, 2.5f}};
    for (auto [lo, hi] : ranges)
        for (int bits : {2, 3, 8, 16})
            for (bool isSigned : {false, true})
                QTest::newRow(qPrintable(QString("[%1, %2] %3 bits %4").arg(lo).arg(hi).arg(bits).arg(isSigned ? "signed" : "unsigned")))
                    << lo << hi << bits << isSigned;
}

void TestQuantizer::affineKeepsZeroExact()
{
    QFETCH(float, min);
    QFETCH(float, max);
    QFETCH(int, bits);
    QFETCH(bool, isSigned);
    const QuantParams p = paramsForRange(makeSpec(Scheme::Affine, bits, Granularity::PerTensor, 0, isSigned), min, max);
    QCOMPARE(p.qmin, isSigned ? -(1 << (bits - 1)) : 0);
    QCOMPARE(p.qmax, isSigned ? (1 << (bits - 1)) - 1 : (1 << bits) - 1);
    QVERIFY(p.uniform().scale[0] > 0 && std::isfinite(p.uniform().scale[0]));
    QVERIFY(p.uniform().zeroPoint[0] >= p.qmin && p.uniform().zeroPoint[0] <= p.qmax);
    QVERIFY(p.rangeMin[0] <= 0 && p.rangeMax[0] >= 0 && p.rangeMin[0] <= min && p.rangeMax[0] >= max);
    const Tensor zeros = Tensor::fromValues<float>({3}, std::vector<float>{0.f, -0.f, min});
    const Tensor q = fakeQuantize(zeros, p);
    QCOMPARE(q.data<float>()[0], 0.f);
    QCOMPARE(q.data<float>()[1], 0.f);
    // Both ends of the range are within half a step of a code, the nudged zero-point notwithstanding.
    const Tensor ends = fakeQuantize(Tensor::fromValues<float>({2}, std::vector<float>{p.rangeMin[0], p.rangeMax[0]}), p);
    const double slack = p.uniform().scale[0] / 2.0 + kUniformSlack * (std::abs(p.rangeMin[0]) + std::abs(p.rangeMax[0]));
    QVERIFY(std::abs(double(ends.data<float>()[0]) - p.rangeMin[0]) <= slack);
    QVERIFY(std::abs(double(ends.data<float>()[1]) - p.rangeMax[0]) <= slack);
    const std::vector<float> levels = quantizationLevels(p);
    QCOMPARE(levels.size(), std::size_t(p.qmax - p.qmin + 1));
    QVERIFY(std::binary_search(levels.begin(), levels.end(), 0.f));
}

void TestQuantizer::powerOfTwoScales_data()
{
    QTest::addColumn<float>("min");
    QTest::addColumn<float>("max");
    QTest::addColumn<int>("bits");
    QTest::newRow("[-1, 1] 8 bits") << -1.f << 1.f << 8;     // 1/127 rounds up to 2^-6
    QTest::newRow("[-0.3, 2.7] 8 bits") << -0.3f << 2.7f << 8;
    QTest::newRow("[-127, 0] 8 bits") << -127.f << 0.f << 8;  // scale exactly 1 stays 1
    QTest::newRow("[0, 6] 4 bits") << 0.f << 6.f << 4;
    QTest::newRow("[-1e-5, 1e-5] 3 bits") << -1e-5f << 1e-5f << 3;
    QTest::newRow("[-3e4, 5e4] 16 bits") << -3e4f << 5e4f << 16;
}

void TestQuantizer::powerOfTwoScales()
{
    QFETCH(float, min);
    QFETCH(float, max);
    QFETCH(int, bits);
    const QuantParams symmetric = paramsForRange(makeSpec(Scheme::Symmetric, bits), min, max);
    const QuantParams pow2 = paramsForRange(makeSpec(Scheme::PowerOfTwo, bits), min, max);
    QCOMPARE(pow2.qmin, symmetric.qmin);
    QCOMPARE(pow2.qmax, symmetric.qmax);
    QVERIFY2(isPowerOfTwo(pow2.uniform().scale[0]), qPrintable(QString::number(pow2.uniform().scale[0], 'g', 9)));
    QVERIFY(pow2.uniform().scale[0] >= symmetric.uniform().scale[0]);  // rounded up: no extra clipping
    QVERIFY(pow2.uniform().scale[0] < 2 * symmetric.uniform().scale[0]);
    QCOMPARE(pow2.uniform().zeroPoint[0], 0);

    const Tensor w = randomWeights({16, 32}, false, 5);
    const QuantParams perChannel = paramsForWeights(makeSpec(Scheme::PowerOfTwo, bits, Granularity::PerChannel), w);
    const QuantParams perChannelSymmetric = paramsForWeights(makeSpec(Scheme::Symmetric, bits, Granularity::PerChannel), w);
    for (std::size_t b = 0; b < perChannel.blockCount(); ++b) {
        QVERIFY(isPowerOfTwo(perChannel.uniform().scale[b]));
        QVERIFY(perChannel.uniform().scale[b] >= perChannelSymmetric.uniform().scale[b] && perChannel.uniform().scale[b] < 2 * perChannelSymmetric.uniform().scale[b]);
    }
}

void TestQuantizer::log2Levels()
{
    // Signed: 0 and +-amax * 2^-k, k = 0 .. 2^(b-1) - 2, so 2^b - 1 levels.
    const QuantParams p = paramsForRange(makeSpec(Scheme::Log2, 4), -3.f, 2.f);
    QVERIFY(p.isSigned);
    QCOMPARE(p.log2().largest[0], 3.f);
    std::vector<float> expected;
    for (int k = 6; k >= 0; --k)
        expected.push_back(-3.f * std::ldexp(1.f, -k));
    expected.push_back(0.f);
    for (int k = 0; k <= 6; ++k)
        expected.push_back(3.f * std::ldexp(1.f, -k));
    std::sort(expected.begin(), expected.end());
    QCOMPARE(quantizationLevels(p), expected);
    // Rounding in the log domain: 2^-0.5 * 3 is the boundary between 1.5 and 3.
    const float boundary = 3.f * std::sqrt(0.5f);
    const Tensor x = Tensor::fromValues<float>({8}, std::vector<float>{std::nextafter(boundary, 0.f), std::nextafter(boundary, 10.f), 100.f, -100.f,
                                                                        3.f / 128 * 0.99f, -3.f / 128 * 0.99f, 3.f / 128, NAN});
    const std::vector<float> q = fakeQuantize(x, p).toFloatVector();
    QCOMPARE(q[0], 1.5f);
    QCOMPARE(q[1], 3.f);
    QCOMPARE(q[2], 3.f);       // clipped to the largest level
    QCOMPARE(q[3], -3.f);
    QCOMPARE(q[4], 0.f);       // below half the smallest level (3/64): 0 ...
    QCOMPARE(q[5], 0.f);
    QCOMPARE(q[6], 3.f / 64);  // ... from half of it on: the level
    QVERIFY(std::isnan(q[7]));
    // Unsigned (non-negative range by default): 2^b - 1 positive levels and 0.
    const QuantParams u = paramsForRange(makeSpec(Scheme::Log2, 4), 0.f, 6.f);
    QVERIFY(!u.isSigned);
    QCOMPARE(quantizationLevels(u).size(), std::size_t(16));
    QCOMPARE(quantizationLevels(u).at(1), 6.f * std::ldexp(1.f, -14));
}

void TestQuantizer::defaultSignedness()
{
    // Activations: affine is unsigned (u8 with a zero-point) whatever the range ...
    QuantParams p = paramsForRange(makeSpec(Scheme::Affine, 8), -1.f, 3.f);
    QVERIFY(!p.isSigned);
    QCOMPARE(p.qmin, 0);
    QCOMPARE(p.qmax, 255);
    QCOMPARE(p.uniform().zeroPoint[0], 64);  // round(0 - (-1) / (4 / 255)) = round(63.75)
    // ... the zero-point-free schemes are unsigned only for non-negative ranges.
    p = paramsForRange(makeSpec(Scheme::Symmetric, 8), 0.f, 6.f);
    QVERIFY(!p.isSigned);
    QCOMPARE(p.qmax, 255);
    QCOMPARE(p.uniform().scale[0], 6.f / 255);
    p = paramsForRange(makeSpec(Scheme::Symmetric, 8), -1.f, 3.f);
    QVERIFY(p.isSigned);
    QCOMPARE(p.qmin, -127);
    QCOMPARE(p.qmax, 127);
    QCOMPARE(p.uniform().scale[0], 3.f / 127);
    // An explicit choice wins.
    p = paramsForRange(makeSpec(Scheme::Affine, 8, Granularity::PerTensor, 0, true), 0.f, 1.f);
    QVERIFY(p.isSigned);
    QCOMPARE(p.qmin, -128);
    QCOMPARE(p.uniform().zeroPoint[0], -128);
    // Weights are signed by default.
    const Tensor w = Tensor::fromValues<float>({2, 2}, std::vector<float>{0.f, 1.f, 2.f, 3.f});
    p = paramsForWeights(makeSpec(Scheme::Symmetric, 4), w);
    QVERIFY(p.isSigned);
    QCOMPARE(p.qmin, -7);
    QCOMPARE(p.qmax, 7);
}

void TestQuantizer::perGroupBlocks()
{
    const Tensor w = randomWeights({8, 64}, true, 3);
    const QuantParams p = paramsForWeights(makeSpec(Scheme::Symmetric, 4, Granularity::PerGroup, 16), w);
    QCOMPARE(p.blockCount(), std::size_t(8 * 4));
    QCOMPARE(p.groupSize, 16);
    QCOMPARE(p.axis, 0);

    // A last group shorter than the others: 70 = 4 * 16 + 6.
    const Tensor v = randomWeights({8, 70}, true, 4);
    const QuantParams a = paramsForWeights(makeSpec(Scheme::Affine, 8, Granularity::PerGroup, 16), v);
    QCOMPARE(a.blockCount(), std::size_t(8 * 5));
    const float* x = v.data<float>();
    const auto [lo, hi] = std::minmax_element(x + 70 + 64, x + 140);  // channel 1, last group
    QCOMPARE(a.rangeMin[9], std::min(*lo, 0.f));
    QCOMPARE(a.rangeMax[9], std::max(*hi, 0.f));
    // Each group is quantized with its own parameters: a group scaled by 1000 leaves the others alone.
    std::vector<float> values = v.toFloatVector();
    for (int i = 16; i < 32; ++i)
        values[std::size_t(i)] *= 1000.f;
    const Tensor scaled = Tensor::fromValues<float>({8, 70}, values);
    const Tensor q1 = fakeQuantize(v, a);
    const Tensor q2 = fakeQuantize(scaled, paramsForWeights(makeSpec(Scheme::Affine, 8, Granularity::PerGroup, 16), scaled));
    for (int i = 0; i < 560; ++i)
        if (i < 16 || i >= 32)
            QCOMPARE(q2.data<float>()[i], q1.data<float>()[i]);
}

// Each token (row of the last axis) is quantized as the per-tensor dynamic range of that row alone
// would quantize it, so an outlier token leaves every other token as it was.
void TestQuantizer::perTokenRanges()
{
    const Tensor x = randomWeights({2, 3, 16}, true, 5);
    TensorQuantSpec spec = makeSpec(Scheme::Affine, 8);
    spec.dynamic = true;
    spec.granularity = Granularity::PerToken;
    const QuantParams p = paramsForTokens(spec, x);
    QCOMPARE(p.blockCount(), std::size_t(6));
    QCOMPARE(p.axis, 2);
    const Tensor q = fakeQuantize(x, p);
    TensorQuantSpec perTensor = spec;
    perTensor.granularity = Granularity::PerTensor;
    for (int r = 0; r < 6; ++r) {
        const std::vector<float> all = x.toFloatVector();
        const std::vector<float> row(all.begin() + r * 16, all.begin() + (r + 1) * 16);
        const auto [lo, hi] = std::minmax_element(row.begin(), row.end());
        const Tensor alone = fakeQuantize(Tensor::fromValues<float>({16}, row), paramsForRange(perTensor, *lo, *hi));
        for (int i = 0; i < 16; ++i)
            QCOMPARE(q.data<float>()[r * 16 + i], alone.data<float>()[i]);
    }
    std::vector<float> values = x.toFloatVector();
    for (int i = 16; i < 32; ++i)
        values[std::size_t(i)] *= 1000.f;  // token 1 becomes an outlier
    const Tensor scaled = Tensor::fromValues<float>({2, 3, 16}, values);
    const Tensor q2 = fakeQuantize(scaled, paramsForTokens(spec, scaled));
    for (int i = 0; i < 96; ++i)
        if (i < 16 || i >= 32)
            QCOMPARE(q2.data<float>()[i], q.data<float>()[i]);
    // Per tensor, the outlier token's range is every token's: the others lose most of their levels.
    const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
    const Tensor q3 = fakeQuantize(scaled, paramsForRange(perTensor, *lo, *hi));
    double tokenError = 0, tensorError = 0;
    for (int i = 32; i < 96; ++i) {
        tokenError += std::abs(q2.data<float>()[i] - values[std::size_t(i)]);
        tensorError += std::abs(q3.data<float>()[i] - values[std::size_t(i)]);
    }
    QVERIFY2(tensorError > 100 * tokenError, qPrintable(QString("per tensor %1, per token %2").arg(tensorError).arg(tokenError)));
    // Parameters of a tensor of another row count are an error, not a misread.
    QVERIFY_THROWS_EXCEPTION(Error, fakeQuantize(Tensor::fromValues<float>({4, 16}, std::vector<float>(64, 0.f)), p));
}

void TestQuantizer::badSpecsAreErrors_data()
{
    QTest::addColumn<QString>("call");  // "range", "weights", "empty weights", "nan weights", "mismatched blocks"
    QTest::addColumn<TensorQuantSpec>("spec");
    QTest::addColumn<float>("min");
    QTest::addColumn<float>("max");
    QTest::addColumn<QString>("mentions");
    QTest::newRow("log2 2 bits") << "weights" << makeSpec(Scheme::Log2, 2) << 0.f << 0.f << "3 to 8 bits";
    QTest::newRow("affine 17 bits") << "range" << makeSpec(Scheme::Affine, 17) << -1.f << 1.f << "2 to 16 bits";
    QTest::newRow("symmetric 1 bit") << "weights" << makeSpec(Scheme::Symmetric, 1) << 0.f << 0.f << "2 to 16 bits";
    QTest::newRow("kmeans 9 bits") << "weights" << makeSpec(Scheme::KMeans, 9) << 0.f << 0.f << "1 to 8 bits";
    QTest::newRow("fp16 8 bits") << "range" << makeSpec(Scheme::Fp16, 8) << -1.f << 1.f << "exactly 16 bits";
    QTest::newRow("fp8 4 bits") << "weights" << makeSpec(Scheme::Fp8E4M3, 4) << 0.f << 0.f << "exactly 8 bits";
    QTest::newRow("kmeans activations") << "range" << makeSpec(Scheme::KMeans, 4) << -1.f << 1.f << "weights only";
    QTest::newRow("per-channel activations") << "range" << makeSpec(Scheme::Affine, 8, Granularity::PerChannel) << -1.f << 1.f << "per_tensor";
    QTest::newRow("per_group without group size") << "weights" << makeSpec(Scheme::Symmetric, 4, Granularity::PerGroup, 0) << 0.f << 0.f
                                                  << "group_size";
    QTest::newRow("min > max") << "range" << makeSpec(Scheme::Affine, 8) << 1.f << -1.f << "min <= max";
    QTest::newRow("NaN range") << "range" << makeSpec(Scheme::Symmetric, 8) << NAN << 1.f << "finite";
    QTest::newRow("empty weights") << "empty weights" << makeSpec(Scheme::Symmetric, 8) << 0.f << 0.f << "non-empty";
    QTest::newRow("NaN weights") << "nan weights" << makeSpec(Scheme::KMeans, 4) << 0.f << 0.f << "finite";
    QTest::newRow("params for another shape") << "mismatched blocks" << makeSpec(Scheme::Affine, 8, Granularity::PerChannel) << 0.f << 0.f
                                              << "scale";
}

void TestQuantizer::badSpecsAreErrors()
{
    QFETCH(QString, call);
    QFETCH(TensorQuantSpec, spec);
    QFETCH(float, min);
    QFETCH(float, max);
    QFETCH(QString, mentions);
    const Tensor w = randomWeights({4, 8}, false, 1);
    std::string message;
    try {
        if (call == "range") {
            paramsForRange(spec, min, max);
        } else if (call == "weights") {
            paramsForWeights(spec, w);
        } else if (call == "empty weights") {
            paramsForWeights(spec, Tensor());
        } else if (call == "nan weights") {
            std::vector<float> v = w.toFloatVector();
            v[5] = NAN;
            paramsForWeights(spec, Tensor::fromValues<float>({4, 8}, v));
        } else if (call == "mismatched blocks") {
            fakeQuantize(randomWeights({5, 8}, false, 1), paramsForWeights(spec, w));
        }
        QFAIL("no qe::Error");
    } catch (const Error& e) {
        message = e.what();
    }
    QVERIFY2(message.find(mentions.toStdString()) != std::string::npos, message.c_str());
    QVERIFY2(message.find("expected") != std::string::npos, ("the message says what was expected: " + message).c_str());
}

QTEST_APPLESS_MAIN(TestQuantizer)
#include "tst_quantizer.moc"
