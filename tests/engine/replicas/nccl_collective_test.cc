// The replicas' NCCL transport (engine/replicas/nccl_collective.h): the argument and rendezvous
// errors and one rank (one device), its unique id through a file and through a real
// redis-server; and two `freshet serve` processes on two GPUs (two devices). Skipped without a
// CUDA device.
#include "engine/replicas/nccl_collective.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "engine/replicas/collective.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/cuda/context.h"
#include "tests/common/redis_server.h"
#include "tests/kernels/cuda/cuda_test_util.h"

namespace freshet::engine {
namespace {

using kernels::CudaDeviceCount;

std::string FreshIdPath(const std::string& name) {
  const std::string path =
      absl::StrCat(::testing::TempDir(), "/freshet_nccl_", name, "_", getpid());
  std::remove(path.c_str());
  return path;
}

// The cuda backend, or null when there is no usable device (the caller then skips).
std::unique_ptr<kernels::Backend> CudaOrNull() {
  absl::StatusOr<std::unique_ptr<kernels::Backend>> backend = kernels::CreateBackend("cuda");
  return backend.ok() ? *std::move(backend) : nullptr;
}

CollectiveOptions Options(int rank, int world_size, std::string rendezvous,
                          absl::Duration timeout) {
  CollectiveOptions options;
  options.rank = rank;
  options.world_size = world_size;
  options.rendezvous = std::move(rendezvous);
  options.timeout = timeout;
  return options;
}

TEST(CudaNcclCollectiveTest, BadRanksAndAMissingIdFileAreErrors) {
  FRESHET_CUDA_CONTEXT_OR_SKIP(ctx);
  std::unique_ptr<kernels::Backend> backend = CudaOrNull();
  ASSERT_NE(backend, nullptr);
  EXPECT_EQ(NewNcclCollective(*backend, Options(2, 2, FreshIdPath("bad"), absl::Seconds(1)))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NewNcclCollective(*backend, Options(0, 1, "", absl::Seconds(1))).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Rank 1 waits for rank 0's file, which never comes.
  const absl::Status late =
      NewNcclCollective(*backend, Options(1, 2, FreshIdPath("late"), absl::Milliseconds(50)))
          .status();
  EXPECT_EQ(late.code(), absl::StatusCode::kDeadlineExceeded) << late;
}

// One rank, its id through a file and through a real redis-server (a Redis location is a clear
// error in a build without hiredis): every exchange gives back exactly the bytes sent, whatever
// their size.
TEST(CudaNcclCollectiveTest, OneRankGathersExactlyItsOwnBytes) {
  FRESHET_CUDA_CONTEXT_OR_SKIP(ctx);
  std::unique_ptr<kernels::Backend> backend = CudaOrNull();
  ASSERT_NE(backend, nullptr);
  testing::RedisServer redis;
  ASSERT_TRUE(redis.ok()) << "redis-server did not start (scripts/bootstrap.sh installs it)";
  // The NCCL id through a file, then through a Redis key.
  for (const std::string& rendezvous :
       {FreshIdPath("collective"), redis.Location(absl::StrCat("freshet-nccl-", getpid()))}) {
    absl::StatusOr<std::unique_ptr<Collective>> rank =
        NewNcclCollective(*backend, Options(0, 1, rendezvous, absl::Seconds(10)));
#if !FRESHET_HAVE_HIREDIS
    if (absl::StartsWith(rendezvous, "redis://")) {
      EXPECT_EQ(rank.status().code(), absl::StatusCode::kFailedPrecondition) << rank.status();
      continue;
    }
#endif
    ASSERT_TRUE(rank.ok()) << rendezvous << ": " << rank.status();
    EXPECT_EQ((*rank)->world_size(), 1);
    std::string large(3'000'001, '\0');
    for (size_t i = 0; i < large.size(); ++i) large[i] = static_cast<char>(i * 7);
    for (const std::string& mine : {std::string("abc"), std::string(), large}) {
      absl::StatusOr<std::vector<std::string>> all = (*rank)->AllGather(mine);
      ASSERT_TRUE(all.ok()) << all.status();
      ASSERT_EQ(all->size(), 1u);
      EXPECT_TRUE((*all)[0] == mine)
          << "sent " << mine.size() << " bytes, got " << (*all)[0].size();
    }
  }
}

// Two `freshet serve` processes on two GPUs, each learning its own users' file, must end with one
// item model (needs two devices and the freshet binary).
TEST(CudaNcclCollectiveTest, TwoServeProcessesEndWithOneItemModel) {
  absl::StatusOr<int> devices = CudaDeviceCount();
  if (!devices.ok() || *devices < 2) GTEST_SKIP() << "needs two CUDA devices";
  const std::string freshet = FRESHET_BINARY_DIR "/cli/freshet";
  if (access(freshet.c_str(), X_OK) != 0) GTEST_SKIP() << "no " << freshet;
  const std::string dir = absl::StrCat(::testing::TempDir(), "/freshet_replicas_", getpid());
  ASSERT_EQ(std::system(absl::StrCat("rm -rf ", dir, " && mkdir -p ", dir).c_str()), 0);
  // Users u0..u99 split by parity between two files; items i0..i49 shared.
  std::FILE* files[2] = {std::fopen((dir + "/0.jsonl").c_str(), "w"),
                         std::fopen((dir + "/1.jsonl").c_str(), "w")};
  ASSERT_TRUE(files[0] != nullptr && files[1] != nullptr);
  for (int i = 0; i < 20000; ++i) {
    const int user = (i * 37) % 100, item = (i * 13 + user) % 50;
    std::fprintf(files[user % 2], "{\"user\":\"u%d\",\"item\":\"i%d\",\"ts\":%d}\n", user, item,
                 1000 + i);
  }
  for (std::FILE* f : files) std::fclose(f);
  const auto serve = [&](int rank) {
    return absl::StrCat("CUDA_VISIBLE_DEVICES=", rank, " ", freshet,
                        " serve --no-http --backend cuda", " --exit-when-done --data-dir ", dir,
                        "/state", rank, " --source file:", dir, "/", rank,
                        ".jsonl --format jsonl --set replicas.world_size=2",
                        " --set replicas.rank=", rank, " --set replicas.rendezvous=", dir,
                        "/nccl.id", " --set replicas.sync_ms=5 >", dir, "/log", rank, " 2>&1");
  };
  const std::string both = absl::StrCat("a=0; b=0; ", serve(0), " & p=$!; ", serve(1),
                                        " || b=$?; wait $p || a=$?; exit $((a | b))");
  EXPECT_EQ(std::system(both.c_str()), 0) << "logs in " << dir;
  // Every item's vector norm, as each rank stored it.
  for (int item = 0; item < 50; ++item) {
    std::string norms[2];
    for (int rank = 0; rank < 2; ++rank) {
      const std::string command = absl::StrCat(freshet, " inspect --json --data-dir ", dir,
                                               "/state", rank, " --item i", item);
      std::FILE* out = popen(command.c_str(), "r");
      ASSERT_NE(out, nullptr);
      char buffer[4096];
      while (std::fgets(buffer, sizeof(buffer), out) != nullptr) norms[rank] += buffer;
      EXPECT_EQ(pclose(out), 0) << command;
    }
    EXPECT_NE(norms[0].find("vector_norm"), std::string::npos) << norms[0];
    // The same vector, though each rank gave the item its own row and counts only its own
    // users' events: compare the norm alone.
    const auto norm = [](const std::string& json) {
      const size_t at = json.find("\"vector_norm\"");
      return at == std::string::npos ? std::string()
                                     : json.substr(at, json.find_first_of(",}", at) - at);
    };
    EXPECT_EQ(norm(norms[0]), norm(norms[1])) << "item i" << item;
  }
}

}  // namespace
}  // namespace freshet::engine
