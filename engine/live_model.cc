#include "engine/live_model.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/burst_end.h"
#include "common/status_macros.h"
#include "learner/dirty_rows.h"

static_assert(freshet::learner::DirtyRows::kVersionGroupRows ==
                  freshet::kernels::PackedItemMatrix::kGroupRows,
              "the learner's item group versions are the packed copy's groups");

namespace freshet::engine {

absl::Status ModelReader::RecommendFor(absl::string_view user, int k, bool exclude_seen,
                                       const std::vector<std::string>& exclude_items,
                                       RecommendResult* out) const {
  std::promise<absl::StatusOr<RecommendResult>> answer;
  std::future<absl::StatusOr<RecommendResult>> result = answer.get_future();
  RecommendAsync(user, k, exclude_seen, exclude_items,
                 [&answer](absl::StatusOr<RecommendResult> r) { answer.set_value(std::move(r)); });
  FRESHET_ASSIGN_OR_RETURN(*out, result.get());
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LiveModel>> LiveModel::Create(const std::string& algorithm,
                                                             const config::Config& config,
                                                             const kernels::Backend* backend) {
  FRESHET_ASSIGN_OR_RETURN(std::unique_ptr<learner::Learner> learner,
                           learner::Learner::Create(algorithm, config, backend));
  return std::unique_ptr<LiveModel>(new LiveModel(algorithm, config.serve_batch_scoring,
                                                  config.serve_packed_items, std::move(learner)));
}

LiveModel::LiveModel(std::string algorithm, bool batch_scoring, bool packed_items,
                     std::unique_ptr<learner::Learner> learner)
    : algorithm_(std::move(algorithm)),
      batch_scoring_(batch_scoring),
      packed_items_(packed_items),
      learner_(std::move(learner)) {
  learner_->set_defer_work(true);
}

LiveModel::~LiveModel() { Stop(); }

void LiveModel::Start() {
  MutexLock start_stop(&start_stop_mu_);
  {
    MutexLock lock(&scorer_mu_);
    if (scorer_running_ || scorer_stop_) return;
    scorer_running_ = true;
  }
  scorer_ = std::thread([this] { ScorerLoop(); });
  scorer_accepting_.store(true, std::memory_order_release);
}

void LiveModel::Stop() {
  MutexLock start_stop(&start_stop_mu_);
  scorer_accepting_.store(false, std::memory_order_release);
  {
    MutexLock lock(&scorer_mu_);
    scorer_stop_ = true;
  }
  scorer_cv_.SignalAll();
  if (scorer_.joinable()) scorer_.join();
}

size_t LiveModel::SliceFor(double ns_per_event) {
  // Before anything is measured, a slice small enough for the slowest model to be quick.
  constexpr size_t kFirstSlice = 8;
  if (!(ns_per_event > 0)) return kFirstSlice;
  const double fit = static_cast<double>(kApplyHoldNs) / ns_per_event;
  if (!(fit < static_cast<double>(kApplySlice))) return kApplySlice;  // NaN too
  return std::max<size_t>(1, static_cast<size_t>(fit));
}

void LiveModel::Apply(absl::Span<const stream::Event> events) {
  size_t begin = 0;
  while (begin < events.size()) {
    {
      WriterLock lock(&mu_);
      // The event that makes deferred work due (an ease fit) ends its slice, so the work runs
      // next, before any later event, while readers go on (RunDeferredWork).
      const int64_t due = learner_->LearnsBeforeDeferredWork();
      const size_t n = std::min({SliceFor(ns_per_event_), events.size() - begin,
                                 static_cast<size_t>(std::clamp<int64_t>(due, 1, kApplySlice))});
      ApplyHeld(events.subspan(begin, n));
      begin += n;
    }
    RunDeferredWork();
  }
}

void LiveModel::RunDeferredWork() {
  std::unique_ptr<learner::DeferredWork> work;
  uint64_t generation = 0;
  {
    ReaderLock lock(&mu_);
    if (!learner_->DeferredWorkPending()) return;
    generation = learner_generation_.load(std::memory_order_relaxed);
    work = learner_->PrepareDeferredWork();
  }
  WriterLock lock(&mu_);
  // A learner replaced meanwhile is not the one the work was prepared from; one that learnt
  // meanwhile did the work itself, and drops this (InstallDeferredWork).
  if (learner_generation_.load(std::memory_order_relaxed) != generation) return;
  learner_->InstallDeferredWork(std::move(work));
}

int64_t LiveModel::ApplyAdmitted(absl::Span<const stream::Event> events,
                                 const std::function<bool(const stream::Event&)>& admit) {
  std::vector<stream::Event> admitted;
  admitted.reserve(events.size());
  {
    WriterLock lock(&mu_);
    for (const stream::Event& e : events) {
      if (admit(e)) admitted.push_back(e);
    }
    // One hold, so an event past the one that made work due does that work in its own learning.
    if (!admitted.empty()) ApplyHeld(admitted);
  }
  RunDeferredWork();
  return static_cast<int64_t>(admitted.size());
}

void LiveModel::ApplyHeld(absl::Span<const stream::Event> events) {
  if (events.empty()) return;
  const int64_t now = absl::GetCurrentTimeNanos();
  const auto started = std::chrono::steady_clock::now();
  learner_->set_apply_clock_ns(now);
  learner_->ApplyBatch(events);
  // The next holds' size follows the cost of the latest ones (a monotonic clock: the wall clock
  // may jump); a single slow event shrinks the next few slices, and they grow back as cheaper
  // events are measured. (An ease fit runs outside the hold: RunDeferredWork.)
  const double per_event =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - started).count() /
      static_cast<double>(events.size());
  ns_per_event_ = ns_per_event_ > 0 ? 0.7 * ns_per_event_ + 0.3 * per_event : per_event;
  if (freshness_observer_) {
    const int64_t now_ms = now / 1'000'000;
    for (const stream::Event& e : events) {
      // A producer's clock ahead of this one counts as no delay.
      if (e.received_ms > 0)
        freshness_observer_(std::max<int64_t>(0, now_ms - e.received_ms) / 1e3);
    }
  }
  ++rounds_;
  if (rounds_are_version_) model_version_.store(rounds_, std::memory_order_relaxed);
  last_applied_ns_.store(now, std::memory_order_relaxed);
}

void LiveModel::Replace(std::unique_ptr<learner::Learner> fresh,
                        const std::function<void()>& also) {
  WriterLock lock(&mu_);
  learner_ = std::move(fresh);
  if (learner_) learner_->set_defer_work(true);
  learner_generation_.fetch_add(1, std::memory_order_relaxed);  // the packed copy starts over
  if (also) also();
}

void LiveModel::SetHiddenItems(std::vector<std::string> items) {
  std::sort(items.begin(), items.end());
  items.erase(std::unique(items.begin(), items.end()), items.end());
  MutexLock lock(&hidden_mu_);
  hidden_ = std::move(items);
}

bool LiveModel::WithItemHidden(const std::string& item, bool hidden,
                               std::vector<std::string>* out) const {
  MutexLock lock(&hidden_mu_);
  *out = hidden_;
  auto it = std::lower_bound(out->begin(), out->end(), item);
  const bool present = it != out->end() && *it == item;
  if (hidden == present) return false;
  if (hidden) {
    out->insert(it, item);
  } else {
    out->erase(it);
  }
  return true;
}

std::vector<std::string> LiveModel::HiddenItems() const {
  MutexLock lock(&hidden_mu_);
  return hidden_;
}

std::vector<int32_t> LiveModel::HiddenRowsLocked() const {
  std::vector<int32_t> rows;
  MutexLock lock(&hidden_mu_);
  for (const std::string& id : hidden_) {
    const int32_t row = learner_->items().Find(id);
    if (row != learner::IdDictionary::kMissing) rows.push_back(row);
  }
  std::sort(rows.begin(), rows.end());
  return rows;
}

std::vector<int32_t> LiveModel::ExcludedRowsLocked(
    const std::vector<std::string>& exclude_items) const {
  std::vector<int32_t> exclude = HiddenRowsLocked();
  for (const std::string& id : exclude_items) {
    const int32_t row = learner_->items().Find(id);
    if (row != learner::IdDictionary::kMissing) exclude.push_back(row);
  }
  std::sort(exclude.begin(), exclude.end());
  return exclude;
}

UserInfo LiveModel::UserInfoLocked(absl::string_view user) const {
  UserInfo info;
  const int32_t row = learner_->users().Find(user);
  if (row == learner::IdDictionary::kMissing) return info;
  const learner::UserHistory& h = learner_->history(row);
  info.known = true;
  info.events = h.events();
  info.last_event_ts = h.last_ts_ms();
  info.applied_ms_ago =
      h.applied_ns() == 0 ? -1
                          : static_cast<double>(absl::GetCurrentTimeNanos() - h.applied_ns()) / 1e6;
  return info;
}

UserInfo LiveModel::User(absl::string_view user) const {
  ReaderLock lock(&mu_);
  UserInfo info = UserInfoLocked(user);
  if (info.known) {
    const absl::Span<const int32_t> recent =
        learner_->history(learner_->users().Find(user)).Recent(UserInfo::kRecentShown);
    for (auto it = recent.rbegin(); it != recent.rend(); ++it) {
      info.recent.push_back(learner_->items().ExternalId(*it));
    }
  }
  return info;
}

absl::Status LiveModel::Recommend(absl::string_view user, int k, bool exclude_seen,
                                  learner::Recommendation* out) const {
  ReaderLock lock(&mu_);
  return learner_->Recommend(user, k, exclude_seen, out);
}

void LiveModel::RecommendAsync(absl::string_view user, int k, bool exclude_seen,
                               const std::vector<std::string>& exclude_items,
                               RecommendDone done) const {
  if (k < 1) {
    done(absl::InvalidArgumentError(absl::StrCat("k must be at least 1, got ", k)));
    return;
  }
  auto request = std::make_unique<AsyncScore>();
  request->k = k;
  request->result.model_version = model_version();
  {
    ReaderLock lock(&mu_);
    const std::vector<int32_t> exclude = ExcludedRowsLocked(exclude_items);
    request->result.user = UserInfoLocked(user);
    // A stop in between is caught when the request is queued, below.
    const bool queue = batch_scoring_ && scorer_accepting_.load(std::memory_order_acquire);
    if (!queue ||
        !learner_->PrepareQuery(user, exclude_seen, exclude, &request->vector, &request->exclude)) {
      // Not an inner-product query (unknown user, cooc, hybrid, popularity), or no scoring
      // thread: answered here.
      learner::Recommendation rec;
      const absl::Status status = learner_->Recommend(user, k, exclude_seen, exclude, &rec);
      if (status.ok()) {
        request->result.personalized = rec.personalized;
        for (const kernels::ScoredItem& s : rec.items) {
          request->result.items.push_back(ScoredId{learner_->items().ExternalId(s.item), s.score});
        }
      }
      lock.Release();
      if (status.ok()) {
        done(std::move(request->result));
      } else {
        done(status);
      }
      return;
    }
    request->result.personalized = true;
  }
  request->done = std::move(done);
  {
    MutexLock lock(&scorer_mu_);
    if (!scorer_stop_) {
      scorer_queue_.push_back(std::move(request));
    }
  }
  if (request != nullptr) {  // stopped meanwhile
    request->done(absl::UnavailableError("the server is stopping"));
    return;
  }
  // Inside a burst (an HTTP I/O thread's round): scored with the rest of the round when it ends.
  if (!BurstEnd::Defer(this, [this] { AnswerQueued(); })) scorer_cv_.Signal();
}

void LiveModel::ScorerLoop() {
  pthread_setname_np(pthread_self(), "freshet-score");
  while (true) {
    {
      MutexLock lock(&scorer_mu_);
      while (!scorer_stop_ && scorer_queue_.empty()) scorer_cv_.Wait(&scorer_mu_);
      if (scorer_stop_ && scorer_queue_.empty()) {  // stopping, nothing left
        scorer_running_ = false;
        return;
      }
    }
    AnswerQueued();
  }
}

void LiveModel::AnswerQueued() const {
  std::vector<std::unique_ptr<AsyncScore>> batch;
  std::vector<kernels::TopKQuery> queries;
  std::vector<std::vector<kernels::ScoredItem>> results;
  while (true) {
    absl::Status status;
    {
      MutexLock scoring(&scoring_mu_);
      {
        MutexLock lock(&scorer_mu_);
        if (scorer_queue_.empty()) return;
        const size_t n = std::min(scorer_queue_.size(), kMaxBatch);
        batch.clear();
        for (size_t i = 0; i < n; ++i) batch.push_back(std::move(scorer_queue_[i]));
        scorer_queue_.erase(scorer_queue_.begin(),
                            scorer_queue_.begin() + static_cast<std::ptrdiff_t>(n));
      }
      int k = 1;
      queries.clear();
      for (const auto& r : batch) {
        k = std::max(k, r->k);
        queries.push_back(kernels::TopKQuery{r->vector.data(), r->exclude});
      }
      // This may run where nothing may throw (the end of a BurstEnd scope): a failure to allocate
      // fails the batch's requests instead.
      try {
        results.assign(batch.size(), {});
        ReaderLock lock(&mu_);
        status = TopKBatchLocked(queries, k, absl::MakeSpan(results));
        if (status.ok()) {
          for (size_t i = 0; i < batch.size(); ++i) {
            std::vector<ScoredId>& items = batch[i]->result.items;
            const size_t n = std::min(results[i].size(), static_cast<size_t>(batch[i]->k));
            items.reserve(n);
            for (size_t j = 0; j < n; ++j) {
              items.push_back(
                  ScoredId{learner_->items().ExternalId(results[i][j].item), results[i][j].score});
            }
          }
        }
      } catch (const std::exception& e) {
        status = absl::InternalError(absl::StrCat("scoring failed: ", e.what()));
      }
    }
    scoring_batches_.fetch_add(1, std::memory_order_relaxed);
    scoring_queries_.fetch_add(static_cast<int64_t>(batch.size()), std::memory_order_relaxed);
    {
      // Each caller's thread is woken once for the whole batch, after the last callback.
      BurstEnd wakes;
      for (auto& r : batch) {
        if (status.ok()) {
          r->done(std::move(r->result));
        } else {
          r->done(status);
        }
      }
    }
    // Now: the callbacks may hold what their callers own (an HTTP connection).
    batch.clear();
  }
}

absl::Status LiveModel::TopKBatchLocked(
    absl::Span<const kernels::TopKQuery> queries, int k,
    absl::Span<std::vector<kernels::ScoredItem>> results) const {
  // The packed copy answers exactly as the CPU backend over ScoringMatrix() (kernels/topk.h's
  // score contract), which is what Learner::TopKBatch() runs for a model that learns on the host;
  // a model whose parameters live on a device, or another backend, scores there instead.
  if (!packed_items_ || learner_->backend().Name() != "cpu" ||
      learner_->diagnostics().Learning() != "host") {
    return learner_->TopKBatch(queries, k, results);
  }
  const uint64_t generation = learner_generation_.load(std::memory_order_relaxed);
  if (generation != packed_generation_) {
    packed_.Clear();
    packed_generation_ = generation;
  }
  const int64_t packed_before = packed_.groups_packed();
  FRESHET_RETURN_IF_ERROR(packed_.Update(learner_->ScoringMatrix(), learner_->item_group_versions(),
                                         learner_->item_row_versions()));
  scoring_groups_packed_.fetch_add(packed_.groups_packed() - packed_before,
                                   std::memory_order_relaxed);
  return packed_.TopK(queries, k, results);
}

absl::Status LiveModel::SimilarTo(absl::string_view item, int k, std::vector<ScoredId>* out) const {
  out->clear();
  std::vector<kernels::ScoredItem> scored;
  ReaderLock lock(&mu_);
  FRESHET_RETURN_IF_ERROR(learner_->Similar(item, k, HiddenRowsLocked(), &scored));
  for (const kernels::ScoredItem& s : scored) {
    out->push_back(ScoredId{learner_->items().ExternalId(s.item), s.score});
  }
  return absl::OkStatus();
}

ModelInfo LiveModel::info() const {
  ReaderLock lock(&mu_);
  return ModelInfo{algorithm_, learner_->backend().Name(), learner_->diagnostics().Learning()};
}

ModelStats LiveModel::stats() const {
  ModelStats s;
  {
    ReaderLock lock(&mu_);
    s.events_applied = learner_->events_applied();
    s.events_filtered = learner_->events_filtered();
    s.events_rejected = learner_->events_rejected();
    s.nonfinite_skips = learner_->nonfinite_skips();
    s.users = learner_->users().live();
    s.items = learner_->items().live();
    s.device_fallbacks = learner_->diagnostics().DeviceFallbacks();
  }
  s.scoring_batches = scoring_batches_.load(std::memory_order_relaxed);
  s.scoring_queries = scoring_queries_.load(std::memory_order_relaxed);
  s.scoring_groups_packed = scoring_groups_packed_.load(std::memory_order_relaxed);
  const int64_t applied_ns = last_applied_ns_.load(std::memory_order_relaxed);
  s.last_applied_ago_s =
      applied_ns == 0 ? -1 : static_cast<double>(absl::GetCurrentTimeNanos() - applied_ns) / 1e9;
  s.model_version = model_version();
  return s;
}

}  // namespace freshet::engine
