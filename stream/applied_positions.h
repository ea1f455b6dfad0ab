// AppliedPositions: the last applied source position per (stream, partition) — the exactly-once
// filter the ingestion loop applies to every event before learning from it.
//
// A broker re-delivers messages after a rebalance or a restart (a partition is handed to another
// consumer, which starts from the position stored at that moment while the previous owner may
// still be applying its last batch). Each consumer reads a partition in offset order, so dropping
// every event at or below the partition's last applied offset leaves each event applied exactly
// once. The same positions are what the store persists with the state they produced and what a
// source seeks to (+ 1) on assignment.
#ifndef FRESHET_STREAM_APPLIED_POSITIONS_H_
#define FRESHET_STREAM_APPLIED_POSITIONS_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "stream/event.h"

namespace freshet::stream {

// A plain value; copyable. Not thread-safe: callers that share one instance between consumer
// threads serialise every call (and whatever they apply under the same lock).
class AppliedPositions {
 public:
  // True, recording `position.offset` as its partition's last applied offset, when the offset is
  // above the recorded one (or none is recorded); false for a duplicate (offset <= recorded), in
  // which case nothing changes.
  bool Accept(const SourcePosition& position);

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
  void Clear() { offsets_.clear(); }

  // Iteration over the entries (in no particular order): key {stream, partition}, value offset.
  using Key = std::pair<int32_t, int32_t>;
  using Map = absl::flat_hash_map<Key, int64_t>;
  Map::const_iterator begin() const { return offsets_.begin(); }
  Map::const_iterator end() const { return offsets_.end(); }

 private:
  Map offsets_;
};

}  // namespace freshet::stream

#endif  // FRESHET_STREAM_APPLIED_POSITIONS_H_
