// Fault injection, in the manner of leveldb's db/fault_injection_test.cc: RocksDB runs on a file
// system that fails writes, syncs or file opens on demand (tests/store/fault_injection_fs.h),
// while the learner keeps learning and the persister keeps trying. Then the fault heals, and
// every event the learner accepted — before, during and after the failure — must be in the
// state, which is checked by reopening the database and comparing it with the learner row by row.
// Before the fix RocksDB stayed in its background-error state after the first failure (its own
// recovery from a full disk refuses DB::Resume(), and an exhausted file table was fatal), so the
// persister retried the same error forever and the final flush timed out.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/learner_rows.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "learner/learner.h"
#include "store/persister.h"
#include "store/rocksdb/state_store.h"
#include "tests/store/fault_injection_fs.h"
#include "tests/store/test_util.h"

namespace freshet::store {
namespace {

using freshet::testing::ExpectSameState;
using freshet::testing::FaultInjectionFileSystem;
using freshet::testing::FreshDir;
using freshet::testing::MakeEvents;

constexpr int kChunk = 4000;  // events learnt between two flushes

bool WaitFor(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

struct FaultCase {
  const char* name;
  unsigned faults;
  bool sync;  // store.sync: an fsync per write, so that sync faults are met at once
};

class PersisterFaultInjectionTest : public ::testing::TestWithParam<FaultCase> {
 protected:
  void SetUp() override {
    dir_ = FreshDir(absl::StrCat("fault_", GetParam().name));
    config_.dim = 16;
    learner_ = *learner::Learner::Create("bpr", config_, backend_.get());
    rows_ = std::make_unique<engine::LearnerRows>(*learner_);
    events_ = MakeEvents(40 * kChunk, 600, 1500, 21);
    fs_ = std::make_shared<FaultInjectionFileSystem>();
  }

  std::unique_ptr<StateStore> OpenFaulty() {
    StateStore::Options options;
    options.file_system = fs_;
    options.sync = GetParam().sync;
    // Small memtables: after nearly every batch the store switches to a new log file and
    // RocksDB flushes table files, so file opens (and their failures) are on the write path.
    options.memtable_bytes = 256 << 10;
    auto store = StateStore::Open(dir_, options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  // Learns the next chunk of events and offers a batch to the persister (which takes it only
  // when no earlier batch is waiting: otherwise the rows stay marked in the learner).
  void LearnChunk(Persister& persister) {
    ASSERT_LT(next_, events_.size());
    const size_t n = std::min<size_t>(kChunk, events_.size() - next_);
    learner_->ApplyBatch(absl::MakeConstSpan(events_).subspan(next_, n));
    next_ += n;
    positions_.Set(0, 0, static_cast<int64_t>(next_) - 1);
    persister.MaybeFlush(*rows_, positions_, {"memory:test"}, /*force=*/true);
  }

  static Persister::Options FastRetries() {
    Persister::Options options;
    options.min_backoff = absl::Milliseconds(1);
    options.max_backoff = absl::Milliseconds(20);
    return options;
  }

  std::string dir_;
  config::Config config_;
  std::unique_ptr<kernels::Backend> backend_ = *kernels::CreateBackend("cpu");
  std::unique_ptr<learner::Learner> learner_;
  std::unique_ptr<engine::LearnerRows> rows_;  // learner_ as the persister reads it
  std::vector<stream::Event> events_;
  size_t next_ = 0;
  stream::AppliedPositions positions_;
  std::shared_ptr<FaultInjectionFileSystem> fs_;
};

TEST_P(PersisterFaultInjectionTest, EveryAcceptedEventIsStoredOnceTheFaultHeals) {
  {
    std::unique_ptr<StateStore> store = OpenFaulty();
    ASSERT_NE(store, nullptr);
    Persister persister(store.get(), FastRetries(), 0);
    persister.Start();
    persister.WriteIdentity("bpr", config_.dim, StateFingerprint("bpr", config_), "");
    for (int i = 0; i < 3; ++i) LearnChunk(persister);
    ASSERT_TRUE(persister.Flush(*rows_, positions_, {"memory:test"}, absl::Seconds(20)).ok());
    ASSERT_TRUE(persister.healthy());

    fs_->Fail(GetParam().faults);
    // Learn on until a write fails (an open fails only when a memtable is full).
    for (int i = 0; i < 20 && persister.stats().write_errors == 0; ++i) {
      LearnChunk(persister);
      WaitFor([&] { return persister.stats().write_errors > 0; }, absl::Milliseconds(200));
    }
    ASSERT_GT(persister.stats().write_errors, 0) << "no fault was met";
    EXPECT_GT(fs_->injected(), 0);
    // The persister says so, and keeps failing while the fault lasts ...
    EXPECT_FALSE(persister.healthy());
    const absl::Status health = persister.Health();
    EXPECT_TRUE(absl::IsUnavailable(health)) << health;
    EXPECT_NE(health.message().find("cannot write"), absl::string_view::npos) << health;
    const int64_t errors = persister.stats().write_errors;
    ASSERT_TRUE(
        WaitFor([&] { return persister.stats().write_errors >= errors + 1; }, absl::Seconds(10)));
    EXPECT_FALSE(persister.stats().healthy);
    EXPECT_GT(persister.stats().consecutive_errors, 0);
    // ... while the learner accepts more events; their rows stay pending.
    const int64_t persisted = persister.stats().events_persisted;
    for (int i = 0; i < 3; ++i) LearnChunk(persister);
    EXPECT_LT(persisted, learner_->events_applied());

    fs_->Heal();
    // The retries resume RocksDB and write everything, without anyone's help.
    ASSERT_TRUE(WaitFor([&] { return persister.healthy(); }, absl::Seconds(20)))
        << persister.Health();
    for (int i = 0; i < 2; ++i) LearnChunk(persister);
    const absl::Status flushed =
        persister.Flush(*rows_, positions_, {"memory:test"}, absl::Seconds(20));
    ASSERT_TRUE(flushed.ok()) << flushed;
    const PersisterStats stats = persister.stats();
    EXPECT_TRUE(stats.healthy);
    EXPECT_EQ(stats.consecutive_errors, 0);
    EXPECT_TRUE(stats.last_error.empty()) << stats.last_error;
    EXPECT_EQ(stats.events_persisted, learner_->events_applied());
  }
  // Reopened as after any restart (strict write-ahead-log recovery, no injected file system).
  auto store = StateStore::Open(dir_, StateStore::Options{});
  ASSERT_TRUE(store.ok()) << store.status();
  auto meta = (*store)->ReadMeta();
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->events_applied, static_cast<int64_t>(next_));
  ASSERT_EQ(meta->positions.size(), 1u);
  EXPECT_EQ(meta->positions[0].offset, static_cast<int64_t>(next_) - 1);
  auto loaded = *learner::Learner::Create("bpr", config_, backend_.get());
  ASSERT_TRUE(engine::LoadLearner(**store, *loaded).ok());
  ExpectSameState(*learner_, *loaded);
}

// A stop while the fault lasts (the final write cannot happen): the database, reopened after
// the fault healed, holds exactly the events of some batch boundary — an exact prefix of the
// stream, from which the sources resume — and its torn last log record is tolerated as what a
// crash mid-write leaves, not refused as corruption. The prefix is the last batch written, or,
// when only its fsync failed, the batch after it: its log record is whole, so the next open
// replays it (together with its positions, so nothing is applied twice).
TEST_P(PersisterFaultInjectionTest, AStopWhileFailingLeavesAnExactPrefix) {
  int64_t persisted = 0;
  {
    std::unique_ptr<StateStore> store = OpenFaulty();
    ASSERT_NE(store, nullptr);
    Persister persister(store.get(), FastRetries(), 0);
    persister.Start();
    persister.WriteIdentity("bpr", config_.dim, StateFingerprint("bpr", config_), "");
    for (int i = 0; i < 3; ++i) LearnChunk(persister);
    ASSERT_TRUE(persister.Flush(*rows_, positions_, {"memory:test"}, absl::Seconds(20)).ok());
    fs_->Fail(GetParam().faults);
    for (int i = 0; i < 20 && persister.stats().write_errors == 0; ++i) {
      LearnChunk(persister);
      WaitFor([&] { return persister.stats().write_errors > 0; }, absl::Milliseconds(200));
    }
    ASSERT_GT(persister.stats().write_errors, 0);
    const absl::Status flushed =
        persister.Flush(*rows_, positions_, {"memory:test"}, absl::Milliseconds(300));
    ASSERT_TRUE(absl::IsDeadlineExceeded(flushed)) << flushed;
    // The stop says how much is not persisted.
    const int64_t unpersisted = learner_->events_applied() - persister.stats().events_persisted;
    EXPECT_GT(unpersisted, 0);
    EXPECT_NE(flushed.message().find(absl::StrCat(unpersisted, " events learnt are NOT persisted")),
              absl::string_view::npos)
        << flushed;
    persisted = persister.stats().events_persisted;
  }  // the persister and the store close while writes still fail
  fs_->Heal();
  auto store = StateStore::Open(dir_, StateStore::Options{});
  ASSERT_TRUE(store.ok()) << store.status();
  auto meta = (*store)->ReadMeta();
  ASSERT_TRUE(meta.ok());
  if (GetParam().faults & FaultInjectionFileSystem::kSyncs) {
    EXPECT_GE(meta->events_applied, persisted);
  } else {
    EXPECT_EQ(meta->events_applied, persisted);
  }
  EXPECT_LE(meta->events_applied, learner_->events_applied());
  ASSERT_EQ(meta->events_applied % kChunk, 0) << "not at a batch boundary";
  ASSERT_EQ(meta->positions.size(), 1u);
  EXPECT_EQ(meta->positions[0].offset, meta->events_applied - 1);  // offsets are event indices
  auto loaded = *learner::Learner::Create("bpr", config_, backend_.get());
  const absl::Status load = engine::LoadLearner(**store, *loaded);
  ASSERT_TRUE(load.ok()) << load;
  // Exactly the state of a learner that saw that prefix (in the same chunks), and nothing else.
  auto reference = *learner::Learner::Create("bpr", config_, backend_.get());
  for (int64_t begin = 0; begin < meta->events_applied; begin += kChunk) {
    reference->ApplyBatch(absl::MakeConstSpan(events_).subspan(static_cast<size_t>(begin), kChunk));
  }
  ExpectSameState(*reference, *loaded);
}

// The first write after the memtables were emptied (a fresh store here; just as well right after
// a resume or a memtable switch) fails. RocksDB 7.8 resumes by flushing the memtables and moves to
// a new log file only when one holds something; with all of them empty it kept the log file whose
// last write had failed, and the next write to it aborted the process (an assertion). The store
// keeps a memtable non-empty at every logged write, so the resume always moves on.
TEST(StoreFaultInjectionTest, AWriteFailingIntoAFreshLogIsResumedWithoutAborting) {
  for (const unsigned fault :
       {FaultInjectionFileSystem::kWrites, FaultInjectionFileSystem::kSyncs}) {
    SCOPED_TRACE(fault == FaultInjectionFileSystem::kWrites ? "writes" : "syncs");
    const std::string dir = FreshDir(absl::StrCat("fresh_log_", fault));
    auto fs = std::make_shared<FaultInjectionFileSystem>();
    StateStore::Options options;
    options.file_system = fs;
    options.sync = true;
    {
      auto store = StateStore::Open(dir, options);
      ASSERT_TRUE(store.ok()) << store.status();
      auto write = [&](int32_t row) {
        std::unique_ptr<StateBatch> batch = (*store)->NewBatch();
        batch->PutItem(row, std::string(1000, 'x'));
        batch->PutModelVersion(row);
        return (*store)->Write(batch.get());
      };
      fs->Fail(fault);
      EXPECT_FALSE(write(1).ok());
      EXPECT_FALSE((*store)->Health().ok());
      EXPECT_FALSE(write(1).ok());  // resuming fails too while the fault lasts
      fs->Heal();
      const absl::Status resumed = write(1);
      ASSERT_TRUE(resumed.ok()) << resumed;
      ASSERT_TRUE(write(2).ok());
      EXPECT_TRUE((*store)->Health().ok());
    }
    auto store = StateStore::Open(dir, StateStore::Options{});
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->ReadMeta()->model_version, 2);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Faults, PersisterFaultInjectionTest,
    ::testing::Values(FaultCase{"writes", FaultInjectionFileSystem::kWrites, false},
                      FaultCase{"syncs", FaultInjectionFileSystem::kSyncs, true},
                      FaultCase{"opens", FaultInjectionFileSystem::kOpens, false},
                      FaultCase{"all",
                                FaultInjectionFileSystem::kWrites |
                                    FaultInjectionFileSystem::kSyncs |
                                    FaultInjectionFileSystem::kOpens,
                                true}),
    [](const ::testing::TestParamInfo<FaultCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace freshet::store
