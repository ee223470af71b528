// Files from elsewhere, broken on purpose (issue 12): each must give the CLI's exit code 2 and a
// message naming the file and what is wrong, never a crash, a hang or an out-of-memory kill.
// The files are made here from the demo model and small hand-written protobufs.

#include "test_support.h"

#include <onnx/onnx_pb.h>

#include <QProcess>
#include <QProcessEnvironment>
#include <QTemporaryDir>
#include <QtTest>

#include <filesystem>
#include <map>
#include <fstream>
#include <random>

namespace fs = std::filesystem;

namespace {

struct CliResult {
    int exitCode = -1;
    QByteArray out, err;
};

CliResult runCli(const QStringList& args, const QString& memoryBudgetMb = {})
{
    QProcess process;
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    if (!memoryBudgetMb.isEmpty())
        env.insert("QE_MEMORY_BUDGET_MB", memoryBudgetMb);
    process.setProcessEnvironment(env);
    process.start(QString::fromStdString((qe::test::binaryDir() / "app" / "quantexplorer-cli").string()), args);
    if (!process.waitForFinished(120000)) {
        process.kill();
        process.waitForFinished();
        return {-2, {}, "did not finish within 2 minutes"};
    }
    return {process.exitStatus() == QProcess::NormalExit ? process.exitCode() : -1, process.readAllStandardOutput(),
            process.readAllStandardError()};
}

void writeBytes(const fs::path& path, const std::string& bytes)
{
    std::ofstream(path, std::ios::binary) << bytes;
}

std::string readBytes(const fs::path& path)
{
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// x[1,C,8,8] -> Conv(weights [4,wc,3,3]) -> y: a model small enough to write by hand.
onnx::ModelProto convModel(int inputChannels, int weightChannels)
{
    onnx::ModelProto model;
    model.set_ir_version(8);
    model.add_opset_import()->set_version(13);
    onnx::GraphProto& g = *model.mutable_graph();
    auto* x = g.add_input();
    x->set_name("x");
    auto* tt = x->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    for (std::int64_t d : {1, inputChannels, 8, 8})
        tt->mutable_shape()->add_dim()->set_dim_value(d);
    auto* w = g.add_initializer();
    w->set_name("w");
    w->set_data_type(onnx::TensorProto::FLOAT);
    for (std::int64_t d : {4, weightChannels, 3, 3})
        w->add_dims(d);
    w->set_raw_data(std::string(static_cast<std::size_t>(4 * weightChannels * 9) * sizeof(float), '\0'));
    auto* conv = g.add_node();
    conv->set_op_type("Conv");
    conv->set_name("conv1");
    conv->add_input("x");
    conv->add_input("w");
    conv->add_output("y");
    g.add_output()->set_name("y");
    return model;
}

std::string serialize(const onnx::ModelProto& model)
{
    std::string bytes;
    model.SerializeToString(&bytes);
    return bytes;
}

// Two Relu nodes feeding each other.
onnx::ModelProto cycleModel()
{
    onnx::ModelProto model = convModel(3, 3);
    onnx::GraphProto& g = *model.mutable_graph();
    for (auto [name, in, out] : {std::tuple{"relu_a", "b", "a"}, std::tuple{"relu_b", "a", "b"}}) {
        auto* n = g.add_node();
        n->set_op_type("Relu");
        n->set_name(name);
        n->add_input(in);
        n->add_output(out);
    }
    return model;
}

// The conv model whose weights live in an external file named `location`.
onnx::ModelProto externalDataModel(const std::string& location)
{
    onnx::ModelProto model = convModel(3, 3);
    auto* w = model.mutable_graph()->mutable_initializer(0);
    w->clear_raw_data();
    w->set_data_location(onnx::TensorProto::EXTERNAL);
    auto* entry = w->add_external_data();
    entry->set_key("location");
    entry->set_value(location);
    return model;
}

std::string bigEndian32(std::uint32_t v)
{
    return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
}

const QString kDemoModel = QString::fromStdString((qe::test::sourceDir() / "resources/models/fashion_cnn.onnx").string());
const QString kFashionTest = QStringLiteral(QE_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz");

}  // namespace

class TestBadInput : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void refused_data();
    void refused();
    void externalDataInsideTheFolderStillLoads();

private:
    QTemporaryDir dir_;
    fs::path path(const std::string& name) const { return fs::path(dir_.path().toStdString()) / name; }
    QString qpath(const std::string& name) const { return QString::fromStdString(path(name).string()); }
};

void TestBadInput::initTestCase()
{
    QVERIFY(dir_.isValid());
    const std::string demo = readBytes(kDemoModel.toStdString());
    QVERIFY(demo.size() > 1000);

    // Models.
    writeBytes(path("truncated.onnx"), demo.substr(0, demo.size() / 3));
    std::mt19937 rng(12);
    std::string random(4096, '\0');
    for (char& c : random)
        c = static_cast<char>(rng());
    writeBytes(path("random.onnx"), random);
    writeBytes(path("cycle.onnx"), serialize(cycleModel()));
    writeBytes(path("conv_channels.onnx"), serialize(convModel(3, 5)));
    {
        onnx::ModelProto model = convModel(3, 3);
        auto* w = model.mutable_graph()->mutable_initializer(0);
        w->clear_dims();
        w->add_dims(1000000);
        w->add_dims(1000000);  // 1e12 elements in 108 bytes
        writeBytes(path("huge_initializer.onnx"), serialize(model));
        w->clear_raw_data();
        w->clear_dims();
        w->add_dims(-3);
        w->add_dims(2);
        writeBytes(path("negative_dim.onnx"), serialize(model));
    }
    {
        onnx::ModelProto model = convModel(3, 3);
        model.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(2)->set_dim_value(0);
        writeBytes(path("zero_dim_input.onnx"), serialize(model));
    }
    {
        // A 256 MiB initializer with all its bytes: refused by a 64 MiB budget before it is allocated.
        onnx::ModelProto model = convModel(3, 3);
        auto* w = model.mutable_graph()->mutable_initializer(0);
        w->clear_dims();
        w->add_dims(64);
        w->add_dims(1024);
        w->add_dims(1024);
        w->set_raw_data(std::string(std::size_t{256} << 20, '\0'));
        writeBytes(path("over_budget.onnx"), serialize(model));
    }
    // External data that escapes the model's folder.
    fs::create_directories(path("outside"));
    fs::create_directories(path("model_dir"));
    writeBytes(path("outside/weights.bin"), std::string(4 * 3 * 9 * sizeof(float), '\0'));
    writeBytes(path("model_dir/absolute.onnx"), serialize(externalDataModel(path("outside/weights.bin").string())));
    writeBytes(path("model_dir/dotdot.onnx"), serialize(externalDataModel("../outside/weights.bin")));
    fs::create_symlink(path("outside/weights.bin"), path("model_dir/link.bin"));
    writeBytes(path("model_dir/symlink.onnx"), serialize(externalDataModel("link.bin")));
    {
        onnx::ModelProto model = externalDataModel("inside.bin");
        auto* entry = model.mutable_graph()->mutable_initializer(0)->add_external_data();
        entry->set_key("offset");
        entry->set_value("-4");
        writeBytes(path("model_dir/negative_offset.onnx"), serialize(model));
    }
    writeBytes(path("model_dir/inside.bin"), std::string(4 * 3 * 9 * sizeof(float), '\0'));
    writeBytes(path("model_dir/inside.onnx"), serialize(externalDataModel("inside.bin")));

    // Data sets.
    writeBytes(path("short-images-idx3-ubyte"),
               bigEndian32(0x803) + bigEndian32(100) + bigEndian32(28) + bigEndian32(28) + std::string(28 * 28 * 3, '\0'));
    writeBytes(path("billion-images-idx3-ubyte"),
               bigEndian32(0x803) + bigEndian32(1000000000) + bigEndian32(28) + bigEndian32(28) + std::string(28 * 28, '\0'));
    fs::create_directories(path("text_png"));
    writeBytes(path("text_png/text.png"), "this is a text file, not a PNG\n");
    writeBytes(path("text_png/labels.csv"), "file,label\ntext.png,3\n");
    writeBytes(path("short.bin"), std::string(3073 * 2 - 7, '\1'));
    fs::create_directories(path("corrupt_images"));
    writeBytes(path("corrupt_images/a.png"), "\x89PNG\r\n\x1a\n truncated");
    writeBytes(path("corrupt_images/labels.csv"), "file,label\na.png,1\n");
    // Images of a few bytes whose headers declare 60000 x 60000 pixels (10 GB decoded): refused
    // from the header, before OpenCV allocates anything.
    const std::string side = bigEndian32(60000);
    const std::string sideLittleEndian(side.rbegin(), side.rend());
    const std::map<std::string, std::string> gigapixelImages = {
        {"huge.png", std::string("\x89PNG\r\n\x1a\n", 8) + bigEndian32(13) + "IHDR" + side + side + std::string("\x08\x02\0\0\0", 5) +
                         std::string(4, '\0')},
        {"huge.jpg", std::string("\xff\xd8\xff\xc0\x00\x11\x08", 7) + side.substr(2) + side.substr(2) + std::string("\x03", 1) +
                         std::string(9, '\1')},
        {"huge.bmp", "BM" + std::string(12, '\0') + std::string("\x28\0\0\0", 4) + sideLittleEndian + sideLittleEndian +
                         std::string("\x01\x00\x18\x00", 4) + std::string(24, '\0')},
    };
    for (const auto& [name, bytes] : gigapixelImages) {
        const std::string folder = "gigapixel_" + name.substr(name.size() - 3);
        fs::create_directories(path(folder));
        writeBytes(path(folder + "/" + name), bytes);
        writeBytes(path(folder + "/labels.csv"), "file,label\n" + name + ",1\n");
    }
    fs::create_directories(path("bad_csv"));
    writeBytes(path("bad_csv/labels.csv"), "file,label\na.png,seven\n");
    fs::copy_file(kDemoModel.toStdString(), path("bad_csv/a.png"));  // never read: the CSV fails first

    // Configurations and sidecars.
    writeBytes(path("bits99.json"),
               R"({"format": "quantexplorer-config", "version": 1, "default": {"weights": {"bits": 99}}})");
    writeBytes(path("nan.json"),
               R"({"format": "quantexplorer-config", "version": 1, "default": {"weights": {"bits": NaN}}})");
    writeBytes(path("not_json.json"), "{\"format\": \"quantexplorer-config\", ");
    // Valid JSON syntax, but no double holds it (the config fuzzer's first finding).
    writeBytes(path("overflow.json"),
               R"({"format": "quantexplorer-config", "version": 1, "default": {"weights": {"bits": 3E333}}})");
    fs::create_directories(path("sidecar"));
    fs::copy_file(kDemoModel.toStdString(), path("sidecar/model.onnx"));
    writeBytes(path("sidecar/model.preprocess.json"),
               R"({"format": "quantexplorer-preprocess", "version": 1, "scale": "big"})");
}

void TestBadInput::refused_data()
{
    QTest::addColumn<QStringList>("args");
    QTest::addColumn<QString>("budget");  // QE_MEMORY_BUDGET_MB, empty for the default
    QTest::addColumn<QString>("fragment");

    auto info = [](const QString& model) { return QStringList{"info", "--model", model}; };
    auto eval = [](const QString& data) { return QStringList{"eval", "--model", kDemoModel, "--data", data, "--limit", "10"}; };
    auto config = [](const QString& file) {
        return QStringList{"eval", "--model", kDemoModel, "--data", kFashionTest, "--config", file, "--limit", "10",
                           "--calib-count", "10"};
    };

    QTest::newRow("truncated model") << info(qpath("truncated.onnx")) << "" << "truncated.onnx: not a valid ONNX model";
    QTest::newRow("random bytes") << info(qpath("random.onnx")) << "" << "random.onnx:";
    QTest::newRow("cycle") << info(qpath("cycle.onnx")) << "" << "cycle.onnx: the graph has a cycle";
    QTest::newRow("conv channels") << info(qpath("conv_channels.onnx")) << "" << "conv_channels.onnx: node 'conv1'";
    QTest::newRow("1e12-element initializer") << info(qpath("huge_initializer.onnx")) << ""
                                              << "huge_initializer.onnx: initializer 'w': shape [1000000,1000000]";
    QTest::newRow("negative dimension") << info(qpath("negative_dim.onnx")) << ""
                                        << "negative_dim.onnx: initializer 'w': shape [-3,2] has a negative dimension";
    // 0 is valid ONNX (an empty tensor), but here the first layer cannot run on it: refused when the
    // model is prepared, naming the node (imageInputGeometry refuses a 0 that no layer trips over).
    QTest::newRow("zero input dimension") << QStringList{"eval", "--model", qpath("zero_dim_input.onnx"), "--data", kFashionTest,
                                                         "--limit", "10"} << ""
                                          << "zero_dim_input.onnx: node 'conv1' (Conv): the window (3) is larger than the padded input (0)";
    QTest::newRow("over the memory budget") << info(qpath("over_budget.onnx")) << "64"
                                            << "over_budget.onnx: initializer 'w': tensor of shape [64,1024,1024] needs 256 MiB, "
                                               "more than the memory budget of 64 MiB";
    QTest::newRow("external data: absolute path") << info(qpath("model_dir/absolute.onnx")) << ""
                                                  << "absolute.onnx: initializer 'w': external data location";
    QTest::newRow("external data: ..") << info(qpath("model_dir/dotdot.onnx")) << "" << "contains '..'";
    QTest::newRow("external data: symlink out") << info(qpath("model_dir/symlink.onnx")) << ""
                                                << "symlink.onnx: initializer 'w': external data file";
    QTest::newRow("external data: negative offset") << info(qpath("model_dir/negative_offset.onnx")) << ""
                                                    << "external data 'offset' is '-4'";

    QTest::newRow("idx promises more images") << eval(qpath("short-images-idx3-ubyte")) << ""
                                              << "short-images-idx3-ubyte: truncated: the header promises 100 x 28 x 28";
    QTest::newRow("idx promises a billion images") << eval(qpath("billion-images-idx3-ubyte")) << "64"
                                                   << "billion-images-idx3-ubyte: the idx header's images needs";
    QTest::newRow("PNG that is text") << eval(qpath("text_png")) << "" << "text.png: cannot decode the image: not a PNG, JPEG or BMP file";
    QTest::newRow("CIFAR batch of odd size") << eval(qpath("short.bin")) << "" << "short.bin: size 6139 bytes";
    QTest::newRow("corrupt image in a folder") << eval(qpath("corrupt_images")) << "" << "a.png";
    for (const char* format : {"png", "jpg", "bmp"})
        QTest::newRow(qPrintable(QString("%1 declaring 60000 x 60000 pixels").arg(format)))
            << eval(qpath(std::string("gigapixel_") + format)) << "64"
            << QString("huge.%1: a 60000 x 60000 %2 image needs 10 GiB, more than the memory budget of 64 MiB")
                   .arg(format)
                   .arg(QString(format) == "jpg" ? "JPEG" : QString(format).toUpper());
    QTest::newRow("label that is no number") << eval(qpath("bad_csv")) << "" << "labels.csv line 2: label 'seven'";

    QTest::newRow("99 bits") << config(qpath("bits99.json")) << "" << "bits99.json: default.weights.bits";
    QTest::newRow("NaN in a configuration") << config(qpath("nan.json")) << "" << "nan.json";
    QTest::newRow("number too large for a double") << config(qpath("overflow.json")) << ""
                                                   << "overflow.json: not valid JSON: number overflow parsing '3E333'";
    QTest::newRow("configuration cut short") << config(qpath("not_json.json")) << "" << "not_json.json";
    QTest::newRow("bad sidecar") << QStringList{"eval", "--model", qpath("sidecar/model.onnx"), "--data", kFashionTest, "--limit", "10"}
                                 << "" << "model.preprocess.json: field \"scale\" must be a number";
}

void TestBadInput::refused()
{
    QFETCH(QStringList, args);
    QFETCH(QString, budget);
    QFETCH(QString, fragment);
    if (args.contains(kFashionTest))
        QE_REQUIRE_PATH(fs::path(kFashionTest.toStdString()));
    const CliResult r = runCli(args, budget);
    const QString err = QString::fromUtf8(r.err);
    QVERIFY2(r.exitCode == 2, qPrintable(QString("exit %1, stderr: %2").arg(r.exitCode).arg(err)));
    QVERIFY2(err.contains(fragment), qPrintable("stderr: " + err));
    QVERIFY2(!err.contains("internal error"), qPrintable("stderr: " + err));
}

void TestBadInput::externalDataInsideTheFolderStillLoads()
{
    const CliResult r = runCli({"info", "--model", qpath("model_dir/inside.onnx")});
    QVERIFY2(r.exitCode == 0, r.err.constData());
}

QTEST_GUILESS_MAIN(TestBadInput)
#include "tst_bad_input.moc"
