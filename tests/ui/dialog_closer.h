#pragma once
// Closes the window's modal message boxes as a user would (they would otherwise wait forever), so
// that error paths can be driven from a test; keeps each box's text and informative text.

#include <QApplication>
#include <QMessageBox>
#include <QObject>
#include <QStringList>
#include <QTimer>
#include <QWidget>

class DialogCloser : public QObject {
public:
    explicit DialogCloser(int intervalMs = 50)
    {
        connect(&timer_, &QTimer::timeout, this, [this] {
            for (QWidget* w : QApplication::topLevelWidgets())
                if (auto* box = qobject_cast<QMessageBox*>(w); box && box->isVisible()) {
                    texts << box->text() + "\n" + box->informativeText();
                    box->accept();
                }
        });
        timer_.start(intervalMs);
    }
    QStringList texts;

private:
    QTimer timer_;
};
