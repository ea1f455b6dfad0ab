#include "store/persister.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace freshet::store {

namespace {
constexpr int kWriterNice = 10;
}  // namespace

Persister::Persister(BatchWriter* writer, const Options& options, int64_t model_version)
    : writer_(writer),
      options_(options),
      last_flush_(absl::Now()),
      queued_version_(model_version),
      writer_thread_([this] { WriterLoop(); }) {
  stats_.model_version = model_version;
}

Persister::~Persister() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  writer_thread_.join();
}

void Persister::WriteIdentity(std::string algorithm, int dim, uint64_t fingerprint,
                              std::string config_toml) {
  identity_pending_ = true;
  algorithm_ = std::move(algorithm);
  dim_ = dim;
  fingerprint_ = fingerprint;
  config_toml_ = std::move(config_toml);
  sources_written_ = 0;
}

bool Persister::MaybeFlush(learner::Learner& learner, const stream::AppliedPositions& positions,
                           const std::vector<std::string>& sources, bool force) {
  const absl::Time now = absl::Now();
  if (!force && now - last_flush_ < options_.flush_interval) return false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // One batch in flight and none waiting: otherwise keep accumulating in the learner.
    if (queue_.size() > (writing_ ? 1u : 0u)) return false;
  }
  last_flush_ = now;
  learner::StateChanges changes = learner.TakeChanges();
  // Keys are big-endian row numbers: rows in ascending order insert into RocksDB's memtable skip
  // list one after another (each insert starts from the previous one's position) instead of a
  // search from the top for every row; at 10k items and 18k events/s that is ~5% of the server's
  // CPU per request.
  std::sort(changes.users.begin(), changes.users.end());
  std::sort(changes.items.begin(), changes.items.end());
  const bool new_sources = sources.size() > sources_written_;
  if (changes.empty() && !identity_pending_ && !new_sources) return false;

  const absl::Time start = absl::Now();
  std::unique_ptr<StateBatch> batch = writer_->NewBatch();
  if (identity_pending_) {
    batch->PutIdentity(algorithm_, dim_, fingerprint_, config_toml_);
    identity_pending_ = false;
  }
  for (size_t s = sources_written_; s < sources.size(); ++s) {
    batch->PutSource(static_cast<int32_t>(s), sources[s]);
  }
  sources_written_ = sources.size();
  for (int32_t row : changes.erased_users) batch->DeleteUser(row);
  for (int32_t row : changes.users) {
    scratch_.clear();
    learner.EncodeUser(row, &scratch_);
    batch->PutUser(row, scratch_);
    scratch_.clear();
    learner.EncodeHistory(row, &scratch_);
    batch->PutHistory(row, scratch_);
  }
  for (int32_t row : changes.items) {
    scratch_.clear();
    learner.EncodeItem(row, &scratch_);
    batch->PutItem(row, scratch_);
  }
  scratch_.clear();
  learner.EncodeGlobals(&scratch_);
  batch->PutGlobals(scratch_, learner.events_applied(), learner.users().live(),
                    learner.items().live());
  for (const auto& [key, offset] : positions) batch->PutPosition(key.first, key.second, offset);
  const int64_t version = queued_version_.load(std::memory_order_relaxed) + 1;
  batch->PutModelVersion(version);
  queued_version_.store(version, std::memory_order_relaxed);
  const double encode_ms = absl::ToDoubleMilliseconds(absl::Now() - start);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.last_encode_ms = encode_ms;
    queue_.push_back(std::move(batch));
    queued_info_.push_back({version, learner.events_applied()});
  }
  cv_.notify_all();
  return true;
}

absl::Status Persister::Flush(learner::Learner& learner, const stream::AppliedPositions& positions,
                              const std::vector<std::string>& sources, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  // Wait for the queue to have room, queue the rest, then wait for it to drain.
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!cv_.wait_for(lock, std::chrono::milliseconds(50),
                        [this] { return queue_.size() <= (writing_ ? 1u : 0u); })) {
        if (absl::Now() > deadline) break;
        continue;
      }
    }
    MaybeFlush(learner, positions, sources, /*force=*/true);
    break;
  }
  std::unique_lock<std::mutex> lock(mu_);
  while (!queue_.empty()) {
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "the state store did not accept the final write in time",
          stats_.last_error.empty() ? "" : ": ", stats_.last_error));
    }
    cv_.wait_for(lock, std::chrono::milliseconds(50));
  }
  return absl::OkStatus();
}

void Persister::WriterLoop() {
  pthread_setname_np(pthread_self(), "freshet-persist");
  // Writing is throughput work: on a busy machine it runs in the gaps (SCHED_IDLE: a thread that
  // answers requests preempts it at once) and catches up in bigger batches. Where the policy is
  // refused, a low nice value does most of the same.
  const sched_param idle{};
  if (sched_setscheduler(0, SCHED_IDLE, &idle) != 0) {
    setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), kWriterNice);
  }
  RateLimiter errors_logged(1, absl::Seconds(1));
  absl::Duration backoff = options_.min_backoff;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping with nothing left
    if (stop_) {
      // Destroyed without Flush(): the batch stays unwritten (the stored state is still an exact
      // earlier prefix) and the sources re-deliver it after a restart.
      return;
    }
    StateBatch* batch = queue_.front().get();
    writing_ = true;
    lock.unlock();
    const absl::Time start = absl::Now();
    const absl::Status status = writer_->Write(batch);
    const double ms = absl::ToDoubleMilliseconds(absl::Now() - start);
    lock.lock();
    writing_ = false;
    if (status.ok()) {
      stats_.batches_written += 1;
      stats_.rows_written += batch->rows();
      stats_.bytes_written += static_cast<int64_t>(batch->bytes());
      stats_.last_write_ms = ms;
      stats_.last_error.clear();
      stats_.model_version = queued_info_.front().version;
      stats_.events_persisted = queued_info_.front().events;
      queue_.pop_front();
      queued_info_.pop_front();
      backoff = options_.min_backoff;
      cv_.notify_all();
      continue;
    }
    stats_.write_errors += 1;
    stats_.last_error = std::string(status.message());
    if (errors_logged.Allow()) {
      Log(LogLevel::kError, absl::StrCat("state store write failed (will retry in ",
                                         absl::FormatDuration(backoff), "): ", status.message()));
    }
    cv_.notify_all();
    cv_.wait_for(lock, std::chrono::microseconds(absl::ToInt64Microseconds(backoff)),
                 [this] { return stop_; });
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

PersisterStats Persister::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace freshet::store
