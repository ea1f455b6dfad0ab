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
  if (seen_.size() > static_cast<size_t>(seen_cap)) {
    const size_t oldest = static_cast<size_t>(
        std::min_element(seen_seq_.begin(), seen_seq_.end()) - seen_seq_.begin());
    seen_.erase(seen_.begin() + static_cast<std::ptrdiff_t>(oldest));
    seen_seq_.erase(seen_seq_.begin() + static_cast<std::ptrdiff_t>(oldest));
  }
}

}  // namespace freshet::learner
