// Shared helpers of the store tests: temporary directories, small event streams, and the
// comparison of a learner with one loaded from the store.
#ifndef FRESHET_TESTS_STORE_TEST_UTIL_H_
#define FRESHET_TESTS_STORE_TEST_UTIL_H_

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/random.h"
#include "gtest/gtest.h"
#include "learner/learner.h"
#include "stream/event.h"

namespace freshet::testing {

// The path FreshDir(name) gives: under the test's temporary directory, named after the running
// test, so tests that CTest runs in parallel never share a directory.
inline std::string TestDirPath(const std::string& name) {
  std::string owner = "main";
  if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info()) {
    owner = absl::StrCat(info->test_suite_name(), ".", info->name());
    for (char& c : owner) {
      if (c == '/') c = '_';
    }
  }
  return absl::StrCat(::testing::TempDir(), "/freshet_store_", owner, "_", name);
}

// A fresh, empty directory at TestDirPath(name).
inline std::string FreshDir(const std::string& name) {
  const std::string dir = TestDirPath(name);
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

// Both learners hold the same state: ids, counters, histories, popularity, model rows.
inline void ExpectSameState(const learner::Learner& a, const learner::Learner& b) {
  ASSERT_EQ(a.events_applied(), b.events_applied());
  ASSERT_EQ(a.users().live(), b.users().live());
  ASSERT_EQ(a.items().size(), b.items().size());
  for (int32_t row = 0; row < a.users().size(); ++row) {
    if (!a.users().IsLive(row)) continue;
    const std::string& id = a.users().ExternalId(row);
    ASSERT_EQ(b.users().Find(id), row) << id;
    const learner::UserHistory& ha = a.history(row);
    const learner::UserHistory& hb = b.history(row);
    ASSERT_EQ(ha.events(), hb.events()) << id;
    ASSERT_EQ(ha.last_ts_ms(), hb.last_ts_ms()) << id;
    const int recent = a.config().history_recent;
    ASSERT_EQ(std::vector<int32_t>(ha.Recent(recent).begin(), ha.Recent(recent).end()),
              std::vector<int32_t>(hb.Recent(recent).begin(), hb.Recent(recent).end()))
        << id;
    std::vector<int32_t> sa, sb;
    const auto seen_a = ha.Seen(&sa);
    const auto seen_b = hb.Seen(&sb);
    ASSERT_EQ(std::vector<int32_t>(seen_a.begin(), seen_a.end()),
              std::vector<int32_t>(seen_b.begin(), seen_b.end()))
        << id;
    const float* va = a.scoring().UserVector(row);
    const float* vb = b.scoring().UserVector(row);
    ASSERT_EQ(va == nullptr, vb == nullptr);
    if (va != nullptr) {
      ASSERT_EQ(std::memcmp(va, vb, a.config().dim * sizeof(float)), 0) << id;
    }
  }
  for (int32_t row = 0; row < a.items().size(); ++row) {
    ASSERT_EQ(a.items().ExternalId(row), b.items().ExternalId(row));
    ASSERT_EQ(a.popularity().Count(row), b.popularity().Count(row));
    ASSERT_EQ(a.popularity().Value(row), b.popularity().Value(row));
    ASSERT_EQ(a.popularity().LastTs(row), b.popularity().LastTs(row));
  }
  const kernels::ItemMatrixView ia = a.scoring().ItemVectors();
  const kernels::ItemMatrixView ib = b.scoring().ItemVectors();
  ASSERT_EQ(ia.rows == 0, ib.rows == 0);
  for (int64_t row = 0; ia.rows > 0 && row < a.items().size(); ++row) {
    ASSERT_EQ(std::memcmp(ia.vectors + row * ia.stride, ib.vectors + row * ib.stride,
                          ia.dim * sizeof(float)),
              0)
        << "item row " << row;
    if (ia.bias != nullptr) {
      ASSERT_EQ(ia.bias[row], ib.bias[row]);
    }
  }
  // Recommendations, which also read model state not compared above (co-occurrences).
  for (int u = 0; u < 30; ++u) {
    const std::string user = absl::StrCat("u", u);
    learner::Recommendation ra, rb;
    ASSERT_TRUE(a.Recommend(user, 10, true, &ra).ok());
    ASSERT_TRUE(b.Recommend(user, 10, true, &rb).ok());
    ASSERT_EQ(ra.items.size(), rb.items.size()) << user;
    for (size_t i = 0; i < ra.items.size(); ++i) {
      EXPECT_EQ(ra.items[i].item, rb.items[i].item) << user;
      EXPECT_FLOAT_EQ(ra.items[i].score, rb.items[i].score) << user;
    }
  }
}

}  // namespace freshet::testing

#endif  // FRESHET_TESTS_STORE_TEST_UTIL_H_
