// Engine: the running freshet process — sources -> exactly-once filter -> learner -> persister —
// and the read side the server answers from.
//
// One ingestion thread (Run()) polls every source in turn, drops events at or below their
// partition's last applied position (re-deliveries after a rebalance or a restart), learns from
// the rest in micro-batches, and lets the Persister write the changed rows with the positions
// they include. Readers (Recommend(), UserInfo(), ...) may call from any thread at any time: they
// take a shared lock that learning takes exclusively for at most kApplySlice events at a time, so
// a read never waits behind a whole micro-batch.
//
// On start the stored state is loaded and every source resumes after its stored position: with a
// data directory, after any crash each event has affected the stored state exactly once.
#ifndef FRESHET_SERVING_ENGINE_H_
#define FRESHET_SERVING_ENGINE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/collective.h"
#include "common/rw_lock.h"
#include "config/config.h"
#include "kernels/backend.h"
#include "learner/learner.h"
#include "store/data_dir.h"
#include "store/persister.h"
#include "store/rocksdb/state_store.h"
#include "store/snapshot.h"
#include "stream/applied_positions.h"
#include "stream/event_source.h"

namespace freshet::serving {

struct EngineOptions {
  std::string data_dir;  // empty: nothing is persisted
  std::string algorithm = "bpr";
  config::Config config;
  // Start from an empty state even when the data directory holds one (which is deleted),
  // instead of refusing a directory written with another algorithm or dimension.
  bool reset = false;
  // This engine's rank of a replica group (common/collective.h; not owned, must outlive the
  // engine), or null to learn alone. Run() exchanges the item model's changes with the other
  // ranks every config.replica_sync_ms (learner.h, "Replicas"). The group starts and stops
  // together: an engine stopping (Run's `stop`) stops the others at their next exchange, and with
  // exit_when_done every rank returns once all have finished their sources. A rank that misses
  // an exchange for config.replica_timeout_ms makes the others stop with its error.
  Collective* replicas = nullptr;
};

// A user's freshness, as the API reports it.
struct UserInfo {
  bool known = false;
  int64_t events = 0;        // events applied for the user
  int64_t last_event_ts = 0;  // event time of the latest, epoch ms
  double applied_ms_ago = -1;  // wall time since the latest was applied here; -1: not here
};

// One recommended or similar item, by external id.
struct ScoredId {
  std::string item;
  float score = 0;
};

// An answer to a recommendation request, with the freshness the API reports.
struct RecommendResult {
  std::vector<ScoredId> items;
  bool personalized = false;  // false: popularity (unknown user)
  UserInfo user;
  int64_t model_version = 0;
};

struct EngineStats {
  int64_t events_applied = 0;
  int64_t events_filtered = 0;  // admission filter
  int64_t events_rejected = 0;  // refused by the learner's own check (Learner::events_rejected)
  int64_t nonfinite_skips = 0;  // model updates skipped as non-finite
  int64_t duplicates_dropped = 0;     // at or below their partition's applied offset
  int64_t duplicate_ids_dropped = 0;  // an id among the remembered ones (events.idempotency_keys)
  int64_t idempotency_keys = 0;       // ids remembered now
  int64_t events_polled = 0;
  int64_t source_errors = 0;
  int64_t events_malformed = 0;  // summed over the sources
  int64_t events_direct = 0;     // learnt through ApplyDirect()
  int64_t latest_event_ts = 0;   // event time of the newest applied event (ms)
  int64_t scoring_batches = 0;   // batched top-K passes over the items
  int64_t scoring_queries = 0;   // recommendation queries answered by them
  double last_applied_ago_s = -1;  // wall time since an event was last applied; -1 none yet
  int64_t users = 0;
  int64_t items = 0;
  int64_t model_version = 0;  // latest queued batch
  int64_t device_fallbacks = 0;  // micro-batches the device failed and the host learnt
  // Replicas (EngineOptions::replicas): exchanges done, item rows received from the other ranks,
  // items first met through them, and the last exchange's wall time (from taking this rank's
  // changes to merging everyone's, waiting for the others included).
  int64_t replica_exchanges = 0;
  int64_t replica_rows_received = 0;
  int64_t replica_items_added = 0;
  double replica_last_exchange_ms = 0;
  store::PersisterStats persister;
};

class Engine {
 public:
  // Opens (or creates) the data directory, takes its lock, loads the stored state. Errors:
  // FailedPrecondition when another process holds the directory or its state was written with a
  // different algorithm or dimension (unless options.reset); DataLoss for corrupt state.
  static absl::StatusOr<std::unique_ptr<Engine>> Open(const EngineOptions& options,
                                                      const kernels::Backend* backend);
  ~Engine();

  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  struct SourceOptions {
    double events_per_second = 0;  // 0: as fast as it delivers
  };
  // Adds a source before Run(). A source delivers one or more streams (a file: one; a Kafka
  // source: one per topic), numbered from 0 in Event::position.stream; the engine numbers all
  // streams globally, this source's from NextStream() (call it before creating the source, to
  // look up positions). `stream_names` identify the streams across restarts (e.g.
  // "file:/data/u.data", "kafka:clicks"): FailedPrecondition if the stored state had another
  // stream at one of those indices. Seek a file source to AppliedOffset(NextStream(), 0) + 1
  // before adding it.
  absl::Status AddSource(std::unique_ptr<stream::EventSource> source,
                         std::vector<std::string> stream_names, SourceOptions options);
  absl::Status AddSource(std::unique_ptr<stream::EventSource> source, std::string name) {
    return AddSource(std::move(source), std::vector<std::string>{std::move(name)}, SourceOptions{});
  }
  int32_t NextStream() const { return static_cast<int32_t>(stream_names_.size()); }
  // The source names by global stream index.
  const std::vector<std::string>& stream_names() const { return stream_names_; }
  // Called on the ingestion thread after each successful persisted write, with the positions
  // that write included (e.g. to commit Kafka group offsets for lag monitoring).
  void OnPersisted(std::function<void(const std::vector<stream::SourcePosition>&)> fn) {
    on_persisted_ = std::move(fn);
  }

  // The last applied offset of a stream partition, or -1. Thread-safe.
  int64_t AppliedOffset(int32_t stream, int32_t partition) const;

  struct RunOptions {
    bool exit_when_done = false;  // return once every finite source is finished (and flushed)
    absl::Duration flush_timeout = absl::Seconds(60);
  };
  // The ingestion loop, until `stop` turns true (or the sources are done, with exit_when_done).
  // Always ends with a final flush; returns its status, or the first unrecoverable source error.
  absl::Status Run(const std::atomic<bool>& stop, const RunOptions& options);

  // --- Read side: thread-safe, callable while Run() learns.
  absl::Status Recommend(absl::string_view user, int k, bool exclude_seen,
                         learner::Recommendation* out) const;
  UserInfo User(absl::string_view user) const;
  // Top-k for a user with freshness, leaving out hidden items and `exclude_items` (external ids;
  // unknown ones are ignored).
  absl::Status RecommendFor(absl::string_view user, int k, bool exclude_seen,
                            const std::vector<std::string>& exclude_items,
                            RecommendResult* out) const;
  // As RecommendFor, answered through `done` (called once, on the engine's scoring thread or the
  // caller's): with serve.batch_scoring, queries of concurrent requests are scored together in
  // one pass over the items by a dedicated thread, and the caller's thread is not held meanwhile.
  using RecommendDone = std::function<void(absl::StatusOr<RecommendResult>)>;
  void RecommendAsync(absl::string_view user, int k, bool exclude_seen,
                      const std::vector<std::string>& exclude_items, RecommendDone done) const;

  // Items similar to `item` (see Learner::Similar), hidden items left out.
  absl::Status SimilarTo(absl::string_view item, int k, std::vector<ScoredId>* out) const;
  // Item availability: a hidden item is left out of every answer but keeps learning.
  // Persisted at once with a data dir (and part of snapshots).
  absl::Status SetItemHidden(const std::string& item, bool hidden);
  std::vector<std::string> HiddenItems() const;
  EngineStats stats() const;
  // OK while the learnt state can be persisted (or nothing is: no data dir); Unavailable, with
  // the store's error, while writes fail. The persister keeps what it could not write and
  // retries; meanwhile the server is not ready and refuses events that have no source to
  // replay them (POST /v1/events without a broker).
  absl::Status PersistenceHealth() const;
  // OK unless Run() is running and its loop has made no round for `stall` (stuck, e.g. in a
  // source or a store call): Unavailable saying for how long.
  absl::Status IngestHealth(absl::Duration stall) const;
  int64_t model_version() const;
  const std::string& algorithm() const { return options_.algorithm; }
  // Learns events directly (POST /v1/events without a broker); they carry no source position.
  // Events whose id the exactly-once filter remembers are dropped (a client's retry); returns how
  // many. With replicas it waits for an exchange in progress.
  int64_t ApplyDirect(absl::Span<const stream::Event> events);

  // --- Snapshots of the running engine (thread-safe). FailedPrecondition without a data dir.
  absl::StatusOr<store::SnapshotManifest> CreateSnapshot(const std::string& id);
  // Tests: `hook` runs inside every CreateSnapshot() while it holds the store. Set it before
  // other threads use the engine.
  void SetSnapshotHookForTesting(std::function<void()> hook) { snapshot_hook_ = std::move(hook); }
  absl::StatusOr<std::vector<store::SnapshotManifest>> ListSnapshots() const;
  absl::StatusOr<store::SnapshotManifest> InspectSnapshot(const std::string& id) const;
  absl::Status DeleteSnapshot(const std::string& id);
  // Restores snapshot `id` while running: the ingestion thread verifies it (DataLoss for a damaged
  // one, nothing changed), writes everything pending, swaps the database and a learner loaded from
  // the snapshot in at once, and rewinds every source to the snapshot's positions. Waits for that
  // (DeadlineExceeded after `timeout`; the restore may still happen). Needs Run() to be running.
  absl::Status RestoreSnapshot(const std::string& id, absl::Duration timeout);

  // Runs `fn` with shared (read) access to the learner.
  template <typename Fn>
  auto WithLearner(Fn&& fn) const {
    std::shared_lock<RwLock> lock(mu_);
    return fn(static_cast<const learner::Learner&>(*learner_));
  }

  // Events learnt per exclusive-lock hold.
  static constexpr size_t kApplySlice = 512;
  // The longest an accepted event waits to be learnt with the ones after it.
  static constexpr absl::Duration kApplyDelay = absl::Milliseconds(2);

 private:
  explicit Engine(const EngineOptions& options) : options_(options) {}
  // Learns `events` in slices of kApplySlice, taking mu_ (exclusive) for each.
  void ApplyLocked(absl::Span<const stream::Event> events);
  // Learns `events` with mu_ held exclusively by the caller.
  void ApplyHeld(absl::Span<const stream::Event> events);

  // Batched scoring: RecommendAsync() queues inner-product queries; the scoring thread
  // (ScorerLoop) takes everything queued, up to kMaxBatch, scores it in one TopK call under the
  // shared lock and answers each. Requests arriving meanwhile form the next batch, so batches
  // grow with load and no request waits for a timer.
  static constexpr size_t kMaxBatch = 256;
  // A queued asynchronous request (RecommendAsync).
  struct AsyncScore {
    std::vector<float> vector;
    std::vector<int32_t> exclude;
    int k = 0;
    RecommendResult result;  // user freshness filled in when queued
    RecommendDone done;
  };
  void ScorerLoop() const;
  // On the ingestion thread: performs a pending RestoreSnapshot().
  void ServeRestoreRequest();
  absl::Status RestoreOnIngestThread(const std::string& id);
  void NotifyPersisted();
  // On the ingestion thread: one replica exchange (with its catch-up, after a join), sending
  // `flags` (kReplica*) and returning the group's: any rank stopping, every rank done.
  struct GroupState {
    bool stopping = false;
    bool all_done = false;
  };
  absl::StatusOr<GroupState> ExchangeReplicas(uint8_t flags);
  static constexpr uint8_t kReplicaDone = 1;      // every source of this rank is finished
  static constexpr uint8_t kReplicaStopping = 2;  // this rank stops after this exchange

  struct Source {
    std::unique_ptr<stream::EventSource> source;
    int32_t first_stream = 0;
    std::string name;
    SourceOptions options;
    double tokens = 0;  // rate limiting
    absl::Time last_refill;
  };

  const EngineOptions options_;
  std::optional<store::DataDirLock> lock_;
  std::unique_ptr<store::StateStore> store_;
  std::unique_ptr<store::Persister> persister_;
  std::unique_ptr<learner::Learner> learner_;
  mutable RwLock mu_;  // learner_; a waiting writer goes before later readers
  // Positions: written by the ingestion thread only. Ids: also by ApplyDirect(), which holds mu_
  // (exclusive) around remembering ids and learning their events, so a persisted cut never holds
  // an id without its event.
  stream::AppliedPositions applied_;
  mutable std::mutex applied_mu_;  // guards applied_; taken after mu_ where both are held
  std::vector<Source> sources_;
  std::vector<std::string> stream_names_;
  std::function<void(const std::vector<stream::SourcePosition>&)> on_persisted_;
  // Queued batches not yet known to be written: (model version, positions included).
  std::deque<std::pair<int64_t, std::vector<stream::SourcePosition>>> unacknowledged_;
  std::vector<std::string> stored_sources_;
  // A pending RestoreSnapshot(): id, and the result once done.
  std::mutex restore_mu_;
  // Held while store_ is replaced (restore) and by the work that uses it on other threads
  // (snapshots, item availability). Reads never take it.
  mutable std::mutex store_mu_;
  // Held only while persister_ is replaced (restore) and while another thread reads its health or
  // counters: never across storage work, so /readyz, /metrics and POST never wait for a snapshot.
  mutable std::mutex persister_mu_;
  // The version of the latest queued batch, set by the ingestion thread (and by Open and a
  // restore); what every answer reports, without a lock.
  std::atomic<int64_t> model_version_{0};
  // Tests: called inside CreateSnapshot() with the store in use (store_mu_ held).
  std::function<void()> snapshot_hook_;
  std::condition_variable restore_cv_;
  std::string restore_id_;
  bool restore_pending_ = false;
  bool restore_done_ = false;
  absl::Status restore_result_;
  std::atomic<bool> running_{false};
  std::atomic<int64_t> loop_round_ns_{0};  // when Run()'s loop last began a round
  const kernels::Backend* backend_ = nullptr;
  std::atomic<int64_t> duplicates_{0};
  std::atomic<int64_t> duplicate_ids_{0};
  std::atomic<int64_t> ids_held_{0};  // applied_.ids(), for stats() without applied_mu_
  std::atomic<int64_t> direct_{0};
  mutable std::atomic<int64_t> scoring_batches_{0};
  mutable std::atomic<int64_t> scoring_queries_{0};
  mutable std::mutex scorer_mu_;
  mutable std::condition_variable scorer_cv_;
  mutable std::vector<std::unique_ptr<AsyncScore>> scorer_queue_;
  mutable bool scorer_stop_ = false;
  mutable std::thread scorer_;  // started by the first RecommendAsync()
  std::atomic<int64_t> malformed_{0};
  std::atomic<int64_t> last_applied_ns_{0};
  mutable std::mutex hidden_mu_;
  std::vector<std::string> hidden_;  // sorted ids
  // Call these with mu_ held (shared). Sorted rows of the hidden items known to the learner; the
  // same plus the known ones of `exclude_items`; a user's freshness.
  std::vector<int32_t> HiddenRowsLocked() const;
  std::vector<int32_t> ExcludedRowsLocked(const std::vector<std::string>& exclude_items) const;
  UserInfo UserInfoLocked(absl::string_view user) const;
  // With applied_mu_ held: loads the stored event ids into applied_. Returns the lowest stored
  // number (what Persister::SetStoredEventIds() needs), or applied_.next_id_seq() with none.
  absl::StatusOr<int64_t> LoadEventIdsLocked();
  // On the ingestion thread: model_version_ = the persister's latest queued version.
  void PublishModelVersion();
  std::atomic<int64_t> polled_{0};
  std::atomic<int64_t> source_errors_{0};
  // Held by an exchange from taking this rank's changes to merging everyone's; ApplyDirect() waits
  // for it (the ingestion thread itself learns nothing meanwhile).
  std::mutex exchange_mu_;
  std::atomic<int64_t> replica_exchanges_{0};
  std::atomic<int64_t> replica_rows_received_{0};
  std::atomic<int64_t> replica_items_added_{0};
  std::atomic<int64_t> replica_last_exchange_us_{0};
};

}  // namespace freshet::serving

#endif  // FRESHET_SERVING_ENGINE_H_
