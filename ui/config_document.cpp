#include "config_document.h"

#include "common/error.h"

#include <QDir>
#include <QFileInfo>
#include <QUndoCommand>
#include <QUndoStack>

namespace qe {

// One configuration change on the undo stack. Holds the whole configuration before and after:
// configurations are small values, and whole snapshots cannot drift out of step with the edits.
class ConfigDocument::Step : public QUndoCommand {
public:
    Step(ConfigDocument* document, QuantConfig before, QuantConfig after, const QString& text)
        : QUndoCommand(text), document_(document), before_(std::move(before)), after_(std::move(after))
    {
    }
    void redo() override { document_->apply(after_); }
    void undo() override { document_->apply(before_); }

private:
    ConfigDocument* document_;
    QuantConfig before_, after_;
};

ConfigDocument::ConfigDocument(QObject* parent) : QObject(parent), undo_(new QUndoStack(this))
{
    connect(undo_, &QUndoStack::cleanChanged, this, &ConfigDocument::savedStateChanged);
}

void ConfigDocument::edit(const QuantConfig& config, const QString& description)
{
    if (config == config_)
        return;
    lastEditDescription_ = description;
    undo_->push(new Step(this, config_, config, description));  // push() runs the step's redo()
}

void ConfigDocument::reset(const QuantConfig& config, const QString& path, const QString& description)
{
    undo_->clear();  // also clean: nothing to save
    path_ = path;
    lastEditDescription_ = description;
    config_ = config;
    emit changed(config_);
    emit savedStateChanged();
}

void ConfigDocument::apply(const QuantConfig& config)
{
    config_ = config;
    emit changed(config_);
    autosave();
}

void ConfigDocument::save(const QString& path, const QString& modelFileName)
{
    QuantConfig saved = config_;
    saved.model = modelFileName.toStdString();
    saved.save(path.toStdString());
    markSaved(path);
}

void ConfigDocument::markSaved(const QString& path)
{
    path_ = path;
    undo_->setClean();
    emit savedStateChanged();
}

bool ConfigDocument::isModified() const
{
    return !undo_->isClean();
}

void ConfigDocument::autosave() const
{
    if (autosavePath_.isEmpty() || !QDir().mkpath(QFileInfo(autosavePath_).path()))
        return;
    try {
        config_.save(autosavePath_.toStdString());
    } catch (const Error&) {
        // Autosave is a convenience: a failure must not interrupt the user.
    }
}

}  // namespace qe
