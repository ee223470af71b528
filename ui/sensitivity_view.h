#pragma once
// The sensitivity view: a heat map of the layers (rows, in model order or the worst first) by the
// settings measured (columns: each weight width with each activation width, only this layer
// quantized, then "all but this": every other layer as the base configuration, this one in
// float). A cell's colour is the top-1 lost against float, in points, on a sequential scale with
// its legend; hovering tells the top-1, the drop and the output SQNR; clicking applies that
// setting to that layer, one undo step through the document. The numbers are the core's
// (measureSensitivity, run by the session a layer at a time), filled in as each layer finishes.
//
// Edits while a sweep runs neither cancel nor change it: it measures the configuration it started
// from (each job gets its own copy), and the view says when the document has moved on since.

#include "session.h"

#include "quant/layers.h"

#include <QAbstractTableModel>
#include <QWidget>

#include <memory>
#include <optional>

class QCheckBox;
class QLabel;
class QProgressBar;
class QPushButton;
class QTableView;

namespace qe {

class ConfigDocument;

class SensitivityModel : public QAbstractTableModel {
    Q_OBJECT
public:
    // The drop in points of a cell (double; NaN where nothing was measured), for the tests and
    // for sorting.
    static constexpr int DropRole = Qt::UserRole + 1;

    explicit SensitivityModel(ConfigDocument* document, QObject* parent = nullptr);
    // The model's layers (rows before anything is measured) and the sweep so far.
    void setSweep(std::shared_ptr<const SensitivitySnapshot> sweep, const std::vector<QuantLayer>& layers);
    // Rows in model order, or the worst first: by the mean drop over the row's settings, layers
    // not measured yet last.
    void setWorstFirst(bool worstFirst);

    std::string layerAt(int row) const;
    int rowOf(const std::string& layer) const;
    // The setting a column applies: a width pair, or float for "all but this".
    PrecisionChoice choiceAt(int column) const;
    bool isAllButThis(int column) const { return column == columnCount() - 1; }
    // The measurement behind a cell; null where none is (yet).
    const SensitivityPoint* pointAt(int row, int column) const;
    const LayerSensitivity* measuredAt(int row) const;

    int rowCount(const QModelIndex& parent = {}) const override;
    int columnCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role) const override;

private:
    double dropAt(int row, int column) const;  // NaN where nothing was measured
    QString describe(int row, int column) const;
    bool isCurrentSetting(int row, int column) const;  // what the document has for the layer now
    void order();

    ConfigDocument* document_;
    std::shared_ptr<const SensitivitySnapshot> sweep_;
    std::vector<QuantLayer> layers_;             // those the sweep measures, in model order
    std::vector<PrecisionChoice> columns_;       // the settings measured; "all but this" follows
    std::vector<int> rows_;                      // row -> index into layers_
    bool worstFirst_ = false;
};

class SensitivityView : public QWidget {
    Q_OBJECT
public:
    SensitivityView(Session* session, ConfigDocument* document, QWidget* parent = nullptr);
    SensitivityModel* model() const { return model_; }
    QTableView* table() const { return table_; }
    // Starts a sweep of the document's configuration (the "Measure" button).
    bool measure();
    // Applies the cell's setting to its layer as one undo step; false (and says why) when the
    // layer's scheme does not allow it.
    bool applyCell(int row, int column);
    void setWorstFirst(bool worstFirst);  // the toggle above the map

signals:
    void message(const QString& text);  // for the status bar

private:
    void showSweep();  // the session's sweep, in the map
    void showState();  // the buttons, the progress and the line that says where the sweep is

    Session* session_;
    ConfigDocument* document_;
    SensitivityModel* model_;
    QTableView* table_;
    QPushButton* measure_;
    QPushButton* cancel_;
    QProgressBar* progress_;
    QCheckBox* worstFirst_;
    QLabel* state_;
};

}  // namespace qe
