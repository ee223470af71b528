// The tensor value type: shapes are validated before anything is allocated, views share storage,
// conversions follow C++ semantics.

#include "common/error.h"
#include "common/sanitizers.h"
#include "tensor/tensor.h"

#include <QtTest>

#include <algorithm>

using namespace qe;

class TestTensor : public QObject {
    Q_OBJECT
private slots:
    void absurdShapes_data();
    void absurdShapes();
    void reshapeSharesStorage();
    void castAndReadBack();
    void wrongTypeAccessIsAnError();
    void largeBlocksRecycledZeroed();
    void largeBlockSurvivesOtherSizes();
};

void TestTensor::absurdShapes_data()
{
    QTest::addColumn<QList<qint64>>("dims");
    QTest::newRow("negative") << QList<qint64>{1, -3, 4};
    QTest::newRow("2^40 elements") << QList<qint64>{1 << 20, 1 << 20};
    QTest::newRow("overflowing product") << QList<qint64>{qint64(1) << 40, qint64(1) << 40};
}

void TestTensor::absurdShapes()
{
    QFETCH(QList<qint64>, dims);
    Shape shape(dims.begin(), dims.end());
    QVERIFY_THROWS_EXCEPTION(Error, Tensor(DataType::Float32, shape));
}

void TestTensor::reshapeSharesStorage()
{
    Tensor t = Tensor::fromValues<float>({2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6});
    const Tensor view = t.reshaped({3, 2});
    QCOMPARE(view.data<float>(), t.data<float>());
    QCOMPARE(view.shape(), (Shape{3, 2}));
    QVERIFY_THROWS_EXCEPTION(Error, t.reshaped({4, 2}));
    const Tensor copy = t.clone();
    t.mutableData<float>()[0] = 42.f;
    QCOMPARE(view.data<float>()[0], 42.f);
    QCOMPARE(copy.data<float>()[0], 1.f);
}

void TestTensor::castAndReadBack()
{
    const Tensor t = Tensor::fromValues<float>({4}, std::vector<float>{-1.7f, 0.4f, 2.9f, 100.f});
    const auto ints = t.toInt64Vector();
    QCOMPARE(ints, (std::vector<std::int64_t>{-1, 0, 2, 100}));  // truncation toward zero
    const Tensor bytes = t.castTo(DataType::Int8);
    QCOMPARE(bytes.dtype(), DataType::Int8);
    QCOMPARE(int(bytes.data<std::int8_t>()[2]), 2);
    QCOMPARE(bytes.describe(), std::string("int8[4]"));
}

void TestTensor::wrongTypeAccessIsAnError()
{
    const Tensor t(DataType::UInt8, {2});
    QVERIFY_THROWS_EXCEPTION(Error, t.data<float>());
}

// A large tensor's block goes back to the pool when the tensor dies and serves the next tensor of
// that size, and a tensor made zeroed is zero even on a block that held values.
void TestTensor::largeBlocksRecycledZeroed()
{
    const Shape shape{4, 1 << 18};  // 4 MiB of float32: two huge pages
    const std::byte* first = nullptr;
    {
        Tensor t = Tensor::uninitialized(DataType::Float32, shape);
        std::fill_n(t.mutableData<float>(), t.size(), 1.5f);
        first = t.rawData();
    }
    const Tensor zeroed(DataType::Float32, shape);
#if defined(__linux__)  // the pool exists on Linux (2 MiB-aligned blocks for huge pages)
    if (!QE_ADDRESS_SANITIZER)  // AddressSanitizer sees every block freed (no pool there)
        QCOMPARE(static_cast<const void*>(zeroed.rawData()), static_cast<const void*>(first));
#endif
    QVERIFY(std::all_of(zeroed.data<float>(), zeroed.data<float>() + zeroed.size(), [](float v) { return v == 0.f; }));
}

// A tensor of a new size does not take the blocks of sizes still in use from the pool (freeing
// them on every such miss, with two batches in flight, cost MobileNetV1's evaluation a fifth of its
// time in fresh pages): the block freed just before comes back to the next tensor of its size.
void TestTensor::largeBlockSurvivesOtherSizes()
{
    const Shape shape{4, 1 << 18};  // 4 MiB of float32
    const std::byte* first = nullptr;
    {
        const Tensor t = Tensor::uninitialized(DataType::Float32, shape);
        first = t.rawData();
    }
    const Tensor other = Tensor::uninitialized(DataType::Float32, {6, 1 << 18});  // 6 MiB: no block of its size
    const Tensor again = Tensor::uninitialized(DataType::Float32, shape);
#if defined(__linux__)
    if (!QE_ADDRESS_SANITIZER)
        QCOMPARE(static_cast<const void*>(again.rawData()), static_cast<const void*>(first));
#endif
    QVERIFY(other.rawData() != again.rawData());
}

QTEST_APPLESS_MAIN(TestTensor)
#include "tst_tensor.moc"
