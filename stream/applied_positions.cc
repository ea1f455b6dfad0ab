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
