// A stand-in for a device: learners whose bpr trainer the test supplies (one that fails like a
// device might, or one that checks what it is given) in place of NewBprTrainer's; scoring is the
// CPU backend's.
#ifndef FRESHET_TESTS_LEARNER_TEST_TRAINERS_H_
#define FRESHET_TESTS_LEARNER_TEST_TRAINERS_H_

#include <functional>
#include <memory>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "config/config.h"
#include "kernels/backend.h"
#include "kernels/cpu_backend.h"
#include "learner/learner.h"
#include "learner/trainers/bpr_trainer.h"

namespace freshet::learner {

class TestDevice {
 public:
  // `make` returns a new trainer for rows of `dim` floats.
  using MakeTrainer = std::function<std::unique_ptr<BprTrainer>(int dim)>;
  explicit TestDevice(MakeTrainer make) : make_(std::move(make)) {}

  // A learner that scores on the CPU backend and learns bpr micro-batches on make()'s trainers.
  absl::StatusOr<std::unique_ptr<Learner>> NewLearner(absl::string_view algorithm,
                                                      const config::Config& config) const {
    return Learner::Create(
        algorithm, config, &cpu_,
        [this](const kernels::Backend&, const BprTrainerOptions& options)
            -> absl::StatusOr<std::unique_ptr<BprTrainer>> { return make_(options.dim); });
  }

 private:
  const MakeTrainer make_;
  const kernels::CpuBackend cpu_;
};

}  // namespace freshet::learner

#endif  // FRESHET_TESTS_LEARNER_TEST_TRAINERS_H_
