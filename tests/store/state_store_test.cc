// The persisted state: every model's rows survive a write and a load bit for bit, incremental
// flushes (dirty rows only) store exactly what a full write stores, corrupt values are DataLoss
// naming the key, and the persister survives failed and torn writes without losing anything.
#include "store/rocksdb/state_store.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/learner_rows.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "learner/learner.h"
#include "rocksdb/db.h"
#include "store/persister.h"
#include "tests/store/test_util.h"

namespace freshet::store {
namespace {

using freshet::testing::ExpectSameState;
using freshet::testing::FreshDir;
using freshet::testing::MakeEvents;

struct Fixture {
  std::unique_ptr<kernels::Backend> backend = *kernels::CreateBackend("cpu");
  config::Config config = [] {
    config::Config c;
    c.dim = 16;
    c.history_max_items = 40;  // small, so eviction happens
    // blend's ease is fitted again from the loaded table (not stored): fitted after every event,
    // the learner's latest fit is of the same table.
    c.blend_ease_refit = 1;
    c.blend_ease_items = 64;
    c.blend_topics_items = 64;  // and topics with it, over as few items
    return c;
  }();

  std::unique_ptr<learner::Learner> NewLearner(const std::string& algorithm) const {
    return *learner::Learner::Create(algorithm, config, backend.get());
  }
};

std::unique_ptr<StateStore> OpenStore(const std::string& dir) {
  auto store = StateStore::Open(dir, StateStore::Options{});
  EXPECT_TRUE(store.ok()) << store.status();
  return *std::move(store);
}

// Writes everything the learner changed, and waits for it.
void FlushAll(Persister& persister, learner::Learner& l,
              const stream::AppliedPositions& positions) {
  engine::LearnerRows rows(l);
  ASSERT_TRUE(persister.Flush(rows, positions, {"memory:test"}, absl::Seconds(30)).ok());
}

class RoundTripTest : public ::testing::TestWithParam<std::string> {};

// Learning in chunks with a flush after each (only the rows each chunk changed are written) ends
// with the same stored state as the learner in memory: no model forgets to mark a row it changes.
TEST_P(RoundTripTest, IncrementalFlushesStoreExactlyTheLearnersState) {
  Fixture f;
  const std::string dir = FreshDir("roundtrip_" + GetParam());
  auto events = MakeEvents(6000, 150, 400, 7);
  auto l = f.NewLearner(GetParam());
  stream::AppliedPositions positions;
  {
    auto store = OpenStore(dir);
    Persister persister(store.get(), Persister::Options{}, 0);
    persister.Start();
    persister.WriteIdentity(GetParam(), f.config.dim, StateFingerprint(GetParam(), f.config), "");
    for (size_t begin = 0; begin < events.size(); begin += 700) {
      const size_t n = std::min<size_t>(700, events.size() - begin);
      l->ApplyBatch(absl::MakeConstSpan(events).subspan(begin, n));
      positions.Set(0, 0, static_cast<int64_t>(begin + n - 1));
      FlushAll(persister, *l, positions);
    }
    EXPECT_EQ(persister.stats().events_persisted, 6000);
    EXPECT_EQ(persister.stats().write_errors, 0);
  }
  auto store = OpenStore(dir);
  auto meta = store->ReadMeta();
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->events_applied, 6000);
  EXPECT_EQ(meta->algorithm, GetParam());
  ASSERT_EQ(meta->positions.size(), 1u);
  EXPECT_EQ(meta->positions[0].offset, 5999);
  auto loaded = f.NewLearner(GetParam());
  ASSERT_TRUE(engine::LoadLearner(*store, *loaded).ok());
  ExpectSameState(*l, *loaded);

  // A loaded learner goes on learning like the original: the same counters afterwards.
  auto more = MakeEvents(500, 200, 450, 8);
  l->ApplyBatch(more);
  loaded->ApplyBatch(more);
  EXPECT_EQ(l->events_applied(), loaded->events_applied());
  for (int u = 0; u < 200; ++u) {
    const std::string id = absl::StrCat("u", u);
    const int32_t ra = l->users().Find(id), rb = loaded->users().Find(id);
    ASSERT_EQ(ra, rb);
    if (ra >= 0) {
      EXPECT_EQ(l->history(ra).events(), loaded->history(rb).events());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllAlgorithms, RoundTripTest,
                         ::testing::Values("bpr", "ials", "cooc", "hybrid", "blend", "popularity"));

// Writes one good state with a single user, then returns the store for tampering.
std::unique_ptr<StateStore> StoreWithState(const std::string& dir, const Fixture& f) {
  auto l = f.NewLearner("bpr");
  l->ApplyBatch(MakeEvents(100, 5, 10, 3));
  auto store = OpenStore(dir);
  {
    Persister persister(store.get(), Persister::Options{}, 0);
    persister.Start();
    persister.WriteIdentity("bpr", f.config.dim, StateFingerprint("bpr", f.config), "");
    stream::AppliedPositions positions;
    FlushAll(persister, *l, positions);
  }
  return store;
}

// blend's fingerprint covers what fixes its rows: its components and whether the cold and the
// session-start weight sets exist, not its learning settings; other algorithms' fingerprints do
// not move with blend's keys.
TEST(StateFingerprintTest, CoversTheBlendsRowLayout) {
  const config::Config defaults;
  config::Config two = defaults;
  two.blend_features = "bpr,cooc";
  EXPECT_NE(StateFingerprint("blend", two), StateFingerprint("blend", defaults));
  EXPECT_EQ(StateFingerprint("bpr", two), StateFingerprint("bpr", defaults));
  config::Config spaced = two;
  spaced.blend_features = " bpr , cooc";
  EXPECT_EQ(StateFingerprint("blend", spaced), StateFingerprint("blend", two));
  config::Config one_set = defaults;
  one_set.blend_cold_events = 0;
  one_set.blend_session_start = false;
  config::Config cold = one_set;
  cold.blend_cold_events = 5;
  EXPECT_NE(StateFingerprint("blend", cold), StateFingerprint("blend", one_set));
  config::Config colder = cold;
  colder.blend_cold_events = 20;
  EXPECT_EQ(StateFingerprint("blend", colder), StateFingerprint("blend", cold));
  config::Config start = one_set;
  start.blend_session_start = true;
  EXPECT_NE(StateFingerprint("blend", start), StateFingerprint("blend", one_set));
  EXPECT_NE(StateFingerprint("blend", start), StateFingerprint("blend", cold));
  config::Config tuned = defaults;
  tuned.blend_lr = 0.05f;
  tuned.blend_ease_lambda = 10;
  EXPECT_EQ(StateFingerprint("blend", tuned), StateFingerprint("blend", defaults));
  EXPECT_NE(LegacyBlendFingerprint(defaults), StateFingerprint("blend", defaults));
  // Topics' own table (its settings unlike the profile table's) is a part more in the item rows;
  // which settings differ, and by how much, is not, nor is anything without the topics component.
  config::Config shared = defaults;
  shared.blend_topics_user_exponent = shared.blend_profile_user_exponent;
  shared.blend_topics_window = shared.history_recent;
  shared.blend_topics_unit_weights = false;
  EXPECT_NE(StateFingerprint("blend", shared), StateFingerprint("blend", defaults));
  config::Config wider = shared;
  wider.blend_topics_window = shared.history_recent + 1;
  EXPECT_EQ(StateFingerprint("blend", wider), StateFingerprint("blend", shared));
  for (const auto& [exponent, window, unit] :
       {std::tuple{1.0f, shared.history_recent, false}, std::tuple{0.0f, 16, false},
        std::tuple{0.0f, shared.history_recent, true}}) {
    config::Config own = shared;
    own.blend_topics_user_exponent = exponent;
    own.blend_topics_window = window;
    own.blend_topics_unit_weights = unit;
    EXPECT_EQ(StateFingerprint("blend", own), StateFingerprint("blend", defaults))
        << exponent << " " << window << " " << unit;
  }
  config::Config no_topics = defaults;
  no_topics.blend_features = "bpr,cooc,profile";
  config::Config no_topics_shared = shared;
  no_topics_shared.blend_features = no_topics.blend_features;
  EXPECT_EQ(StateFingerprint("blend", no_topics_shared), StateFingerprint("blend", no_topics));
}

TEST(StateStoreTest, CorruptUserValueIsDataLossNamingTheKey) {
  Fixture f;
  auto store = StoreWithState(FreshDir("corrupt_user"), f);
  auto batch = store->NewBatch();
  batch->PutUser(3, std::string("\x01\x02u3garbage", 11));
  ASSERT_TRUE(store->Write(batch.get()).ok());
  auto l = f.NewLearner("bpr");
  const absl::Status s = engine::LoadLearner(*store, *l);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(s.message().find("users key 3"), absl::string_view::npos) << s;
}

TEST(StateStoreTest, UnknownRowFormatVersionIsDataLoss) {
  Fixture f;
  auto store = StoreWithState(FreshDir("version"), f);
  auto batch = store->NewBatch();
  batch->PutItem(2, std::string("\x09whatever"));
  ASSERT_TRUE(store->Write(batch.get()).ok());
  auto l = f.NewLearner("bpr");
  const absl::Status s = engine::LoadLearner(*store, *l);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(s.message().find("items key 2"), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("unknown format version 9"), absl::string_view::npos) << s;
}

TEST(StateStoreTest, TruncatedHistoryIsDataLoss) {
  Fixture f;
  auto store = StoreWithState(FreshDir("history"), f);
  auto batch = store->NewBatch();
  batch->PutHistory(1, std::string("\x01\x05", 2));
  ASSERT_TRUE(store->Write(batch.get()).ok());
  auto l = f.NewLearner("bpr");
  const absl::Status s = engine::LoadLearner(*store, *l);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(s.message().find("history key 1"), absl::string_view::npos) << s;
}

TEST(StateStoreTest, RowBeyondTheStoredCountIsDataLoss) {
  Fixture f;
  const std::string dir = FreshDir("beyond");
  auto store = StoreWithState(dir, f);
  std::string item;
  {
    auto l = f.NewLearner("bpr");
    ASSERT_TRUE(engine::LoadLearner(*store, *l).ok());
    l->EncodeItem(0, &item);  // a well-formed value, at a row that cannot exist
  }
  auto batch = store->NewBatch();
  batch->PutItem(100000, item);
  ASSERT_TRUE(store->Write(batch.get()).ok());
  auto l = f.NewLearner("bpr");
  const absl::Status s = engine::LoadLearner(*store, *l);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(s.message().find("items key 100000"), absl::string_view::npos) << s;
}

// A value a model's encoder cannot write (here a NaN in an item's vector) refuses the load with
// DataLoss naming the key and what is wrong.
TEST(StateStoreTest, PoisonedItemRowIsDataLoss) {
  Fixture f;
  auto store = StoreWithState(FreshDir("poisoned"), f);
  std::string item;
  {
    auto l = f.NewLearner("bpr");
    ASSERT_TRUE(engine::LoadLearner(*store, *l).ok());
    l->EncodeItem(2, &item);
  }
  // The value: version, id and popularity (length-prefixed), then bpr's part: the vector first.
  const size_t id_size = static_cast<uint8_t>(item[1]);
  const size_t popularity_size = static_cast<uint8_t>(item[2 + id_size]);
  const size_t vector = 3 + id_size + popularity_size;
  const float nan = std::nanf("");
  std::memcpy(&item[vector + 4 * 5], &nan, sizeof(nan));
  auto batch = store->NewBatch();
  batch->PutItem(2, item);
  ASSERT_TRUE(store->Write(batch.get()).ok());
  auto l = f.NewLearner("bpr");
  const absl::Status s = engine::LoadLearner(*store, *l);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(s.message().find("items key 2"), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("vector[5] is nan"), absl::string_view::npos) << s;
}

// The store's database opened with RocksDB directly (every column family of the current
// layout), to change it behind the store's back; closed when it goes.
struct RawDb {
  explicit RawDb(const std::string& dir) {
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    for (const char* name : {"default", "users", "history", "items", "meta", "catalog"}) {
      families.emplace_back(name, rocksdb::ColumnFamilyOptions());
    }
    rocksdb::DB* opened = nullptr;
    if (rocksdb::DB::Open(rocksdb::DBOptions(), dir, families, &handles, &opened).ok()) {
      db.reset(opened);
    }
  }
  ~RawDb() {
    for (auto* h : handles) {
      if (db != nullptr) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    }
  }
  bool ok() const { return db != nullptr; }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  std::unique_ptr<rocksdb::DB> db;
};

TEST(StateStoreTest, UnknownStoreLayoutVersionIsRefusedAtOpen) {
  Fixture f;
  const std::string dir = FreshDir("layout");
  StoreWithState(dir, f).reset();
  {
    // Rewrite meta "format" behind the store's back, as a future version would have.
    RawDb raw(dir);
    ASSERT_TRUE(raw.ok());
    ASSERT_TRUE(raw.db->Put(rocksdb::WriteOptions(), raw.handles[4], "format", "\x07").ok());
  }
  auto store = StateStore::Open(dir, StateStore::Options{});
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(absl::IsDataLoss(store.status())) << store.status();
  EXPECT_NE(store.status().message().find("layout version 7"), absl::string_view::npos);
}

TEST(StateStoreTest, AStoreFromBeforeTheCatalogOpensAndGainsOne) {
  Fixture f;
  const std::string dir = FreshDir("no_catalog");
  StoreWithState(dir, f).reset();
  {
    // Drop the catalog family, as a store written before it existed lacks it.
    RawDb raw(dir);
    ASSERT_TRUE(raw.ok());
    ASSERT_TRUE(raw.db->DropColumnFamily(raw.handles[5]).ok());
  }
  int visited = 0;
  const auto count = [&](absl::string_view, absl::string_view) {
    ++visited;
    return absl::OkStatus();
  };
  {
    // A read-only view (inspect, an offline export) opens it as it is: no catalog.
    StateStore::Options read_only;
    read_only.read_only = true;
    auto store = StateStore::Open(dir, read_only);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_TRUE((*store)->LoadCatalog(count).ok());
    EXPECT_EQ(visited, 0);
  }
  // A writable open creates the family; entries are written and read back.
  auto store = StateStore::Open(dir, StateStore::Options{});
  ASSERT_TRUE(store.ok()) << store.status();
  auto batch = (*store)->NewBatch();
  batch->PutCatalogItem("i1", "entry one");
  batch->PutCatalogItem("i0", "entry zero");
  ASSERT_TRUE((*store)->Write(batch.get()).ok());
  std::vector<std::string> seen;
  ASSERT_TRUE((*store)
                  ->LoadCatalog([&](absl::string_view item, absl::string_view entry) {
                    seen.push_back(absl::StrCat(item, "=", entry));
                    return absl::OkStatus();
                  })
                  .ok());
  const std::vector<std::string> expected = {"i0=entry zero", "i1=entry one"};
  EXPECT_EQ(seen, expected);
}

// A writer that fails its first `failures` writes, and tears the one after (writes half of it,
// then reports an error), before behaving.
class FaultyWriter : public BatchWriter {
 public:
  FaultyWriter(StateStore* store, int failures, bool tear)
      : store_(store), failures_(failures), tear_(tear) {}
  using BatchWriter::NewBatch;
  std::unique_ptr<StateBatch> NewBatch(size_t expected_bytes) override {
    return store_->NewBatch(expected_bytes);
  }
  absl::Status Write(StateBatch* batch) override {
    ++attempts;
    if (failures_ > 0) {
      --failures_;
      return absl::UnavailableError("injected: disk unavailable");
    }
    if (tear_) {
      tear_ = false;
      const absl::Status s = store_->WritePrefix(batch, batch->ops() / 2);
      if (!s.ok()) return s;
      return absl::DataLossError("injected: torn write");
    }
    return store_->Write(batch);
  }
  int attempts = 0;

 private:
  StateStore* store_;
  int failures_;
  bool tear_;
};

TEST(PersisterTest, FailedAndTornWritesAreRetriedUntilTheStateIsComplete) {
  Fixture f;
  const std::string dir = FreshDir("faulty");
  auto l = f.NewLearner("hybrid");
  engine::LearnerRows rows(*l);
  auto events = MakeEvents(3000, 80, 200, 11);
  stream::AppliedPositions positions;
  {
    auto store = OpenStore(dir);
    FaultyWriter writer(store.get(), /*failures=*/3, /*tear=*/true);
    Persister::Options options;
    options.min_backoff = absl::Milliseconds(1);
    Persister persister(&writer, options, 0);
    persister.Start();
    persister.WriteIdentity("hybrid", f.config.dim, StateFingerprint("hybrid", f.config), "");
    for (size_t begin = 0; begin < events.size(); begin += 1000) {
      l->ApplyBatch(absl::MakeConstSpan(events).subspan(begin, 1000));
      positions.Set(0, 0, static_cast<int64_t>(begin + 999));
      persister.MaybeFlush(rows, positions, {"memory:test"}, /*force=*/true);
    }
    ASSERT_TRUE(persister.Flush(rows, positions, {"memory:test"}, absl::Seconds(30)).ok());
    const PersisterStats stats = persister.stats();
    EXPECT_EQ(stats.write_errors, 4);  // three failures and one torn write
    EXPECT_EQ(stats.events_persisted, 3000);
    EXPECT_TRUE(stats.last_error.empty());
    EXPECT_GE(writer.attempts, 5);
  }
  auto store = OpenStore(dir);
  auto loaded = f.NewLearner("hybrid");
  ASSERT_TRUE(engine::LoadLearner(*store, *loaded).ok());
  ExpectSameState(*l, *loaded);
  auto meta = store->ReadMeta();
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->positions.at(0).offset, 2999);
}

// The writer thread runs from Start() to Stop(): nothing is written before Start(), both calls are
// idempotent, and Start() after Stop() starts nothing.
TEST(PersisterTest, WritesOnlyBetweenStartAndStop) {
  Fixture f;
  auto l = f.NewLearner("bpr");
  l->ApplyBatch(MakeEvents(200, 20, 30, 3));
  auto store = OpenStore(FreshDir("persister_start_stop"));
  stream::AppliedPositions positions;
  positions.Set(0, 0, 199);
  engine::LearnerRows rows(*l);
  {
    Persister persister(store.get(), Persister::Options{}, 0);
    const absl::Status before =
        persister.Flush(rows, positions, {"memory:test"}, absl::Milliseconds(300));
    EXPECT_TRUE(absl::IsDeadlineExceeded(before)) << before;
    EXPECT_EQ(persister.stats().batches_written, 0);
    persister.Start();
    persister.Start();
    ASSERT_TRUE(persister.Flush(rows, positions, {"memory:test"}, absl::Seconds(30)).ok());
    EXPECT_EQ(persister.stats().events_persisted, 200);
    persister.Stop();
    persister.Stop();
    persister.Start();  // stopped for good
    l->ApplyBatch(MakeEvents(50, 20, 30, 4));
    positions.Set(0, 0, 249);
    EXPECT_TRUE(absl::IsDeadlineExceeded(
        persister.Flush(rows, positions, {"memory:test"}, absl::Milliseconds(300))));
  }
  auto meta = store->ReadMeta();
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->events_applied, 200);
}

TEST(PersisterTest, ExpiredUsersAreDeletedAndTheirRowsReused) {
  Fixture f;
  f.config.user_ttl_s = 100;  // event time
  const std::string dir = FreshDir("ttl");
  auto l = f.NewLearner("bpr");
  std::vector<stream::Event> events;
  for (int u = 0; u < 10; ++u) {
    stream::Event e;
    e.user = absl::StrCat("old", u);
    e.item = absl::StrCat("i", u % 3);
    e.ts_ms = 1'000'000;
    events.push_back(e);
  }
  l->ApplyBatch(events);
  auto store = OpenStore(dir);
  Persister persister(store.get(), Persister::Options{}, 0);
  persister.Start();
  persister.WriteIdentity("bpr", f.config.dim, StateFingerprint("bpr", f.config), "");
  stream::AppliedPositions positions;
  FlushAll(persister, *l, positions);
  // Much later, new users arrive; the old ones expire and their rows are reused.
  events.clear();
  for (int u = 0; u < 4; ++u) {
    stream::Event e;
    e.user = absl::StrCat("new", u);
    e.item = "i9";
    e.ts_ms = 1'000'000 + 500'000;
    events.push_back(e);
  }
  for (const auto& e : events) l->Apply(e);
  EXPECT_EQ(l->ExpireUsers(1'000'000 + 500'000), 0);  // already expired while applying
  EXPECT_EQ(l->users_expired(), 10);
  EXPECT_EQ(l->users().live(), 4);
  EXPECT_LT(l->users().size(), 14);  // rows were reused
  EXPECT_EQ(l->users().Find("old3"), learner::IdDictionary::kMissing);
  FlushAll(persister, *l, positions);
  auto meta = store->ReadMeta();
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->users, 4);
  auto loaded = f.NewLearner("bpr");
  ASSERT_TRUE(engine::LoadLearner(*store, *loaded).ok());
  EXPECT_EQ(loaded->users().live(), 4);
  EXPECT_EQ(loaded->users().Find("old0"), learner::IdDictionary::kMissing);
  for (int u = 0; u < 4; ++u) {
    const std::string id = absl::StrCat("new", u);
    ASSERT_EQ(loaded->users().Find(id), l->users().Find(id));
    EXPECT_EQ(loaded->history(loaded->users().Find(id)).events(), 1);
  }
  // A new user after the load takes a free row, if any, without clashing.
  stream::Event e;
  e.user = "newest";
  e.item = "i1";
  e.ts_ms = 1'500'001;
  loaded->Apply(e);
  EXPECT_EQ(loaded->users().live(), 5);
}

TEST(LearnerAdmissionTest, IdsJoinOnTheirNthEvent) {
  Fixture f;
  f.config.admit_min_events = 3;
  auto l = f.NewLearner("bpr");
  auto event = [](const std::string& user, const std::string& item) {
    stream::Event e;
    e.user = user;
    e.item = item;
    e.ts_ms = 1;
    return e;
  };
  l->Apply(event("a", "x"));
  l->Apply(event("a", "x"));
  EXPECT_EQ(l->users().Find("a"), learner::IdDictionary::kMissing);
  EXPECT_EQ(l->events_filtered(), 2);
  l->Apply(event("a", "x"));  // the third occurrence of both
  EXPECT_NE(l->users().Find("a"), learner::IdDictionary::kMissing);
  EXPECT_NE(l->items().Find("x"), learner::IdDictionary::kMissing);
  EXPECT_EQ(l->events_applied(), 1);
}

TEST(IdDictionaryEraseTest, ErasedIdsVanishAndOthersStayFindable) {
  learner::IdDictionary d;
  bool inserted = false;
  for (int i = 0; i < 5000; ++i) d.FindOrInsert(absl::StrCat("id", i), &inserted);
  for (int i = 0; i < 5000; i += 3) d.Erase(d.Find(absl::StrCat("id", i)));
  for (int i = 0; i < 5000; ++i) {
    const int32_t row = d.Find(absl::StrCat("id", i));
    if (i % 3 == 0) {
      EXPECT_EQ(row, learner::IdDictionary::kMissing) << i;
    } else {
      ASSERT_NE(row, learner::IdDictionary::kMissing) << i;
      EXPECT_EQ(d.ExternalId(row), absl::StrCat("id", i));
    }
  }
  const int32_t before = d.size();
  const int32_t row = d.FindOrInsert("fresh", &inserted);
  EXPECT_TRUE(inserted);
  EXPECT_LT(row, before);  // a freed row
  EXPECT_EQ(d.size(), before);
  EXPECT_EQ(d.live(), 5000 - 1667 + 1);
}

}  // namespace
}  // namespace freshet::store
