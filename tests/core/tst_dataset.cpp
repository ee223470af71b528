// Data sets and preprocessing against outside truth: the published MNIST/Fashion-MNIST/CIFAR files
// (labels and class counts checked with Python's gzip module), raw file bytes read here without the
// code under test, and OpenCV calls written out independently of Preprocess::apply.

#include "common/error.h"
#include "data/dataset.h"
#include "data/image_header.h"
#include "data/preprocess.h"

#include <QDir>
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace fs = std::filesystem;

namespace {

fs::path sharedData(const char* name)
{
    return fs::path(QE_SHARED_DIR) / "data" / name;
}

// The message of the qe::Error that fn throws, or a marker that makes any QVERIFY on it fail.
template <class Fn> QString errorOf(Fn&& fn)
{
    try {
        fn();
    } catch (const qe::Error& e) {
        return QString::fromStdString(e.what());
    } catch (const std::exception& e) {
        return QStringLiteral("<not a qe::Error: %1>").arg(e.what());
    }
    return QStringLiteral("<no error>");
}

void writeFile(const fs::path& path, const QByteArray& bytes)
{
    QFile file(QString::fromStdString(path.string()));
    QVERIFY(file.open(QIODevice::WriteOnly));
    QCOMPARE(file.write(bytes), bytes.size());
}

QByteArray bigEndian(quint32 v)
{
    QByteArray b(4, '\0');
    b[0] = char(v >> 24);
    b[1] = char(v >> 16);
    b[2] = char(v >> 8);
    b[3] = char(v);
    return b;
}

QByteArray idxHeader(quint32 magic, QList<quint32> dims)
{
    QByteArray b = bigEndian(magic);
    for (quint32 d : dims)
        b += bigEndian(d);
    return b;
}

// The first two comma-separated fields of every data row (the files used here quote only later columns).
QList<QPair<QString, int>> readFileLabelColumns(const fs::path& csv)
{
    QList<QPair<QString, int>> rows;
    QFile file(QString::fromStdString(csv.string()));
    if (!file.open(QIODevice::ReadOnly))
        return rows;
    file.readLine();  // header
    while (!file.atEnd()) {
        const QString line = QString::fromUtf8(file.readLine()).trimmed();
        if (line.isEmpty())
            continue;
        const QStringList fields = line.split(',');
        rows.append({fields.value(0), fields.value(1).toInt()});
    }
    return rows;
}

}  // namespace

#define SKIP_IF_MISSING(path)                                                                                    \
    do {                                                                                                         \
        if (!fs::exists(path))                                                                                   \
            QSKIP(qPrintable(QStringLiteral("test data not found: %1").arg(QString::fromStdString((path).string())))); \
    } while (0)

class TestDataset : public QObject {
    Q_OBJECT

private slots:
    void idxDataset_data();
    void idxDataset();
    void idxTruncatedGzip();
    void idxSyntheticWithLabels();
    void cifar();
    void vwwFolderFollowsCsvOrder();
    void imagenetFolderPicksLabelColumn();
    void classFolders();
    void singleImageAndDepths();
    void undecodableImage();
    void imageHeaderMatchesOpenCv();
    void badDataFiles_data();
    void badDataFiles();
    void labelsCsvRejected_data();
    void labelsCsvRejected();
    void labelsCsvAccepted();
    void makeBatchMatchesPixels();

    void presets();
    void colourConversion_data();
    void colourConversion();
    void meanStdOnKnownPixels();
    void resizeShorterKeepsAspect();
    void centralCropMatchesOpenCv_data();
    void centralCropMatchesOpenCv();
    void applyRejected();
    void jsonRoundTrip();
    void jsonRejected_data();
    void jsonRejected();
    void saveIsAtomicAndSidecarWorks();
};

// ---------------------------------------------------------------------------------------------
// Data sets

void TestDataset::idxDataset_data()
{
    QTest::addColumn<QString>("imagesPath");
    QTest::addColumn<QList<int>>("firstLabels");
    QTest::addColumn<QList<int>>("classCounts");
    QTest::addColumn<double>("pixelSumFirst");
    QTest::addColumn<double>("pixelSumLast");
    QTest::addColumn<QString>("lastClassName");

    // Labels, counts and pixel sums read from the .gz files with Python's gzip module.
    QTest::newRow("mnist") << QString::fromStdString((sharedData("mnist") / "t10k-images-idx3-ubyte.gz").string())
                           << QList<int>{7, 2, 1, 0, 4, 1, 4, 9, 5, 9}
                           << QList<int>{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009} << 18454.0
                           << 41833.0 << "9";
    QTest::newRow("fashion-mnist")
        << QString::fromStdString((fs::path(QE_FASHION_MNIST_DIR) / "t10k-images-idx3-ubyte.gz").string())
        << QList<int>{9, 2, 1, 1, 6, 1, 4, 6, 5, 7}
        << QList<int>{1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000} << 33456.0 << 24390.0
        << "Ankle boot";
}

void TestDataset::idxDataset()
{
    QFETCH(QString, imagesPath);
    QFETCH(QList<int>, firstLabels);
    QFETCH(QList<int>, classCounts);
    QFETCH(double, pixelSumFirst);
    QFETCH(double, pixelSumLast);
    QFETCH(QString, lastClassName);
    const fs::path path = imagesPath.toStdString();
    SKIP_IF_MISSING(path);

    const auto dataset = qe::openDataset(path);
    QCOMPARE(dataset->size(), std::size_t{10000});
    QVERIFY(dataset->hasLabels());
    for (int i = 0; i < firstLabels.size(); ++i)
        QCOMPARE(dataset->label(std::size_t(i)), firstLabels[i]);
    QList<int> counts(10, 0);
    for (std::size_t i = 0; i < dataset->size(); ++i) {
        const int label = dataset->label(i);
        QVERIFY(label >= 0 && label < 10);
        ++counts[label];
    }
    QCOMPARE(counts, classCounts);

    const cv::Mat first = dataset->image(0);
    QCOMPARE(first.rows, 28);
    QCOMPARE(first.cols, 28);
    QCOMPARE(first.type(), CV_8UC1);
    QCOMPARE(cv::sum(first)[0], pixelSumFirst);
    QCOMPARE(cv::sum(dataset->image(9999))[0], pixelSumLast);

    QCOMPARE(dataset->classNames().size(), std::size_t{10});
    QCOMPARE(QString::fromStdString(dataset->classNames()[9]), lastClassName);
    QCOMPARE(QString::fromStdString(dataset->imageName(42)), QStringLiteral("#42"));
    QVERIFY(QString::fromStdString(dataset->description()).contains("t10k-images-idx3-ubyte.gz"));
    QVERIFY(!errorOf([&] { dataset->image(10000); }).startsWith('<'));
}

void TestDataset::idxTruncatedGzip()
{
    const fs::path original = fs::path(QE_FASHION_MNIST_DIR) / "t10k-images-idx3-ubyte.gz";
    SKIP_IF_MISSING(original);
    QFile in(QString::fromStdString(original.string()));
    QVERIFY(in.open(QIODevice::ReadOnly));
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const fs::path cut = fs::path(dir.path().toStdString()) / "cut-images-idx3-ubyte.gz";
    writeFile(cut, in.read(100000));  // a real gzip stream, cut off in the middle

    const QString message = errorOf([&] { qe::openDataset(cut); });
    QVERIFY2(message.contains("cut-images-idx3-ubyte.gz"), qPrintable(message));
    QVERIFY2(!message.startsWith('<'), qPrintable(message));
}

void TestDataset::idxSyntheticWithLabels()
{
    QTemporaryDir tmp;
    QVERIFY(tmp.isValid());
    const fs::path dir = tmp.path().toStdString();
    const QByteArray pixels("\x01\x02\x03\x04\x05\x06\x07\x08", 8);  // two 2x2 images
    writeFile(dir / "a-images-idx3-ubyte", idxHeader(0x803, {2, 2, 2}) + pixels);

    // The sibling labels file is found by name and must have one label per image.
    writeFile(dir / "a-labels-idx1-ubyte", idxHeader(0x801, {3}) + QByteArray("\x03\x07\x01", 3));
    QString message = errorOf([&] { qe::openDataset(dir / "a-images-idx3-ubyte"); });
    QVERIFY2(message.contains("a-labels-idx1-ubyte") && message.contains("3 labels"), qPrintable(message));

    writeFile(dir / "a-labels-idx1-ubyte", idxHeader(0x801, {2}) + QByteArray("\x03\x07", 2));
    const auto dataset = qe::openDataset(dir / "a-images-idx3-ubyte");
    QCOMPARE(dataset->size(), std::size_t{2});
    QCOMPARE(dataset->label(0), 3);
    QCOMPARE(dataset->label(1), 7);
    const cv::Mat second = dataset->image(1);
    QCOMPARE(second.at<uchar>(0, 0), uchar(5));
    QCOMPARE(second.at<uchar>(0, 1), uchar(6));
    QCOMPARE(second.at<uchar>(1, 0), uchar(7));
    QCOMPARE(second.at<uchar>(1, 1), uchar(8));

    // Without a labels file the images are unlabelled, which is not an error.
    writeFile(dir / "b-images-idx3-ubyte", idxHeader(0x803, {2, 2, 2}) + pixels);
    const auto unlabelled = qe::openDataset(dir / "b-images-idx3-ubyte");
    QVERIFY(!unlabelled->hasLabels());
    QCOMPARE(unlabelled->label(1), -1);

    // An explicit labels file that does not exist is.
    message = errorOf([&] { qe::openDataset(dir / "b-images-idx3-ubyte", dir / "missing-labels"); });
    QVERIFY2(message.contains("missing-labels"), qPrintable(message));
}

void TestDataset::cifar()
{
    const fs::path path = sharedData("cifar10_mlperf_tiny_200") / "test_200.bin";
    SKIP_IF_MISSING(path);
    QFile file(QString::fromStdString(path.string()));
    QVERIFY(file.open(QIODevice::ReadOnly));
    const QByteArray raw = file.readAll();
    QCOMPARE(raw.size(), 200 * 3073);

    const auto dataset = qe::openDataset(path);
    QCOMPARE(dataset->size(), std::size_t{200});
    QList<int> counts(10, 0);
    for (std::size_t i = 0; i < dataset->size(); ++i) {
        QCOMPARE(dataset->label(i), int(uchar(raw[qsizetype(i) * 3073])));
        ++counts[dataset->label(i)];
    }
    QCOMPARE(counts, (QList<int>{21, 17, 28, 25, 14, 22, 14, 17, 26, 16}));

    // Planar R, G, B bytes in the file against interleaved B, G, R in the Mat.
    const std::size_t index = 7;
    const cv::Mat image = dataset->image(index);
    QCOMPARE(image.type(), CV_8UC3);
    QCOMPARE(image.rows, 32);
    QCOMPARE(image.cols, 32);
    const qsizetype record = qsizetype(index) * 3073 + 1;
    for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x) {
            const auto pixel = image.at<cv::Vec3b>(y, x);
            const qsizetype p = record + y * 32 + x;
            QCOMPARE(pixel[2], uchar(raw[p]));
            QCOMPARE(pixel[1], uchar(raw[p + 1024]));
            QCOMPARE(pixel[0], uchar(raw[p + 2048]));
        }

    const std::vector<std::string> names = dataset->classNames();
    QCOMPARE(names.size(), std::size_t{10});
    QCOMPARE(names.front(), std::string("airplane"));
    QCOMPARE(names.back(), std::string("truck"));
    QCOMPARE(dataset->imageName(3), std::string("#3"));
}

void TestDataset::vwwFolderFollowsCsvOrder()
{
    const fs::path folder = sharedData("vww_coco_96_200");
    SKIP_IF_MISSING(folder);
    const auto rows = readFileLabelColumns(folder / "labels.csv");
    QCOMPARE(rows.size(), 200);

    const auto dataset = qe::openDataset(folder);
    QCOMPARE(dataset->size(), std::size_t(rows.size()));
    for (int i = 0; i < rows.size(); ++i) {
        QCOMPARE(QString::fromStdString(dataset->imageName(std::size_t(i))), rows[i].first);
        QCOMPARE(dataset->label(std::size_t(i)), rows[i].second);
    }
    QCOMPARE(dataset->classNames(), (std::vector<std::string>{"non_person", "person"}));
    const cv::Mat image = dataset->image(0);
    QCOMPARE(image.rows, 96);
    QCOMPARE(image.cols, 96);
    QCOMPARE(image.type(), CV_8UC3);
}

void TestDataset::imagenetFolderPicksLabelColumn()
{
    const fs::path folder = sharedData("imagenet_val_227_300");
    SKIP_IF_MISSING(folder);
    const auto rows = readFileLabelColumns(folder / "labels.csv");  // file, label_1000
    QCOMPARE(rows.size(), 300);

    const auto dataset = qe::openDataset(folder);
    QCOMPARE(dataset->size(), std::size_t{300});
    QCOMPARE(dataset->imageName(0), std::string("ILSVRC2012_val_00000347.JPEG"));
    QCOMPARE(dataset->label(0), 472);  // "canoe" in the 1000-class numbering
    for (int i = 0; i < rows.size(); ++i) {
        QCOMPARE(QString::fromStdString(dataset->imageName(std::size_t(i))), rows[i].first);
        QCOMPARE(dataset->label(std::size_t(i)), rows[i].second);
    }
    QCOMPARE(dataset->classNames().at(472), std::string("canoe"));
}

void TestDataset::classFolders()
{
    QTemporaryDir tmp;
    QVERIFY(tmp.isValid());
    const fs::path root = tmp.path().toStdString();
    fs::create_directories(root / "cats");
    fs::create_directories(root / "dogs");
    fs::create_directories(root / ".hidden");
    const cv::Mat red(4, 6, CV_8UC3, cv::Scalar(0, 0, 255));
    const cv::Mat green(4, 6, CV_8UC3, cv::Scalar(0, 255, 0));
    const cv::Mat blue(5, 3, CV_8UC3, cv::Scalar(255, 0, 0));
    QVERIFY(cv::imwrite((root / "cats" / "a.png").string(), red));
    QVERIFY(cv::imwrite((root / "cats" / "B.PNG").string(), green));
    QVERIFY(cv::imwrite((root / "dogs" / "c.bmp").string(), blue));
    QVERIFY(cv::imwrite((root / ".hidden" / "x.png").string(), blue));
    writeFile(root / "dogs" / "notes.txt", "not an image");

    const auto dataset = qe::openDataset(root);
    QCOMPARE(dataset->classNames(), (std::vector<std::string>{"cats", "dogs"}));
    QCOMPARE(dataset->size(), std::size_t{3});
    // Sorted by path: "B.PNG" sorts before "a.png".
    QCOMPARE(dataset->imageName(0), std::string("cats/B.PNG"));
    QCOMPARE(dataset->imageName(1), std::string("cats/a.png"));
    QCOMPARE(dataset->imageName(2), std::string("dogs/c.bmp"));
    QCOMPARE(dataset->label(0), 0);
    QCOMPARE(dataset->label(1), 0);
    QCOMPARE(dataset->label(2), 1);
    QCOMPARE(dataset->image(0).at<cv::Vec3b>(1, 1), cv::Vec3b(0, 255, 0));
    QCOMPARE(dataset->image(1).at<cv::Vec3b>(3, 5), cv::Vec3b(0, 0, 255));
    const cv::Mat third = dataset->image(2);
    QCOMPARE(third.rows, 5);
    QCOMPARE(third.cols, 3);
    QCOMPARE(third.at<cv::Vec3b>(4, 2), cv::Vec3b(255, 0, 0));
}

void TestDataset::singleImageAndDepths()
{
    QTemporaryDir tmp;
    QVERIFY(tmp.isValid());
    const fs::path dir = tmp.path().toStdString();

    // 16-bit PNGs become 8-bit with 65535 -> 255.
    cv::Mat deep(1, 3, CV_16UC1);
    deep.at<quint16>(0, 0) = 65535;
    deep.at<quint16>(0, 1) = 257 * 100;
    deep.at<quint16>(0, 2) = 0;
    QVERIFY(cv::imwrite((dir / "deep.png").string(), deep));
    const auto single = qe::openDataset(dir / "deep.png");
    QCOMPARE(single->size(), std::size_t{1});
    QCOMPARE(single->label(0), -1);
    QVERIFY(!single->hasLabels());
    QCOMPARE(single->imageName(0), std::string("deep.png"));
    const cv::Mat image = single->image(0);
    QCOMPARE(image.type(), CV_8UC1);
    QCOMPARE(image.at<uchar>(0, 0), uchar(255));
    QCOMPARE(image.at<uchar>(0, 1), uchar(100));
    QCOMPARE(image.at<uchar>(0, 2), uchar(0));

    // Alpha is kept by the data set and dropped by the preprocessing.
    const cv::Mat bgra(2, 2, CV_8UC4, cv::Scalar(10, 20, 30, 40));
    QVERIFY(cv::imwrite((dir / "alpha.png").string(), bgra));
    const cv::Mat decoded = qe::openDataset(dir / "alpha.png")->image(0);
    QCOMPARE(decoded.type(), CV_8UC4);
    qe::Preprocess bgr;
    bgr.color = qe::ColorOrder::Bgr;
    std::vector<float> out(3 * 2 * 2);
    bgr.apply(decoded, 3, 2, 2, out.data());
    QCOMPARE(out[0], 10.f);
    QCOMPARE(out[4], 20.f);
    QCOMPARE(out[8], 30.f);
}

void TestDataset::undecodableImage()
{
    QTemporaryDir tmp;
    QVERIFY(tmp.isValid());
    const fs::path dir = tmp.path().toStdString();
    writeFile(dir / "broken.png", QByteArray("this is not a PNG file at all"));
    QVERIFY(cv::imwrite((dir / "good.png").string(), cv::Mat(3, 3, CV_8UC1, cv::Scalar(9))));

    // Decoding is lazy, so opening the folder works and the bad image fails when it is used.
    const auto dataset = qe::openDataset(dir);
    QCOMPARE(dataset->size(), std::size_t{2});
    QCOMPARE(dataset->imageName(0), std::string("broken.png"));
    QString message = errorOf([&] { dataset->image(0); });
    QVERIFY2(message.contains("broken.png") && message.contains("decode"), qPrintable(message));

    // The batch loop runs under OpenMP; the error must still arrive as a qe::Error.
    message = errorOf([&] { qe::makeBatch(*dataset, 0, 2, qe::Preprocess::mnistStyle(), 1, 3, 3); });
    QVERIFY2(message.contains("broken.png"), qPrintable(message));
}

// The size read from an image's header, before decoding, against what OpenCV decodes: the shared
// ImageNet JPEGs and VWW PNGs, and files OpenCV writes in the other layouts (gray, 16-bit, alpha,
// progressive JPEG, 24- and 32-bit BMP).
void TestDataset::imageHeaderMatchesOpenCv()
{
    QTemporaryDir tmp;
    QVERIFY(tmp.isValid());
    const fs::path dir = tmp.path().toStdString();
    std::vector<fs::path> files;
    auto write = [&](const std::string& name, const cv::Mat& image, const std::vector<int>& params = {}) {
        QVERIFY(cv::imwrite((dir / name).string(), image, params));
        files.push_back(dir / name);
    };
    write("gray.png", cv::Mat(7, 5, CV_8UC1, cv::Scalar(3)));
    write("sixteen.png", cv::Mat(4, 9, CV_16UC3, cv::Scalar(1000, 2, 60000)));
    write("alpha.png", cv::Mat(6, 3, CV_8UC4, cv::Scalar(1, 2, 3, 4)));
    write("gray.jpg", cv::Mat(17, 11, CV_8UC1, cv::Scalar(50)));
    write("progressive.jpg", cv::Mat(33, 20, CV_8UC3, cv::Scalar(10, 200, 30)), {cv::IMWRITE_JPEG_PROGRESSIVE, 1});
    write("colour.bmp", cv::Mat(5, 13, CV_8UC3, cv::Scalar(7, 8, 9)));
    write("alpha.bmp", cv::Mat(3, 2, CV_8UC4, cv::Scalar(7, 8, 9, 10)));
    write("gray.bmp", cv::Mat(4, 4, CV_8UC1, cv::Scalar(70)));
    for (const char* folder : {"imagenet_val_227_300", "vww_coco_96_200"})
        if (fs::is_directory(sharedData(folder)))
            for (const auto& entry : fs::directory_iterator(sharedData(folder)))
                if (entry.path().extension() == ".JPEG" || entry.path().extension() == ".png")
                    files.push_back(entry.path());
    if (files.size() < 100)
        qInfo("../shared/data is absent: only the images written here are checked");

    for (const fs::path& file : files) {
        std::ifstream in(file, std::ios::binary);
        const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const std::optional<qe::ImageHeader> header = qe::readImageHeader(bytes.data(), bytes.size());
        QVERIFY2(header, qPrintable(QString::fromStdString(file.string())));
        const cv::Mat decoded = cv::imread(file.string(), cv::IMREAD_UNCHANGED);
        QVERIFY(!decoded.empty());
        const QString what = QString::fromStdString(file.filename().string());
        QVERIFY2(header->width == std::uint32_t(decoded.cols) && header->height == std::uint32_t(decoded.rows), qPrintable(what));
        // A BMP's header gives bits per pixel, not what OpenCV makes of them (a gray palette decodes
        // to one channel, 32 bits to three): there the header gives an upper bound.
        const std::uint64_t decodedBytes = decoded.total() * decoded.elemSize();
        if (header->format == "BMP") {
            QVERIFY2(header->channels >= decoded.channels(), qPrintable(what));
            QVERIFY2(header->decodedBytes() >= decodedBytes, qPrintable(what));
        } else {
            QVERIFY2(header->channels == decoded.channels(), qPrintable(what));
            QCOMPARE(header->decodedBytes(), decodedBytes);
        }
        // Cut anywhere inside the header, the size is unknown rather than wrong.
        for (std::size_t cut : {std::size_t{0}, std::size_t{1}, std::size_t{8}, std::size_t{20}})
            QVERIFY(!qe::readImageHeader(bytes.data(), cut));
    }
}

void TestDataset::badDataFiles_data()
{
    QTest::addColumn<QString>("fileName");
    QTest::addColumn<QByteArray>("content");
    QTest::addColumn<QString>("expected");

    QTest::newRow("truncated idx") << "trunc-images-idx3-ubyte"
                                   << idxHeader(0x803, {10, 28, 28}) + QByteArray(100, '\0') << "truncated";
    QTest::newRow("idx trailing bytes") << "long-images-idx3-ubyte"
                                        << idxHeader(0x803, {1, 2, 2}) + QByteArray(9, '\0') << "unexpected bytes";
    QTest::newRow("idx wrong magic") << "bad-images-idx3-ubyte" << idxHeader(0x804, {1, 2, 2}) + QByteArray(4, '\0')
                                     << "magic";
    QTest::newRow("idx labels as images") << "x-labels-idx1-ubyte" << idxHeader(0x801, {3}) + QByteArray(3, '\0')
                                          << "0x00000803";
    QTest::newRow("idx short header") << "short-images-idx3-ubyte" << QByteArray("\0\0\x08\x03\0\0", 6)
                                      << "header";
    QTest::newRow("not a data set") << "notes.txt" << QByteArray("hello world") << "magic";
    QTest::newRow("cifar wrong size") << "data_batch_1.bin" << QByteArray(3073 * 2 + 5, '\0') << "3073";
    QTest::newRow("cifar empty") << "empty.bin" << QByteArray() << "3073";
    QByteArray badLabel(3073, '\0');
    badLabel[0] = 42;
    QTest::newRow("cifar label out of range") << "batch.bin" << badLabel << "label 42";
}

void TestDataset::badDataFiles()
{
    QFETCH(QString, fileName);
    QFETCH(QByteArray, content);
    QFETCH(QString, expected);
    QTemporaryDir tmp;
    QVERIFY(tmp.isValid());
    const fs::path path = fs::path(tmp.path().toStdString()) / fileName.toStdString();
    writeFile(path, content);

    const QString message = errorOf([&] { qe::openDataset(path); });
    QVERIFY2(message.contains(fileName), qPrintable(message));
    QVERIFY2(message.contains(expected), qPrintable(message));
}

void TestDataset::labelsCsvRejected_data()
{
    QTest::addColumn<QByteArray>("csv");
    QTest::addColumn<QStringList>("expected");

    QTest::newRow("missing image") << QByteArray("file,label\na.png,1\nmissing.png,2\n")
                                   << QStringList{"labels.csv line 3", "missing.png"};
    QTest::newRow("label not integer") << QByteArray("file,label\na.png,1\nb.png,x\n")
                                       << QStringList{"labels.csv line 3: label 'x' is not an integer"};
    QTest::newRow("no header row") << QByteArray("a.png,1\nb.png,0\n") << QStringList{"labels.csv line 1", "header"};
    QTest::newRow("too few columns") << QByteArray("file,label\na.png\n") << QStringList{"labels.csv line 2"};
    QTest::newRow("listed twice") << QByteArray("file,label\na.png,1\n\na.png,2\n")
                                  << QStringList{"labels.csv line 4", "twice", "line 2"};
    QTest::newRow("unterminated quote") << QByteArray("file,label\n\"a.png,1\n") << QStringList{"labels.csv line 2"};
    QTest::newRow("empty file") << QByteArray() << QStringList{"labels.csv", "empty"};
}

void TestDataset::labelsCsvRejected()
{
    QFETCH(QByteArray, csv);
    QFETCH(QStringList, expected);
    QTemporaryDir tmp;
    QVERIFY(tmp.isValid());
    const fs::path dir = tmp.path().toStdString();
    QVERIFY(cv::imwrite((dir / "a.png").string(), cv::Mat(2, 2, CV_8UC1, cv::Scalar(1))));
    QVERIFY(cv::imwrite((dir / "b.png").string(), cv::Mat(2, 2, CV_8UC1, cv::Scalar(2))));
    writeFile(dir / "labels.csv", csv);

    const QString message = errorOf([&] { qe::openDataset(dir); });
    for (const QString& part : expected)
        QVERIFY2(message.contains(part), qPrintable(message));
}

void TestDataset::labelsCsvAccepted()
{
    QTemporaryDir tmp;
    QVERIFY(tmp.isValid());
    const fs::path dir = tmp.path().toStdString();
    for (const char* name : {"a.png", "b.png", "c.png"})
        QVERIFY(cv::imwrite((dir / name).string(), cv::Mat(2, 2, CV_8UC1, cv::Scalar(1))));

    // A spreadsheet export: byte order mark, CRLF, a quoted comma, the label column not second.
    const QByteArray csv("\xEF\xBB\xBFimage,class,label\r\nc.png,\"cat, big\",2\r\nb.png,dog,0\r\n");
    writeFile(dir / "labels.csv", csv);
    auto dataset = qe::openDataset(dir);
    QCOMPARE(dataset->size(), std::size_t{3});
    QCOMPARE(dataset->imageName(0), std::string("c.png"));
    QCOMPARE(dataset->imageName(1), std::string("b.png"));
    QCOMPARE(dataset->imageName(2), std::string("a.png"));  // not in the file: last, unlabelled
    QCOMPARE(dataset->label(0), 2);
    QCOMPARE(dataset->label(1), 0);
    QCOMPARE(dataset->label(2), -1);
    QCOMPARE(dataset->classNames(), (std::vector<std::string>{"dog", "1", "cat, big"}));

    // A labels file elsewhere, passed explicitly, takes the place of labels.csv.
    QTemporaryDir other;
    QVERIFY(other.isValid());
    const fs::path labels = fs::path(other.path().toStdString()) / "my_labels.csv";
    writeFile(labels, "filename,label\na.png,5\n");
    dataset = qe::openDataset(dir, labels);
    QCOMPARE(dataset->imageName(0), std::string("a.png"));
    QCOMPARE(dataset->label(0), 5);
    QCOMPARE(dataset->label(1), -1);
}

void TestDataset::makeBatchMatchesPixels()
{
    const fs::path path = sharedData("mnist") / "t10k-images-idx3-ubyte.gz";
    SKIP_IF_MISSING(path);
    const auto dataset = qe::openDataset(path);
    const qe::Preprocess preprocess = qe::Preprocess::mnistStyle();

    const std::size_t first = 100, count = 8;
    const qe::Tensor batch = qe::makeBatch(*dataset, first, count, preprocess, 1, 28, 28);
    QCOMPARE(batch.shape(), (qe::Shape{8, 1, 28, 28}));
    const float* values = batch.data<float>();
    const float scale = float(1.0 / 255.0);
    for (std::size_t i = 0; i < count; ++i) {
        const cv::Mat image = dataset->image(first + i);
        for (int y = 0; y < 28; ++y)
            for (int x = 0; x < 28; ++x)
                QCOMPARE(values[i * 784 + std::size_t(y * 28 + x)], float(image.at<uchar>(y, x)) * scale);
    }

    QString message = errorOf([&] { qe::makeBatch(*dataset, 9998, 5, preprocess, 1, 28, 28); });
    QVERIFY2(message.contains("out of range"), qPrintable(message));
    // A gray preprocessing cannot feed a 3-channel model; the message names the image.
    message = errorOf([&] { qe::makeBatch(*dataset, first, 4, preprocess, 3, 28, 28); });
    QVERIFY2(message.contains("#100") && message.contains("channel"), qPrintable(message));
}

// ---------------------------------------------------------------------------------------------
// Preprocessing

void TestDataset::presets()
{
    const auto presets = qe::Preprocess::presets();
    QCOMPARE(presets.size(), std::size_t{4});
    QCOMPARE(presets[0].first, std::string("MNIST-style (gray, /255)"));
    QCOMPARE(presets[1].first, std::string("ImageNet-style (RGB, mean/std)"));
    QCOMPARE(presets[2].first, std::string("Raw 0..255 RGB"));
    QCOMPARE(presets[3].first, std::string("[-1,1] RGB ((p-128)/128)"));

    const qe::Preprocess imagenet = qe::Preprocess::imagenetStyle();
    QCOMPARE(imagenet.resizeShorter, 256);
    QCOMPARE(imagenet.cropFraction, 0.875);
    QCOMPARE(imagenet.mean, (std::vector<float>{0.485f, 0.456f, 0.406f}));
    QCOMPARE(imagenet.stdDev, (std::vector<float>{0.229f, 0.224f, 0.225f}));

    // The [-1,1] preset on the two extreme pixels.
    cv::Mat extremes(1, 2, CV_8UC1);
    extremes.at<uchar>(0, 0) = 0;
    extremes.at<uchar>(0, 1) = 255;
    std::vector<float> out(3 * 2);
    presets[3].second.apply(extremes, 3, 1, 2, out.data());
    QCOMPARE(out[0], -1.f);
    QCOMPARE(out[1], 127.f / 128.f);
    presets[2].second.apply(extremes, 3, 1, 2, out.data());
    QCOMPARE(out[5], 255.f);
}

void TestDataset::colourConversion_data()
{
    QTest::addColumn<QByteArray>("pixel");  // one pixel in OpenCV order
    QTest::addColumn<QString>("color");
    QTest::addColumn<QList<float>>("expected");

    QTest::newRow("bgr -> rgb") << QByteArray("\x0a\x14\x1e", 3) << "rgb" << QList<float>{30, 20, 10};
    QTest::newRow("bgr -> bgr") << QByteArray("\x0a\x14\x1e", 3) << "bgr" << QList<float>{10, 20, 30};
    QTest::newRow("bgra -> rgb") << QByteArray("\x0a\x14\x1e\x63", 4) << "rgb" << QList<float>{30, 20, 10};
    QTest::newRow("gray -> rgb replicates") << QByteArray("\x07", 1) << "rgb" << QList<float>{7, 7, 7};
    // ITU-R BT.601 luma: 0.299 * 255 = 76.2 for pure red, 0.587 * 255 = 149.7 for pure green.
    QTest::newRow("red -> gray") << QByteArray("\x00\x00\xff", 3) << "gray" << QList<float>{76};
    QTest::newRow("green -> gray") << QByteArray("\x00\xff\x00", 3) << "gray" << QList<float>{150};
}

void TestDataset::colourConversion()
{
    QFETCH(QByteArray, pixel);
    QFETCH(QString, color);
    QFETCH(QList<float>, expected);

    const nlohmann::json json = {
        {"format", "quantexplorer-preprocess"}, {"version", 1}, {"color", color.toStdString()}};
    const qe::Preprocess preprocess = qe::Preprocess::fromJson(json, "test");
    const cv::Mat image(1, 1, CV_8UC(pixel.size()), pixel.data());
    std::vector<float> out(std::size_t(expected.size()), -1.f);
    preprocess.apply(image, int(expected.size()), 1, 1, out.data());
    for (int c = 0; c < expected.size(); ++c)
        QCOMPARE(out[std::size_t(c)], expected[c]);
}

void TestDataset::meanStdOnKnownPixels()
{
    // Two pixels (B, G, R) = (10, 20, 30) and (255, 0, 128).
    cv::Mat image(1, 2, CV_8UC3);
    image.at<cv::Vec3b>(0, 0) = cv::Vec3b(10, 20, 30);
    image.at<cv::Vec3b>(0, 1) = cv::Vec3b(255, 0, 128);
    qe::Preprocess p;
    p.color = qe::ColorOrder::Rgb;
    p.scale = 0.5;
    p.mean = {10.f, 5.f, -4.f};
    p.stdDev = {2.f, 0.5f, 4.f};
    std::vector<float> out(6);
    p.apply(image, 3, 1, 2, out.data());
    // NCHW with channels R, G, B: value = (pixel * 0.5 - mean) / std.
    const std::vector<float> expected = {
        (15.f - 10.f) / 2.f, (64.f - 10.f) / 2.f,   // R: 30, 128
        (10.f - 5.f) / 0.5f, (0.f - 5.f) / 0.5f,    // G: 20, 0
        (5.f + 4.f) / 4.f,   (127.5f + 4.f) / 4.f,  // B: 10, 255
    };
    QCOMPARE(out, expected);

    // One mean/std value applies to every channel.
    p.mean = {1.f};
    p.stdDev = {0.25f};
    p.apply(image, 3, 1, 2, out.data());
    QCOMPARE(out[1], (64.f - 1.f) / 0.25f);
    QCOMPARE(out[5], (127.5f - 1.f) / 0.25f);
}

void TestDataset::resizeShorterKeepsAspect()
{
    // A 20x40 horizontal ramp; resizing the shorter side to 10 must give 10x20, where bilinear
    // halving averages column pairs: (6 * 2x + 6 * (2x + 1)) / 2 = 12x + 3.
    cv::Mat ramp(20, 40, CV_8UC1);
    for (int y = 0; y < 20; ++y)
        for (int x = 0; x < 40; ++x)
            ramp.at<uchar>(y, x) = uchar(6 * x);
    qe::Preprocess p;
    p.color = qe::ColorOrder::Gray;
    p.resizeShorter = 10;
    std::vector<float> out(10 * 20);
    p.apply(ramp, 1, 10, 20, out.data());
    for (int y = 0; y < 10; ++y)
        for (int x = 0; x < 20; ++x)
            QCOMPARE(out[std::size_t(y * 20 + x)], float(12 * x + 3));
}

void TestDataset::centralCropMatchesOpenCv_data()
{
    QTest::addColumn<int>("resizeShorter");
    QTest::addColumn<double>("cropFraction");
    QTest::addColumn<int>("size");
    QTest::addColumn<int>("cropOffset");  // tf.image.central_crop's offset, worked out by hand

    QTest::newRow("227, crop 0.875, to 128") << 0 << 0.875 << 128 << 14;   // int(28.375 / 2) = 14
    QTest::newRow("resize 256, crop 224") << 256 << 0.875 << 224 << 16;     // int(32 / 2) = 16
    QTest::newRow("no crop, to 96") << 0 << 1.0 << 96 << 0;
    QTest::newRow("resize 100, crop 0.33, to 40") << 100 << 0.33 << 40 << 33;  // int(67 / 2) = 33
}

void TestDataset::centralCropMatchesOpenCv()
{
    QFETCH(int, resizeShorter);
    QFETCH(double, cropFraction);
    QFETCH(int, size);
    QFETCH(int, cropOffset);
    const fs::path path = sharedData("imagenet_val_227_300") / "ILSVRC2012_val_00000347.JPEG";
    SKIP_IF_MISSING(path);

    const cv::Mat bgr = cv::imread(path.string(), cv::IMREAD_COLOR);
    QCOMPARE(bgr.rows, 227);
    QCOMPARE(bgr.cols, 227);

    // Independent pipeline: square image, so the shorter-side resize is a plain resize.
    cv::Mat expectedImage = bgr;
    if (resizeShorter > 0)
        cv::resize(bgr, expectedImage, cv::Size(resizeShorter, resizeShorter), 0, 0, cv::INTER_LINEAR);
    const int side = expectedImage.rows;
    const int offset = int(std::floor((side - side * cropFraction) / 2.0));
    QCOMPARE(offset, cropOffset);
    cv::Mat cropped = expectedImage(cv::Rect(offset, offset, side - 2 * offset, side - 2 * offset));
    cv::Mat resized = cropped;
    if (cropped.rows != size)
        cv::resize(cropped, resized, cv::Size(size, size), 0, 0, cv::INTER_LINEAR);

    qe::Preprocess p = qe::Preprocess::imagenetStyle();
    p.resizeShorter = resizeShorter;
    p.cropFraction = cropFraction;
    std::vector<float> out(std::size_t(3 * size * size));
    p.apply(bgr, 3, size, size, out.data());

    const float mean[3] = {0.485f, 0.456f, 0.406f};
    const float stdDev[3] = {0.229f, 0.224f, 0.225f};
    float maxError = 0.f;
    for (int c = 0; c < 3; ++c)
        for (int y = 0; y < size; ++y)
            for (int x = 0; x < size; ++x) {
                const float pixel = resized.at<cv::Vec3b>(y, x)[2 - c];  // RGB plane c is BGR channel 2 - c
                const float expected = (pixel * float(1.0 / 255.0) - mean[c]) / stdDev[c];
                maxError = std::max(maxError, std::abs(out[std::size_t((c * size + y) * size + x)] - expected));
            }
    QVERIFY2(maxError < 1e-6f, qPrintable(QStringLiteral("max error %1").arg(maxError)));
}

void TestDataset::applyRejected()
{
    const cv::Mat color(4, 4, CV_8UC3, cv::Scalar(1, 2, 3));
    std::vector<float> out(3 * 4 * 4);

    qe::Preprocess gray = qe::Preprocess::mnistStyle();
    QVERIFY(errorOf([&] { gray.apply(color, 3, 4, 4, out.data()); }).contains("channel"));
    qe::Preprocess rgb = qe::Preprocess::imagenetStyle();
    QVERIFY(errorOf([&] { rgb.apply(color, 1, 4, 4, out.data()); }).contains("channel"));
    rgb.mean = {0.f, 0.f};
    QVERIFY(errorOf([&] { rgb.apply(color, 3, 4, 4, out.data()); }).contains("mean"));
    rgb = qe::Preprocess::imagenetStyle();
    rgb.stdDev = {1.f, 0.f, 1.f};
    QVERIFY(errorOf([&] { rgb.apply(color, 3, 4, 4, out.data()); }).contains("std"));
    rgb = qe::Preprocess::imagenetStyle();
    QVERIFY(!errorOf([&] { rgb.apply(cv::Mat(), 3, 4, 4, out.data()); }).startsWith('<'));
    QVERIFY(!errorOf([&] { rgb.apply(cv::Mat(4, 4, CV_16UC3), 3, 4, 4, out.data()); }).startsWith('<'));
    QVERIFY(!errorOf([&] { rgb.apply(cv::Mat(4, 4, CV_8UC2), 3, 4, 4, out.data()); }).startsWith('<'));
}

void TestDataset::jsonRoundTrip()
{
    // The example from preprocess.h, as a user would write it.
    const auto documented = nlohmann::json::parse(R"({ "format": "quantexplorer-preprocess", "version": 1,
        "color": "gray", "resize_shorter": 0, "crop_fraction": 1.0,
        "scale": 0.00392156862745098, "mean": [0.0], "std": [1.0],
        "class_names": ["T-shirt/top", "Trouser"] })");
    const qe::Preprocess fromDoc = qe::Preprocess::fromJson(documented, "doc");
    QVERIFY(fromDoc.color == qe::ColorOrder::Gray);
    QCOMPARE(fromDoc.scale, 1.0 / 255.0);
    QCOMPARE(fromDoc.classNames, (std::vector<std::string>{"T-shirt/top", "Trouser"}));

    qe::Preprocess p = qe::Preprocess::imagenetStyle();
    p.color = qe::ColorOrder::Bgr;
    p.classNames = {"cat", "dog"};
    const nlohmann::json json = p.toJson();
    QCOMPARE(json.at("format").get<std::string>(), std::string("quantexplorer-preprocess"));
    QCOMPARE(json.at("color").get<std::string>(), std::string("bgr"));
    const qe::Preprocess q = qe::Preprocess::fromJson(nlohmann::json::parse(json.dump()), "round trip");
    QVERIFY(q.color == p.color);
    QCOMPARE(q.resizeShorter, p.resizeShorter);
    QCOMPARE(q.cropFraction, p.cropFraction);
    QCOMPARE(q.scale, p.scale);
    QCOMPARE(q.mean, p.mean);
    QCOMPARE(q.stdDev, p.stdDev);
    QCOMPARE(q.classNames, p.classNames);
    QCOMPARE(q.toJson(), json);
}

void TestDataset::jsonRejected_data()
{
    QTest::addColumn<QByteArray>("fields");  // added to a valid "format" and "version"
    QTest::addColumn<QString>("expected");

    QTest::newRow("unknown key") << QByteArray(R"("colour": "rgb")") << "colour";
    QTest::newRow("bad color") << QByteArray(R"("color": "hsv")") << "color";
    QTest::newRow("color not a string") << QByteArray(R"("color": 3)") << "color";
    QTest::newRow("resize not an integer") << QByteArray(R"("resize_shorter": 2.5)") << "resize_shorter";
    QTest::newRow("resize negative") << QByteArray(R"("resize_shorter": -1)") << "resize_shorter";
    QTest::newRow("crop zero") << QByteArray(R"("crop_fraction": 0)") << "crop_fraction";
    QTest::newRow("crop above one") << QByteArray(R"("crop_fraction": 1.5)") << "crop_fraction";
    QTest::newRow("crop a string") << QByteArray(R"("crop_fraction": "0.875")") << "crop_fraction";
    QTest::newRow("scale a string") << QByteArray(R"("scale": "1/255")") << "scale";
    QTest::newRow("mean two values for rgb") << QByteArray(R"("color": "rgb", "mean": [0.5, 0.5])") << "mean";
    QTest::newRow("mean three values for gray") << QByteArray(R"("color": "gray", "mean": [1, 2, 3])") << "mean";
    QTest::newRow("mean empty") << QByteArray(R"("mean": [])") << "mean";
    QTest::newRow("std zero") << QByteArray(R"("std": [0.2, 0.0, 0.2])") << "std";
    QTest::newRow("std not an array") << QByteArray(R"("std": 0.5)") << "std";
    QTest::newRow("class names not strings") << QByteArray(R"("class_names": [1, 2])") << "class_names";
    QTest::newRow("wrong version") << QByteArray(R"("version": 2)") << "version";
    QTest::newRow("wrong format") << QByteArray(R"("format": "something-else")") << "format";
}

void TestDataset::jsonRejected()
{
    QFETCH(QByteArray, fields);
    QFETCH(QString, expected);
    nlohmann::json json = {{"format", "quantexplorer-preprocess"}, {"version", 1}};
    json.update(nlohmann::json::parse("{" + fields.toStdString() + "}"));

    const QString message = errorOf([&] { qe::Preprocess::fromJson(json, "model.preprocess.json"); });
    QVERIFY2(message.contains("model.preprocess.json"), qPrintable(message));
    QVERIFY2(message.contains(expected), qPrintable(message));

    // Missing "format"/"version" and non-objects are rejected as well.
    QVERIFY(errorOf([] { qe::Preprocess::fromJson(nlohmann::json{{"version", 1}}, "f"); }).contains("format"));
    QVERIFY(errorOf([] { qe::Preprocess::fromJson(nlohmann::json::array(), "f"); }).contains("object"));
}

void TestDataset::saveIsAtomicAndSidecarWorks()
{
    QTemporaryDir tmp;
    QVERIFY(tmp.isValid());
    const fs::path dir = tmp.path().toStdString();
    const fs::path model = dir / "net.onnx";
    const fs::path sidecar = qe::Preprocess::sidecarPath(model);
    QCOMPARE(sidecar, dir / "net.preprocess.json");
    QVERIFY(!qe::Preprocess::loadSidecar(model).has_value());

    writeFile(sidecar, "old contents that are not JSON");
    qe::Preprocess p = qe::Preprocess::mnistStyle();
    p.classNames = {"zero", "one"};
    p.save(sidecar);

    QCOMPARE(QDir(tmp.path()).entryList(QDir::Files), QStringList{"net.preprocess.json"});  // no .tmp left
    const auto loaded = qe::Preprocess::loadSidecar(model);
    QVERIFY(loaded.has_value());
    QCOMPARE(loaded->toJson(), p.toJson());

    QString message = errorOf([&] { p.save(dir / "no-such-folder" / "x.preprocess.json"); });
    QVERIFY2(message.contains("no-such-folder"), qPrintable(message));

    writeFile(dir / "broken.preprocess.json", "{ \"format\": ");
    message = errorOf([&] { qe::Preprocess::load(dir / "broken.preprocess.json"); });
    QVERIFY2(message.contains("broken.preprocess.json") && message.contains("JSON"), qPrintable(message));
}

QTEST_APPLESS_MAIN(TestDataset)
#include "tst_dataset.moc"
