// Unit tests of the learner's building blocks: dictionaries, histories, popularity, sampling,
// embedding tables.
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "learner/cooc_model.h"
#include "learner/embedding_table.h"
#include "learner/id_dictionary.h"
#include "learner/internal/vector_ops.h"
#include "learner/negative_sampler.h"
#include "learner/popularity.h"
#include "learner/user_history.h"

namespace freshet::learner {
namespace {

TEST(IdDictionaryTest, AssignsDenseRowsInOrderOfFirstAppearance) {
  IdDictionary dict;
  bool inserted = false;
  EXPECT_EQ(dict.FindOrInsert("u42", &inserted), 0);
  EXPECT_TRUE(inserted);
  EXPECT_EQ(dict.FindOrInsert("7", &inserted), 1);
  EXPECT_TRUE(inserted);
  EXPECT_EQ(dict.FindOrInsert("u42", &inserted), 0);
  EXPECT_FALSE(inserted);
  EXPECT_EQ(dict.size(), 2);
  EXPECT_EQ(dict.Find("7"), 1);
  EXPECT_EQ(dict.Find("missing"), IdDictionary::kMissing);
  EXPECT_EQ(dict.ExternalId(0), "u42");
  EXPECT_EQ(dict.ExternalId(1), "7");
}

TEST(IdDictionaryTest, KeepsIdsThatDifferOnlyInBytes) {
  IdDictionary dict;
  bool inserted = false;
  const std::string with_nul("a\0b", 3);
  EXPECT_EQ(dict.FindOrInsert(with_nul, &inserted), 0);
  EXPECT_EQ(dict.FindOrInsert("a", &inserted), 1);
  EXPECT_EQ(dict.Find(with_nul), 0);
  EXPECT_EQ(dict.ExternalId(0).size(), 3u);
}

TEST(IdDictionaryTest, DistinguishesIdsOfEveryLength) {
  // Ids that share a prefix, a suffix, or both ends but not the middle, at lengths around the
  // 8- and 16-byte boundaries of the comparison.
  IdDictionary dict;
  std::vector<std::string> ids;
  for (size_t n = 0; n <= 40; ++n) {
    std::string base(n, 'a');
    ids.push_back(base);
    if (n > 0) {
      std::string last = base;
      last.back() = 'b';
      ids.push_back(last);
      std::string first = base;
      first.front() = 'c';
      ids.push_back(first);
    }
    if (n > 16) {
      std::string middle = base;
      middle[n / 2] = 'd';
      ids.push_back(middle);
    }
  }
  bool inserted = false;
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(dict.FindOrInsert(ids[i], &inserted), static_cast<int32_t>(i)) << ids[i];
    EXPECT_TRUE(inserted) << ids[i];
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(dict.Find(ids[i]), static_cast<int32_t>(i)) << ids[i];
    EXPECT_EQ(dict.ExternalId(static_cast<int32_t>(i)), ids[i]);
  }
  EXPECT_EQ(dict.Find(std::string(41, 'a')), IdDictionary::kMissing);
}

TEST(IdDictionaryTest, KeepsRowsAcrossRehashing) {
  IdDictionary dict;
  bool inserted = false;
  for (int i = 0; i < 100000; ++i) dict.FindOrInsert("user-" + std::to_string(i), &inserted);
  EXPECT_EQ(dict.size(), 100000);
  for (int i = 0; i < 100000; i += 777) {
    EXPECT_EQ(dict.Find("user-" + std::to_string(i)), i);
  }
  EXPECT_EQ(dict.Find("user-100000"), IdDictionary::kMissing);
}

TEST(UserHistoryTest, RecentIsChronologicalAndBounded) {
  UserHistory h;
  for (int i = 0; i < 20; ++i) {
    h.Add(i % 7, /*recent_cap=*/5, /*seen_cap=*/100);
    h.CountEvent(1000 + i);
  }
  EXPECT_EQ(h.events(), 20);
  EXPECT_EQ(h.last_ts_ms(), 1019);
  const auto recent = h.Recent(5);
  ASSERT_EQ(recent.size(), 5u);
  // Interactions 15..19 are items 1, 2, 3, 4, 5.
  EXPECT_EQ(std::vector<int32_t>(recent.begin(), recent.end()),
            (std::vector<int32_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(h.Recent(3).size(), 3u);
  EXPECT_EQ(h.Recent(3).back(), 5);
}

std::vector<int32_t> SeenOf(const UserHistory& h) {
  std::vector<int32_t> scratch;
  const absl::Span<const int32_t> seen = h.Seen(&scratch);
  return std::vector<int32_t>(seen.begin(), seen.end());
}

TEST(UserHistoryTest, SeenIsSortedAndDistinctBeforeAndAfterMerges) {
  UserHistory h;
  for (int32_t item : {9, 3, 9, 5, 1}) h.Add(item, 10, /*seen_cap=*/100);
  EXPECT_EQ(SeenOf(h), (std::vector<int32_t>{1, 3, 5, 9}));  // unmerged, deduplicated
  EXPECT_TRUE(h.HasSeen(3));
  EXPECT_FALSE(h.HasSeen(4));
  EXPECT_EQ(h.seen_count(), 4u);
  for (int i = 0; i < 40; ++i) h.Add(i % 12, 10, 100);  // forces merges; repeats of 1, 3, 5, 9
  std::vector<int32_t> expected(12);
  for (int i = 0; i < 12; ++i) expected[i] = i;
  EXPECT_EQ(SeenOf(h), expected);
  EXPECT_EQ(h.seen_count(), 12u);
}

// Mirrors the documented policy exactly: interactions are merged 64 at a time; after a merge
// beyond the cap, the items first seen longest ago go, down to cap - cap/16.
TEST(UserHistoryTest, LargeHistoriesFollowTheEvictionPolicyExactly) {
  constexpr int kCap = 1000;
  UserHistory h;
  Rng rng(5);
  std::vector<int32_t> first_seen;  // merged distinct items in order of first interaction
  std::vector<int32_t> pending;
  const auto known = [&](int32_t item) {
    return std::find(first_seen.begin(), first_seen.end(), item) != first_seen.end() ||
           std::find(pending.begin(), pending.end(), item) != pending.end();
  };
  for (int i = 0; i < 20000; ++i) {
    const int32_t item = static_cast<int32_t>(rng.Below(3000));
    ASSERT_EQ(h.HasSeen(item), known(item)) << i;
    h.Add(item, 64, kCap);
    pending.push_back(item);
    if (pending.size() == 64) {
      for (int32_t p : pending) {
        if (std::find(first_seen.begin(), first_seen.end(), p) == first_seen.end()) {
          first_seen.push_back(p);
        }
      }
      pending.clear();
      if (first_seen.size() > kCap) {
        first_seen.erase(first_seen.begin(), first_seen.end() - (kCap - kCap / 16));
      }
    }
    if (i % 997 == 0) {
      std::vector<int32_t> expected = first_seen;
      expected.insert(expected.end(), pending.begin(), pending.end());
      std::sort(expected.begin(), expected.end());
      expected.erase(std::unique(expected.begin(), expected.end()), expected.end());
      ASSERT_EQ(SeenOf(h), expected) << i;
      ASSERT_EQ(h.seen_count(), expected.size());
    }
  }
  EXPECT_LE(h.seen_count(), static_cast<size_t>(kCap + 63));
}

TEST(PopularityTest, AllTimeCountsAreWeightedSums) {
  Popularity pop(0);
  pop.Resize(3);
  pop.Add(0, 1.0f, 0);
  pop.Add(2, 2.0f, 10);
  pop.Add(2, 1.0f, 20);
  EXPECT_DOUBLE_EQ(pop.Value(0), 1.0);
  EXPECT_DOUBLE_EQ(pop.Value(1), 0.0);
  EXPECT_DOUBLE_EQ(pop.Value(2), 3.0);
  EXPECT_EQ(pop.Count(2), 2);
  EXPECT_EQ(pop.total(), 3);
}

// A float stops counting at 2^24 (16,777,216 + 1 rounds back down): an item past that many
// events would stop gaining on the others. Counts accumulate in double.
TEST(PopularityTest, AllTimeCountsKeepGrowingPastTheFloatMantissa) {
  Popularity pop(0);
  pop.Resize(2);
  constexpr int64_t kBase = int64_t{1} << 24;
  for (int64_t e = 0; e < kBase; ++e) {
    pop.Add(0, 1.0f, 0);
    pop.Add(1, 1.0f, 0);
  }
  for (int e = 0; e < 1000; ++e) pop.Add(0, 1.0f, 0);
  for (int e = 0; e < 500; ++e) pop.Add(1, 1.0f, 0);
  EXPECT_DOUBLE_EQ(pop.Value(0), static_cast<double>(kBase + 1000));
  EXPECT_DOUBLE_EQ(pop.Value(1), static_cast<double>(kBase + 500));
  EXPECT_GT(pop.Scores()[0], pop.Scores()[1]);
  // Loaded, the sum is its persisted float, and grows from there.
  std::string row;
  pop.EncodeItem(0, &row);
  Popularity loaded(0);
  loaded.Resize(2);
  ASSERT_TRUE(loaded.DecodeItem(0, row));
  for (int e = 0; e < 7; ++e) loaded.Add(0, 1.0f, 0);
  EXPECT_DOUBLE_EQ(loaded.Value(0), static_cast<double>(kBase + 1007));
}

// What new users take: the first-event share, with `prior` first events' worth of the all-time
// share mixed in, so that few first events cannot outrank what everyone takes.
TEST(PopularityTest, NewUserScoresFollowFirstEventsOnceThereAreEnough) {
  Popularity pop(0);
  pop.Resize(3);
  for (int e = 0; e < 100; ++e) pop.Add(0, 1.0f, 0);  // the all-time favourite, never a first
  for (int e = 0; e < 5; ++e) pop.Add(1, 1.0f, 0, /*first_of_user=*/true);
  EXPECT_DOUBLE_EQ(pop.FirstValue(1), 5.0);
  EXPECT_DOUBLE_EQ(pop.Value(1), 5.0);
  std::vector<float> scores(3);
  pop.NewUserScores(50, absl::MakeSpan(scores));
  // (F_i + 50 * A_i / A) / (F + 50), A = 105, F = 5.
  EXPECT_NEAR(scores[0], (0 + 50.0 * 100 / 105) / 55, 1e-6);
  EXPECT_NEAR(scores[1], (5 + 50.0 * 5 / 105) / 55, 1e-6);
  EXPECT_EQ(scores[2], 0.0f);
  EXPECT_GT(scores[0], scores[1]);  // 5 first events are not enough
  for (int e = 0; e < 55; ++e) pop.Add(1, 1.0f, 0, /*first_of_user=*/true);
  pop.NewUserScores(50, absl::MakeSpan(scores));
  EXPECT_GT(scores[1], scores[0]);  // 60 are
  pop.NewUserScores(0, absl::MakeSpan(scores));
  EXPECT_EQ(scores[0], 0.0f);
  EXPECT_FLOAT_EQ(scores[1], 1.0f);

  // Persisted with the item; a row written before first-event counts existed reads as none.
  std::string row;
  pop.EncodeItem(1, &row);
  Popularity loaded(0);
  loaded.Resize(3);
  ASSERT_TRUE(loaded.DecodeItem(1, row));
  EXPECT_DOUBLE_EQ(loaded.FirstValue(1), 60.0);
  EXPECT_DOUBLE_EQ(loaded.Value(1), 60.0);
  ASSERT_EQ(row.size(), 24u);
  ASSERT_TRUE(loaded.DecodeItem(1, row.substr(0, 20)));
  EXPECT_DOUBLE_EQ(loaded.FirstValue(1), 0.0);
  EXPECT_DOUBLE_EQ(loaded.Value(1), 60.0);

  // Nothing counted: every score 0.
  Popularity empty(0);
  empty.Resize(2);
  empty.NewUserScores(50, absl::MakeSpan(scores));
  EXPECT_EQ(scores, std::vector<float>(3, 0.0f));
}

TEST(PopularityTest, FirstEventCountsDecayLikeTheOthers) {
  Popularity pop(/*half_life_s=*/10);
  pop.Resize(2);
  pop.Add(0, 1.0f, 0, /*first_of_user=*/true);
  pop.Add(1, 1.0f, 10'000);  // one half-life later
  EXPECT_NEAR(pop.FirstValue(0), 0.5, 1e-6);
  EXPECT_NEAR(pop.Value(0), 0.5, 1e-6);
  EXPECT_DOUBLE_EQ(pop.FirstValue(1), 0.0);
  for (int64_t t = 0; t < 2000; ++t) pop.Add(1, 1.0f, 20'000 + t * 1000, t == 0);  // rescales
  EXPECT_GT(pop.rescales(), 0);
  EXPECT_NEAR(pop.FirstValue(1), std::exp2(-199.9), 1e-60);
  EXPECT_TRUE(std::isfinite(pop.FirstValue(0)));
}

TEST(PopularityTest, DecayHalvesPerHalfLife) {
  Popularity pop(/*half_life_s=*/10);
  pop.Resize(2);
  pop.Add(0, 1.0f, 0);
  pop.Add(1, 1.0f, 10'000);  // one half-life later
  EXPECT_NEAR(pop.Value(0), 0.5, 1e-6);
  EXPECT_NEAR(pop.Value(1), 1.0, 1e-6);
  EXPECT_GT(pop.Scores()[1], pop.Scores()[0]);
}

TEST(PopularityTest, DecaySurvivesLongStreamsWithoutOverflow) {
  Popularity pop(/*half_life_s=*/1);
  pop.Resize(2);
  for (int64_t t = 0; t < 2000; ++t) pop.Add(t % 2, 1.0f, t * 1000);  // 2000 half-lives
  EXPECT_TRUE(std::isfinite(pop.Scores()[0]));
  EXPECT_TRUE(std::isfinite(pop.Scores()[1]));
  // Item 1 was seen last: decayed count 1 + 1/4 + 1/16 + ... = 4/3.
  EXPECT_NEAR(pop.Value(1), 4.0 / 3.0, 1e-3);
  EXPECT_NEAR(pop.Value(0), 2.0 / 3.0, 1e-3);
}

TEST(NegativeSamplerTest, FollowsPopularityToThePowerAlpha) {
  Popularity pop(0);
  pop.Resize(3);
  // Counts 0, 8, 24 -> (count + 1)^0.5 = 1, 3, 5.
  for (int i = 0; i < 8; ++i) pop.Add(1, 1.0f, 0);
  for (int i = 0; i < 24; ++i) pop.Add(2, 1.0f, 0);
  NegativeSampler sampler(0.5f);
  sampler.Observe(pop, 3);
  Rng rng(7);
  std::map<int32_t, int> hits;
  const int n = 90000;
  for (int i = 0; i < n; ++i) ++hits[sampler.Sample(rng)];
  EXPECT_NEAR(hits[0] / static_cast<double>(n), 1.0 / 9, 0.01);
  EXPECT_NEAR(hits[1] / static_cast<double>(n), 3.0 / 9, 0.01);
  EXPECT_NEAR(hits[2] / static_cast<double>(n), 5.0 / 9, 0.01);
  EXPECT_NEAR(sampler.Probability(2), 5.0 / 9, 0.01);
}

TEST(NegativeSamplerTest, AResumedSamplerKeepsTheScheduleOfALongStream) {
  // A restarted learner must not rebuild the O(catalog) table every few events as at a stream's
  // start: after Resume(n) it rebuilds at once, then not again for about n/8 events.
  Popularity pop(0);
  pop.Resize(2);
  for (int i = 0; i < 3; ++i) pop.Add(1, 1.0f, 0);  // counts 0, 3 -> weights 1, 4 at alpha 1
  NegativeSampler resumed(1.0f);
  NegativeSampler fresh(1.0f);
  resumed.Resume(1000000);
  resumed.Observe(pop, 2);
  fresh.Observe(pop, 2);
  EXPECT_NEAR(resumed.Probability(1), 0.8, 0.01);
  for (int i = 0; i < 95; ++i) pop.Add(0, 1.0f, 0);  // counts 95, 3 -> weights 96, 4
  for (int i = 0; i < 1000; ++i) {
    resumed.Observe(pop, 2);
    fresh.Observe(pop, 2);
  }
  EXPECT_NEAR(resumed.Probability(1), 0.8, 0.01);  // not rebuilt yet
  EXPECT_NEAR(fresh.Probability(1), 0.04, 0.01);   // rebuilt early in its stream
}

TEST(NegativeSamplerTest, EmptyUntilObserved) {
  NegativeSampler sampler(1.0f);
  Rng rng(1);
  EXPECT_EQ(sampler.Sample(rng), -1);
}

TEST(EmbeddingTableTest, RowsAreAlignedPaddedAndKeptAcrossGrowth) {
  EmbeddingTable table(20);
  EXPECT_EQ(table.stride(), 32);
  table.Resize(2, 0.1f, /*seed=*/3);
  table.Row(1)[5] = 42.0f;
  table.Resize(5000, 0.1f, /*seed=*/3);
  EXPECT_EQ(table.rows(), 5000);
  EXPECT_EQ(table.Row(1)[5], 42.0f);
  for (int64_t r = 0; r < table.rows(); r += 997) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(table.Row(r)) % 64, 0u);
    for (int j = 20; j < 32; ++j) EXPECT_EQ(table.Row(r)[j], 0.0f);
  }
  double sum_sq = 0;
  for (int64_t r = 2; r < table.rows(); ++r) {
    for (int j = 0; j < 20; ++j) sum_sq += table.Row(r)[j] * table.Row(r)[j];
  }
  EXPECT_NEAR(std::sqrt(sum_sq / (4998.0 * 20)), 0.1, 0.005);
}

TEST(VectorOpsTest, ExpNonPositiveMatchesLibm) {
  for (float x = 0.0f; x > -87.0f; x -= 0.013f) {
    const double expected = std::exp(static_cast<double>(x));
    EXPECT_NEAR(internal::ExpNonPositive(x), expected, 4e-6 * expected) << x;
  }
  EXPECT_EQ(internal::ExpNonPositive(0.0f), 1.0f);
  EXPECT_EQ(internal::ExpNonPositive(-1000.0f), 0.0f);
}

// A cooc model on the cpu backend with the popularity it reads, grown to `users` and `items`.
struct CoocUnderTest {
  CoocUnderTest(const config::Config& config, int32_t users, int32_t items)
      : backend(std::move(kernels::CreateBackend("cpu")).value()),
        model(config, &popularity, backend.get()),
        items(items) {
    model.Grow(users, items);
    popularity.Resize(items);
  }
  // Learns the user's event of `item` at `ts` after their `recent` items, and appends it to them.
  void Learn(int32_t user, int32_t item, int64_t ts, std::vector<int32_t>* recent) {
    model.Learn(Interaction{user, item, 1.0f, ts, *recent, items});
    popularity.Add(item, 1.0f, ts);
    recent->push_back(item);
  }
  Popularity popularity{0};
  std::unique_ptr<kernels::Backend> backend;
  CoocModel model;
  const int32_t items;
};

TEST(CoocModelTest, PruningBoundsMemoryAndKeepsTheStrongestPairs) {
  config::Config config;
  config.cooc_max_pairs = 1000;
  config.cooc_window = 4;
  constexpr int32_t kItems = 400;
  CoocUnderTest cooc(config, 1, kItems);
  CoocModel& model = cooc.model;
  Rng rng(9);
  std::vector<int32_t> recent;
  for (int i = 0; i < 20000; ++i) {
    // Items 0 and 1 always come together; everything else is noise.
    const int32_t item =
        i % 2 == 0 ? static_cast<int32_t>(rng.Below(kItems)) : (i % 4 == 1 ? 0 : 1);
    cooc.Learn(0, item, i, &recent);
    EXPECT_LE(model.stored_pairs(), 1000) << i;
  }
  EXPECT_GT(model.stored_pairs(), 500);  // pruning keeps about 3/4 of the cap, not far less
  std::vector<int32_t> last{0};
  std::vector<kernels::ScoredItem> recs;
  ASSERT_TRUE(model.Recommend(UserQuery{0, last, {}}, 1, &recs).ok());
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].item, 1);
}

// cooc.user_exponent: an event's pairs with the user's n latest items each weigh weight / n^e, so
// with e = 1 every event adds the same total whatever the user's history; 0 counts pairs alike.
TEST(CoocModelTest, TheUserExponentSharesAnEventsWeightAmongItsPairs) {
  for (const float exponent : {0.0f, 0.5f, 1.0f}) {
    config::Config config;
    config.cooc_window = 8;
    config.cooc_decay = 1.0f;
    config.cooc_session_gap_s = 0;
    config.cooc_user_exponent = exponent;
    CoocUnderTest cooc(config, 2, 10);
    std::vector<int32_t> heavy, light;
    for (int32_t item : {0, 1, 2, 3}) cooc.Learn(0, item, item, &heavy);
    cooc.Learn(0, 9, 10, &heavy);
    cooc.Learn(1, 4, 11, &light);  // 1 earlier item
    cooc.Learn(1, 9, 12, &light);
    const auto& nine = cooc.model.neighbours(9);
    const auto weight = [&](int32_t other) {
      const auto it = nine.find(other);
      return it == nine.end() ? 0.0f : it->second;
    };
    const float per_pair = std::pow(4.0f, -exponent);  // item 9 met 4 earlier items of user 0
    for (int32_t item : {0, 1, 2, 3}) {
      EXPECT_FLOAT_EQ(weight(item), per_pair) << exponent << " " << item;
      EXPECT_FLOAT_EQ(cooc.model.neighbours(item).at(9), per_pair) << exponent;  // symmetric
    }
    EXPECT_FLOAT_EQ(weight(4), 1.0f) << exponent;  // one earlier item: the event's weight
    // The second of user 0's items met one earlier item: weight 1 whatever the exponent.
    EXPECT_FLOAT_EQ(cooc.model.neighbours(1).at(0), 1.0f) << exponent;
  }
}

// AddScores() with a list of the rows it reached gives the same scores as without, and lists each
// row it made non-zero exactly once, however many of the user's items reach it.
TEST(CoocModelTest, ScoresWithTheirRowsListTheRowsReachedOnce) {
  config::Config config;
  config.cooc_window = 8;
  config.cooc_session_gap_s = 0;
  constexpr int32_t kItems = 300;
  CoocUnderTest cooc(config, 50, kItems);
  const CoocModel& model = cooc.model;
  Rng rng(4);
  std::vector<std::vector<int32_t>> recent(50);
  for (int i = 0; i < 5000; ++i) {
    const int32_t user = static_cast<int32_t>(rng.Below(50));
    // Items of a user cluster in one of three ranges, so that lists overlap.
    const int32_t item = static_cast<int32_t>(user % 3 * 100 + rng.Below(100));
    cooc.Learn(user, item, i, &recent[user]);
  }
  for (int32_t user = 0; user < 50; user += 7) {
    // Rows at or above the span's size are left out of both.
    const int32_t catalog = user % 2 == 0 ? kItems : 250;
    std::vector<float> plain(static_cast<size_t>(catalog), 0.0f);
    std::vector<float> tracked(static_cast<size_t>(catalog), 0.0f);
    std::vector<int32_t> rows;
    model.AddScores(recent[user], 16, 0.9f, absl::MakeSpan(plain));
    model.AddScores(recent[user], 16, 0.9f, absl::MakeSpan(tracked), &rows);
    EXPECT_EQ(plain, tracked) << user;
    std::vector<int32_t> nonzero;
    for (int32_t i = 0; i < catalog; ++i) {
      if (tracked[i] != 0.0f) nonzero.push_back(i);
    }
    EXPECT_GT(nonzero.size(), 20u) << user;
    std::sort(rows.begin(), rows.end());
    EXPECT_EQ(rows, nonzero) << user;  // sorted, so a repeat would show
  }
}

}  // namespace
}  // namespace freshet::learner
