// Row codecs read values from outside the process (a store on disk, the model topic, Redis). For
// every model: a value its encoder cannot write — a NaN or an infinity in any float, a parameter
// (an embedding entry, a bias, a ranker weight) beyond kMaxParameter (1e8), a negative
// accumulator, count or time, a truncated value or one with trailing bytes — is refused with
// DataLoss and leaves the row exactly as it was, every part of a composite row included; valid
// rows round-trip. Popularity and user histories likewise. Through the Learner, a serving replica
// refuses poisoned followed item rows and user states and keeps answering as before.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/byte_codec.h"
#include "common/random.h"
#include "config/config.h"
#include "gtest/gtest.h"
#include "kernels/cpu_backend.h"
#include "learner/blend_model.h"
#include "learner/bpr_model.h"
#include "learner/cooc_model.h"
#include "learner/hybrid_model.h"
#include "learner/ials_model.h"
#include "learner/id_dictionary.h"
#include "learner/learner.h"
#include "learner/popularity.h"
#include "learner/user_history.h"
#include "stream/event_validation.h"
#include "tests/learner/generated_events.h"

namespace freshet::learner {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

config::Config SmallConfig() {
  config::Config c;
  c.dim = 16;
  return c;
}

// "blend-all": the blend with every component (the profile table's, topics' own table's and the
// ials parts end its rows) and all three weight sets.
config::Config ConfigFor(const std::string& algorithm) {
  config::Config c = SmallConfig();
  // A loaded state refits ease (it is not persisted): fitted after every event, the model's
  // latest fit is of the table it hands over.
  if (absl::StartsWith(algorithm, "blend")) {
    c.blend_ease_refit = 1;
    c.blend_topics_items = 64;  // topics is fitted with ease, over few items to keep it quick
  }
  if (algorithm == "blend-all") {
    c.blend_features =
        "bpr,cooc,history,transitions,popularity,trending,last,long_term,profile,ials,ease,topics";
    c.blend_cold_events = 5;
    c.blend_session_start = true;
  }
  return c;
}
bool IsBlend(const std::string& algorithm) { return absl::StartsWith(algorithm, "blend"); }

std::unique_ptr<Model> NewModel(const std::string& algorithm, const config::Config& config,
                                const Popularity* popularity, const kernels::Backend* backend) {
  if (algorithm == "bpr") return std::make_unique<BprModel>(config, popularity, backend);
  if (algorithm == "ials") return std::make_unique<IalsModel>(config, popularity, backend);
  if (algorithm == "cooc") return std::make_unique<CoocModel>(config, popularity, backend);
  if (algorithm == "hybrid") return std::make_unique<HybridModel>(config, popularity, backend);
  auto features = BlendModel::ParseFeatures(config.blend_features);
  EXPECT_TRUE(features.ok()) << features.status();
  return std::make_unique<BlendModel>(config, *features, popularity, backend);
}

// A field of an encoded row, at a byte offset, and what the encoder can write there.
enum class Kind {
  kFloat,
  kNonNegativeFloat,
  kNonNegativeInt32,
  kNonNegativeInt64,
  kTime,
  kItemRow,  // an item row of the fixture's catalog (RowCodecTest::kItems rows)
};

// Rows in the fixture's catalog.
constexpr int32_t kCatalogRows = 12;
struct Field {
  std::string name;
  size_t offset;
  Kind kind;
};

// Values the encoder cannot write into a field of that kind, as the bytes that replace it.
std::vector<std::string> Poisons(Kind kind) {
  const auto bytes = [](auto v) {
    return std::string(reinterpret_cast<const char*>(&v), sizeof(v));
  };
  switch (kind) {
    case Kind::kFloat:  // a parameter: finite values beyond kMaxParameter are refused too
      return {bytes(kNaN), bytes(kInf), bytes(-kInf), bytes(1e30f), bytes(-2e8f)};
    case Kind::kNonNegativeFloat:
      return {bytes(kNaN), bytes(kInf), bytes(-kInf), bytes(-1.0f)};
    case Kind::kNonNegativeInt32:
      return {bytes(int32_t{-1})};
    case Kind::kNonNegativeInt64:
      return {bytes(int64_t{-1})};
    case Kind::kTime:
      return {bytes(int64_t{-1}), bytes(stream::kMaxEventTsMs)};
    case Kind::kItemRow:
      return {bytes(int32_t{-1}), bytes(kCatalogRows)};
  }
  return {};
}

uint64_t VarintAt(const std::string& bytes, size_t* at) {
  uint64_t v = 0;
  for (int shift = 0; *at < bytes.size(); shift += 7) {
    const uint8_t b = static_cast<uint8_t>(bytes[(*at)++]);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) break;
  }
  return v;
}

void Floats(const std::string& name, size_t at, size_t n, Kind kind, std::vector<Field>* out) {
  for (size_t i = 0; i < n; ++i)
    out->push_back({absl::StrCat(name, "[", i, "]"), at + 4 * i, kind});
}

// The fields of each part, at `at` in `bytes`; each returns the offset after its part.
size_t BprUser(size_t at, int dim, std::vector<Field>* out) {
  Floats("bpr user vector", at, dim, Kind::kFloat, out);
  out->push_back({"bpr user accumulator", at + 4 * dim, Kind::kNonNegativeFloat});
  return at + 4 * (dim + 1);
}
size_t BprItem(size_t at, int dim, std::vector<Field>* out) {
  Floats("bpr item vector", at, dim, Kind::kFloat, out);
  out->push_back({"bpr item accumulator", at + 4 * dim, Kind::kNonNegativeFloat});
  out->push_back({"bpr bias", at + 4 * dim + 4, Kind::kFloat});
  out->push_back({"bpr bias accumulator", at + 4 * dim + 8, Kind::kNonNegativeFloat});
  return at + 4 * (dim + 3);
}
size_t Session(size_t at, std::vector<Field>* out) {
  out->push_back({"session time", at, Kind::kTime});
  out->push_back({"session length", at + 8, Kind::kNonNegativeInt32});
  return at + 12;
}
// Pairs of (int32 item, non-negative float), after a varint count.
size_t Pairs(const std::string& name, const std::string& bytes, size_t at,
             std::vector<Field>* out) {
  const uint64_t n = VarintAt(bytes, &at);
  for (uint64_t i = 0; i < n; ++i) {
    out->push_back({absl::StrCat(name, " item [", i, "]"), at + 8 * i, Kind::kItemRow});
    out->push_back({absl::StrCat(name, "[", i, "]"), at + 8 * i + 4, Kind::kNonNegativeFloat});
  }
  return at + 8 * n;
}
size_t CoocItem(const std::string& bytes, size_t at, std::vector<Field>* out) {
  out->push_back({"cooc count", at, Kind::kNonNegativeInt64});
  return Pairs("cooc neighbour weight", bytes, at + 8, out);
}
// A length-prefixed part: the offset of its bytes.
size_t Part(const std::string& bytes, size_t* at) {
  const uint64_t n = VarintAt(bytes, at);
  const size_t begin = *at;
  *at += n;
  return begin;
}

std::vector<Field> UserFields(const std::string& algorithm, const std::string& bytes, int dim) {
  std::vector<Field> out;
  size_t at = 0;
  if (algorithm == "bpr") BprUser(0, dim, &out);
  if (algorithm == "ials") Floats("ials user vector", 0, dim, Kind::kFloat, &out);
  if (algorithm == "cooc") Session(0, &out);
  if (algorithm == "hybrid" || IsBlend(algorithm)) {
    BprUser(Part(bytes, &at), dim, &out);
    Session(Part(bytes, &at), &out);
  }
  if (IsBlend(algorithm)) Session(Part(bytes, &at), &out);
  if (algorithm == "blend-all")
    Floats("ials user vector", Part(bytes, &at), dim, Kind::kFloat, &out);
  return out;
}

std::vector<Field> ItemFields(const std::string& algorithm, const std::string& bytes, int dim,
                              int32_t row, size_t features) {
  std::vector<Field> out;
  size_t at = 0;
  if (algorithm == "bpr") BprItem(0, dim, &out);
  if (algorithm == "ials") Floats("ials item vector", 0, dim, Kind::kFloat, &out);
  if (algorithm == "cooc") CoocItem(bytes, 0, &out);
  if (algorithm == "hybrid" || IsBlend(algorithm)) {
    BprItem(Part(bytes, &at), dim, &out);
    const size_t cooc = Part(bytes, &at);
    CoocItem(bytes, cooc, &out);
  }
  if (IsBlend(algorithm)) {
    out.push_back({"transitions total", at, Kind::kNonNegativeFloat});
    at = Pairs("transition count", bytes, at + 4, &out);
    out.push_back({"trending count", at, Kind::kNonNegativeFloat});
    out.push_back({"trending event", at + 4, Kind::kNonNegativeInt64});
    at += 12;
    if (row == 0) {
      EXPECT_EQ(VarintAt(bytes, &at), features);
      for (size_t f = 0; f < features; ++f) {
        out.push_back({absl::StrCat("ranker weight ", f), at + 8 * f, Kind::kFloat});
        out.push_back(
            {absl::StrCat("ranker accumulator ", f), at + 8 * f + 4, Kind::kNonNegativeFloat});
      }
      out.push_back({"ranker steps", at + 8 * features, Kind::kNonNegativeInt64});
      at += 8 * features + 8;
    }
    if (algorithm == "blend-all") {
      CoocItem(bytes, Part(bytes, &at), &out);  // the profile table
      CoocItem(bytes, Part(bytes, &at), &out);  // topics' own table
      Floats("ials item vector", Part(bytes, &at), dim, Kind::kFloat, &out);
    }
  }
  return out;
}

std::string Poisoned(std::string bytes, const Field& field, const std::string& poison) {
  EXPECT_LE(field.offset + poison.size(), bytes.size()) << field.name;
  bytes.replace(field.offset, poison.size(), poison);
  return bytes;
}

// Damaged framing: trailing bytes, and cut short.
std::vector<std::string> Damaged(const std::string& bytes) {
  return {bytes + "x", bytes + std::string(4, '\0'), bytes.substr(0, bytes.size() - 1),
          bytes.substr(0, bytes.size() / 2)};
}

// One model learning from events of kUsers users on kItems items (every row exists from the
// start), with the popularity the Learner would keep beside it.
class RowCodecTest : public ::testing::TestWithParam<std::string> {
 protected:
  static constexpr int32_t kUsers = 8;
  static constexpr int32_t kItems = kCatalogRows;

  void SetUp() override {
    model_ = NewModel(GetParam(), config_, &popularity_, &cpu_);
    model_->Grow(kUsers, kItems);
    popularity_.Resize(kItems);
    recent_.resize(kUsers);
    Learn(400, 1);
  }

  void Learn(int n, uint64_t seed) {
    Rng rng(seed);
    for (int i = 0; i < n; ++i) {
      const int32_t user = static_cast<int32_t>(rng.Next() % kUsers);
      const int32_t item = static_cast<int32_t>(rng.Next() % kItems);
      LearnEvent(user, item);
    }
  }
  void LearnEvent(int32_t user, int32_t item) {
    std::vector<int32_t>& recent = recent_[user];
    model_->Learn(Interaction{user, item, 1.0f, ts_, recent, kItems});
    model_->Flush();
    popularity_.Add(item, 1.0f, ts_);
    recent.push_back(item);
    if (recent.size() > 20) recent.erase(recent.begin());
    ts_ += 1000;
    ++events_;
  }

  std::string User(const Model& model, int32_t row) const {
    std::string out;
    model.EncodeUser(row, &out);
    return out;
  }
  std::string Item(const Model& model, int32_t row) const {
    std::string out;
    model.EncodeItem(row, &out);
    return out;
  }
  std::vector<float> Scores(const Model& model, int32_t user) const {
    std::vector<float> scores(kItems);
    model.ScoreAll(UserQuery{user, recent_[user], {}}, absl::MakeSpan(scores));
    return scores;
  }
  // The ranker's weights: one per feature in each weight set.
  size_t Features() const {
    auto features = BlendModel::ParseFeatures(config_.blend_features);
    const size_t sets =
        1 + (config_.blend_cold_events > 0 ? 1 : 0) + (config_.blend_session_start ? 1 : 0);
    return features.ok() ? features->size() * sets : 0;
  }

  // Decodes `value` into a row: it must be refused with DataLoss naming the row, and leave the
  // row's encoding as it was.
  void ExpectRefused(bool user, int32_t row, const std::string& value, const std::string& what) {
    const std::string before = user ? User(*model_, row) : Item(*model_, row);
    std::vector<absl::Status> results;
    if (user) {
      results.push_back(model_->DecodeUser(row, value));
    } else {
      results.push_back(model_->DecodeItem(row, value));
      results.push_back(model_->DecodeServedItem(row, value));
    }
    for (const absl::Status& s : results) {
      EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << what << ": " << s;
      EXPECT_TRUE(absl::StrContains(s.message(), absl::StrCat("row ", row))) << what << ": " << s;
    }
    EXPECT_EQ(user ? User(*model_, row) : Item(*model_, row), before) << what;
  }

  const config::Config config_ = ConfigFor(GetParam());
  const kernels::CpuBackend cpu_{};
  Popularity popularity_{0};
  std::unique_ptr<Model> model_;
  std::vector<std::vector<int32_t>> recent_;
  int64_t ts_ = 1'700'000'000'000;
  int64_t events_ = 0;
};

TEST_P(RowCodecTest, PoisonedValuesAreRefusedAndLeaveTheRowAsItWas) {
  const std::string user = User(*model_, 0);
  const std::string items[2] = {Item(*model_, 0), Item(*model_, 1)};
  // The rows move on, so that a row decoded in part would differ from the row as it is now.
  Learn(200, 2);
  for (int32_t item : {0, 1, 0, 1}) LearnEvent(0, item);
  ASSERT_NE(User(*model_, 0), user);
  ASSERT_NE(Item(*model_, 0), items[0]);
  ASSERT_NE(Item(*model_, 1), items[1]);

  const std::vector<Field> user_fields = UserFields(GetParam(), user, config_.dim);
  ASSERT_FALSE(user_fields.empty());
  for (const Field& field : user_fields) {
    for (const std::string& poison : Poisons(field.kind)) {
      ExpectRefused(/*user=*/true, 0, Poisoned(user, field, poison), "user " + field.name);
    }
  }
  for (int32_t row : {0, 1}) {
    const std::vector<Field> fields =
        ItemFields(GetParam(), items[row], config_.dim, row, Features());
    ASSERT_FALSE(fields.empty());
    for (const Field& field : fields) {
      for (const std::string& poison : Poisons(field.kind)) {
        ExpectRefused(/*user=*/false, row, Poisoned(items[row], field, poison),
                      absl::StrCat("item ", row, " ", field.name));
      }
    }
  }
  // The values as they were are taken.
  EXPECT_TRUE(model_->DecodeUser(0, user).ok());
  EXPECT_EQ(User(*model_, 0), user);
  for (int32_t row : {0, 1}) EXPECT_TRUE(model_->DecodeItem(row, items[row]).ok());
}

TEST_P(RowCodecTest, TruncatedOrTrailingBytesAreRefusedAndLeaveTheRowAsItWas) {
  const std::string user = User(*model_, 0);
  const std::string item = Item(*model_, 1);
  Learn(200, 2);
  for (int32_t i : {1, 1}) LearnEvent(0, i);
  for (const std::string& bad : Damaged(user)) {
    ExpectRefused(/*user=*/true, 0, bad, absl::StrCat("user of ", bad.size(), " bytes"));
  }
  for (const std::string& bad : Damaged(item)) {
    ExpectRefused(/*user=*/false, 1, bad, absl::StrCat("item of ", bad.size(), " bytes"));
  }
}

// Whatever the damage (a value cut anywhere, any byte overwritten), a row is taken whole or not
// at all.
TEST_P(RowCodecTest, ADamagedValueIsTakenWholeOrNotAtAll) {
  const std::string user = User(*model_, 0);
  const std::string item = Item(*model_, 1);
  Learn(200, 2);
  for (int32_t i : {1, 1}) LearnEvent(0, i);
  const auto check = [&](bool is_user, int32_t row, const std::string& bad,
                         const std::string& what) {
    const std::string before = is_user ? User(*model_, row) : Item(*model_, row);
    const absl::Status s = is_user ? model_->DecodeUser(row, bad) : model_->DecodeItem(row, bad);
    if (s.ok()) {
      // Taken (a damage the format cannot tell from a valid row): put the row back.
      ASSERT_TRUE(is_user ? model_->DecodeUser(row, before).ok()
                          : model_->DecodeItem(row, before).ok());
      return;
    }
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << what << ": " << s;
    EXPECT_EQ(is_user ? User(*model_, row) : Item(*model_, row), before) << what;
  };
  for (const auto& [is_user, row, value] :
       {std::tuple<bool, int32_t, std::string>{true, 0, user}, {false, 1, item}}) {
    for (size_t n = 0; n < value.size(); ++n) {
      check(is_user, row, value.substr(0, n), absl::StrCat("cut to ", n));
    }
    for (size_t at = 0; at < value.size(); ++at) {
      std::string bad = value;
      bad[at] = static_cast<char>(0xff);
      check(is_user, row, bad, absl::StrCat("byte ", at, " = 0xff"));
    }
  }
}

// Every row decoded into a second model: it scores every user exactly as the first.
TEST_P(RowCodecTest, ValidRowsRoundTrip) {
  std::unique_ptr<Model> copy = NewModel(GetParam(), config_, &popularity_, &cpu_);
  copy->Grow(kUsers, kItems);
  for (int32_t row = 0; row < kUsers; ++row) {
    ASSERT_TRUE(copy->DecodeUser(row, User(*model_, row)).ok()) << row;
    EXPECT_EQ(User(*copy, row), User(*model_, row)) << row;
  }
  for (int32_t row = 0; row < kItems; ++row) {
    ASSERT_TRUE(copy->DecodeItem(row, Item(*model_, row)).ok()) << row;
  }
  copy->FinishLoad(kUsers, kItems, events_);
  for (int32_t row = 0; row < kUsers; ++row) {
    EXPECT_EQ(Scores(*copy, row), Scores(*model_, row)) << "user " << row;
  }
  if (GetParam() == "bpr" || GetParam() == "ials") {  // no hash maps: the same bytes
    for (int32_t row = 0; row < kItems; ++row) EXPECT_EQ(Item(*copy, row), Item(*model_, row));
  }
}

INSTANTIATE_TEST_SUITE_P(EveryModel, RowCodecTest,
                         ::testing::Values("bpr", "ials", "cooc", "hybrid", "blend", "blend-all"));

// An item's transitions total sums every transition out of it: past 2^24, where adding 1 to a
// float changes nothing (a popular item of a busy stream gets there in days), it goes on counting.
class BlendTotalsTest : public RowCodecTest {};

TEST_P(BlendTotalsTest, ATransitionsTotalPast2To24GoesOnCounting) {
  constexpr int32_t kFrom = 3, kTo = 5;
  const std::string item = Item(*model_, kFrom);
  const std::vector<Field> fields = ItemFields(GetParam(), item, config_.dim, kFrom, Features());
  const auto total = std::find_if(fields.begin(), fields.end(),
                                  [](const Field& f) { return f.name == "transitions total"; });
  ASSERT_NE(total, fields.end());
  const float big = 16777216.0f;  // 2^24
  ASSERT_EQ(big + 1.0f, big);     // what a float total would do
  ASSERT_TRUE(model_
                  ->DecodeItem(kFrom, Poisoned(item, *total,
                                               std::string(reinterpret_cast<const char*>(&big),
                                                           sizeof(big))))
                  .ok());
  // Ten transitions of weight 1 out of kFrom, each a new session's first pair.
  for (int i = 0; i < 10; ++i) {
    const int32_t user = i % kUsers;
    recent_[user].clear();
    ts_ += int64_t{24} * 3600 * 1000;
    LearnEvent(user, kFrom);
    LearnEvent(user, kTo);
  }
  const std::string after = Item(*model_, kFrom);
  float got = 0;
  std::memcpy(&got, after.data() + total->offset, sizeof(got));
  EXPECT_EQ(got, big + 10.0f);
}

INSTANTIATE_TEST_SUITE_P(Blend, BlendTotalsTest, ::testing::Values("blend", "blend-all"));

// A replicated bpr item (from other processes: Kafka, NCCL) is checked like a stored row: a
// non-finite value anywhere, a parameter beyond kMaxParameter or a negative accumulator is
// refused; the row as read is taken. Both context layouts.
TEST(ReplicaItemTest, PoisonedValuesAreRefused) {
  for (bool tied : {true, false}) {
    config::Config config = SmallConfig();
    config.bpr_tied_context = tied;
    const kernels::CpuBackend cpu;
    Popularity popularity(0.0);
    popularity.Resize(kCatalogRows);
    BprModel model(config, &popularity, &cpu);
    model.Grow(4, kCatalogRows);
    const int d = config.dim;
    const int width = model.ReplicaItemWidth();
    std::vector<float> row(static_cast<size_t>(width));
    model.ReadReplicaItem(2, /*initial=*/true, row.data());
    ASSERT_TRUE(model.CheckReplicaItem(row.data()).ok());
    // Each named slot of [vector, bias, accumulator, bias accumulator, (context, its accumulator)]
    // with the values it must refuse.
    std::vector<std::pair<int, std::vector<float>>> slots = {
        {0, {kNaN, kInf, 1e30f, -2e8f}}, {d - 1, {-1e30f}}, {d, {kNaN, 1e30f}},
        {d + 1, {-1.0f, kInf}},          {d + 2, {-1.0f}},
    };
    if (!tied) {
      slots.push_back({d + 3, {1e30f, kNaN}});
      slots.push_back({2 * d + 3, {-1.0f}});
    }
    for (const auto& [slot, poisons] : slots) {
      for (float poison : poisons) {
        std::vector<float> bad = row;
        bad[static_cast<size_t>(slot)] = poison;
        const absl::Status s = model.CheckReplicaItem(bad.data());
        EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << "slot " << slot << " = " << poison;
      }
    }
  }
}

// Popularity's item and global values: what the encoder cannot write is refused, and nothing
// changes.
TEST(PopularityCodecTest, PoisonedValuesAreRefusedAndChangeNothing) {
  for (double half_life_s : {0.0, 3600.0}) {
    Popularity popularity(half_life_s);
    popularity.Resize(4);
    int64_t ts = 1'700'000'000'000;
    for (int i = 0; i < 20; ++i) popularity.Add(i % 3, 1.0f + i, ts += 1000);
    std::string item, globals;
    popularity.EncodeItem(1, &item);
    popularity.EncodeGlobals(&globals);
    popularity.Add(2, 5.0f, ts += 1000);
    popularity.Add(2, 5.0f, ts += 1000);
    const auto encoded_item = [&] {
      std::string out;
      popularity.EncodeItem(2, &out);
      return out;
    };
    const auto encoded_globals = [&] {
      std::string out;
      popularity.EncodeGlobals(&out);
      return out;
    };
    const std::string item_before = encoded_item(), globals_before = encoded_globals();
    ASSERT_NE(item_before, item);
    ASSERT_NE(globals_before, globals);

    // An item: count (int64), score (float), latest time (int64), first-event score (float).
    std::vector<std::string> bad_items = Damaged(item);
    for (const Field& field :
         {Field{"count", 0, Kind::kNonNegativeInt64}, Field{"score", 8, Kind::kNonNegativeFloat},
          Field{"time", 12, Kind::kTime}, Field{"first", 20, Kind::kNonNegativeFloat}}) {
      for (const std::string& poison : Poisons(field.kind)) {
        bad_items.push_back(Poisoned(item, field, poison));
      }
    }
    for (const std::string& bad : bad_items) {
      EXPECT_FALSE(Popularity::CheckItem(bad));
      EXPECT_FALSE(popularity.DecodeItem(2, bad));
      EXPECT_EQ(encoded_item(), item_before);
    }
    // The globals: reference time (int64), scale (double), started (u8), total (int64).
    std::vector<std::string> bad_globals = Damaged(globals);
    const auto with = [&](size_t at, auto v) {
      std::string out = globals;
      out.replace(at, sizeof(v), std::string(reinterpret_cast<const char*>(&v), sizeof(v)));
      return out;
    };
    for (double scale : {std::nan(""), HUGE_VAL, 0.0, -1.0}) bad_globals.push_back(with(8, scale));
    bad_globals.push_back(with(0, int64_t{-1}));
    bad_globals.push_back(with(0, stream::kMaxEventTsMs));
    bad_globals.push_back(with(16, uint8_t{2}));
    bad_globals.push_back(with(17, int64_t{-1}));
    for (const std::string& bad : bad_globals) {
      EXPECT_FALSE(popularity.DecodeGlobals(bad));
      EXPECT_EQ(encoded_globals(), globals_before);
    }
    EXPECT_TRUE(popularity.DecodeItem(2, item));
    EXPECT_TRUE(popularity.DecodeGlobals(globals));
    EXPECT_EQ(encoded_item(), item);
    EXPECT_EQ(encoded_globals(), globals);
  }
}

TEST(UserHistoryCodecTest, PoisonedValuesAreRefusedAndChangeNothing) {
  UserHistory source, target;
  for (int i = 0; i < 10; ++i) {
    source.Add(i, 20, 100);
    source.CountEvent(1'700'000'000'000 + i);
    target.Add(9 - i / 2, 20, 100);
    target.CountEvent(1'700'000'000'000 + 100 * i);
  }
  std::string value, before;
  source.Encode(20, &value);
  target.Encode(20, &before);
  std::vector<std::string> bad = Damaged(value);
  const auto with = [&](size_t at, int64_t v) {
    std::string out = value;
    out.replace(at, sizeof(v), std::string(reinterpret_cast<const char*>(&v), sizeof(v)));
    return out;
  };
  bad.push_back(with(0, -1));                     // events
  bad.push_back(with(8, -1));                     // latest time
  bad.push_back(with(8, stream::kMaxEventTsMs));  // latest time
  for (const std::string& b : bad) {
    EXPECT_FALSE(target.Decode(b, 10));
    std::string after;
    target.Encode(20, &after);
    EXPECT_EQ(after, before);
  }
  EXPECT_FALSE(target.Decode(value, 5));  // items beyond the catalog
  EXPECT_TRUE(target.Decode(value, 10));
}

// --- Through the Learner: a serving replica -----------------------------------------------

// The answers a learner gives a few users and one it does not know, scores bit for bit.
std::string Answers(const Learner& learner, const std::vector<std::string>& users) {
  std::string out;
  for (const std::string& user : users) {
    Recommendation rec;
    const absl::Status s = learner.Recommend(user, 10, /*exclude_seen=*/true, &rec);
    absl::StrAppend(&out, user, s.ok() ? "" : s.ToString(), rec.personalized ? " p:" : " -:");
    for (const kernels::ScoredItem& item : rec.items) {
      uint32_t bits;
      std::memcpy(&bits, &item.score, sizeof(bits));
      absl::StrAppend(&out, " ", learner.items().ExternalId(item.item), "=", bits);
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}

// Where the model's part of a Learner item value (EncodeItem) starts, and of a user value.
size_t ItemModelPart(const std::string& value) {
  ByteReader r(value);
  uint8_t version = 0;
  absl::string_view id, popularity;
  EXPECT_TRUE(r.Get(&version) && r.GetStringView(&id) && r.GetStringView(&popularity));
  return static_cast<size_t>(popularity.data() + popularity.size() - value.data());
}
size_t ItemPopularityPart(const std::string& value) {
  ByteReader r(value);
  uint8_t version = 0;
  absl::string_view id, popularity;
  EXPECT_TRUE(r.Get(&version) && r.GetStringView(&id) && r.GetStringView(&popularity));
  return static_cast<size_t>(popularity.data() - value.data());
}

// The first field of the model's part that the encoder cannot make NaN (or negative).
Field FirstModelField(const std::string& algorithm, const std::string& part, bool user, int dim) {
  const std::vector<Field> fields =
      user ? UserFields(algorithm, part, dim) : ItemFields(algorithm, part, dim, 1, 0);
  for (const Field& f : fields) {
    if (f.kind == Kind::kFloat || f.kind == Kind::kNonNegativeFloat) return f;
  }
  return fields.empty() ? Field{"", 0, Kind::kFloat} : fields.front();
}

class FollowTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FollowTest, PoisonedFollowedRowsAreRefusedAndTheAnswersStayTheSame) {
  const std::string algorithm = GetParam();
  const config::Config config = SmallConfig();
  const kernels::CpuBackend cpu;
  auto leader = *Learner::Create(algorithm, config, &cpu);
  auto replica = *Learner::Create(algorithm, config, &cpu);
  const std::vector<stream::Event> events = GeneratedEvents(4000, 60, 80, 7);
  leader->ApplyBatch(absl::MakeConstSpan(events).subspan(0, 2500));

  std::vector<std::string> users;
  const auto follow_all = [&](int64_t version) {
    std::string globals;
    leader->EncodeGlobals(&globals);
    ASSERT_TRUE(replica->FollowGlobals(globals, version).ok());
    for (int32_t row = 0; row < leader->items().size(); ++row) {
      std::string value;
      leader->EncodeItem(row, &value);
      ASSERT_TRUE(replica->FollowItem(row, value, version).ok()) << row;
    }
    ASSERT_TRUE(replica->FollowItemsDone().ok());
    for (const std::string& user : users) {
      if (leader->users().Find(user) == IdDictionary::kMissing) continue;
      std::string published;
      leader->EncodePublishedUser(leader->users().Find(user), &published);
      ASSERT_TRUE(replica->FollowUser(published).ok()) << user;
    }
  };
  for (int32_t row = 0; row < 6; ++row) users.push_back(leader->users().ExternalId(row));
  follow_all(1);
  users.push_back("nobody");
  const std::string before = Answers(*replica, users);
  ASSERT_EQ(before, Answers(*leader, users));

  // The leader moves on, so that a row taken in part would change the answers.
  leader->ApplyBatch(absl::MakeConstSpan(events).subspan(2500));
  ASSERT_NE(Answers(*leader, users), before);

  const int dim = config.dim;
  for (int32_t row = 0; row < 6; ++row) {
    std::string value;
    leader->EncodeItem(row, &value);
    std::vector<std::string> bad;
    // A poisoned model part, alone and with another row's (valid) popularity: popularity is
    // decoded first and must be put back.
    const size_t model = ItemModelPart(value);
    if (model < value.size()) {
      Field field = FirstModelField(algorithm, value.substr(model), /*user=*/false, dim);
      field.offset += model;
      const std::string poison = Poisons(field.kind)[0];
      bad.push_back(Poisoned(value, field, poison));
      std::string other;
      leader->EncodeItem(row + 10, &other);
      const size_t pop = ItemPopularityPart(value), other_pop = ItemPopularityPart(other);
      std::string spliced = value;
      spliced.replace(pop, model - pop, other.substr(other_pop, ItemModelPart(other) - other_pop));
      ASSERT_EQ(spliced.size(), value.size());
      bad.push_back(Poisoned(spliced, field, poison));
    }
    // A poisoned popularity score (count int64, then the score).
    bad.push_back(Poisoned(value, Field{"score", ItemPopularityPart(value) + 8, Kind::kFloat},
                           Poisons(Kind::kFloat)[0]));
    bad.push_back(value + "x");
    for (const std::string& b : bad) {
      const absl::Status s = replica->FollowItem(row, b, 2);
      EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << "item row " << row << ": " << s;
    }
    ASSERT_TRUE(replica->FollowItemsDone().ok());
  }
  for (size_t u = 0; u + 1 < users.size(); ++u) {
    std::string published;
    leader->EncodePublishedUser(leader->users().Find(users[u]), &published);
    // The published form: version, the user value, the history, the applied time; the user value:
    // version, id, the model's part.
    ByteReader r(published);
    uint8_t version = 0;
    absl::string_view user, history;
    ASSERT_TRUE(r.Get(&version) && r.GetStringView(&user) && r.GetStringView(&history));
    ByteReader ur(user);
    absl::string_view id;
    ASSERT_TRUE(ur.Get(&version) && ur.GetStringView(&id));
    const size_t model = static_cast<size_t>(id.data() + id.size() - user.data());
    std::string poisoned_user(user), poisoned_history(history);
    if (model < user.size()) {
      Field field = FirstModelField(algorithm, poisoned_user.substr(model), /*user=*/true, dim);
      field.offset += model;
      poisoned_user = Poisoned(poisoned_user, field, Poisons(field.kind)[0]);
    } else {
      poisoned_history.replace(1, 8, Poisons(Kind::kNonNegativeInt64)[0]);  // events: -1
    }
    std::string bad;
    ByteWriter w(&bad);
    w.Put(version);
    w.PutString(poisoned_user);
    w.PutString(poisoned_history);
    w.Put(int64_t{0});
    const absl::StatusOr<int32_t> row = replica->FollowUser(bad);
    EXPECT_EQ(row.status().code(), absl::StatusCode::kDataLoss) << users[u] << ": " << row.status();
  }
  EXPECT_EQ(Answers(*replica, users), before);

  // The same rows unpoisoned are taken: the replica answers as the leader does.
  follow_all(2);
  EXPECT_EQ(Answers(*replica, users), Answers(*leader, users));
}

// A learner's round (its globals, then the rows that changed) may reach a replica in more than
// one batch (FollowItemsDone() after each): what the replica derives from the rows (blend's ease
// fit) is derived again from the rows that come late, whether the replica does that work inline
// or defers it, as a LiveModel does.
TEST_P(FollowTest, ARoundInTwoBatchesAnswersAsTheLeaderDoes) {
  const std::string algorithm = GetParam();
  const config::Config config = ConfigFor(algorithm);  // blend: ease fitted after every event
  const kernels::CpuBackend cpu;
  auto leader = *Learner::Create(algorithm, config, &cpu);
  const std::vector<stream::Event> events = GeneratedEvents(3000, 60, 80, 11);
  std::vector<std::string> users;
  for (int32_t u = 0; u < 12; ++u) users.push_back(absl::StrCat("u", u));
  for (const bool defer : {false, true}) {
    auto replica = *Learner::Create(algorithm, config, &cpu);
    replica->set_defer_work(defer);
    const auto run_deferred = [&] {
      if (defer && replica->DeferredWorkPending()) {
        replica->InstallDeferredWork(replica->PrepareDeferredWork());
      }
    };
    int64_t version = 0;
    for (const size_t begin : {size_t{0}, size_t{1500}}) {
      leader->ApplyBatch(absl::MakeConstSpan(events).subspan(begin, 1500));
      ++version;
      std::string globals;
      leader->EncodeGlobals(&globals);
      ASSERT_TRUE(replica->FollowGlobals(globals, version).ok());
      const int32_t rows = leader->items().size();
      for (int32_t row = 0; row < rows; ++row) {
        if (row == rows / 2) {  // the batch ends halfway through the round
          ASSERT_TRUE(replica->FollowItemsDone().ok());
          run_deferred();
        }
        std::string value;
        leader->EncodeItem(row, &value);
        ASSERT_TRUE(replica->FollowItem(row, value, version).ok()) << row;
      }
      ASSERT_TRUE(replica->FollowItemsDone().ok());
      run_deferred();
      for (const std::string& user : users) {
        if (leader->users().Find(user) == IdDictionary::kMissing) continue;
        std::string published;
        leader->EncodePublishedUser(leader->users().Find(user), &published);
        ASSERT_TRUE(replica->FollowUser(published).ok()) << user;
      }
      EXPECT_EQ(Answers(*replica, users), Answers(*leader, users))
          << (defer ? "deferred" : "inline") << ", after " << begin + 1500 << " events";
    }
    leader = *Learner::Create(algorithm, config, &cpu);
  }
}

INSTANTIATE_TEST_SUITE_P(EveryAlgorithm, FollowTest,
                         ::testing::Values("bpr", "ials", "cooc", "hybrid", "blend", "popularity"));

// Globals whose row counts would take more memory than a state may (memory.max_state_mb) are a
// corrupt count: a load and a replica refuse them with DataLoss instead of allocating the tables,
// and the replica keeps answering as before.
TEST(GlobalsTest, RowCountsBeyondTheMemoryLimitAreRefused) {
  config::Config config = SmallConfig();
  config.max_state_mb = 64;
  const kernels::CpuBackend cpu;
  for (const std::string algorithm : {"bpr", "ials", "cooc", "hybrid", "blend", "popularity"}) {
    auto leader = *Learner::Create(algorithm, config, &cpu);
    leader->ApplyBatch(GeneratedEvents(1000, 30, 40, 3));
    std::string globals;
    leader->EncodeGlobals(&globals);
    // format, algorithm, dim, users, items: the item count is an int32 after the user count.
    ByteReader r(globals);
    uint8_t format = 0;
    absl::string_view name;
    ASSERT_TRUE(r.Get(&format) && r.GetStringView(&name));
    const size_t users_at = static_cast<size_t>(name.data() + name.size() - globals.data()) + 4;
    const auto with = [&](size_t at, int32_t count) {
      std::string g = globals;
      std::memcpy(g.data() + at, &count, sizeof(count));
      return g;
    };
    // 2^28 item rows: gigabytes at any dimension.
    const std::string many_items = with(users_at + 4, int32_t{1} << 28);
    const std::string many_users = with(users_at, int32_t{1} << 28);

    auto loading = *Learner::Create(algorithm, config, &cpu);
    for (const std::string& bad : {many_items, many_users}) {
      const absl::Status s = loading->BeginLoad(bad);
      EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << algorithm << ": " << s;
      EXPECT_TRUE(absl::StrContains(s.message(), "memory.max_state_mb")) << s;
    }
    EXPECT_TRUE(loading->BeginLoad(globals).ok()) << algorithm;

    auto replica = *Learner::Create(algorithm, config, &cpu);
    ASSERT_TRUE(replica->FollowGlobals(globals, 1).ok());
    for (int32_t row = 0; row < leader->items().size(); ++row) {
      std::string value;
      leader->EncodeItem(row, &value);
      ASSERT_TRUE(replica->FollowItem(row, value, 1).ok());
    }
    ASSERT_TRUE(replica->FollowItemsDone().ok());
    const std::vector<std::string> users = {leader->users().ExternalId(0), "nobody"};
    const std::string before = Answers(*replica, users);
    const absl::Status s = replica->FollowGlobals(many_items, 2);
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << algorithm << ": " << s;
    ASSERT_TRUE(replica->FollowItemsDone().ok());
    EXPECT_EQ(Answers(*replica, users), before) << algorithm;
    EXPECT_EQ(replica->followed_items(), leader->items().size());
  }
}

// A load refuses a poisoned item row with DataLoss naming it (the store's own test checks the
// same through RocksDB).
TEST(LoadTest, APoisonedItemRowIsRefused) {
  const config::Config config = SmallConfig();
  const kernels::CpuBackend cpu;
  for (const std::string algorithm : {"bpr", "ials", "cooc", "hybrid", "blend"}) {
    auto learner = *Learner::Create(algorithm, config, &cpu);
    learner->ApplyBatch(GeneratedEvents(1000, 30, 40, 3));
    std::string globals, item;
    learner->EncodeGlobals(&globals);
    learner->EncodeItem(2, &item);
    const size_t model = ItemModelPart(item);
    Field field = FirstModelField(algorithm, item.substr(model), /*user=*/false, config.dim);
    field.offset += model;
    auto loading = *Learner::Create(algorithm, config, &cpu);
    ASSERT_TRUE(loading->BeginLoad(globals).ok());
    const absl::Status s = loading->LoadItem(2, Poisoned(item, field, Poisons(field.kind)[0]));
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << algorithm << ": " << s;
    EXPECT_TRUE(absl::StrContains(s.message(), "item row 2")) << s;
    if (field.kind == Kind::kFloat || field.kind == Kind::kNonNegativeFloat) {
      EXPECT_TRUE(absl::StrContains(s.message(), "nan")) << s;
    }
    EXPECT_TRUE(loading->LoadItem(2, item).ok()) << algorithm;
  }
}

}  // namespace
}  // namespace freshet::learner
