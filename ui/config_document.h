#pragma once
// The one owner of the configuration the window explores: the current QuantConfig, its undo
// history, the file it was last saved to (or opened from) and whether it changed since. Views
// read config() and propose edits through edit(); whatever shows or evaluates the configuration
// follows changed(). No other object keeps a copy it edits.

#include "quant/config.h"

#include <QObject>
#include <QString>

class QUndoStack;

namespace qe {

class ConfigDocument : public QObject {
    Q_OBJECT
public:
    explicit ConfigDocument(QObject* parent = nullptr);

    const QuantConfig& config() const { return config_; }

    // A change as the user makes it: one undo step, then applied (changed()). A change to the
    // same configuration records nothing.
    void edit(const QuantConfig& config, const QString& description);
    // A fresh start, when a model has loaded: `config` with no history, unmodified, belonging to
    // the file `path` (empty: none). Not autosaved, so the previous session's autosave can
    // still be restored.
    void reset(const QuantConfig& config, const QString& path, const QString& description);

    // Writes the configuration to `path`, with `modelFileName` as the model it was made for,
    // and marks it saved there. Throws qe::Error naming the file.
    void save(const QString& path, const QString& modelFileName);
    // The configuration now matches the file at `path` (it was just opened from it).
    void markSaved(const QString& path);

    // Undo and redo move between the configurations edit() recorded; the window's Edit menu
    // takes its actions from here.
    QUndoStack* undoStack() const { return undo_; }
    bool isModified() const;
    const QString& path() const { return path_; }  // empty until saved or opened from a file
    // The latest edit's description (or the start's); undo and redo leave it. The history chart
    // labels the next evaluation with it.
    const QString& lastEditDescription() const { return lastEditDescription_; }

    // Every edit, undo and redo is also written to `path`, so that a crash or a forgotten save
    // loses nothing. Empty: not written.
    void setAutosavePath(const QString& path) { autosavePath_ = path; }

signals:
    // The configuration is now `config` (an edit, an undo or redo, or a fresh start).
    void changed(const qe::QuantConfig& config);
    // isModified() or path() changed: the window's title follows.
    void savedStateChanged();

private:
    class Step;
    void apply(const QuantConfig& config);  // from the undo stack's steps
    void autosave() const;

    QuantConfig config_;
    QUndoStack* undo_;
    QString path_;
    QString lastEditDescription_;
    QString autosavePath_;
};

}  // namespace qe
