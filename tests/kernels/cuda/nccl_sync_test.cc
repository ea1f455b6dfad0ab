// NcclGroup and ItemModelSync: a single rank (needs one device), several in-process ranks (needs
// two), and the argument errors. The replicas' NCCL collective: the argument and rendezvous
// errors and one rank (one device), and two `freshet serve` processes (two devices).
#include "kernels/cuda/nccl_sync.h"

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/collective.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/device_table.h"
#include "tests/common/redis_server.h"
#include "tests/kernels/cuda/cuda_test_util.h"

namespace freshet::kernels {
namespace {

std::string FreshIdPath(const std::string& name) {
  const std::string path =
      absl::StrCat(::testing::TempDir(), "/freshet_nccl_", name, "_", getpid());
  std::remove(path.c_str());
  return path;
}

std::unique_ptr<DeviceTable> TableWith(const CudaContext& ctx, const std::vector<float>& values,
                                       int dim) {
  absl::StatusOr<std::unique_ptr<DeviceTable>> table = DeviceTable::Create(&ctx, dim);
  EXPECT_TRUE(table.ok()) << table.status();
  if (!table.ok()) return nullptr;
  EXPECT_TRUE((*table)->Resize(static_cast<int64_t>(values.size()) / dim).ok());
  EXPECT_TRUE((*table)->Upload(0, values).ok());
  return std::move(*table);
}

TEST(CudaNcclSyncTest, BadRanksAndABadIdAreErrors) {
  FRESHET_CUDA_CONTEXT_OR_SKIP(ctx);
  absl::StatusOr<std::string> id = NcclGroup::NewUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->size(), NcclGroup::kUniqueIdBytes);
  EXPECT_EQ(NcclGroup::CreateRank(ctx.get(), 2, 2, *id).status().code(),
            absl::StatusCode::kInvalidArgument);
  // No id (the rendezvous' errors, a missing or late id, are the NCCL collective's: below).
  EXPECT_EQ(NcclGroup::CreateRank(ctx.get(), 0, 1, "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NcclGroup::CreateInProcess({ctx.get(), ctx.get()}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CudaNcclSyncTest, SingleRankKeepsItsOwnUpdates) {
  FRESHET_CUDA_CONTEXT_OR_SKIP(ctx);
  absl::StatusOr<std::string> id = NcclGroup::NewUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();
  absl::StatusOr<std::unique_ptr<NcclGroup>> group = NcclGroup::CreateRank(ctx.get(), 0, 1, *id);
  ASSERT_TRUE(group.ok()) << group.status();
  EXPECT_EQ((*group)->world_size(), 1);

  std::vector<float> values(6 * 2);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i);
  std::unique_ptr<DeviceTable> table = TableWith(*ctx, values, 2);
  ASSERT_NE(table, nullptr);
  absl::StatusOr<std::unique_ptr<ItemModelSync>> sync =
      ItemModelSync::Create(group->get(), {table.get()}, SyncPolicy{2, 0, DeltaReduce::kMean});
  ASSERT_TRUE(sync.ok()) << sync.status();
  ASSERT_TRUE(table->Upload(2, std::vector<float>{40, 41}).ok());
  ASSERT_TRUE(table->Upload(5, std::vector<float>{50, 51}).ok());
  // every_batches = 2: the first batch does not sync, the second does.
  absl::StatusOr<bool> synced = (*sync)->OnBatchApplied();
  ASSERT_TRUE(synced.ok());
  EXPECT_FALSE(*synced);
  synced = (*sync)->OnBatchApplied();
  ASSERT_TRUE(synced.ok()) << synced.status();
  EXPECT_TRUE(*synced);
  EXPECT_EQ((*sync)->syncs(), 1);
  // One rank: the mean of its own delta is its delta.
  std::vector<float> after;
  ASSERT_TRUE(table->Download(0, 6, &after).ok());
  values[4] = 40;
  values[5] = 41;
  values[10] = 50;
  values[11] = 51;
  EXPECT_EQ(after, values);
  absl::StatusOr<DirtyRows> dirty = table->TakeDirtyRows();
  ASSERT_TRUE(dirty.ok());
  EXPECT_EQ(dirty->rows, (std::vector<int32_t>{2, 5}));
}

TEST(CudaNcclSyncTest, InProcessRanksAverageTheirDeltas) {
  absl::StatusOr<int> devices = CudaDeviceCount();
  if (!devices.ok() || *devices < 2) GTEST_SKIP() << "needs two CUDA devices";
  std::vector<std::unique_ptr<CudaContext>> owned;
  std::vector<const CudaContext*> contexts;
  for (int d = 0; d < 2; ++d) {
    absl::StatusOr<std::unique_ptr<CudaContext>> ctx = CudaContext::Create(d);
    ASSERT_TRUE(ctx.ok()) << ctx.status();
    contexts.push_back(ctx->get());
    owned.push_back(std::move(*ctx));
  }
  absl::StatusOr<std::unique_ptr<NcclGroup>> group = NcclGroup::CreateInProcess(contexts);
  ASSERT_TRUE(group.ok()) << group.status();
  EXPECT_EQ((*group)->world_size(), 2);
  EXPECT_EQ((*group)->local_ranks(), 2);

  const std::vector<float> start(4 * 3, 1.0f);
  std::vector<std::unique_ptr<DeviceTable>> tables;
  for (int r = 0; r < 2; ++r) tables.push_back(TableWith(*contexts[r], start, 3));
  ASSERT_TRUE(tables[0] && tables[1]);
  absl::StatusOr<std::unique_ptr<ItemModelSync>> sync = ItemModelSync::Create(
      group->get(), {tables[0].get(), tables[1].get()}, SyncPolicy{1, 0, DeltaReduce::kMean});
  ASSERT_TRUE(sync.ok()) << sync.status();
  // Rank 0 moves row 1 by +2; rank 1 moves row 1 by +4 and row 3 by -6.
  ASSERT_TRUE(tables[0]->Upload(1, std::vector<float>{3, 3, 3}).ok());
  ASSERT_TRUE(tables[1]->Upload(1, std::vector<float>{5, 5, 5}).ok());
  ASSERT_TRUE(tables[1]->Upload(3, std::vector<float>{-5, -5, -5}).ok());
  ASSERT_TRUE((*sync)->SyncNow().ok());
  const std::vector<float> expected = {1, 1, 1, 4, 4, 4, 1, 1, 1, -2, -2, -2};
  for (int r = 0; r < 2; ++r) {
    std::vector<float> after;
    ASSERT_TRUE(tables[r]->Download(0, 4, &after).ok());
    EXPECT_EQ(after, expected) << "rank " << r;
    absl::StatusOr<DirtyRows> dirty = tables[r]->TakeDirtyRows();
    ASSERT_TRUE(dirty.ok());
    EXPECT_EQ(dirty->rows, (std::vector<int32_t>{1, 3})) << "rank " << r;
  }
  // The plain all-reduce sums when asked to.
  std::vector<DeviceBuffer<float>> buffers;
  std::vector<float*> pointers;
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(contexts[r]->Activate().ok());
    absl::StatusOr<DeviceBuffer<float>> buffer = contexts[r]->Allocate<float>(2);
    ASSERT_TRUE(buffer.ok());
    const std::vector<float> mine = {static_cast<float>(r + 1), 10.0f};
    ASSERT_TRUE(contexts[r]->CopyToDevice(buffer->data(), mine.data(), 2).ok());
    pointers.push_back(buffer->data());
    buffers.push_back(std::move(*buffer));
  }
  ASSERT_TRUE((*group)->AllReduce(pointers, 2, DeltaReduce::kSum).ok());
  for (int r = 0; r < 2; ++r) {
    std::vector<float> out(2);
    ASSERT_TRUE(contexts[r]->Activate().ok());
    ASSERT_TRUE(contexts[r]->CopyToHost(out.data(), pointers[r], 2).ok());
    ASSERT_TRUE(contexts[r]->Synchronize().ok());
    EXPECT_EQ(out, (std::vector<float>{3.0f, 20.0f})) << "rank " << r;
  }
}

// The replicas' NCCL transport: a bad rank or no rendezvous are argument errors, and a rank
// that waits for rank 0's id file, which never comes, times out.
TEST(CudaNcclCollectiveTest, BadRanksAndAMissingIdFileAreErrors) {
  FRESHET_CUDA_CONTEXT_OR_SKIP(ctx);
  absl::StatusOr<std::unique_ptr<Backend>> backend = CreateBackend("cuda");
  ASSERT_TRUE(backend.ok()) << backend.status();
  const auto options = [](int rank, int world_size, std::string rendezvous,
                          absl::Duration timeout) {
    CollectiveOptions o;
    o.rank = rank;
    o.world_size = world_size;
    o.rendezvous = std::move(rendezvous);
    o.timeout = timeout;
    return o;
  };
  EXPECT_EQ((*backend)
                ->NewCollective(options(2, 2, FreshIdPath("bad"), absl::Seconds(1)))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*backend)->NewCollective(options(0, 1, "", absl::Seconds(1))).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Rank 1 waits for rank 0's file, which never comes.
  const absl::Status late =
      (*backend)
          ->NewCollective(options(1, 2, FreshIdPath("late"), absl::Milliseconds(50)))
          .status();
  EXPECT_EQ(late.code(), absl::StatusCode::kDeadlineExceeded) << late;
}

// The NCCL transport of the replicas' exchange (common/collective.h), one rank, its id through a
// file and through a real redis-server: every exchange gives back exactly the bytes sent,
// whatever their size.
TEST(CudaNcclCollectiveTest, OneRankGathersExactlyItsOwnBytes) {
  FRESHET_CUDA_CONTEXT_OR_SKIP(ctx);
  absl::StatusOr<std::unique_ptr<Backend>> backend = CreateBackend("cuda");
  ASSERT_TRUE(backend.ok()) << backend.status();
  testing::RedisServer redis;
  ASSERT_TRUE(redis.ok()) << "redis-server did not start (scripts/bootstrap.sh installs it)";
  // The NCCL id through a file, then through a Redis key.
  for (const std::string& rendezvous :
       {FreshIdPath("collective"), redis.Location(absl::StrCat("freshet-nccl-", getpid()))}) {
    CollectiveOptions options;
    options.rendezvous = rendezvous;
    options.timeout = absl::Seconds(10);
    absl::StatusOr<std::unique_ptr<Collective>> rank = (*backend)->NewCollective(options);
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
}  // namespace freshet::kernels
