// The bpr micro-batch update on the device: gather, sampled-softmax gradients, accumulation per
// distinct row, row-wise Adagrad, scatter. Semantics: kernels/cuda/learn_batch.h (the same as
// ReferenceBprBatch in reference.h, within float tolerance).
#ifndef FRESHET_KERNELS_CUDA_BPR_BATCH_H_
#define FRESHET_KERNELS_CUDA_BPR_BATCH_H_

#include "absl/status/status.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/device_table.h"
#include "kernels/cuda/learn_batch.h"

namespace freshet::kernels {

// The device-resident bpr state (learn_batch.h's BprTables): users (dim wide) with user_acc
// (width 1, as many rows); items (dim wide) with item_acc, bias and bias_acc (width 1, as many
// rows). Not owned. The dirty flags of `users` and `items` mark the rows a batch changed; the
// companion tables change at the same rows (read them with DeviceTable::ReadRows).
struct BprDeviceModel {
  DeviceTable* users = nullptr;
  DeviceTable* user_acc = nullptr;
  DeviceTable* items = nullptr;
  DeviceTable* item_acc = nullptr;
  DeviceTable* bias = nullptr;
  DeviceTable* bias_acc = nullptr;
};

// The widest rows the bpr kernels take.
inline constexpr int kMaxBprDim = 4096;

// Applies one micro-batch (host arrays, copied to the device) on `context`'s stream; returns once
// the work is enqueued (kernel errors surface at the next synchronisation, e.g. a download).
// InvalidArgument when ValidateBprBatch fails, a table is missing, the widths are not dim / 1
// (dim <= kMaxBprDim) or the companion tables' row counts differ from their main table's;
// ResourceExhausted when scratch memory runs out. On error nothing has been written.
absl::Status RunBprBatch(const CudaContext& context, const BprDeviceModel& model,
                         const BprBatch& batch, const BprParams& params);

}  // namespace freshet::kernels

#endif  // FRESHET_KERNELS_CUDA_BPR_BATCH_H_
