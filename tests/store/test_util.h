// Shared helpers of the store tests: temporary directories and small event streams.
#ifndef FRESHET_TESTS_STORE_TEST_UTIL_H_
#define FRESHET_TESTS_STORE_TEST_UTIL_H_

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/random.h"
#include "gtest/gtest.h"
#include "stream/event.h"

namespace freshet::testing {

// A fresh, empty directory under the test's temporary directory.
inline std::string FreshDir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/freshet_store_" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// `n` events over `users` users and `items` items with a mild popularity skew; position offsets
// are the event indices of stream 0, partition 0.
inline std::vector<stream::Event> MakeEvents(int n, int users, int items, uint64_t seed) {
  Rng rng(seed);
  std::vector<stream::Event> events;
  events.reserve(n);
  for (int i = 0; i < n; ++i) {
    stream::Event e;
    const int u = static_cast<int>(rng.Next() % static_cast<uint64_t>(users));
    const uint64_t a = rng.Next() % static_cast<uint64_t>(items);
    const uint64_t b = rng.Next() % static_cast<uint64_t>(items);
    e.user = absl::StrCat("u", u);
    e.item = absl::StrCat("i", std::min(a, b));  // skewed towards low ids
    e.weight = 1.0f;
    e.ts_ms = 1'700'000'000'000 + int64_t{i} * 1000;
    e.position.offset = i;
    events.push_back(std::move(e));
  }
  return events;
}

}  // namespace freshet::testing

#endif  // FRESHET_TESTS_STORE_TEST_UTIL_H_
