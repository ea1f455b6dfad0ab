// The write-ahead log after a crash: a record cut short at its very end (what kill -9 or a power
// cut mid-write leaves) is tolerated, but a flipped byte anywhere is corruption: the open is
// refused, naming the directory and what an operator can do — never, as with RocksDB's default
// point-in-time recovery, a silent start from whatever preceded the damage (after a flip in the
// first record: an empty state, "loaded 0 users"). With store.accept_wal_loss the state before
// the first corrupt record is recovered and what was dropped is counted.
//
// The crash images are copies of the database's files taken while it is open, after the batches
// were written to the log and before any memtable was flushed: exactly what a process killed at
// that moment leaves (the log's writes are in the page cache, which survives the process).
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/engine.h"
#include "engine/learner_rows.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "learner/learner.h"
#include "store/data_dir.h"
#include "store/persister.h"
#include "store/rocksdb/state_store.h"
#include "tests/store/test_util.h"

namespace freshet::store {
namespace {

namespace fs = std::filesystem;
using freshet::testing::ExpectSameState;
using freshet::testing::FreshDir;
using freshet::testing::MakeEvents;

constexpr int kChunk = 3000;
constexpr int kBatches = 8;

class StoreWalCorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.dim = 16;
    events_ = MakeEvents(kChunk * kBatches, 400, 900, 41);
    // One state, written in kBatches batches (one log record each), imaged as after a crash.
    const std::string live = FreshDir("wal_live");
    image_ = FreshDir("wal_image");
    auto l = *learner::Learner::Create("bpr", config_, backend_.get());
    engine::LearnerRows rows(*l);
    auto store = StateStore::Open(live, StateStore::Options{});
    ASSERT_TRUE(store.ok()) << store.status();
    Persister persister(store->get(), Persister::Options{}, 0);
    persister.Start();
    persister.WriteIdentity("bpr", config_.dim, StateFingerprint("bpr", config_), "");
    stream::AppliedPositions positions;
    for (int b = 0; b < kBatches; ++b) {
      l->ApplyBatch(absl::MakeConstSpan(events_).subspan(static_cast<size_t>(b) * kChunk, kChunk));
      positions.Set(0, 0, int64_t{b + 1} * kChunk - 1);
      ASSERT_TRUE(persister.Flush(rows, positions, {"memory:test"}, absl::Seconds(10)).ok());
    }
    for (const auto& entry : fs::directory_iterator(live)) {
      fs::copy_file(entry.path(), fs::path(image_) / entry.path().filename());
      if (entry.path().extension() == ".log")
        wal_ = (fs::path(image_) / entry.path().filename()).string();
      ASSERT_NE(entry.path().extension(), ".sst") << "a memtable was flushed: not a crash image";
    }
    ASSERT_FALSE(wal_.empty());
  }

  // A learner that saw the first `batches` batches, as the store's would.
  std::unique_ptr<learner::Learner> Reference(int batches) {
    auto l = *learner::Learner::Create("bpr", config_, backend_.get());
    for (int b = 0; b < batches; ++b) {
      l->ApplyBatch(absl::MakeConstSpan(events_).subspan(static_cast<size_t>(b) * kChunk, kChunk));
    }
    return l;
  }

  void Flip(int64_t offset) {
    std::fstream f(wal_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(offset);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x5a);
    f.seekp(offset);
    f.write(&c, 1);
    ASSERT_TRUE(f.good());
  }

  int64_t WalSize() const { return static_cast<int64_t>(fs::file_size(wal_)); }

  // Opens the damaged image with store.accept_wal_loss and checks what it recovered: whole
  // batches, with their source position, the state of a learner that saw only those, written to
  // table files so that the next start, strict again, opens it. Returns what the open reported
  // and how many batches it kept.
  void OpenAcceptingTheLoss(WalLoss* loss, int* kept) {
    StateStore::Options options;
    options.accept_wal_loss = true;
    int64_t events = 0;
    {
      auto store = StateStore::Open(image_, options);
      ASSERT_TRUE(store.ok()) << store.status();
      *loss = (*store)->wal_loss();
      ASSERT_FALSE(loss->corruption.empty());
      auto meta = (*store)->ReadMeta();
      ASSERT_TRUE(meta.ok());
      events = meta->events_applied;
      ASSERT_EQ(events % kChunk, 0);
      *kept = static_cast<int>(events / kChunk);
      EXPECT_EQ(meta->positions.at(0).offset, events - 1);
      auto loaded = *learner::Learner::Create("bpr", config_, backend_.get());
      ASSERT_TRUE(engine::LoadLearner(**store, *loaded).ok());
      ExpectSameState(*Reference(*kept), *loaded);
    }
    auto store = StateStore::Open(image_, StateStore::Options{});
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->ReadMeta()->events_applied, events);
    EXPECT_EQ((*store)->wal_loss().records_dropped, 0);
  }

  // RocksDB's log format: 32 KiB blocks of fragments, each a 7-byte header (crc32c 4, length 2,
  // type 1: 1 a whole record, 2 its first fragment, 3 a middle one, 4 its last) and its payload.
  // Returns the offset of the middle byte of the payload of the first fragment of `type` that
  // starts at or after `from`, or -1.
  int64_t FragmentPayloadByte(int type, int64_t from) const {
    std::ifstream f(wal_, std::ios::binary);
    const std::string log((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    constexpr int64_t kBlock = 32768, kHeader = 7;
    int64_t pos = 0;
    while (pos + kHeader <= static_cast<int64_t>(log.size())) {
      const int64_t block_end = (pos / kBlock + 1) * kBlock;
      if (block_end - pos < kHeader) {  // a block's tail too short for a header is padding
        pos = block_end;
        continue;
      }
      const int64_t length = static_cast<uint8_t>(log[pos + 4]) |
                             (static_cast<int64_t>(static_cast<uint8_t>(log[pos + 5])) << 8);
      const int fragment = static_cast<uint8_t>(log[pos + 6]);
      if (fragment == 0 && length == 0) {
        pos = block_end;
        continue;
      }
      if (fragment == type && pos >= from && length > 0) return pos + kHeader + length / 2;
      pos += kHeader + length;
    }
    return -1;
  }

  config::Config config_;
  std::unique_ptr<kernels::Backend> backend_ = *kernels::CreateBackend("cpu");
  std::vector<stream::Event> events_;
  std::string image_;
  std::string wal_;
};

TEST_F(StoreWalCorruptionTest, ACrashImageRecoversEveryBatch) {
  auto store = StateStore::Open(image_, StateStore::Options{});
  ASSERT_TRUE(store.ok()) << store.status();
  auto loaded = *learner::Learner::Create("bpr", config_, backend_.get());
  ASSERT_TRUE(engine::LoadLearner(**store, *loaded).ok());
  ExpectSameState(*Reference(kBatches), *loaded);
}

TEST_F(StoreWalCorruptionTest, ARecordCutShortAtTheEndIsWhatACrashLeavesAndIsTolerated) {
  fs::resize_file(wal_, static_cast<uintmax_t>(WalSize() - 1000));
  auto store = StateStore::Open(image_, StateStore::Options{});
  ASSERT_TRUE(store.ok()) << store.status();
  auto loaded = *learner::Learner::Create("bpr", config_, backend_.get());
  ASSERT_TRUE(engine::LoadLearner(**store, *loaded).ok());
  // The last batch was never acknowledged (its sources deliver it again).
  ExpectSameState(*Reference(kBatches - 1), *loaded);
  EXPECT_EQ((*store)->ReadMeta()->positions.at(0).offset, int64_t{kBatches - 1} * kChunk - 1);
}

TEST_F(StoreWalCorruptionTest, AFlippedByteRefusesTheOpenAndSaysWhatToDo) {
  for (const int64_t offset : {int64_t{20}, WalSize() * 2 / 5, WalSize() - 50}) {
    SCOPED_TRACE(absl::StrCat("byte ", offset, " of ", WalSize()));
    SetUp();  // a fresh image
    Flip(offset);
    for (const bool read_only : {false, true}) {
      StateStore::Options options;
      options.read_only = read_only;
      auto store = StateStore::Open(image_, options);
      ASSERT_FALSE(store.ok()) << "opened with "
                               << (store.ok() ? (*store)->ReadMeta()->events_applied : 0)
                               << " events";
      const absl::Status& s = store.status();
      EXPECT_TRUE(absl::IsDataLoss(s)) << s;
      for (const std::string& part :
           {image_, std::string("write-ahead log"), fs::path(wal_).filename().string(),
            std::string("freshet snapshot restore --data-dir"),
            std::string("store.accept_wal_loss=true")}) {
        EXPECT_NE(s.message().find(part), absl::string_view::npos) << part << " not in: " << s;
      }
    }
  }
}

// The batches are larger than a block, so each record is fragmented; here the first fragment of
// one is damaged.
TEST_F(StoreWalCorruptionTest, AcceptingTheLossRecoversThePrefixAndCountsWhatWasDropped) {
  const int64_t offset = FragmentPayloadByte(2, WalSize() * 2 / 5);
  ASSERT_GT(offset, 0);
  Flip(offset);
  WalLoss loss;
  int kept = -1;
  ASSERT_NO_FATAL_FAILURE(OpenAcceptingTheLoss(&loss, &kept));
  // One record is corrupt; the intact ones after it are dropped and counted.
  EXPECT_EQ(loss.records_total, kBatches - 1);
  EXPECT_GT(loss.records_dropped, 0);
  EXPECT_LT(loss.records_dropped, kBatches - 1);
  EXPECT_EQ(kept, kBatches - 1 - loss.records_dropped);
  EXPECT_NE(loss.corruption[0].find("Corruption"), std::string::npos) << loss.corruption[0];
}

// A damaged last (or middle) fragment stops the reader that would count the intact records after
// it ("Write batch content corrupted"): the loss is still accepted, the prefix recovered, and the
// counts say they are unknown.
TEST_F(StoreWalCorruptionTest, AcceptingALossThatCannotBeCountedStillRecoversThePrefix) {
  for (const int fragment : {3, 4}) {
    SCOPED_TRACE(absl::StrCat("fragment type ", fragment));
    SetUp();  // a fresh image
    const int64_t offset = FragmentPayloadByte(fragment, WalSize() * 2 / 5);
    ASSERT_GT(offset, 0);
    Flip(offset);
    WalLoss loss;
    int kept = -1;
    ASSERT_NO_FATAL_FAILURE(OpenAcceptingTheLoss(&loss, &kept));
    EXPECT_EQ(loss.records_total, -1);
    EXPECT_EQ(loss.records_dropped, -1);
    EXPECT_LT(kept, kBatches);
  }
}

// The same through the engine, which is what `freshet serve` opens: the error names the data
// directory; store.accept_wal_loss (--set store.accept_wal_loss=true) starts from the prefix.
TEST_F(StoreWalCorruptionTest, TheServerRefusesToStartUnlessTheLossIsAccepted) {
  const std::string data_dir = FreshDir("wal_engine");
  fs::copy(image_, LiveDbPath(data_dir));
  wal_ = (fs::path(LiveDbPath(data_dir)) / fs::path(wal_).filename()).string();
  Flip(20);  // the first record: point-in-time recovery would have started from nothing
  engine::EngineOptions options;
  options.data_dir = data_dir;
  options.config = config_;
  auto refused = engine::Engine::Open(options, backend_.get());
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::IsDataLoss(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find(LiveDbPath(data_dir)), absl::string_view::npos);
  EXPECT_NE(refused.status().message().find("--data-dir " + data_dir), absl::string_view::npos)
      << refused.status();
  options.config.store_accept_wal_loss = true;
  auto accepted = engine::Engine::Open(options, backend_.get());
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  EXPECT_EQ((*accepted)->stats().events_applied, 0);  // nothing before the first record
}

}  // namespace
}  // namespace freshet::store
