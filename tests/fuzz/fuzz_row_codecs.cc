// Fuzz target: the row decoders a serving replica runs on bytes from outside the process (the
// model topic and Redis: Learner::FollowGlobals, FollowItem and FollowUser, hence every model's
// item and user decoders, popularity and user histories). For each algorithm a replica follows a
// small learnt state once. Each input then offers it one value: globals, an item row or a
// published user, either the input's own bytes or a valid value with the input's edits (bytes
// flipped, the value cut short or lengthened). A refused value must be DataLoss
// (FailedPrecondition for globals of another algorithm or dimension) and must leave every answer
// exactly as it was; after an accepted one the replica must still answer. The valid value is
// then followed again (or, after globals that grew the catalog, the pair is built anew), so inputs
// do not build on each other.
//   input: algorithm, kind (globals / item / user), row, mode, then the raw value or the edits
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "config/config.h"
#include "kernels/cpu_backend.h"
#include "learner/learner.h"
#include "stream/event.h"
#include "tests/fuzz/fuzz_check.h"

namespace freshet::learner {
namespace {

// "blend-all": the blend with every component (the profile and ials parts end its rows) and all
// three weight sets.
constexpr const char* kAlgorithms[] = {"bpr",   "ials",       "cooc",     "hybrid",
                                       "blend", "popularity", "blend-all"};
constexpr int kNumAlgorithms = sizeof(kAlgorithms) / sizeof(kAlgorithms[0]);
constexpr int kUsers = 16;
constexpr int kItems = 12;

struct Pair {
  std::unique_ptr<Learner> leader, replica;
  std::string globals;
  std::vector<std::string> items;     // the leader's EncodeItem() by row
  std::vector<std::string> users;     // the leader's EncodePublishedUser() by row
  std::vector<std::string> user_ids;  // the users the answers are read for, one unknown
  std::vector<int32_t> replica_rows;  // of the followed users in the replica
  int64_t version = 1;
};

const kernels::CpuBackend& Cpu() {
  static const kernels::CpuBackend* cpu = new kernels::CpuBackend();
  return *cpu;
}

Pair* Build(const char* name) {
  config::Config config;
  config.dim = 8;
  const char* algorithm = name;
  if (absl::string_view(name) == "blend-all") {
    algorithm = "blend";
    config.blend_features =
        "bpr,cooc,history,transitions,popularity,trending,last,long_term,profile,ials,ease";
    config.blend_cold_events = 5;
    config.blend_session_start = true;
  }
  // Globals claiming more rows than this are refused (a corrupt count), well within -rss_limit_mb.
  config.max_state_mb = 64;
  auto leader = Learner::Create(algorithm, config, &Cpu());
  auto replica = Learner::Create(algorithm, config, &Cpu());
  FUZZ_CHECK(leader.ok() && replica.ok(), algorithm);
  auto* p = new Pair;
  p->leader = *std::move(leader);
  p->replica = *std::move(replica);
  std::vector<stream::Event> events;
  uint32_t state = 12345;
  for (int i = 0; i < 600; ++i) {
    state = state * 1664525u + 1013904223u;
    stream::Event e;
    e.user = absl::StrCat("u", (state >> 8) % kUsers);
    e.item = absl::StrCat("i", ((state >> 16) % kItems + (state >> 28) % 3) % kItems);
    e.ts_ms = 1000000 + int64_t{i} * 1000;
    events.push_back(std::move(e));
  }
  p->leader->ApplyBatch(events);
  p->leader->EncodeGlobals(&p->globals);
  FUZZ_CHECK(p->replica->FollowGlobals(p->globals, p->version).ok(), algorithm);
  for (int32_t row = 0; row < p->leader->items().size(); ++row) {
    p->items.emplace_back();
    p->leader->EncodeItem(row, &p->items.back());
    FUZZ_CHECK(p->replica->FollowItem(row, p->items.back(), p->version).ok(), algorithm);
  }
  FUZZ_CHECK(p->replica->FollowItemsDone().ok(), algorithm);
  for (int32_t row = 0; row < p->leader->users().size(); ++row) {
    p->users.emplace_back();
    p->leader->EncodePublishedUser(row, &p->users.back());
    const absl::StatusOr<int32_t> followed = p->replica->FollowUser(p->users.back());
    FUZZ_CHECK(followed.ok(), algorithm);
    p->replica_rows.push_back(*followed);
    p->user_ids.push_back(p->leader->users().ExternalId(row));
  }
  p->user_ids.push_back("nobody");
  return p;
}

// Every answer of the replica, scores bit for bit.
std::string Answers(const Learner& learner, const std::vector<std::string>& users) {
  std::string out;
  for (const std::string& user : users) {
    Recommendation rec;
    const absl::Status s = learner.Recommend(user, 5, /*exclude_seen=*/true, &rec);
    FUZZ_CHECK(s.ok(), s.ToString());
    absl::StrAppend(&out, user, rec.personalized ? " p:" : " -:");
    for (const kernels::ScoredItem& item : rec.items) {
      uint32_t bits;
      std::memcpy(&bits, &item.score, sizeof(bits));
      absl::StrAppend(&out, " ", item.item, "=", bits);
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}

void Run(absl::string_view data) {
  if (data.size() < 4) return;
  static Pair* pairs[kNumAlgorithms] = {};
  const int a = static_cast<uint8_t>(data[0]) % kNumAlgorithms;
  if (pairs[a] == nullptr) pairs[a] = Build(kAlgorithms[a]);
  Pair& p = *pairs[a];
  const int kind = static_cast<uint8_t>(data[1]) % 3;
  const uint8_t row_byte = static_cast<uint8_t>(data[2]);
  const uint8_t mode = static_cast<uint8_t>(data[3]);
  const absl::string_view rest = data.substr(4);

  const int32_t item_row = row_byte % static_cast<int32_t>(p.items.size());
  const int32_t user_row = row_byte % static_cast<int32_t>(p.users.size());
  const std::string& valid =
      kind == 0 ? p.globals : (kind == 1 ? p.items[item_row] : p.users[user_row]);
  std::string value;
  if (mode & 1) {
    value = std::string(rest);
  } else {
    value = valid;
    size_t at = 0;
    if ((mode & 2) && !rest.empty() && !value.empty()) {
      value.resize(static_cast<uint8_t>(rest[0]) % value.size());
      at = 1;
    }
    // Edits: (position, high byte of the position, xor mask) triples.
    for (; at + 3 <= rest.size() && !value.empty(); at += 3) {
      const size_t pos =
          (static_cast<uint8_t>(rest[at]) | static_cast<uint8_t>(rest[at + 1]) << 8) % value.size();
      value[pos] = static_cast<char>(value[pos] ^ rest[at + 2]);
    }
    if (mode & 4) absl::StrAppend(&value, rest.substr(std::min(at, rest.size())));
  }
  const auto what = [&] {
    return absl::StrCat(kAlgorithms[a], " kind ", kind, " value \"", absl::CHexEscape(value), "\"");
  };

  const std::string before = Answers(*p.replica, p.user_ids);
  const int64_t version = ++p.version;
  absl::Status status;
  int32_t new_user_row = -1;
  if (kind == 0) {
    status = p.replica->FollowGlobals(value, version);
  } else if (kind == 1) {
    status = p.replica->FollowItem(item_row, value, version);
  } else {
    const absl::StatusOr<int32_t> followed = p.replica->FollowUser(value);
    status = followed.status();
    if (followed.ok()) new_user_row = *followed;
  }
  const absl::Status done = p.replica->FollowItemsDone();
  FUZZ_CHECK(done.ok(), what() + ": " + done.ToString());
  if (!status.ok()) {
    FUZZ_CHECK(status.code() == absl::StatusCode::kDataLoss ||
                   (kind == 0 && status.code() == absl::StatusCode::kFailedPrecondition),
               what() + ": " + status.ToString());
    FUZZ_CHECK(Answers(*p.replica, p.user_ids) == before, what() + ": " + status.ToString());
    return;
  }
  Answers(*p.replica, p.user_ids);  // answers (FUZZ_CHECK inside)
  if (p.replica->followed_items() != static_cast<int32_t>(p.items.size())) {
    // Globals that grew the catalog: rows cannot be taken back, so the next input gets a new pair.
    delete pairs[a];
    pairs[a] = nullptr;
    return;
  }
  // Put the valid state back.
  const int64_t again = ++p.version;
  if (kind == 0) {
    FUZZ_CHECK(p.replica->FollowGlobals(p.globals, again).ok(), what());
  } else if (kind == 1) {
    FUZZ_CHECK(p.replica->FollowItem(item_row, p.items[item_row], again).ok(), what());
  } else {
    bool known = false;
    for (int32_t r : p.replica_rows) known = known || r == new_user_row;
    if (!known) p.replica->ForgetUser(new_user_row);
    FUZZ_CHECK(p.replica->FollowUser(p.users[user_row]).ok(), what());
  }
  FUZZ_CHECK(p.replica->FollowItemsDone().ok(), what());
}

}  // namespace
}  // namespace freshet::learner

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  freshet::learner::Run(absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
