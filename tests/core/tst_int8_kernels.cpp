// The integer engine's building blocks against plain references: the fixed-point requantization
// against exact 128-bit arithmetic, and the fast (oneDNN) convolution and matrix product against
// the reference kernels on random shapes with odd channel counts, padding, strides, dilations and
// groups; our fused AVX-512 kernels (matrix product and depthwise convolution with the
// requantization in the epilogue) against the reference kernels followed by the scalar
// requantize(), code for code. The reference kernels themselves are checked by the ONNX conformance tests
// (ConvInteger, MatMulInteger, QLinearConv, QLinearMatMul).

#include "engine/int8/kernels/fast_kernels.h"
#include "engine/int8/kernels/fused_kernels.h"
#include "engine/int8/kernels/quantized_tensor.h"
#include "engine/int8/kernels/reference_kernels.h"
#include "engine/int8/kernels/requantize.h"

#include <QtTest>

#include <cmath>
#include <random>

using namespace qe;
using namespace qe::int8;

class TestInt8Kernels : public QObject {
    Q_OBJECT
private slots:
    void multiplierRepresentsTheRealValue();
    void requantizationRoundsHalfToEvenExactly();
    void vectorRequantizationEqualsScalar();
    void quantizeMatchesTheFormulaAndLayoutsRoundTrip();
    void fastConvolutionEqualsReference();
    void fastMatrixProductEqualsReference();
    void fusedMatrixProductEqualsReference();
    void fusedDepthwiseEqualsReference();
    void fusedConvolutionEqualsReference();
};

void TestInt8Kernels::multiplierRepresentsTheRealValue()
{
    std::mt19937 rng(7);
    std::uniform_real_distribution<double> exponent(-30, 15);
    for (int i = 0; i < 100000; ++i) {
        const double m = std::pow(2.0, exponent(rng));
        const FixedPointMultiplier fp = prepareMultiplier(m);
        QVERIFY(fp.multiplier >= (1 << 30));
        const double represented = std::ldexp(static_cast<double>(fp.multiplier), -fp.rightShift);
        // A Q0.31 mantissa is exact to 2^-31 relative.
        QVERIFY2(std::abs(represented - m) <= m * std::ldexp(1.0, -30), qPrintable(QString::number(m, 'g', 17)));
    }
    QCOMPARE(prepareMultiplier(0.0).multiplier, 0);
    QCOMPARE(applyMultiplier(123456, prepareMultiplier(1e-12)), 0);  // below 2^-31: nothing survives
    QCOMPARE(applyMultiplier(1000, prepareMultiplier(1.0)), 1000);
}

void TestInt8Kernels::requantizationRoundsHalfToEvenExactly()
{
    std::mt19937 rng(11);
    std::uniform_real_distribution<double> exponent(-20, 6);  // |x * M| < 2^31
    std::uniform_int_distribution<std::int32_t> accumulator(-(1 << 24), 1 << 24);
    for (int i = 0; i < 200000; ++i) {
        const FixedPointMultiplier fp = prepareMultiplier(std::pow(2.0, exponent(rng)));
        const std::int32_t x = i < 1000 ? i - 500 : accumulator(rng);
        // Exact, in 128-bit integers: the nearest integer to x * multiplier / 2^s, ties to even.
        const __int128 product = static_cast<__int128>(x) * fp.multiplier;
        const __int128 divisor = static_cast<__int128>(1) << fp.rightShift;
        __int128 floor = product / divisor;
        if (product < 0 && product % divisor != 0)
            --floor;  // C++ division truncates
        const __int128 twiceRemainder = 2 * (product - floor * divisor);
        const __int128 expected = twiceRemainder > divisor || (twiceRemainder == divisor && (floor & 1)) ? floor + 1 : floor;
        QCOMPARE(static_cast<std::int64_t>(applyMultiplier(x, fp)), static_cast<std::int64_t>(expected));
    }
    // Ties go to even: 1.5 -> 2, 2.5 -> 2, -1.5 -> -2, -2.5 -> -2 (as std::nearbyint and ONNX).
    QCOMPARE(applyMultiplier(3, prepareMultiplier(0.5)), 2);
    QCOMPARE(applyMultiplier(5, prepareMultiplier(0.5)), 2);
    QCOMPARE(applyMultiplier(-3, prepareMultiplier(0.5)), -2);
    QCOMPARE(applyMultiplier(-5, prepareMultiplier(0.5)), -2);
    for (std::int32_t x = -1000; x <= 1000; ++x)
        QCOMPARE(applyMultiplier(x, prepareMultiplier(0.25)), static_cast<std::int32_t>(std::nearbyint(x * 0.25)));
    QCOMPARE(requantize(1000, prepareMultiplier(0.5), 10, 0, 255), 255);  // clamped
    // A product beyond the int32 range saturates to the code range, never wraps (a Mul of two
    // full-range inputs into a fine output scale).
    QCOMPARE(requantize(65025, prepareMultiplier(32768.0), 0, 0, 255), 255);
    QCOMPARE(requantize(-65025, prepareMultiplier(32768.0), 128, 0, 255), 0);
    // A bias never takes an accumulator of K products of 8-bit codes past int32.
    QVERIFY(int32BiasLimit(4608) + 4608LL * 255 * 255 <= 2147483647LL);
    QCOMPARE(requantize(-1000, prepareMultiplier(0.5), 10, 0, 255), 0);
}

void TestInt8Kernels::vectorRequantizationEqualsScalar()
{
    std::mt19937 rng(5);
    std::uniform_real_distribution<double> exponent(-24, 2);
    std::uniform_int_distribution<std::int32_t> accumulator(-(1 << 22), 1 << 22), small(-40, 40), code(0, 255);
    for (const std::int64_t channels : {1, 7, 8, 13, 64, 67}) {
        ChannelRequantization r;
        for (std::int64_t c = 0; c < channels; ++c)
            r.add(small(rng) * 1000, c == 3 ? FixedPointMultiplier{} : prepareMultiplier(c == 5 ? 0.5 : std::pow(2.0, exponent(rng))));
        const std::int64_t pixels = 300;
        std::vector<std::int32_t> acc(static_cast<std::size_t>(pixels * channels));
        for (std::size_t i = 0; i < acc.size(); ++i)
            acc[i] = i % 3 == 0 ? small(rng) : accumulator(rng);  // small values hit exact ties with M = 0.5
        const std::int32_t zeroPoint = code(rng), lo = std::min(zeroPoint, 3), hi = 250;
        std::vector<std::uint8_t> expected(acc.size()), portable(acc.size()), wide(acc.size()), dispatched(acc.size());
        for (std::int64_t p = 0; p < pixels; ++p)
            for (std::int64_t c = 0; c < channels; ++c) {
                const std::size_t i = static_cast<std::size_t>(p * channels + c);
                const FixedPointMultiplier m{r.multiplier[static_cast<std::size_t>(c)], static_cast<int>(r.rightShift[static_cast<std::size_t>(c)])};
                expected[i] = static_cast<std::uint8_t>(requantize(acc[i] + r.bias[static_cast<std::size_t>(c)], m, zeroPoint, lo, hi));
            }
        for (std::int64_t p = 0; p < pixels; ++p)
            requantizeRowPortable(acc.data() + p * channels, portable.data() + p * channels, channels, r, zeroPoint, lo, hi);
        QCOMPARE(portable, expected);
        requantizeChannelsLast(acc.data(), dispatched.data(), pixels, channels, r, zeroPoint, lo, hi);
        QCOMPARE(dispatched, expected);
        if (avx512Available()) {
            requantizeRowsAvx512(acc.data(), wide.data(), pixels, channels, r, zeroPoint, lo, hi);
            QCOMPARE(wide, expected);
        }
    }
    if (!avx512Available())
        qInfo("no AVX-512 on this CPU: only the portable requantization was compared");
}

void TestInt8Kernels::quantizeMatchesTheFormulaAndLayoutsRoundTrip()
{
    std::mt19937 rng(3);
    std::normal_distribution<float> value(0.f, 2.f);
    Tensor x(DataType::Float32, {2, 3, 4, 5});
    for (float& v : std::span(x.mutableData<float>(), static_cast<std::size_t>(x.size())))
        v = value(rng);
    // Exact ties (half to even), values far outside the range, infinities and NaN (zero-point).
    float* special = x.mutableData<float>();
    special[0] = 0.025f;
    special[1] = 0.075f;
    special[2] = -0.125f;
    special[3] = 1e30f;
    special[4] = -INFINITY;
    special[5] = NAN;
    const ActivationParams p{0.05f, 120, 3, 250, false};
    const QuantizedTensor q = quantize(x, p);
    for (std::int64_t i = 0; i < x.size(); ++i) {
        const float v = x.data<float>()[i];
        const float expected = std::isnan(v) ? 120.f : std::clamp(std::nearbyint(v * (1.f / 0.05f)) + 120.f, 3.f, 250.f);
        QCOMPARE(static_cast<float>(q.codes.data<std::uint8_t>()[i]), expected);
    }
    const QuantizedTensor nhwc = toChannelsLast(q);
    // Quantizing straight to channels-last gives the same codes (a 600-pixel image spans tiles).
    const QuantizedTensor direct = quantizeToChannelsLast(x, p);
    QVERIFY(direct.channelsLast);
    QCOMPARE(direct.codes.shape(), nhwc.codes.shape());
    QVERIFY(std::equal(direct.codes.data<std::uint8_t>(), direct.codes.data<std::uint8_t>() + direct.codes.size(),
                       nhwc.codes.data<std::uint8_t>()));
    Tensor large(DataType::Float32, {1, 3, 20, 30});
    for (float& v : std::span(large.mutableData<float>(), static_cast<std::size_t>(large.size())))
        v = value(rng);
    const QuantizedTensor viaLayout = toChannelsLast(quantize(large, p)), straight = quantizeToChannelsLast(large, p);
    QVERIFY(std::equal(straight.codes.data<std::uint8_t>(), straight.codes.data<std::uint8_t>() + straight.codes.size(),
                       viaLayout.codes.data<std::uint8_t>()));
    QCOMPARE(nhwc.codes.shape(), (Shape{2, 4, 5, 3}));
    QCOMPARE(nhwc.logicalShape(), q.codes.shape());
    // Element (n=1, c=2, h=3, w=4) moves to (1, 3, 4, 2).
    QCOMPARE(nhwc.codes.data<std::uint8_t>()[((1 * 4 + 3) * 5 + 4) * 3 + 2], q.codes.data<std::uint8_t>()[((1 * 3 + 2) * 4 + 3) * 5 + 4]);
    const QuantizedTensor back = toChannelsFirst(nhwc);
    QVERIFY(std::equal(back.codes.data<std::uint8_t>(), back.codes.data<std::uint8_t>() + back.codes.size(), q.codes.data<std::uint8_t>()));
    const Tensor real = dequantize(nhwc);
    QCOMPARE(real.shape(), x.shape());
    QCOMPARE(real.data<float>()[7], (static_cast<float>(q.codes.data<std::uint8_t>()[7]) - 120.f) * 0.05f);
    // Signed activations are presented as int8.
    const QuantizedTensor s = quantize(x, ActivationParams{0.05f, 128, 1, 255, true});
    QCOMPARE(static_cast<int>(presentedCodes(s).data<std::int8_t>()[0]), static_cast<int>(s.codes.data<std::uint8_t>()[0]) - 128);
}

namespace {

// One of `values`, uniformly.
std::int64_t pickOne(std::initializer_list<std::int64_t> values, std::mt19937& rng)
{
    return *(values.begin() + std::uniform_int_distribution<std::size_t>(0, values.size() - 1)(rng));
}

// The output size of a random window; false when the window does not fit the padded input.
bool completeWindow(Window2D& w)
{
    const std::int64_t effH = w.dilationH * (w.kernelH - 1) + 1, effW = w.dilationW * (w.kernelW - 1) + 1;
    if (w.inH + w.padTop + w.padBottom < effH || w.inW + w.padLeft + w.padRight < effW)
        return false;
    w.outH = (w.inH + w.padTop + w.padBottom - effH) / w.strideH + 1;
    w.outW = (w.inW + w.padLeft + w.padRight - effW) / w.strideW + 1;
    return true;
}

Tensor randomTensor(DataType type, Shape shape, std::mt19937& rng, int lo, int hi)
{
    Tensor t(type, std::move(shape));
    std::uniform_int_distribution<int> d(lo, hi);
    for (std::int64_t i = 0; i < t.size(); ++i) {
        if (type == DataType::UInt8)
            t.mutableData<std::uint8_t>()[i] = static_cast<std::uint8_t>(d(rng));
        else
            t.mutableData<std::int8_t>()[i] = static_cast<std::int8_t>(d(rng));
    }
    return t;
}

}  // namespace

void TestInt8Kernels::fastConvolutionEqualsReference()
{
    if (!fastKernelsAvailable())
        QSKIP("built without oneDNN: the engine uses the reference kernels only");
    std::mt19937 rng(2024);
    auto pick = [&](std::initializer_list<std::int64_t> values) { return pickOne(values, rng); };
    int optimized = 0;
    // First the shapes of real models (TensorFlow's SAME padding: more at the bottom/right), then
    // random ones.
    struct Fixed { std::int64_t n, c, size, kernel, stride, padBegin, padEnd, groups, oc; };
    const std::vector<Fixed> fixed = {{4, 64, 12, 3, 2, 0, 1, 64, 64}, {4, 64, 6, 1, 1, 0, 0, 1, 128}, {1, 3, 96, 3, 2, 0, 1, 1, 8},
                                      {32, 32, 24, 3, 1, 1, 1, 32, 32}, {2, 16, 32, 3, 1, 1, 1, 1, 16}};
    for (int trial = 0; trial < 120 + static_cast<int>(fixed.size()); ++trial) {
        const bool isFixed = trial < static_cast<int>(fixed.size());
        const std::int64_t n = isFixed ? fixed[trial].n : pick({1, 2, 3}), groupsKind = pick({0, 1, 2});
        std::int64_t channels = isFixed ? fixed[trial].c : pick({1, 3, 5, 8, 17, 32});
        Window2D w;
        w.kernelH = pick({1, 3, 5});
        w.kernelW = trial % 5 == 0 ? pick({1, 3}) : w.kernelH;
        w.strideH = pick({1, 2});
        w.strideW = pick({1, 2});
        w.dilationH = w.dilationW = trial % 7 == 0 ? 2 : 1;
        w.padTop = pick({0, 1, 2});
        w.padLeft = pick({0, 1, 2});
        w.padBottom = pick({0, 1, 2});
        w.padRight = pick({0, 1, 2});
        w.inH = pick({5, 7, 12, 13});
        w.inW = pick({5, 6, 11, 13});
        if (isFixed) {
            const Fixed& f = fixed[trial];
            w.kernelH = w.kernelW = f.kernel;
            w.strideH = w.strideW = f.stride;
            w.dilationH = w.dilationW = 1;
            w.padTop = w.padLeft = f.padBegin;
            w.padBottom = w.padRight = f.padEnd;
            w.inH = w.inW = f.size;
        }
        if (!completeWindow(w))
            continue;
        std::int64_t groups = isFixed ? fixed[trial].groups : groupsKind == 0 ? 1 : groupsKind == 1 ? channels : (channels % 2 == 0 ? 2 : 1);
        const std::int64_t outChannels = isFixed ? fixed[trial].oc : groups == channels ? channels * pick({1, 2}) : pick({1, 4, 7, 16, 33});
        const std::int64_t oc = (outChannels / groups) * groups;
        if (oc == 0)
            continue;
        const Tensor input = randomTensor(DataType::UInt8, {n, channels, w.inH, w.inW}, rng, 0, 255);
        const Tensor weights = randomTensor(DataType::Int8, {oc, channels / groups, w.kernelH, w.kernelW}, rng, -127, 127);
        // Every fourth geometry with input zero-point 0 (oneDNN pads by itself then).
        const std::int32_t zeroPoint = trial % 4 == 3 ? 0 : std::uniform_int_distribution<int>(0, 255)(rng);
        // Every third geometry with per-channel weight zero-points (asymmetric weights).
        std::vector<std::int32_t> weightZeroPoints{0};
        if (trial % 3 == 1) {
            weightZeroPoints.clear();
            for (std::int64_t c = 0; c < oc; ++c)
                weightZeroPoints.push_back(std::uniform_int_distribution<int>(-128, 127)(rng));
        }
        const Tensor expected = convAccumulateReference(input, zeroPoint, weights, weightZeroPoints, w, groups);

        QuantizedTensor q;
        q.codes = input;
        const Tensor nhwc = toChannelsLast(q).codes;
        FastConv fast(weights, weightZeroPoints, groups);
        if (!fast.supports(nhwc.shape(), w, zeroPoint))
            continue;
        ++optimized;
        const Tensor actual = fast.accumulate(nhwc, zeroPoint, w);  // [N, OH, OW, OC]
        QCOMPARE(actual.shape(), (Shape{n, w.outH, w.outW, oc}));
        for (std::int64_t b = 0; b < n; ++b)
            for (std::int64_t c = 0; c < oc; ++c)
                for (std::int64_t y = 0; y < w.outH; ++y)
                    for (std::int64_t x = 0; x < w.outW; ++x) {
                        const std::int32_t want = expected.data<std::int32_t>()[((b * oc + c) * w.outH + y) * w.outW + x];
                        const std::int32_t got = actual.data<std::int32_t>()[((b * w.outH + y) * w.outW + x) * oc + c];
                        if (want != got)
                            QFAIL(qPrintable(QString("trial %1: n %2 c %3 oc %4 groups %5 kernel %6x%7 stride %8x%9 pads %10,%11,%12,%13 "
                                                     "input %14x%15: at (%16,%17,%18,%19) %20 != %21")
                                                 .arg(trial).arg(n).arg(channels).arg(oc).arg(groups).arg(w.kernelH).arg(w.kernelW)
                                                 .arg(w.strideH).arg(w.strideW).arg(w.padTop).arg(w.padLeft).arg(w.padBottom)
                                                 .arg(w.padRight).arg(w.inH).arg(w.inW).arg(b).arg(c).arg(y).arg(x).arg(got).arg(want)));
                    }
    }
    qInfo("%d random geometries ran on optimized oneDNN kernels", optimized);
    QVERIFY(optimized >= 40);
}

void TestInt8Kernels::fastMatrixProductEqualsReference()
{
    if (!fastKernelsAvailable())
        QSKIP("built without oneDNN: the engine uses the reference kernels only");
    std::mt19937 rng(99);
    for (std::int64_t m : {1, 3, 32, 33})
        for (std::int64_t k : {1, 7, 64, 129})
            for (std::int64_t n : {1, 10, 31, 64}) {
                const Tensor a = randomTensor(DataType::UInt8, {m, k}, rng, 0, 255);
                const Tensor b = randomTensor(DataType::Int8, {k, n}, rng, -127, 127);
                const std::int32_t zeroPoint = std::uniform_int_distribution<int>(0, 255)(rng);
                std::vector<std::int32_t> weightZeroPoints;
                for (std::int64_t j = 0; j < n; ++j)
                    weightZeroPoints.push_back(n == 10 ? 0 : std::uniform_int_distribution<int>(-128, 127)(rng));
                const Tensor expected = matmulAccumulateReference(a, zeroPoint, b, weightZeroPoints);
                const Tensor actual = FastMatMul(b, weightZeroPoints).accumulate(a, zeroPoint);
                QCOMPARE(actual.shape(), expected.shape());
                QVERIFY2(std::equal(actual.data<std::int32_t>(), actual.data<std::int32_t>() + actual.size(), expected.data<std::int32_t>()),
                         qPrintable(QString("m %1 k %2 n %3").arg(m).arg(k).arg(n)));
            }
}

namespace {

// A per-channel requantization as layers have them: multipliers from 2^-20 to 4 (some tiny
// enough to round to 0), biases up to the int32 limit for this reduction size.
ChannelRequantization randomRequantization(std::int64_t channels, std::int64_t reductionSize, std::mt19937& rng)
{
    std::uniform_real_distribution<double> exponent(-20, 2);
    const std::int64_t limit = std::min<std::int64_t>(int32BiasLimit(reductionSize), 1 << 24);
    std::uniform_int_distribution<std::int64_t> bias(-limit, limit);
    ChannelRequantization r;
    for (std::int64_t c = 0; c < channels; ++c)
        r.add(static_cast<std::int32_t>(c % 5 == 0 ? 0 : bias(rng)),
              prepareMultiplier(c % 11 == 10 ? 1e-12 : c % 7 == 6 ? 0.5 : std::pow(2.0, exponent(rng))));
    return r;
}

std::uint8_t expectedCode(std::int32_t accumulator, const ChannelRequantization& r, std::size_t c, const OutputStage& s)
{
    const FixedPointMultiplier m{r.multiplier[c], static_cast<int>(r.rightShift[c])};
    return static_cast<std::uint8_t>(requantize(accumulator + r.bias[c], m, s.zeroPoint, s.codeMin, s.codeMax));
}

OutputStage randomStage(const ChannelRequantization& r, std::mt19937& rng)
{
    std::uniform_int_distribution<int> code(0, 255);
    OutputStage s;
    s.requantization = &r;
    s.zeroPoint = code(rng);
    s.codeMin = std::min(s.zeroPoint, code(rng) / 4);  // e.g. a fused Relu: zero-point up
    s.codeMax = std::max(s.zeroPoint, 255 - code(rng) / 4);
    return s;
}

// The first position where a fused kernel's channels-last codes `y` [N, OH, OW, C] differ from
// the reference accumulators `acc` [N, C, OH, OW] requantized by the scalar requantize(), as
// "(n,c,y,x) got != want"; "" when every code is equal.
QString firstDifference(const Tensor& acc, const std::vector<std::uint8_t>& y, const ChannelRequantization& r, const OutputStage& stage)
{
    const std::int64_t n = acc.dim(0), channels = acc.dim(1), h = acc.dim(2), w = acc.dim(3);
    for (std::int64_t b = 0; b < n; ++b)
        for (std::int64_t c = 0; c < channels; ++c)
            for (std::int64_t oy = 0; oy < h; ++oy)
                for (std::int64_t ox = 0; ox < w; ++ox) {
                    const std::uint8_t want =
                        expectedCode(acc.data<std::int32_t>()[((b * channels + c) * h + oy) * w + ox], r, static_cast<std::size_t>(c), stage);
                    const std::uint8_t got = y[static_cast<std::size_t>(((b * h + oy) * w + ox) * channels + c)];
                    if (want != got)
                        return QString("(%1,%2,%3,%4) %5 != %6").arg(b).arg(c).arg(oy).arg(ox).arg(got).arg(want);
                }
    return {};
}

// A convolution geometry for failure messages.
QString describeGeometry(std::int64_t channels, std::int64_t outChannels, const Window2D& w, std::int32_t zeroPoint)
{
    return QString("c %1 oc %2 kernel %3x%4 stride %5x%6 dilation %7 pads %8,%9,%10,%11 input %12x%13 zx %14")
        .arg(channels).arg(outChannels).arg(w.kernelH).arg(w.kernelW).arg(w.strideH).arg(w.strideW).arg(w.dilationH)
        .arg(w.padTop).arg(w.padLeft).arg(w.padBottom).arg(w.padRight).arg(w.inH).arg(w.inW).arg(zeroPoint);
}

}  // namespace

void TestInt8Kernels::fusedMatrixProductEqualsReference()
{
    if (!fusedKernelsAvailable())
        QSKIP("this CPU has no AVX-512 VNNI: the engine uses its other kernels");
    std::mt19937 rng(7);
    int cases = 0;
    for (std::int64_t m : {1, 5, 6, 7, 49, 100})
        for (std::int64_t k : {1, 3, 4, 7, 64, 129, 1024})
            for (std::int64_t n : {1, 10, 16, 17, 64, 65, 130}) {
                const bool outputMajor = (m + k + n) % 2 == 0;  // [N, K] like 1x1 convolution weights, else [K, N]
                const Tensor a = randomTensor(DataType::UInt8, {m, k}, rng, 0, 255);
                const Tensor b = randomTensor(DataType::Int8, {k, n}, rng, -128, 127);
                std::vector<std::int8_t> transposed(static_cast<std::size_t>(k * n));
                for (std::int64_t i = 0; i < k; ++i)
                    for (std::int64_t j = 0; j < n; ++j)
                        transposed[static_cast<std::size_t>(j * k + i)] = b.data<std::int8_t>()[i * n + j];
                const std::int32_t zeroPoint = cases % 4 == 3 ? 0 : std::uniform_int_distribution<int>(0, 255)(rng);
                std::vector<std::int32_t> weightZeroPoints{0};
                if (cases % 3 == 1) {
                    weightZeroPoints.clear();
                    for (std::int64_t j = 0; j < n; ++j)
                        weightZeroPoints.push_back(std::uniform_int_distribution<int>(-128, 127)(rng));
                }
                const ChannelRequantization r = randomRequantization(n, k, rng);
                const OutputStage stage = randomStage(r, rng);
                const Tensor acc = matmulAccumulateReference(a, zeroPoint, b, weightZeroPoints);
                // Rows further apart than they are long, as in a strided view.
                const std::int64_t xStride = k + 3, yStride = n + 5;
                std::vector<std::uint8_t> x(static_cast<std::size_t>(m * xStride), 0xEE), y(static_cast<std::size_t>(m * yStride), 0xEE);
                for (std::int64_t i = 0; i < m; ++i)
                    std::copy_n(a.data<std::uint8_t>() + i * k, k, x.data() + i * xStride);
                const PackedGemm gemm = outputMajor ? PackedGemm(transposed.data(), k, n, 1, k, weightZeroPoints)
                                                    : PackedGemm(b.data<std::int8_t>(), k, n, n, 1, weightZeroPoints);
                gemm.run(x.data(), m, xStride, zeroPoint, stage, y.data(), yStride);
                for (std::int64_t i = 0; i < m; ++i)
                    for (std::int64_t j = 0; j < yStride; ++j) {
                        const std::uint8_t got = y[static_cast<std::size_t>(i * yStride + j)];
                        const std::uint8_t want = j < n ? expectedCode(acc.data<std::int32_t>()[i * n + j], r, static_cast<std::size_t>(j), stage)
                                                        : std::uint8_t{0xEE};  // beyond the row: untouched
                        if (got != want)
                            QFAIL(qPrintable(QString("m %1 k %2 n %3 zx %4 at (%5, %6): %7 != %8")
                                                 .arg(m).arg(k).arg(n).arg(zeroPoint).arg(i).arg(j).arg(got).arg(want)));
                    }
                ++cases;
            }
    qInfo("%d matrix products equal the reference code for code", cases);
}

void TestInt8Kernels::fusedDepthwiseEqualsReference()
{
    if (!fusedKernelsAvailable())
        QSKIP("this CPU has no AVX-512: the engine uses its other kernels");
    std::mt19937 rng(11);
    auto pick = [&](std::initializer_list<std::int64_t> values) { return pickOne(values, rng); };
    int cases = 0;
    for (int trial = 0; trial < 150; ++trial) {
        const std::int64_t n = pick({1, 2, 3}), channels = pick({1, 7, 16, 17, 32, 40});
        Window2D w;
        w.kernelH = pick({1, 3, 5});
        w.kernelW = trial % 5 == 0 ? pick({1, 3}) : w.kernelH;
        w.strideH = pick({1, 2});
        w.strideW = trial % 3 == 0 ? pick({1, 2}) : w.strideH;
        w.dilationH = w.dilationW = trial % 7 == 0 ? 2 : 1;
        w.padTop = pick({0, 1, 2});
        w.padLeft = pick({0, 1, 2});
        w.padBottom = pick({0, 1, 2});
        w.padRight = pick({0, 1, 2});
        w.inH = pick({1, 5, 7, 12, 13});
        w.inW = pick({1, 5, 6, 11, 13});
        if (!completeWindow(w))
            continue;
        const Tensor input = randomTensor(DataType::UInt8, {n, channels, w.inH, w.inW}, rng, 0, 255);
        const Tensor weights = randomTensor(DataType::Int8, {channels, 1, w.kernelH, w.kernelW}, rng, -128, 127);
        const std::int32_t zeroPoint = trial % 4 == 3 ? 0 : std::uniform_int_distribution<int>(0, 255)(rng);
        std::vector<std::int32_t> weightZeroPoints{0};
        if (trial % 3 == 1) {
            weightZeroPoints.clear();
            for (std::int64_t c = 0; c < channels; ++c)
                weightZeroPoints.push_back(std::uniform_int_distribution<int>(-128, 127)(rng));
        }
        const ChannelRequantization r = randomRequantization(channels, w.kernelH * w.kernelW, rng);
        const OutputStage stage = randomStage(r, rng);
        const Tensor acc = convAccumulateReference(input, zeroPoint, weights, weightZeroPoints, w, channels);  // NCHW

        QuantizedTensor q;
        q.codes = input;
        const Tensor nhwc = toChannelsLast(q).codes;
        std::vector<std::uint8_t> y(static_cast<std::size_t>(n * w.outH * w.outW * channels));
        DepthwiseConv(weights.data<std::int8_t>(), channels, w.kernelH, w.kernelW, weightZeroPoints)
            .run(nhwc.data<std::uint8_t>(), n, w, zeroPoint, stage, y.data());
        const QString difference = firstDifference(acc, y, r, stage);
        if (!difference.isEmpty())
            QFAIL(qPrintable(QString("trial %1: %2: at %3").arg(trial).arg(describeGeometry(channels, channels, w, zeroPoint), difference)));
        ++cases;
    }
    qInfo("%d depthwise geometries equal the reference code for code", cases);
    QVERIFY(cases >= 100);
}

void TestInt8Kernels::fusedConvolutionEqualsReference()
{
    if (!fusedKernelsAvailable())
        QSKIP("this CPU has no AVX-512 VNNI: the engine uses its other kernels");
    std::mt19937 rng(13);
    auto pick = [&](std::initializer_list<std::int64_t> values) { return pickOne(values, rng); };
    int cases = 0;
    for (int trial = 0; trial < 120; ++trial) {
        // Every fourth a pointwise convolution (multiplied in place), the others any window.
        const bool pointwise = trial % 4 == 0;
        const std::int64_t n = pick({1, 2}), channels = pick({1, 3, 8, 17, 64}), oc = pick({1, 7, 16, 33, 70});
        Window2D w;
        w.kernelH = pointwise ? 1 : pick({1, 3, 5, 7});
        w.kernelW = pointwise ? 1 : trial % 5 == 0 ? pick({1, 3}) : w.kernelH;
        w.strideH = pointwise ? 1 : pick({1, 2});
        w.strideW = pointwise ? 1 : pick({1, 2});
        w.dilationH = w.dilationW = !pointwise && trial % 7 == 0 ? 2 : 1;
        w.padTop = pointwise ? 0 : pick({0, 1, 3});
        w.padLeft = pointwise ? 0 : pick({0, 1, 2});
        w.padBottom = pointwise ? 0 : pick({0, 1, 2});
        w.padRight = pointwise ? 0 : pick({0, 1, 3});
        w.inH = pick({1, 5, 12, 13});
        w.inW = pick({1, 6, 11, 14});
        if (!completeWindow(w))
            continue;
        const Tensor input = randomTensor(DataType::UInt8, {n, channels, w.inH, w.inW}, rng, 0, 255);
        const Tensor weights = randomTensor(DataType::Int8, {oc, channels, w.kernelH, w.kernelW}, rng, -128, 127);
        const std::int32_t zeroPoint = trial % 3 == 2 ? 0 : std::uniform_int_distribution<int>(0, 255)(rng);
        std::vector<std::int32_t> weightZeroPoints{0};
        if (trial % 5 == 1) {
            weightZeroPoints.clear();
            for (std::int64_t c = 0; c < oc; ++c)
                weightZeroPoints.push_back(std::uniform_int_distribution<int>(-128, 127)(rng));
        }
        const ChannelRequantization r = randomRequantization(oc, channels * w.kernelH * w.kernelW, rng);
        const OutputStage stage = randomStage(r, rng);
        const Tensor acc = convAccumulateReference(input, zeroPoint, weights, weightZeroPoints, w, 1);  // NCHW

        QuantizedTensor q;
        q.codes = input;
        const Tensor nhwc = toChannelsLast(q).codes;
        std::vector<std::uint8_t> y(static_cast<std::size_t>(n * w.outH * w.outW * oc));
        Im2colConv(weights.data<std::int8_t>(), oc, channels, w.kernelH, w.kernelW, weightZeroPoints)
            .run(nhwc.data<std::uint8_t>(), n, w, zeroPoint, stage, y.data());
        const QString difference = firstDifference(acc, y, r, stage);
        if (!difference.isEmpty())
            QFAIL(qPrintable(QString("trial %1: %2: at %3").arg(trial).arg(describeGeometry(channels, oc, w, zeroPoint), difference)));
        ++cases;
    }
    qInfo("%d convolution geometries equal the reference code for code", cases);
    QVERIFY(cases >= 80);
}

QTEST_APPLESS_MAIN(TestInt8Kernels)
#include "tst_int8_kernels.moc"
