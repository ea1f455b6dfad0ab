// kafka_bench: Kafka ingestion throughput against the development broker (librdkafka's mock
// cluster, in process), on a generated clickstream (stream/synthetic).
//
// Workloads (each prints one JSON object per line on stdout):
//   produce        KafkaProducer::ProduceEvent of every event (the JSON event of
//                  ARCHITECTURE.md, "Event format", keyed by user) and a final Flush: events/s
//                  until all are acknowledged
//   consume        one KafkaEventSource (its own consumer group) polling and decoding every
//                  event: events/s from the partition assignment (fetching starts there) to the
//                  last event (the ~3 s group join is reported separately as join_seconds)
//   consume_learn  the same, and every polled batch applied to a Learner (Learner::ApplyBatch):
//                  events/s from broker to learned
//   learn          Learner::ApplyBatch over the same events held in memory, for reference
// Usage:
//   kafka_bench [--events N] [--users U] [--items I] [--partitions P] [--batch B] [--algo A]
//               [--seed S] [--set key=value ...] [--property key=value ...]
//               [--producer_property key=value ...] [--prefetch_s S]
// --prefetch_s S: the consume workloads wait S seconds after the first batch arrives before the
// clock starts, so that librdkafka has fetched the backlog: they then measure the polling thread
// alone (delivery from the local queue, decoding, learning) rather than the fetch pipeline.
//               [--workloads consume,consume_learn,learn]   (produce always runs: it fills the
//               topic)
// Defaults: 2,000,000 events, 100,000 users, 20,000 items, 64 partitions (the mock retains about
// 5 MiB per partition: keep events / partitions well under 50,000), batch 65,536, bpr, d = 64
// (config defaults). --property and --producer_property set librdkafka properties on the
// consumer and the producer.
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/json_writer.h"
#include "config/config.h"
#include "kernels/backend.h"
#include "learner/learner.h"
#include "stream/kafka/dev_broker.h"
#include "stream/kafka/kafka_event_source.h"
#include "stream/kafka/kafka_producer.h"
#include "stream/synthetic/synthetic_stream.h"

namespace {

using Clock = std::chrono::steady_clock;
using freshet::stream::Event;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Flags {
  int64_t events = 2'000'000;
  int32_t users = 100'000;
  int32_t items = 20'000;
  int32_t partitions = 64;
  int64_t batch = 65536;
  double prefetch_s = 0;
  uint64_t seed = 1;
  std::string algo = "bpr";
  std::string workloads = "consume,consume_learn,learn";
  std::vector<std::string> sets;
  std::map<std::string, std::string> properties;
  std::map<std::string, std::string> producer_properties;
};

bool ParseFlags(int argc, char** argv, Flags* f) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    bool ok = true;
    if (arg == "--events") {
      ok = absl::SimpleAtoi(value(), &f->events) && f->events > 0;
    } else if (arg == "--users") {
      ok = absl::SimpleAtoi(value(), &f->users);
    } else if (arg == "--items") {
      ok = absl::SimpleAtoi(value(), &f->items);
    } else if (arg == "--partitions") {
      ok = absl::SimpleAtoi(value(), &f->partitions) && f->partitions > 0;
    } else if (arg == "--batch") {
      ok = absl::SimpleAtoi(value(), &f->batch) && f->batch > 0;
    } else if (arg == "--seed") {
      ok = absl::SimpleAtoi(value(), &f->seed);
    } else if (arg == "--prefetch_s") {
      ok = absl::SimpleAtod(value(), &f->prefetch_s);
    } else if (arg == "--algo") {
      f->algo = value();
    } else if (arg == "--workloads") {
      f->workloads = value();
    } else if (arg == "--set") {
      f->sets.push_back(value());
    } else if (arg == "--property" || arg == "--producer_property") {
      const std::string kv = value();
      const size_t eq = kv.find('=');
      ok = eq != std::string::npos && eq > 0;
      auto& properties = arg == "--property" ? f->properties : f->producer_properties;
      if (ok) properties[kv.substr(0, eq)] = kv.substr(eq + 1);
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr, "kafka_bench: bad argument '%s' (see the top of kafka_bench.cc)\n",
                   arg.c_str());
      return false;
    }
  }
  return true;
}

// Seconds spent inside Poll() and inside the batch handler of the latest Consume().
struct Split {
  double poll = 0;
  double apply = 0;
};

void Print(const std::string& workload, int64_t events, double seconds, const Flags& f, int dim,
           double join_seconds = -1, const Split* split = nullptr) {
  freshet::JsonWriter w;
  w.BeginObject();
  w.Key("workload").String(workload);
  w.Key("events").Int(events);
  w.Key("seconds").Double(seconds);
  w.Key("events_per_sec").Double(seconds > 0 ? static_cast<double>(events) / seconds : 0);
  if (join_seconds >= 0) w.Key("join_seconds").Double(join_seconds);
  if (split != nullptr)
    w.Key("poll_seconds").Double(split->poll).Key("apply_seconds").Double(split->apply);
  w.Key("partitions").Int(f.partitions);
  w.Key("batch").Int(f.batch);
  w.Key("algo").String(f.algo);
  w.Key("dim").Int(dim);
  w.EndObject();
  std::printf("%s\n", w.str().c_str());
  std::fflush(stdout);
}

int Fail(const std::string& what, const absl::Status& status) {
  std::fprintf(stderr, "kafka_bench: %s: %s\n", what.c_str(),
               std::string(status.message()).c_str());
  return 1;
}

// Polls a fresh group member until `f.events` events arrived, handing each batch to `apply`.
// Returns the seconds from the first event to the last, and the join time in *join_seconds.
template <typename Apply>
absl::StatusOr<double> Consume(const std::string& brokers, const std::string& group, const Flags& f,
                               Apply apply, double* join_seconds, Split* split) {
  freshet::stream::KafkaSourceOptions options;
  options.brokers = brokers;
  options.group_id = group;
  options.topics = {"events"};
  options.max_batch = static_cast<size_t>(f.batch);
  options.properties = f.properties;
  auto source = freshet::stream::KafkaEventSource::Create(
      options, [](int32_t, int32_t) -> int64_t { return -1; });
  if (!source.ok()) return source.status();
  const Clock::time_point created = Clock::now();
  Clock::time_point first;
  bool assigned = false;
  bool prefetched = false;
  int64_t received = 0;
  std::vector<Event> batch;
  batch.reserve(static_cast<size_t>(f.batch));
  const Clock::time_point deadline = created + std::chrono::seconds(120);
  while (received < f.events) {
    if (Clock::now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("received ", received, " of ", f.events,
                       " events in 120 s (did the broker's retention drop some? use more "
                       "partitions)"));
    }
    batch.clear();
    const Clock::time_point before = Clock::now();
    absl::Status status =
        (*source)->Poll(static_cast<size_t>(f.batch), absl::Milliseconds(10), &batch);
    Clock::time_point polled = Clock::now();
    if (assigned) split->poll += std::chrono::duration<double>(polled - before).count();
    if (!status.ok()) return status;
    // The clock starts before the Poll that received the assignment: fetching starts there.
    if (!assigned && (*source)->Assigned()) {
      assigned = true;
      first = before;
      *join_seconds = std::chrono::duration<double>(before - created).count();
    }
    if (f.prefetch_s > 0 && !prefetched && !batch.empty()) {
      // Fetching has started (offsets are resolved through the polled queue): let the client
      // fetch the backlog before the clock starts, so that what is measured is the polling
      // thread alone (delivery from the local queue, decoding, learning).
      prefetched = true;
      std::this_thread::sleep_for(std::chrono::duration<double>(f.prefetch_s));
      first = Clock::now();
      polled = first;
      split->poll = 0;
    }
    apply(batch);
    split->apply += Seconds(polled);
    received += static_cast<int64_t>(batch.size());
  }
  return Seconds(first);
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  if (!ParseFlags(argc, argv, &f)) return 2;
  freshet::config::Config config;
  if (absl::Status s = freshet::config::ApplyOverrides(&config, f.sets); !s.ok()) {
    return Fail("--set", s);
  }
  freshet::stream::SyntheticStreamOptions options;
  options.events = f.events;
  options.users = f.users;
  options.items = f.items;
  options.seed = f.seed;
  auto generator = freshet::stream::SyntheticStream::Create(options);
  if (!generator.ok()) return Fail("generator", generator.status());
  std::vector<Event> events(static_cast<size_t>(f.events));
  for (Event& e : events) generator->Next(&e);

  auto broker = freshet::stream::DevBroker::Start();
  if (!broker.ok()) return Fail("broker", broker.status());
  if (absl::Status s = (*broker)->CreateTopic("events", f.partitions); !s.ok()) {
    return Fail("topic", s);
  }
  const std::string brokers = (*broker)->bootstrap_servers();

  {
    auto producer = freshet::stream::KafkaProducer::Create(
        {.brokers = brokers, .properties = f.producer_properties});
    if (!producer.ok()) return Fail("producer", producer.status());
    const Clock::time_point start = Clock::now();
    for (const Event& e : events) {
      if (absl::Status s = (*producer)->ProduceEvent("events", e); !s.ok()) {
        return Fail("produce", s);
      }
    }
    if (absl::Status s = (*producer)->Flush(absl::Seconds(120)); !s.ok()) return Fail("flush", s);
    Print("produce", f.events, Seconds(start), f, config.dim);
  }

  const auto enabled = [&](absl::string_view workload) {
    for (absl::string_view w : absl::StrSplit(f.workloads, ',')) {
      if (w == workload) return true;
    }
    return false;
  };
  double join = 0;
  Split split;
  if (enabled("consume")) {
    // Decoding happens inside Poll(): nothing more to do with the events.
    auto consumed = Consume(
        brokers, "bench-consume", f, [](const std::vector<Event>&) {}, &join, &split);
    if (!consumed.ok()) return Fail("consume", consumed.status());
    Print("consume", f.events, *consumed, f, config.dim, join, &split);
  }

  auto backend = freshet::kernels::CreateBackend("cpu");
  if (!backend.ok()) return Fail("backend", backend.status());
  if (enabled("consume_learn")) {
    auto learner = freshet::learner::Learner::Create(f.algo, config, backend->get());
    if (!learner.ok()) return Fail("learner", learner.status());
    split = Split();
    auto learned = Consume(
        brokers, "bench-learn", f,
        [&](const std::vector<Event>& batch) {
          (*learner)->ApplyBatch(absl::MakeConstSpan(batch));
        },
        &join, &split);
    if (!learned.ok()) return Fail("consume_learn", learned.status());
    if ((*learner)->events_applied() != f.events) {
      std::fprintf(stderr, "kafka_bench: learned %lld events, expected %lld\n",
                   static_cast<long long>((*learner)->events_applied()),
                   static_cast<long long>(f.events));
      return 1;
    }
    Print("consume_learn", f.events, *learned, f, config.dim, join, &split);
  }
  if (!enabled("learn")) return 0;

  auto reference = freshet::learner::Learner::Create(f.algo, config, backend->get());
  if (!reference.ok()) return Fail("learner", reference.status());
  const Clock::time_point start = Clock::now();
  const size_t step = static_cast<size_t>(f.batch);
  for (size_t i = 0; i < events.size(); i += step) {
    (*reference)
        ->ApplyBatch(absl::MakeConstSpan(events.data() + i, std::min(step, events.size() - i)));
  }
  Print("learn", f.events, Seconds(start), f, config.dim);
  return 0;
}
