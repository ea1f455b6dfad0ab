// Persister: writes the learner's changed rows, together with the source positions of the last
// events they include, as one atomic batch every flush interval — without pausing learning.
//
// The persister sees the learnt state only as an EncodedRowSource (store/encoded_rows.h): changed
// rows as opaque bytes and the counters written beside them; the engine adapts the learner to it
// (engine/learner_rows.h). It writes through a BatchWriter (store/state_batch.h), the RocksDB
// StateStore in production.
//
// The ingestion thread (the only thread that touches the Learner while it learns) calls
// MaybeFlush() between micro-batches. When the interval has passed and the writer thread is free,
// MaybeFlush() takes the source's changes, encodes them with the current positions and the next
// model version into one StateBatch (the consistent cut: exactly the events applied so far), and
// hands it to the writer thread, which writes it while learning goes on. While a write is in
// progress the learner keeps marking rows; the next batch simply covers more events.
//
// A failed write is retried (with backoff, forever) before anything newer is written, and is
// counted and logged: the state on disk never skips a batch, so it always corresponds to an exact
// prefix of every source. Nothing is lost meanwhile: the failed batch stays queued, and the rows
// and positions learnt after it stay marked in the learner for the next batch. The writer
// (StateStore) resumes RocksDB before each retry, so writing goes on by itself once the cause
// clears (space freed on a full disk, file descriptors closed). Until then the persister is
// unhealthy (Health()): the server reports not ready and refuses events it cannot persist.
#ifndef FRESHET_STORE_PERSISTER_H_
#define FRESHET_STORE_PERSISTER_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "common/mutex.h"
#include "store/encoded_rows.h"
#include "store/state_batch.h"
#include "stream/applied_positions.h"

namespace freshet::store {

struct PersisterStats {
  int64_t batches_written = 0;
  int64_t rows_written = 0;  // user, item and deletion entries
  int64_t bytes_written = 0;
  int64_t write_errors = 0;      // failed attempts (each retried)
  int64_t events_persisted = 0;  // events_applied as of the latest written batch
  int64_t model_version = 0;     // version of the latest written batch
  double last_write_ms = 0;      // duration of the latest successful write
  double last_encode_ms = 0;     // time the ingestion thread spent encoding the latest batch
  std::string last_error;        // of the latest failed attempt, cleared by a success
  // Health: false while writes fail (the latest attempt failed, or the writer refuses writes).
  bool healthy = true;
  int64_t consecutive_errors = 0;  // failed attempts since the latest success
  double since_last_write_s = 0;   // since the latest successful write (or the start)
};

class Persister {
 public:
  struct Options {
    // How often a batch is written while every event learnt can be delivered again by its source
    // (a file, Kafka): it sets how much a restart replays, not what a crash loses.
    absl::Duration flush_interval = absl::Milliseconds(4000);
    // How soon after the latest batch the next one is written once events were learnt that no
    // source can deliver again (FlushPromptly()): a crash before then loses them.
    absl::Duration prompt_flush_interval = absl::Milliseconds(1000);
    absl::Duration min_backoff = absl::Milliseconds(50);
    absl::Duration max_backoff = absl::Seconds(5);
  };

  // `writer` must outlive the persister. `model_version` is the version stored so far (the next
  // batch writes model_version + 1). Nothing is written before Start().
  Persister(BatchWriter* writer, const Options& options, int64_t model_version);
  ~Persister();  // Stop()

  // Starts the writer thread; idempotent, and nothing once Stop() was called. Batches queued
  // before it wait for it (Flush() times out without it).
  void Start() ABSL_LOCKS_EXCLUDED(stop_mu_, mu_);

  // Stops and joins the writer thread; idempotent. A batch not yet written stays unwritten (the
  // stored state is still an exact earlier prefix): call Flush() first for a clean shutdown.
  // Nothing is written after it.
  void Stop() ABSL_LOCKS_EXCLUDED(stop_mu_, mu_);

  Persister(const Persister&) = delete;
  Persister& operator=(const Persister&) = delete;

  // Called by the thread that drives the learnt state, which holds `rows` and `positions` still
  // for the call (EncodedRowSource). Queues a batch when `force` or the interval has passed,
  // there is something to write and no earlier batch is waiting. `sources` names the streams by
  // index (written once, in the first batch). Returns true when a batch was queued.
  bool MaybeFlush(EncodedRowSource& rows, const stream::AppliedPositions& positions,
                  const std::vector<std::string>& sources, bool force = false)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Queues everything not yet written and waits until it is written, or `timeout` passes
  // (DeadlineExceeded, with the latest write error if any).
  absl::Status Flush(EncodedRowSource& rows, const stream::AppliedPositions& positions,
                     const std::vector<std::string>& sources, absl::Duration timeout)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Marks the first batch to also write the state's identity (algorithm, dimension, config) and
  // every source name: for a new or reset store.
  void WriteIdentity(std::string algorithm, int dim, uint64_t fingerprint, std::string config_toml);

  // The event ids already stored: numbers [lowest, next) (StateStore::LoadEventIds). Batches
  // write the ids numbered `next` and later, and delete the stored ones the positions have
  // forgotten. Without a call every id held is written with the first batch.
  void SetStoredEventIds(int64_t lowest, int64_t next) {
    ids_forgotten_from_ = lowest;
    ids_written_ = next;
  }

  // Any thread: events were learnt that no source can deliver again (POST /v1/events without a
  // broker), so the next batch is due prompt_flush_interval after the latest one rather than
  // flush_interval. Call it after learning them (a batch taken in between already holds them;
  // the next one then merely comes early).
  void FlushPromptly() { prompt_.store(true, std::memory_order_relaxed); }

  // True when the flush interval (or the prompt one, see FlushPromptly()) has passed since the
  // last batch was queued.
  bool FlushDue() const { return absl::Now() - last_flush_ >= Interval(); }

  PersisterStats stats() const ABSL_LOCKS_EXCLUDED(mu_);
  // OK while batches are written; otherwise Unavailable, saying since when writes fail, how
  // often they were tried and the latest error. Nothing learnt is dropped meanwhile (see above).
  absl::Status Health() const ABSL_LOCKS_EXCLUDED(mu_);
  bool healthy() const { return Health().ok(); }
  // Version of the latest queued batch (what serving reports as the model version).
  int64_t model_version() const { return queued_version_.load(std::memory_order_relaxed); }

 private:
  void WriterLoop() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Duration Interval() const {
    return prompt_.load(std::memory_order_relaxed)
               ? std::min(options_.flush_interval, options_.prompt_flush_interval)
               : options_.flush_interval;
  }
  // A failed attempt to write (or to recover the writer).
  void RecordFailure(const absl::Status& status, absl::Duration backoff)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // True when the queue has room for a batch: none waiting beyond the one being written.
  bool HasRoom() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return queue_.size() <= (writing_ ? 1u : 0u);
  }
  // Waits up to `timeout` for HasRoom(); returns it.
  bool WaitForRoom(absl::Duration timeout) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits up to `timeout`, less once Stop() is called or, with `or_batch`, a batch is queued.
  void Sleep(absl::Duration timeout, bool or_batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  BatchWriter* const writer_;
  const Options options_;
  // Only the thread that drives the learner touches these (MaybeFlush(), Flush(), FlushDue(),
  // WriteIdentity(), SetStoredEventIds()): no lock.
  absl::Time last_flush_;
  std::atomic<int64_t> queued_version_;
  bool identity_pending_ = false;
  std::string algorithm_, config_toml_;
  int dim_ = 0;
  uint64_t fingerprint_ = 0;
  size_t sources_written_ = 0;
  int64_t ids_written_ = 0;         // event ids numbered below this are stored
  int64_t ids_forgotten_from_ = 0;  // stored event ids numbered below this are deleted
  std::string scratch_;
  size_t last_batch_bytes_ = 0;  // of the latest batch encoded (MaybeFlush's thread)
  // Set by FlushPromptly() on any thread; cleared by MaybeFlush() before it takes the changes.
  std::atomic<bool> prompt_{false};

  mutable Mutex mu_;
  CondVar cv_;  // a batch queued, a batch written or failed, Stop()
  // At most one waiting + the one in flight.
  std::deque<std::unique_ptr<StateBatch>> queue_ ABSL_GUARDED_BY(mu_);
  struct QueuedInfo {
    int64_t version;
    int64_t events;
  };
  std::deque<QueuedInfo> queued_info_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  PersisterStats stats_ ABSL_GUARDED_BY(mu_);
  absl::Time last_success_ ABSL_GUARDED_BY(mu_);   // latest successful write (or the start)
  absl::Time failing_since_ ABSL_GUARDED_BY(mu_);  // first failed attempt after the latest success
  RateLimiter errors_logged_{1, absl::Seconds(1)};

  // Serialises Stop(), which joins the writer thread (never taken by that thread); before mu_.
  Mutex stop_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::thread writer_thread_ ABSL_GUARDED_BY(stop_mu_);
};

}  // namespace freshet::store

#endif  // FRESHET_STORE_PERSISTER_H_
