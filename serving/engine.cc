#include "serving/engine.h"

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace freshet::serving {

namespace fs = std::filesystem;

namespace {
constexpr int kIngestNice = 5;
}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> Engine::Open(const EngineOptions& options,
                                                     const kernels::Backend* backend) {
  std::unique_ptr<Engine> engine(new Engine(options));
  engine->backend_ = backend;
  engine->applied_.set_id_capacity(static_cast<size_t>(options.config.idempotency_keys));
  FRESHET_ASSIGN_OR_RETURN(engine->learner_,
                           learner::Learner::Create(options.algorithm, options.config, backend));
  // Before the load: the first exchange sends every row as it is, loaded or not.
  if (options.replicas != nullptr) FRESHET_RETURN_IF_ERROR(engine->learner_->EnableReplicas());
  if (options.data_dir.empty()) return engine;
  const absl::Time start = absl::Now();

  FRESHET_ASSIGN_OR_RETURN(store::DataDirLock lock, store::DataDirLock::Acquire(options.data_dir));
  engine->lock_.emplace(std::move(lock));
  FRESHET_RETURN_IF_ERROR(store::RecoverDataDir(options.data_dir));
  store::StateStore::Options store_options;
  store_options.sync = options.config.store_sync;
  store_options.accept_wal_loss = options.config.store_accept_wal_loss;
  FRESHET_ASSIGN_OR_RETURN(engine->store_,
                           store::StateStore::Open(store::LiveDbPath(options.data_dir), store_options));
  FRESHET_ASSIGN_OR_RETURN(store::StoreMeta meta, engine->store_->ReadMeta());
  if (options.reset && !meta.empty) {
    LogWarning(absl::StrCat("--reset: discarding the state in ", options.data_dir, " (",
                            meta.events_applied, " events applied, algorithm ", meta.algorithm,
                            ", d=", meta.dim, ")"));
    FRESHET_RETURN_IF_ERROR(engine->store_->Clear());
    meta = store::StoreMeta();
  }
  int64_t stored_ids_from = 0;  // event ids stored: numbers [stored_ids_from, next)
  if (!meta.empty) {
    if (meta.algorithm != options.algorithm || meta.dim != options.config.dim) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data directory ", options.data_dir, " holds state of algorithm '", meta.algorithm,
          "' with dimension ", meta.dim, ", but this run asks for '", options.algorithm,
          "' with dimension ", options.config.dim,
          "; use another --data-dir, or --reset to discard the stored state"));
    }
    if (meta.fingerprint != store::StateFingerprint(options.algorithm, options.config)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data directory ", options.data_dir,
          " was written with a different row layout (e.g. bpr.tied_context); use another "
          "--data-dir, or --reset to discard the stored state"));
    }
    FRESHET_RETURN_IF_ERROR(engine->store_->LoadInto(engine->learner_.get()));
    for (const store::StoredPosition& p : meta.positions) {
      engine->applied_.Set(p.stream, p.partition, p.offset);
    }
    std::lock_guard<std::mutex> positions(engine->applied_mu_);
    FRESHET_ASSIGN_OR_RETURN(stored_ids_from, engine->LoadEventIdsLocked());
    engine->stored_sources_ = meta.sources;
    engine->hidden_ = meta.hidden_items;
    std::sort(engine->hidden_.begin(), engine->hidden_.end());
    LogInfo(absl::StrCat("loaded ", engine->learner_->users().live(), " users, ",
                         engine->learner_->items().live(), " items, ",
                         engine->learner_->events_applied(), " events applied (model version ",
                         meta.model_version, ") from ", options.data_dir, ", opened in ",
                         absl::FormatDuration(absl::Now() - start)));
  }
  store::Persister::Options persist;
  persist.flush_interval = absl::Milliseconds(options.config.flush_interval_ms);
  engine->persister_ =
      std::make_unique<store::Persister>(engine->store_.get(), persist, meta.model_version);
  engine->persister_->SetStoredEventIds(stored_ids_from, engine->applied_.next_id_seq());
  engine->PublishModelVersion();
  if (meta.empty) {
    // A new state states what it is at once, so even a snapshot taken before the first flush
    // knows its algorithm and dimension.
    std::unique_ptr<store::StateBatch> identity = engine->store_->NewBatch();
    identity->PutIdentity(options.algorithm, options.config.dim,
                          store::StateFingerprint(options.algorithm, options.config),
                          config::ToToml(options.config));
    FRESHET_RETURN_IF_ERROR(engine->store_->Write(identity.get()));
  }
  return engine;
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(scorer_mu_);
    scorer_stop_ = true;
  }
  scorer_cv_.notify_all();
  if (scorer_.joinable()) scorer_.join();
  persister_.reset();  // before the store it writes to
  store_.reset();
}

absl::Status Engine::AddSource(std::unique_ptr<stream::EventSource> source,
                               std::vector<std::string> stream_names, SourceOptions options) {
  if (stream_names.empty()) return absl::InvalidArgumentError("a source needs a stream name");
  const size_t first = stream_names_.size();
  for (size_t k = 0; k < stream_names.size(); ++k) {
    const size_t index = first + k;
    if (index < stored_sources_.size() && !stored_sources_[index].empty() &&
        stored_sources_[index] != stream_names[k]) {
      return absl::FailedPreconditionError(absl::StrCat(
          "stream ", index, " is '", stream_names[k], "', but the stored positions belong to '",
          stored_sources_[index], "'; give the same sources in the same order, or --reset"));
    }
  }
  Source s;
  s.source = std::move(source);
  s.first_stream = static_cast<int32_t>(first);
  s.name = s.source->Name();
  s.options = options;
  s.tokens = 0;
  s.last_refill = absl::Now();
  sources_.push_back(std::move(s));
  for (std::string& name : stream_names) stream_names_.push_back(std::move(name));
  return absl::OkStatus();
}

int64_t Engine::AppliedOffset(int32_t stream, int32_t partition) const {
  std::lock_guard<std::mutex> lock(applied_mu_);
  return applied_.Get(stream, partition);
}

void Engine::ApplyLocked(absl::Span<const stream::Event> events) {
  for (size_t begin = 0; begin < events.size(); begin += kApplySlice) {
    const size_t n = std::min(kApplySlice, events.size() - begin);
    std::unique_lock<RwLock> lock(mu_);
    ApplyHeld(events.subspan(begin, n));
  }
}

void Engine::ApplyHeld(absl::Span<const stream::Event> events) {
  const int64_t now = absl::GetCurrentTimeNanos();
  learner_->set_apply_clock_ns(now);
  learner_->ApplyBatch(events);
  last_applied_ns_.store(now, std::memory_order_relaxed);
}

absl::StatusOr<int64_t> Engine::LoadEventIdsLocked() {
  applied_.ClearIds();
  int64_t lowest = -1;
  FRESHET_RETURN_IF_ERROR(store_->LoadEventIds([this, &lowest](int64_t seq, absl::string_view id) {
    if (lowest < 0) lowest = seq;
    applied_.RestoreId(seq, id);
  }));
  ids_held_.store(static_cast<int64_t>(applied_.ids()), std::memory_order_relaxed);
  return lowest < 0 ? applied_.next_id_seq() : lowest;
}

int64_t Engine::ApplyDirect(absl::Span<const stream::Event> events) {
  // With replicas, not between an exchange's taking of this rank's changes and its merge (the
  // merge rewrites the rows it merges; changes made in between would be lost or sent wrong).
  std::unique_lock<std::mutex> exchange;
  if (options_.replicas != nullptr) exchange = std::unique_lock<std::mutex>(exchange_mu_);
  const bool any_id = std::any_of(events.begin(), events.end(),
                                  [](const stream::Event& e) { return !e.id.empty(); });
  if (!any_id) {
    ApplyLocked(events);
    direct_.fetch_add(static_cast<int64_t>(events.size()), std::memory_order_relaxed);
    return 0;
  }
  // The ids are remembered and their events learnt under one exclusive hold of the learner, so
  // the persister (which takes it shared) never writes an id without its event.
  std::vector<stream::Event> fresh;
  fresh.reserve(events.size());
  std::unique_lock<RwLock> lock(mu_);
  {
    std::lock_guard<std::mutex> positions(applied_mu_);
    for (const stream::Event& e : events) {
      if (e.id.empty() || applied_.AcceptId(e.id)) fresh.push_back(e);
    }
    ids_held_.store(static_cast<int64_t>(applied_.ids()), std::memory_order_relaxed);
  }
  const int64_t repeated = static_cast<int64_t>(events.size() - fresh.size());
  if (!fresh.empty()) ApplyHeld(fresh);
  direct_.fetch_add(static_cast<int64_t>(fresh.size()), std::memory_order_relaxed);
  duplicate_ids_.fetch_add(repeated, std::memory_order_relaxed);
  return repeated;
}

std::vector<int32_t> Engine::HiddenRowsLocked() const {
  std::vector<int32_t> rows;
  std::lock_guard<std::mutex> lock(hidden_mu_);
  for (const std::string& id : hidden_) {
    const int32_t row = learner_->items().Find(id);
    if (row != learner::IdDictionary::kMissing) rows.push_back(row);
  }
  std::sort(rows.begin(), rows.end());
  return rows;
}

absl::Status Engine::SetItemHidden(const std::string& item, bool hidden) {
  std::lock_guard<std::mutex> store_lock(store_mu_);
  std::lock_guard<std::mutex> lock(hidden_mu_);
  auto it = std::lower_bound(hidden_.begin(), hidden_.end(), item);
  const bool present = it != hidden_.end() && *it == item;
  if (hidden == present) return absl::OkStatus();
  if (hidden) {
    hidden_.insert(it, item);
  } else {
    hidden_.erase(it);
  }
  if (store_ == nullptr) return absl::OkStatus();
  // Written at once (not with the next batch): availability is an operator's decision, not
  // learnt state, and must survive a restart.
  std::unique_ptr<store::StateBatch> batch = store_->NewBatch();
  batch->PutHiddenItems(hidden_);
  return store_->Write(batch.get());
}

std::vector<std::string> Engine::HiddenItems() const {
  std::lock_guard<std::mutex> lock(hidden_mu_);
  return hidden_;
}

std::vector<int32_t> Engine::ExcludedRowsLocked(const std::vector<std::string>& exclude_items) const {
  std::vector<int32_t> exclude = HiddenRowsLocked();
  for (const std::string& id : exclude_items) {
    const int32_t row = learner_->items().Find(id);
    if (row != learner::IdDictionary::kMissing) exclude.push_back(row);
  }
  std::sort(exclude.begin(), exclude.end());
  return exclude;
}

UserInfo Engine::UserInfoLocked(absl::string_view user) const {
  UserInfo info;
  const int32_t row = learner_->users().Find(user);
  if (row == learner::IdDictionary::kMissing) return info;
  const learner::UserHistory& h = learner_->history(row);
  info.known = true;
  info.events = h.events();
  info.last_event_ts = h.last_ts_ms();
  info.applied_ms_ago =
      h.applied_ns() == 0
          ? -1
          : static_cast<double>(absl::GetCurrentTimeNanos() - h.applied_ns()) / 1e6;
  return info;
}

absl::Status Engine::RecommendFor(absl::string_view user, int k, bool exclude_seen,
                                  const std::vector<std::string>& exclude_items,
                                  RecommendResult* out) const {
  std::promise<absl::StatusOr<RecommendResult>> answer;
  std::future<absl::StatusOr<RecommendResult>> result = answer.get_future();
  RecommendAsync(user, k, exclude_seen, exclude_items,
                 [&answer](absl::StatusOr<RecommendResult> r) { answer.set_value(std::move(r)); });
  FRESHET_ASSIGN_OR_RETURN(*out, result.get());
  return absl::OkStatus();
}

void Engine::RecommendAsync(absl::string_view user, int k, bool exclude_seen,
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
    std::shared_lock<RwLock> lock(mu_);
    const std::vector<int32_t> exclude = ExcludedRowsLocked(exclude_items);
    request->result.user = UserInfoLocked(user);
    if (!options_.config.serve_batch_scoring ||
        !learner_->PrepareQuery(user, exclude_seen, exclude, &request->vector, &request->exclude)) {
      // Not an inner-product query (unknown user, cooc, hybrid, popularity): answered here.
      learner::Recommendation rec;
      const absl::Status status = learner_->Recommend(user, k, exclude_seen, exclude, &rec);
      if (status.ok()) {
        request->result.personalized = rec.personalized;
        for (const kernels::ScoredItem& s : rec.items) {
          request->result.items.push_back(ScoredId{learner_->items().ExternalId(s.item), s.score});
        }
      }
      lock.unlock();
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
    std::lock_guard<std::mutex> lock(scorer_mu_);
    if (!scorer_.joinable() && !scorer_stop_) scorer_ = std::thread([this] { ScorerLoop(); });
    scorer_queue_.push_back(std::move(request));
  }
  scorer_cv_.notify_one();
}

void Engine::ScorerLoop() const {
  pthread_setname_np(pthread_self(), "freshet-score");
  std::vector<std::unique_ptr<AsyncScore>> batch;
  std::vector<kernels::TopKQuery> queries;
  std::vector<std::vector<kernels::ScoredItem>> results;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(scorer_mu_);
      scorer_cv_.wait(lock, [this] { return scorer_stop_ || !scorer_queue_.empty(); });
      if (scorer_queue_.empty()) return;  // stopping, nothing left
      const size_t n = std::min(scorer_queue_.size(), kMaxBatch);
      batch.clear();
      for (size_t i = 0; i < n; ++i) batch.push_back(std::move(scorer_queue_[i]));
      scorer_queue_.erase(scorer_queue_.begin(), scorer_queue_.begin() + static_cast<std::ptrdiff_t>(n));
    }
    int k = 1;
    queries.clear();
    for (const auto& r : batch) {
      k = std::max(k, r->k);
      queries.push_back(kernels::TopKQuery{r->vector.data(), r->exclude});
    }
    results.assign(batch.size(), {});
    absl::Status status;
    {
      std::shared_lock<RwLock> lock(mu_);
      status = learner_->TopKBatch(queries, k, absl::MakeSpan(results));
      if (status.ok()) {
        for (size_t i = 0; i < batch.size(); ++i) {
          std::vector<ScoredId>& items = batch[i]->result.items;
          const size_t n = std::min(results[i].size(), static_cast<size_t>(batch[i]->k));
          items.reserve(n);
          for (size_t j = 0; j < n; ++j) {
            items.push_back(ScoredId{learner_->items().ExternalId(results[i][j].item),
                                     results[i][j].score});
          }
        }
      }
    }
    scoring_batches_.fetch_add(1, std::memory_order_relaxed);
    scoring_queries_.fetch_add(static_cast<int64_t>(batch.size()), std::memory_order_relaxed);
    for (auto& r : batch) {
      if (status.ok()) {
        r->done(std::move(r->result));
      } else {
        r->done(status);
      }
    }
    // Now: the callbacks may hold what their callers own (an HTTP connection).
    batch.clear();
  }
}

absl::Status Engine::SimilarTo(absl::string_view item, int k, std::vector<ScoredId>* out) const {
  out->clear();
  std::vector<kernels::ScoredItem> scored;
  std::shared_lock<RwLock> lock(mu_);
  FRESHET_RETURN_IF_ERROR(learner_->Similar(item, k, HiddenRowsLocked(), &scored));
  for (const kernels::ScoredItem& s : scored) {
    out->push_back(ScoredId{learner_->items().ExternalId(s.item), s.score});
  }
  return absl::OkStatus();
}

absl::Status Engine::Run(const std::atomic<bool>& stop, const RunOptions& options) {
  const size_t batch = static_cast<size_t>(std::max(1, options_.config.serve_batch_events));
  std::vector<stream::Event> polled, pending;
  polled.reserve(batch);
  // Accepted events wait here while more keep coming (at most kApplyDelay), so that a throttled
  // or trickling stream is learnt in groups rather than a few events per lock acquisition (each
  // makes readers wait); an idle stream's last events are learnt at once. Everything pending is
  // learnt before the persister records positions.
  absl::Time pending_since;
  auto apply_pending = [&] {
    ApplyLocked(pending);
    pending.clear();
  };
  absl::Status failure;
  loop_round_ns_.store(absl::GetCurrentTimeNanos(), std::memory_order_relaxed);
  running_.store(true);
  // Requests go first when the cores are short: a little below them, the learner catches up in
  // the gaps (batches grow, so the throughput stays) instead of delaying answers.
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), kIngestNice);
  pthread_setname_np(pthread_self(), "freshet-learn");
  // Replicas: the first exchange (before any source is read) joins the group; then one every
  // replica_sync_ms, until some rank stops or (exit_when_done) every rank is done.
  const absl::Duration replica_sync = absl::Milliseconds(options_.config.replica_sync_ms);
  absl::Time last_exchange = absl::Now();
  bool group_stopping = false, group_done = false, group_ended = false;
  if (options_.replicas != nullptr) {
    const absl::StatusOr<GroupState> joined = ExchangeReplicas(0);
    if (!joined.ok()) {
      failure = joined.status();
    } else {
      group_stopping = joined->stopping;
    }
  }
  while (failure.ok() && !group_stopping && !stop.load(std::memory_order_relaxed)) {
    loop_round_ns_.store(absl::GetCurrentTimeNanos(), std::memory_order_relaxed);
    {
      bool restore = false;
      {
        std::lock_guard<std::mutex> lock(restore_mu_);
        restore = restore_pending_;
      }
      if (restore) {
        apply_pending();  // a restore writes the state first; it must include what was accepted
        ServeRestoreRequest();
      }
    }
    bool got_any = false;
    bool all_finished = true;
    bool throttled = false;  // a source held back by its rate has more to give
    for (size_t i = 0; i < sources_.size(); ++i) {
      Source& s = sources_[i];
      if (s.source->Finished()) continue;
      all_finished = false;
      size_t want = batch;
      if (s.options.events_per_second > 0) {
        const absl::Time now = absl::Now();
        s.tokens = std::min(s.tokens + absl::ToDoubleSeconds(now - s.last_refill) *
                                           s.options.events_per_second,
                            std::max(1.0, s.options.events_per_second / 20));
        s.last_refill = now;
        want = std::min(want, static_cast<size_t>(s.tokens));
        if (want == 0) {
          throttled = true;
          continue;
        }
      }
      polled.clear();
      // Wait briefly only when nothing is waiting to be learnt, so an idle source neither stalls
      // the others nor delays what was just accepted.
      const absl::Duration wait =
          got_any || !pending.empty() ? absl::ZeroDuration() : absl::Milliseconds(5);
      const absl::Status status = s.source->Poll(want, wait, &polled);
      if (!status.ok()) {
        source_errors_.fetch_add(1, std::memory_order_relaxed);
        failure = absl::Status(status.code(),
                               absl::StrCat("source ", s.name, " failed: ", status.message()));
        break;
      }
      if (s.options.events_per_second > 0) s.tokens -= static_cast<double>(polled.size());
      if (polled.empty()) continue;
      got_any = true;
      polled_.fetch_add(static_cast<int64_t>(polled.size()), std::memory_order_relaxed);
      if (pending.empty()) pending_since = absl::Now();
      const size_t before = pending.size();
      int64_t repeated_ids = 0;
      {
        std::lock_guard<std::mutex> lock(applied_mu_);
        for (stream::Event& e : polled) {
          e.position.stream += s.first_stream;
          if (!applied_.Accept(e.position)) continue;
          // The message is consumed (its position recorded) even when its id is a repeat.
          if (!e.id.empty() && !applied_.AcceptId(e.id)) {
            ++repeated_ids;
            continue;
          }
          pending.push_back(std::move(e));
        }
        ids_held_.store(static_cast<int64_t>(applied_.ids()), std::memory_order_relaxed);
      }
      duplicates_.fetch_add(
          static_cast<int64_t>(polled.size() - (pending.size() - before)) - repeated_ids,
          std::memory_order_relaxed);
      duplicate_ids_.fetch_add(repeated_ids, std::memory_order_relaxed);
      // The positions just accepted are recorded before their events are learnt; nothing reads
      // them in between except the persister, below, on this same thread, after applying them.
      if (pending.size() >= kApplySlice) apply_pending();
    }
    if (!failure.ok()) break;
    // Learn now unless more is coming at once: a round that brought nothing new (the streams are
    // idle: lowest latency), the delay bound, or a persister about to record positions.
    if (!pending.empty() &&
        ((!got_any && !throttled) || all_finished || absl::Now() - pending_since >= kApplyDelay ||
         (persister_ != nullptr && persister_->FlushDue()))) {
      apply_pending();
    }
    // Source counters belong to the polling thread; other threads read this copy.
    int64_t malformed = 0;
    for (const Source& src : sources_) malformed += src.source->stats().malformed;
    malformed_.store(malformed, std::memory_order_relaxed);
    if (options_.replicas != nullptr && absl::Now() - last_exchange >= replica_sync) {
      apply_pending();  // everything accepted goes out with the exchange (it may be the last)
      const absl::StatusOr<GroupState> group = ExchangeReplicas(all_finished ? kReplicaDone : 0);
      last_exchange = absl::Now();
      if (!group.ok()) {
        failure = group.status();
        break;
      }
      if (group->stopping) {
        LogInfo("replicas: another rank is stopping; this one stops with the group");
        group_stopping = true;
      }
      group_done = group->all_done;
    }
    if (persister_ != nullptr && pending.empty()) {
      {
        std::shared_lock<RwLock> lock(mu_);
        std::lock_guard<std::mutex> positions(applied_mu_);
        if (persister_->MaybeFlush(*learner_, applied_, stream_names_) && on_persisted_) {
          unacknowledged_.emplace_back(persister_->model_version(), applied_.All());
        }
      }
      PublishModelVersion();
      NotifyPersisted();
    }
    if (all_finished) {
      if (options.exit_when_done && options_.replicas == nullptr) break;
      if (options.exit_when_done && group_done) {
        group_ended = true;  // every rank saw every rank done in the same exchange
        break;
      }
      absl::SleepFor(absl::Milliseconds(20));
    } else if (!got_any) {
      absl::SleepFor(absl::Milliseconds(1));
    }
  }
  apply_pending();
  if (options_.replicas != nullptr && failure.ok() && !group_stopping && !group_ended) {
    // Stopped here: the last exchange takes this rank's latest changes to the others and tells
    // them to stop too.
    const absl::StatusOr<GroupState> last = ExchangeReplicas(kReplicaStopping);
    if (!last.ok()) failure = last.status();
  }
  if (persister_ != nullptr) {
    std::shared_lock<RwLock> lock(mu_);
    std::lock_guard<std::mutex> positions(applied_mu_);
    const absl::Status flushed =
        persister_->Flush(*learner_, applied_, stream_names_, options.flush_timeout);
    if (flushed.ok() && on_persisted_) {
      unacknowledged_.emplace_back(persister_->model_version(), applied_.All());
    }
    PublishModelVersion();
    if (failure.ok()) failure = flushed;
  }
  if (persister_ != nullptr) NotifyPersisted();
  running_.store(false);
  {
    std::lock_guard<std::mutex> lock(restore_mu_);
    if (restore_pending_) {
      restore_pending_ = false;
      restore_done_ = true;
      restore_result_ = absl::UnavailableError("the engine stopped before the restore");
      restore_cv_.notify_all();
    }
  }
  return failure;
}

absl::Status Engine::Recommend(absl::string_view user, int k, bool exclude_seen,
                               learner::Recommendation* out) const {
  std::shared_lock<RwLock> lock(mu_);
  return learner_->Recommend(user, k, exclude_seen, out);
}

UserInfo Engine::User(absl::string_view user) const {
  std::shared_lock<RwLock> lock(mu_);
  return UserInfoLocked(user);
}

void Engine::NotifyPersisted() {
  if (!on_persisted_ || unacknowledged_.empty()) return;
  const int64_t written = persister_->stats().model_version;
  const std::vector<stream::SourcePosition>* latest = nullptr;
  size_t done = 0;
  while (done < unacknowledged_.size() && unacknowledged_[done].first <= written) {
    latest = &unacknowledged_[done].second;
    ++done;
  }
  if (latest != nullptr) on_persisted_(*latest);
  unacknowledged_.erase(unacknowledged_.begin(), unacknowledged_.begin() + static_cast<std::ptrdiff_t>(done));
}

int64_t Engine::model_version() const { return model_version_.load(std::memory_order_relaxed); }

void Engine::PublishModelVersion() {
  if (persister_ != nullptr) {
    model_version_.store(persister_->model_version(), std::memory_order_relaxed);
  }
}

absl::StatusOr<Engine::GroupState> Engine::ExchangeReplicas(uint8_t flags) {
  Collective& group = *options_.replicas;
  const absl::Time start = absl::Now();
  std::lock_guard<std::mutex> exchange(exchange_mu_);  // no direct events until merged
  std::string mine(1, static_cast<char>(flags));
  {
    std::unique_lock<RwLock> lock(mu_);
    mine += learner_->TakeReplicaChanges();
  }
  GroupState state;
  state.all_done = true;
  learner::ReplicaMergeStats total;
  // The exchange, then after a join the catch-up exchange; the group waits without any lock held.
  for (int round = 0; round < 2; ++round) {
    absl::StatusOr<std::vector<std::string>> all = group.AllGather(mine);
    if (!all.ok()) {
      return absl::Status(all.status().code(),
                          absl::StrCat("replicas: rank ", group.rank(), " of ", group.world_size(),
                                       ": ", all.status().message()));
    }
    for (size_t r = 0; r < all->size(); ++r) {
      std::string& message = (*all)[r];
      if (message.empty()) {
        return absl::DataLossError(absl::StrCat("replicas: rank ", r, " sent an empty message"));
      }
      const uint8_t their = static_cast<uint8_t>(message[0]);
      state.stopping = state.stopping || (their & kReplicaStopping) != 0;
      state.all_done = state.all_done && (their & kReplicaDone) != 0;
      message.erase(0, 1);
    }
    learner::ReplicaMergeStats stats;
    {
      std::unique_lock<RwLock> lock(mu_);
      FRESHET_RETURN_IF_ERROR(learner_->MergeReplicaChanges(*all, group.rank(), &stats));
      if (stats.catch_up)
        mine = std::string(1, static_cast<char>(flags)) + learner_->ReplicaCatchUp();
    }
    total.rows_received += stats.rows_received;
    total.items_added += stats.items_added;
    if (!stats.catch_up) break;
  }
  replica_rows_received_.fetch_add(total.rows_received, std::memory_order_relaxed);
  replica_items_added_.fetch_add(total.items_added, std::memory_order_relaxed);
  replica_exchanges_.fetch_add(1, std::memory_order_relaxed);
  replica_last_exchange_us_.store(absl::ToInt64Microseconds(absl::Now() - start),
                                  std::memory_order_relaxed);
  return state;
}

EngineStats Engine::stats() const {
  EngineStats s;
  {
    std::shared_lock<RwLock> lock(mu_);
    s.events_applied = learner_->events_applied();
    s.events_filtered = learner_->events_filtered();
    s.events_rejected = learner_->events_rejected();
    s.nonfinite_skips = learner_->nonfinite_skips();
    s.users = learner_->users().live();
    s.items = learner_->items().live();
    s.device_fallbacks = learner_->model().DeviceFallbacks();
  }
  s.replica_exchanges = replica_exchanges_.load(std::memory_order_relaxed);
  s.replica_rows_received = replica_rows_received_.load(std::memory_order_relaxed);
  s.replica_items_added = replica_items_added_.load(std::memory_order_relaxed);
  s.replica_last_exchange_ms =
      static_cast<double>(replica_last_exchange_us_.load(std::memory_order_relaxed)) / 1000.0;
  s.events_malformed = malformed_.load(std::memory_order_relaxed);
  s.duplicates_dropped = duplicates_.load(std::memory_order_relaxed);
  s.duplicate_ids_dropped = duplicate_ids_.load(std::memory_order_relaxed);
  s.idempotency_keys = ids_held_.load(std::memory_order_relaxed);
  s.events_direct = direct_.load(std::memory_order_relaxed);
  s.scoring_batches = scoring_batches_.load(std::memory_order_relaxed);
  s.scoring_queries = scoring_queries_.load(std::memory_order_relaxed);
  const int64_t applied_ns = last_applied_ns_.load(std::memory_order_relaxed);
  s.last_applied_ago_s =
      applied_ns == 0 ? -1 : static_cast<double>(absl::GetCurrentTimeNanos() - applied_ns) / 1e9;
  s.events_polled = polled_.load(std::memory_order_relaxed);
  s.source_errors = source_errors_.load(std::memory_order_relaxed);
  s.model_version = model_version();
  std::lock_guard<std::mutex> lock(persister_mu_);
  if (persister_ != nullptr) s.persister = persister_->stats();
  return s;
}

absl::Status Engine::IngestHealth(absl::Duration stall) const {
  if (!running_.load()) return absl::OkStatus();
  const absl::Duration since = absl::Nanoseconds(absl::GetCurrentTimeNanos() -
                                                 loop_round_ns_.load(std::memory_order_relaxed));
  if (since < stall) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat("the learning loop has made no progress for ",
                   absl::FormatDuration(absl::Trunc(since, absl::Milliseconds(100))),
                   " (stuck in a source, the store or a replica exchange; events are waiting)"));
}

absl::Status Engine::PersistenceHealth() const {
  std::lock_guard<std::mutex> lock(persister_mu_);
  return persister_ != nullptr ? persister_->Health() : absl::OkStatus();
}

// --- Snapshots --------------------------------------------------------------------------------

absl::StatusOr<store::SnapshotManifest> Engine::CreateSnapshot(const std::string& id) {
  if (store_ == nullptr) return absl::FailedPreconditionError("no --data-dir: nothing to snapshot");
  std::lock_guard<std::mutex> lock(store_mu_);  // not during a restore's swap
  if (snapshot_hook_) snapshot_hook_();
  return store::SnapshotStore(options_.data_dir).Create(*store_, id);
}

absl::StatusOr<std::vector<store::SnapshotManifest>> Engine::ListSnapshots() const {
  if (options_.data_dir.empty()) return absl::FailedPreconditionError("no --data-dir");
  return store::SnapshotStore(options_.data_dir).List();
}

absl::StatusOr<store::SnapshotManifest> Engine::InspectSnapshot(const std::string& id) const {
  if (options_.data_dir.empty()) return absl::FailedPreconditionError("no --data-dir");
  return store::SnapshotStore(options_.data_dir).Inspect(id, /*verify=*/true);
}

absl::Status Engine::DeleteSnapshot(const std::string& id) {
  if (options_.data_dir.empty()) return absl::FailedPreconditionError("no --data-dir");
  return store::SnapshotStore(options_.data_dir).Delete(id);
}

absl::Status Engine::RestoreSnapshot(const std::string& id, absl::Duration timeout) {
  if (store_ == nullptr) return absl::FailedPreconditionError("no --data-dir: nothing to restore");
  FRESHET_RETURN_IF_ERROR(InspectSnapshot(id).status());  // fail fast, before queueing
  std::unique_lock<std::mutex> lock(restore_mu_);
  if (!running_.load()) return absl::FailedPreconditionError("the engine is not running");
  if (restore_pending_) return absl::UnavailableError("another restore is in progress");
  restore_id_ = id;
  restore_pending_ = true;
  restore_done_ = false;
  if (!restore_cv_.wait_for(lock, std::chrono::microseconds(absl::ToInt64Microseconds(timeout)),
                            [this] { return restore_done_; })) {
    return absl::DeadlineExceededError("the restore did not finish in time");
  }
  return restore_result_;
}

void Engine::ServeRestoreRequest() {
  std::string id;
  {
    std::lock_guard<std::mutex> lock(restore_mu_);
    if (!restore_pending_) return;
    id = restore_id_;
  }
  const absl::Status result = RestoreOnIngestThread(id);
  std::lock_guard<std::mutex> lock(restore_mu_);
  restore_pending_ = false;
  restore_done_ = true;
  restore_result_ = result;
  restore_cv_.notify_all();
}

absl::Status Engine::RestoreOnIngestThread(const std::string& id) {
  store::SnapshotStore snapshots(options_.data_dir);
  FRESHET_ASSIGN_OR_RETURN(store::SnapshotManifest manifest, snapshots.Inspect(id, /*verify=*/true));
  if (manifest.algorithm != options_.algorithm || manifest.dim != options_.config.dim) {
    return absl::FailedPreconditionError(absl::StrCat(
        "snapshot ", id, " holds algorithm '", manifest.algorithm, "' d=", manifest.dim,
        "; this server runs '", options_.algorithm, "' d=", options_.config.dim));
  }
  // Load the snapshot into a new learner first (read-only, from the snapshot's own files), so a
  // failure leaves the running state as it was.
  FRESHET_ASSIGN_OR_RETURN(std::unique_ptr<learner::Learner> fresh,
                           learner::Learner::Create(options_.algorithm, options_.config, backend_));
  {
    store::StateStore::Options ro;
    ro.read_only = true;
    FRESHET_ASSIGN_OR_RETURN(std::unique_ptr<store::StateStore> snapshot_db,
                             store::StateStore::Open(snapshots.DbPath(id), ro));
    FRESHET_RETURN_IF_ERROR(snapshot_db->LoadInto(fresh.get()));
  }
  // Its first exchange rejoins the group with the snapshot's item rows.
  if (options_.replicas != nullptr) FRESHET_RETURN_IF_ERROR(fresh->EnableReplicas());
  // Everything learnt so far is written, then the snapshot replaces the live database.
  std::lock_guard<std::mutex> store_lock(store_mu_);
  {
    std::shared_lock<RwLock> lock(mu_);
    std::lock_guard<std::mutex> positions(applied_mu_);
    FRESHET_RETURN_IF_ERROR(
        persister_->Flush(*learner_, applied_, stream_names_, absl::Seconds(60)));
  }
  {
    std::lock_guard<std::mutex> persister_lock(persister_mu_);
    persister_.reset();
  }
  store_.reset();
  const absl::Status swapped = snapshots.RestoreOffline(id);
  store::StateStore::Options store_options;
  store_options.sync = options_.config.store_sync;
  FRESHET_ASSIGN_OR_RETURN(store_,
                           store::StateStore::Open(store::LiveDbPath(options_.data_dir), store_options));
  FRESHET_ASSIGN_OR_RETURN(store::StoreMeta meta, store_->ReadMeta());
  store::Persister::Options persist;
  persist.flush_interval = absl::Milliseconds(options_.config.flush_interval_ms);
  {
    std::lock_guard<std::mutex> persister_lock(persister_mu_);
    persister_ = std::make_unique<store::Persister>(store_.get(), persist, meta.model_version);
  }
  PublishModelVersion();
  FRESHET_RETURN_IF_ERROR(swapped);  // the old database is live again
  {
    std::lock_guard<std::mutex> lock(hidden_mu_);
    hidden_ = meta.hidden_items;
    std::sort(hidden_.begin(), hidden_.end());
  }
  {
    std::unique_lock<RwLock> lock(mu_);
    std::lock_guard<std::mutex> positions(applied_mu_);
    learner_ = std::move(fresh);
    applied_.Clear();
    for (const store::StoredPosition& p : meta.positions) applied_.Set(p.stream, p.partition, p.offset);
    FRESHET_ASSIGN_OR_RETURN(const int64_t stored_ids_from, LoadEventIdsLocked());
    persister_->SetStoredEventIds(stored_ids_from, applied_.next_id_seq());
    unacknowledged_.clear();
  }
  absl::Status rewound;
  for (Source& s : sources_) {
    const int32_t first = s.first_stream;
    const absl::Status st = s.source->SeekToApplied([this, first](int32_t stream, int32_t partition) {
      return applied_.Get(first + stream, partition);
    });
    if (!st.ok() && rewound.ok()) rewound = st;
  }
  LogInfo(absl::StrCat("restored snapshot ", id, ": ", meta.events_applied, " events applied, ",
                       "model version ", meta.model_version));
  return rewound;
}

}  // namespace freshet::serving
