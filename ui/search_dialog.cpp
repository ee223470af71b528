#include "search_dialog.h"

#include "config_document.h"
#include "pareto_chart.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDialogButtonBox>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QProgressBar>
#include <QPushButton>
#include <QRadioButton>
#include <QSignalBlocker>
#include <QVBoxLayout>

namespace qe {

namespace {

constexpr double kBitOperationsUnit = 1e6;  // the size budget in millions when the cost is bit operations

}  // namespace

SearchDialog::SearchDialog(Session* session, ConfigDocument* document, QWidget* parent)
    : QDialog(parent), session_(session), document_(document), accuracyGoal_(new QRadioButton(tr("Smallest model within"), this)),
      sizeGoal_(new QRadioButton(tr("Most accurate model within"), this)), maxDrop_(new QDoubleSpinBox(this)),
      maxSize_(new QDoubleSpinBox(this)), cost_(new QComboBox(this)), allowFloat_(new QCheckBox(tr("A layer may stay in float"), this)),
      progress_(new QProgressBar(this)), outcome_(new QLabel(this)), start_(new QPushButton(tr("Start"), this)),
      cancel_(new QPushButton(tr("Cancel Search"), this)), apply_(new QPushButton(tr("Apply Chosen Configuration"), this))
{
    setObjectName("searchDialog");
    setWindowTitle(tr("Search Mixed Precision"));
    auto* layout = new QVBoxLayout(this);
    auto* form = new QFormLayout;

    accuracyGoal_->setChecked(true);
    maxDrop_->setRange(0, 100);
    maxDrop_->setDecimals(2);
    maxDrop_->setSingleStep(0.25);
    maxDrop_->setValue(0.5);
    maxDrop_->setSuffix(tr(" points of top-1 below float"));
    maxSize_->setRange(0, 1e9);
    maxSize_->setDecimals(1);
    auto* accuracyRow = new QHBoxLayout;
    accuracyRow->addWidget(accuracyGoal_);
    accuracyRow->addWidget(maxDrop_, 1);
    auto* sizeRow = new QHBoxLayout;
    sizeRow->addWidget(sizeGoal_);
    sizeRow->addWidget(maxSize_, 1);
    auto* goal = new QVBoxLayout;
    goal->addLayout(accuracyRow);
    goal->addLayout(sizeRow);
    form->addRow(tr("Goal:"), goal);

    cost_->addItem(tr("Model size (the weight bytes stored)"), int(SearchCost::SizeBytes));
    cost_->addItem(tr("Bit operations (MACs \u00d7 weight bits \u00d7 activation bits)"), int(SearchCost::BitOperations));
    form->addRow(tr("Cost:"), cost_);

    auto widthRow = [this](const std::vector<int>& widths, QList<QCheckBox*>& boxes) {
        auto* row = new QHBoxLayout;
        for (int bits : widths) {
            auto* box = new QCheckBox(tr("%1 bits").arg(bits), this);
            box->setChecked(true);
            box->setProperty("bits", bits);
            boxes << box;
            row->addWidget(box);
        }
        row->addStretch();
        return row;
    };
    const SearchOptions defaults;
    form->addRow(tr("Weight widths:"), widthRow(defaults.weightBits, weightBits_));
    form->addRow(tr("Activation widths:"), widthRow(defaults.activationBits, activationBits_));
    allowFloat_->setChecked(defaults.allowFloat);
    form->addRow(QString(), allowFloat_);
    layout->addLayout(form);

    auto* honesty = new QLabel(tr("<small>Candidates are measured on search images held out from the evaluation and calibration "
                                  "images (the training split beside the data); the chosen configuration's top-1 is then "
                                  "measured on the evaluation images. The accuracy budget is against float on the search "
                                  "images.</small>"),
                               this);
    honesty->setWordWrap(true);
    layout->addWidget(honesty);
    progress_->setRange(0, 0);
    progress_->hide();
    layout->addWidget(progress_);
    outcome_->setObjectName("searchOutcome");
    outcome_->setWordWrap(true);
    outcome_->setTextFormat(Qt::RichText);
    outcome_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    layout->addWidget(outcome_, 1);

    auto* buttons = new QDialogButtonBox(this);
    buttons->addButton(start_, QDialogButtonBox::ActionRole);
    buttons->addButton(cancel_, QDialogButtonBox::ActionRole);
    buttons->addButton(apply_, QDialogButtonBox::ApplyRole);
    buttons->addButton(QDialogButtonBox::Close);
    layout->addWidget(buttons);
    start_->setDefault(true);
    apply_->setEnabled(false);
    cancel_->setEnabled(false);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    connect(start_, &QPushButton::clicked, this, &SearchDialog::start);
    connect(cancel_, &QPushButton::clicked, session_, &Session::cancelSearch);
    connect(apply_, &QPushButton::clicked, this, &SearchDialog::apply);
    connect(cost_, &QComboBox::currentIndexChanged, this, &SearchDialog::showCost);
    connect(maxDrop_, &QDoubleSpinBox::valueChanged, this, [this] { accuracyGoal_->setChecked(true); });
    connect(maxSize_, &QDoubleSpinBox::valueChanged, this, [this] { sizeGoal_->setChecked(true); });

    connect(session_, &Session::searchCandidates, this, [this](const std::vector<SearchCandidate>& arrived) {
        candidates_ += int(arrived.size());
    });
    connect(session_, &Session::searchProgress, this, [this](const QString& stage, int done, int total) {
        progress_->setRange(0, total);
        progress_->setValue(done);
        progress_->setFormat(tr("%1 configurations evaluated \u2014 %2 %p%").arg(candidates_).arg(stage));
    });
    connect(session_, &Session::searchFinished, this, &SearchDialog::showFinished);
    connect(session_, &Session::searchFailed, this, [this](const QString& message) {
        showRunning(false);
        outcome_->setText(tr("<b>The search failed:</b> %1").arg(message.toHtmlEscaped()));
    });
    showCost();
    resize(620, 460);
}

void SearchDialog::showEvent(QShowEvent* event)
{
    // The size budget starts at half the current configuration's size.
    if (const auto evaluation = session_->evaluation(); evaluation && !session_->isSearching()) {
        const bool bitOperations = cost_->currentData().toInt() == int(SearchCost::BitOperations);
        const QSignalBlocker blocker(maxSize_);
        maxSize_->setValue(0.5 * (bitOperations ? evaluation->metrics.bitOperations / kBitOperationsUnit : evaluation->metrics.sizeBytes / 1024.0));
    }
    QDialog::showEvent(event);
}

void SearchDialog::done(int result)
{
    if (session_->isSearching())
        session_->cancelSearch();  // what it evaluated stays in the Pareto view
    QDialog::done(result);
}

void SearchDialog::showCost()
{
    const bool bitOperations = cost_->currentData().toInt() == int(SearchCost::BitOperations);
    maxSize_->setSuffix(bitOperations ? tr(" million bit operations per image") : tr(" KiB of weights"));
}

SearchOptions SearchDialog::options() const
{
    SearchOptions options;
    const bool bitOperations = cost_->currentData().toInt() == int(SearchCost::BitOperations);
    options.cost = bitOperations ? SearchCost::BitOperations : SearchCost::SizeBytes;
    options.budget.kind = accuracyGoal_->isChecked() ? SearchBudget::Kind::MaxAccuracyDrop : SearchBudget::Kind::MaxSize;
    options.budget.maxAccuracyDropPoints = maxDrop_->value();
    options.budget.maxSize = maxSize_->value() * (bitOperations ? kBitOperationsUnit : 1024.0);
    auto checked = [](const QList<QCheckBox*>& boxes) {
        std::vector<int> bits;
        for (const QCheckBox* box : boxes)
            if (box->isChecked())
                bits.push_back(box->property("bits").toInt());
        return bits;
    };
    options.weightBits = checked(weightBits_);
    options.activationBits = checked(activationBits_);
    options.allowFloat = allowFloat_->isChecked();
    return options;
}

bool SearchDialog::start()
{
    const SearchOptions asked = options();
    if (asked.weightBits.empty() || asked.activationBits.empty()) {
        outcome_->setText(tr("Choose at least one weight width and one activation width."));
        return false;
    }
    result_.reset();
    candidates_ = 0;
    if (!session_->startSearch(document_->config(), asked)) {
        outcome_->setText(session_->isSearching()  ? tr("A search is already running.")
                          : session_->isLoading() ? tr("A model is being opened: search it once it has loaded.")
                                                  : tr("Open a model and images first."));
        return false;
    }
    showRunning(true);
    outcome_->setText(tr("Searching from the current configuration ... the Pareto view fills as candidates are evaluated."));
    return true;
}

void SearchDialog::showRunning(bool running)
{
    progress_->setVisible(running);
    progress_->setRange(0, 0);
    start_->setEnabled(!running);
    cancel_->setEnabled(running);
    apply_->setEnabled(!running && result_ != nullptr);
}

void SearchDialog::showFinished(std::shared_ptr<const SearchResult> result)
{
    result_ = std::move(result);
    showRunning(false);
    const SearchResult& r = *result_;
    const auto snapshot = session_->snapshot();
    QString text;
    if (!r.complete)
        text += tr("<p><b>Cancelled.</b> The chosen configuration is the best of the %1 evaluated so far.</p>").arg(r.evaluated.size());
    if (!r.shortfall.empty())
        text += tr("<p style='color:#b00020'><b>The budget was not met:</b> %1</p>").arg(QString::fromStdString(r.shortfall).toHtmlEscaped());
    // A cancelled search may not have measured its choice on the evaluation images.
    const QString reported = !r.complete && r.top1 == 0 ? tr("not measured on the evaluation images")
                                                        : tr("top-1 <b>%1%</b> on the evaluation images").arg(100.0 * r.top1, 0, 'f', 2);
    text += tr("<p><b>Chosen:</b> %1</p>"
               "<p>%2 (float %3%) \u00b7 %4% on the search images (float %5%)<br>"
               "%6 KiB of weights (the starting configuration: %7 KiB) \u00b7 %8 million bit operations per image<br>"
               "%9 configurations evaluated on %10</p>")
                .arg(snapshot ? precisionSummary(r.chosen, snapshot->layers).toHtmlEscaped() : QString())
                .arg(reported)
                .arg(100.0 * r.floatTop1, 0, 'f', 2)
                .arg(100.0 * r.searchTop1, 0, 'f', 2)
                .arg(100.0 * r.searchFloatTop1, 0, 'f', 2)
                .arg(r.sizeBytes / 1024.0, 0, 'f', 1)
                .arg(r.baseSizeBytes / 1024.0, 0, 'f', 1)
                .arg(r.bitOperations / kBitOperationsUnit, 0, 'f', 1)
                .arg(r.evaluated.size())
                .arg(QString::fromStdString(r.searchImages.description).toHtmlEscaped());
    outcome_->setText(text);
    apply_->setEnabled(!r.evaluated.empty());
}

bool SearchDialog::apply()
{
    if (!result_ || result_->evaluated.empty())
        return false;
    const auto snapshot = session_->snapshot();
    document_->edit(result_->chosen,
                    tr("mixed-precision search: %1").arg(snapshot ? precisionSummary(result_->chosen, snapshot->layers) : QString()));
    return true;
}

}  // namespace qe
