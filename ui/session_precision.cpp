// Session: the sensitivity sweep and the mixed-precision search (core/study/sensitivity.h and
// precision_search.h), on the same worker as every other study job.
//
// Cancelling either keeps what it measured: the core returns what it has (complete = false)
// instead of throwing, so both are cancelled by their flag alone and their last result is still
// delivered; only a newly opened model drops them (their numbers belong to the old one).

#include "session.h"
#include "session_jobs.h"

namespace qe {

using namespace session_jobs;

bool Session::startSensitivitySweep(const QuantConfig& base, const SensitivityOptions& options)
{
    if (!study_ || !snapshot_ || loading_)
        return false;
    restart(sweep_);  // a running sweep stops, and its last layer is dropped
    auto sweep = std::make_shared<SensitivitySnapshot>();
    sweep->base = base;
    sweep->options = options;
    sweep->layersToMeasure = options.layers.empty() ? snapshot_->layers.size() : options.layers.size();
    sweep->running = true;
    sensitivity_ = std::move(sweep);
    emit sensitivityUpdated();
    measureNextLayer();
    return true;
}

void Session::measureNextLayer()
{
    const SensitivitySnapshot& sweep = *sensitivity_;
    const std::size_t next = sweep.result.layers.size();
    if (next >= sweep.layersToMeasure) {
        stopSensitivity({});
        return;
    }
    // One layer a job: an evaluation asked for meanwhile (an edit) runs between two layers.
    SensitivityOptions one = sweep.options;
    one.layers = {sweep.options.layers.empty() ? snapshot_->layers[next].name : sweep.options.layers[next]};
    auto state = sweep_.state;
    studyMovedOn_ = true;
    auto work = [state, study = study_, base = sweep.base, one]() {
        SensitivityResult cancelled;
        cancelled.complete = false;
        if (state->cancel)
            return cancelled;
        return measureSensitivity(*study, base, one, progressInto(state));
    };
    runJob(
        std::move(work), sweep_,
        [this](SensitivityResult measured) {
            if (!measured.complete || measured.layers.empty()) {
                stopSensitivity(tr("cancelled"));
                return;
            }
            auto grown = std::make_shared<SensitivitySnapshot>(*sensitivity_);
            grown->result.floatTop1 = measured.floatTop1;
            grown->result.baseTop1 = measured.baseTop1;
            grown->result.layers.push_back(std::move(measured.layers.front()));
            grown->result.complete = grown->result.layers.size() == grown->layersToMeasure;
            sensitivity_ = std::move(grown);
            emit sensitivityUpdated();
            measureNextLayer();
        },
        [this](const QString& message) { stopSensitivity(message); });
}

void Session::stopSensitivity(const QString& why)
{
    if (!sensitivity_ || !sensitivity_->running)
        return;
    auto stopped = std::make_shared<SensitivitySnapshot>(*sensitivity_);
    stopped->running = false;
    stopped->stopped = why;
    stopped->result.complete = why.isEmpty();
    sensitivity_ = std::move(stopped);
    emit sensitivityUpdated();
}

void Session::cancelSensitivity()
{
    // The layer being measured returns incomplete and stops the sweep; until it does, the
    // layers done are what the view shows.
    sweep_.state->cancel = true;
}

bool Session::startSearch(const QuantConfig& base, const SearchOptions& options)
{
    if (!study_ || searching_ || loading_)
        return false;
    auto state = restart(search_);
    auto inbox = std::make_shared<Inbox<SearchCandidate>>();
    searchInbox_ = inbox;
    searching_ = true;
    studyMovedOn_ = true;
    searchTimer_.start();
    auto work = [state, inbox, study = study_, base, options]() {
        auto result = std::make_shared<SearchResult>(searchMixedPrecision(
            *study, base, options, progressInto(state), [inbox](const SearchCandidate& candidate) { inbox->push(candidate); }));
        return std::shared_ptr<const SearchResult>(std::move(result));
    };
    runJob(
        std::move(work), search_,
        [this](std::shared_ptr<const SearchResult> result) {
            deliverSearchCandidates();
            endSearch();
            emit searchFinished(std::move(result));
        },
        [this](const QString& message) {
            deliverSearchCandidates();
            endSearch();
            emit searchFailed(message);
        });
    return true;
}

void Session::deliverSearchCandidates()
{
    if (!searchInbox_)
        return;
    std::vector<SearchCandidate> arrived = searchInbox_->take();
    if (!arrived.empty())
        emit searchCandidates(arrived);
}

void Session::cancelSearch()
{
    search_.state->cancel = true;  // the search returns what it evaluated (searchFinished)
}

void Session::endSearch()
{
    searching_ = false;
    searchTimer_.stop();
    searchInbox_.reset();
}

}  // namespace qe
