#include "learner/user_history.h"

namespace freshet::learner {

void UserHistory::Add(int32_t item, int recent_cap, int seen_cap) {
  recent_.push_back(item);
  if (recent_.size() >= 2 * static_cast<size_t>(recent_cap)) {
    recent_.erase(recent_.begin(), recent_.end() - recent_cap);
  }
  const uint32_t seq = ++seq_;
  auto it = std::lower_bound(seen_.begin(), seen_.end(), item);
  const size_t pos = static_cast<size_t>(it - seen_.begin());
  if (it != seen_.end() && *it == item) {
    seen_seq_[pos] = seq;
    return;
  }
  seen_.insert(it, item);
  seen_seq_.insert(seen_seq_.begin() + static_cast<std::ptrdiff_t>(pos), seq);
  if (seen_.size() > static_cast<size_t>(seen_cap)) Evict(seen_cap);
}

void UserHistory::Evict(int seen_cap) {
  // Forget down to cap - cap/16 at once (exactly one item for caps below 16), so a user at the cap
  // pays O(cap) once per cap/16 new items instead of on every event.
  const size_t keep = static_cast<size_t>(seen_cap - seen_cap / 16);
  std::vector<uint32_t> seqs = seen_seq_;
  std::nth_element(seqs.begin(), seqs.end() - static_cast<std::ptrdiff_t>(keep), seqs.end());
  const uint32_t oldest_kept = *(seqs.end() - static_cast<std::ptrdiff_t>(keep));
  size_t out = 0;
  for (size_t i = 0; i < seen_.size(); ++i) {
    if (seen_seq_[i] >= oldest_kept) {  // sequence numbers are unique: exactly `keep` survive
      seen_[out] = seen_[i];
      seen_seq_[out] = seen_seq_[i];
      ++out;
    }
  }
  seen_.resize(out);
  seen_seq_.resize(out);
}

}  // namespace freshet::learner
