#include "engine/replicas/collective.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/mutex.h"

namespace freshet::engine {

absl::StatusOr<std::vector<std::string>> Collective::AllGather(absl::string_view mine) {
  if (!broken_.ok()) return broken_;
  absl::StatusOr<std::vector<std::string>> result = Exchange(mine);
  if (!result.ok()) {
    broken_ = absl::FailedPreconditionError(
        absl::StrCat("the replica group is broken: ", result.status().message()));
  }
  return result;
}

namespace {

// What the ranks of one in-process group share: a slot per rank for the exchange in progress,
// and the result of the last completed one.
struct Rendezvous {
  explicit Rendezvous(int world_size)
      : world_size(world_size), slots(static_cast<size_t>(world_size)) {}
  const int world_size;
  Mutex mu;
  CondVar cv;
  std::vector<std::string> slots ABSL_GUARDED_BY(mu);
  int arrived ABSL_GUARDED_BY(mu) = 0;
  int64_t generation ABSL_GUARDED_BY(mu) = 0;  // completed exchanges
  std::vector<std::string> result ABSL_GUARDED_BY(mu);
  absl::Status broken ABSL_GUARDED_BY(mu) = absl::OkStatus();
};

class InProcessCollective : public Collective {
 public:
  InProcessCollective(std::shared_ptr<Rendezvous> shared, int rank, absl::Duration timeout)
      : shared_(std::move(shared)), rank_(rank), timeout_(timeout) {}

  int rank() const override { return rank_; }
  int world_size() const override { return shared_->world_size; }
  std::string Name() const override { return "in-process"; }

 protected:
  absl::StatusOr<std::vector<std::string>> Exchange(absl::string_view mine) override {
    Rendezvous& s = *shared_;
    MutexLock lock(&s.mu);
    if (!s.broken.ok()) return s.broken;
    s.slots[static_cast<size_t>(rank_)] = std::string(mine);
    const int64_t generation = s.generation;
    if (++s.arrived == world_size()) {
      // The last to arrive completes the exchange. The next one cannot complete before every
      // rank has called again, which each does only after copying this result.
      s.result.swap(s.slots);
      s.slots.assign(s.result.size(), std::string());
      s.arrived = 0;
      ++s.generation;
      s.cv.SignalAll();
      return s.result;
    }
    const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoMicroseconds(timeout_);
    while (s.generation == generation && s.broken.ok()) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= left.zero()) break;
      s.cv.WaitFor(&s.mu, absl::FromChrono(left));
    }
    if (s.generation != generation) return s.result;
    if (s.broken.ok()) {
      s.broken = absl::FailedPreconditionError(
          absl::StrCat("the replica group is broken: rank ", rank_, " waited ",
                       absl::FormatDuration(timeout_), " for the others"));
      s.cv.SignalAll();
      return absl::DeadlineExceededError(absl::StrCat(
          "rank ", rank_, " of ", world_size(), ": not every rank joined the exchange within ",
          absl::FormatDuration(timeout_)));
    }
    return s.broken;
  }

 private:
  std::shared_ptr<Rendezvous> shared_;
  const int rank_;
  const absl::Duration timeout_;
};

}  // namespace

absl::StatusOr<std::vector<std::unique_ptr<Collective>>> NewInProcessCollectives(
    int world_size, absl::Duration timeout) {
  if (world_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("a replica group needs at least one rank, got ", world_size));
  }
  auto shared = std::make_shared<Rendezvous>(world_size);
  std::vector<std::unique_ptr<Collective>> ranks;
  for (int r = 0; r < world_size; ++r) {
    ranks.push_back(std::make_unique<InProcessCollective>(shared, r, timeout));
  }
  return ranks;
}

}  // namespace freshet::engine
