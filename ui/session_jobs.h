#pragma once
// The Session's job plumbing, shared by its source files (session.cpp: loading, evaluation,
// histograms and exports; session_precision.cpp: the sensitivity sweep and the mixed-precision
// search): the stages a worker reports, the progress callback that writes them into a request's
// atomics, and runJob(), which runs a worker and hands its result to the GUI thread.

#include "background_job.h"
#include "session.h"

#include "common/error.h"

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
    progress.top1 = [state](const std::string& stage, const RunningTop1& top1) {
        std::lock_guard lock(state->detailMutex);
        state->top1 = top1;
        state->top1OfQuantized = stage == "quantized model";
    };
    return progress;
}

}  // namespace session_jobs

template <class Work, class OnResult> void Session::runJob(Work work, Slot& slot, OnResult onResult)
{
    runJob(std::move(work), slot, std::move(onResult), [this](const QString& message) { emit failed(message); });
}

template <class Work, class OnResult, class OnFailure>
void Session::runJob(Work work, Slot& slot, OnResult onResult, OnFailure onFailure)
{
    const quint64 generation = slot.generation;
    Slot* target = &slot;
    const bool isMain = target == &main_;
    runInBackground(pool_, this, std::move(work), [this, target, generation, isMain, onResult, onFailure](auto outcome) {
        if (target->generation != generation)
            return;
        if (isMain) {
            progressTimer_.stop();
            busy_ = false;
        }
        if (!outcome.error) {
            onResult(std::move(*outcome.value));
            return;
        }
        try {
            std::rethrow_exception(outcome.error);
        } catch (const Cancelled&) {
            // A newer request replaced this one; nothing to report.
        } catch (const Error& e) {
            onFailure(QString::fromStdString(e.what()));
        } catch (const std::exception& e) {
            onFailure(QStringLiteral("Unexpected error: %1").arg(e.what()));
        } catch (...) {
            onFailure(QStringLiteral("Unexpected error"));
        }
    });
}

}  // namespace qe
