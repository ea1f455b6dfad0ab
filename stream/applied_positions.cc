#include "stream/applied_positions.h"

#include <algorithm>

namespace freshet::stream {

bool AppliedPositions::Accept(const SourcePosition& position) {
  const auto [it, inserted] =
      offsets_.try_emplace(Key(position.stream, position.partition), position.offset);
  if (inserted) return true;
  if (position.offset <= it->second) return false;
  it->second = position.offset;
  return true;
}

bool AppliedPositions::AcceptId(absl::string_view id) {
  if (id_capacity_ == 0) return true;
  if (id_set_.contains(id)) return false;
  Remember(next_id_seq_, id);
  return true;
}

void AppliedPositions::Remember(int64_t seq, absl::string_view id) {
  if (id_order_.size() >= id_capacity_) ForgetOldestId();
  id_order_.push_back(NumberedId{.seq = seq, .id = std::string(id)});
  id_set_.insert(id_order_.back().id);
  next_id_seq_ = seq + 1;
}

void AppliedPositions::ForgetOldestId() {
  id_set_.erase(id_order_.front().id);
  id_order_.pop_front();
}

void AppliedPositions::set_id_capacity(size_t capacity) {
  id_capacity_ = capacity;
  while (id_order_.size() > id_capacity_) ForgetOldestId();
}

void AppliedPositions::ForEachIdFrom(
    int64_t from, const std::function<void(int64_t, absl::string_view)>& visit) const {
  auto it = std::lower_bound(id_order_.begin(), id_order_.end(), from,
                             [](const NumberedId& n, int64_t seq) { return n.seq < seq; });
  for (; it != id_order_.end(); ++it) visit(it->seq, it->id);
}

void AppliedPositions::RestoreId(int64_t seq, absl::string_view id) {
  // The newest stored number stays the newest, so what is written next never reuses one.
  if (seq < next_id_seq_) return;  // out of order: a damaged store
  if (id_capacity_ == 0 || id_set_.contains(id)) {
    next_id_seq_ = seq + 1;
    return;
  }
  Remember(seq, id);
}

void AppliedPositions::ClearIds() {
  id_set_.clear();
  id_order_.clear();
  next_id_seq_ = 0;
}

int64_t AppliedPositions::Get(int32_t stream, int32_t partition) const {
  const auto it = offsets_.find(Key(stream, partition));
  return it == offsets_.end() ? -1 : it->second;
}

void AppliedPositions::Set(int32_t stream, int32_t partition, int64_t offset) {
  if (offset < 0) {
    offsets_.erase(Key(stream, partition));
  } else {
    offsets_[Key(stream, partition)] = offset;
  }
}

std::vector<SourcePosition> AppliedPositions::All() const {
  std::vector<SourcePosition> all;
  all.reserve(offsets_.size());
  for (const auto& [key, offset] : offsets_) {
    all.push_back(SourcePosition{.stream = key.first, .partition = key.second, .offset = offset});
  }
  std::sort(all.begin(), all.end(), [](const SourcePosition& a, const SourcePosition& b) {
    return a.stream != b.stream ? a.stream < b.stream : a.partition < b.partition;
  });
  return all;
}

}  // namespace freshet::stream
