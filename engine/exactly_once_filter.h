// ExactlyOnceFilter: the engine's stream::AppliedPositions behind its lock — the last applied
// position of every stream partition and the remembered event ids — with the counters of what it
// dropped.
//
// Thread safety: every method may be called from any thread; each takes mu_ for its own work
// only. The ingest loop records positions; the direct-event path (Engine::ApplyDirect) records
// ids while it holds the learner exclusively, so that a persisted cut (taken with the learner
// held shared, WithPositions()) never holds an id without its event. Lock order: the learner's
// lock (LiveModel) before mu_.
#ifndef FRESHET_ENGINE_EXACTLY_ONCE_FILTER_H_
#define FRESHET_ENGINE_EXACTLY_ONCE_FILTER_H_

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "common/mutex.h"
#include "stream/applied_positions.h"
#include "stream/event.h"

namespace freshet::engine {

class ExactlyOnceFilter {
 public:
  explicit ExactlyOnceFilter(size_t id_capacity);

  // Keeps the events of `*events` that are new: above their partition's last applied position
  // (recorded as they pass) and, when they carry an id, not a remembered one. Returns how many
  // were dropped as a repeated id; the others dropped were at or below their position.
  int64_t AdmitPolled(std::vector<stream::Event>* events);
  // True, remembering the id, unless `event` carries a remembered id (events without an id
  // always pass). Counts the repeats.
  bool AdmitId(const stream::Event& event);

  // The last applied offset of a stream partition, or -1.
  int64_t Applied(int32_t stream, int32_t partition) const;
  std::vector<stream::SourcePosition> All() const;
  // Runs fn(positions) under the lock (the persister's cut, loading stored ids).
  template <typename Fn>
  auto WithPositions(Fn&& fn) {
    MutexLock lock(&mu_);
    auto result = fn(applied_);
    ids_held_.store(static_cast<int64_t>(applied_.ids()), std::memory_order_relaxed);
    return result;
  }

  int64_t duplicates_dropped() const { return duplicates_.load(std::memory_order_relaxed); }
  int64_t duplicate_ids_dropped() const { return duplicate_ids_.load(std::memory_order_relaxed); }
  int64_t ids_held() const { return ids_held_.load(std::memory_order_relaxed); }

 private:
  mutable Mutex mu_;
  stream::AppliedPositions applied_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> duplicates_{0};
  std::atomic<int64_t> duplicate_ids_{0};
  std::atomic<int64_t> ids_held_{0};  // applied_.ids(), read without the lock
};

}  // namespace freshet::engine

#endif  // FRESHET_ENGINE_EXACTLY_ONCE_FILTER_H_
