#include "stream/internal/string_pool.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>

#include "common/check.h"

namespace freshet::stream::internal {
namespace {

// Blocks grow from small (a pool of a handful of event types) to large enough that the
// per-block allocation is noise for millions of ids.
constexpr size_t kFirstBlockSize = size_t{4} << 10;
constexpr size_t kMaxBlockSize = size_t{1} << 20;

}  // namespace

uint32_t StringPool::Intern(absl::string_view s) {
  const auto it = ids_.find(s);
  if (it != ids_.end()) return it->second;
  FRESHET_CHECK(strings_.size() < std::numeric_limits<uint32_t>::max());
  const auto id = static_cast<uint32_t>(strings_.size());
  const absl::string_view stored = Store(s);
  strings_.push_back(stored);
  ids_.emplace(stored, id);
  return id;
}

absl::string_view StringPool::Store(absl::string_view s) {
  if (s.empty()) return absl::string_view();
  if (block_capacity_ - block_used_ < s.size()) {
    // A string longer than a block gets a block of its own.
    const size_t next =
        blocks_.empty() ? kFirstBlockSize : std::min(2 * block_capacity_, kMaxBlockSize);
    block_capacity_ = std::max(next, s.size());
    blocks_.push_back(std::make_unique_for_overwrite<char[]>(block_capacity_));
    block_bytes_ += block_capacity_;
    block_used_ = 0;
  }
  char* const dst = blocks_.back().get() + block_used_;
  std::memcpy(dst, s.data(), s.size());
  block_used_ += s.size();
  return absl::string_view(dst, s.size());
}

size_t StringPool::MemoryUsage() const {
  return block_bytes_ + strings_.capacity() * sizeof(absl::string_view) +
         ids_.capacity() * (sizeof(absl::string_view) + sizeof(uint32_t) + 1);
}

}  // namespace freshet::stream::internal
