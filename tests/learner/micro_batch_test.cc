// Micro-batched bpr learning (what a GPU runs) on the CPU, through the reference trainer: it must
// rank as well as event-by-event learning, lose nothing when the trainer fails, and start from the
// loaded state after a restart. The CUDA trainer is held to the reference trainer by the parity
// tests in tests/learner/trainers.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "config/config.h"
#include "gtest/gtest.h"
#include "kernels/cpu_backend.h"
#include "learner/eval/prequential_evaluator.h"
#include "learner/learner.h"
#include "learner/trainers/bpr_trainer.h"
#include "stream/file_event_source.h"
#include "stream/memory_event_source.h"
#include "tests/learner/generated_events.h"
#include "tests/learner/test_trainers.h"

namespace freshet::learner {
namespace {

const std::string kMovieLens = FRESHET_SOURCE_DIR "/../shared/data/ml-100k/u.data";

std::vector<stream::Event> Generated(int64_t events, uint64_t seed) {
  return GeneratedEvents(events, 500, 1500, seed);
}

config::Config WithMicroBatch(int micro_batch) {
  config::Config config;
  config.micro_batch = micro_batch;
  return config;
}

std::unique_ptr<Learner> MakeLearner(const config::Config& config,
                                     const kernels::Backend* backend) {
  auto learner = Learner::Create("bpr", config, backend);
  EXPECT_TRUE(learner.ok()) << learner.status();
  return learner.ok() ? std::move(*learner) : nullptr;
}

std::unique_ptr<Learner> MakeLearner(const config::Config& config, const TestDevice& device) {
  auto learner = device.NewLearner("bpr", config);
  EXPECT_TRUE(learner.ok()) << learner.status();
  return learner.ok() ? std::move(*learner) : nullptr;
}

double Recall(const config::Config& config, stream::EventSource& source, int64_t total) {
  const kernels::CpuBackend cpu;
  std::unique_ptr<Learner> learner = MakeLearner(config, &cpu);
  EvaluatorOptions options;
  options.k = 10;
  options.total_events = total;
  auto run = RunPrequential(*learner, source, options);
  EXPECT_TRUE(run.ok()) << run.status();
  return run.ok() ? run->total.recall : 0.0;
}

// Every float of the model's item and user vectors.
std::vector<float> Parameters(const Learner& learner) {
  std::vector<float> out;
  const kernels::ItemMatrixView items = learner.scoring().ItemVectors();
  for (int64_t r = 0; r < items.rows; ++r) {
    out.insert(out.end(), items.vectors + r * items.stride,
               items.vectors + r * items.stride + items.dim);
    out.push_back(items.bias[r]);
  }
  for (int32_t u = 0; u < learner.users().size(); ++u) {
    const float* row = learner.scoring().UserVector(u);
    out.insert(out.end(), row, row + items.dim);
  }
  return out;
}

TEST(MicroBatchTest, RecallOnMovieLensIsWithinThreePercentOfEventByEvent) {
  if (!std::filesystem::exists(kMovieLens)) GTEST_SKIP() << "no " << kMovieLens;
  config::Config config;
  config.bpr_replay = 0;  // micro-batches do not replay (bpr_model.h): compare like with like
  auto options = stream::FileSourceOptions::ForFormat("movielens-100k");
  ASSERT_TRUE(options.ok()) << options.status();
  auto opened = stream::FileEventSource::Open(kMovieLens, *options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  stream::FileEventSource& source = **opened;
  const int64_t total = source.size();
  const double event_by_event = Recall(config, source, total);
  source.Rewind();
  const double batched = Recall(WithMicroBatch(256), source, total);  // the GPU's default
  EXPECT_GT(event_by_event, 0.12);
  EXPECT_NEAR(batched / event_by_event, 1.0, 0.03)
      << "event by event " << event_by_event << ", micro-batches of 256 " << batched;
}

TEST(MicroBatchTest, RecallOnAGeneratedStreamIsNoWorseThanEventByEvent) {
  // On this drifting stream the summed per-batch steps even rank a little better (0.26 vs 0.24).
  const std::vector<stream::Event> events = Generated(40'000, 5);
  stream::MemoryEventSource a(events), b(events);
  config::Config config;
  config.bpr_replay = 0;  // micro-batches do not replay (bpr_model.h)
  const double event_by_event = Recall(config, a, 40'000);
  const double batched = Recall(WithMicroBatch(256), b, 40'000);
  EXPECT_GT(event_by_event, 0.1);
  EXPECT_GT(batched, 0.97 * event_by_event)
      << "event by event " << event_by_event << ", micro-batches of 256 " << batched;
}

TEST(MicroBatchTest, ApplyHoldsEventsUntilTheBatchIsFullOrFlushed) {
  const kernels::CpuBackend cpu;
  std::unique_ptr<Learner> learner = MakeLearner(WithMicroBatch(1000), &cpu);
  const std::vector<stream::Event> events = Generated(600, 7);
  learner->ApplyBatch(events);  // ApplyBatch flushes: readers after it see every event
  const std::vector<float> after_batch = Parameters(*learner);
  stream::Event more = events[10];
  more.ts_ms += 1;
  learner->Apply(more);
  EXPECT_EQ(Parameters(*learner), after_batch);  // held
  learner->Flush();
  EXPECT_NE(Parameters(*learner), after_batch);
}

// A trainer that fails some uploads and steps, as a device might (out of memory, a lost device):
// the model must learn those batches on the host and resynchronise the trainer.
class FlakyTrainer final : public BprTrainer {
 public:
  // Fails every `upload_every`-th Upload() and every `step_every`-th Step() (0: never).
  FlakyTrainer(int dim, int upload_every, int step_every)
      : inner_(NewReferenceBprTrainer(dim)), upload_every_(upload_every), step_every_(step_every) {}
  std::string Name() const override { return "flaky"; }
  absl::Status Upload(const kernels::BprTables& host, absl::Span<const int32_t> users,
                      absl::Span<const int32_t> items) override {
    if (upload_every_ > 0 && ++uploads_ % upload_every_ == 0) {
      return absl::ResourceExhaustedError("upload: out of device memory");
    }
    return inner_->Upload(host, users, items);
  }
  absl::Status Step(const kernels::BprBatch& batch, const kernels::BprParams& params,
                    const kernels::BprTables& host) override {
    if (step_every_ > 0 && ++steps_ % step_every_ == 0) {
      return absl::InternalError("step: device lost");
    }
    return inner_->Step(batch, params, host);
  }
  absl::Status TopK(int64_t, absl::Span<const kernels::TopKQuery>, int,
                    absl::Span<std::vector<kernels::ScoredItem>>) const override {
    return absl::UnavailableError("scoring: device lost");
  }

 private:
  std::unique_ptr<BprTrainer> inner_;
  const int upload_every_, step_every_;
  int uploads_ = 0, steps_ = 0;
};

TEST(MicroBatchTest, AFailingTrainerLosesNothing) {
  const std::vector<stream::Event> events = Generated(20'000, 8);
  const kernels::CpuBackend cpu;
  const TestDevice flaky([](int dim) {
    return std::make_unique<FlakyTrainer>(dim, /*upload_every=*/7, /*step_every=*/3);
  });
  config::Config config = WithMicroBatch(128);
  config.dim = 20;  // padded host rows (stride 32): the copies must skip the padding
  std::unique_ptr<Learner> reference = MakeLearner(config, &cpu);
  std::unique_ptr<Learner> failing = MakeLearner(config, flaky);
  for (size_t i = 0; i < events.size(); i += 500) {
    const absl::Span<const stream::Event> part =
        absl::MakeConstSpan(events).subspan(i, std::min<size_t>(500, events.size() - i));
    reference->ApplyBatch(part);
    failing->ApplyBatch(part);
  }
  EXPECT_GT(failing->diagnostics().DeviceFallbacks(), 10);
  EXPECT_EQ(reference->diagnostics().DeviceFallbacks(), 0);
  // The host learns a failed batch with the same arithmetic as the reference trainer.
  EXPECT_EQ(Parameters(*failing), Parameters(*reference));
  // Scoring falls back to the host tables when the device cannot score.
  Recommendation a, b;
  ASSERT_TRUE(reference->Recommend(events[0].user, 10, true, &a).ok());
  ASSERT_TRUE(failing->Recommend(events[0].user, 10, true, &b).ok());
  EXPECT_EQ(a.items, b.items);
}

// Loads every row of `from`, as the store would, into the empty learner `to`.
void LoadInto(Learner& from, Learner* to) {
  std::string value;
  from.EncodeGlobals(&value);
  ASSERT_TRUE(to->BeginLoad(value).ok());
  for (int32_t r = 0; r < from.users().size(); ++r) {
    value.clear();
    from.EncodeUser(r, &value);
    ASSERT_TRUE(to->LoadUser(r, value).ok());
    value.clear();
    from.EncodeHistory(r, &value);
    ASSERT_TRUE(to->LoadHistory(r, value).ok());
  }
  for (int32_t r = 0; r < from.items().size(); ++r) {
    value.clear();
    from.EncodeItem(r, &value);
    ASSERT_TRUE(to->LoadItem(r, value).ok());
  }
  ASSERT_TRUE(to->FinishLoad().ok());
}

TEST(MicroBatchTest, TheFirstBatchAfterALoadStartsFromTheLoadedRows) {
  const std::vector<stream::Event> events = Generated(5000, 9);
  const kernels::CpuBackend cpu;
  const config::Config config = WithMicroBatch(64);
  std::unique_ptr<Learner> original = MakeLearner(config, &cpu);
  original->ApplyBatch(events);
  // Persist every row and load them into a fresh micro-batched learner.
  std::unique_ptr<Learner> loaded = MakeLearner(config, &cpu);
  LoadInto(*original, loaded.get());
  ASSERT_EQ(Parameters(*loaded), Parameters(*original));
  // The same load into a learner whose trainer never manages a step: it learns every batch on the
  // host tables, which certainly hold the loaded rows. A trainer that had missed a loaded row
  // would learn from other values there.
  const TestDevice host_only([](int dim) {
    return std::make_unique<FlakyTrainer>(dim, /*upload_every=*/0, /*step_every=*/1);
  });
  std::unique_ptr<Learner> on_host = MakeLearner(config, host_only);
  LoadInto(*original, on_host.get());
  const std::vector<float> before = Parameters(*loaded);
  for (size_t i = 0; i < 1000; i += 100) {
    const absl::Span<const stream::Event> part = absl::MakeConstSpan(events).subspan(i, 100);
    loaded->ApplyBatch(part);
    on_host->ApplyBatch(part);
  }
  EXPECT_NE(Parameters(*loaded), before);
  EXPECT_EQ(Parameters(*loaded), Parameters(*on_host));
  EXPECT_GT(on_host->diagnostics().DeviceFallbacks(), 0);
}

TEST(MicroBatchTest, TheCpuBackendHasNoTrainerSoMicroBatchesGoToTheReferenceTrainer) {
  const kernels::CpuBackend cpu;
  const absl::StatusOr<std::unique_ptr<BprTrainer>> trainer =
      NewBprTrainer(cpu, BprTrainerOptions());
  EXPECT_EQ(trainer.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(trainer.status().message(), "the cpu backend learns on the host, one event at a time");
  EXPECT_EQ(MakeLearner(WithMicroBatch(64), &cpu)->diagnostics().Learning(), "reference");
  EXPECT_EQ(MakeLearner(config::Config(), &cpu)->diagnostics().Learning(), "host");
}

TEST(MicroBatchTest, SettingsTheKernelsDoNotImplementAreRefused) {
  const kernels::CpuBackend cpu;
  config::Config config = WithMicroBatch(64);
  config.bpr_loss = "bpr";
  auto learner = Learner::Create("bpr", config, &cpu);
  EXPECT_EQ(learner.status().code(), absl::StatusCode::kInvalidArgument);
  config.bpr_loss = "softmax";
  config.bpr_tied_context = false;
  learner = Learner::Create("bpr", config, &cpu);
  EXPECT_EQ(learner.status().code(), absl::StatusCode::kInvalidArgument);
  // Event by event (no micro-batching asked for), both are fine.
  config.micro_batch = 0;
  EXPECT_TRUE(Learner::Create("bpr", config, &cpu).ok());
  // Several GPUs need the cuda backend.
  config = config::Config();
  config.gpus = 2;
  learner = Learner::Create("bpr", config, &cpu);
  EXPECT_EQ(learner.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace freshet::learner
