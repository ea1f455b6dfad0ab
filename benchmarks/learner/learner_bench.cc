// learner_bench: learning throughput of freshet's models on a generated clickstream, one core.
//
// Workloads (each prints one JSON object per line on stdout):
//   bare     a bare SGD loop over dense arrays (d, 1 positive + `negatives` uniform negatives,
//            logistic loss, vectorised dot products; no ids, no history, no Adagrad, no
//            short-term part): the floor any learner pays on this stream and machine
//   learn    Learner::ApplyBatch over the stream, per algorithm (no ranking)
//   query    after learning the stream: Learner::Recommend (k=10, exclude-seen) for the users of
//            the stream's last --queries events, one at a time (events_per_sec: queries per
//            second)
//   eval     RunPrequential with evaluation (test-then-train, k=10) over the first
//            --eval_events events, per algorithm
// Usage:
//   learner_bench [--events N] [--users U] [--items I] [--algos bpr,ials,cooc,hybrid,popularity]
//                 [--eval_events N] [--queries N] [--seed S] [--set key=value ...]
// Defaults: 5,000,000 events, 100,000 users, 20,000 items, eval on 200,000 events. Streams are
// generated in memory (stream/synthetic) before timing starts; only learning is timed.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/json_writer.h"
#include "common/random.h"
#include "config/config.h"
#include "kernels/backend.h"
#include "learner/eval/prequential_evaluator.h"
#include "learner/internal/vector_ops.h"
#include "learner/learner.h"
#include "stream/memory_event_source.h"
#include "stream/synthetic/synthetic_stream.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Flags {
  int64_t events = 5'000'000;
  int32_t users = 100'000;
  int32_t items = 20'000;
  int64_t eval_events = 200'000;
  int64_t queries = 2'000;
  uint64_t seed = 1;
  std::string algos = "bpr,ials,cooc,hybrid,popularity";
  std::vector<std::string> sets;
};

bool ParseFlags(int argc, char** argv, Flags* f) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    bool ok = true;
    if (arg == "--events")
      ok = absl::SimpleAtoi(value(), &f->events);
    else if (arg == "--users")
      ok = absl::SimpleAtoi(value(), &f->users);
    else if (arg == "--items")
      ok = absl::SimpleAtoi(value(), &f->items);
    else if (arg == "--eval_events")
      ok = absl::SimpleAtoi(value(), &f->eval_events);
    else if (arg == "--queries")
      ok = absl::SimpleAtoi(value(), &f->queries);
    else if (arg == "--seed")
      ok = absl::SimpleAtoi(value(), &f->seed);
    else if (arg == "--algos")
      f->algos = value();
    else if (arg == "--set")
      f->sets.push_back(value());
    else
      ok = false;
    if (!ok) {
      std::fprintf(stderr, "learner_bench: bad argument '%s' (see the top of learner_bench.cc)\n",
                   arg.c_str());
      return false;
    }
  }
  return true;
}

void Print(const std::string& workload, const std::string& algo, int64_t events, double seconds,
           const freshet::learner::ReplayMetrics* metrics, const Flags& f, int dim) {
  freshet::JsonWriter w;
  w.BeginObject();
  w.Key("workload").String(workload);
  w.Key("algo").String(algo);
  w.Key("events").Int(events);
  w.Key("users").Int(f.users);
  w.Key("items").Int(f.items);
  w.Key("dim").Int(dim);
  w.Key("seconds").Double(seconds);
  w.Key("events_per_sec").Double(static_cast<double>(events) / seconds);
  if (metrics != nullptr) {
    w.Key("recall").Double(metrics->recall);
    w.Key("evaluated").Int(metrics->evaluated);
  }
  w.EndObject();
  std::printf("%s\n", w.str().c_str());
  std::fflush(stdout);
}

// The floor: logistic SGD on dense arrays with the stream's ids, nothing else.
double BareLoop(const std::vector<freshet::stream::SyntheticEventIds>& ids, const Flags& f, int dim,
                int negatives) {
  const size_t d = static_cast<size_t>(dim);
  std::vector<float> users(static_cast<size_t>(f.users) * d),
      items(static_cast<size_t>(f.items) * d);
  freshet::Rng rng(f.seed);
  for (float& x : users) x = static_cast<float>(rng.Normal()) * 0.1f;
  for (float& x : items) x = static_cast<float>(rng.Normal()) * 0.1f;
  std::vector<float> grad(d);
  const float lr = 0.05f;
  const Clock::time_point start = Clock::now();
  for (const auto& e : ids) {
    float* u = &users[static_cast<size_t>(e.user) * d];
    std::fill(grad.begin(), grad.end(), 0.0f);
    for (int n = 0; n <= negatives; ++n) {
      const int32_t item = n == 0 ? e.item : static_cast<int32_t>(rng.Below(f.items));
      float* q = &items[static_cast<size_t>(item) * d];
      const float s = freshet::learner::internal::Dot(u, q, dim);
      const float g = (n == 0 ? 1.0f : 0.0f) - 1.0f / (1.0f + std::exp(-s));
      for (size_t j = 0; j < d; ++j) {
        grad[j] += g * q[j];
        q[j] += lr * g * u[j];
      }
    }
    for (size_t j = 0; j < d; ++j) u[j] += lr * grad[j];
  }
  return Seconds(start);
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  if (!ParseFlags(argc, argv, &f)) return 2;
  freshet::config::Config config;
  if (absl::Status s = freshet::config::ApplyOverrides(&config, f.sets); !s.ok()) {
    std::fprintf(stderr, "learner_bench: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  freshet::stream::SyntheticStreamOptions options;
  options.events = f.events;
  options.users = f.users;
  options.items = f.items;
  options.seed = f.seed;
  auto generator = freshet::stream::SyntheticStream::Create(options);
  if (!generator.ok()) {
    std::fprintf(stderr, "learner_bench: %s\n", std::string(generator.status().message()).c_str());
    return 2;
  }
  std::vector<freshet::stream::Event> events(static_cast<size_t>(f.events));
  for (auto& e : events) generator->Next(&e);
  auto id_stream = freshet::stream::SyntheticStream::Create(options);
  std::vector<freshet::stream::SyntheticEventIds> ids(static_cast<size_t>(f.events));
  for (auto& e : ids) id_stream->NextIds(&e);

  Print("bare", "sgd", f.events, BareLoop(ids, f, config.dim, config.bpr_negatives), nullptr, f,
        config.dim);

  auto backend = freshet::kernels::CreateBackend("cpu");
  if (!backend.ok()) return 1;
  for (absl::string_view algo : absl::StrSplit(f.algos, ',', absl::SkipEmpty())) {
    auto learner = freshet::learner::Learner::Create(algo, config, backend->get());
    if (!learner.ok()) {
      std::fprintf(stderr, "learner_bench: %s\n", std::string(learner.status().message()).c_str());
      return 2;
    }
    const Clock::time_point start = Clock::now();
    constexpr size_t kBatch = 4096;
    for (size_t i = 0; i < events.size(); i += kBatch) {
      (*learner)->ApplyBatch(
          absl::MakeConstSpan(events.data() + i, std::min(kBatch, events.size() - i)));
    }
    Print("learn", std::string(algo), f.events, Seconds(start), nullptr, f, config.dim);

    const size_t n_queries = std::min(events.size(), static_cast<size_t>(f.queries));
    freshet::learner::Recommendation rec;
    const Clock::time_point query_start = Clock::now();
    for (size_t q = 0; q < n_queries; ++q) {
      if (!(*learner)->Recommend(events[events.size() - 1 - q].user, 10, true, &rec).ok()) return 1;
    }
    Print("query", std::string(algo), static_cast<int64_t>(n_queries), Seconds(query_start),
          nullptr, f, config.dim);

    const size_t n_eval = std::min(events.size(), static_cast<size_t>(f.eval_events));
    auto evaluated = freshet::learner::Learner::Create(algo, config, backend->get());
    freshet::stream::MemoryEventSource source(
        std::vector<freshet::stream::Event>(events.begin(), events.begin() + n_eval));
    freshet::learner::EvaluatorOptions eval;
    eval.k = 10;
    eval.total_events = static_cast<int64_t>(n_eval);
    auto run = freshet::learner::RunPrequential(**evaluated, source, eval);
    if (!run.ok()) return 1;
    Print("eval", std::string(algo), static_cast<int64_t>(n_eval), run->total.seconds, &run->total,
          f, config.dim);
  }
  return 0;
}
