// A full disk, for real: the data directory on a 20 MB tmpfs (mounted here; we run as root), a
// filler file taking most of it, events learnt until writes fail, then the filler removed.
//
// Before the fix the process aborted on RocksDB's assertion `sync_without_flush_called_` (its
// info log, on the same full disk, wrote again after a failed write), and, had it survived,
// RocksDB's own recovery would have waited for 32 MiB of free space — more than the disk has —
// while refusing DB::Resume(), so nothing was written again and every accepted event since was
// lost at the stop. Now: no abort, the server reports not ready and refuses direct events while
// it cannot persist, writing resumes by itself once space is freed, a stop that cannot write
// says how many events are not persisted, and the state on the disk always opens.
#include <sys/mount.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/catalog.h"
#include "engine/engine.h"
#include "engine/learner_rows.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "learner/learner.h"
#include "serving/api.h"
#include "store/data_dir.h"
#include "store/persister.h"
#include "store/rocksdb/state_store.h"
#include "tests/serving/http_test_client.h"
#include "tests/store/test_util.h"

namespace freshet::store {
namespace {

namespace fs = std::filesystem;
using freshet::testing::ExpectSameState;
using freshet::testing::FreshDir;
using freshet::testing::MakeEvents;
using freshet::testing::TestDirPath;

// A tmpfs of `size` mounted on a fresh directory, unmounted when destroyed.
class Tmpfs {
 public:
  Tmpfs(const std::string& name, const std::string& size) : dir_(Unmounted(name)) {
    const std::string options = "size=" + size;
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, options.c_str()) != 0) {
      error_ =
          absl::StrCat("mount -t tmpfs -o ", options, " tmpfs ", dir_, ": ", std::strerror(errno));
    }
  }
  ~Tmpfs() {
    if (error_.empty()) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return error_.empty(); }
  // Grows (or shrinks) the mounted file system; false with errno set on failure.
  bool Resize(const std::string& size) {
    const std::string options = "size=" + size;
    return ::mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT, options.c_str()) == 0;
  }
  const std::string& error() const { return error_; }
  const std::string& dir() const { return dir_; }
  std::string filler() const { return dir_ + "/filler"; }

 private:
  // A fresh directory, after unmounting what a crashed earlier run may have left mounted there.
  static std::string Unmounted(const std::string& name) {
    ::umount2(TestDirPath(name).c_str(), MNT_DETACH);
    return FreshDir(name);
  }

  std::string dir_;
  std::string error_;
};

#define SKIP_UNLESS_MOUNTED(tmpfs)                                                              \
  if (!(tmpfs).mounted()) {                                                                     \
    GTEST_SKIP() << "needs a small tmpfs to fill, and mounting one failed (" << (tmpfs).error() \
                 << "); run as root to include this test";                                      \
  }

// Writes `bytes` of zeros to `path`, or, with bytes < 0, until the disk is full. Returns the bytes
// written.
int64_t Fill(const std::string& path, int64_t bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  const std::string chunk(1 << 16, '\0');
  int64_t written = 0;
  while (bytes < 0 || written < bytes) {
    out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    out.flush();
    if (!out) break;
    written += static_cast<int64_t>(chunk.size());
  }
  return written;
}

bool WaitFor(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

constexpr int kChunk = 5000;

TEST(StoreDiskFullTest, ThePersisterNeverAbortsAndResumesOnceSpaceIsFreed) {
  Tmpfs tmpfs("disk_full_persister", "20m");
  SKIP_UNLESS_MOUNTED(tmpfs);
  ASSERT_GT(Fill(tmpfs.filler(), 12 << 20), 0);
  config::Config config;
  config.dim = 32;
  auto backend = *kernels::CreateBackend("cpu");
  auto l = *learner::Learner::Create("bpr", config, backend.get());
  engine::LearnerRows rows(*l);
  const auto events = MakeEvents(400 * kChunk, 6000, 3000, 31);
  size_t next = 0;
  stream::AppliedPositions positions;
  const std::string db = tmpfs.dir() + "/db";
  {
    auto store = StateStore::Open(db, StateStore::Options{});
    ASSERT_TRUE(store.ok()) << store.status();
    Persister::Options options;
    options.min_backoff = absl::Milliseconds(1);
    options.max_backoff = absl::Milliseconds(50);
    Persister persister(store->get(), options, 0);
    persister.Start();
    persister.WriteIdentity("bpr", config.dim, StateFingerprint("bpr", config), "");
    auto learn = [&] {
      ASSERT_LT(next + kChunk, events.size()) << "the disk never filled";
      l->ApplyBatch(absl::MakeConstSpan(events).subspan(next, kChunk));
      next += kChunk;
      positions.Set(0, 0, static_cast<int64_t>(next) - 1);
      persister.MaybeFlush(rows, positions, {"memory:test"}, /*force=*/true);
    };
    // Learn until the disk is full.
    while (persister.stats().write_errors == 0) {
      learn();
      WaitFor(
          [&] {
            const PersisterStats s = persister.stats();
            return s.write_errors > 0 || s.events_persisted == l->events_applied();
          },
          absl::Seconds(5));
    }
    EXPECT_FALSE(persister.healthy());
    const absl::Status health = persister.Health();
    EXPECT_NE(health.message().find("No space left on device"), absl::string_view::npos) << health;
    // Retrying on a full disk: still alive, still failing, and still learning.
    const int64_t errors = persister.stats().write_errors;
    ASSERT_TRUE(
        WaitFor([&] { return persister.stats().write_errors >= errors + 3; }, absl::Seconds(20)));
    for (int i = 0; i < 2; ++i) learn();
    EXPECT_FALSE(persister.healthy());

    ASSERT_TRUE(fs::remove(tmpfs.filler()));
    ASSERT_TRUE(WaitFor([&] { return persister.healthy(); }, absl::Seconds(20)))
        << persister.Health();
    learn();
    const absl::Status flushed =
        persister.Flush(rows, positions, {"memory:test"}, absl::Seconds(20));
    ASSERT_TRUE(flushed.ok()) << flushed;
    EXPECT_EQ(persister.stats().events_persisted, l->events_applied());
  }
  auto store = StateStore::Open(db, StateStore::Options{});
  ASSERT_TRUE(store.ok()) << store.status();
  auto loaded = *learner::Learner::Create("bpr", config, backend.get());
  ASSERT_TRUE(engine::LoadLearner(**store, *loaded).ok());
  ExpectSameState(*l, *loaded);
  EXPECT_EQ((*store)->ReadMeta()->positions.at(0).offset, static_cast<int64_t>(next) - 1);
}

// The engine and its HTTP API on a full disk: not ready, direct events refused (503, so a client
// retries instead of losing them), both back once space is freed; a stop on a full disk fails,
// saying how many events are not persisted, and the state it leaves opens.
TEST(StoreDiskFullTest, TheServerIsNotReadyAndAStopSaysWhatIsNotPersisted) {
  Tmpfs tmpfs("disk_full_engine", "20m");
  SKIP_UNLESS_MOUNTED(tmpfs);
  ASSERT_GT(Fill(tmpfs.filler(), 12 << 20), 0);
  auto backend = *kernels::CreateBackend("cpu");
  engine::EngineOptions options;
  options.data_dir = tmpfs.dir() + "/data";
  options.config.dim = 32;
  options.config.flush_interval_ms = 5;
  auto opened = engine::Engine::Open(options, backend.get());
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<engine::Engine> engine = *std::move(opened);
  std::atomic<bool> stop{false};
  absl::Status run_status;
  engine::Engine::RunOptions run;
  run.flush_timeout = absl::Seconds(1);
  std::thread runner([&] { run_status = engine->Run(stop, run); });
  // An assertion that returns early must stop and join the engine's thread: a joinable thread
  // destroyed would abort the whole test binary instead of reporting the failure.
  absl::Cleanup join_runner = [&] {
    stop.store(true);
    if (runner.joinable()) runner.join();
  };

  serving::MetricsRegistry metrics;
  serving::HttpServerOptions http;
  http.metrics = &metrics;
  serving::HttpServer server(http);
  serving::ApiOptions api;
  api.config = options.config;
  ASSERT_TRUE(serving::RegisterApi(server, *engine, metrics, api).ok());
  ASSERT_TRUE(server.Start().ok());
  auto client = serving::testing::TestHttpClient::Connect(server.port());
  ASSERT_TRUE(client.ok()) << client.status();
  auto request = [&](const std::string& method, const std::string& target,
                     const std::string& body = "") {
    auto r = (*client)->Request(method, target, body);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : serving::testing::ClientResponse{};
  };
  int batch = 0;
  auto events_body = [&] {
    std::string body = "[";
    for (int i = 0; i < 2000; ++i) {
      const int n = batch * 2000 + i;
      absl::StrAppend(&body, i > 0 ? "," : "", "{\"user\":\"u", n % 7919, "\",\"item\":\"i",
                      (n * 31) % 4001, "\",\"ts\":", 1'700'000'000'000 + n, "}");
    }
    ++batch;
    return body + "]";
  };
  EXPECT_EQ(request("GET", "/readyz").status, 200);

  // Post events until the store cannot persist them: then they are refused.
  int status = 202;
  // Bounded by time, not by a count of posts: how fast the disk fills depends on how often the
  // learning thread (below normal priority) gets to flush, which a loaded machine delays.
  for (absl::Time until = absl::Now() + absl::Seconds(120); status == 202 && absl::Now() < until;) {
    status = request("POST", "/v1/events", events_body()).status;
    if (status == 202) {
      WaitFor([&] { return !engine->PersistenceHealth().ok(); }, absl::Milliseconds(20));
    }
  }
  ASSERT_EQ(status, 503) << "the disk never filled";
  const auto refused = request("POST", "/v1/events", events_body());
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(refused.Header("Retry-After"), "1");
  EXPECT_NE(refused.body.find("cannot be persisted"), std::string::npos) << refused.body;
  const auto not_ready = request("GET", "/readyz");
  EXPECT_EQ(not_ready.status, 503);
  EXPECT_NE(not_ready.body.find("No space left on device"), std::string::npos) << not_ready.body;
  EXPECT_NE(request("GET", "/metrics").body.find("freshet_store_healthy 0"), std::string::npos);

  // Space freed: ready again and accepting, with nothing lost.
  ASSERT_TRUE(fs::remove(tmpfs.filler()));
  ASSERT_TRUE(WaitFor([&] { return request("GET", "/readyz").status == 200; }, absl::Seconds(20)))
      << engine->PersistenceHealth();
  EXPECT_EQ(request("POST", "/v1/events", events_body()).status, 202);
  ASSERT_TRUE(WaitFor(
      [&] {
        const engine::EngineStats s = engine->stats();
        return s.persister.events_persisted == s.events_applied;
      },
      absl::Seconds(20)));

  // Full again, then a stop: it cannot write, fails, and says how much is not persisted.
  Fill(tmpfs.filler(), -1);
  status = 202;
  // Bounded by time, not by a count of posts: how fast the disk fills depends on how often the
  // learning thread (below normal priority) gets to flush, which a loaded machine delays.
  for (absl::Time until = absl::Now() + absl::Seconds(120); status == 202 && absl::Now() < until;) {
    status = request("POST", "/v1/events", events_body()).status;
    if (status == 202) {
      WaitFor([&] { return !engine->PersistenceHealth().ok(); }, absl::Milliseconds(20));
    }
  }
  ASSERT_EQ(status, 503);
  server.Stop();
  stop.store(true);
  runner.join();
  const engine::EngineStats stats = engine->stats();
  const int64_t unpersisted = stats.events_applied - stats.persister.events_persisted;
  EXPECT_GT(unpersisted, 0);
  EXPECT_TRUE(absl::IsDeadlineExceeded(run_status)) << run_status;
  EXPECT_NE(
      run_status.message().find(absl::StrCat(unpersisted, " events learnt are NOT persisted")),
      std::string::npos)
      << run_status;
  engine.reset();  // closes RocksDB on the full disk

  // What it left opens (after space is freed): an exact prefix, at least what was persisted.
  ASSERT_TRUE(fs::remove(tmpfs.filler()));
  auto reopened = engine::Engine::Open(options, backend.get());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_GE((*reopened)->stats().events_applied, stats.persister.events_persisted);
  EXPECT_LE((*reopened)->stats().events_applied, stats.events_applied);
}

// A catalog upsert larger than the space left: the store takes it in batches, so the disk fills
// part-way through. The answers then show exactly what the store holds (the batches before the
// failure), the error says how many entries were stored, and after a restart the catalog is the
// same; sending the same entries again, once the disk has room, stores the rest.
TEST(StoreDiskFullTest, ACatalogUpsertThatFillsTheDiskLeavesTheAnswersAsTheStore) {
  Tmpfs tmpfs("disk_full_catalog", "16m");
  SKIP_UNLESS_MOUNTED(tmpfs);
  auto backend = *kernels::CreateBackend("cpu");
  engine::EngineOptions options;
  options.data_dir = tmpfs.dir() + "/data";
  options.config.dim = 16;
  std::vector<engine::CatalogEntry> entries;
  // 24,576 entries of about 1,000 bytes, in six batches: half again the disk's size.
  for (int i = 0; i < 6 * 4096; ++i) {
    entries.push_back({absl::StrCat("i", i), {{"title", std::string(1000, 'a' + i % 26)}}});
  }
  const auto same_as = [](const engine::Catalog& a, const engine::Catalog& b, int n) {
    for (int i = 0; i < n; ++i) {
      const std::string item = absl::StrCat("i", i);
      if (a.Encoded(item) != b.Encoded(item)) return false;
    }
    return a.size() == b.size();
  };
  engine::Catalog shown;
  {
    auto opened = engine::Engine::Open(options, backend.get());
    ASSERT_TRUE(opened.ok()) << opened.status();
    std::unique_ptr<engine::Engine> engine = *std::move(opened);
    const absl::StatusOr<int64_t> changed = engine->UpsertCatalog(entries);
    ASSERT_FALSE(changed.ok()) << "the disk never filled";
    const size_t stored = engine->catalog().size();
    EXPECT_GT(stored, 0u) << changed.status();
    EXPECT_LT(stored, entries.size());
    EXPECT_EQ(stored % 4096, 0u);  // whole batches
    EXPECT_NE(changed.status().message().find(
                  absl::StrCat("stored ", stored, " of the ", entries.size(), " catalog entries")),
              std::string::npos)
        << changed.status();
    EXPECT_NE(changed.status().message().find("No space left on device"), std::string::npos)
        << changed.status();
    absl::flat_hash_map<std::string, std::string> copy;
    for (int i = 0; i < static_cast<int>(entries.size()); ++i) {
      const std::string item = absl::StrCat("i", i);
      const std::string encoded = engine->catalog().Encoded(item);
      if (!encoded.empty()) copy.emplace(item, encoded);
    }
    shown.Reset(std::move(copy));
    engine.reset();  // closes RocksDB on the full disk
  }
  ASSERT_TRUE(tmpfs.Resize("64m")) << std::strerror(errno);
  auto reopened = engine::Engine::Open(options, backend.get());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_TRUE(same_as((*reopened)->catalog(), shown, static_cast<int>(entries.size())))
      << "a restart shows " << (*reopened)->catalog().size() << " entries, the answers showed "
      << shown.size();
  // The same entries again: the rest is stored, the stored ones are unchanged.
  const absl::StatusOr<int64_t> again = (*reopened)->UpsertCatalog(entries);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(static_cast<size_t>(*again), entries.size() - shown.size());
  EXPECT_EQ((*reopened)->catalog().size(), entries.size());
}

}  // namespace
}  // namespace freshet::store
