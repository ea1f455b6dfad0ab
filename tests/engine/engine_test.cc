// The engine's exactly-once contract: events re-delivered after a restart are dropped, stored
// positions resume every source, a snapshot restore rewinds state and positions together, and a
// data directory is refused to a second process or to another algorithm or dimension.
#include "engine/engine.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <initializer_list>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/data_dir.h"
#include "store/rocksdb/state_store.h"
#include "store/snapshot.h"
#include "stream/memory_event_source.h"
#include "tests/store/test_util.h"

namespace freshet::engine {
namespace {

using freshet::testing::FreshDir;
using freshet::testing::MakeEvents;

// A source that starts from its first event whatever the engine stored (Resume does nothing),
// as a broker may re-deliver after a rebalance: the exactly-once filter must drop the repeats.
class RedeliveringSource final : public stream::EventSource {
 public:
  explicit RedeliveringSource(std::vector<stream::Event> events) : events_(std::move(events)) {}
  absl::Status Poll(size_t max_events, absl::Duration timeout,
                    std::vector<stream::Event>* out) override {
    return events_.Poll(max_events, timeout, out);
  }
  bool Finished() const override { return events_.Finished(); }
  std::string Name() const override { return events_.Name(); }
  stream::SourceStats stats() const override { return events_.stats(); }
  absl::Status SeekToApplied(const AppliedFn& applied) override {
    return events_.SeekToApplied(applied);
  }
  absl::Status Resume(AppliedFn) override { return absl::OkStatus(); }

 private:
  stream::MemoryEventSource events_;
};

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() {
    options_.algorithm = "bpr";
    options_.config.dim = 16;
    options_.config.flush_interval_ms = 5;
    options_.config.serve_batch_events = 97;  // micro-batches that do not align with anything
  }

  std::unique_ptr<Engine> Open(const std::string& dir) {
    options_.data_dir = dir;
    auto engine = Engine::Open(options_, backend_.get());
    EXPECT_TRUE(engine.ok()) << engine.status();
    return engine.ok() ? *std::move(engine) : nullptr;
  }

  // Overwrites the identity recorded in the (closed) data directory `dir`, as another build or a
  // damaged disk may have left it.
  void RewriteIdentity(const std::string& dir, const std::string& algorithm, uint64_t fingerprint,
                       const std::string& config_toml) {
    auto store = store::StateStore::Open(store::LiveDbPath(dir), store::StateStore::Options{});
    ASSERT_TRUE(store.ok()) << store.status();
    auto batch = (*store)->NewBatch();
    batch->PutIdentity(algorithm, options_.config.dim, fingerprint, config_toml);
    ASSERT_TRUE((*store)->Write(batch.get()).ok());
  }

  // Runs `events` (named like every run's source, so positions carry over) to the end, from the
  // first event whatever is stored (RedeliveringSource).
  absl::Status RunAll(Engine& engine, std::vector<stream::Event> events) {
    auto status =
        engine.AddSource(std::make_unique<RedeliveringSource>(std::move(events)), "memory:events");
    if (!status.ok()) return status;
    std::atomic<bool> stop{false};
    Engine::RunOptions run;
    run.exit_when_done = true;
    return engine.Run(stop, run);
  }

  // Per-user event counts held by the engine.
  static std::map<std::string, int64_t> UserCounts(const Engine& engine) {
    return engine.WithLearner([](const learner::Learner& l) {
      std::map<std::string, int64_t> counts;
      for (int32_t row = 0; row < l.users().size(); ++row) {
        if (l.users().IsLive(row)) counts[l.users().ExternalId(row)] = l.history(row).events();
      }
      return counts;
    });
  }

  static std::map<std::string, int64_t> ExpectedCounts(const std::vector<stream::Event>& events) {
    std::map<std::string, int64_t> counts;
    for (const auto& e : events) ++counts[e.user];
    return counts;
  }

  std::unique_ptr<kernels::Backend> backend_ = *kernels::CreateBackend("cpu");
  EngineOptions options_;
};

TEST_F(EngineTest, TheCatalogIsStoredWithTheStateAndAResetDropsIt) {
  const std::string dir = FreshDir("engine_catalog");
  const std::vector<CatalogEntry> entries = {
      {"i1", {{"title", "One"}, {"category", "A|B"}}},
      {"i2", {{"title", "Two"}}},
  };
  {
    auto engine = Open(dir);
    ASSERT_NE(engine, nullptr);
    auto changed = engine->UpsertCatalog(entries);
    ASSERT_TRUE(changed.ok()) << changed.status();
    EXPECT_EQ(*changed, 2);
    // The same again changes nothing (a restart that loads the same file writes nothing).
    EXPECT_EQ(*engine->UpsertCatalog(entries), 0);
    // A field given empty is removed; the others are kept.
    const std::vector<CatalogEntry> edit = {{"i1", {{"category", ""}, {"year", "1977"}}}};
    EXPECT_EQ(*engine->UpsertCatalog(edit), 1);
  }
  auto engine = Open(dir);
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(engine->catalog().size(), 2u);
  std::vector<std::pair<std::string, std::string>> fields;
  ASSERT_TRUE(DecodeCatalogFields(engine->catalog().Encoded("i1"), &fields));
  const std::vector<std::pair<std::string, std::string>> expected = {{"title", "One"},
                                                                     {"year", "1977"}};
  EXPECT_EQ(fields, expected);
  engine.reset();
  options_.reset = true;
  engine = Open(dir);
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(engine->catalog().size(), 0u);
}

TEST_F(EngineTest, RedeliveredEventsAreDroppedAfterARestart) {
  const std::string dir = FreshDir("engine_redeliver");
  const auto events = MakeEvents(5000, 120, 300, 21);
  {
    auto engine = Open(dir);
    ASSERT_TRUE(
        RunAll(*engine, std::vector<stream::Event>(events.begin(), events.begin() + 2000)).ok());
    EXPECT_EQ(engine->stats().events_applied, 2000);
    EXPECT_EQ(engine->AppliedOffset(0, 0), 1999);
  }
  {
    // The source starts again from the beginning (as a broker may): the first 2000 are dropped.
    auto engine = Open(dir);
    EXPECT_EQ(engine->AppliedOffset(0, 0), 1999);
    ASSERT_TRUE(RunAll(*engine, events).ok());
    const EngineStats stats = engine->stats();
    EXPECT_EQ(stats.events_applied, 5000);
    EXPECT_EQ(stats.duplicates_dropped, 2000);
    EXPECT_EQ(stats.persister.events_persisted, 5000);
    EXPECT_EQ(UserCounts(*engine), ExpectedCounts(events));
  }
  auto engine = Open(dir);
  EXPECT_EQ(engine->stats().events_applied, 5000);
  EXPECT_EQ(UserCounts(*engine), ExpectedCounts(events));
}

TEST_F(EngineTest, AnAddedSourceResumesAfterItsStoredPosition) {
  const std::string dir = FreshDir("engine_resume");
  const auto events = MakeEvents(3000, 120, 300, 23);
  {
    auto engine = Open(dir);
    ASSERT_TRUE(
        RunAll(*engine, std::vector<stream::Event>(events.begin(), events.begin() + 1200)).ok());
  }
  auto engine = Open(dir);
  // The engine hands the source its stored position (EventSource::Resume): it seeks itself, so
  // nothing is delivered twice.
  ASSERT_TRUE(
      engine->AddSource(std::make_unique<stream::MemoryEventSource>(events), "memory:events").ok());
  std::atomic<bool> stop{false};
  Engine::RunOptions run;
  run.exit_when_done = true;
  ASSERT_TRUE(engine->Run(stop, run).ok());
  const EngineStats stats = engine->stats();
  EXPECT_EQ(stats.events_applied, 3000);
  EXPECT_EQ(stats.events_polled, 1800);
  EXPECT_EQ(stats.duplicates_dropped, 0);
  EXPECT_EQ(UserCounts(*engine), ExpectedCounts(events));
  engine.reset();
  // A source whose stored position lies beyond its events cannot resume: AddSource says so.
  engine = Open(dir);
  const absl::Status short_source =
      engine->AddSource(std::make_unique<stream::MemoryEventSource>(
                            std::vector<stream::Event>(events.begin(), events.begin() + 100)),
                        "memory:events");
  EXPECT_EQ(short_source.code(), absl::StatusCode::kOutOfRange) << short_source;
}

TEST_F(EngineTest, SnapshotRestoreRewindsStateAndPositionsTogether) {
  const auto events = MakeEvents(6000, 150, 300, 22);
  // Uninterrupted.
  std::map<std::string, int64_t> uninterrupted;
  {
    auto engine = Open(FreshDir("engine_straight"));
    ASSERT_TRUE(RunAll(*engine, events).ok());
    uninterrupted = UserCounts(*engine);
  }
  const std::string dir = FreshDir("engine_snapshot");
  {
    auto engine = Open(dir);
    ASSERT_TRUE(
        RunAll(*engine, std::vector<stream::Event>(events.begin(), events.begin() + 2500)).ok());
  }
  std::string id;
  {
    auto lock = store::DataDirLock::Acquire(dir);
    ASSERT_TRUE(lock.ok());
    auto live = store::StateStore::Open(store::LiveDbPath(dir), store::StateStore::Options{});
    ASSERT_TRUE(live.ok());
    auto manifest = store::SnapshotStore(dir).Create(**live);
    ASSERT_TRUE(manifest.ok()) << manifest.status();
    EXPECT_EQ(manifest->events_applied, 2500);
    ASSERT_EQ(manifest->positions.size(), 1u);
    EXPECT_EQ(manifest->positions[0].offset, 2499);
    id = manifest->id;
  }
  {
    auto engine = Open(dir);  // goes on to the end
    ASSERT_TRUE(RunAll(*engine, events).ok());
    EXPECT_EQ(engine->stats().events_applied, 6000);
  }
  {
    auto lock = store::DataDirLock::Acquire(dir);
    ASSERT_TRUE(lock.ok());
    ASSERT_TRUE(store::SnapshotStore(dir).RestoreOffline(id).ok());
  }
  auto engine = Open(dir);
  EXPECT_EQ(engine->stats().events_applied, 2500);
  EXPECT_EQ(engine->AppliedOffset(0, 0), 2499);
  ASSERT_TRUE(RunAll(*engine, events).ok());  // resumes after the snapshot's position
  EXPECT_EQ(engine->stats().events_applied, 6000);
  EXPECT_EQ(UserCounts(*engine), uninterrupted);
  EXPECT_EQ(UserCounts(*engine), ExpectedCounts(events));
}

TEST_F(EngineTest, RestoreWhileRunningRewindsAndTheRunEndsExactlyOnce) {
  const auto events = MakeEvents(12000, 200, 300, 23);
  auto engine = Open(FreshDir("engine_online_restore"));
  Engine::SourceOptions rate;
  rate.events_per_second = 20000;  // about 0.6 s of stream
  ASSERT_TRUE(
      engine
          ->AddSource(std::make_unique<stream::MemoryEventSource>(events), {"memory:events"}, rate)
          .ok());
  std::atomic<bool> stop{false};
  absl::Status run_status;
  // Runs until told to stop, so the restore always finds it running, however slow the build.
  std::thread runner([&] { run_status = engine->Run(stop, Engine::RunOptions{}); });
  auto wait_for = [&](int64_t n) {
    while (engine->stats().persister.events_persisted < n) absl::SleepFor(absl::Milliseconds(2));
  };
  wait_for(3000);
  auto manifest = engine->CreateSnapshot("mid");
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_GE(manifest->events_applied, 3000);
  // More events persisted after the snapshot, so the restore must rewind; on a slow machine the
  // snapshot may come late in the stream, and the wait must not ask for more than the stream has.
  wait_for(std::min<int64_t>(manifest->events_applied + 3000, static_cast<int64_t>(events.size())));
  const absl::Status restored = engine->RestoreSnapshot("mid", absl::Seconds(60));
  EXPECT_TRUE(restored.ok()) << restored;
  // Without the rewind the events between the snapshot and the restore would be lost.
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (engine->stats().events_applied < 12000 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  stop.store(true);
  runner.join();
  ASSERT_TRUE(run_status.ok()) << run_status;
  EXPECT_EQ(engine->stats().events_applied, 12000);
  EXPECT_EQ(UserCounts(*engine), ExpectedCounts(events));
  EXPECT_TRUE(absl::IsNotFound(engine->RestoreSnapshot("nope", absl::Seconds(1))));
  EXPECT_EQ(engine->stats().duplicates_dropped, 0);
}

stream::Event WithId(std::string user, std::string item, std::string id) {
  stream::Event e;
  e.user = std::move(user);
  e.item = std::move(item);
  e.ts_ms = 1000;
  e.id = std::move(id);
  return e;
}

// Waits (bounded) until the persister has written every event applied so far.
void WaitPersisted(const Engine& engine) {
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (engine.stats().persister.events_persisted < engine.stats().events_applied &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(2));
  }
}

TEST_F(EngineTest, AnEventIdIsAppliedOnceOnEveryPathAndAfterARestart) {
  const std::string dir = FreshDir("engine_ids");
  {
    auto engine = Open(dir);
    // Straight to the learner (POST /v1/events without a broker), then the client's retry.
    EXPECT_EQ(engine->ApplyDirect({WithId("u1", "i1", "a"), WithId("u2", "i1", "b"),
                                   WithId("u3", "i1", "c"), WithId("u4", "i1", "")}),
              0);
    EXPECT_EQ(engine->ApplyDirect(
                  {WithId("u1", "i1", "a"), WithId("u2", "i1", "b"), WithId("u4", "i1", "")}),
              2);
    EXPECT_EQ(engine->stats().events_applied, 5);
    // Through a source: a copy of a direct event, and one id at two offsets (a retried produce).
    ASSERT_TRUE(RunAll(*engine, {WithId("u3", "i2", "c"), WithId("u5", "i2", "d"),
                                 WithId("u5", "i2", "d"), WithId("u6", "i2", "")})
                    .ok());
    EXPECT_EQ(engine->stats().events_applied, 7);
    EXPECT_EQ(engine->stats().duplicate_ids_dropped, 4);
    EXPECT_EQ(engine->stats().duplicates_dropped, 0);
    EXPECT_EQ(engine->stats().idempotency_keys, 4);
    // The repeats were consumed: the position is past them.
    EXPECT_EQ(engine->AppliedOffset(0, 0), 3);
  }
  // The ids were persisted with the state they produced.
  auto engine = Open(dir);
  EXPECT_EQ(engine->stats().idempotency_keys, 4);
  EXPECT_EQ(engine->ApplyDirect(
                {WithId("u1", "i1", "a"), WithId("u5", "i2", "d"), WithId("u7", "i1", "e")}),
            2);
  EXPECT_EQ(engine->stats().events_applied, 8);
  std::map<std::string, int64_t> expected = {{"u1", 1}, {"u2", 1}, {"u3", 1}, {"u4", 2},
                                             {"u5", 1}, {"u6", 1}, {"u7", 1}};
  EXPECT_EQ(UserCounts(*engine), expected);
}

TEST_F(EngineTest, OnlyTheNewestIdsAreRememberedAndStored) {
  const std::string dir = FreshDir("engine_ids_capacity");
  options_.config.idempotency_keys = 3;
  {
    auto engine = Open(dir);
    for (int i = 1; i <= 5; ++i) {
      EXPECT_EQ(engine->ApplyDirect({WithId("u", "i", absl::StrCat("k", i))}), 0);
    }
    EXPECT_EQ(engine->stats().idempotency_keys, 3);
    // A clean stop writes everything.
    std::atomic<bool> stop{true};
    ASSERT_TRUE(engine->Run(stop, Engine::RunOptions{}).ok());
  }
  {
    store::StateStore::Options read_only;
    read_only.read_only = true;
    auto store = store::StateStore::Open(store::LiveDbPath(dir), read_only);
    ASSERT_TRUE(store.ok()) << store.status();
    std::vector<std::pair<int64_t, std::string>> stored;
    ASSERT_TRUE((*store)
                    ->LoadEventIds([&](int64_t seq, absl::string_view id) {
                      stored.emplace_back(seq, std::string(id));
                    })
                    .ok());
    EXPECT_EQ(stored,
              (std::vector<std::pair<int64_t, std::string>>{{2, "k3"}, {3, "k4"}, {4, "k5"}}));
  }
  // A smaller capacity at the next start keeps the newest, and the store follows.
  options_.config.idempotency_keys = 2;
  auto engine = Open(dir);
  EXPECT_EQ(engine->ApplyDirect({WithId("u", "i", "k3")}), 0);  // forgotten: applied again
  EXPECT_EQ(engine->ApplyDirect({WithId("u", "i", "k5")}), 1);
  EXPECT_EQ(engine->stats().events_applied, 6);
}

TEST_F(EngineTest, ARestoreBringsBackTheIdsOfTheSnapshot) {
  auto engine = Open(FreshDir("engine_ids_restore"));
  ASSERT_TRUE(
      engine
          ->AddSource(std::make_unique<stream::MemoryEventSource>(std::vector<stream::Event>{}),
                      {"memory:events"}, {})
          .ok());
  std::atomic<bool> stop{false};
  absl::Status run_status;
  std::thread runner([&] { run_status = engine->Run(stop, Engine::RunOptions{}); });
  EXPECT_EQ(engine->ApplyDirect({WithId("u1", "i1", "before")}), 0);
  WaitPersisted(*engine);
  ASSERT_TRUE(engine->CreateSnapshot("ids").ok());
  EXPECT_EQ(engine->ApplyDirect({WithId("u2", "i1", "after")}), 0);
  WaitPersisted(*engine);
  const absl::Status restored = engine->RestoreSnapshot("ids", absl::Seconds(60));
  EXPECT_TRUE(restored.ok()) << restored;
  // The snapshot's state never learnt "after": it is new to it; "before" is not.
  EXPECT_EQ(engine->ApplyDirect({WithId("u2", "i1", "after"), WithId("u1", "i1", "before")}), 1);
  stop.store(true);
  runner.join();
  ASSERT_TRUE(run_status.ok()) << run_status;
  EXPECT_EQ(engine->stats().events_applied, 2);
}

// A source whose Poll() blocks until released: a learning loop stuck in a call.
class BlockingSource final : public stream::EventSource {
 public:
  absl::Status Poll(size_t, absl::Duration, std::vector<stream::Event>*) override {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return released_; });
    return absl::OkStatus();
  }
  bool Finished() const override { return false; }
  std::string Name() const override { return "blocking"; }
  stream::SourceStats stats() const override { return {}; }
  absl::Status SeekToApplied(const std::function<int64_t(int32_t, int32_t)>&) override {
    return absl::OkStatus();
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      released_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
};

// Events from a source are written every store.flush_interval_ms (here an hour: the source can
// deliver them again), but events posted straight to the learner have no source: once any are
// learnt the next batch comes store.direct_flush_interval_ms after the latest.
TEST_F(EngineTest, DirectEventsAreWrittenAtTheDirectInterval) {
  options_.config.flush_interval_ms = 3600000;
  options_.config.direct_flush_interval_ms = 5;
  auto engine = Open(FreshDir("engine_direct_flush"));
  ASSERT_NE(engine, nullptr);
  ASSERT_TRUE(
      engine
          ->AddSource(std::make_unique<stream::MemoryEventSource>(MakeEvents(500, 20, 30, 5)),
                      {"memory:events"}, {})
          .ok());
  std::atomic<bool> stop{false};
  absl::Status run_status;
  std::thread runner([&] { run_status = engine->Run(stop, Engine::RunOptions{}); });
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (engine->stats().events_applied < 500 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  ASSERT_EQ(engine->stats().events_applied, 500);
  absl::SleepFor(absl::Milliseconds(200));  // 40 direct intervals
  EXPECT_EQ(engine->stats().persister.batches_written, 0);
  EXPECT_EQ(engine->ApplyDirect({WithId("u1", "i1", ""), WithId("u2", "i2", "")}), 0);
  WaitPersisted(*engine);
  const EngineStats stats = engine->stats();
  EXPECT_EQ(stats.persister.events_persisted, 502);
  EXPECT_EQ(stats.persister.batches_written, 1);
  stop.store(true);
  runner.join();
  ASSERT_TRUE(run_status.ok()) << run_status;
}

TEST_F(EngineTest, AStuckLearningLoopIsUnhealthyUntilItGoesRoundAgain) {
  auto engine = Open(FreshDir("engine_stall"));
  auto source = std::make_unique<BlockingSource>();
  BlockingSource* blocking = source.get();
  ASSERT_TRUE(engine->AddSource(std::move(source), {"blocking"}, {}).ok());
  EXPECT_TRUE(engine->IngestHealth(absl::Milliseconds(50)).ok());  // not running
  std::atomic<bool> stop{false};
  absl::Status run_status;
  std::thread runner([&] { run_status = engine->Run(stop, Engine::RunOptions{}); });
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  absl::Status health;
  while ((health = engine->IngestHealth(absl::Milliseconds(200))).ok() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(absl::IsUnavailable(health)) << health;
  EXPECT_NE(health.message().find("no progress"), absl::string_view::npos) << health;
  // A generous limit is not reached.
  EXPECT_TRUE(engine->IngestHealth(absl::Seconds(3600)).ok());
  // Unstuck, the loop goes round again and is healthy.
  blocking->Release();
  while (!engine->IngestHealth(absl::Milliseconds(200)).ok() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(engine->IngestHealth(absl::Milliseconds(200)).ok());
  stop.store(true);
  runner.join();
  ASSERT_TRUE(run_status.ok()) << run_status;
  EXPECT_TRUE(engine->IngestHealth(absl::Milliseconds(1)).ok());  // stopped: nothing to say
}

// Reads never wait on storage: while a snapshot holds the store, recommendations, the model
// version, readiness and the counters all answer.
TEST_F(EngineTest, ReadsAnswerWhileASnapshotHoldsTheStore) {
  auto engine = Open(FreshDir("engine_reads_during_snapshot"));
  ASSERT_TRUE(RunAll(*engine, MakeEvents(2000, 50, 80, 6)).ok());
  const int64_t version = engine->model_version();
  EXPECT_GE(version, 1);
  std::promise<void> entered, release;
  std::shared_future<void> released = release.get_future().share();
  engine->SetSnapshotHookForTesting([&entered, released] {
    entered.set_value();
    released.wait();
  });
  std::thread snapshot([&] { EXPECT_TRUE(engine->CreateSnapshot("held").ok()); });
  entered.get_future().wait();
  auto reads = std::async(std::launch::async, [&] {
    RecommendResult result;
    EXPECT_TRUE(engine->RecommendFor("u1", 5, false, {}, &result).ok());
    EXPECT_EQ(result.model_version, version);
    EXPECT_EQ(engine->model_version(), version);
    EXPECT_TRUE(engine->PersistenceHealth().ok());
    EXPECT_EQ(engine->stats().events_applied, 2000);
  });
  const bool answered = reads.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  release.set_value();
  snapshot.join();
  reads.wait();
  EXPECT_TRUE(answered) << "a read waited for the snapshot";
}

TEST_F(EngineTest, ReadsAnswerWhileARestoreHoldsTheStore) {
  auto engine = Open(FreshDir("engine_reads_during_restore"));
  ASSERT_TRUE(RunAll(*engine, MakeEvents(2000, 50, 80, 7)).ok());
  ASSERT_TRUE(engine->CreateSnapshot("before").ok());
  std::promise<void> entered, release;
  std::atomic<bool> hooked{false};
  std::shared_future<void> released = release.get_future().share();
  engine->SetRestoreHookForTesting([&entered, &hooked, released] {
    if (!hooked.exchange(true)) entered.set_value();
    released.wait();
  });
  // A restore needs the ingest loop running: a source with nothing more to give, no exit.
  ASSERT_TRUE(engine
                  ->AddSource(std::make_unique<stream::MemoryEventSource>(
                                  std::vector<stream::Event>{}, "idle"),
                              "memory:idle")
                  .ok());
  std::atomic<bool> stop{false};
  absl::Status run_status;
  std::thread runner([&] { run_status = engine->Run(stop, Engine::RunOptions{}); });
  std::thread restore([&] {
    // The runner thread may not have started the engine yet: a restore then says so.
    absl::Status restored;
    for (const absl::Time until = absl::Now() + absl::Seconds(30);;) {
      restored = engine->RestoreSnapshot("before", absl::Seconds(60));
      if (!absl::IsFailedPrecondition(restored) || absl::Now() > until) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_TRUE(restored.ok()) << restored;
    // A restore that failed before the hook must not leave the test waiting for it.
    if (!hooked.exchange(true)) entered.set_value();
  });
  entered.get_future().wait();
  auto reads = std::async(std::launch::async, [&] {
    RecommendResult result;
    EXPECT_TRUE(engine->RecommendFor("u1", 5, false, {}, &result).ok());
    EXPECT_FALSE(result.items.empty());
    EXPECT_TRUE(engine->PersistenceHealth().ok());
    EXPECT_EQ(engine->stats().events_applied, 2000);
    std::vector<ScoredId> similar;
    EXPECT_TRUE(engine->SimilarTo("i1", 3, &similar).ok());
  });
  const bool answered = reads.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  release.set_value();
  restore.join();
  reads.wait();
  stop.store(true);
  runner.join();
  EXPECT_TRUE(run_status.ok()) << run_status;
  EXPECT_TRUE(answered) << "a read waited for the restore";
}

TEST_F(EngineTest, WithoutADataDirectoryTheModelVersionCountsLearningRounds) {
  auto engine = Open("");
  EXPECT_EQ(engine->model_version(), 0);
  ASSERT_TRUE(RunAll(*engine, MakeEvents(1500, 40, 60, 8)).ok());
  const int64_t after_source = engine->model_version();
  EXPECT_GE(after_source, 1);
  const std::vector<stream::Event> direct = MakeEvents(10, 5, 5, 9);
  EXPECT_EQ(engine->ApplyDirect(direct), 0);
  EXPECT_EQ(engine->model_version(), after_source + 1);  // one more round
  RecommendResult result;
  ASSERT_TRUE(engine->RecommendFor("u1", 5, false, {}, &result).ok());
  EXPECT_EQ(result.model_version, after_source + 1);
}

TEST_F(EngineTest, RefusesAnotherAlgorithmOrDimensionUnlessReset) {
  const std::string dir = FreshDir("engine_identity");
  {
    auto engine = Open(dir);
    ASSERT_TRUE(RunAll(*engine, MakeEvents(300, 10, 20, 1)).ok());
  }
  options_.data_dir = dir;
  options_.config.dim = 32;
  auto other_dim = Engine::Open(options_, backend_.get());
  ASSERT_FALSE(other_dim.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(other_dim.status()));
  EXPECT_NE(other_dim.status().message().find("dimension 16"), absl::string_view::npos)
      << other_dim.status();
  options_.config.dim = 16;
  options_.algorithm = "ials";
  auto other_algo = Engine::Open(options_, backend_.get());
  ASSERT_FALSE(other_algo.ok());
  EXPECT_NE(other_algo.status().message().find("'bpr'"), absl::string_view::npos);
  options_.reset = true;
  auto reset = Engine::Open(options_, backend_.get());
  ASSERT_TRUE(reset.ok()) << reset.status();
  EXPECT_EQ((*reset)->stats().events_applied, 0);
  EXPECT_EQ((*reset)->AppliedOffset(0, 0), -1);
}

// A blend state written with other components is refused when opened, naming the settings, not
// later by its rows.
TEST_F(EngineTest, RefusesABlendStateOfOtherComponents) {
  const std::string dir = FreshDir("engine_blend_layout");
  options_.algorithm = "blend";
  options_.config.blend_features = "bpr,cooc";
  {
    auto engine = Open(dir);
    ASSERT_TRUE(RunAll(*engine, MakeEvents(300, 10, 20, 1)).ok());
  }
  options_.data_dir = dir;
  options_.config.blend_features = "bpr,cooc,ials";
  auto other = Engine::Open(options_, backend_.get());
  ASSERT_FALSE(other.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(other.status())) << other.status();
  // It names what the state was written with, read from the configuration stored beside it.
  EXPECT_NE(other.status().message().find("it was written with --set blend.features=bpr,cooc "
                                          "--set blend.cold_events=20 --set "
                                          "blend.session_start=true"),
            absl::string_view::npos)
      << other.status();
  options_.config.blend_features = "bpr,cooc";
  auto same = Engine::Open(options_, backend_.get());
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ((*same)->stats().events_applied, 300);
}

// A state counted with other table settings or event weights opens (its rows are laid out alike),
// says which settings changed, and records this run's: opened again with them, it names none.
TEST_F(EngineTest, AStateCountedWithOtherTableSettingsSaysWhichOnce) {
  const std::string dir = FreshDir("engine_counting");
  options_.algorithm = "cooc";
  {
    auto engine = Open(dir);
    ASSERT_TRUE(RunAll(*engine, MakeEvents(300, 10, 20, 1)).ok());
    EXPECT_TRUE(engine->counting_changes().empty());
  }
  options_.data_dir = dir;
  {
    auto same = Engine::Open(options_, backend_.get());
    ASSERT_TRUE(same.ok()) << same.status();
    EXPECT_TRUE((*same)->counting_changes().empty());
  }
  options_.config.cooc_window = 4;
  options_.config.bpr_lr = 0.01f;                // cooc keeps no bpr: not named
  options_.config.type_weights["purchase"] = 4;  // every model weighs events by type
  {
    auto changed = Engine::Open(options_, backend_.get());
    ASSERT_TRUE(changed.ok()) << changed.status();
    EXPECT_EQ((*changed)->stats().events_applied, 300);
    EXPECT_THAT((*changed)->counting_changes(),
                ::testing::ElementsAre("cooc.window 16 -> 4", "events.types.purchase 8.0 -> 4.0"));
  }
  {
    auto again = Engine::Open(options_, backend_.get());
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_TRUE((*again)->counting_changes().empty());
    EXPECT_EQ((*again)->stats().events_applied, 300);
  }
  // A stored configuration that does not parse says nothing of the counts: the state opens.
  for (const char* stored : {"[cooc\nwindow = ", "[cooc]\nwindow = -3\n"}) {
    ASSERT_NO_FATAL_FAILURE(
        RewriteIdentity(dir, "cooc", store::StateFingerprint("cooc", options_.config), stored));
    auto corrupt = Engine::Open(options_, backend_.get());
    ASSERT_TRUE(corrupt.ok()) << corrupt.status();
    EXPECT_TRUE((*corrupt)->counting_changes().empty());
    EXPECT_EQ((*corrupt)->stats().events_applied, 300);
  }
}

// A blend state written without the cold and session-start weight sets (blend's defaults before
// they had them) is refused under today's defaults with the settings that open it.
TEST_F(EngineTest, ABlendStateWithoutWeightSetsSaysWhatToRunWith) {
  const std::string dir = FreshDir("engine_blend_sets");
  options_.algorithm = "blend";
  options_.config.blend_cold_events = 0;
  options_.config.blend_session_start = false;
  {
    auto engine = Open(dir);
    ASSERT_TRUE(RunAll(*engine, MakeEvents(300, 10, 20, 1)).ok());
  }
  options_.data_dir = dir;
  options_.config.blend_cold_events = config::Config{}.blend_cold_events;
  options_.config.blend_session_start = config::Config{}.blend_session_start;
  auto today = Engine::Open(options_, backend_.get());
  ASSERT_FALSE(today.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(today.status())) << today.status();
  EXPECT_NE(today.status().message().find("--set blend.cold_events=0 --set "
                                          "blend.session_start=false"),
            absl::string_view::npos)
      << today.status();
  ASSERT_TRUE(
      config::ApplyOverrides(&options_.config, {"blend.cold_events=0", "blend.session_start=false"})
          .ok());
  auto written = Engine::Open(options_, backend_.get());
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ((*written)->stats().events_applied, 300);
}

// A blend state written with blend's defaults before profile and ease joined them is refused under
// today's defaults, and the error names the preset that holds those settings, which opens it.
TEST_F(EngineTest, ABlendStateOfTheFormerDefaultsNamesTheFastPreset) {
  const std::string dir = FreshDir("engine_blend_fast");
  options_.algorithm = "blend";
  const config::Config today_config = options_.config;
  absl::StatusOr<config::Config> fast =
      config::LoadConfigFile(FRESHET_SOURCE_DIR "/config/blend-fast.toml");
  ASSERT_TRUE(fast.ok()) << fast.status();
  fast->dim = today_config.dim;  // and the fixture's other settings
  fast->flush_interval_ms = today_config.flush_interval_ms;
  fast->serve_batch_events = today_config.serve_batch_events;
  options_.config = *fast;
  {
    auto engine = Open(dir);
    ASSERT_TRUE(RunAll(*engine, MakeEvents(300, 10, 20, 1)).ok());
  }
  options_.data_dir = dir;
  options_.config = today_config;
  auto today = Engine::Open(options_, backend_.get());
  ASSERT_FALSE(today.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(today.status())) << today.status();
  EXPECT_NE(today.status().message().find("--config config/blend-fast.toml"),
            absl::string_view::npos)
      << today.status();
  options_.config = *fast;
  auto written = Engine::Open(options_, backend_.get());
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ((*written)->stats().events_applied, 300);
}

// A blend state written before the fingerprint covered blend's settings opens with the settings it
// was written with; with others its rows are refused, and the error says what to run with.
TEST_F(EngineTest, ABlendStateWithTheOldFingerprintSaysWhatToRunWith) {
  const std::string dir = FreshDir("engine_blend_legacy");
  options_.algorithm = "blend";
  options_.config.blend_features = "bpr,cooc";
  {
    auto engine = Open(dir);
    ASSERT_TRUE(RunAll(*engine, MakeEvents(300, 10, 20, 1)).ok());
  }
  ASSERT_NO_FATAL_FAILURE(
      RewriteIdentity(dir, "blend", store::LegacyBlendFingerprint(options_.config), ""));
  options_.data_dir = dir;
  {
    auto same = Engine::Open(options_, backend_.get());
    ASSERT_TRUE(same.ok()) << same.status();
    EXPECT_EQ((*same)->stats().events_applied, 300);
  }
  options_.config.blend_features = "bpr,cooc,ials";
  auto other = Engine::Open(options_, backend_.get());
  ASSERT_FALSE(other.ok());
  EXPECT_TRUE(absl::IsDataLoss(other.status())) << other.status();
  EXPECT_NE(other.status().message().find("--set blend.features="), absl::string_view::npos)
      << other.status();
}

// `config` as TOML the way a build without the keys named (lines beginning with them) wrote it.
std::string TomlWithout(const config::Config& config,
                        std::initializer_list<absl::string_view> keys) {
  std::string toml;
  for (absl::string_view line : absl::StrSplit(config::ToToml(config), '\n')) {
    if (std::none_of(keys.begin(), keys.end(),
                     [&](absl::string_view key) { return absl::StartsWith(line, key); })) {
      absl::StrAppend(&toml, line, "\n");
    }
  }
  return toml;
}

// A blend state whose topics were fitted to the profile table (written before topics had a table
// of its own, so its stored configuration lacks those keys) is refused under today's defaults, and
// the error names the settings that open it.
TEST_F(EngineTest, ABlendStateWithoutTopicsOwnTableSaysWhatToRunWith) {
  const std::string dir = FreshDir("engine_blend_topics_table");
  options_.algorithm = "blend";
  ASSERT_TRUE(config::BlendTopicsOwnTable(options_.config));
  options_.config.blend_topics_user_exponent = options_.config.blend_profile_user_exponent;
  options_.config.blend_topics_window = options_.config.history_recent;
  options_.config.blend_topics_unit_weights = false;
  {
    auto engine = Open(dir);
    ASSERT_TRUE(RunAll(*engine, MakeEvents(300, 10, 20, 1)).ok());
  }
  {
    const std::string toml = TomlWithout(
        options_.config, {"topics_user_exponent", "topics_window", "topics_unit_weights"});
    ASSERT_NE(toml, config::ToToml(options_.config));
    ASSERT_NO_FATAL_FAILURE(
        RewriteIdentity(dir, "blend", store::StateFingerprint("blend", options_.config), toml));
  }
  options_.data_dir = dir;
  const config::Config shared = options_.config;
  options_.config.blend_topics_user_exponent = config::Config{}.blend_topics_user_exponent;
  options_.config.blend_topics_window = config::Config{}.blend_topics_window;
  options_.config.blend_topics_unit_weights = config::Config{}.blend_topics_unit_weights;
  auto today = Engine::Open(options_, backend_.get());
  ASSERT_FALSE(today.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(today.status())) << today.status();
  EXPECT_NE(today.status().message().find(absl::StrCat(
                "--set blend.topics_user_exponent=0 --set blend.topics_window=",
                options_.config.history_recent, " --set blend.topics_unit_weights=false")),
            absl::string_view::npos)
      << today.status();
  options_.config = shared;
  auto written = Engine::Open(options_, backend_.get());
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ((*written)->stats().events_applied, 300);
}

// A blend state written before blend.sparse_scale (its ranker learnt on sparse scores divided by
// their s.d., its stored configuration without the key) is refused under today's default, and the
// error names the setting that opens it.
TEST_F(EngineTest, ABlendStateOfScaledSparseScoresSaysWhatToRunWith) {
  const std::string dir = FreshDir("engine_blend_sparse_scale");
  options_.algorithm = "blend";
  ASSERT_EQ(options_.config.blend_sparse_scale, "none");
  options_.config.blend_sparse_scale = "sd";
  {
    auto engine = Open(dir);
    ASSERT_TRUE(RunAll(*engine, MakeEvents(300, 10, 20, 1)).ok());
  }
  {
    const std::string toml = TomlWithout(options_.config, {"sparse_scale"});
    ASSERT_NE(toml, config::ToToml(options_.config));
    ASSERT_NO_FATAL_FAILURE(
        RewriteIdentity(dir, "blend", store::StateFingerprint("blend", options_.config), toml));
  }
  options_.data_dir = dir;
  options_.config.blend_sparse_scale = "none";
  auto today = Engine::Open(options_, backend_.get());
  ASSERT_FALSE(today.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(today.status())) << today.status();
  EXPECT_NE(today.status().message().find("--set blend.sparse_scale=sd"), absl::string_view::npos)
      << today.status();
  options_.config.blend_sparse_scale = "sd";
  auto written = Engine::Open(options_, backend_.get());
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ((*written)->stats().events_applied, 300);
}

TEST_F(EngineTest, HiddenItemsSurviveARestart) {
  const std::string dir = FreshDir("engine_hidden");
  {
    auto engine = Open(dir);
    ASSERT_TRUE(RunAll(*engine, MakeEvents(500, 20, 30, 4)).ok());
    ASSERT_TRUE(engine->SetItemHidden("i3", true).ok());
    ASSERT_TRUE(engine->SetItemHidden("i5", true).ok());
    ASSERT_TRUE(engine->SetItemHidden("i5", false).ok());
  }
  auto engine = Open(dir);
  EXPECT_EQ(engine->HiddenItems(), std::vector<std::string>{"i3"});
  RecommendResult result;
  ASSERT_TRUE(engine->RecommendFor("u1", 30, false, {}, &result).ok());
  for (const ScoredId& s : result.items) EXPECT_NE(s.item, "i3");
}

TEST_F(EngineTest, ASecondProcessCannotOpenTheSameDataDirectory) {
  const std::string dir = FreshDir("engine_lock");
  auto first = Open(dir);
  ASSERT_NE(first, nullptr);
  options_.data_dir = dir;
  // flock is per open file description: a second open in this process conflicts like another
  // process would.
  auto second = Engine::Open(options_, backend_.get());
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status()));
  EXPECT_NE(second.status().message().find("in use"), absl::string_view::npos) << second.status();
}

TEST_F(EngineTest, AnotherSourceAtAStoredIndexIsRefused) {
  const std::string dir = FreshDir("engine_sources");
  {
    auto engine = Open(dir);
    ASSERT_TRUE(RunAll(*engine, MakeEvents(100, 5, 5, 2)).ok());
  }
  auto engine = Open(dir);
  const absl::Status s = engine->AddSource(
      std::make_unique<stream::MemoryEventSource>(MakeEvents(10, 2, 2, 3), "other"),
      "memory:other");
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
}

// Every item vector and bias the engine's model holds.
std::vector<float> ItemParameters(const Engine& engine) {
  return engine.WithLearner([](const learner::Learner& l) {
    std::vector<float> out;
    const kernels::ItemMatrixView v = l.scoring().ItemVectors();
    for (int64_t r = 0; r < v.rows; ++r) {
      out.insert(out.end(), v.vectors + r * v.stride, v.vectors + r * v.stride + v.dim);
      out.push_back(v.bias[r]);
    }
    return out;
  });
}

TEST_F(EngineTest, MicroBatchedLearningServesAndPersistsEveryBatch) {
  // The GPU's way of learning (micro-batches on a trainer that mirrors the host tables), here on
  // the reference trainer, with a reader scoring through the batched path meanwhile.
  options_.config.micro_batch = 32;
  const std::string dir = FreshDir("engine_micro_batch");
  const std::vector<stream::Event> events = MakeEvents(6000, 300, 400, 9);
  std::vector<float> learnt;
  {
    auto engine = Open(dir);
    ASSERT_NE(engine, nullptr);
    std::atomic<bool> done{false};
    std::atomic<int64_t> answered{0};
    std::thread reader([&] {
      RecommendResult result;
      for (int i = 0; !done.load(); ++i) {
        if (engine->RecommendFor(absl::StrCat("u", i % 300), 10, true, {}, &result).ok()) {
          answered.fetch_add(1);
        }
      }
    });
    ASSERT_TRUE(RunAll(*engine, events).ok());
    done.store(true);
    reader.join();
    EXPECT_GT(answered.load(), 0);
    EXPECT_EQ(
        engine->WithLearner([](const learner::Learner& l) { return l.diagnostics().Learning(); }),
        "reference");
    EXPECT_EQ(UserCounts(*engine), ExpectedCounts(events));
    learnt = ItemParameters(*engine);
  }
  // What the trainer learnt reached the host tables and, through them, the store.
  auto reopened = Open(dir);
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(ItemParameters(*reopened), learnt);
}

TEST_F(EngineTest, ReadersRunWhileTheEngineLearns) {
  const std::string dir = FreshDir("engine_readers");
  auto engine = Open(dir);
  ASSERT_TRUE(
      engine
          ->AddSource(std::make_unique<stream::MemoryEventSource>(MakeEvents(20000, 500, 800, 5)),
                      "memory:events")
          .ok());
  std::atomic<bool> stop{false};
  std::atomic<bool> done{false};
  std::atomic<int64_t> answered{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      learner::Recommendation rec;
      for (int i = 0; !done.load(); ++i) {
        const std::string user = absl::StrCat("u", (i * 7 + t) % 500);
        if (engine->Recommend(user, 10, true, &rec).ok()) answered.fetch_add(1);
        engine->User(user);
      }
    });
  }
  Engine::RunOptions run;
  run.exit_when_done = true;
  ASSERT_TRUE(engine->Run(stop, run).ok());
  done.store(true);
  for (auto& r : readers) r.join();
  EXPECT_EQ(engine->stats().events_applied, 20000);
  EXPECT_GT(answered.load(), 0);
  const UserInfo info = engine->User("u1");
  EXPECT_TRUE(info.known);
  EXPECT_GT(info.events, 0);
  EXPECT_GE(info.applied_ms_ago, 0);
}

}  // namespace
}  // namespace freshet::engine
