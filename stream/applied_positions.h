// AppliedPositions: the last applied source position per (stream, partition) — the exactly-once
// filter the ingestion loop applies to every event before learning from it.
//
// A broker re-delivers messages after a rebalance or a restart (a partition is handed to another
// consumer, which starts from the position stored at that moment while the previous owner may
// still be applying its last batch). Each consumer reads a partition in offset order, so dropping
// every event at or below the partition's last applied offset leaves each event applied exactly
// once. The same positions are what the store persists with the state they produced and what a
// source seeks to (+ 1) on assignment.
//
// Offsets cannot catch a copy that is a different message: a client that retries POST
// /v1/events after a timeout (504) may have its event delivered twice, at two offsets, or once
// through the broker and once straight to the learner. Events that carry an id (an idempotency
// key) are therefore also checked against the ids of the last `id_capacity` applied events; a
// second event with a remembered id is dropped. The ids are persisted with the positions, in the
// same batch as the state they produced, so the check survives a restart and a restore.
#ifndef FRESHET_STREAM_APPLIED_POSITIONS_H_
#define FRESHET_STREAM_APPLIED_POSITIONS_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "stream/event.h"

namespace freshet::stream {

// A plain value. Not thread-safe: callers that share one instance between consumer
// threads serialise every call (and whatever they apply under the same lock).
class AppliedPositions {
 public:
  // True, recording `position.offset` as its partition's last applied offset, when the offset is
  // above the recorded one (or none is recorded); false for a duplicate (offset <= recorded), in
  // which case nothing changes.
  bool Accept(const SourcePosition& position);

  // True, remembering `id`, when it is not among the remembered ids; false for a repeat. With
  // id_capacity() ids remembered, the oldest is forgotten. With capacity 0 nothing is remembered
  // and every id is accepted.
  bool AcceptId(absl::string_view id);
  // How many ids are remembered at most (events.idempotency_keys). Lowering it forgets the
  // oldest at once.
  void set_id_capacity(size_t capacity);
  size_t id_capacity() const { return id_capacity_; }
  size_t ids() const { return id_order_.size(); }
  // Remembered ids are numbered in the order they were accepted: [first_id_seq(), next_id_seq()).
  // The persister writes each id once by its number and deletes the numbers forgotten since.
  int64_t first_id_seq() const { return id_order_.empty() ? next_id_seq_ : id_order_.front().seq; }
  int64_t next_id_seq() const { return next_id_seq_; }
  // Calls `visit(seq, id)` for every remembered id numbered `from` or later, oldest first.
  void ForEachIdFrom(int64_t from,
                     const std::function<void(int64_t, absl::string_view)>& visit) const;
  // Loading stored ids, in ascending `seq` order. An id already held (a damaged store) is skipped.
  void RestoreId(int64_t seq, absl::string_view id);
  void ClearIds();

  // The last applied offset of (stream, partition), or -1 when none is recorded.
  int64_t Get(int32_t stream, int32_t partition) const;

  // Records `offset` as the last applied offset of (stream, partition), replacing any recorded
  // one (also a higher one: loading stored positions, or rewinding to a snapshot's). An offset
  // below 0 forgets the partition.
  void Set(int32_t stream, int32_t partition, int64_t offset);

  // Every recorded position ({stream, partition, last applied offset}), ordered by stream, then
  // partition.
  std::vector<SourcePosition> All() const;

  size_t size() const { return offsets_.size(); }
  bool empty() const { return offsets_.empty(); }
  void Clear() { offsets_.clear(); }  // positions only; ClearIds() forgets the ids

  // Iteration over the entries (in no particular order): key {stream, partition}, value offset.
  using Key = std::pair<int32_t, int32_t>;
  using Map = absl::flat_hash_map<Key, int64_t>;
  Map::const_iterator begin() const { return offsets_.begin(); }
  Map::const_iterator end() const { return offsets_.end(); }

 private:
  void Remember(int64_t seq, absl::string_view id);  // with id_capacity_ > 0
  void ForgetOldestId();

  Map offsets_;
  size_t id_capacity_ = 0;
  int64_t next_id_seq_ = 0;
  struct NumberedId {
    int64_t seq;
    std::string id;
  };
  std::deque<NumberedId> id_order_;                // ascending seq; elements never move while held
  absl::flat_hash_set<absl::string_view> id_set_;  // views of id_order_'s strings
};

}  // namespace freshet::stream

#endif  // FRESHET_STREAM_APPLIED_POSITIONS_H_
