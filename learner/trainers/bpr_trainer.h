// BprTrainer: learns bpr micro-batches (kernels/cuda/learn_batch.h) on tables that a compute
// device holds, mirrored by the learner's host tables. The host tables stay the ones that
// persistence, exports and CPU scoring read: every Step() copies the rows it changed back into
// them, and rows the host writes itself (new rows, loaded rows, a reset user) go to the device
// through Upload() before the next Step(). Plain C++: no CUDA headers.
//
// Implementations: the CUDA trainer (cuda_bpr_trainer.h: tables in device memory, RunBprBatch),
// which NewBprTrainer() makes for the cuda backend, and the reference trainer below (tables in
// host memory, ReferenceBprBatch), which runs the same micro-batch semantics on a machine without
// a GPU.
#ifndef FRESHET_LEARNER_TRAINERS_BPR_TRAINER_H_
#define FRESHET_LEARNER_TRAINERS_BPR_TRAINER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernels/backend.h"
#include "kernels/cuda/learn_batch.h"

namespace freshet::learner {

// How a backend's trainer learns (NewBprTrainer).
struct BprTrainerOptions {
  int dim = 64;
  // Devices learning together in this process (devices 0 .. devices - 1): each learns the events
  // of its share of the users (user row % devices) on its own replica of the item tables, and the
  // item-table deltas are all-reduced (summed) over NCCL every sync_every_batches micro-batches
  // or sync_every_ms milliseconds (0 disables that trigger).
  int devices = 1;
  int sync_every_batches = 1;
  int64_t sync_every_ms = 0;
};

// Not thread-safe: the learner serialises every call (TopK included) against learning.
class BprTrainer {
 public:
  virtual ~BprTrainer() = default;

  // "reference", or "cuda: <device>".
  virtual std::string Name() const = 0;

  // Grows the trainer's tables to host.num_users x host.num_items rows, then copies the listed
  // user rows and item rows (vector, accumulator; for items also bias and bias accumulator) from
  // `host`. Rows must exist in `host` (InvalidArgument). ResourceExhausted when device memory
  // runs out (nothing is copied then).
  virtual absl::Status Upload(const kernels::BprTables& host, absl::Span<const int32_t> users,
                              absl::Span<const int32_t> items) = 0;

  // Learns one micro-batch on the trainer's tables (which must hold every row the batch names:
  // Upload first), then copies each row it changed into `host` (the same rows; user rows only
  // when params.user_weight > 0). On an error `host` is unchanged and the trainer's copies of the
  // batch's rows are unspecified: Upload them again before they are used.
  virtual absl::Status Step(const kernels::BprBatch& batch, const kernels::BprParams& params,
                            const kernels::BprTables& host) = 0;

  // Exact top-K over the trainer's item vectors and biases, rows [0, rows) (see
  // kernels::Backend::TopK), for serving from the device; Unimplemented where the trainer keeps
  // no separate copy worth scoring (the reference trainer: score the host tables instead).
  virtual absl::Status TopK(int64_t rows, absl::Span<const kernels::TopKQuery> queries, int k,
                            absl::Span<std::vector<kernels::ScoredItem>> results) const = 0;
};

// The trainer that learns bpr micro-batches on `backend`'s device(s): the CUDA trainer for the
// cuda backend (cuda_bpr_trainer.h; ResourceExhausted / Unavailable from a device or NCCL,
// InvalidArgument for a dim the kernels do not take or fewer devices than asked for).
// Unimplemented for a backend that learns on the host, event by event (the CPU).
absl::StatusOr<std::unique_ptr<BprTrainer>> NewBprTrainer(const kernels::Backend& backend,
                                                          const BprTrainerOptions& options);

// How a learner makes its bpr trainer: NewBprTrainer, or (tests) a stand-in for a device.
using BprTrainerFactory = absl::FunctionRef<absl::StatusOr<std::unique_ptr<BprTrainer>>(
    const kernels::Backend& backend, const BprTrainerOptions& options)>;

// The reference trainer: its own copy of the tables in host memory (laid out as on a device,
// stride == dim), ReferenceBprBatch for Step(), and the copies back and forth that the CUDA
// trainer makes, so tests can check a micro-batched learner without a GPU.
std::unique_ptr<BprTrainer> NewReferenceBprTrainer(int dim);

// The trainers' argument checks: InvalidArgument unless `host` has width `dim` with rows at least
// dim floats apart, and every listed user and item row exists in it.
absl::Status CheckTrainerArgs(const kernels::BprTables& host, int dim,
                              absl::Span<const int32_t> users, absl::Span<const int32_t> items);

// The distinct rows a batch changes, ascending: its users (empty when params.user_weight == 0)
// and its candidate items (positives and non-empty negatives; context rows are read only).
void BprBatchRows(const kernels::BprBatch& batch, const kernels::BprParams& params,
                  std::vector<int32_t>* users, std::vector<int32_t>* items);

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_TRAINERS_BPR_TRAINER_H_
