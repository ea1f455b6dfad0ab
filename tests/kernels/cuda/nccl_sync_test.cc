// NcclGroup and ItemModelSync: a single rank (needs one device), several in-process ranks (needs
// two), and the argument errors. The replicas' NCCL transport, which hands the unique id to the
// other ranks through a rendezvous, is tested in tests/engine/replicas/nccl_collective_test.cc.
#include "kernels/cuda/nccl_sync.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/device_table.h"
#include "tests/kernels/cuda/cuda_test_util.h"

namespace freshet::kernels {
namespace {

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
  // No id (the rendezvous' errors, a missing or late id, are NewNcclCollective's).
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

}  // namespace
}  // namespace freshet::kernels
