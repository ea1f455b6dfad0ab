// Snapshots: checkpoint + manifest, listed and verified; a truncated, altered or partial snapshot
// is refused with DataLoss before anything live is touched.
#include "store/snapshot.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/learner_rows.h"
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
    rows_ = std::make_unique<engine::LearnerRows>(*learner_);
    auto store = StateStore::Open(LiveDbPath(dir_), StateStore::Options{});
    ASSERT_TRUE(store.ok());
    store_ = *std::move(store);
    persister_ = std::make_unique<Persister>(store_.get(), Persister::Options{}, 0);
    persister_->Start();
    persister_->WriteIdentity("bpr", 8, StateFingerprint("bpr", config_), "");
  }

  void Learn(int n, uint64_t seed) {
    learner_->ApplyBatch(MakeEvents(n, 30, 50, seed));
    positions_.Set(0, 0, learner_->events_applied() - 1);
    ASSERT_TRUE(persister_->Flush(*rows_, positions_, {"memory:test"}, absl::Seconds(10)).ok());
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
  std::unique_ptr<engine::LearnerRows> rows_;  // learner_ as the persister reads it
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<Persister> persister_;
  stream::AppliedPositions positions_;
};

// snapshot.json is read as hostile input: every field in its range, or DataLoss naming it.
TEST(SnapshotManifestTest, ValuesOutOfRangeAreRefusedAndGoodOnesRoundTrip) {
  const std::string good =
      R"({"id":"s1","created_ms":5,"model_version":2,"events_applied":9,"users":3,"items":4,)"
      R"("algorithm":"bpr","dim":16,"config_fingerprint":"00000000000000ff","sources":["a"],)"
      R"("positions":[{"stream":0,"partition":1,"offset":-1}],)"
      R"("files":[{"name":"CURRENT","size":16,"crc32":4294967295}]})";
  absl::StatusOr<SnapshotManifest> m = ParseManifest(good, "test");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->files[0].crc32, 4294967295u);
  EXPECT_EQ(m->config_fingerprint, 255u);
  absl::StatusOr<SnapshotManifest> again = ParseManifest(ManifestToJson(*m), "test");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(ManifestToJson(*again), ManifestToJson(*m));
  const std::vector<std::pair<std::string, std::string>> edits = {
      {R"("id":"s1")", R"("id":"../s1")"},
      {R"("dim":16)", R"("dim":1099511627792)"},
      {R"("dim":16)", R"("dim":0)"},
      {R"("users":3)", R"("users":-3)"},
      {R"("stream":0)", R"("stream":4294967296)"},
      {R"("partition":1)", R"("partition":-1)"},
      {R"("offset":-1)", R"("offset":-2)"},
      {R"("crc32":4294967295)", R"("crc32":4294967296)"},
      {R"("size":16)", R"("size":-16)"},
      {R"("name":"CURRENT")", R"("name":"..")"},
      {R"("config_fingerprint":"00000000000000ff")", R"("config_fingerprint":"1ffffffffffffffff")"},
      {R"("algorithm":"bpr")", R"("algorithm":"")"},
  };
  for (const auto& [from, to] : edits) {
    std::string text = good;
    ASSERT_NE(text.find(from), std::string::npos) << from;
    text.replace(text.find(from), from.size(), to);
    const absl::StatusOr<SnapshotManifest> bad = ParseManifest(text, "snapshot x");
    EXPECT_TRUE(absl::IsDataLoss(bad.status())) << to << ": " << bad.status();
    EXPECT_NE(bad.status().message().find("snapshot x: malformed manifest"),
              absl::string_view::npos);
  }
}

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
  EXPECT_TRUE(engine::LoadLearner(**store, *loaded).ok());
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

// Flips bytes in the middle of `path`, in place (the inode, and so every hard link, changes).
void DamageInPlace(const fs::path& path) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  const auto size = static_cast<std::streamoff>(fs::file_size(path));
  for (std::streamoff at = size / 3; at < size / 3 + 64 && at < size; ++at) {
    f.seekg(at);
    char c = 0;
    f.read(&c, 1);
    f.seekp(at);
    f.put(static_cast<char>(c ^ 0xff));
  }
  ASSERT_TRUE(f.good()) << path;
}

ino_t Inode(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_ino;
}

// Damage to the live database's files cannot reach a snapshot, nor damage to a snapshot the
// database restored from it: no file is shared (a RocksDB checkpoint hard-links table files, so
// before the fix a flipped byte in a live table file was the same flip in every snapshot).
TEST_F(SnapshotTest, SnapshotsShareNoFileWithTheLiveDatabase) {
  Learn(2000, 1);
  SnapshotStore snapshots(dir_);
  auto m = snapshots.Create(*store_, "s");
  ASSERT_TRUE(m.ok()) << m.status();
  std::set<ino_t> live_inodes;
  int live_tables = 0;
  for (const auto& entry : fs::directory_iterator(LiveDbPath(dir_))) {
    live_inodes.insert(Inode(entry.path()));
    live_tables += entry.path().extension() == ".sst";
  }
  ASSERT_GT(live_tables, 0);
  for (const SnapshotFile& f : m->files) {
    const fs::path path = fs::path(snapshots.DbPath("s")) / f.name;
    EXPECT_EQ(fs::hard_link_count(path), 1u) << f.name;
    EXPECT_EQ(live_inodes.count(Inode(path)), 0u) << f.name << " is the live database's file";
  }
  // Every live table file damaged in place: the snapshot is intact and restores.
  persister_.reset();
  store_.reset();
  for (const auto& entry : fs::directory_iterator(LiveDbPath(dir_))) {
    if (entry.path().extension() == ".sst") DamageInPlace(entry.path());
  }
  ASSERT_TRUE(snapshots.Inspect("s", /*verify=*/true).ok());
  const absl::Status restored = snapshots.RestoreOffline("s");
  ASSERT_TRUE(restored.ok()) << restored;
  {
    auto store = StateStore::Open(LiveDbPath(dir_), StateStore::Options{});
    ASSERT_TRUE(store.ok()) << store.status();
    auto loaded = *learner::Learner::Create("bpr", config_, backend_.get());
    ASSERT_TRUE(engine::LoadLearner(**store, *loaded).ok());
    EXPECT_EQ(loaded->events_applied(), 2000);
  }
  // And the other way: the restored live files are copies too.
  for (const auto& entry : fs::directory_iterator(LiveDbPath(dir_))) {
    EXPECT_EQ(fs::hard_link_count(entry.path()), 1u) << entry.path();
    if (entry.path().extension() == ".sst") DamageInPlace(entry.path());
  }
  EXPECT_TRUE(snapshots.Inspect("s", /*verify=*/true).ok());
}

// A snapshot whose manifest agrees with its files but whose database lacks a table file (gone
// from the disk and from the manifest): every checksum passes, yet the database cannot open.
// Before the fix the restore said "restored", deleted the live database and left one that would
// not open. Now the copy is opened and checked before anything live is replaced.
TEST_F(SnapshotTest, ASnapshotThatDoesNotOpenIsRefusedAndTheLiveStateIsUntouched) {
  Learn(1000, 1);
  SnapshotStore snapshots(dir_);
  auto m = snapshots.Create(*store_, "s");
  ASSERT_TRUE(m.ok()) << m.status();
  Learn(300, 2);
  SnapshotFile largest;
  for (const SnapshotFile& f : m->files) {
    if (f.name.size() > 4 && f.name.substr(f.name.size() - 4) == ".sst" && f.size > largest.size) {
      largest = f;
    }
  }
  ASSERT_FALSE(largest.name.empty());
  ASSERT_TRUE(fs::remove(fs::path(snapshots.DbPath("s")) / largest.name));
  SnapshotManifest edited = *m;
  edited.files.erase(std::remove_if(edited.files.begin(), edited.files.end(),
                                    [&](const SnapshotFile& f) { return f.name == largest.name; }),
                     edited.files.end());
  {
    std::ofstream out(fs::path(snapshots.DbPath("s")) / "snapshot.json", std::ios::trunc);
    out << ManifestToJson(edited);
  }
  ASSERT_TRUE(snapshots.Inspect("s", /*verify=*/true).ok());  // the manifest agrees with the files
  persister_.reset();
  store_.reset();
  const absl::Status restored = snapshots.RestoreOffline("s");
  ASSERT_FALSE(restored.ok());
  EXPECT_TRUE(absl::IsDataLoss(restored)) << restored;
  EXPECT_NE(restored.message().find("snapshot s cannot be restored"), absl::string_view::npos)
      << restored;
  EXPECT_NE(restored.message().find("untouched"), absl::string_view::npos) << restored;
  EXPECT_FALSE(fs::exists(fs::path(dir_) / "db.restoring"));
  auto store = StateStore::Open(LiveDbPath(dir_), StateStore::Options{});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->ReadMeta()->events_applied, 1300);
  auto loaded = *learner::Learner::Create("bpr", config_, backend_.get());
  EXPECT_TRUE(engine::LoadLearner(**store, *loaded).ok());
}

// A table file damaged inside the snapshot, with a manifest rewritten to match it: the copy's
// checksums pass, but RocksDB's block checksums do not — refused before anything live changes.
TEST_F(SnapshotTest, ASnapshotWithADamagedTableBlockIsRefused) {
  Learn(1000, 1);
  SnapshotStore snapshots(dir_);
  auto m = snapshots.Create(*store_, "s");
  ASSERT_TRUE(m.ok()) << m.status();
  SnapshotManifest edited = *m;
  for (SnapshotFile& f : edited.files) {
    if (f.name.size() < 4 || f.name.substr(f.name.size() - 4) != ".sst") continue;
    const fs::path path = fs::path(snapshots.DbPath("s")) / f.name;
    DamageInPlace(path);
    // What the manifest would say had the file been damaged before the snapshot was taken.
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    f.crc32 = static_cast<uint32_t>(crc32(crc32(0L, Z_NULL, 0),
                                          reinterpret_cast<const Bytef*>(bytes.data()),
                                          static_cast<uInt>(bytes.size())));
  }
  {
    std::ofstream out(fs::path(snapshots.DbPath("s")) / "snapshot.json", std::ios::trunc);
    out << ManifestToJson(edited);
  }
  persister_.reset();
  store_.reset();
  const absl::Status restored = snapshots.RestoreOffline("s");
  EXPECT_TRUE(absl::IsDataLoss(restored)) << restored;
  auto store = StateStore::Open(LiveDbPath(dir_), StateStore::Options{});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->ReadMeta()->events_applied, 1000);
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
