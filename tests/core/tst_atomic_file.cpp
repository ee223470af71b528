// An autosave or export interrupted mid-write (the process killed) leaves the previous file
// intact (issue 12): a child process writes a large file over an existing one again and again
// and is killed at various moments; the file is then always one whole version, never a mix.

#include "common/atomic_file.h"
#include "common/error.h"

#include <QTemporaryDir>
#include <QtTest>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace fs = std::filesystem;

class TestAtomicFile : public QObject {
    Q_OBJECT
private slots:
    void killedWriterLeavesAWholeFile();
    void temporaryFileIsNeverAPlantedLink();
};

namespace {

std::string readAll(const fs::path& path)
{
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

void TestAtomicFile::killedWriterLeavesAWholeFile()
{
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const fs::path path = fs::path(dir.path().toStdString()) / "autosave.json";
    const std::string previous(1000, 'A');
    const std::string next(std::size_t{48} << 20, 'B');  // long enough to be killed in the middle
    qe::writeFileAtomically(path, previous);

    int interruptedBeforeRename = 0;
    for (int delayMs : {1, 5, 20, 60, 150, 400}) {
        const pid_t child = fork();
        QVERIFY(child >= 0);
        if (child == 0) {
            for (;;)
                qe::writeFileAtomically(path, next);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(delayMs));
        kill(child, SIGKILL);
        int status = 0;
        waitpid(child, &status, 0);
        QVERIFY(WIFSIGNALED(status));
        const std::string now = readAll(path);
        QVERIFY2(now == previous || now == next,
                 qPrintable(QString("after a kill at %1 ms the file has %2 bytes").arg(delayMs).arg(now.size())));
        if (now == previous)
            ++interruptedBeforeRename;
        else
            qe::writeFileAtomically(path, previous);  // start the next round from the old version
    }
    qInfo("%d of 6 kills landed before the rename", interruptedBeforeRename);
}

void TestAtomicFile::temporaryFileIsNeverAPlantedLink()
{
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const fs::path folder(dir.path().toStdString());
    const fs::path outside = folder / "outside.txt";
    { std::ofstream(outside) << "untouched"; }
    // The old fixed temporary name, planted as a link to a file elsewhere.
    fs::create_symlink(outside, folder / "q.json.tmp");
    qe::writeFileAtomically(folder / "q.json", "new");
    QCOMPARE(readAll(outside), std::string("untouched"));
    QCOMPARE(readAll(folder / "q.json"), std::string("new"));
}

QTEST_GUILESS_MAIN(TestAtomicFile)
#include "tst_atomic_file.moc"
