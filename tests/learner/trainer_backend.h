// A CPU backend whose bpr trainer the test supplies (one that fails like a device might, or one
// that checks what it is given): scoring is the CPU backend's.
#ifndef FRESHET_TESTS_LEARNER_TRAINER_BACKEND_H_
#define FRESHET_TESTS_LEARNER_TRAINER_BACKEND_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu_backend.h"
#include "kernels/cuda/bpr_trainer.h"

namespace freshet::learner {

class TrainerBackend final : public kernels::Backend {
 public:
  // `make` returns a new trainer for rows of `dim` floats.
  using MakeTrainer = std::function<std::unique_ptr<kernels::BprTrainer>(int dim)>;
  TrainerBackend(std::string name, MakeTrainer make)
      : name_(std::move(name)), make_(std::move(make)) {}

  std::string Name() const override { return name_; }
  absl::Status TopK(const kernels::ItemMatrixView& items,
                    absl::Span<const kernels::TopKQuery> queries, int k,
                    absl::Span<std::vector<kernels::ScoredItem>> results) const override {
    return cpu_.TopK(items, queries, k, results);
  }
  absl::Status TopKFromScores(const float* scores, int64_t n, absl::Span<const int32_t> exclude,
                              int k, std::vector<kernels::ScoredItem>* result) const override {
    return cpu_.TopKFromScores(scores, n, exclude, k, result);
  }
  absl::StatusOr<std::unique_ptr<kernels::BprTrainer>> NewBprTrainer(
      const kernels::BprTrainerOptions& options) const override {
    return make_(options.dim);
  }

 private:
  const std::string name_;
  const MakeTrainer make_;
  kernels::CpuBackend cpu_;
};

}  // namespace freshet::learner

#endif  // FRESHET_TESTS_LEARNER_TRAINER_BACKEND_H_
