// Engines as replicas (EngineOptions::replicas): ranks that each learn their own users end with
// one item model, persist what they merged, stop together, and stop with an error when a rank is
// missing. The ranks here are threads exchanging through the in-process collective; the NCCL
// transport carries the same messages between processes.
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/engine.h"
#include "engine/replicas/collective.h"
#include "gtest/gtest.h"
#include "learner/id_dictionary.h"
#include "stream/memory_event_source.h"
#include "tests/store/test_util.h"

namespace freshet::engine {
namespace {

using freshet::testing::FreshDir;
using freshet::testing::MakeEvents;

// Every item's vector and bias, by id.
std::map<std::string, std::vector<float>> ItemModel(const Engine& engine) {
  return engine.WithLearner([](const learner::Learner& l) {
    std::map<std::string, std::vector<float>> out;
    const kernels::ItemMatrixView v = l.scoring().ItemVectors();
    for (int32_t row = 0; row < l.items().size(); ++row) {
      std::vector<float> p(v.vectors + row * v.stride, v.vectors + row * v.stride + v.dim);
      p.push_back(v.bias[row]);
      out[l.items().ExternalId(row)] = std::move(p);
    }
    return out;
  });
}

class EngineReplicasTest : public ::testing::Test {
 protected:
  static constexpr int kRanks = 2;

  EngineReplicasTest() {
    options_.algorithm = "bpr";
    options_.config.dim = 16;
    options_.config.flush_interval_ms = 5;
    options_.config.replica_sync_ms = 3;
  }

  // Rank r's engine on its own data directory.
  std::unique_ptr<Engine> Open(const std::string& dir, Collective* rank) {
    EngineOptions options = options_;
    options.data_dir = dir;
    options.replicas = rank;
    auto engine = Engine::Open(options, backend_.get());
    EXPECT_TRUE(engine.ok()) << engine.status();
    return engine.ok() ? *std::move(engine) : nullptr;
  }

  // The events of the users rank r owns (as Kafka partitions users by key).
  static std::vector<stream::Event> Share(const std::vector<stream::Event>& events, int r) {
    std::vector<stream::Event> out;
    for (const stream::Event& e : events) {
      if (learner::IdDictionary::Hash(e.user) % kRanks == static_cast<uint64_t>(r)) {
        out.push_back(e);
        out.back().position.offset = -1;  // numbered within the share
      }
    }
    return out;
  }

  // One engine per rank (data directories `prefix` + rank), each learning its share of `events`
  // at 5,000 events/s; empty after a failure (reported).
  std::vector<std::unique_ptr<Engine>> OpenThrottled(
      const std::string& prefix, const std::vector<std::unique_ptr<Collective>>& ranks,
      const std::vector<stream::Event>& events) {
    std::vector<std::unique_ptr<Engine>> engines;
    for (int r = 0; r < kRanks; ++r) {
      engines.push_back(Open(FreshDir(absl::StrCat(prefix, r)), ranks[r].get()));
      if (engines[r] == nullptr) return {};
      Engine::SourceOptions slow;
      slow.events_per_second = 5000;
      const absl::Status added = engines[r]->AddSource(
          std::make_unique<stream::MemoryEventSource>(Share(events, r)), {"memory:events"}, slow);
      EXPECT_TRUE(added.ok()) << added;
      if (!added.ok()) return {};
    }
    return engines;
  }

  std::unique_ptr<kernels::Backend> backend_ = *kernels::CreateBackend("cpu");
  EngineOptions options_;
};

TEST_F(EngineReplicasTest, RanksLearningTheirOwnUsersEndWithOneItemModel) {
  auto ranks = NewInProcessCollectives(kRanks, absl::Seconds(30));
  ASSERT_TRUE(ranks.ok()) << ranks.status();
  const auto events = MakeEvents(8000, 200, 400, 31);
  std::vector<std::string> dirs;
  std::vector<std::unique_ptr<Engine>> engines;
  for (int r = 0; r < kRanks; ++r) {
    dirs.push_back(FreshDir(absl::StrCat("replicas_", r)));
    engines.push_back(Open(dirs[r], (*ranks)[r].get()));
    ASSERT_NE(engines[r], nullptr);
    ASSERT_TRUE(engines[r]
                    ->AddSource(std::make_unique<stream::MemoryEventSource>(Share(events, r)),
                                "memory:events")
                    .ok());
  }
  std::vector<absl::Status> results(kRanks);
  std::vector<std::thread> threads;
  std::atomic<bool> stop{false};
  for (int r = 0; r < kRanks; ++r) {
    threads.emplace_back([&, r] {
      Engine::RunOptions run;
      run.exit_when_done = true;
      results[r] = engines[r]->Run(stop, run);
    });
  }
  for (std::thread& t : threads) t.join();
  int64_t applied = 0;
  for (int r = 0; r < kRanks; ++r) {
    ASSERT_TRUE(results[r].ok()) << "rank " << r << ": " << results[r];
    const EngineStats stats = engines[r]->stats();
    EXPECT_EQ(stats.events_applied, static_cast<int64_t>(Share(events, r).size()));
    EXPECT_GT(stats.replica_exchanges, 1);
    EXPECT_GT(stats.replica_rows_received, 0);
    applied += stats.events_applied;
  }
  EXPECT_EQ(applied, 8000);
  // One item model, bit for bit, holding every item either rank met.
  const auto model = ItemModel(*engines[0]);
  EXPECT_EQ(ItemModel(*engines[1]), model);
  std::map<std::string, int> items;
  for (const stream::Event& e : events) ++items[e.item];
  EXPECT_EQ(model.size(), items.size());
  // What each rank merged was persisted with its own state.
  for (int r = 0; r < kRanks; ++r) {
    engines[r].reset();
    EngineOptions alone = options_;
    alone.data_dir = dirs[r];
    auto reopened = Engine::Open(alone, backend_.get());
    ASSERT_TRUE(reopened.ok()) << reopened.status();
    EXPECT_EQ(ItemModel(**reopened), model) << "rank " << r;
  }
}

TEST_F(EngineReplicasTest, OneRankStoppingStopsTheGroup) {
  auto ranks = NewInProcessCollectives(kRanks, absl::Seconds(30));
  ASSERT_TRUE(ranks.ok()) << ranks.status();
  const auto events = MakeEvents(200'000, 500, 400, 32);
  // Far from finished when rank 0 is told to stop.
  const std::vector<std::unique_ptr<Engine>> engines =
      OpenThrottled("replicas_stop_", *ranks, events);
  ASSERT_EQ(engines.size(), static_cast<size_t>(kRanks));
  std::atomic<bool> stop_rank0{false}, never{false};
  std::vector<absl::Status> results(kRanks);
  std::thread rank1([&] { results[1] = engines[1]->Run(never, Engine::RunOptions()); });
  std::thread rank0([&] { results[0] = engines[0]->Run(stop_rank0, Engine::RunOptions()); });
  while (engines[0]->stats().replica_exchanges < 5 || engines[1]->stats().events_applied == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  stop_rank0.store(true);
  rank0.join();
  rank1.join();  // returns without its own stop flag
  EXPECT_TRUE(results[0].ok()) << results[0];
  EXPECT_TRUE(results[1].ok()) << results[1];
  EXPECT_LT(engines[1]->stats().events_applied, static_cast<int64_t>(Share(events, 1).size()));
  EXPECT_EQ(ItemModel(*engines[0]), ItemModel(*engines[1]));  // the last exchange took both
}

TEST_F(EngineReplicasTest, DirectEventsDuringExchangesReachEveryReplica) {
  auto ranks = NewInProcessCollectives(kRanks, absl::Seconds(30));
  ASSERT_TRUE(ranks.ok()) << ranks.status();
  const auto events = MakeEvents(100'000, 500, 400, 33);
  const std::vector<std::unique_ptr<Engine>> engines =
      OpenThrottled("replicas_direct_", *ranks, events);
  ASSERT_EQ(engines.size(), static_cast<size_t>(kRanks));
  std::atomic<bool> stop_rank0{false}, never{false};
  std::vector<absl::Status> results(kRanks);
  std::thread rank1([&] { results[1] = engines[1]->Run(never, Engine::RunOptions()); });
  std::thread rank0([&] { results[0] = engines[0]->Run(stop_rank0, Engine::RunOptions()); });
  // POST /v1/events on rank 0 while the ranks exchange every few milliseconds: new items and
  // known ones, from users of its own.
  for (int i = 0; i < 300; ++i) {
    std::vector<stream::Event> direct(2);
    direct[0].user = direct[1].user = absl::StrCat("direct-user-", i % 7);
    direct[0].item = absl::StrCat("direct-item-", i);
    direct[1].item = absl::StrCat("i", i % 50);
    direct[0].ts_ms = direct[1].ts_ms = 1'700'000'000'000 + i;
    direct[0].position.offset = direct[1].position.offset = -1;
    engines[0]->ApplyDirect(direct);
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  stop_rank0.store(true);
  rank0.join();
  rank1.join();
  ASSERT_TRUE(results[0].ok()) << results[0];
  ASSERT_TRUE(results[1].ok()) << results[1];
  EXPECT_GT(engines[0]->stats().replica_exchanges, 10);
  const auto model = ItemModel(*engines[0]);
  EXPECT_EQ(ItemModel(*engines[1]), model);
  for (int i = 0; i < 300; ++i) EXPECT_EQ(model.count(absl::StrCat("direct-item-", i)), 1u) << i;
}

TEST_F(EngineReplicasTest, AMissingRankStopsTheOthersWithAnError) {
  auto ranks = NewInProcessCollectives(kRanks, absl::Milliseconds(300));
  ASSERT_TRUE(ranks.ok()) << ranks.status();
  auto engine = Open(FreshDir("replicas_missing"), (*ranks)[0].get());
  ASSERT_NE(engine, nullptr);
  ASSERT_TRUE(
      engine
          ->AddSource(std::make_unique<stream::MemoryEventSource>(MakeEvents(100, 10, 10, 3)),
                      "memory:events")
          .ok());
  std::atomic<bool> stop{false};
  Engine::RunOptions run;
  run.exit_when_done = true;
  const absl::Status status = engine->Run(stop, run);  // rank 1 never comes
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_NE(status.message().find("rank 0 of 2"), std::string::npos) << status;
}

TEST_F(EngineReplicasTest, AModelWithoutReplicatedItemsIsRefused) {
  auto ranks = NewInProcessCollectives(1, absl::Seconds(1));
  ASSERT_TRUE(ranks.ok()) << ranks.status();
  options_.algorithm = "ials";
  EngineOptions options = options_;
  options.replicas = (*ranks)[0].get();
  auto engine = Engine::Open(options, backend_.get());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kFailedPrecondition) << engine.status();
}

}  // namespace
}  // namespace freshet::engine
