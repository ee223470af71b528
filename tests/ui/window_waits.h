#pragma once
// Waits the window tests share. A QTRY failure inside them fails the calling test.

#include "config_document.h"
#include "main_window.h"
#include "session.h"

#include <QtTest>

#include <cstdlib>

// A wait's limit, times QE_TEST_TIME_SCALE (default 1): under ThreadSanitizer
// (scripts/test-tsan.sh) an evaluation takes ten times as long, and a wait that runs out is a
// failure that says nothing about races.
inline int scaledTimeout(int milliseconds)
{
    const char* scale = std::getenv("QE_TEST_TIME_SCALE");
    const int factor = scale ? std::atoi(scale) : 1;
    return milliseconds * (factor > 0 ? factor : 1);
}

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
