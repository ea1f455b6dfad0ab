#include "kernels/cuda/device_table.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <numeric>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/internal/launch.h"

namespace freshet::kernels {

absl::StatusOr<std::unique_ptr<DeviceTable>> DeviceTable::Create(const CudaContext* context,
                                                                 int dim, int64_t reserve_rows) {
  if (dim < 1) return absl::InvalidArgumentError(absl::StrCat("table width ", dim, " < 1"));
  if (reserve_rows < 0 || reserve_rows > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot reserve ", reserve_rows, " rows"));
  }
  FRESHET_RETURN_IF_ERROR(context->Activate());
  std::unique_ptr<DeviceTable> table(new DeviceTable(context, dim));
  if (reserve_rows > 0) {
    FRESHET_ASSIGN_OR_RETURN(table->values_, context->Allocate<float>(reserve_rows * dim));
    FRESHET_ASSIGN_OR_RETURN(table->flags_, context->Allocate<uint8_t>(reserve_rows));
    table->capacity_ = reserve_rows;
  }
  return table;
}

absl::Status DeviceTable::Resize(int64_t rows, float fill) {
  if (rows < rows_) {
    return absl::InvalidArgumentError(
        absl::StrCat("a device table only grows: ", rows_, " rows, asked for ", rows));
  }
  if (rows > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(absl::StrCat(rows, " rows exceed the int32 row ids"));
  }
  if (rows == rows_) return absl::OkStatus();
  FRESHET_RETURN_IF_ERROR(context_->Activate());
  if (rows > capacity_) {
    const int64_t capacity = std::max<int64_t>(
        rows, std::min<int64_t>(2 * capacity_, std::numeric_limits<int32_t>::max()));
    // Allocate both before touching anything, so that running out of memory leaves the table as
    // it was.
    FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<float> values,
                             context_->Allocate<float>(capacity * dim_));
    FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<uint8_t> flags, context_->Allocate<uint8_t>(capacity));
    FRESHET_RETURN_IF_ERROR(context_->CopyOnDevice(values.data(), values_.data(), rows_ * dim_));
    FRESHET_RETURN_IF_ERROR(context_->CopyOnDevice(flags.data(), flags_.data(), rows_));
    values_ = std::move(values);
    flags_ = std::move(flags);
    capacity_ = capacity;
  }
  FRESHET_CUDA_RETURN_IF_ERROR(
      cuda_internal::LaunchFill(values_.data() + rows_ * dim_, (rows - rows_) * dim_, fill,
                                context_->stream()),
      "fill kernel");
  FRESHET_RETURN_IF_ERROR(context_->Zero(flags_.data() + rows_, static_cast<size_t>(rows - rows_)));
  rows_ = rows;
  return absl::OkStatus();
}

absl::Status DeviceTable::Upload(int64_t first_row, absl::Span<const float> values) {
  if (values.size() % static_cast<size_t>(dim_) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("upload of ", values.size(), " floats into a table of width ", dim_));
  }
  const int64_t count = static_cast<int64_t>(values.size()) / dim_;
  if (first_row < 0 || first_row + count > rows_) {
    return absl::InvalidArgumentError(absl::StrCat("upload of rows [", first_row, ", ",
                                                   first_row + count, ") into a table of ", rows_,
                                                   " rows"));
  }
  FRESHET_RETURN_IF_ERROR(context_->Activate());
  return context_->CopyToDevice(values_.data() + first_row * dim_, values.data(),
                                static_cast<int64_t>(values.size()));
}

absl::Status DeviceTable::Download(int64_t first_row, int64_t count,
                                   std::vector<float>* out) const {
  if (first_row < 0 || count < 0 || first_row + count > rows_) {
    return absl::InvalidArgumentError(absl::StrCat("download of rows [", first_row, ", ",
                                                   first_row + count, ") from a table of ", rows_,
                                                   " rows"));
  }
  FRESHET_RETURN_IF_ERROR(context_->Activate());
  out->resize(static_cast<size_t>(count * dim_));
  FRESHET_RETURN_IF_ERROR(
      context_->CopyToHost(out->data(), values_.data() + first_row * dim_, count * dim_));
  return context_->Synchronize();
}

absl::Status DeviceTable::CheckRows(absl::Span<const int32_t> rows) const {
  for (const int32_t r : rows) {
    if (r < 0 || r >= rows_) {
      return absl::InvalidArgumentError(
          absl::StrCat("row ", r, " outside a table of ", rows_, " rows"));
    }
  }
  return absl::OkStatus();
}

absl::Status DeviceTable::ReadRows(absl::Span<const int32_t> rows, std::vector<float>* out) const {
  FRESHET_RETURN_IF_ERROR(CheckRows(rows));
  out->resize(rows.size() * static_cast<size_t>(dim_));
  if (rows.empty()) return absl::OkStatus();
  FRESHET_RETURN_IF_ERROR(context_->Activate());
  const int64_t count = static_cast<int64_t>(rows.size());
  FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<int32_t> ids, context_->Allocate<int32_t>(count));
  FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<float> gathered, context_->Allocate<float>(count * dim_));
  FRESHET_RETURN_IF_ERROR(context_->CopyToDevice(ids.data(), rows.data(), count));
  FRESHET_CUDA_RETURN_IF_ERROR(
      cuda_internal::LaunchGatherRows(values_.data(), dim_, ids.data(), count, gathered.data(),
                                      context_->stream()),
      "gather kernel");
  FRESHET_RETURN_IF_ERROR(context_->CopyToHost(out->data(), gathered.data(), count * dim_));
  return context_->Synchronize();
}

absl::Status DeviceTable::MarkDirty(absl::Span<const int32_t> rows) {
  FRESHET_RETURN_IF_ERROR(CheckRows(rows));
  if (rows.empty()) return absl::OkStatus();
  FRESHET_RETURN_IF_ERROR(context_->Activate());
  const int64_t count = static_cast<int64_t>(rows.size());
  FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<int32_t> ids, context_->Allocate<int32_t>(count));
  FRESHET_RETURN_IF_ERROR(context_->CopyToDevice(ids.data(), rows.data(), count));
  FRESHET_CUDA_RETURN_IF_ERROR(
      cuda_internal::LaunchMarkRows(flags_.data(), ids.data(), count, context_->stream()),
      "mark kernel");
  return context_->Synchronize();
}

absl::StatusOr<DirtyRows> DeviceTable::TakeDirtyRows() {
  DirtyRows dirty;
  if (rows_ == 0) return dirty;
  FRESHET_RETURN_IF_ERROR(context_->Activate());
  // ids[0 .. rows) receives the dirty rows; the count sits after them.
  FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<int32_t> ids, context_->Allocate<int32_t>(rows_ + 1));
  int32_t* count_device = ids.data() + rows_;
  FRESHET_RETURN_IF_ERROR(context_->Zero(count_device, sizeof(int32_t)));
  FRESHET_CUDA_RETURN_IF_ERROR(cuda_internal::LaunchCompactDirty(flags_.data(), rows_, ids.data(),
                                                                 count_device, context_->stream()),
                               "dirty compaction kernel");
  int32_t count = 0;
  FRESHET_RETURN_IF_ERROR(context_->CopyToHost(&count, count_device, 1));
  FRESHET_RETURN_IF_ERROR(context_->Synchronize());
  if (count == 0) return dirty;
  FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<float> gathered,
                           context_->Allocate<float>(static_cast<int64_t>(count) * dim_));
  FRESHET_CUDA_RETURN_IF_ERROR(
      cuda_internal::LaunchGatherRows(values_.data(), dim_, ids.data(), count, gathered.data(),
                                      context_->stream()),
      "gather kernel");
  std::vector<int32_t> unordered(static_cast<size_t>(count));
  std::vector<float> values(static_cast<size_t>(count) * dim_);
  FRESHET_RETURN_IF_ERROR(context_->CopyToHost(unordered.data(), ids.data(), count));
  FRESHET_RETURN_IF_ERROR(
      context_->CopyToHost(values.data(), gathered.data(), static_cast<int64_t>(count) * dim_));
  FRESHET_RETURN_IF_ERROR(context_->Synchronize());
  // The compaction appends in no particular order; hand rows out ascending.
  std::vector<int32_t> order(static_cast<size_t>(count));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return unordered[a] < unordered[b]; });
  dirty.rows.resize(order.size());
  dirty.values.resize(values.size());
  for (size_t i = 0; i < order.size(); ++i) {
    dirty.rows[i] = unordered[order[i]];
    std::copy_n(values.begin() + static_cast<int64_t>(order[i]) * dim_, dim_,
                dirty.values.begin() + static_cast<int64_t>(i) * dim_);
  }
  return dirty;
}

}  // namespace freshet::kernels
