// IngestLoop: the engine's write path — polls every source in turn, passes each event through
// the exactly-once filter, learns the rest in micro-batches, lets the durable state flush, tells
// the sources which positions are durable, exchanges with the replica group, and performs online
// restores.
//
// Thread safety: AddSource() before Run(); Run() on one thread (the ingest thread), which alone
// polls the sources. RequestRestore(), Health() and stats() may be called from any thread while
// Run() runs; RequestRestore() waits for the ingest thread to perform the restore.
#ifndef FRESHET_ENGINE_INGEST_LOOP_H_
#define FRESHET_ENGINE_INGEST_LOOP_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/mutex.h"
#include "config/config.h"
#include "engine/catalog.h"
#include "engine/durable_state.h"
#include "engine/exactly_once_filter.h"
#include "engine/live_model.h"
#include "engine/replicas/replica_sync.h"
#include "kernels/backend.h"
#include "stream/event_source.h"

namespace freshet::engine {

struct SourceOptions {
  double events_per_second = 0;  // 0: as fast as it delivers
};

struct RunOptions {
  bool exit_when_done = false;  // return once every finite source is finished (and flushed)
  absl::Duration flush_timeout = absl::Seconds(60);
};

struct IngestStats {
  int64_t events_polled = 0;
  int64_t source_errors = 0;
  int64_t events_malformed = 0;  // summed over the sources
};

class IngestLoop {
 public:
  // None is owned; each must outlive the loop. `durable` and `replicas` may be null (no data
  // directory; learning alone). `stored_sources` are the stream names the stored positions
  // belong to. A restore reloads `catalog` from the restored state.
  IngestLoop(const config::Config& config, const kernels::Backend* backend, LiveModel* model,
             ExactlyOnceFilter* filter, DurableState* durable, ReplicaSync* replicas,
             Catalog* catalog, std::vector<std::string> stored_sources);

  // Adds a source before Run(). A source delivers one or more streams (a file: one; a Kafka
  // source: one per topic), numbered from 0 in Event::position.stream; the loop numbers all
  // streams globally, this source's after those of the sources added before. `stream_names`
  // identify the streams across restarts ("file:/data/u.data", "kafka:clicks"):
  // FailedPrecondition if the stored state had another stream at one of those indices. The
  // source resumes after its stored positions (EventSource::Resume), or the error of that.
  absl::Status AddSource(std::unique_ptr<stream::EventSource> source,
                         std::vector<std::string> stream_names, SourceOptions options);
  const std::vector<std::string>& stream_names() const { return stream_names_; }

  // Until `stop` turns true (or the sources are done, with exit_when_done). Always ends with a
  // final flush; returns its status, or the first unrecoverable source or replica error.
  absl::Status Run(const std::atomic<bool>& stop, const RunOptions& options);

  // Asks the ingest thread to restore snapshot `id` (DurableState::Restore) and rewind every
  // source to its positions; waits for that (DeadlineExceeded after `timeout`; the restore may
  // still happen). FailedPrecondition unless Run() is running.
  absl::Status RequestRestore(const std::string& id, absl::Duration timeout);

  // OK unless Run() is running and its loop has made no round for `stall`.
  absl::Status Health(absl::Duration stall) const;
  IngestStats stats() const;

  // The longest an accepted event waits to be learnt with the ones after it.
  static constexpr absl::Duration kApplyDelay = absl::Milliseconds(2);

 private:
  struct Source {
    std::unique_ptr<stream::EventSource> source;
    int32_t first_stream = 0;  // its stream s is the loop's stream first_stream + s
    int32_t streams = 0;
    std::string name;
    SourceOptions options;
    double tokens = 0;  // rate limiting
    absl::Time last_refill;
    // The source's view of the loop's positions: its stream s is first_stream + s.
    std::function<int64_t(int32_t, int32_t)> Applied(const ExactlyOnceFilter& filter) const;
  };
  // After a flush: hands every source the positions of the latest written batch (Commit).
  void CommitDurable();
  // Records the positions of the batch just queued, to commit once it is written.
  void QueuedBatch();
  // A pending restore, performed on the ingest thread.
  void ServeRestoreRequest();
  absl::Status RestoreOnIngestThread(const std::string& id);
  absl::StatusOr<ReplicaSync::GroupState> Exchange(uint8_t flags);

  const config::Config config_;
  const kernels::Backend* const backend_;
  LiveModel* const model_;
  ExactlyOnceFilter* const filter_;
  DurableState* const durable_;
  ReplicaSync* const replicas_;
  Catalog* const catalog_;
  const std::vector<std::string> stored_sources_;
  std::vector<Source> sources_;  // the ingest thread's (and AddSource's, before Run)
  std::vector<std::string> stream_names_;
  // Queued batches not yet known to be written: (model version, positions included).
  std::deque<std::pair<int64_t, std::vector<stream::SourcePosition>>> unacknowledged_;

  Mutex restore_mu_;
  CondVar restore_cv_;
  std::string restore_id_ ABSL_GUARDED_BY(restore_mu_);
  bool restore_pending_ ABSL_GUARDED_BY(restore_mu_) = false;
  bool restore_done_ ABSL_GUARDED_BY(restore_mu_) = false;
  absl::Status restore_result_ ABSL_GUARDED_BY(restore_mu_);
  bool running_ ABSL_GUARDED_BY(restore_mu_) = false;

  std::atomic<bool> looping_{false};
  std::atomic<int64_t> loop_round_ns_{0};  // when Run()'s loop last began a round
  std::atomic<int64_t> polled_{0};
  std::atomic<int64_t> source_errors_{0};
  std::atomic<int64_t> malformed_{0};
};

}  // namespace freshet::engine

#endif  // FRESHET_ENGINE_INGEST_LOOP_H_
