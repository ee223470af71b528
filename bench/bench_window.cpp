// The window's end-to-end latency: from one layer's bits being changed in the table to updated
// metrics and charts painted, and then to the changed layer's histograms painted; by default on
// the demo model with 1000 Fashion-MNIST images, else on the model and data given.
// Runs the real MainWindow (offscreen by default). The edit goes through the same model call the
// table's delegate makes; the clock stops after the histograms of the changed layer are drawn and
// the window has repainted.
//   QT_QPA_PLATFORM=offscreen build/bench/bench_window [--repeats R] [--model M --data D] [--ends]
// --ends edits only the first and the last weighted layer (a deep model has dozens).

#include "layer_table_model.h"
#include "main_window.h"
#include "session.h"

#include "common/memory.h"

#include <QApplication>
#include <QElapsedTimer>
#include <QEventLoop>
#include <QSortFilterProxyModel>
#include <QTableView>
#include <QTimer>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

using namespace qe;

namespace {

// Runs the event loop until `signal` fires (or `ms` pass).
template <class Sender, class Signal> bool waitFor(Sender* sender, Signal signal, int ms = 60000)
{
    QEventLoop loop;
    QTimer timeout;
    timeout.setSingleShot(true);
    QObject::connect(&timeout, &QTimer::timeout, &loop, [&] { loop.exit(1); });
    QObject::connect(sender, signal, &loop, [&] { loop.exit(0); });
    timeout.start(ms);
    return loop.exec() == 0;
}

void idle(int ms)
{
    QEventLoop loop;
    QTimer::singleShot(ms, &loop, &QEventLoop::quit);
    loop.exec();
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv)
{
    qe::keepFreedMemoryForReuse();
    if (!qEnvironmentVariableIsSet("QT_QPA_PLATFORM"))
        qputenv("QT_QPA_PLATFORM", "offscreen");
    QApplication app(argc, argv);
    int repeats = 9;
    bool endsOnly = false;
    QString modelPath = QE_SOURCE_DIR "/resources/models/fashion_cnn.onnx";
    QString dataPath = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
    for (int i = 1; i < argc; ++i) {
        const bool hasValue = i + 1 < argc;
        if (!std::strcmp(argv[i], "--ends"))
            endsOnly = true;
        else if (!std::strcmp(argv[i], "--repeats") && hasValue)
            repeats = std::atoi(argv[++i]);
        else if (!std::strcmp(argv[i], "--model") && hasValue)
            modelPath = QString::fromLocal8Bit(argv[++i]);
        else if (!std::strcmp(argv[i], "--data") && hasValue)
            dataPath = QString::fromLocal8Bit(argv[++i]);
        else {
            std::fprintf(stderr, "usage: bench_window [--repeats R] [--model M --data D] [--ends]\n");
            return 2;
        }
    }

    MainWindow window;
    window.show();
    Session* session = window.session();
    QElapsedTimer opening;
    opening.start();
    window.openSession(modelPath, dataPath);
    if (!waitFor(session, &Session::evaluated, 600000))
        return 1;
    std::printf("%s on %s: opened, calibrated and evaluated in %.1f s (%zu images)\n", qPrintable(modelPath),
                qPrintable(dataPath), double(opening.elapsed()) / 1000.0, session->snapshot()->evaluationImages);
    idle(500);

    LayerTableModel* model = window.layerModel();
    std::vector<int> rows;
    for (int row = 0; row < model->rowCount(); ++row)
        if (model->hasWeights(row))
            rows.push_back(row);
    if (endsOnly && rows.size() > 2)
        rows = {rows.front(), rows.back()};
    auto* proxy = qobject_cast<QSortFilterProxyModel*>(window.layerTable()->model());
    std::printf("%d edits per layer; each one: change the layer's weight bits (8 <-> 4) in the table, wait for\n"
                "the metrics, the error chart and the layer's histograms to be updated and painted.\n\n", repeats);
    std::printf("| changed layer | edit -> metrics, table and error chart painted, ms (median / max) | "
                "edit -> histograms painted too, ms (median / max) | evaluation in the worker, ms (median) |\n");
    std::printf("|---|---:|---:|---:|\n");
    for (const int row : rows) {
        window.selectLayer(row);  // a user edits the layer they are looking at
        waitFor(session, &Session::histogramsReady);
        std::vector<double> metrics, total, worker;
        for (int r = 0; r < repeats; ++r) {
            idle(250);  // a quiet moment, as between two edits by hand
            const QModelIndex bits = proxy->mapFromSource(model->index(row, LayerTableModel::WeightBits));
            QElapsedTimer clock;
            clock.start();
            QObject::connect(&window, &MainWindow::viewsUpdated, &window, [&] {
                window.repaint();
                metrics.push_back(double(clock.nsecsElapsed()) / 1e6);
            }, Qt::SingleShotConnection);
            model->setData(proxy->mapToSource(bits), r % 2 ? 8 : 4, Qt::EditRole);
            if (!waitFor(session, &Session::histogramsReady))
                return 1;
            window.repaint();  // synchronous: the painted frame is part of the latency
            total.push_back(double(clock.nsecsElapsed()) / 1e6);
            worker.push_back(session->evaluation()->milliseconds);
        }
        std::printf("| %s | %.0f / %.0f | %.0f / %.0f | %.0f |\n", model->layerName(row).c_str(), median(metrics),
                    *std::max_element(metrics.begin(), metrics.end()), median(total),
                    *std::max_element(total.begin(), total.end()), median(worker));
        std::fflush(stdout);
    }
    std::printf("\npeak memory %.2f GB\n", double(peakResidentBytes()) / 1e9);
    return 0;
}
