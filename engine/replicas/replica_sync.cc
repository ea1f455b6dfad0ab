#include "engine/replicas/replica_sync.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"

namespace freshet::engine {

absl::StatusOr<ReplicaSync::GroupState> ReplicaSync::Exchange(uint8_t flags, LiveModel& model) {
  const absl::Time start = absl::Now();
  MutexLock exchange(&exchange_mu_);  // no direct events until merged
  std::string mine(1, static_cast<char>(flags));
  mine += model.WithLearnerExclusive([](learner::Learner& l) { return l.TakeReplicaChanges(); });
  GroupState state;
  state.all_done = true;
  learner::ReplicaMergeStats total;
  // The exchange, then after a join the catch-up exchange; the group waits without any lock held
  // but exchange_mu_.
  for (int round = 0; round < 2; ++round) {
    absl::StatusOr<std::vector<std::string>> all = group_->AllGather(mine);
    if (!all.ok()) {
      return absl::Status(all.status().code(),
                          absl::StrCat("replicas: rank ", group_->rank(), " of ",
                                       group_->world_size(), ": ", all.status().message()));
    }
    for (size_t r = 0; r < all->size(); ++r) {
      std::string& message = (*all)[r];
      if (message.empty()) {
        return absl::DataLossError(absl::StrCat("replicas: rank ", r, " sent an empty message"));
      }
      const uint8_t their = static_cast<uint8_t>(message[0]);
      state.stopping = state.stopping || (their & kStopping) != 0;
      state.all_done = state.all_done && (their & kDone) != 0;
      message.erase(0, 1);
    }
    learner::ReplicaMergeStats stats;
    FRESHET_RETURN_IF_ERROR(model.WithLearnerExclusive([&](learner::Learner& l) -> absl::Status {
      FRESHET_RETURN_IF_ERROR(l.MergeReplicaChanges(*all, group_->rank(), &stats));
      if (stats.catch_up) {
        mine.assign(1, static_cast<char>(flags));
        mine += l.ReplicaCatchUp();
      }
      return absl::OkStatus();
    }));
    total.rows_received += stats.rows_received;
    total.items_added += stats.items_added;
    if (!stats.catch_up) break;
  }
  rows_received_.fetch_add(total.rows_received, std::memory_order_relaxed);
  items_added_.fetch_add(total.items_added, std::memory_order_relaxed);
  exchanges_.fetch_add(1, std::memory_order_relaxed);
  last_exchange_us_.store(absl::ToInt64Microseconds(absl::Now() - start),
                          std::memory_order_relaxed);
  return state;
}

ReplicaStats ReplicaSync::stats() const {
  ReplicaStats s;
  s.exchanges = exchanges_.load(std::memory_order_relaxed);
  s.rows_received = rows_received_.load(std::memory_order_relaxed);
  s.items_added = items_added_.load(std::memory_order_relaxed);
  s.last_exchange_ms =
      static_cast<double>(last_exchange_us_.load(std::memory_order_relaxed)) / 1000.0;
  return s;
}

}  // namespace freshet::engine
