// DeviceTable: growth keeps rows, dirty rows come back in order and only once, and errors are
// statuses (InvalidArgument for bad rows, ResourceExhausted for an impossible allocation).
#include "kernels/cuda/device_table.h"

#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "kernels/cuda/context.h"
#include "tests/kernels/cuda/cuda_test_util.h"

namespace freshet::kernels {
namespace {

std::unique_ptr<DeviceTable> MakeTable(const CudaContext* context, int dim) {
  absl::StatusOr<std::unique_ptr<DeviceTable>> table = DeviceTable::Create(context, dim);
  EXPECT_TRUE(table.ok()) << table.status();
  return table.ok() ? std::move(*table) : nullptr;
}

TEST(CudaDeviceTableTest, GrowingKeepsRowsAndFillsNewOnes) {
  FRESHET_CUDA_CONTEXT_OR_SKIP(context);
  std::unique_ptr<DeviceTable> table = MakeTable(context.get(), 3);
  ASSERT_NE(table, nullptr);
  ASSERT_TRUE(table->Resize(5, 1.5f).ok());
  ASSERT_TRUE(table->Upload(1, std::vector<float>{1, 2, 3, 4, 5, 6}).ok());
  // Grow one row at a time for a while (capacity doubles), then by a lot.
  int64_t moves = 0, capacity = table->capacity();
  for (int64_t rows = 6; rows <= 40; ++rows) {
    ASSERT_TRUE(table->Resize(rows, -1.0f).ok());
    if (table->capacity() != capacity) ++moves;
    capacity = table->capacity();
  }
  EXPECT_LE(moves, 4);
  ASSERT_TRUE(table->Resize(1000, -2.0f).ok());
  EXPECT_EQ(table->rows(), 1000);
  EXPECT_GE(table->capacity(), 1000);
  std::vector<float> all;
  ASSERT_TRUE(table->Download(0, 1000, &all).ok());
  ASSERT_EQ(all.size(), 3000u);
  const std::vector<float> head(all.begin(), all.begin() + 15);
  EXPECT_EQ(head, (std::vector<float>{1.5f, 1.5f, 1.5f, 1, 2, 3, 4, 5, 6, 1.5f, 1.5f, 1.5f, 1.5f,
                                      1.5f, 1.5f}));
  for (int64_t i = 15; i < 40 * 3; ++i) EXPECT_EQ(all[i], -1.0f) << i;
  for (int64_t i = 40 * 3; i < 3000; ++i) ASSERT_EQ(all[i], -2.0f) << i;
  // Growth does not make rows dirty.
  absl::StatusOr<DirtyRows> dirty = table->TakeDirtyRows();
  ASSERT_TRUE(dirty.ok()) << dirty.status();
  EXPECT_TRUE(dirty->rows.empty());
}

TEST(CudaDeviceTableTest, DirtyRowsComeBackSortedWithTheirValuesOnce) {
  FRESHET_CUDA_CONTEXT_OR_SKIP(context);
  std::unique_ptr<DeviceTable> table = MakeTable(context.get(), 2);
  ASSERT_NE(table, nullptr);
  ASSERT_TRUE(table->Resize(100).ok());
  std::vector<float> values(200);
  for (int i = 0; i < 200; ++i) values[i] = static_cast<float>(i);
  ASSERT_TRUE(table->Upload(0, values).ok());
  ASSERT_TRUE(table->MarkDirty(std::vector<int32_t>{50, 7, 3, 7, 99}).ok());
  absl::StatusOr<DirtyRows> dirty = table->TakeDirtyRows();
  ASSERT_TRUE(dirty.ok()) << dirty.status();
  EXPECT_EQ(dirty->rows, (std::vector<int32_t>{3, 7, 50, 99}));
  EXPECT_EQ(dirty->values, (std::vector<float>{6, 7, 14, 15, 100, 101, 198, 199}));
  dirty = table->TakeDirtyRows();
  ASSERT_TRUE(dirty.ok());
  EXPECT_TRUE(dirty->rows.empty());
  // Dirty flags survive growth.
  ASSERT_TRUE(table->MarkDirty(std::vector<int32_t>{1}).ok());
  ASSERT_TRUE(table->Resize(5000).ok());
  dirty = table->TakeDirtyRows();
  ASSERT_TRUE(dirty.ok());
  EXPECT_EQ(dirty->rows, (std::vector<int32_t>{1}));
  std::vector<float> read;
  ASSERT_TRUE(table->ReadRows(std::vector<int32_t>{9, 0, 9}, &read).ok());
  EXPECT_EQ(read, (std::vector<float>{18, 19, 0, 1, 18, 19}));
}

TEST(CudaDeviceTableTest, ErrorsAreStatuses) {
  FRESHET_CUDA_CONTEXT_OR_SKIP(context);
  EXPECT_EQ(DeviceTable::Create(context.get(), 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::unique_ptr<DeviceTable> table = MakeTable(context.get(), 4);
  ASSERT_NE(table, nullptr);
  ASSERT_TRUE(table->Resize(10).ok());
  EXPECT_EQ(table->Resize(5).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(table->Upload(9, std::vector<float>(8)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(table->Upload(0, std::vector<float>(3)).code(), absl::StatusCode::kInvalidArgument);
  std::vector<float> out;
  EXPECT_EQ(table->Download(5, 6, &out).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(table->MarkDirty(std::vector<int32_t>{10}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(table->ReadRows(std::vector<int32_t>{-1}, &out).code(),
            absl::StatusCode::kInvalidArgument);
  // 2^31 - 1 rows of 4096 floats is 32 TiB: out of memory, reported, and the table is unchanged.
  std::unique_ptr<DeviceTable> wide = MakeTable(context.get(), 4096);
  ASSERT_NE(wide, nullptr);
  const absl::Status huge = wide->Resize(std::numeric_limits<int32_t>::max());
  EXPECT_EQ(huge.code(), absl::StatusCode::kResourceExhausted) << huge;
  EXPECT_EQ(wide->rows(), 0);
  ASSERT_TRUE(wide->Resize(2).ok());
  ASSERT_TRUE(context->Synchronize().ok());
}

}  // namespace
}  // namespace freshet::kernels
