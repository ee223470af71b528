// Replays every input under tests/fuzz/regressions/<target>/ (each one a crash, hang, leak or
// undefined behaviour a fuzzer found, kept after the fix) through the same entry functions the
// libFuzzer executables call. In the sanitizer build this is where a regression shows.

#include "fuzz_targets.h"

#include <QtTest>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

class TestFuzzRegressions : public QObject {
    Q_OBJECT
private slots:
    void initTestCase() { qe::fuzz::initialize(); }
    void replay_data();
    void replay();
};

void TestFuzzRegressions::replay_data()
{
    QTest::addColumn<QString>("target");
    QTest::addColumn<QString>("file");
    const fs::path root = fs::path(QE_SOURCE_DIR) / "tests/fuzz/regressions";
    int rows = 0;
    for (const qe::fuzz::Target& target : qe::fuzz::targets()) {
        if (!fs::is_directory(root / target.name))
            continue;
        std::vector<fs::path> files;
        for (const auto& entry : fs::directory_iterator(root / target.name))
            if (entry.is_regular_file() && entry.path().filename() != "README.md")
                files.push_back(entry.path());
        std::sort(files.begin(), files.end());
        for (const fs::path& file : files) {
            QTest::newRow(qPrintable(QString("%1/%2").arg(target.name, QString::fromStdString(file.filename().string()))))
                << QString(target.name) << QString::fromStdString(file.string());
            ++rows;
        }
    }
    QVERIFY2(rows > 0, "no regression inputs found under tests/fuzz/regressions");
}

void TestFuzzRegressions::replay()
{
    QFETCH(QString, target);
    QFETCH(QString, file);
    std::ifstream in(file.toStdString(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Returns normally when the input is accepted or refused with qe::Error; anything else
    // escapes as an exception (failing this row) or trips a sanitizer (failing the run).
    try {
        qe::fuzz::run(target.toStdString(), reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    } catch (const std::exception& e) {
        QFAIL(qPrintable(QString("%1: %2").arg(file, e.what())));
    }
}

QTEST_GUILESS_MAIN(TestFuzzRegressions)
#include "tst_fuzz_regressions.moc"
