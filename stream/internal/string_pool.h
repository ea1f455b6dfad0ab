// StringPool: interns strings to dense 32-bit ids, storing each distinct string once in large
// blocks, so that millions of events can refer to their user, item and type ids with 4 bytes each.
#ifndef FRESHET_STREAM_INTERNAL_STRING_POOL_H_
#define FRESHET_STREAM_INTERNAL_STRING_POOL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace freshet::stream::internal {

// Ids are assigned 0, 1, 2, ... in first-seen order and never change. Views returned by Get()
// stay valid for the pool's lifetime, also across moves. Not thread-safe.
class StringPool {
 public:
  StringPool() = default;
  StringPool(StringPool&&) = default;
  StringPool& operator=(StringPool&&) = default;
  StringPool(const StringPool&) = delete;
  StringPool& operator=(const StringPool&) = delete;

  // The id of `s`, adding it if it is new.
  uint32_t Intern(absl::string_view s);

  // The string with id `id`; `id` must be < size().
  absl::string_view Get(uint32_t id) const { return strings_[id]; }

  size_t size() const { return strings_.size(); }

  // Bytes held by the blocks, the index and the map (approximate), for logs.
  size_t MemoryUsage() const;

 private:
  absl::string_view Store(absl::string_view s);

  std::vector<std::unique_ptr<char[]>> blocks_;
  size_t block_used_ = 0;
  size_t block_capacity_ = 0;
  size_t block_bytes_ = 0;
  std::vector<absl::string_view> strings_;  // by id; views into blocks_
  absl::flat_hash_map<absl::string_view, uint32_t> ids_;
};

}  // namespace freshet::stream::internal

#endif  // FRESHET_STREAM_INTERNAL_STRING_POOL_H_
