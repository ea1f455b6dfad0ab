// UserHistory: what freshet remembers of one user's past — the latest interactions in order (the
// short-term context of the models) and the distinct items seen (exclude-seen), both bounded.
#ifndef FRESHET_LEARNER_USER_HISTORY_H_
#define FRESHET_LEARNER_USER_HISTORY_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace freshet::learner {

// Not thread-safe.
class UserHistory {
 public:
  // Records an interaction with `item`. Keeps at most `recent_cap` latest interactions (repeats
  // included) and at most `seen_cap` distinct items: beyond that the items whose latest
  // interactions are oldest are forgotten, 1/16 of the cap at a time.
  void Add(int32_t item, int recent_cap, int seen_cap);

  // Latest interactions, oldest first, newest last; at most `recent_cap` of them.
  absl::Span<const int32_t> Recent(int recent_cap) const {
    const size_t n = std::min(recent_.size(), static_cast<size_t>(recent_cap));
    return absl::MakeConstSpan(recent_.data() + recent_.size() - n, n);
  }

  // Distinct items seen, sorted ascending (the exclude list of the top-K kernels).
  absl::Span<const int32_t> Seen() const { return seen_; }

  bool HasSeen(int32_t item) const { return std::binary_search(seen_.begin(), seen_.end(), item); }

  // Hints the CPU to fetch the newest part of the history (the batch learner calls this a few
  // events ahead, since histories of random users are rarely in cache).
  void Prefetch() const {
    if (!recent_.empty()) __builtin_prefetch(recent_.data() + recent_.size() - 1);
    if (!seen_.empty()) __builtin_prefetch(seen_.data() + seen_.size() / 2);
  }

 private:
  void Evict(int seen_cap);

  std::vector<int32_t> recent_;     // chronological; trimmed in bulk to keep appends O(1)
  std::vector<int32_t> seen_;       // sorted distinct items
  std::vector<uint32_t> seen_seq_;  // parallel to seen_: sequence number of the latest interaction
  uint32_t seq_ = 0;
};

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_USER_HISTORY_H_
