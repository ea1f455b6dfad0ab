// UserHistory: what freshet remembers of one user's past — the latest interactions in order (the
// short-term context of the models), the distinct items seen (exclude-seen), both bounded, and
// how many events were applied for the user and when the latest happened.
#ifndef FRESHET_LEARNER_USER_HISTORY_H_
#define FRESHET_LEARNER_USER_HISTORY_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace freshet::learner {

// Not thread-safe. Cache-line aligned, with what learning touches on every event (recent_ and
// pending_) in the first line: histories of random users are rarely in cache.
class alignas(64) UserHistory {
 public:
  // Records an interaction with `item`, in O(1) amortised time. Keeps at most `recent_cap` latest
  // interactions (repeats included) and about `seen_cap` distinct items: new items are merged into
  // the seen set kPendingMax (64) interactions at a time, and after a merge that leaves more than
  // `seen_cap`, the items first seen longest ago are forgotten down to seen_cap - seen_cap/16 (one
  // at a time for caps below 16). Between merges up to kPendingMax - 1 more may be held.
  void Add(int32_t item, int recent_cap, int seen_cap);

  // Counts one applied event for the user at `ts_ms` (epoch ms).
  void CountEvent(int64_t ts_ms) {
    ++events_;
    last_ts_ms_ = ts_ms;
  }
  int64_t events() const { return events_; }
  int64_t last_ts_ms() const { return last_ts_ms_; }
  // Wall-clock time (ns since the epoch) the latest event was applied in this process; 0 if none.
  int64_t applied_ns() const { return applied_ns_; }
  void set_applied_ns(int64_t ns) { applied_ns_ = ns; }

  // Latest interactions, oldest first, newest last; at most `recent_cap` of them.
  absl::Span<const int32_t> Recent(int recent_cap) const {
    const size_t n = std::min(recent_.size(), static_cast<size_t>(recent_cap));
    return absl::MakeConstSpan(recent_.data() + recent_.size() - n, n);
  }

  // Distinct items seen, sorted ascending (the exclude list of the top-K kernels). Returns a view
  // of internal storage, or of `*scratch` when recent additions have not been merged yet.
  absl::Span<const int32_t> Seen(std::vector<int32_t>* scratch) const;

  bool HasSeen(int32_t item) const {
    return std::binary_search(sorted_.begin(), sorted_.end(), item) ||
           std::find(pending_.begin(), pending_.end(), item) != pending_.end();
  }

  // Distinct items seen (counts pending items once each).
  size_t seen_count() const;

  // Persistence: counters, the latest `recent_cap` interactions and the distinct items in order of
  // first interaction. Decode() returns false, and changes nothing, for malformed input, a negative
  // count, a time outside [0, stream::kMaxEventTsMs), or a repeated distinct item; items must be
  // >= 0 and below `items` (the catalog size). With `drop_unknown`, items at or above `items` are
  // left out instead (a serving replica that has not yet received the newest items).
  void Encode(int recent_cap, std::string* out) const;
  bool Decode(absl::string_view in, int32_t items, bool drop_unknown = false);

  // Bytes held on the heap (capacity of the internal arrays), for memory reporting.
  size_t HeapBytes() const {
    return (recent_.capacity() + pending_.capacity() + sorted_.capacity() + order_.capacity()) *
           sizeof(int32_t);
  }

  // Hints the CPU to fetch what the next Add() and Recent() touch (the batch learner calls this a
  // few events ahead, after prefetching the object itself).
  void Prefetch() const {
    if (!recent_.empty()) __builtin_prefetch(recent_.data() + recent_.size() - 1);
    __builtin_prefetch(pending_.data() + pending_.size());
  }

 private:
  // Interactions wait here, unsorted, and are merged into sorted_ this many at a time, so learning
  // never searches or shifts a heavy user's sorted array per event (a binary search there costs
  // several cache misses).
  static constexpr size_t kPendingMax = 64;  // at most 64: MergePending keeps a bit per item

  void MergePending(int seen_cap);
  void Evict(size_t keep);

  // First cache line: what every event touches.
  std::vector<int32_t> recent_;   // chronological; trimmed in bulk to keep appends O(1)
  std::vector<int32_t> pending_;  // latest interactions not yet merged (may repeat sorted_ items)
  int64_t events_ = 0;
  int64_t last_ts_ms_ = 0;
  // Second line: touched once per kPendingMax events.
  std::vector<int32_t> sorted_;  // distinct items, sorted
  std::vector<int32_t> order_;   // distinct items by first interaction, from order_begin_
  size_t order_begin_ = 0;
  int64_t applied_ns_ = 0;  // wall time the latest event was applied (not persisted)
};

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_USER_HISTORY_H_
