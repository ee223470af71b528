#pragma once
// The Session's job plumbing, shared by its source files (session.cpp: loading, evaluation,
// histograms and exports; session_precision.cpp: the sensitivity sweep and the mixed-precision
// search): the stages a worker reports, the progress callback that writes them into a request's
// atomics, and finish(), which hands a worker's result to the GUI thread.

#include "session.h"

#include "common/error.h"

#include <QUnhandledException>
#include <QtConcurrent>

namespace qe {

namespace session_jobs {

// Stages a worker reports, in the order they happen; Detail: the core's own words (RequestState::detail).
inline constexpr const char* kStageNames[] = {"Loading",    "Calibrating", "Float reference", "Quantized model",
                                              "Histograms", "Exporting",   "int8 engine",     "Writing report", ""};
enum Stage { Loading, Calibrating, FloatReference, QuantizedModel, Histograms, Exporting, IntegerEngine, WritingReport, Detail };

// What the status bar says for the stage a worker is in.
inline QString stageText(const RequestState& state)
{
    const int stage = state.stage.load();
    if (stage != Detail)
        return Session::tr(kStageNames[stage]);
    std::lock_guard lock(state.detailMutex);
    QString text = QString::fromStdString(state.detail);
    if (!text.isEmpty())
        text[0] = text[0].toUpper();
    return text;
}

// The progress callback of a request: the stage and the counts go into its atomics, which a timer
// on the GUI thread reads.
inline EvaluationProgress progressInto(const std::shared_ptr<RequestState>& state)
{
    EvaluationProgress progress;
    progress.cancel = &state->cancel;
    progress.report = [state](const std::string& stage, std::size_t done, std::size_t total) {
        // The stages the list names; any other (the repairs': equalization, bias correction,
        // AdaRound layer by layer) in the core's words.
        const Stage known = stage == "calibrating"                                   ? Calibrating
                            : stage == "float reference" || stage == "float model"   ? FloatReference
                            : stage == "integer engine"                               ? IntegerEngine
                            : stage == "writing report"                               ? WritingReport
                            : stage == "quantized model" || stage == "histograms"     ? QuantizedModel
                                                                                      : Detail;
        if (known == Detail) {
            std::lock_guard lock(state->detailMutex);
            state->detail = stage;
        }
        state->stage = known;
        state->total = total;
        state->done = done;
    };
    return progress;
}

}  // namespace session_jobs

template <class T, class OnResult> void Session::finish(QFuture<T> work, Slot& slot, OnResult onResult)
{
    finish(work, slot, onResult, [this](const QString& message) { emit failed(message); });
}

template <class T, class OnResult, class OnFailure>
void Session::finish(QFuture<T> work, Slot& slot, OnResult onResult, OnFailure onFailure)
{
    const quint64 generation = slot.generation;
    Slot* target = &slot;
    const bool isMain = target == &main_;
    auto fail = [this, target, generation, isMain, onFailure](const QString& message) {
        if (target->generation != generation)
            return;
        if (isMain) {
            progressTimer_.stop();
            busy_ = false;
        }
        onFailure(message);
    };
    // QtConcurrent::run wraps exceptions that are not QExceptions in QUnhandledException, so the
    // original is taken out and classified here.
    auto classify = [fail](std::exception_ptr exception) {
        try {
            std::rethrow_exception(exception);
        } catch (const Cancelled&) {
            // A newer request replaced this one; nothing to report.
        } catch (const Error& e) {
            fail(QString::fromStdString(e.what()));
        } catch (const std::exception& e) {
            fail(QStringLiteral("Unexpected error: %1").arg(e.what()));
        } catch (...) {
            fail(QStringLiteral("Unexpected error"));
        }
    };
    work.then(this, [this, target, generation, isMain, onResult](T result) {
            if (target->generation != generation)
                return;
            if (isMain) {
                progressTimer_.stop();
                busy_ = false;
            }
            onResult(std::move(result));
        })
        .onFailed(this, [classify](const QUnhandledException& e) { classify(e.exception()); })
        .onFailed(this, [classify]() { classify(std::current_exception()); });
}

}  // namespace qe
