// DeviceTable: a device-resident table of `rows` x `dim` floats (row-major, stride == dim) that
// grows, with one dirty flag per row so that the persister can copy the changed rows to the host.
#ifndef FRESHET_KERNELS_CUDA_DEVICE_TABLE_H_
#define FRESHET_KERNELS_CUDA_DEVICE_TABLE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernels/cuda/context.h"

namespace freshet::kernels {

// Rows that changed since the last TakeDirtyRows(), in ascending row order, and their values
// (rows.size() * dim floats, row after row).
struct DirtyRows {
  std::vector<int32_t> rows;
  std::vector<float> values;
};

// Storage is reserved by doubling, so a table that grows one row at a time moves its data
// O(log rows) times. Growing moves the data: device pointers taken before a Resize() are invalid
// after it. Kernels that change rows (bpr_batch.h, ials_fold_in.h, nccl_sync.h) set the dirty flags
// of the rows they write; host writes (Upload) do not, since the host already has those values.
//
// Thread-safety: not thread-safe; uses its context's stream, and the context must outlive it.
class DeviceTable {
 public:
  // An empty table of width `dim` (>= 1) with room for `reserve_rows` rows. InvalidArgument for
  // dim < 1 or a negative reserve; ResourceExhausted when the device is out of memory.
  static absl::StatusOr<std::unique_ptr<DeviceTable>> Create(const CudaContext* context, int dim,
                                                             int64_t reserve_rows = 0);

  int dim() const { return dim_; }
  int64_t rows() const { return rows_; }
  int64_t capacity() const { return capacity_; }
  const CudaContext& context() const { return *context_; }

  // Device pointers: row r at data() + r * dim(); flags()[r] != 0 when row r is dirty. Valid until
  // the next Resize().
  float* data() const { return values_.data(); }
  uint8_t* flags() const { return flags_.data(); }

  // Sets the number of rows. New rows hold `fill` and are clean; existing rows keep their values.
  // Capacity grows to max(rows, 2 * capacity). InvalidArgument for shrinking or for more than
  // 2^31 - 1 rows (rows are int32 ids); ResourceExhausted when the device is out of memory (the
  // table is then unchanged).
  absl::Status Resize(int64_t rows, float fill = 0.0f);

  // Copies host rows [first_row, first_row + values.size() / dim) to the device. The values'
  // size must be a multiple of dim and the rows must exist (InvalidArgument).
  absl::Status Upload(int64_t first_row, absl::Span<const float> values);

  // Copies rows [first_row, first_row + count) into `out` (resized to count * dim).
  absl::Status Download(int64_t first_row, int64_t count, std::vector<float>* out) const;

  // Copies the given rows (any order, repeats allowed) into `out` (resized to rows.size() * dim),
  // e.g. a companion table's rows at the ids another table reported dirty. InvalidArgument for a
  // row outside [0, rows()).
  absl::Status ReadRows(absl::Span<const int32_t> rows, std::vector<float>* out) const;

  // Marks rows dirty from the host (e.g. after an Upload the persister must see).
  absl::Status MarkDirty(absl::Span<const int32_t> rows);

  // Copies every dirty row to the host and clears the flags, in one pass over the flags and one
  // gather of the dirty rows.
  absl::StatusOr<DirtyRows> TakeDirtyRows();

 private:
  DeviceTable(const CudaContext* context, int dim) : context_(context), dim_(dim) {}
  absl::Status CheckRows(absl::Span<const int32_t> rows) const;

  const CudaContext* context_;
  const int dim_;
  int64_t rows_ = 0;
  int64_t capacity_ = 0;
  DeviceBuffer<float> values_;   // capacity_ * dim_
  DeviceBuffer<uint8_t> flags_;  // capacity_
};

}  // namespace freshet::kernels

#endif  // FRESHET_KERNELS_CUDA_DEVICE_TABLE_H_
