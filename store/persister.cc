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
// While idle, how often the writer thread asks the writer whether it stopped by itself.
constexpr absl::Duration kIdleHealthCheck = absl::Seconds(1);
}  // namespace

Persister::Persister(BatchWriter* writer, const Options& options, int64_t model_version)
    : writer_(writer),
      options_(options),
      last_flush_(absl::Now()),
      queued_version_(model_version),
      last_success_(absl::Now()) {
  stats_.model_version = model_version;
}

Persister::~Persister() { Stop(); }

void Persister::Start() {
  MutexLock stop_lock(&stop_mu_);
  {
    MutexLock lock(&mu_);
    if (stop_) return;
  }
  if (!writer_thread_.joinable()) writer_thread_ = std::thread([this] { WriterLoop(); });
}

void Persister::Stop() {
  MutexLock stop_lock(&stop_mu_);
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  cv_.SignalAll();
  if (writer_thread_.joinable()) writer_thread_.join();
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

bool Persister::MaybeFlush(EncodedRowSource& rows, const stream::AppliedPositions& positions,
                           const std::vector<std::string>& sources, bool force) {
  const absl::Time now = absl::Now();
  if (!force && now - last_flush_ < Interval()) return false;
  {
    MutexLock lock(&mu_);
    // One batch in flight and none waiting: otherwise keep accumulating in the learner.
    if (!HasRoom()) return false;
  }
  last_flush_ = now;
  // Cleared before the changes are taken: events learnt after them set it again.
  prompt_.store(false, std::memory_order_relaxed);
  ChangedRows changes = rows.TakeChanges();
  // Keys are big-endian row numbers: rows in ascending order insert into RocksDB's memtable skip
  // list one after another (each insert starts from the previous one's position) instead of a
  // search from the top for every row; at 10k items and 18k events/s that is ~5% of the server's
  // CPU per request.
  std::sort(changes.users.begin(), changes.users.end());
  std::sort(changes.items.begin(), changes.items.end());
  const bool new_sources = sources.size() > sources_written_;
  const bool new_ids =
      positions.next_id_seq() != ids_written_ || positions.first_id_seq() != ids_forgotten_from_;
  if (changes.empty() && !identity_pending_ && !new_sources && !new_ids) return false;

  const absl::Time start = absl::Now();
  // Room for the last batch and an eighth more: a flush writes mostly the same rows each time.
  std::unique_ptr<StateBatch> batch = writer_->NewBatch(last_batch_bytes_ + last_batch_bytes_ / 8);
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
    rows.EncodeUser(row, &scratch_);
    batch->PutUser(row, scratch_);
    scratch_.clear();
    rows.EncodeHistory(row, &scratch_);
    batch->PutHistory(row, scratch_);
  }
  for (int32_t row : changes.items) {
    scratch_.clear();
    rows.EncodeItem(row, &scratch_);
    batch->PutItem(row, scratch_);
  }
  scratch_.clear();
  rows.EncodeGlobals(&scratch_);
  batch->PutGlobals(scratch_, rows.events_applied(), rows.live_users(), rows.live_items());
  for (const auto& [key, offset] : positions) batch->PutPosition(key.first, key.second, offset);
  // The ids accepted since the last batch, and the deletion of those forgotten since: the stored
  // ids are always exactly those the positions held when this cut was taken.
  positions.ForEachIdFrom(ids_written_,
                          [&](int64_t seq, absl::string_view id) { batch->PutEventId(seq, id); });
  ids_written_ = positions.next_id_seq();
  if (positions.first_id_seq() > ids_forgotten_from_) {
    batch->ForgetEventIds(ids_forgotten_from_, positions.first_id_seq());
  }
  ids_forgotten_from_ = positions.first_id_seq();
  const int64_t version = queued_version_.load(std::memory_order_relaxed) + 1;
  batch->PutModelVersion(version);
  queued_version_.store(version, std::memory_order_relaxed);
  last_batch_bytes_ = batch->bytes();
  const double encode_ms = absl::ToDoubleMilliseconds(absl::Now() - start);
  {
    MutexLock lock(&mu_);
    stats_.last_encode_ms = encode_ms;
    queue_.push_back(std::move(batch));
    queued_info_.push_back({version, rows.events_applied()});
  }
  cv_.SignalAll();
  return true;
}

absl::Status Persister::Flush(EncodedRowSource& rows, const stream::AppliedPositions& positions,
                              const std::vector<std::string>& sources, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  // Wait for the queue to have room, queue the rest, then wait for it to drain.
  while (true) {
    bool room = false;
    {
      MutexLock lock(&mu_);
      room = WaitForRoom(absl::Milliseconds(50));
    }
    if (room) {
      MaybeFlush(rows, positions, sources, /*force=*/true);
      break;
    }
    if (absl::Now() > deadline) break;
  }
  MutexLock lock(&mu_);
  while (!queue_.empty()) {
    if (absl::Now() > deadline) {
      // What a stop without this write loses: the sources deliver it again only from the stored
      // positions, and events posted straight to the learner have no source.
      const int64_t unpersisted = rows.events_applied() - stats_.events_persisted;
      return absl::DeadlineExceededError(absl::StrCat(
          "the state store did not accept the final write within ", absl::FormatDuration(timeout),
          ": ", unpersisted, " events learnt are NOT persisted (the stored state holds ",
          stats_.events_persisted, " of ", rows.events_applied(), ")",
          stats_.last_error.empty() ? "" : "; latest error: ", stats_.last_error,
          ". At the next start the sources resume after the stored positions, so a broker or "
          "file delivers those events again; events posted directly (POST /v1/events without a "
          "broker) are lost"));
    }
    cv_.WaitFor(&mu_, absl::Milliseconds(50));
  }
  return absl::OkStatus();
}

bool Persister::WaitForRoom(absl::Duration timeout) {
  const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(timeout);
  while (!HasRoom()) {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= left.zero()) return false;
    cv_.WaitFor(&mu_, absl::FromChrono(left));
  }
  return true;
}

void Persister::Sleep(absl::Duration timeout, bool or_batch) {
  const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(timeout);
  while (!stop_ && !(or_batch && !queue_.empty())) {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= left.zero()) return;
    cv_.WaitFor(&mu_, absl::FromChrono(left));
  }
}

void Persister::RecordFailure(const absl::Status& status, absl::Duration backoff) {
  if (stats_.consecutive_errors == 0) failing_since_ = absl::Now();
  stats_.write_errors += 1;
  stats_.consecutive_errors += 1;
  stats_.last_error = std::string(status.message());
  int64_t suppressed = 0;
  if (errors_logged_.Allow(&suppressed)) {
    Log(LogLevel::kError,
        absl::StrCat(
            "state store write failed (attempt ", stats_.consecutive_errors, ", will retry in ",
            absl::FormatDuration(backoff), "; learnt changes are kept until written",
            suppressed > 0 ? absl::StrCat("; ", suppressed, " similar lines suppressed") : "",
            "): ", status.message()));
  }
}

absl::Status Persister::Health() const {
  const absl::Status writer = writer_->Health();
  MutexLock lock(&mu_);
  if (stats_.consecutive_errors == 0 && writer.ok()) return absl::OkStatus();
  const absl::Time now = absl::Now();
  if (stats_.consecutive_errors == 0) {
    return absl::UnavailableError(absl::StrCat("the state store cannot write: ", writer.message()));
  }
  return absl::UnavailableError(absl::StrCat(
      "the state store cannot write: ", stats_.consecutive_errors, " failed attempts over ",
      absl::FormatDuration(absl::Trunc(now - failing_since_, absl::Milliseconds(1))),
      " (the latest successful write was ",
      absl::FormatDuration(absl::Trunc(now - last_success_, absl::Milliseconds(1))),
      " ago); latest error: ", stats_.last_error));
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
  absl::Duration backoff = options_.min_backoff;
  MutexLock lock(&mu_);  // released (mu_.unlock()) around every call into the writer
  while (true) {
    if (queue_.empty() && !stop_) {
      Sleep(kIdleHealthCheck, /*or_batch=*/true);
      if (queue_.empty() && !stop_) {
        // Idle. A writer that stopped by itself (RocksDB, after a background flush failed) is
        // recovered now rather than at the next batch, so that health says so at once.
        mu_.unlock();
        absl::Status recovered = writer_->Health();
        if (!recovered.ok()) recovered = writer_->Recover();
        mu_.lock();
        if (recovered.ok()) {
          if (stats_.consecutive_errors > 0 && queue_.empty()) {
            stats_.consecutive_errors = 0;
            stats_.last_error.clear();
            backoff = options_.min_backoff;
          }
          continue;
        }
        RecordFailure(recovered, backoff);
        Sleep(backoff, /*or_batch=*/false);
        backoff = std::min(backoff * 2, options_.max_backoff);
        continue;
      }
    }
    if (queue_.empty()) return;  // stopping with nothing left
    if (stop_) {
      // Destroyed without Flush(): the batch stays unwritten (the stored state is still an exact
      // earlier prefix) and the sources re-deliver it after a restart.
      return;
    }
    StateBatch* batch = queue_.front().get();
    writing_ = true;
    mu_.unlock();
    const absl::Time start = absl::Now();
    const absl::Status status = writer_->Write(batch);
    const double ms = absl::ToDoubleMilliseconds(absl::Now() - start);
    mu_.lock();
    writing_ = false;
    if (status.ok()) {
      if (stats_.consecutive_errors > 0) {
        Log(LogLevel::kInfo,
            absl::StrCat("state store writes resumed after ", stats_.consecutive_errors,
                         " failed attempts over ",
                         absl::FormatDuration(
                             absl::Trunc(absl::Now() - failing_since_, absl::Milliseconds(1)))));
      }
      stats_.batches_written += 1;
      stats_.rows_written += batch->rows();
      stats_.bytes_written += static_cast<int64_t>(batch->bytes());
      stats_.last_write_ms = ms;
      stats_.last_error.clear();
      stats_.consecutive_errors = 0;
      last_success_ = absl::Now();
      stats_.model_version = queued_info_.front().version;
      stats_.events_persisted = queued_info_.front().events;
      queue_.pop_front();
      queued_info_.pop_front();
      backoff = options_.min_backoff;
      cv_.SignalAll();
      continue;
    }
    // The batch stays at the front of the queue: retried, as it is, before anything newer.
    RecordFailure(status, backoff);
    cv_.SignalAll();
    Sleep(backoff, /*or_batch=*/false);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

PersisterStats Persister::stats() const {
  const bool writer_ok = writer_->Health().ok();
  MutexLock lock(&mu_);
  PersisterStats s = stats_;
  s.healthy = writer_ok && s.consecutive_errors == 0;
  s.since_last_write_s = absl::ToDoubleSeconds(absl::Now() - last_success_);
  return s;
}

}  // namespace freshet::store
