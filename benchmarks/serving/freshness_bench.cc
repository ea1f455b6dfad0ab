// freshness_bench: how soon the serving tier's answers reflect a new event, end to end.
//
// The setup is a whole `freshet serve` in one process: the development broker (librdkafka's mock
// cluster) with topic "events", an Engine on a fresh data directory learning from a
// KafkaEventSource on that topic (group "freshness"), and the HTTP API on a loopback port. After
// a warm-up (--warmup_events random events over --users x --items, all applied), each path is
// measured over --events probes:
//   kafka  read a user's "user_events" (GET /v1/users/{u}/recommendations?k=20), then, clock
//          started, KafkaProducer::ProduceEvent of one event for that user (no waiting for the
//          broker's acknowledgement), then GET the recommendations over one keep-alive connection
//          in a tight loop until user_events has grown: lag = that moment - start. The part up to
//          the learner is reported too (ingest_*: the lag minus the answer's applied_ms_ago).
//   post   the same, the event sent as POST /v1/events (the API is registered without `publish`,
//          so the event goes straight to the learner and the first GET after it usually sees it).
//   replica the kafka path, read from a serving replica (engine/follower/) instead: the engine
//          publishes to a model topic on the same broker and to Redis (--redis, required for this
//          path) every serving_replicas.publish_ms, and a second engine in the process follows
//          them (ModelFollower, FollowerReader) behind its own HTTP API, as `serve --follow`
//          does; the answer that shows the event came from the user's state in Redis. Its line
//          also reports the replica's item-state lag (publishing -> applied, every model topic
//          batch applied during the path: item_lag_p50_ms, item_lag_p99_ms).
// Each path prints one JSON line: {"bench":"freshness","path",...,"p50_ms","p90_ms","p99_ms",
// "max_ms","mean_ms",...} with the configuration (flush interval, partitions, micro-batch size,
// librdkafka properties set here, background load).
//
// The Kafka lag is mostly waiting that librdkafka settings decide, not work: the producer's
// linger.ms (freshet's default 5) and the consumer's fetch.wait.max.ms (freshet's default 100).
// A real broker answers a fetch as soon as fetch.min.bytes (default 1) have arrived, so there
// fetch.wait.max.ms only bounds an idle fetch. librdkafka's mock cluster (the development broker)
// holds every fetch that finds no data for the whole fetch.wait.max.ms, even when data arrives
// meanwhile, so against it freshet's default adds up to 100 ms (exactly 100 ms with back-to-back
// probes, see --gap_ms). This bench therefore sets fetch.wait.max.ms=1 on the consumer, which
// gives the mock a real broker's behaviour, and linger.ms=0 on the producers, which is what a
// latency-sensitive deployment sets on its producers; `--property fetch.wait.max.ms=100
// --producer_property linger.ms=5` measures freshet's own defaults against the mock instead.
//
// Usage:
//   freshness_bench [--events N] [--warmup_events N] [--users U] [--items I] [--algo A]
//                   [--partitions P] [--dir D] [--paths kafka,post] [--background_rate R]
//                   [--gap_ms G] [--seed S] [--set key=value ...] [--property key=value ...]
//                   [--producer_property key=value ...] [--redis redis://HOST:PORT]
// Defaults: 1,000 probes per path, 20,000 warm-up events over 2,000 users x 3,000 items, bpr,
// consumer fetch.wait.max.ms=1 and producer linger.ms=0 (above),
// 4 partitions, /tmp/freshet_freshness_bench (deleted first), no background load, config defaults
// (d = 64, flush every 1 s). --background_rate R produces R events/s (for other users than the
// probed ones) from a second thread while measuring. --gap_ms G pauses a random 0-G ms before
// each probe's event (default none: each event follows the previous one's detection at once, which
// against the mock broker lands it just after the consumer sent an empty fetch, the worst case of
// the fetch cycle; a gap spreads events over the cycle as independent arrivals would be).
// --property / --producer_property set librdkafka properties on the engine's consumer and on the
// producers.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/json_writer.h"
#include "common/random.h"
#include "config/config.h"
#include "engine/engine.h"
#include "engine/follower/follower.h"
#include "engine/follower/publisher.h"
#include "kernels/backend.h"
#include "serving/api.h"
#include "serving/http/http_server.h"
#include "serving/metrics/metrics_registry.h"
#include "stream/event_codec.h"
#include "stream/kafka/dev_broker.h"
#include "stream/kafka/kafka_event_source.h"
#include "stream/kafka/kafka_producer.h"
#include "tests/serving/http_test_client.h"

namespace {

using Clock = std::chrono::steady_clock;
using freshet::stream::Event;

constexpr char kTopic[] = "events";

double MillisSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

struct Flags {
  int64_t events = 1000;
  int64_t warmup_events = 20000;
  int32_t users = 2000;
  int32_t items = 3000;
  int32_t partitions = 4;
  double background_rate = 0;
  double gap_ms = 0;
  uint64_t seed = 1;
  std::string algo = "bpr";
  std::string dir = "/tmp/freshet_freshness_bench";
  std::string paths = "kafka,post";
  std::string redis;  // the replica path's Redis
  std::vector<std::string> sets;
  // Against the development broker, a real broker's fetch behaviour (see the top of the file);
  // --property / --producer_property override them.
  std::map<std::string, std::string> properties = {{"fetch.wait.max.ms", "1"}};
  std::map<std::string, std::string> producer_properties = {{"linger.ms", "0"}};
};

bool ParseFlags(int argc, char** argv, Flags* f) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    bool ok = true;
    if (arg == "--events") {
      ok = absl::SimpleAtoi(value(), &f->events) && f->events > 0;
    } else if (arg == "--warmup_events") {
      ok = absl::SimpleAtoi(value(), &f->warmup_events) && f->warmup_events > 0;
    } else if (arg == "--users") {
      ok = absl::SimpleAtoi(value(), &f->users) && f->users > 0;
    } else if (arg == "--items") {
      ok = absl::SimpleAtoi(value(), &f->items) && f->items > 0;
    } else if (arg == "--partitions") {
      ok = absl::SimpleAtoi(value(), &f->partitions) && f->partitions > 0;
    } else if (arg == "--background_rate") {
      ok = absl::SimpleAtod(value(), &f->background_rate) && f->background_rate >= 0;
    } else if (arg == "--gap_ms") {
      ok = absl::SimpleAtod(value(), &f->gap_ms) && f->gap_ms >= 0;
    } else if (arg == "--seed") {
      ok = absl::SimpleAtoi(value(), &f->seed);
    } else if (arg == "--algo") {
      f->algo = value();
    } else if (arg == "--dir") {
      f->dir = value();
      ok = !f->dir.empty();
    } else if (arg == "--redis") {
      f->redis = value();
    } else if (arg == "--paths") {
      f->paths = value();
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
      std::fprintf(stderr,
                   "freshness_bench: bad argument '%s' (see the top of freshness_bench.cc)\n",
                   arg.c_str());
      return false;
    }
  }
  return true;
}

int Fail(const std::string& what, const absl::Status& status) {
  std::fprintf(stderr, "freshness_bench: %s: %s\n", what.c_str(), status.ToString().c_str());
  return 1;
}

Event MakeEvent(std::string user, std::string item) {
  Event e;
  e.user = std::move(user);
  e.item = std::move(item);
  e.type = "click";
  e.ts_ms = absl::ToUnixMillis(absl::Now());
  return e;
}

// A number field of a flat JSON answer ("user_events": 12 -> 12); false when absent.
bool NumberField(const std::string& body, absl::string_view key, double* out) {
  const std::string needle = absl::StrCat("\"", key, "\":");
  const size_t at = body.find(needle);
  if (at == std::string::npos) return false;
  size_t end = at + needle.size();
  while (end < body.size() && body[end] != ',' && body[end] != '}') ++end;
  return absl::SimpleAtod(
      absl::string_view(body).substr(at + needle.size(), end - at - needle.size()), out);
}

// The user's event count and applied_ms_ago from one recommendation request.
struct Reading {
  int64_t user_events = 0;
  double applied_ms_ago = -1;
};

absl::StatusOr<Reading> ReadUser(freshet::serving::testing::TestHttpClient& client,
                                 const std::string& user) {
  auto response = client.Request("GET", absl::StrCat("/v1/users/", user, "/recommendations?k=20"));
  if (!response.ok()) return response.status();
  if (response->status != 200) {
    return absl::InternalError(absl::StrCat("GET recommendations for ", user, ": HTTP ",
                                            response->status, " ", response->body));
  }
  Reading r;
  double events = 0;
  if (!NumberField(response->body, "user_events", &events)) {
    return absl::InternalError(absl::StrCat("no user_events in ", response->body));
  }
  r.user_events = static_cast<int64_t>(events);
  if (!NumberField(response->body, "applied_ms_ago", &r.applied_ms_ago)) r.applied_ms_ago = -1;
  return r;
}

struct Summary {
  double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
};

Summary Summarize(std::vector<double> v) {
  Summary s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const auto rank = [&](double q) {
    const size_t i = static_cast<size_t>(q * static_cast<double>(v.size()));
    return v[std::min(i, v.size() - 1)];
  };
  s.p50 = rank(0.50);
  s.p90 = rank(0.90);
  s.p99 = rank(0.99);
  s.max = v.back();
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  return s;
}

void WriteProperties(freshet::JsonWriter& w, const std::map<std::string, std::string>& p) {
  w.BeginObject();
  for (const auto& [key, value] : p) w.Key(key).String(value);
  w.EndObject();
}

// Produces `rate` events/s for users b0..b{users-1} (never probed) until `stop`.
void BackgroundLoad(freshet::stream::KafkaProducer* producer, double rate, const Flags& f,
                    const std::atomic<bool>& stop, std::atomic<int64_t>* produced) {
  freshet::Rng rng(f.seed + 7);
  const Clock::time_point start = Clock::now();
  int64_t sent = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    const double elapsed_s = MillisSince(start) / 1000;
    const int64_t due = static_cast<int64_t>(elapsed_s * rate);
    for (; sent < due; ++sent) {
      const Event e = MakeEvent(absl::StrCat("b", rng.Below(static_cast<uint32_t>(f.users))),
                                absl::StrCat("i", rng.Below(static_cast<uint32_t>(f.items))));
      if (!producer->ProduceEvent(kTopic, e).ok()) break;
    }
    producer->Poll();
    produced->store(sent, std::memory_order_relaxed);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace freshet;
  Flags f;
  if (!ParseFlags(argc, argv, &f)) return 2;
  config::Config config;
  if (absl::Status s = config::ApplyOverrides(&config, f.sets); !s.ok()) {
    std::fprintf(stderr, "freshness_bench: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  const std::vector<std::string> paths = absl::StrSplit(f.paths, ',', absl::SkipEmpty());
  for (const std::string& p : paths) {
    if (p != "kafka" && p != "post" && p != "replica") {
      std::fprintf(stderr, "freshness_bench: unknown path '%s' (kafka, post, replica)\n",
                   p.c_str());
      return 2;
    }
    if (p == "replica" && f.redis.empty()) {
      std::fprintf(stderr, "freshness_bench: the replica path needs --redis redis://HOST:PORT\n");
      return 2;
    }
  }

  // The broker, the engine with its Kafka source (wired as `freshet serve` does), the API.
  auto broker = stream::DevBroker::Start();
  if (!broker.ok()) return Fail("starting the development broker", broker.status());
  if (absl::Status s = (*broker)->CreateTopic(kTopic, f.partitions); !s.ok()) {
    return Fail("creating the topic", s);
  }
  std::error_code ec;
  std::filesystem::remove_all(f.dir, ec);
  auto backend = kernels::CreateBackend("cpu");
  if (!backend.ok()) return Fail("cpu backend", backend.status());
  engine::EngineOptions options;
  options.data_dir = f.dir;
  options.algorithm = f.algo;
  options.config = config;
  options.reset = true;
  auto opened = engine::Engine::Open(options, backend->get());
  if (!opened.ok()) return Fail("opening the engine", opened.status());
  std::unique_ptr<engine::Engine> engine = std::move(*opened);

  stream::KafkaSourceOptions kafka_options;
  kafka_options.brokers = (*broker)->bootstrap_servers();
  kafka_options.group_id = "freshness";
  kafka_options.topics = {kTopic};
  kafka_options.type_weights = config.type_weights;
  kafka_options.default_weight = config.default_weight;
  kafka_options.properties = f.properties;
  // The engine positions the source (Resume) and commits its durable offsets (Commit).
  auto created = stream::KafkaEventSource::Create(kafka_options, nullptr);
  if (!created.ok()) return Fail("creating the Kafka source", created.status());
  stream::KafkaEventSource* kafka = created->get();
  if (absl::Status s = engine->AddSource(std::move(*created), absl::StrCat("kafka:", kTopic));
      !s.ok()) {
    return Fail("adding the Kafka source", s);
  }

  serving::MetricsRegistry metrics;
  serving::HttpServerOptions http;
  http.port = 0;
  http.io_threads = config::ServeIoThreads(config);
  http.max_in_flight = config.serve_max_in_flight;
  http.metrics = &metrics;
  serving::HttpServer server(http);
  serving::ApiOptions api;
  api.config = config;
  api.sources_ready = [kafka] { return kafka->Assigned(); };
  // No `publish`: POST /v1/events goes straight to the learner; the Kafka path uses a producer.
  if (absl::Status s = serving::RegisterApi(server, *engine, metrics, std::move(api)); !s.ok()) {
    return Fail("registering the API", s);
  }
  if (absl::Status s = server.Start(); !s.ok()) return Fail("starting the HTTP server", s);

  std::atomic<bool> stop{false};
  absl::Status run_status;
  std::thread runner([&] { run_status = engine->Run(stop, engine::Engine::RunOptions{}); });
  const auto shutdown = [&] {
    server.Stop();
    stop.store(true);
    runner.join();
  };

  stream::KafkaProducerOptions producer_options;
  producer_options.brokers = (*broker)->bootstrap_servers();
  producer_options.properties = f.producer_properties;
  auto producer = stream::KafkaProducer::Create(producer_options);
  if (!producer.ok()) {
    shutdown();
    return Fail("creating the producer", producer.status());
  }

  // Warm-up: random events, all applied, and the source holding its partitions.
  Rng rng(f.seed);
  std::vector<std::string> warm_users;
  warm_users.reserve(static_cast<size_t>(f.warmup_events));
  for (int64_t i = 0; i < f.warmup_events; ++i) {
    Event ev = MakeEvent(absl::StrCat("u", rng.Below(static_cast<uint32_t>(f.users))),
                         absl::StrCat("i", rng.Below(static_cast<uint32_t>(f.items))));
    warm_users.push_back(ev.user);
    if (absl::Status s = (*producer)->ProduceEvent(kTopic, ev); !s.ok()) {
      shutdown();
      return Fail("producing the warm-up", s);
    }
  }
  if (absl::Status s = (*producer)->Flush(absl::Seconds(60)); !s.ok()) {
    shutdown();
    return Fail("flushing the warm-up", s);
  }
  const Clock::time_point warm_start = Clock::now();
  while (engine->stats().events_applied < f.warmup_events || !kafka->Assigned()) {
    if (MillisSince(warm_start) > 120'000) {
      shutdown();
      return Fail("warm-up", absl::DeadlineExceededError(
                                 absl::StrCat("only ", engine->stats().events_applied, " of ",
                                              f.warmup_events, " events applied after 120 s")));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::sort(warm_users.begin(), warm_users.end());
  warm_users.erase(std::unique(warm_users.begin(), warm_users.end()), warm_users.end());

  auto connected = serving::testing::TestHttpClient::Connect(server.port());
  if (!connected.ok()) {
    shutdown();
    return Fail("connecting to the server", connected.status());
  }
  serving::testing::TestHttpClient& client = **connected;

  // The replica path: publishing on the engine, and a replica following it.
  const bool with_replica = std::find(paths.begin(), paths.end(), "replica") != paths.end();
  std::unique_ptr<engine::ModelPublisher> publisher;
  std::unique_ptr<engine::Engine> replica;
  std::unique_ptr<engine::ModelFollower> follower;
  std::unique_ptr<engine::FollowerReader> follower_reader;
  serving::MetricsRegistry replica_metrics;
  std::unique_ptr<serving::HttpServer> replica_server;
  std::unique_ptr<serving::testing::TestHttpClient> replica_client;
  absl::Mutex item_lag_mu;
  std::vector<double> item_lags;  // ms
  const auto stop_replica = [&] {
    if (replica_server != nullptr) replica_server->Stop();
    if (follower != nullptr) follower->Stop();
    if (publisher != nullptr) publisher->Stop();
  };
  if (with_replica) {
    // Configured as `serve` configures them, on this broker and Redis.
    config::Config tier = config;
    tier.tier_model_topic = "model";
    tier.tier_redis = f.redis;
    auto made = engine::ModelPublisher::Create(
        engine::PublisherOptionsFor(tier, (*broker)->bootstrap_servers(), f.producer_properties),
        &engine->live_model());
    if (!made.ok()) {
      shutdown();
      return Fail("creating the publisher", made.status());
    }
    publisher = std::move(*made);
    publisher->Start();
    engine::EngineOptions replica_options;
    replica_options.algorithm = f.algo;
    replica_options.config = config;
    auto opened_replica = engine::Engine::Open(replica_options, backend->get());
    if (!opened_replica.ok()) {
      shutdown();
      return Fail("opening the replica", opened_replica.status());
    }
    replica = std::move(*opened_replica);
    auto made_follower = engine::ModelFollower::Create(
        engine::FollowerOptionsFor(tier, (*broker)->bootstrap_servers(), f.properties),
        &replica->live_model());
    if (!made_follower.ok()) {
      stop_replica();
      shutdown();
      return Fail("creating the follower", made_follower.status());
    }
    follower = std::move(*made_follower);
    follower->SetObservers(
        [&](double seconds) {
          absl::MutexLock lock(&item_lag_mu);
          item_lags.push_back(seconds * 1e3);
        },
        nullptr);
    follower_reader =
        std::make_unique<engine::FollowerReader>(&replica->live_model(), follower.get());
    replica->ServeThrough(follower_reader.get());
    serving::HttpServerOptions replica_http = http;
    replica_http.metrics = &replica_metrics;
    replica_server = std::make_unique<serving::HttpServer>(replica_http);
    serving::ApiOptions replica_api;
    replica_api.config = config;
    absl::Status s =
        serving::RegisterApi(*replica_server, *replica, replica_metrics, std::move(replica_api));
    if (s.ok()) s = follower->Start();
    if (s.ok()) s = replica_server->Start();
    const Clock::time_point ready_start = Clock::now();
    while (s.ok() && !follower->ready()) {
      if (MillisSince(ready_start) > 60'000) s = follower->Readiness();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (s.ok()) {
      auto c = serving::testing::TestHttpClient::Connect(replica_server->port());
      if (c.ok()) replica_client = std::move(*c);
      s = c.status();
    }
    if (!s.ok()) {
      stop_replica();
      shutdown();
      return Fail("starting the replica", s);
    }
  }

  std::atomic<bool> background_stop{false};
  std::atomic<int64_t> background_produced{0};
  std::unique_ptr<stream::KafkaProducer> background_producer;
  std::thread background;
  if (f.background_rate > 0) {
    auto made = stream::KafkaProducer::Create(producer_options);
    if (!made.ok()) {
      shutdown();
      return Fail("creating the background producer", made.status());
    }
    background_producer = std::move(*made);
    background = std::thread(BackgroundLoad, background_producer.get(), f.background_rate,
                             std::cref(f), std::cref(background_stop), &background_produced);
  }

  int exit_code = 0;
  const absl::Duration give_up = absl::Seconds(10);
  for (const std::string& path : paths) {
    std::vector<double> lags, ingest, reads, polls;
    lags.reserve(static_cast<size_t>(f.events));
    const int64_t applied_before = engine->stats().events_applied;
    const Clock::time_point path_start = Clock::now();
    absl::Status failure;
    serving::testing::TestHttpClient& reader = path == "replica" ? *replica_client : client;
    {
      absl::MutexLock lock(&item_lag_mu);
      item_lags.clear();
    }
    for (int64_t i = 0; i < f.events && failure.ok(); ++i) {
      const std::string& user = warm_users[rng.Below(static_cast<uint32_t>(warm_users.size()))];
      const Clock::time_point read_start = Clock::now();
      absl::StatusOr<Reading> before = ReadUser(reader, user);
      if (!before.ok()) {
        failure = before.status();
        break;
      }
      reads.push_back(MillisSince(read_start));
      if (f.gap_ms > 0) {
        std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(
            f.gap_ms * static_cast<double>(rng.Below(1u << 20)) / (1u << 20)));
      }
      const Event ev =
          MakeEvent(user, absl::StrCat("i", rng.Below(static_cast<uint32_t>(f.items))));
      const Clock::time_point t0 = Clock::now();
      if (path == "kafka" || path == "replica") {
        failure = (*producer)->ProduceEvent(kTopic, ev);
      } else {
        std::string body;
        stream::EventCodec::Encode(ev, &body);
        auto posted =
            client.Request("POST", "/v1/events", body, "Content-Type: application/json\r\n");
        if (!posted.ok()) {
          failure = posted.status();
        } else if (posted->status != 202) {
          failure = absl::InternalError(
              absl::StrCat("POST /v1/events: HTTP ", posted->status, " ", posted->body));
        }
      }
      int64_t n_polls = 0;
      while (failure.ok()) {
        absl::StatusOr<Reading> now = ReadUser(reader, user);
        ++n_polls;
        if (!now.ok()) {
          failure = now.status();
          break;
        }
        if (now->user_events > before->user_events) {
          const double lag = MillisSince(t0);
          lags.push_back(lag);
          if (now->applied_ms_ago >= 0) ingest.push_back(std::max(0.0, lag - now->applied_ms_ago));
          break;
        }
        if (MillisSince(t0) > absl::ToDoubleMilliseconds(give_up)) {
          failure = absl::DeadlineExceededError(absl::StrCat("probe ", i, " (", path, ", user ",
                                                             user, "): not reflected after ",
                                                             absl::FormatDuration(give_up)));
        }
        // Serves the producer's delivery reports while waiting.
        if (path != "post" && (n_polls & 63) == 0) (*producer)->Poll();
      }
      polls.push_back(static_cast<double>(n_polls));
    }
    if (!failure.ok()) {
      exit_code = Fail(absl::StrCat("path ", path), failure);
      break;
    }
    const double seconds = MillisSince(path_start) / 1000;
    const Summary lag = Summarize(lags);
    const Summary in = Summarize(ingest);
    const Summary read = Summarize(reads);
    const Summary poll = Summarize(polls);
    JsonWriter w;
    w.BeginObject();
    w.Key("bench").String("freshness");
    w.Key("path").String(path);
    w.Key("events").Int(static_cast<int64_t>(lags.size()));
    w.Key("p50_ms").Double(lag.p50);
    w.Key("p90_ms").Double(lag.p90);
    w.Key("p99_ms").Double(lag.p99);
    w.Key("max_ms").Double(lag.max);
    w.Key("mean_ms").Double(lag.mean);
    // Start -> applied by the learner (the lag less the answer's applied_ms_ago).
    w.Key("ingest_p50_ms").Double(in.p50);
    w.Key("ingest_p99_ms").Double(in.p99);
    // One GET of the recommendations (the reading before each probe).
    w.Key("get_p50_ms").Double(read.p50);
    w.Key("get_p99_ms").Double(read.p99);
    w.Key("polls_p50").Double(poll.p50);
    if (path == "replica") {
      absl::MutexLock lock(&item_lag_mu);
      const Summary item_lag = Summarize(item_lags);
      w.Key("item_lag_p50_ms").Double(item_lag.p50);
      w.Key("item_lag_p99_ms").Double(item_lag.p99);
      w.Key("item_lag_batches").Int(static_cast<int64_t>(item_lags.size()));
      w.Key("publish_ms").Int(config.tier_publish_ms);
    }
    w.Key("seconds").Double(seconds);
    w.Key("events_applied").Int(engine->stats().events_applied - applied_before);
    w.Key("algo").String(f.algo);
    w.Key("dim").Int(config.dim);
    w.Key("flush_interval_ms").Int(config.flush_interval_ms);
    w.Key("serve_batch_events").Int(config.serve_batch_events);
    w.Key("partitions").Int(f.partitions);
    w.Key("warmup_events").Int(f.warmup_events);
    w.Key("users").Int(f.users);
    w.Key("items").Int(f.items);
    w.Key("background_rate").Double(f.background_rate);
    w.Key("gap_ms").Double(f.gap_ms);
    w.Key("consumer_properties");
    WriteProperties(w, f.properties);
    w.Key("producer_properties");
    WriteProperties(w, f.producer_properties);
    w.EndObject();
    std::printf("%s\n", w.str().c_str());
    std::fflush(stdout);
  }

  background_stop.store(true);
  if (background.joinable()) background.join();
  if (background_producer != nullptr) (void)background_producer->Flush(absl::Seconds(10));
  stop_replica();
  shutdown();
  if (!run_status.ok() && exit_code == 0) exit_code = Fail("engine", run_status);
  return exit_code;
}
