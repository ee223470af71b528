// Session: quantization-aware training (core/train/qat.h), on the same worker as every other
// study job, so that the study is used by one job at a time.
//
// Training reports through its own channel rather than the RequestState alone: the losses of the
// steps since the last delivery (their mean is one point of the chart) and the held-out
// checkpoints (an Inbox), which a timer hands to the GUI thread every 200 ms. Cancel is the
// core's: training stops at the next step and the result keeps the best checkpoint's weights, so a
// cancelled run is still delivered by qatFinished(). A new generation (another model opened) or
// the session closing abandons the run instead: it stops without measuring its result.

#include "session.h"
#include "session_jobs.h"

#include <limits>

namespace qe {

using namespace session_jobs;

bool Session::startQat(const QuantConfig& config, const QatOptions& options)
{
    if (!study_ || !snapshot_ || training_ || loading_)
        return false;
    auto state = restart(qat_);
    auto live = std::make_shared<QatLive>();
    qatLive_ = live;
    training_ = true;
    studyMovedOn_ = true;  // training evaluates the configuration on other weights
    qatTimer_.start();
    auto work = [state, live, study = study_, config, options]() {
        QatProgress progress;
        progress.cancel = &state->cancel;
        progress.abandon = &state->abandon;
        progress.onStage = [state](const std::string& stage) {
            {
                std::lock_guard lock(state->detailMutex);
                state->detail = stage;
            }
            state->stage = Detail;
        };
        progress.onStep = [state, live](int step, int steps, double loss) {
            {
                std::lock_guard lock(live->mutex);
                live->lossSum += loss;
                ++live->losses;
            }
            state->total = std::size_t(steps);
            state->done = std::size_t(step);
        };
        progress.onCheckpoint = [live](const QatCheckpoint& checkpoint) { live->checkpoints.push(checkpoint); };
        return std::shared_ptr<const QatResult>(std::make_shared<QatResult>(fineTuneWithQat(*study, config, options, progress)));
    };
    runJob(
        std::move(work), qat_,
        [this](std::shared_ptr<const QatResult> result) {
            deliverQatProgress();
            endQat();
            emit qatFinished(std::move(result));
        },
        [this](const QString& message) {
            deliverQatProgress();
            endQat();
            emit qatFailed(message);
        });
    return true;
}

void Session::deliverQatProgress()
{
    if (!qatLive_)
        return;
    const RequestState& state = *qat_.state;
    double meanLoss = std::numeric_limits<double>::quiet_NaN();
    {
        std::lock_guard lock(qatLive_->mutex);
        if (qatLive_->losses > 0)
            meanLoss = qatLive_->lossSum / qatLive_->losses;
        qatLive_->lossSum = 0;
        qatLive_->losses = 0;
    }
    emit qatProgress(stageText(state), int(state.done.load()), int(state.total.load()), meanLoss);
    for (const QatCheckpoint& checkpoint : qatLive_->checkpoints.take())
        emit qatCheckpoint(checkpoint);
}

void Session::cancelQat()
{
    qat_.state->cancel = true;  // training stops at its next step and delivers the best checkpoint
}

void Session::endQat()
{
    training_ = false;
    qatTimer_.stop();
    qatLive_.reset();
}

}  // namespace qe
