// DurableState: the data directory of a running engine — its lock, the live RocksDB store, the
// persister that writes the learnt rows with the positions they include, and snapshots.
//
// Thread safety: the ingest thread alone flushes and restores (MaybeFlush, Flush, Restore);
// snapshot admin (CreateSnapshot, List, Inspect, Delete) and WriteHiddenItems may run on any
// thread and take store_mu_, which a restore holds while it swaps the database; health and
// counters read the persister under persister_mu_, which is held only while the persister is
// replaced. Reads of the model take none of these locks: nothing here makes a recommendation wait.
// Lock order: store_mu_ before persister_mu_; the learner's lock and the exactly-once filter's
// (taken for a flush's cut) after both.
#ifndef FRESHET_ENGINE_DURABLE_STATE_H_
#define FRESHET_ENGINE_DURABLE_STATE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/mutex.h"
#include "config/config.h"
#include "engine/catalog.h"
#include "engine/exactly_once_filter.h"
#include "engine/live_model.h"
#include "kernels/backend.h"
#include "store/data_dir.h"
#include "store/persister.h"
#include "store/rocksdb/state_store.h"
#include "store/snapshot.h"

namespace freshet::engine {

// What a data directory held when it was attached.
// (The positions and event ids go straight into the ExactlyOnceFilter.)
struct LoadedState {
  int64_t events_applied = 0;
  int64_t model_version = 0;
  std::vector<std::string> sources;  // stream names by global index
  std::vector<std::string> hidden_items;
  // The settings this run counts events with that differ from those the state was counted with
  // (config::CountingChanges): "key before -> now" each. Logged as a warning when it opens.
  std::vector<std::string> counting_changes;
};

class DurableState {
 public:
  struct Options {
    std::string data_dir;
    std::string algorithm;
    config::Config config;
    bool reset = false;  // start empty even when the directory holds a state (deleted)
  };
  // Takes the directory's lock, repairs an interrupted restore, attaches the live database and
  // loads it into `model` and `filter` (positions and remembered ids); `*loaded` says what was
  // there. FailedPrecondition when another process holds the directory or its state was written
  // with a different algorithm, dimension or row layout (unless options.reset); DataLoss for
  // corrupt state.
  static absl::StatusOr<std::unique_ptr<DurableState>> Open(const Options& options,
                                                            LiveModel* model,
                                                            ExactlyOnceFilter* filter,
                                                            LoadedState* loaded);
  ~DurableState();  // stops the persister's writer thread, then closes the database
  DurableState(const DurableState&) = delete;
  DurableState& operator=(const DurableState&) = delete;

  // --- On the ingest thread.
  // Queues a batch when the flush interval has passed (Persister::MaybeFlush), the learner held
  // shared and the positions locked for the cut. True when a batch was queued.
  bool MaybeFlush(LiveModel& model, ExactlyOnceFilter& filter,
                  const std::vector<std::string>& stream_names);
  // Queues everything and waits until it is written (Persister::Flush).
  absl::Status Flush(LiveModel& model, ExactlyOnceFilter& filter,
                     const std::vector<std::string>& stream_names, absl::Duration timeout);
  bool FlushDue() const { return persister_->FlushDue(); }
  // Version of the latest queued batch; of the latest written one.
  int64_t queued_version() const { return persister_->model_version(); }
  int64_t written_version() const { return persister_->stats().model_version; }
  // Replaces the live state with snapshot `id`: verifies it (DataLoss for a damaged one, nothing
  // changed), loads it into a new learner, writes everything pending, swaps the database in and
  // re-attaches, then swaps the learner into `model` and the snapshot's positions and ids into
  // `filter`. `*loaded` says what the snapshot held.
  absl::Status Restore(const std::string& id, const kernels::Backend* backend, bool replicas,
                       LiveModel& model, ExactlyOnceFilter& filter,
                       const std::vector<std::string>& stream_names, LoadedState* loaded);

  // --- Any thread.
  // Events were learnt that no source can deliver again (POST /v1/events without a broker): the
  // next batch comes store.direct_flush_interval_ms after the latest one (Persister::
  // FlushPromptly). Call it after learning them.
  void FlushPromptly();
  absl::Status WriteHiddenItems(const std::vector<std::string>& hidden);
  // Writes catalog entries (Catalog::Merge's output) at once, like hidden items, in batches of
  // bounded size: on an error, `*stored` is how many of the first entries the store holds.
  absl::Status WriteCatalog(const std::vector<std::pair<std::string, std::string>>& encoded,
                            size_t* stored);
  // Replaces `catalog` with the stored one. DataLoss names a damaged entry.
  absl::Status LoadCatalog(Catalog* catalog);
  absl::StatusOr<store::SnapshotManifest> CreateSnapshot(const std::string& id);
  absl::StatusOr<std::vector<store::SnapshotManifest>> ListSnapshots() const;
  absl::StatusOr<store::SnapshotManifest> InspectSnapshot(const std::string& id) const;
  absl::Status DeleteSnapshot(const std::string& id);
  // Tests: runs inside every CreateSnapshot() while it holds the store. Set before other threads
  // use the state.
  void SetSnapshotHookForTesting(std::function<void()> hook) { snapshot_hook_ = std::move(hook); }
  // Tests: runs inside every Restore() while it holds the store (after writing what was pending,
  // before the swap). Set before other threads use the state.
  void SetRestoreHookForTesting(std::function<void()> hook) { restore_hook_ = std::move(hook); }
  // OK while the learnt state can be persisted; Unavailable with the store's error while writes
  // fail (the persister keeps what it could not write and retries).
  absl::Status Health() const;
  store::PersisterStats stats() const;
  const std::string& data_dir() const { return options_.data_dir; }

 private:
  explicit DurableState(const Options& options) : options_(options) {}
  // Opens the live database, reads its meta (clearing it with `reset`) and starts a persister at
  // its model version: what Open and Restore share.
  absl::StatusOr<store::StoreMeta> Attach(bool reset) ABSL_EXCLUSIVE_LOCKS_REQUIRED(store_mu_);
  // Loads the stored positions and event ids into `filter` and tells the persister which ids are
  // stored.
  absl::Status LoadPositions(const store::StoreMeta& meta, ExactlyOnceFilter& filter)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(store_mu_);
  // Runs fn(learner, positions) with the learner held shared and the positions locked: the
  // consistent cut a flush writes.
  template <typename Fn>
  static auto WithCut(LiveModel& model, ExactlyOnceFilter& filter, Fn&& fn) {
    return model.WithLearnerShared([&](learner::Learner& l) {
      return filter.WithPositions(
          [&](const stream::AppliedPositions& applied) { return fn(l, applied); });
    });
  }

  const Options options_;
  std::optional<store::DataDirLock> lock_;
  mutable Mutex store_mu_;
  std::unique_ptr<store::StateStore> store_ ABSL_GUARDED_BY(store_mu_);
  mutable Mutex persister_mu_ ABSL_ACQUIRED_AFTER(store_mu_);
  // Replaced only by the ingest thread, under store_mu_ and persister_mu_; the ingest thread uses
  // it without them, other threads under persister_mu_.
  std::unique_ptr<store::Persister> persister_;
  std::function<void()> snapshot_hook_;
  std::function<void()> restore_hook_;
};

}  // namespace freshet::engine

#endif  // FRESHET_ENGINE_DURABLE_STATE_H_
