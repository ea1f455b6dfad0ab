// ReplicaSync: this engine's part in a replica group (collective.h) — the exchanges of item-model
// changes with the other ranks (the messages and their merge are the learner's: learner.h,
// "Replicas"), and the group's start and stop.
//
// Thread safety: Exchange() runs on the ingest thread only. It holds exchange_mu_ from taking this
// rank's changes to merging everyone's; exchange_mutex() lets another thread (direct events) hold
// exchanges off, since changes made in between would be lost or sent wrong. Counters are atomics
// any thread may read. Lock order: exchange_mu_ before the learner's lock.
#ifndef FRESHET_ENGINE_REPLICAS_REPLICA_SYNC_H_
#define FRESHET_ENGINE_REPLICAS_REPLICA_SYNC_H_

#include <atomic>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/mutex.h"
#include "engine/live_model.h"
#include "engine/replicas/collective.h"

namespace freshet::engine {

struct ReplicaStats {
  int64_t exchanges = 0;
  int64_t rows_received = 0;    // item rows received from the other ranks
  int64_t items_added = 0;      // items first met through them
  double last_exchange_ms = 0;  // from taking this rank's changes to merging everyone's
};

class ReplicaSync {
 public:
  // `group` is not owned and must outlive this.
  explicit ReplicaSync(Collective* group) : group_(group) {}

  static constexpr uint8_t kDone = 1;      // every source of this rank is finished
  static constexpr uint8_t kStopping = 2;  // this rank stops after this exchange
  // What the group said in an exchange: some rank stops; every rank is done.
  struct GroupState {
    bool stopping = false;
    bool all_done = false;
  };
  // One exchange (with its catch-up, after a join), sending `flags` and returning the group's.
  absl::StatusOr<GroupState> Exchange(uint8_t flags, LiveModel& model);

  // Holds exchanges off while the caller changes the model outside the ingest loop.
  Mutex& exchange_mutex() ABSL_LOCK_RETURNED(exchange_mu_) { return exchange_mu_; }

  ReplicaStats stats() const;

 private:
  Collective* const group_;
  Mutex exchange_mu_;
  std::atomic<int64_t> exchanges_{0};
  std::atomic<int64_t> rows_received_{0};
  std::atomic<int64_t> items_added_{0};
  std::atomic<int64_t> last_exchange_us_{0};
};

}  // namespace freshet::engine

#endif  // FRESHET_ENGINE_REPLICAS_REPLICA_SYNC_H_
