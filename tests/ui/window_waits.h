#pragma once
// Waits the window tests share. A QTRY failure inside them fails the calling test.

#include "config_document.h"
#include "main_window.h"
#include "session.h"

#include <QtTest>

// Until the window shows an evaluation of `config` and nothing else runs.
inline void waitForEvaluationOf(qe::MainWindow& window, const qe::QuantConfig& config, int timeoutMs)
{
    QTRY_VERIFY_WITH_TIMEOUT(window.session()->evaluation() && window.session()->evaluation()->config == config &&
                                 !window.session()->isBusy(),
                             timeoutMs);
}

// Until the window shows an evaluation of the document's configuration (read again at every try)
// and nothing else runs.
inline void waitForEvaluation(qe::MainWindow& window, int timeoutMs)
{
    QTRY_VERIFY_WITH_TIMEOUT(window.session()->evaluation() &&
                                 window.session()->evaluation()->config == window.document()->config() &&
                                 !window.session()->isBusy(),
                             timeoutMs);
}
