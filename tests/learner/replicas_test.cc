// Learner replicas: learners that each learn their own users and exchange item-row changes must
// end with bitwise-equal item parameters, count every replica's learning once, take in items they
// never saw, rejoin after a restart, refuse what they cannot merge, and rank as well as one
// learner that saw every event.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/byte_codec.h"
#include "common/status_macros.h"
#include "config/config.h"
#include "gtest/gtest.h"
#include "kernels/cpu_backend.h"
#include "learner/id_dictionary.h"
#include "learner/learner.h"
#include "learner/trainers/bpr_trainer.h"
#include "stream/file_event_source.h"
#include "tests/learner/generated_events.h"
#include "tests/learner/test_trainers.h"

namespace freshet::learner {
namespace {

const std::string kMovieLens = FRESHET_SOURCE_DIR "/../shared/data/ml-100k/u.data";

std::vector<stream::Event> Generated(int64_t events, uint64_t seed) {
  return GeneratedEvents(events, 400, 800, seed);
}

// Which replica learns a user's events (as Kafka partitions users by key).
int Owner(const std::string& user, int replicas) {
  return static_cast<int>(IdDictionary::Hash(user) % static_cast<uint64_t>(replicas));
}

std::unique_ptr<Learner> MakeLearner(const kernels::Backend* backend, const std::string& algorithm,
                                     const config::Config& config = config::Config()) {
  auto learner = Learner::Create(algorithm, config, backend);
  EXPECT_TRUE(learner.ok()) << learner.status();
  return learner.ok() ? std::move(*learner) : nullptr;
}

std::unique_ptr<Learner> MakeLearner(const TestDevice& device, const std::string& algorithm,
                                     const config::Config& config) {
  auto learner = device.NewLearner(algorithm, config);
  EXPECT_TRUE(learner.ok()) << learner.status();
  return learner.ok() ? std::move(*learner) : nullptr;
}

// One exchange among `group` (rank = index), with the catch-up exchange when one follows.
void Exchange(const std::vector<Learner*>& group) {
  std::vector<std::string> messages;
  for (Learner* l : group) messages.push_back(l->TakeReplicaChanges());
  bool catch_up = false;
  for (size_t r = 0; r < group.size(); ++r) {
    ReplicaMergeStats stats;
    ASSERT_TRUE(group[r]->MergeReplicaChanges(messages, static_cast<int>(r), &stats).ok());
    catch_up = stats.catch_up;
  }
  if (!catch_up) return;
  messages.clear();
  for (Learner* l : group) messages.push_back(l->ReplicaCatchUp());
  for (size_t r = 0; r < group.size(); ++r) {
    ReplicaMergeStats stats;
    ASSERT_TRUE(group[r]->MergeReplicaChanges(messages, static_cast<int>(r), &stats).ok());
    EXPECT_FALSE(stats.catch_up);
  }
}

// An item's vector and bias, by id (empty when the learner does not know it).
std::vector<float> ItemParams(const Learner& learner, const std::string& id) {
  const int32_t row = learner.items().Find(id);
  if (row == IdDictionary::kMissing) return {};
  const kernels::ItemMatrixView v = learner.scoring().ItemVectors();
  std::vector<float> out(v.vectors + row * v.stride, v.vectors + row * v.stride + v.dim);
  out.push_back(v.bias[row]);
  return out;
}

// Every item of every replica has the same parameters, bit for bit, on every replica.
void ExpectReplicasEqual(const std::vector<Learner*>& group) {
  for (const Learner* a : group) {
    for (int32_t row = 0; row < a->items().size(); ++row) {
      const std::string& id = a->items().ExternalId(row);
      const std::vector<float> mine = ItemParams(*a, id);
      for (const Learner* b : group) {
        ASSERT_EQ(ItemParams(*b, id), mine) << "item " << id;
      }
    }
  }
}

// Event by event (micro_batch 0), and in micro-batches on the reference trainer (what a GPU
// runs): merged rows must reach the trainer's tables, or its next step would copy stale rows back.
class ReplicasOnLearnersTest : public ::testing::TestWithParam<int> {};

TEST_P(ReplicasOnLearnersTest, ReplicasLearningTheirOwnUsersEndWithEqualItemModels) {
  const kernels::CpuBackend cpu;
  constexpr int kReplicas = 3;
  config::Config config;
  config.micro_batch = GetParam();
  std::vector<std::unique_ptr<Learner>> owned;
  std::vector<Learner*> group;
  for (int r = 0; r < kReplicas; ++r) {
    owned.push_back(MakeLearner(&cpu, "bpr", config));
    ASSERT_TRUE(owned.back()->EnableReplicas().ok());
    group.push_back(owned.back().get());
  }
  Exchange(group);  // the start: every replica joins, with nothing yet
  const std::vector<stream::Event> events = Generated(12'000, 3);
  std::vector<std::vector<stream::Event>> shares(kReplicas);
  size_t next = 0;
  int exchanges = 0;
  while (next < events.size()) {
    // A window of 300 events: items new to several replicas at once arrive in the same window.
    for (auto& s : shares) s.clear();
    for (size_t end = std::min(events.size(), next + 300); next < end; ++next) {
      shares[Owner(events[next].user, kReplicas)].push_back(events[next]);
    }
    for (int r = 0; r < kReplicas; ++r) group[r]->ApplyBatch(shares[r]);
    Exchange(group);
    ++exchanges;
    ExpectReplicasEqual(group);
    if (HasFatalFailure()) return;
  }
  EXPECT_EQ(exchanges, 40);
  // Every replica knows every item, and only its own users.
  absl::flat_hash_set<std::string> users, items;
  for (const stream::Event& e : events) {
    users.insert(e.user);
    items.insert(e.item);
  }
  int64_t replica_users = 0;
  for (const Learner* l : group) {
    EXPECT_EQ(l->items().size(), static_cast<int32_t>(items.size()));
    replica_users += l->users().size();
  }
  EXPECT_EQ(replica_users, static_cast<int64_t>(users.size()));
}

INSTANTIATE_TEST_SUITE_P(EventByEventAndMicroBatched, ReplicasOnLearnersTest,
                         ::testing::Values(0, 64));

// A trainer (the reference one inside) that keeps its own mirror of the item rows it was given
// and learnt, and counts every row a step reads that differs from the host's: a device holding a
// stale row (a merged row never uploaded) would learn from it and copy it back.
class MirrorCheckingTrainer final : public BprTrainer {
 public:
  explicit MirrorCheckingTrainer(int dim, int* stale)
      : inner_(NewReferenceBprTrainer(dim)), dim_(dim), stale_(stale) {}
  std::string Name() const override { return "mirror-checking"; }
  absl::Status Upload(const kernels::BprTables& host, absl::Span<const int32_t> users,
                      absl::Span<const int32_t> items) override {
    for (int32_t row : items) Remember(host, row);
    return inner_->Upload(host, users, items);
  }
  absl::Status Step(const kernels::BprBatch& batch, const kernels::BprParams& params,
                    const kernels::BprTables& host) override {
    std::vector<int32_t> users, items;
    BprBatchRows(batch, params, &users, &items);
    std::vector<int32_t> read = items;
    for (int32_t row : batch.context) {
      if (row >= 0) read.push_back(row);
    }
    for (int32_t row : read) {
      const auto it = mirror_.find(row);
      if (it == mirror_.end() || it->second != Row(host, row)) ++*stale_;
    }
    FRESHET_RETURN_IF_ERROR(inner_->Step(batch, params, host));
    for (int32_t row : items) Remember(host, row);
    return absl::OkStatus();
  }
  absl::Status TopK(int64_t, absl::Span<const kernels::TopKQuery>, int,
                    absl::Span<std::vector<kernels::ScoredItem>>) const override {
    return absl::UnimplementedError("the host tables are scored");
  }

 private:
  std::vector<float> Row(const kernels::BprTables& host, int32_t row) const {
    const float* v = host.items + row * host.row_stride();
    std::vector<float> out(v, v + dim_);
    out.push_back(host.item_acc[row]);
    out.push_back(host.bias[row]);
    out.push_back(host.bias_acc[row]);
    return out;
  }
  void Remember(const kernels::BprTables& host, int32_t row) { mirror_[row] = Row(host, row); }

  std::unique_ptr<BprTrainer> inner_;
  const int dim_;
  int* stale_;
  std::map<int32_t, std::vector<float>> mirror_;
};

TEST(ReplicasTest, MergedRowsReachADevicesTablesBeforeItsNextStep) {
  int stale_a = 0, stale_b = 0;
  const TestDevice device_a(
      [&stale_a](int dim) { return std::make_unique<MirrorCheckingTrainer>(dim, &stale_a); });
  const TestDevice device_b(
      [&stale_b](int dim) { return std::make_unique<MirrorCheckingTrainer>(dim, &stale_b); });
  config::Config config;
  config.micro_batch = 64;
  auto a = MakeLearner(device_a, "bpr", config), b = MakeLearner(device_b, "bpr", config);
  ASSERT_EQ(a->diagnostics().Learning(), "mirror-checking");
  ASSERT_TRUE(a->EnableReplicas().ok());
  ASSERT_TRUE(b->EnableReplicas().ok());
  Exchange({a.get(), b.get()});
  const std::vector<stream::Event> events = Generated(6'000, 13);
  for (size_t begin = 0; begin < events.size(); begin += 500) {
    std::vector<stream::Event> shares[2];
    for (size_t i = begin; i < std::min(events.size(), begin + 500); ++i) {
      shares[Owner(events[i].user, 2)].push_back(events[i]);
    }
    a->ApplyBatch(shares[0]);
    b->ApplyBatch(shares[1]);
    Exchange({a.get(), b.get()});
  }
  ExpectReplicasEqual({a.get(), b.get()});
  EXPECT_EQ(stale_a, 0);
  EXPECT_EQ(stale_b, 0);
}

TEST(ReplicasTest, EachReplicasLearningCountsOnceWhenMerged) {
  // One replica learns, the other is idle: after the exchange both hold what the learning one
  // learnt (to rounding: base + (now - base)), and a learner without replicas agrees.
  const kernels::CpuBackend cpu;
  auto a = MakeLearner(&cpu, "bpr"), b = MakeLearner(&cpu, "bpr"), alone = MakeLearner(&cpu, "bpr");
  ASSERT_TRUE(a->EnableReplicas().ok());
  ASSERT_TRUE(b->EnableReplicas().ok());
  Exchange({a.get(), b.get()});
  const std::vector<stream::Event> events = Generated(3'000, 9);
  a->ApplyBatch(events);
  alone->ApplyBatch(events);
  Exchange({a.get(), b.get()});
  ExpectReplicasEqual({a.get(), b.get()});
  ASSERT_EQ(b->items().size(), alone->items().size());
  EXPECT_EQ(b->users().size(), 0);
  for (int32_t row = 0; row < alone->items().size(); ++row) {
    const std::string& id = alone->items().ExternalId(row);
    const std::vector<float> expected = ItemParams(*alone, id), got = ItemParams(*b, id);
    ASSERT_EQ(got.size(), expected.size());
    for (size_t j = 0; j < got.size(); ++j) ASSERT_NEAR(got[j], expected[j], 1e-6) << id;
  }
}

TEST(ReplicasTest, AnItemNewToTwoReplicasAtOnceStartsOnceAndSumsBothUpdates) {
  const kernels::CpuBackend cpu;
  auto a = MakeLearner(&cpu, "bpr"), b = MakeLearner(&cpu, "bpr");
  ASSERT_TRUE(a->EnableReplicas().ok());
  ASSERT_TRUE(b->EnableReplicas().ok());
  Exchange({a.get(), b.get()});
  // Different first items, so "shared" lands on different rows with different initial values.
  a->ApplyBatch(std::vector<stream::Event>{{"ua", "only-a", "", 1.0f, 1, {}, {}},
                                           {"ua", "shared", "", 1.0f, 2, {}, {}}});
  b->ApplyBatch(std::vector<stream::Event>{{"ub", "shared", "", 1.0f, 3, {}, {}}});
  ASSERT_NE(a->items().Find("shared"), b->items().Find("shared"));
  const std::vector<float> before_a = ItemParams(*a, "shared");
  const std::vector<float> before_b = ItemParams(*b, "shared");
  Exchange({a.get(), b.get()});
  ExpectReplicasEqual({a.get(), b.get()});
  EXPECT_NE(b->items().Find("only-a"), IdDictionary::kMissing);
  // Rank 0's start plus both replicas' changes from their own starts.
  const std::vector<float> merged = ItemParams(*a, "shared");
  EXPECT_NE(merged, before_a);
  EXPECT_NE(merged, before_b);
}

TEST(ReplicasTest, ARestartedReplicaRejoinsAndCatchesUp) {
  const kernels::CpuBackend cpu;
  auto a = MakeLearner(&cpu, "bpr"), b = MakeLearner(&cpu, "bpr"), c = MakeLearner(&cpu, "bpr");
  for (Learner* l : {a.get(), b.get(), c.get()}) ASSERT_TRUE(l->EnableReplicas().ok());
  Exchange({a.get(), b.get(), c.get()});
  const std::vector<stream::Event> events = Generated(6'000, 11);
  std::vector<stream::Event> first, second;
  for (size_t i = 0; i < events.size(); ++i) (i < 3000 ? first : second).push_back(events[i]);
  for (const stream::Event& e : first) (Owner(e.user, 2) == 0 ? a : c)->Apply(e);
  Exchange({a.get(), b.get(), c.get()});
  // b restarts empty (its state lost) and learns a few events of its own before it rejoins.
  b = MakeLearner(&cpu, "bpr");
  ASSERT_TRUE(b->EnableReplicas().ok());
  b->ApplyBatch(std::vector<stream::Event>{{"ub", events[0].item, "", 1.0f, 5, {}, {}},
                                           {"ub", "brand-new", "", 1.0f, 6, {}, {}}});
  for (const stream::Event& e : second) (Owner(e.user, 2) == 0 ? a : c)->Apply(e);
  Exchange({a.get(), b.get(), c.get()});  // b joins; a catch-up from rank 0 follows
  ExpectReplicasEqual({a.get(), b.get(), c.get()});
  EXPECT_EQ(b->items().size(), a->items().size());
  EXPECT_NE(a->items().Find("brand-new"), IdDictionary::kMissing);
  // And the group goes on as usual.
  for (const stream::Event& e : first) (Owner(e.user, 2) == 0 ? a : c)->Apply(e);
  Exchange({a.get(), b.get(), c.get()});
  ExpectReplicasEqual({a.get(), b.get(), c.get()});
}

TEST(ReplicasTest, WhatCannotBeMergedIsRefusedAndChangesNothing) {
  const kernels::CpuBackend cpu;
  auto ials = MakeLearner(&cpu, "ials");
  EXPECT_EQ(ials->EnableReplicas().code(), absl::StatusCode::kFailedPrecondition);

  auto a = MakeLearner(&cpu, "bpr"), b = MakeLearner(&cpu, "bpr");
  config::Config wide;
  wide.dim = 32;
  auto narrow = MakeLearner(&cpu, "bpr", wide);
  for (Learner* l : {a.get(), b.get(), narrow.get()}) ASSERT_TRUE(l->EnableReplicas().ok());
  Exchange({a.get(), b.get()});
  a->ApplyBatch(Generated(500, 4));
  const std::string good = a->TakeReplicaChanges();
  ReplicaMergeStats stats;
  // Another dimension.
  const std::vector<std::string> mixed = {good, narrow->TakeReplicaChanges()};
  EXPECT_EQ(b->MergeReplicaChanges(mixed, 0, &stats).code(), absl::StatusCode::kFailedPrecondition);
  // Truncated and corrupt messages.
  for (const std::string& bad :
       {good.substr(0, good.size() / 2), std::string("\x01\x00", 2), good + "x"}) {
    const std::vector<std::string> messages = {bad, b->TakeReplicaChanges()};
    EXPECT_EQ(b->MergeReplicaChanges(messages, 1, &stats).code(), absl::StatusCode::kDataLoss);
  }
  EXPECT_EQ(b->items().size(), 0);  // nothing merged
  // A change to an item b never received, outside a join: the replicas did not start together.
  auto stranger = MakeLearner(&cpu, "bpr");
  ASSERT_TRUE(stranger->EnableReplicas().ok());
  stranger->ApplyBatch(Generated(50, 4));
  (void)stranger->TakeReplicaChanges();  // joins alone
  ReplicaMergeStats alone;
  const std::vector<std::string> own = {stranger->TakeReplicaChanges()};
  ASSERT_TRUE(stranger->MergeReplicaChanges({own[0]}, 0, &alone).ok());
  stranger->ApplyBatch(Generated(50, 4));
  const std::vector<std::string> foreign = {b->TakeReplicaChanges(),
                                            stranger->TakeReplicaChanges()};
  EXPECT_EQ(b->MergeReplicaChanges(foreign, 0, &stats).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(b->items().size(), 0);
  // The group still works afterwards.
  Exchange({a.get(), b.get()});
  ExpectReplicasEqual({a.get(), b.get()});
  EXPECT_GT(b->items().size(), 0);
}

// A NaN or an infinity in a message, or a merged value the model cannot take (a negative Adagrad
// accumulator), is refused with DataLoss before any row is written.
TEST(ReplicasTest, NonFiniteValuesAndNegativeAccumulatorsAreRefusedAndChangeNothing) {
  const kernels::CpuBackend cpu;
  auto a = MakeLearner(&cpu, "bpr"), b = MakeLearner(&cpu, "bpr");
  for (Learner* l : {a.get(), b.get()}) ASSERT_TRUE(l->EnableReplicas().ok());
  a->ApplyBatch(Generated(500, 4));
  Exchange({a.get(), b.get()});
  ExpectReplicasEqual({a.get(), b.get()});
  std::map<std::string, std::vector<float>> before;
  for (int32_t row = 0; row < b->items().size(); ++row) {
    before[b->items().ExternalId(row)] = ItemParams(*b, b->items().ExternalId(row));
  }
  a->ApplyBatch(Generated(300, 5));
  const std::string good = a->TakeReplicaChanges();

  // The first row's values: format, kind, width, row count, then the row's id and flags.
  ByteReader r(good);
  uint8_t format = 0, kind = 0, flags = 0;
  int32_t width = 0;
  uint64_t count = 0;
  absl::string_view id;
  ASSERT_TRUE(r.Get(&format) && r.Get(&kind) && r.Get(&width) && r.GetVarint(&count) &&
              r.GetStringView(&id) && r.Get(&flags));
  ASSERT_GT(count, 0u);
  const size_t values = static_cast<size_t>(id.data() + id.size() - good.data()) + 1;
  const size_t start = values;  // kNew (1): the start value
  const size_t change = values + ((flags & 1) != 0 ? static_cast<size_t>(width) * 4 : 0);
  const int dim = config::Config().dim;
  const auto with = [&](size_t at, float v) {
    std::string out = good;
    std::memcpy(&out[at], &v, sizeof(v));
    return out;
  };
  const size_t first = (flags & 1) != 0 ? start : change;
  std::vector<std::string> bad = {with(first, std::nanf("")), with(first, INFINITY),
                                  with(first + 4 * (dim + 1), -INFINITY)};
  // An accumulator (replicated as [vector, bias, accumulator, bias accumulator]) below zero.
  const size_t summed = (flags & 2) != 0 ? change : start;
  bad.push_back(with(summed + 4 * (dim + 1), -1e30f));
  bad.push_back(with(summed + 4 * (dim + 2), -1e30f));
  ReplicaMergeStats stats;
  for (const std::string& message : bad) {
    const std::vector<std::string> messages = {message, b->TakeReplicaChanges()};
    const absl::Status s = b->MergeReplicaChanges(messages, 1, &stats);
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
    ASSERT_EQ(b->items().size(), static_cast<int32_t>(before.size()));
    for (const auto& [item, params] : before) EXPECT_EQ(ItemParams(*b, item), params) << item;
  }
  // The message as sent merges, and the group is equal again.
  const std::vector<std::string> messages = {good, b->TakeReplicaChanges()};
  ASSERT_TRUE(a->MergeReplicaChanges(messages, 0, &stats).ok());
  ASSERT_TRUE(b->MergeReplicaChanges(messages, 1, &stats).ok());
  ExpectReplicasEqual({a.get(), b.get()});
}

// Prequential hit rate: before each event, does the owning learner's top 10 (seen items excluded)
// hold the event's item?
double HitRate(const std::vector<stream::Event>& events, int replicas, int exchange_every) {
  const kernels::CpuBackend cpu;
  std::vector<std::unique_ptr<Learner>> owned;
  std::vector<Learner*> group;
  for (int r = 0; r < replicas; ++r) {
    owned.push_back(MakeLearner(&cpu, "bpr"));
    if (replicas > 1) {
      EXPECT_TRUE(owned.back()->EnableReplicas().ok());
    }
    group.push_back(owned.back().get());
  }
  if (replicas > 1) Exchange(group);
  int64_t hits = 0, asked = 0;
  Recommendation rec;
  for (size_t i = 0; i < events.size(); ++i) {
    const stream::Event& e = events[i];
    Learner& owner = *group[Owner(e.user, replicas)];
    if (owner.users().Find(e.user) != IdDictionary::kMissing &&
        owner.Recommend(e.user, 10, /*exclude_seen=*/true, &rec).ok()) {
      ++asked;
      for (const kernels::ScoredItem& s : rec.items) {
        if (owner.items().ExternalId(s.item) == e.item) ++hits;
      }
    }
    owner.Apply(e);
    if (replicas > 1 && (i + 1) % exchange_every == 0) Exchange(group);
  }
  return asked > 0 ? static_cast<double>(hits) / asked : 0.0;
}

TEST(ReplicasTest, TwoReplicasRankMovieLensAsWellAsOneLearner) {
  if (!std::filesystem::exists(kMovieLens)) GTEST_SKIP() << "no " << kMovieLens;
  auto options = stream::FileSourceOptions::ForFormat("movielens-100k");
  ASSERT_TRUE(options.ok()) << options.status();
  auto opened = stream::FileEventSource::Open(kMovieLens, *options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::vector<stream::Event> events;
  std::vector<stream::Event> polled;
  while (!(*opened)->Finished()) {
    polled.clear();
    ASSERT_TRUE((*opened)->Poll(4096, absl::ZeroDuration(), &polled).ok());
    events.insert(events.end(), polled.begin(), polled.end());
  }
  ASSERT_EQ(events.size(), 100'000u);
  const double one = HitRate(events, 1, 0);
  const double two = HitRate(events, 2, 500);
  const double apart = HitRate(events, 2, 1'000'000);  // never exchanging
  EXPECT_GT(one, 0.12);
  EXPECT_NEAR(two / one, 1.0, 0.03)
      << "one learner " << one << ", two replicas " << two << ", never exchanging " << apart;
  EXPECT_LT(apart, 0.97 * two) << "two replicas " << two << ", never exchanging " << apart;
}

}  // namespace
}  // namespace freshet::learner
