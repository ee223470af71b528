#include "help.h"

#include <QAction>
#include <QDialog>
#include <QDialogButtonBox>
#include <QFile>
#include <QMenu>
#include <QMenuBar>
#include <QRegularExpression>
#include <QTextBrowser>
#include <QVBoxLayout>

namespace qe {

namespace {

void collectShortcuts(const QMenu* menu, const QString& path, QStringList& rows)
{
    for (const QAction* action : menu->actions()) {
        const QString name = QString(action->text()).remove('&');
        if (action->menu())
            collectShortcuts(action->menu(), path + " \u203a " + name, rows);
        else if (!action->shortcut().isEmpty())
            rows << QStringLiteral("<tr><td>%1</td><td>%2</td><td><b>%3</b></td></tr>")
                        .arg(path.toHtmlEscaped(), name.toHtmlEscaped(), action->shortcut().toString(QKeySequence::NativeText).toHtmlEscaped());
    }
}

}  // namespace

QString windowGuideMarkdown()
{
    QFile file(QStringLiteral(":/README.md"));
    if (!file.open(QIODevice::ReadOnly))
        return QStringLiteral("The guide (README.md) was not built into this program.");
    const QString readme = QString::fromUtf8(file.readAll());
    const qsizetype start = readme.indexOf(QStringLiteral("\n## The explorer window"));
    if (start < 0)
        return readme;
    const qsizetype end = readme.indexOf(QStringLiteral("\n## "), start + 1);
    QString guide = readme.mid(start + 1, end < 0 ? -1 : end - start - 1);
    // Pictures point into the source tree's docs/, which an installed program does not have.
    guide.remove(QRegularExpression(QStringLiteral("!\\[[^\\]]*\\]\\([^)]*\\)\\n?")));
    return guide;
}

QString shortcutsHtml(const QMenuBar* menus)
{
    QStringList rows;
    for (const QAction* action : menus->actions())
        if (action->menu())
            collectShortcuts(action->menu(), QString(action->text()).remove('&'), rows);
    return QStringLiteral("<h3>Keyboard shortcuts</h3><table cellspacing=6><tr><th align=left>Menu</th><th align=left>Action</th>"
                          "<th align=left>Keys</th></tr>%1</table>"
                          "<p>In the layer table: <b>F2</b> or a double click edits a cell (the value goes to every selected "
                          "row); <b>Ctrl</b>/<b>Shift</b>-click selects several rows.</p>")
        .arg(rows.join(QString()));
}

QString aboutHtml()
{
    return QStringLiteral("<h3>Quantization Explorer</h3>"
                          "<p>Load an ONNX model and labelled images, choose a quantization scheme and bit width per layer, "
                          "and see how the model behaves layer by layer: our own fp32 engine, fake-quantization simulation "
                          "and integer-only int8 engine.</p>"
                          "<p>The window and <tt>quantexplorer-cli</tt> run the same study (core/study), so they give the same "
                          "numbers.</p><p>Built with Qt %1.</p>")
        .arg(QString::fromLatin1(qVersion()));
}

void showHelpText(QWidget* parent, const QString& title, const QString& text, bool html)
{
    auto* dialog = new QDialog(parent);
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    dialog->setWindowTitle(title);
    auto* layout = new QVBoxLayout(dialog);
    auto* browser = new QTextBrowser(dialog);
    browser->setOpenExternalLinks(true);
    if (html)
        browser->setHtml(text);
    else
        browser->setMarkdown(text);
    layout->addWidget(browser);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Close, dialog);
    QObject::connect(buttons, &QDialogButtonBox::rejected, dialog, &QDialog::close);
    layout->addWidget(buttons);
    dialog->resize(760, 640);
    dialog->show();
}

}  // namespace qe
