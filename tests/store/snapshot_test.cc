// Snapshots: checkpoint + manifest, listed and verified; a truncated, altered or partial snapshot
// is refused with DataLoss before anything live is touched.
#include "store/snapshot.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "learner/learner.h"
#include "store/data_dir.h"
#include "store/persister.h"
#include "tests/store/test_util.h"

namespace freshet::store {
namespace {

namespace fs = std::filesystem;
using freshet::testing::FreshDir;
using freshet::testing::MakeEvents;

class SnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    config_.dim = 8;
    learner_ = *learner::Learner::Create("bpr", config_, backend_.get());
    auto store = StateStore::Open(LiveDbPath(dir_), StateStore::Options{});
    ASSERT_TRUE(store.ok());
    store_ = *std::move(store);
    persister_ = std::make_unique<Persister>(store_.get(), Persister::Options{}, 0);
    persister_->WriteIdentity("bpr", 8, StateFingerprint("bpr", config_), "");
  }

  void Learn(int n, uint64_t seed) {
    learner_->ApplyBatch(MakeEvents(n, 30, 50, seed));
    positions_.Set(0, 0, learner_->events_applied() - 1);
    ASSERT_TRUE(persister_->Flush(*learner_, positions_, {"memory:test"}, absl::Seconds(10)).ok());
  }

  int64_t LiveEvents() {
    auto meta = store_->ReadMeta();
    EXPECT_TRUE(meta.ok());
    return meta->events_applied;
  }

  std::string dir_;
  config::Config config_;
  std::unique_ptr<kernels::Backend> backend_ = *kernels::CreateBackend("cpu");
  std::unique_ptr<learner::Learner> learner_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<Persister> persister_;
  stream::AppliedPositions positions_;
};

TEST_F(SnapshotTest, CreateListInspectDelete) {
  Learn(1000, 1);
  SnapshotStore snapshots(dir_);
  auto a = snapshots.Create(*store_, "first");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->events_applied, 1000);
  EXPECT_EQ(a->algorithm, "bpr");
  EXPECT_EQ(a->dim, 8);
  EXPECT_EQ(a->users, learner_->users().live());
  ASSERT_EQ(a->positions.size(), 1u);
  EXPECT_EQ(a->positions[0].offset, 999);
  EXPECT_FALSE(a->files.empty());
  Learn(500, 2);
  auto b = snapshots.Create(*store_);  // a generated id
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->events_applied, 1500);
  EXPECT_NE(b->id.find("-v"), std::string::npos);

  auto all = snapshots.List();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id, "first");
  auto inspected = snapshots.Inspect("first", /*verify=*/true);
  ASSERT_TRUE(inspected.ok()) << inspected.status();
  EXPECT_EQ(inspected->model_version, a->model_version);
  EXPECT_TRUE(absl::IsAlreadyExists(snapshots.Create(*store_, "first").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(snapshots.Create(*store_, "../escape").status()));
  EXPECT_TRUE(absl::IsNotFound(snapshots.Inspect("nope", false).status()));
  ASSERT_TRUE(snapshots.Delete("first").ok());
  EXPECT_EQ(snapshots.List()->size(), 1u);
}

TEST_F(SnapshotTest, RestoreReplacesTheLiveState) {
  Learn(1000, 1);
  SnapshotStore snapshots(dir_);
  ASSERT_TRUE(snapshots.Create(*store_, "s").ok());
  Learn(700, 2);
  EXPECT_EQ(LiveEvents(), 1700);
  persister_.reset();
  store_.reset();
  ASSERT_TRUE(snapshots.RestoreOffline("s").ok());
  auto store = StateStore::Open(LiveDbPath(dir_), StateStore::Options{});
  ASSERT_TRUE(store.ok());
  auto meta = (*store)->ReadMeta();
  EXPECT_EQ(meta->events_applied, 1000);
  EXPECT_EQ(meta->positions.at(0).offset, 999);
  auto loaded = *learner::Learner::Create("bpr", config_, backend_.get());
  EXPECT_TRUE((*store)->LoadInto(loaded.get()).ok());
  EXPECT_EQ(loaded->events_applied(), 1000);
  // The snapshot is still intact after a restore (its files were linked or copied, not moved).
  EXPECT_TRUE(snapshots.Inspect("s", /*verify=*/true).ok());
}

TEST_F(SnapshotTest, TruncatedSnapshotIsRefusedAndTheLiveStateIsUntouched) {
  Learn(1000, 1);
  SnapshotStore snapshots(dir_);
  auto m = snapshots.Create(*store_, "s");
  ASSERT_TRUE(m.ok());
  Learn(300, 2);
  // Truncate the largest file of the snapshot.
  SnapshotFile largest;
  for (const auto& f : m->files) {
    if (f.size > largest.size) largest = f;
  }
  const fs::path victim = fs::path(snapshots.DbPath("s")) / largest.name;
  // Table files are hard links shared with the live database: replace, do not modify in place.
  fs::remove(victim);
  {
    std::ofstream out(victim, std::ios::binary);
    out << std::string(static_cast<size_t>(largest.size / 2), 'x');
  }
  const auto inspected = snapshots.Inspect("s", /*verify=*/true);
  ASSERT_FALSE(inspected.ok());
  EXPECT_TRUE(absl::IsDataLoss(inspected.status())) << inspected.status();
  EXPECT_NE(inspected.status().message().find(largest.name), absl::string_view::npos);
  persister_.reset();
  store_.reset();
  const absl::Status restored = snapshots.RestoreOffline("s");
  EXPECT_TRUE(absl::IsDataLoss(restored)) << restored;
  auto store = StateStore::Open(LiveDbPath(dir_), StateStore::Options{});
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->ReadMeta()->events_applied, 1300);  // untouched
}

TEST_F(SnapshotTest, PartialOrAlteredSnapshotsAreRefused) {
  Learn(200, 1);
  SnapshotStore snapshots(dir_);
  ASSERT_TRUE(snapshots.Create(*store_, "a").ok());
  ASSERT_TRUE(snapshots.Create(*store_, "b").ok());
  fs::remove(fs::path(snapshots.DbPath("a")) / "snapshot.json");
  EXPECT_TRUE(absl::IsDataLoss(snapshots.Inspect("a", false).status()));
  {
    std::ofstream out(fs::path(snapshots.DbPath("b")) / "snapshot.json", std::ios::trunc);
    out << "{\"id\": \"b\", \"created_ms\": ";  // cut short
  }
  EXPECT_TRUE(absl::IsDataLoss(snapshots.Inspect("b", false).status()));
  EXPECT_TRUE(snapshots.List()->empty());  // neither is listed as usable
}

TEST(DataDirTest, InterruptedRestoreIsRepaired) {
  const std::string dir = FreshDir("recover");
  // The old database was moved aside and the restored copy was complete: it becomes live.
  fs::create_directories(fs::path(dir) / "db.previous");
  fs::create_directories(fs::path(dir) / "db.restoring");
  std::ofstream(fs::path(dir) / "db.restoring" / "RESTORE_COMPLETE").put('\n');
  std::ofstream(fs::path(dir) / "db.restoring" / "CURRENT").put('\n');
  ASSERT_TRUE(RecoverDataDir(dir).ok());
  EXPECT_TRUE(fs::exists(fs::path(dir) / "db" / "CURRENT"));
  EXPECT_FALSE(fs::exists(fs::path(dir) / "db.previous"));
  // Without the marker, the old one comes back.
  const std::string dir2 = FreshDir("recover2");
  fs::create_directories(fs::path(dir2) / "db.previous");
  std::ofstream(fs::path(dir2) / "db.previous" / "OLD").put('\n');
  fs::create_directories(fs::path(dir2) / "db.restoring");
  ASSERT_TRUE(RecoverDataDir(dir2).ok());
  EXPECT_TRUE(fs::exists(fs::path(dir2) / "db" / "OLD"));
  EXPECT_FALSE(fs::exists(fs::path(dir2) / "db.restoring"));
}

}  // namespace
}  // namespace freshet::store
