#include "engine/ingest_loop.h"

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace freshet::engine {

namespace {
// Requests go first when the cores are short: a little below them, the learner catches up in
// the gaps (batches grow, so the throughput stays) instead of delaying answers.
constexpr int kIngestNice = 5;
}  // namespace

IngestLoop::IngestLoop(const config::Config& config, const kernels::Backend* backend,
                       LiveModel* model, ExactlyOnceFilter* filter, DurableState* durable,
                       ReplicaSync* replicas, Catalog* catalog,
                       std::vector<std::string> stored_sources)
    : config_(config),
      backend_(backend),
      model_(model),
      filter_(filter),
      durable_(durable),
      replicas_(replicas),
      catalog_(catalog),
      stored_sources_(std::move(stored_sources)) {}

std::function<int64_t(int32_t, int32_t)> IngestLoop::Source::Applied(
    const ExactlyOnceFilter& filter) const {
  const int32_t first = first_stream;
  const ExactlyOnceFilter* f = &filter;
  return [f, first](int32_t stream, int32_t partition) {
    return f->Applied(first + stream, partition);
  };
}

absl::Status IngestLoop::AddSource(std::unique_ptr<stream::EventSource> source,
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
  s.streams = static_cast<int32_t>(stream_names.size());
  s.name = s.source->Name();
  s.options = options;
  s.tokens = 0;
  s.last_refill = absl::Now();
  FRESHET_RETURN_IF_ERROR(s.source->Resume(s.Applied(*filter_)));
  sources_.push_back(std::move(s));
  for (std::string& name : stream_names) stream_names_.push_back(std::move(name));
  return absl::OkStatus();
}

void IngestLoop::QueuedBatch() {
  unacknowledged_.emplace_back(durable_->queued_version(), filter_->All());
}

void IngestLoop::CommitDurable() {
  if (durable_ == nullptr || unacknowledged_.empty()) return;
  const int64_t written = durable_->written_version();
  const std::vector<stream::SourcePosition>* latest = nullptr;
  size_t done = 0;
  while (done < unacknowledged_.size() && unacknowledged_[done].first <= written) {
    latest = &unacknowledged_[done].second;
    ++done;
  }
  if (latest != nullptr) {
    std::vector<stream::SourcePosition> mine;
    for (Source& s : sources_) {
      mine.clear();
      for (stream::SourcePosition p : *latest) {
        if (p.stream >= s.first_stream && p.stream < s.first_stream + s.streams) {
          p.stream -= s.first_stream;
          mine.push_back(p);
        }
      }
      if (!mine.empty()) s.source->Commit(mine);  // never blocks
    }
  }
  unacknowledged_.erase(unacknowledged_.begin(),
                        unacknowledged_.begin() + static_cast<std::ptrdiff_t>(done));
}

absl::StatusOr<ReplicaSync::GroupState> IngestLoop::Exchange(uint8_t flags) {
  return replicas_->Exchange(flags, *model_);
}

absl::Status IngestLoop::Run(const std::atomic<bool>& stop, const RunOptions& options) {
  const size_t batch = static_cast<size_t>(std::max(1, config_.serve_batch_events));
  std::vector<stream::Event> polled, pending;
  polled.reserve(batch);
  // With a data directory, answers report the latest queued batch as the model version (without
  // one, LiveModel counts learning rounds itself).
  auto publish = [&] { model_->PublishModelVersion(durable_->queued_version()); };
  // Accepted events wait here while more keep coming (at most kApplyDelay), so that a throttled
  // or trickling stream is learnt in groups rather than a few events per lock acquisition (each
  // makes readers wait); an idle stream's last events are learnt at once. Everything pending is
  // learnt before the durable state records positions.
  absl::Time pending_since;
  auto apply_pending = [&] {
    if (pending.empty()) return;
    model_->Apply(pending);
    pending.clear();
  };
  absl::Status failure;
  loop_round_ns_.store(absl::GetCurrentTimeNanos(), std::memory_order_relaxed);
  {
    MutexLock lock(&restore_mu_);
    running_ = true;
  }
  looping_.store(true);
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), kIngestNice);
  pthread_setname_np(pthread_self(), "freshet-learn");
  // Replicas: the first exchange (before any source is read) joins the group; then one every
  // replica_sync_ms, until some rank stops or (exit_when_done) every rank is done.
  const absl::Duration replica_sync = absl::Milliseconds(config_.replica_sync_ms);
  absl::Time last_exchange = absl::Now();
  bool group_stopping = false, group_done = false, group_ended = false;
  if (replicas_ != nullptr) {
    const absl::StatusOr<ReplicaSync::GroupState> joined = Exchange(0);
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
        MutexLock lock(&restore_mu_);
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
    for (Source& s : sources_) {
      if (s.source->Finished()) continue;
      all_finished = false;
      size_t want = batch;
      if (s.options.events_per_second > 0) {
        const absl::Time now = absl::Now();
        s.tokens = std::min(
            s.tokens + absl::ToDoubleSeconds(now - s.last_refill) * s.options.events_per_second,
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
      for (stream::Event& e : polled) e.position.stream += s.first_stream;
      // The positions just accepted are recorded before their events are learnt; nothing reads
      // them in between except the durable state, below, on this same thread, after applying.
      filter_->AdmitPolled(&polled);
      for (stream::Event& e : polled) pending.push_back(std::move(e));
      if (pending.size() >= LiveModel::kApplySlice) apply_pending();
    }
    if (!failure.ok()) break;
    // Learn now unless more is coming at once: a round that brought nothing new (the streams are
    // idle: lowest latency), the delay bound, or a flush about to record positions.
    if (!pending.empty() &&
        ((!got_any && !throttled) || all_finished || absl::Now() - pending_since >= kApplyDelay ||
         (durable_ != nullptr && durable_->FlushDue()))) {
      apply_pending();
    }
    // Source counters belong to the polling thread; other threads read this copy.
    int64_t malformed = 0;
    for (const Source& src : sources_) malformed += src.source->stats().malformed;
    malformed_.store(malformed, std::memory_order_relaxed);
    if (replicas_ != nullptr && absl::Now() - last_exchange >= replica_sync) {
      apply_pending();  // everything accepted goes out with the exchange (it may be the last)
      const absl::StatusOr<ReplicaSync::GroupState> group =
          Exchange(all_finished ? ReplicaSync::kDone : 0);
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
    if (durable_ != nullptr && pending.empty()) {
      if (durable_->MaybeFlush(*model_, *filter_, stream_names_)) QueuedBatch();
      publish();
      CommitDurable();
    }
    if (all_finished) {
      if (options.exit_when_done && replicas_ == nullptr) break;
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
  if (replicas_ != nullptr && failure.ok() && !group_stopping && !group_ended) {
    // Stopped here: the last exchange takes this rank's latest changes to the others and tells
    // them to stop too.
    const absl::StatusOr<ReplicaSync::GroupState> last = Exchange(ReplicaSync::kStopping);
    if (!last.ok()) failure = last.status();
  }
  if (durable_ != nullptr) {
    const absl::Status flushed =
        durable_->Flush(*model_, *filter_, stream_names_, options.flush_timeout);
    if (flushed.ok()) QueuedBatch();
    publish();
    if (failure.ok()) failure = flushed;
    CommitDurable();
  }
  looping_.store(false);
  MutexLock lock(&restore_mu_);
  running_ = false;
  if (restore_pending_) {
    restore_pending_ = false;
    restore_done_ = true;
    restore_result_ = absl::UnavailableError("the engine stopped before the restore");
    restore_cv_.SignalAll();
  }
  return failure;
}

absl::Status IngestLoop::RequestRestore(const std::string& id, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  MutexLock lock(&restore_mu_);
  if (!running_) return absl::FailedPreconditionError("the engine is not running");
  if (restore_pending_) return absl::UnavailableError("another restore is in progress");
  restore_id_ = id;
  restore_pending_ = true;
  restore_done_ = false;
  while (!restore_done_) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration() ||
        (!restore_cv_.WaitFor(&restore_mu_, left) && !restore_done_)) {
      return absl::DeadlineExceededError("the restore did not finish in time");
    }
  }
  return restore_result_;
}

void IngestLoop::ServeRestoreRequest() {
  std::string id;
  {
    MutexLock lock(&restore_mu_);
    if (!restore_pending_) return;
    id = restore_id_;
  }
  const absl::Status result = RestoreOnIngestThread(id);
  MutexLock lock(&restore_mu_);
  restore_pending_ = false;
  restore_done_ = true;
  restore_result_ = result;
  restore_cv_.SignalAll();
}

absl::Status IngestLoop::RestoreOnIngestThread(const std::string& id) {
  LoadedState loaded;
  const absl::Status restored = durable_->Restore(id, backend_, replicas_ != nullptr, *model_,
                                                  *filter_, stream_names_, &loaded);
  model_->PublishModelVersion(durable_->queued_version());  // of whichever database is live
  FRESHET_RETURN_IF_ERROR(restored);
  model_->SetHiddenItems(loaded.hidden_items);
  // The catalog as the snapshot held it.
  const absl::Status catalog = durable_->LoadCatalog(catalog_);
  unacknowledged_.clear();
  absl::Status rewound;
  for (Source& s : sources_) {
    const absl::Status st = s.source->SeekToApplied(s.Applied(*filter_));
    if (!st.ok() && rewound.ok()) rewound = st;
  }
  LogInfo(absl::StrCat("restored snapshot ", id, ": ", loaded.events_applied,
                       " events applied, model version ", loaded.model_version, ", ",
                       catalog_->size(), " catalog items"));
  if (!catalog.ok()) return catalog;
  return rewound;
}

absl::Status IngestLoop::Health(absl::Duration stall) const {
  if (!looping_.load()) return absl::OkStatus();
  const absl::Duration since = absl::Nanoseconds(absl::GetCurrentTimeNanos() -
                                                 loop_round_ns_.load(std::memory_order_relaxed));
  if (since < stall) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat("the learning loop has made no progress for ",
                   absl::FormatDuration(absl::Trunc(since, absl::Milliseconds(100))),
                   " (stuck in a source, the store or a replica exchange; events are waiting)"));
}

IngestStats IngestLoop::stats() const {
  IngestStats s;
  s.events_polled = polled_.load(std::memory_order_relaxed);
  s.source_errors = source_errors_.load(std::memory_order_relaxed);
  s.events_malformed = malformed_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace freshet::engine
