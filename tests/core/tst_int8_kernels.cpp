// The integer engine's building blocks against plain references: the fixed-point requantization
// against exact 128-bit arithmetic, and the fast (oneDNN) convolution and matrix product against
// the reference kernels on random shapes with odd channel counts, padding, strides, dilations and
// groups. The reference kernels themselves are checked by the ONNX conformance tests
// (ConvInteger, MatMulInteger, QLinearConv, QLinearMatMul).

#include "engine/int8/fast_kernels.h"
#include "engine/int8/quantized_tensor.h"
#include "engine/int8/reference_kernels.h"
#include "engine/int8/requantize.h"

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
    const ActivationParams p{0.05f, 120, 3, 250, false};
    const QuantizedTensor q = quantize(x, p);
    for (std::int64_t i = 0; i < x.size(); ++i) {
        const float expected = std::clamp(std::nearbyint(x.data<float>()[i] * (1.f / 0.05f)) + 120.f, 3.f, 250.f);
        QCOMPARE(static_cast<float>(q.codes.data<std::uint8_t>()[i]), expected);
    }
    const QuantizedTensor nhwc = toChannelsLast(q);
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
    auto pick = [&](std::initializer_list<std::int64_t> values) {
        return *(values.begin() + std::uniform_int_distribution<std::size_t>(0, values.size() - 1)(rng));
    };
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
        const std::int64_t effH = w.dilationH * (w.kernelH - 1) + 1, effW = w.dilationW * (w.kernelW - 1) + 1;
        if (w.inH + w.padTop + w.padBottom < effH || w.inW + w.padLeft + w.padRight < effW)
            continue;
        w.outH = (w.inH + w.padTop + w.padBottom - effH) / w.strideH + 1;
        w.outW = (w.inW + w.padLeft + w.padRight - effW) / w.strideW + 1;
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

QTEST_APPLESS_MAIN(TestInt8Kernels)
#include "tst_int8_kernels.moc"
