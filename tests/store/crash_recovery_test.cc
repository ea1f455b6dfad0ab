// Crash proof: `freshet serve` ingests a generated stream and is killed with SIGKILL at random
// moments, over and over, then restarted each time; at the end the stored state holds every event
// exactly once — the total, and the per-user and per-item event counters, equal the file's.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_join.h"
#include "engine/learner_rows.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "learner/learner.h"
#include "store/data_dir.h"
#include "store/rocksdb/state_store.h"
#include "stream/file_event_source.h"
#include "tests/freshet_binary.h"
#include "tests/store/test_util.h"

namespace freshet {
namespace {

using testing::kFreshet;

int RunToCompletion(const std::vector<std::string>& args) {
  return testing::Freshet(absl::StrJoin(args, " ")).exit_code;
}

pid_t Spawn(const std::vector<std::string>& args) {
  const pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(kFreshet.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    freopen("/dev/null", "w", stdout);
    freopen("/dev/null", "w", stderr);
    execv(kFreshet.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

int64_t StoredEvents(const std::string& data_dir) {
  store::StateStore::Options options;
  options.read_only = true;
  auto db = store::StateStore::Open(store::LiveDbPath(data_dir), options);
  if (!db.ok()) return 0;  // not created yet
  auto meta = (*db)->ReadMeta();
  return meta.ok() ? meta->events_applied : -1;
}

// Scale with FRESHET_CRASH_EVENTS and FRESHET_CRASH_KILLS (scripts/crash_harness.sh runs 1M events
// and 50 kills); the default is sized for CI.
int64_t EnvInt(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoll(v) : fallback;
}

TEST(CrashRecoveryTest, SigkillAtRandomMomentsLosesAndRepeatsNothing) {
  const std::string dir = testing::FreshDir("crash");
  const std::string stream = dir + "/stream.jsonl";
  const std::string data_dir = dir + "/state";
  const int64_t kEvents = EnvInt("FRESHET_CRASH_EVENTS", 120000);
  const int kKills = static_cast<int>(EnvInt("FRESHET_CRASH_KILLS", 10));
  ASSERT_EQ(RunToCompletion({"generate", "--output", stream, "--events", std::to_string(kEvents),
                             "--users", std::to_string(std::max<int64_t>(100, kEvents / 10)),
                             "--items", "20000", "--seed", "3"}),
            0);
  std::vector<std::string> serve = {"serve",
                                    "--data-dir",
                                    data_dir,
                                    "--source",
                                    "file:" + stream,
                                    "--format",
                                    "jsonl",
                                    "--exit-when-done",
                                    "--status-interval",
                                    "0",
                                    "--no-http",
                                    "--set",
                                    "store.flush_interval_ms=50"};
  // While killing, ingest at a rate that spreads the stream over the kills, so every kill lands
  // in the middle of it; the final run goes at full speed.
  std::vector<std::string> throttled = serve;
  throttled.push_back("--rate");
  throttled.push_back(std::to_string(std::max<int64_t>(1000, kEvents * 10 / (kKills * 6))));

  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> delay_ms(300, 1500);
  int kills = 0, progressed = 0, idle_in_a_row = 0;
  int64_t last = 0;
  // Kill kKills times; a kill that lands before the restarted process has stored anything new
  // (start-up is slow on a loaded machine) makes the next wait longer.
  for (int round = 0; kills < kKills && round < 4 * kKills; ++round) {
    const pid_t pid = Spawn(throttled);
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng) + 400 * idle_in_a_row));
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) break;  // finished before the kill
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    ++kills;
    const int64_t stored = StoredEvents(data_dir);
    ASSERT_GE(stored, last) << "the stored state went backwards";
    if (stored > last && stored < kEvents) {
      ++progressed;
      idle_in_a_row = 0;
    } else {
      ++idle_in_a_row;
    }
    last = stored;
    if (stored == kEvents) break;
  }
  EXPECT_GE(kills, std::min(kKills, 3));
  EXPECT_GE(progressed, std::min(kKills, 3)) << "the kills should land mid-stream";
  ASSERT_EQ(RunToCompletion(serve), 0);  // the last run finishes the stream

  // Expected counters, from the file itself.
  stream::FileSourceOptions options = *stream::FileSourceOptions::ForFormat("jsonl");
  auto source = stream::FileEventSource::Open(stream, options);
  ASSERT_TRUE(source.ok()) << source.status();
  ASSERT_EQ((*source)->size(), kEvents);
  absl::flat_hash_map<std::string, int64_t> per_user, per_item;
  std::vector<stream::Event> events;
  while (!(*source)->Finished()) {
    events.clear();
    ASSERT_TRUE((*source)->Poll(100000, absl::ZeroDuration(), &events).ok());
    for (const auto& e : events) {
      ++per_user[e.user];
      ++per_item[e.item];
    }
  }

  store::StateStore::Options ro;
  ro.read_only = true;
  auto db = store::StateStore::Open(store::LiveDbPath(data_dir), ro);
  ASSERT_TRUE(db.ok()) << db.status();
  auto meta = (*db)->ReadMeta();
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->events_applied, kEvents);
  ASSERT_EQ(meta->positions.size(), 1u);
  EXPECT_EQ(meta->positions[0].offset, kEvents - 1);
  auto backend = *kernels::CreateBackend("cpu");
  auto learner = *learner::Learner::Create("bpr", config::Config(), backend.get());
  ASSERT_TRUE(engine::LoadLearner(**db, *learner).ok());
  EXPECT_EQ(learner->events_applied(), kEvents);
  ASSERT_EQ(learner->users().live(), static_cast<int32_t>(per_user.size()));
  int64_t wrong_users = 0, wrong_items = 0;
  for (const auto& [user, count] : per_user) {
    const int32_t row = learner->users().Find(user);
    if (row < 0 || learner->history(row).events() != count) ++wrong_users;
  }
  for (const auto& [item, count] : per_item) {
    const int32_t row = learner->items().Find(item);
    if (row < 0 || learner->popularity().Count(row) != count) ++wrong_items;
  }
  EXPECT_EQ(wrong_users, 0) << "users whose stored event count differs from the file's";
  EXPECT_EQ(wrong_items, 0) << "items whose stored event count differs from the file's";
  std::printf(
      "[ info ] %d SIGKILLs (%d with progress mid-stream), then completion: %lld events, "
      "%zu users, %zu items, each counted exactly once\n",
      kills, progressed, static_cast<long long>(kEvents), per_user.size(), per_item.size());
}

}  // namespace
}  // namespace freshet
