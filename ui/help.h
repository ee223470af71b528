#pragma once
// The Help menu's texts: the README's guide to the window (embedded at build time, so it matches
// the program), the keyboard shortcuts read from the menus themselves (so the list cannot drift
// from what the keys do), and About.

#include <QString>

class QMenuBar;
class QWidget;

namespace qe {

// The README's "The explorer window" section as Markdown (pictures left out); a note when absent.
QString windowGuideMarkdown();
// Every menu action with a shortcut, as an HTML table: menu, action, keys.
QString shortcutsHtml(const QMenuBar* menus);
QString aboutHtml();
// A non-modal, resizable window showing `markdown` (or rich text when `html`).
void showHelpText(QWidget* parent, const QString& title, const QString& text, bool html);

}  // namespace qe
