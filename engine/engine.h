// Engine: the running freshet process, assembled from its parts —
//   LiveModel (live_model.h): the learner, its lock, hidden items, the published model version
//     and batched scoring; serving reads it through ModelReader (model_reader.h);
//   DurableState (durable_state.h): the data directory, its store, the persister and snapshots;
//   ExactlyOnceFilter (exactly_once_filter.h): applied positions and remembered event ids;
//   IngestLoop (ingest_loop.h): sources -> filter -> learner -> durable state, on one thread;
//   ReplicaSync (replicas/replica_sync.h): the exchanges of a replica group.
// ARCHITECTURE.md walks one event and one request through them.
//
// On Open the stored state is loaded, and every source added resumes after its stored position:
// with a data directory, after any crash each event has affected the stored state exactly once.
//
// Thread safety: Open, AddSource and Run as the owner's sequence (Run on the ingest thread); every
// other method from any thread at any time, also while Run() learns. Reads never wait on storage,
// a source or a broker.
#ifndef FRESHET_ENGINE_ENGINE_H_
#define FRESHET_ENGINE_ENGINE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "config/config.h"
#include "engine/catalog.h"
#include "engine/ingest_loop.h"
#include "engine/live_model.h"
#include "engine/model_reader.h"
#include "engine/replicas/collective.h"
#include "kernels/backend.h"
#include "store/persister.h"
#include "store/snapshot_manifest.h"
#include "stream/event.h"
#include "stream/event_source.h"

namespace freshet::engine {

class DurableState;
class ExactlyOnceFilter;
class ReplicaSync;

// Snapshot manifests as the admin API shows them (store/snapshot_manifest.h).
using store::ManifestToJson;
using store::SnapshotManifest;
using store::WriteManifestSummary;

struct EngineOptions {
  std::string data_dir;  // empty: nothing is persisted
  std::string algorithm = "bpr";
  config::Config config;
  // Start from an empty state even when the data directory holds one (which is deleted),
  // instead of refusing a directory written with another algorithm or dimension.
  bool reset = false;
  // This engine's rank of a replica group (replicas/collective.h; NewReplicaGroup in
  // replicas/replica_group.h builds it from the configuration; not owned, must outlive the
  // engine), or null to learn alone. Run() exchanges the item model's changes with the other
  // ranks every config.replica_sync_ms (learner.h, "Replicas"). The group starts and stops
  // together: an engine stopping (Run's `stop`) stops the others at their next exchange, and with
  // exit_when_done every rank returns once all have finished their sources. A rank that misses
  // an exchange for config.replica_timeout_ms makes the others stop with its error.
  Collective* replicas = nullptr;
};

struct EngineStats : ModelStats {
  int64_t duplicates_dropped = 0;     // at or below their partition's applied offset
  int64_t duplicate_ids_dropped = 0;  // an id among the remembered ones (events.idempotency_keys)
  int64_t idempotency_keys = 0;       // ids remembered now
  int64_t events_polled = 0;
  int64_t source_errors = 0;
  int64_t events_malformed = 0;  // summed over the sources
  int64_t events_direct = 0;     // learnt through ApplyDirect()
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
  // Creates the learner and, with a data directory, opens (or creates) it, takes its lock and
  // loads the stored state; starts batched scoring. Errors: FailedPrecondition when another
  // process holds the directory or its state was written with a different algorithm or
  // dimension (unless options.reset); DataLoss for corrupt state.
  static absl::StatusOr<std::unique_ptr<Engine>> Open(const EngineOptions& options,
                                                      const kernels::Backend* backend);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  using SourceOptions = engine::SourceOptions;
  using RunOptions = engine::RunOptions;
  // Adds a source before Run() (IngestLoop::AddSource): it resumes after its stored positions.
  absl::Status AddSource(std::unique_ptr<stream::EventSource> source,
                         std::vector<std::string> stream_names, SourceOptions options);
  absl::Status AddSource(std::unique_ptr<stream::EventSource> source, std::string name) {
    return AddSource(std::move(source), std::vector<std::string>{std::move(name)}, SourceOptions{});
  }
  // The source names by global stream index.
  const std::vector<std::string>& stream_names() const;
  // The counting settings of this run that differ from those its stored state was counted with,
  // when it opened ("key before -> now" each; see config::CountingChanges). Empty without one.
  const std::vector<std::string>& counting_changes() const { return counting_changes_; }
  // The last applied offset of a stream partition (global stream index), or -1.
  int64_t AppliedOffset(int32_t stream, int32_t partition) const;

  // The ingest loop (IngestLoop::Run), until `stop` turns true.
  absl::Status Run(const std::atomic<bool>& stop, const RunOptions& options);

  // --- Reads: the live model, read-only (or the reader ServeThrough() named).
  const ModelReader& model() const { return *reader_; }
  absl::Status Recommend(absl::string_view user, int k, bool exclude_seen,
                         learner::Recommendation* out) const {
    return model_->Recommend(user, k, exclude_seen, out);
  }
  UserInfo User(absl::string_view user) const { return reader_->User(user); }
  absl::Status RecommendFor(absl::string_view user, int k, bool exclude_seen,
                            const std::vector<std::string>& exclude_items,
                            RecommendResult* out) const {
    return reader_->RecommendFor(user, k, exclude_seen, exclude_items, out);
  }
  using RecommendDone = ModelReader::RecommendDone;
  void RecommendAsync(absl::string_view user, int k, bool exclude_seen,
                      const std::vector<std::string>& exclude_items, RecommendDone done) const {
    reader_->RecommendAsync(user, k, exclude_seen, exclude_items, std::move(done));
  }
  absl::Status SimilarTo(absl::string_view item, int k, std::vector<ScoredId>* out) const {
    return reader_->SimilarTo(item, k, out);
  }
  std::vector<std::string> HiddenItems() const { return reader_->HiddenItems(); }
  // The live model itself, for the parts that feed it from outside the ingest loop (a serving
  // replica's follower, the publisher to serving replicas: engine/follower/).
  LiveModel& live_model() { return *model_; }
  // Answers reads through `reader` (not owned; must outlive the engine's use) instead of the live
  // model directly: a serving replica's FollowerReader. Call before serving starts.
  void ServeThrough(const ModelReader* reader) { reader_ = reader; }
  // See LiveModel::SetFreshnessObserver (the serving tier's freshness histogram).
  void SetFreshnessObserver(std::function<void(double)> observe) {
    model_->SetFreshnessObserver(std::move(observe));
  }
  // The item catalog (titles, categories, ...), for answers; UpsertCatalog() changes it.
  const Catalog& catalog() const { return catalog_; }
  int64_t model_version() const { return model_->model_version(); }
  const std::string& algorithm() const { return options_.algorithm; }
  // Runs `fn` with shared (read) access to the learner (tools and tests).
  template <typename Fn>
  auto WithLearner(Fn&& fn) const {
    return model_->WithLearner(std::forward<Fn>(fn));
  }
  EngineStats stats() const;

  // --- Writes and admin.
  // Learns events directly (POST /v1/events without a broker); they carry no source position.
  // Events whose id the exactly-once filter remembers are dropped (a client's retry); returns how
  // many. With replicas it waits for an exchange in progress.
  int64_t ApplyDirect(absl::Span<const stream::Event> events);
  // Item availability: a hidden item is left out of every answer but keeps learning. Persisted
  // at once with a data dir (and part of snapshots).
  absl::Status SetItemHidden(const std::string& item, bool hidden);
  // Merges `entries` into the item catalog (given fields replace those of the same name, empty
  // values remove them), persisted at once with a data dir (and part of snapshots) before the
  // answers see them. Returns how many entries changed an item. A write that fails part-way (a
  // full disk) leaves the entries stored before it, which the answers then show too, and names
  // how many in its error; sending the same entries again stores the rest.
  absl::StatusOr<int64_t> UpsertCatalog(absl::Span<const CatalogEntry> entries);
  // OK while the learnt state can be persisted (or nothing is: no data dir); Unavailable, with
  // the store's error, while writes fail. The persister keeps what it could not write and
  // retries; meanwhile the server is not ready and refuses events that have no source to
  // replay them (POST /v1/events without a broker).
  absl::Status PersistenceHealth() const;
  // OK unless Run() is running and its loop has made no round for `stall` (stuck, e.g. in a
  // source or a store call): Unavailable saying for how long.
  absl::Status IngestHealth(absl::Duration stall) const;

  // Snapshots of the running engine (DurableState). FailedPrecondition without a data dir.
  absl::StatusOr<SnapshotManifest> CreateSnapshot(const std::string& id);
  absl::StatusOr<std::vector<SnapshotManifest>> ListSnapshots() const;
  absl::StatusOr<SnapshotManifest> InspectSnapshot(const std::string& id) const;
  absl::Status DeleteSnapshot(const std::string& id);
  // Restores snapshot `id` while running (IngestLoop::RequestRestore): verifies it (DataLoss for a
  // damaged one, nothing changed), writes everything pending, swaps the database and a learner
  // loaded from the snapshot in at once, and rewinds every source to the snapshot's positions.
  absl::Status RestoreSnapshot(const std::string& id, absl::Duration timeout);
  // Tests: `hook` runs inside every CreateSnapshot() while it holds the store. Set it before
  // other threads use the engine.
  void SetSnapshotHookForTesting(std::function<void()> hook);
  // Tests: `hook` runs inside every restore while it holds the store (DurableState).
  void SetRestoreHookForTesting(std::function<void()> hook);

  static constexpr size_t kApplySlice = LiveModel::kApplySlice;

 private:
  explicit Engine(const EngineOptions& options);

  const EngineOptions options_;
  std::unique_ptr<LiveModel> model_;
  const ModelReader* reader_ = nullptr;  // model_ unless ServeThrough()
  std::unique_ptr<ExactlyOnceFilter> filter_;
  std::unique_ptr<DurableState> durable_;  // null without a data directory
  std::unique_ptr<ReplicaSync> replicas_;  // null learning alone
  std::unique_ptr<IngestLoop> ingest_;
  Mutex hidden_write_mu_;   // one change of item availability at a time
  Mutex catalog_write_mu_;  // one catalog change at a time, stored in the order it is applied
  Catalog catalog_;
  std::atomic<int64_t> direct_{0};
  std::vector<std::string> counting_changes_;
};

}  // namespace freshet::engine

#endif  // FRESHET_ENGINE_ENGINE_H_
