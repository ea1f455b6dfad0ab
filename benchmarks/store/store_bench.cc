// store_bench: the durable state's costs, on a learner holding --users users (default 1M) and
// --items items at d=64.
//
// Workloads (one JSON object per line on stdout):
//   learn      building the state in memory (not persisted), for reference
//   flush_full every row written in one batch by the Persister (a first write into an empty
//              store): rows/s and MB/s
//   flush_incr --incr_events more events learnt, then the rows they changed written: rows/s
//   disk       bytes on disk after the writes and a compaction, per user
//   restart_after_crash  a child process writes 500k more events' rows and dies without closing
//              the database (as after SIGKILL); Engine::Open then replays the write-ahead log,
//              loads every row and rebuilds the dictionaries: the time until it can serve
//   restart    the same after a clean close (nothing left in the log)
//   snapshot_create, snapshot_restore  (checkpoint + manifest with checksums; verify + swap in)
// Usage:
//   store_bench [--users N] [--items N] [--events_per_user N] [--incr_events N] [--dir D]
//               [--algo bpr] [--keep]
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/json_writer.h"
#include "common/random.h"
#include "engine/engine.h"
#include "engine/learner_rows.h"
#include "kernels/backend.h"
#include "learner/learner.h"
#include "store/data_dir.h"
#include "store/persister.h"
#include "store/rocksdb/state_store.h"
#include "store/snapshot.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Flags {
  int32_t users = 1'000'000;
  int32_t items = 100'000;
  int events_per_user = 3;
  int64_t incr_events = 500'000;
  std::string dir = "/tmp/freshet_store_bench";
  std::string algo = "bpr";
  bool keep = false;
};

void Print(const std::string& workload,
           std::initializer_list<std::pair<const char*, double>> values, const Flags& f) {
  freshet::JsonWriter w;
  w.BeginObject();
  w.Key("bench").String("store");
  w.Key("workload").String(workload);
  w.Key("algo").String(f.algo);
  w.Key("users").Int(f.users);
  w.Key("items").Int(f.items);
  w.Key("dim").Int(64);
  for (const auto& [key, value] : values) w.Key(key).Double(value);
  w.EndObject();
  std::printf("%s\n", w.str().c_str());
  std::fflush(stdout);
}

// Events touching every user `per_user` times, in rounds, with items skewed towards low ids.
std::vector<freshet::stream::Event> MakeEvents(int64_t n, int32_t users, int32_t items,
                                               uint64_t seed, int64_t first_ts) {
  freshet::Rng rng(seed);
  std::vector<freshet::stream::Event> events(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    auto& e = events[static_cast<size_t>(i)];
    e.user = absl::StrCat("u", i % users);
    const uint64_t a = rng.Next() % static_cast<uint64_t>(items);
    const uint64_t b = rng.Next() % static_cast<uint64_t>(items);
    e.item = absl::StrCat("i", std::min(a, b));
    e.ts_ms = first_ts + i;
    e.position.offset = i;
  }
  return events;
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "store_bench: %s\n", std::string(s.message()).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    bool ok = true;
    if (arg == "--users")
      ok = absl::SimpleAtoi(value(), &f.users);
    else if (arg == "--items")
      ok = absl::SimpleAtoi(value(), &f.items);
    else if (arg == "--events_per_user")
      ok = absl::SimpleAtoi(value(), &f.events_per_user);
    else if (arg == "--incr_events")
      ok = absl::SimpleAtoi(value(), &f.incr_events);
    else if (arg == "--dir")
      f.dir = value();
    else if (arg == "--algo")
      f.algo = value();
    else if (arg == "--keep")
      f.keep = true;
    else
      ok = false;
    if (!ok) {
      std::fprintf(stderr, "store_bench: bad argument '%s' (see the top of store_bench.cc)\n",
                   arg.c_str());
      return 2;
    }
  }
  using namespace freshet;
  std::error_code ec;
  fs::remove_all(f.dir, ec);
  auto backend = *kernels::CreateBackend("cpu");
  config::Config config;  // d = 64 and the shipped defaults

  auto events =
      MakeEvents(int64_t{f.users} * f.events_per_user, f.users, f.items, 1, 1'700'000'000'000);
  auto created = learner::Learner::Create(f.algo, config, backend.get());
  if (!created.ok()) return Fail(created.status());
  std::unique_ptr<learner::Learner> l = *std::move(created);
  engine::LearnerRows rows(*l);  // the learner as the persister reads it
  auto start = Clock::now();
  l->ApplyBatch(events);
  Print("learn", {{"events", static_cast<double>(events.size())}, {"seconds", Seconds(start)}}, f);
  events.clear();
  events.shrink_to_fit();

  stream::AppliedPositions positions;
  positions.Set(0, 0, l->events_applied() - 1);
  const std::vector<std::string> sources = {"memory:bench"};
  {
    auto lock = store::DataDirLock::Acquire(f.dir);
    if (!lock.ok()) return Fail(lock.status());
    auto db = store::StateStore::Open(store::LiveDbPath(f.dir), store::StateStore::Options{});
    if (!db.ok()) return Fail(db.status());
    store::Persister persister(db->get(), store::Persister::Options{}, 0);
    persister.Start();
    persister.WriteIdentity(f.algo, config.dim, store::StateFingerprint(f.algo, config),
                            config::ToToml(config));
    start = Clock::now();
    absl::Status s = persister.Flush(rows, positions, sources, absl::Minutes(10));
    if (!s.ok()) return Fail(s);
    double seconds = Seconds(start);
    store::PersisterStats stats = persister.stats();
    Print("flush_full",
          {{"rows", static_cast<double>(stats.rows_written)},
           {"seconds", seconds},
           {"rows_per_s", stats.rows_written / seconds},
           {"mb_per_s", stats.bytes_written / seconds / 1e6},
           {"encode_ms", stats.last_encode_ms}},
          f);
  }
  // The incremental write happens in a child that then dies without closing the database, so
  // the next open finds it only in the write-ahead log, as after a crash.
  auto more = MakeEvents(f.incr_events, f.users, f.items, 2, 1'800'000'000'000);
  l->ApplyBatch(more);
  positions.Set(0, 0, l->events_applied() - 1);
  std::fflush(stdout);
  const pid_t child = fork();
  if (child == 0) {
    auto lock = store::DataDirLock::Acquire(f.dir);
    // Memtables are never flushed here: the batch must stay in the log only (that is the crash
    // being measured), and a forked child has none of RocksDB's background threads to flush with.
    store::StateStore::Options in_log_only;
    in_log_only.memtable_bytes = uint64_t{1} << 40;
    auto db = store::StateStore::Open(store::LiveDbPath(f.dir), in_log_only);
    if (!lock.ok() || !db.ok()) _exit(1);
    store::Persister persister(db->get(), store::Persister::Options{}, 2);
    persister.Start();
    const auto start_incr = Clock::now();
    if (!persister.Flush(rows, positions, sources, absl::Minutes(10)).ok()) _exit(1);
    const double seconds = Seconds(start_incr);
    const store::PersisterStats stats = persister.stats();
    Print("flush_incr",
          {{"events", static_cast<double>(f.incr_events)},
           {"rows", static_cast<double>(stats.rows_written)},
           {"seconds", seconds},
           {"rows_per_s", stats.rows_written / seconds},
           {"mb_per_s", stats.bytes_written / seconds / 1e6},
           {"encode_ms", stats.last_encode_ms}},
          f);
    std::fflush(stdout);
    _exit(0);  // no close: the memtables are lost, the log holds the batch
  }
  int child_status = 0;
  waitpid(child, &child_status, 0);
  if (!WIFEXITED(child_status) || WEXITSTATUS(child_status) != 0) {
    return Fail(absl::InternalError("the incremental write failed"));
  }
  {
    engine::EngineOptions options;
    options.data_dir = f.dir;
    options.algorithm = f.algo;
    options.config = config;
    start = Clock::now();
    auto engine = engine::Engine::Open(options, backend.get());
    if (!engine.ok()) return Fail(engine.status());
    Print("restart_after_crash",
          {{"seconds", Seconds(start)},
           {"events_loaded", static_cast<double>((*engine)->stats().events_applied)}},
          f);
  }  // a clean close: memtables flushed
  // Reopening compacts nothing by itself; the figure is what a running server leaves on disk.
  int64_t disk = 0;
  for (const auto& entry : fs::recursive_directory_iterator(store::LiveDbPath(f.dir), ec)) {
    if (entry.is_regular_file(ec)) disk += static_cast<int64_t>(entry.file_size(ec));
  }
  Print("disk",
        {{"bytes", static_cast<double>(disk)},
         {"bytes_per_user", static_cast<double>(disk) / f.users}},
        f);
  const learner::MemoryUsage memory = l->Memory();
  Print("memory",
        {{"bytes_per_user", memory.bytes_per_user()}, {"bytes_per_item", memory.bytes_per_item()}},
        f);
  const int64_t expected_events = l->events_applied();
  l.reset();

  engine::EngineOptions clean_options;
  clean_options.data_dir = f.dir;
  clean_options.algorithm = f.algo;
  clean_options.config = config;
  start = Clock::now();
  auto engine = engine::Engine::Open(clean_options, backend.get());
  if (!engine.ok()) return Fail(engine.status());
  const double restart = Seconds(start);
  const engine::EngineStats stats = (*engine)->stats();
  if (stats.events_applied != expected_events || stats.users != f.users) {
    return Fail(absl::InternalError(absl::StrCat("reloaded ", stats.events_applied, " events and ",
                                                 stats.users, " users; expected ", expected_events,
                                                 " and ", f.users)));
  }
  Print("restart", {{"seconds", restart}, {"users_loaded", static_cast<double>(stats.users)}}, f);
  engine->reset();

  {
    auto lock = store::DataDirLock::Acquire(f.dir);
    if (!lock.ok()) return Fail(lock.status());
    auto db = store::StateStore::Open(store::LiveDbPath(f.dir), store::StateStore::Options{});
    if (!db.ok()) return Fail(db.status());
    store::SnapshotStore snapshots(f.dir);
    start = Clock::now();
    auto manifest = snapshots.Create(**db, "bench");
    if (!manifest.ok()) return Fail(manifest.status());
    Print("snapshot_create",
          {{"seconds", Seconds(start)}, {"bytes", static_cast<double>(manifest->bytes())}}, f);
    db->reset();
    start = Clock::now();
    const absl::Status restored = snapshots.RestoreOffline("bench");
    if (!restored.ok()) return Fail(restored);
    Print("snapshot_restore", {{"seconds", Seconds(start)}}, f);
  }
  if (!f.keep) fs::remove_all(f.dir, ec);
  return 0;
}
