#include "kernels/cuda/bpr_batch.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/internal/launch.h"

namespace freshet::kernels {
namespace {

absl::Status CheckModel(const BprDeviceModel& m) {
  for (const DeviceTable* t : {m.users, m.user_acc, m.items, m.item_acc, m.bias, m.bias_acc}) {
    if (t == nullptr) return absl::InvalidArgumentError("bpr: a device table is missing");
  }
  const int dim = m.users->dim();
  if (dim > kMaxBprDim || m.items->dim() != dim) {
    return absl::InvalidArgumentError(
        absl::StrCat("bpr: users and items must have the same width <= ", kMaxBprDim, " (", dim,
                     ", ", m.items->dim(), ")"));
  }
  if (m.user_acc->dim() != 1 || m.item_acc->dim() != 1 || m.bias->dim() != 1 ||
      m.bias_acc->dim() != 1) {
    return absl::InvalidArgumentError("bpr: accumulator and bias tables must have width 1");
  }
  if (m.user_acc->rows() != m.users->rows() || m.item_acc->rows() != m.items->rows() ||
      m.bias->rows() != m.items->rows() || m.bias_acc->rows() != m.items->rows()) {
    return absl::InvalidArgumentError(
        "bpr: accumulator and bias tables must have as many rows as their main table");
  }
  return absl::OkStatus();
}

// Distinct values of `rows` (ascending) and, for each entry, the index of its value there; -1
// entries map to -1.
void AssignSlots(const std::vector<int32_t>& rows, std::vector<int32_t>* distinct,
                 std::vector<int32_t>* slots) {
  distinct->clear();
  for (const int32_t r : rows) {
    if (r >= 0) distinct->push_back(r);
  }
  std::sort(distinct->begin(), distinct->end());
  distinct->erase(std::unique(distinct->begin(), distinct->end()), distinct->end());
  slots->resize(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    (*slots)[i] =
        rows[i] < 0
            ? -1
            : static_cast<int32_t>(std::lower_bound(distinct->begin(), distinct->end(), rows[i]) -
                                   distinct->begin());
  }
}

}  // namespace

absl::Status RunBprBatch(const CudaContext& context, const BprDeviceModel& model,
                         const BprBatch& batch, const BprParams& params) {
  FRESHET_RETURN_IF_ERROR(CheckModel(model));
  const int dim = model.users->dim();
  FRESHET_RETURN_IF_ERROR(
      ValidateBprBatch(batch, params, model.users->rows(), model.items->rows(), dim));
  const int64_t b = batch.size();
  if (b == 0) return absl::OkStatus();
  const int m = 1 + batch.num_negatives;
  FRESHET_RETURN_IF_ERROR(context.Activate());

  // Host side: candidate rows per event and dense slots for the distinct rows.
  std::vector<int32_t> user_rows(batch.users.begin(), batch.users.end());
  std::vector<int32_t> cand_rows(static_cast<size_t>(b * m));
  for (int64_t e = 0; e < b; ++e) {
    cand_rows[e * m] = batch.positives[e];
    for (int n = 0; n < batch.num_negatives; ++n) {
      cand_rows[e * m + 1 + n] = batch.negatives[e * batch.num_negatives + n];
    }
  }
  std::vector<int32_t> distinct_users, user_slots, distinct_items, cand_slots;
  if (params.user_weight > 0) {
    AssignSlots(user_rows, &distinct_users, &user_slots);
  } else {
    user_slots.assign(user_rows.size(), -1);  // users are not learnt
  }
  AssignSlots(cand_rows, &distinct_items, &cand_slots);
  const int64_t num_user_slots = static_cast<int64_t>(distinct_users.size());
  const int64_t num_item_slots = static_cast<int64_t>(distinct_items.size());

  // One upload of all integers and one of all floats.
  std::vector<int32_t> ints;
  const int64_t w = batch.window;
  ints.reserve(static_cast<size_t>(2 * b + 2 * b * m + num_user_slots + num_item_slots + b * w));
  for (const auto* part :
       {&user_rows, &user_slots, &cand_rows, &cand_slots, &distinct_users, &distinct_items}) {
    ints.insert(ints.end(), part->begin(), part->end());
  }
  ints.insert(ints.end(), batch.context.begin(), batch.context.end());
  std::vector<float> floats(batch.log_q.begin(), batch.log_q.end());
  if (batch.weights.empty()) {
    floats.insert(floats.end(), static_cast<size_t>(b), 1.0f);
  } else {
    floats.insert(floats.end(), batch.weights.begin(), batch.weights.end());
  }
  floats.insert(floats.end(), batch.context_weights.begin(), batch.context_weights.end());
  const int64_t grad_floats = (num_user_slots + num_item_slots) * dim + num_item_slots;
  FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<int32_t> ints_device,
                           context.Allocate<int32_t>(static_cast<int64_t>(ints.size())));
  FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<float> floats_device,
                           context.Allocate<float>(static_cast<int64_t>(floats.size())));
  FRESHET_ASSIGN_OR_RETURN(DeviceBuffer<float> grads, context.Allocate<float>(grad_floats));
  FRESHET_RETURN_IF_ERROR(
      context.CopyToDevice(ints_device.data(), ints.data(), static_cast<int64_t>(ints.size())));
  FRESHET_RETURN_IF_ERROR(context.CopyToDevice(floats_device.data(), floats.data(),
                                               static_cast<int64_t>(floats.size())));
  FRESHET_RETURN_IF_ERROR(context.Zero(grads.data(), grads.bytes()));

  cuda_internal::BprDeviceBatch d;
  d.events = b;
  d.candidates = m;
  const int32_t* next_int = ints_device.data();
  d.user_rows = next_int;
  next_int += b;
  d.user_slots = next_int;
  next_int += b;
  d.cand_rows = next_int;
  next_int += b * m;
  d.cand_slots = next_int;
  next_int += b * m;
  d.slot_user_rows = next_int;
  next_int += num_user_slots;
  d.slot_item_rows = next_int;
  next_int += num_item_slots;
  d.window = batch.window;
  d.context = next_int;
  d.log_q = floats_device.data();
  d.weights = floats_device.data() + b * m;
  d.context_weights = floats_device.data() + b * m + b;
  d.user_weight = params.user_weight;
  d.num_user_slots = num_user_slots;
  d.num_item_slots = num_item_slots;
  d.user_grad = grads.data();
  d.item_grad = grads.data() + num_user_slots * dim;
  d.bias_grad = grads.data() + (num_user_slots + num_item_slots) * dim;

  cuda_internal::BprDeviceTables t;
  t.users = model.users->data();
  t.user_acc = model.user_acc->data();
  t.items = model.items->data();
  t.item_acc = model.item_acc->data();
  t.bias = model.bias->data();
  t.bias_acc = model.bias_acc->data();
  t.user_dirty = model.users->flags();
  t.item_dirty = model.items->flags();
  t.dim = dim;

  FRESHET_CUDA_RETURN_IF_ERROR(cuda_internal::LaunchBprGradients(t, d, context.stream()),
                               "bpr gradient kernel");
  FRESHET_CUDA_RETURN_IF_ERROR(
      cuda_internal::LaunchBprApply(t, d, params.lr, params.l2, params.epsilon, context.stream()),
      "bpr apply kernel");
  return absl::OkStatus();
}

}  // namespace freshet::kernels
