// `freshet serve`: sources (event log files at a rate, Kafka topics) -> learner -> RocksDB, with
// the serving tier on the live model. Runs until SIGINT/SIGTERM (or, with --exit-when-done, until
// every file source is replayed), then writes everything learnt and exits 0.
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "cli/common_flags.h"
#include "cli/state_commands.h"
#include "common/json_writer.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/transparent_huge_pages.h"
#include "engine/engine.h"
#include "engine/follower/follower.h"
#include "engine/follower/publisher.h"
#include "engine/replicas/replica_group.h"
#include "kernels/backend.h"
#include "serving/api.h"
#include "serving/dashboard/dashboard.h"
#include "serving/http/http_client.h"
#include "serving/http/http_server.h"
#include "serving/metrics/metrics_registry.h"
#include "stream/file_event_source.h"
#include "stream/kafka/kafka_event_source.h"
#include "stream/kafka/kafka_producer.h"

namespace freshet::cli {
namespace {

std::atomic<bool> g_stop{false};

extern "C" void HandleStopSignal(int) { g_stop.store(true); }

// A server holds a descriptor per connection and RocksDB one per open table file: take the hard
// limit rather than the (often 1024) soft one. The HTTP connection cap is sized from the result.
void RaiseFileLimit() {
  struct rlimit limit = {};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    LogWarning(absl::StrCat("could not raise the open-file limit: ", std::strerror(errno)));
  }
}

// serve.transparent_huge_pages = "advised" (common/transparent_huge_pages.h).
void LimitHugePages() {
  const absl::Status limited = LimitHugePagesToAdvised();
  if (limited.ok()) return;
  // An older kernel: only its "always" setting gives huge pages to memory that did not ask.
  if (absl::IsUnimplemented(limited) && SystemHugePageSetting() != "always") return;
  LogWarning(absl::StrCat(
      limited.message(),
      "; the kernel gives huge pages to all of this process's memory "
      "(/sys/kernel/mm/transparent_hugepage/enabled is 'always'): setting it to 'madvise' "
      "shortens the serving tail while state batches are written"));
}

void InstallSignalHandlers() {
  struct sigaction action = {};
  action.sa_handler = HandleStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

// The admin token, from exactly one of: serve.admin_token (config file or --set),
// serve.admin_token_file, or the FRESHET_ADMIN_TOKEN environment variable (the latter two keep it
// out of `ps` and out of config files). Empty: /admin is off.
absl::StatusOr<std::string> AdminToken(const config::Config& config) {
  const char* env = std::getenv("FRESHET_ADMIN_TOKEN");
  const bool from_env = env != nullptr && env[0] != '\0';
  const int sources =
      !config.serve_admin_token.empty() + !config.serve_admin_token_file.empty() + from_env;
  if (sources > 1) {
    return absl::InvalidArgumentError(
        "the admin token is given more than once: use one of serve.admin_token, "
        "serve.admin_token_file and FRESHET_ADMIN_TOKEN");
  }
  if (from_env) return std::string(env);
  if (config.serve_admin_token_file.empty()) return config.serve_admin_token;
  std::ifstream in(config.serve_admin_token_file);
  std::string token;
  if (!in || !std::getline(in, token)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "serve.admin_token_file: cannot read a token from ", config.serve_admin_token_file));
  }
  absl::StripAsciiWhitespace(&token);
  if (token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("serve.admin_token_file: ", config.serve_admin_token_file, " is empty"));
  }
  return token;
}

std::string StatusLine(const engine::Engine& engine) {
  const engine::EngineStats s = engine.stats();
  JsonWriter w;
  w.BeginObject();
  w.Key("events_applied").Int(s.events_applied);
  w.Key("users").Int(s.users);
  w.Key("items").Int(s.items);
  w.Key("model_version").Int(s.model_version);
  w.Key("events_persisted").Int(s.persister.events_persisted);
  w.Key("duplicates_dropped").Int(s.duplicates_dropped);
  w.Key("store_write_errors").Int(s.persister.write_errors);
  w.EndObject();
  return w.str();
}

// The catalog file to load: --catalog, else u.item or movies.dat beside a MovieLens source.
std::string CatalogPath(const ServeFlags& flags) {
  if (!flags.catalog.empty()) return flags.catalog;
  if (!absl::StartsWith(flags.data.format, "movielens")) return "";
  for (const std::string& spec : flags.sources) {
    if (!absl::StartsWith(spec, "file:")) continue;
    const std::filesystem::path dir = std::filesystem::path(spec.substr(5)).parent_path();
    for (const char* name : {"u.item", "movies.dat"}) {
      std::error_code ec;
      if (std::filesystem::is_regular_file(dir / name, ec)) return (dir / name).string();
    }
  }
  return "";
}

absl::Status LoadCatalog(const ServeFlags& flags, const config::Config& config,
                         engine::Engine& engine) {
  const std::string path = CatalogPath(flags);
  if (path.empty()) return absl::OkStatus();
  FRESHET_ASSIGN_OR_RETURN(const engine::CatalogFormat format,
                           engine::CatalogFormatFor(flags.catalog_format, path));
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("--catalog ", path, ": cannot open it"));
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("--catalog ", path, ": read failed"));
  const absl::Time start = absl::Now();
  engine::CatalogParseStats stats;
  absl::StatusOr<std::vector<engine::CatalogEntry>> entries = engine::ParseCatalog(
      text.str(), format,
      [&config](absl::string_view id) { return serving::CheckId("the item id", id, config); },
      &stats);
  if (!entries.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--catalog ", path, ": ", entries.status().message()));
  }
  FRESHET_ASSIGN_OR_RETURN(const int64_t changed, engine.UpsertCatalog(*entries));
  LogInfo(
      absl::StrCat("catalog ", path, ": ", entries->size(), " items read (", changed,
                   " new or changed), ", engine.catalog().size(), " in the catalog, in ",
                   absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(1)))));
  if (stats.malformed > 0) {
    LogWarning(absl::StrCat("catalog ", path, ": ", stats.malformed, " of ", stats.lines,
                            " records skipped as malformed; first: ", stats.first_errors[0]));
  }
  return absl::OkStatus();
}

// /metrics of a serving replica: the model topic it follows and the users it reads from Redis.
void RegisterFollowerMetrics(const engine::ModelFollower& f, serving::MetricsRegistry& metrics) {
  const auto gauge = [&](const char* name, const char* help, auto read) {
    metrics.AddCallbackGauge(name, help,
                             [&f, read] { return static_cast<double>(read(f.stats())); });
  };
  using S = engine::FollowerStats;
  gauge("freshet_replica_item_state_age_seconds",
        "since the latest model topic message applied was published (-1: none yet)",
        [](const S& s) { return s.state_age_s; });
  gauge("freshet_replica_item_lag_ms", "publishing to applying, of the latest model topic batch",
        [](const S& s) { return s.item_lag_ms; });
  gauge("freshet_replica_model_offset", "next model topic offset to apply",
        [](const S& s) { return s.next_offset; });
  gauge("freshet_replica_model_end_offset", "the model topic's high watermark as last seen",
        [](const S& s) { return s.end_offset; });
  gauge("freshet_replica_ready", "1 once the model topic has been read to its end",
        [](const S& s) { return s.caught_up ? 1 : 0; });
  gauge("freshet_replica_deferred_work_runs",
        "deferred work (blend's ease fit) run after a batch of the model topic",
        [](const S& s) { return s.work_runs; });
  gauge("freshet_replica_items_applied", "item rows applied from the model topic",
        [](const S& s) { return s.items_applied; });
  gauge("freshet_replica_model_malformed", "model topic messages that could not be applied",
        [](const S& s) { return s.malformed; });
  gauge("freshet_replica_model_topic_errors", "errors reading the model topic",
        [](const S& s) { return s.topic_errors; });
  gauge("freshet_replica_redis_reads", "users' states read from Redis (GET)",
        [](const S& s) { return s.user_fetches; });
  gauge("freshet_replica_redis_errors",
        "requests answered without Redis (unreachable, timed out, or in the pause after an error)",
        [](const S& s) { return s.user_fetch_errors; });
  gauge("freshet_replica_redis_seconds", "time spent in Redis reads",
        [](const S& s) { return s.redis_seconds; });
  gauge("freshet_replica_users_from_cache",
        "answers from the replica's last copy of the user because Redis was unavailable",
        [](const S& s) { return s.users_from_cache; });
  gauge("freshet_replica_users_not_found", "users with no state in Redis (popularity answers)",
        [](const S& s) { return s.users_not_found; });
  gauge("freshet_replica_users_cached", "users whose state the replica keeps",
        [](const S& s) { return s.users_cached; });
  gauge("freshet_replica_client_cache",
        "1 while Redis tracks the replica's reads (users answered from copies it has not "
        "invalidated)",
        [](const S& s) { return s.client_cache ? 1 : 0; });
  gauge("freshet_replica_user_reads_saved",
        "answers from a copy of the user Redis had not invalidated (no read)",
        [](const S& s) { return s.user_reads_saved; });
  gauge("freshet_replica_invalidations", "users' keys Redis said changed",
        [](const S& s) { return s.invalidations; });
  gauge("freshet_replica_tracking_refused", "reads Redis would not track (read, not kept)",
        [](const S& s) { return s.tracking_refused; });
}

// /metrics of a learner that publishes to serving replicas.
void RegisterPublisherMetrics(const engine::ModelPublisher& p, serving::MetricsRegistry& metrics) {
  const auto gauge = [&](const char* name, const char* help, auto read) {
    metrics.AddCallbackGauge(name, help,
                             [&p, read] { return static_cast<double>(read(p.stats())); });
  };
  using S = engine::PublisherStats;
  gauge("freshet_publish_items", "item rows published to the model topic",
        [](const S& s) { return s.items_published; });
  gauge("freshet_publish_users", "users' states written to Redis",
        [](const S& s) { return s.users_published; });
  gauge("freshet_publish_redis_commands", "SET commands sent to Redis",
        [](const S& s) { return s.redis_commands; });
  gauge("freshet_publish_redis_errors", "publishing rounds whose Redis write failed",
        [](const S& s) { return s.redis_errors; });
  gauge("freshet_publish_users_pending", "users waiting to be written when Redis answers again",
        [](const S& s) { return s.users_pending; });
  gauge("freshet_publish_users_overflow",
        "users not remembered while Redis was down (beyond the bound; written with their next "
        "event)",
        [](const S& s) { return s.users_overflow; });
  gauge("freshet_publish_kafka_failures", "model topic messages the broker did not acknowledge",
        [](const S& s) { return s.kafka_failures; });
  gauge("freshet_publish_last_round_ms", "wall time of the latest publishing round",
        [](const S& s) { return s.last_round_ms; });
}

absl::Status Serve(const ServeFlags& flags) {
  // First of all: a signal that arrives while the state loads or the sources open (a large file
  // takes seconds) must stop the server cleanly, not kill it, nor be lost where the signal was
  // inherited as ignored (a background job of a script).
  InstallSignalHandlers();
  RaiseFileLimit();
  FRESHET_ASSIGN_OR_RETURN(config::Config config, LoadConfig(flags.config));
  FRESHET_ASSIGN_OR_RETURN(config.serve_admin_token, AdminToken(config));
  if (config.serve_transparent_huge_pages == "advised") LimitHugePages();
  if (!flags.model_topic.empty()) config.tier_model_topic = flags.model_topic;
  if (!flags.redis.empty()) config.tier_redis = flags.redis;
  std::map<std::string, std::string> kafka_properties;
  for (const std::string& kv : flags.kafka_properties) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--kafka-property '", kv, "': expected key=value"));
    }
    kafka_properties[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  if (flags.follow) {
    if (!flags.sources.empty() || !flags.data_dir.empty() || flags.reset) {
      return absl::InvalidArgumentError(
          "--follow: a serving replica has no --source, --data-dir or --reset; it answers from "
          "the state a learner publishes (--model-topic, --redis)");
    }
    if (flags.brokers.empty() || config.tier_model_topic.empty() || config.tier_redis.empty()) {
      return absl::InvalidArgumentError(
          "--follow needs --brokers, --model-topic (or serving_replicas.model_topic) and --redis "
          "(or serving_replicas.redis)");
    }
    if (config.replica_world_size > 1) {
      return absl::InvalidArgumentError(
          "--follow: a serving replica is not a rank of a learning group (replicas.world_size)");
    }
  } else {
    if (flags.sources.empty() && flags.brokers.empty()) {
      return absl::InvalidArgumentError(
          "nothing to consume: give --source file:PATH and/or --brokers B --topic T "
          "(or --follow to run a serving replica)");
    }
    if (!flags.brokers.empty() && flags.topics.empty() && config.tier_model_topic.empty()) {
      return absl::InvalidArgumentError(
          "--brokers needs at least one --topic (or a model topic to publish to)");
    }
    if (!config.tier_model_topic.empty() && (flags.brokers.empty() || config.tier_redis.empty())) {
      return absl::InvalidArgumentError(
          "publishing to serving replicas (serving_replicas.model_topic) needs --brokers and "
          "--redis (or serving_replicas.redis)");
    }
  }
  const std::string backend_name = flags.backend.empty() ? config.backend : flags.backend;
  std::string note;
  FRESHET_ASSIGN_OR_RETURN(std::unique_ptr<kernels::Backend> backend,
                           kernels::CreateBackend(backend_name, &note));
  if (!note.empty()) LogInfo(note);

  // A replica group (config [replicas]; null learning alone): declared before the engine, which
  // uses it until it is destroyed.
  engine::ReplicaGroupOptions replica_options;
  replica_options.brokers = flags.brokers;
  replica_options.reads_files = !flags.sources.empty();
  FRESHET_ASSIGN_OR_RETURN(std::unique_ptr<engine::Collective> replicas,
                           engine::NewReplicaGroup(config, *backend, replica_options));

  engine::EngineOptions options;
  options.data_dir = flags.data_dir;
  options.algorithm = flags.algorithm;
  options.config = config;
  options.reset = flags.reset;
  options.replicas = replicas.get();
  FRESHET_ASSIGN_OR_RETURN(std::unique_ptr<engine::Engine> engine,
                           engine::Engine::Open(options, backend.get()));
  FRESHET_RETURN_IF_ERROR(LoadCatalog(flags, config, *engine));

  // Serving replicas (engine/follower/): a replica follows the learner's published state and
  // answers through it; a learner with a model topic publishes to it.
  std::unique_ptr<engine::ModelFollower> follower;
  std::unique_ptr<engine::FollowerReader> follower_reader;
  std::unique_ptr<engine::ModelPublisher> publisher;
  if (flags.follow) {
    FRESHET_ASSIGN_OR_RETURN(
        follower, engine::ModelFollower::Create(
                      engine::FollowerOptionsFor(config, flags.brokers, kafka_properties),
                      &engine->live_model()));
    if (!flags.bootstrap.empty()) {
      // The learner's whole item state first: the topic (on a broker that does not compact it)
      // may no longer hold every row.
      const absl::Time start = absl::Now();
      std::vector<std::pair<std::string, std::string>> headers;
      if (!config.serve_admin_token.empty()) {
        headers.emplace_back("Authorization", "Bearer " + config.serve_admin_token);
      }
      FRESHET_ASSIGN_OR_RETURN(
          const serving::HttpClientResponse exported,
          serving::HttpRequestOnce(flags.bootstrap, "GET", "/admin/model/items", "", headers,
                                   absl::Seconds(60)));
      if (exported.status != 200) {
        return absl::UnavailableError(
            absl::StrCat("--bootstrap ", flags.bootstrap, ": GET /admin/model/items answered ",
                         exported.status, " ", exported.body.substr(0, 200),
                         exported.status == 401 || exported.status == 403
                             ? " (give this replica the learner's admin token)"
                             : ""));
      }
      if (absl::Status s = follower->Bootstrap(exported.body); !s.ok()) {
        return absl::DataLossError(
            absl::StrCat("--bootstrap ", flags.bootstrap, ": ", s.message()));
      }
      LogInfo(absl::StrCat(
          "replica: item state from ", flags.bootstrap, " (", follower->stats().items_applied,
          " item rows, ", exported.body.size(), " bytes) in ",
          absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(1)))));
    }
    follower_reader =
        std::make_unique<engine::FollowerReader>(&engine->live_model(), follower.get());
    engine->ServeThrough(follower_reader.get());
  } else if (!config.tier_model_topic.empty()) {
    FRESHET_ASSIGN_OR_RETURN(
        publisher, engine::ModelPublisher::Create(
                       engine::PublisherOptionsFor(config, flags.brokers, kafka_properties),
                       &engine->live_model()));
  }

  // The HTTP server, on the live engine, starts as soon as the state is loaded: before file
  // sources are read and before Kafka assigns partitions.
  std::atomic<stream::KafkaEventSource*> kafka{nullptr};
  std::atomic<bool> sources_added{false};
  serving::MetricsRegistry metrics;
  std::unique_ptr<stream::KafkaProducer> producer;
  std::unique_ptr<serving::HttpServer> server;
  if (!flags.no_http) {
    serving::HttpServerOptions http;
    http.bind_address = flags.bind.empty() ? config.serve_bind : flags.bind;
    http.port = flags.port >= 0 ? flags.port : config.serve_port;
    http.io_threads = config::ServeIoThreads(config);
    http.max_in_flight = config.serve_max_in_flight;
    http.max_connections = config.serve_max_connections;
    http.idle_timeout = absl::Milliseconds(config.serve_idle_timeout_ms);
    http.metrics = &metrics;
    server = std::make_unique<serving::HttpServer>(http);
    serving::ApiOptions api;
    api.admin_token = config.serve_admin_token;
    api.backend_requested = backend_name;
    api.backend_note = note;
    api.config = config;
    if (flags.follow && flags.topics.empty()) {
      api.publish = [](const std::vector<stream::Event>&) -> absl::Status {
        return absl::FailedPreconditionError(
            "this is a serving replica (serve --follow): send events to the learner, or start the "
            "replica with --topic to forward them to the learner's topic");
      };
    }
    if (!flags.brokers.empty() && !flags.topics.empty()) {
      stream::KafkaProducerOptions producer_options;
      producer_options.brokers = flags.brokers;
      FRESHET_ASSIGN_OR_RETURN(producer, stream::KafkaProducer::Create(producer_options));
      const std::string topic = flags.topics.front();
      stream::KafkaProducer* p = producer.get();
      // POST /v1/events goes through the topic, so it reaches the learner exactly once; the
      // response waits for the broker's acknowledgement.
      api.publish = [p, topic](const std::vector<stream::Event>& events) -> absl::Status {
        for (const stream::Event& e : events) FRESHET_RETURN_IF_ERROR(p->ProduceEvent(topic, e));
        return p->Flush(absl::Seconds(10));
      };
      api.partition_lag = [&kafka] {
        std::vector<std::tuple<std::string, int32_t, int64_t>> lags;
        stream::KafkaEventSource* k = kafka.load();
        if (k == nullptr) return lags;
        for (const stream::PartitionLag& lag : k->Lag()) {
          if (lag.lag >= 0) lags.emplace_back(lag.topic, lag.partition, lag.lag);
        }
        return lags;
      };
      api.consumer_lag = [&kafka] {
        int64_t total = 0;
        stream::KafkaEventSource* k = kafka.load();
        if (k == nullptr) return total;
        for (const stream::PartitionLag& lag : k->Lag()) total += std::max<int64_t>(0, lag.lag);
        return total;
      };
    }
    // Ready once every source is open (and Kafka has assigned partitions); recommendations are
    // served from the loaded state before that.
    api.sources_ready = [&kafka, &sources_added] {
      stream::KafkaEventSource* k = kafka.load();
      return sources_added.load() && (k == nullptr || k->Assigned());
    };
    const absl::Duration unready_after = absl::Milliseconds(config.serve_unready_after_ms);
    api.sources_health = [&kafka, unready_after, brokers = flags.brokers]() -> absl::Status {
      stream::KafkaEventSource* k = kafka.load();
      if (k == nullptr) return absl::OkStatus();
      const absl::Duration down = k->BrokerUnreachableFor();
      if (down < unready_after) return absl::OkStatus();
      return absl::UnavailableError(absl::StrCat(
          "no Kafka broker of ", brokers, " has been reachable for ",
          absl::FormatDuration(absl::Trunc(down, absl::Seconds(1))), " (serve.unready_after_ms)"));
    };
    if (follower != nullptr) {
      engine::ModelFollower* f = follower.get();
      api.sources_ready = [f] { return f->ready(); };
      api.sources_health = [f] { return f->Readiness(); };
      api.ready_detail = [f](JsonWriter& w) {
        const engine::FollowerStats s = f->stats();
        w.Key("item_state_age_s").Double(s.state_age_s);
        w.Key("model_offset").Int(s.next_offset);
        w.Key("model_end_offset").Int(s.end_offset);
        if (!s.last_error.empty()) w.Key("model_topic_error").String(s.last_error);
      };
      RegisterFollowerMetrics(*f, metrics);
    }
    if (publisher != nullptr) RegisterPublisherMetrics(*publisher, metrics);
    FRESHET_RETURN_IF_ERROR(serving::RegisterApi(*server, *engine, metrics, std::move(api)));
    FRESHET_RETURN_IF_ERROR(serving::RegisterDashboard(*server));
    FRESHET_RETURN_IF_ERROR(server->Start());
    LogInfo(absl::StrCat("serving on http://", http.bind_address, ":", server->port()));
    std::printf("http=%s:%d\n", http.bind_address.c_str(), server->port());
    std::fflush(stdout);
  }

  for (const std::string& spec : flags.sources) {
    if (g_stop.load()) break;  // stopping: Run() below returns at once
    if (!absl::StartsWith(spec, "file:")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--source '", spec, "': expected file:PATH (Kafka topics use --brokers and --topic)"));
    }
    DataFlags data = flags.data;
    data.path = spec.substr(5);
    FRESHET_ASSIGN_OR_RETURN(std::unique_ptr<stream::FileEventSource> source,
                             OpenDataFile(data, config));
    engine::Engine::SourceOptions source_options;
    source_options.events_per_second = flags.rate;
    FRESHET_RETURN_IF_ERROR(engine->AddSource(std::move(source), {spec}, source_options));
  }

  if (!flags.brokers.empty() && !flags.follow && !flags.topics.empty()) {
    stream::KafkaSourceOptions kafka_options;
    kafka_options.brokers = flags.brokers;
    kafka_options.group_id = flags.group;
    kafka_options.topics = flags.topics;
    kafka_options.type_weights = config.type_weights;
    kafka_options.default_weight = config.default_weight;
    kafka_options.limits = {config.max_event_weight, config.max_id_bytes};
    // Replicas consume fixed shares of the partitions: a partition's stored position lives in
    // one rank's data directory, so the partition must always come back to that rank.
    kafka_options.share_index = config.replica_rank;
    kafka_options.share_count = config.replica_world_size;
    kafka_options.properties = kafka_properties;
    FRESHET_ASSIGN_OR_RETURN(std::unique_ptr<stream::KafkaEventSource> source,
                             stream::KafkaEventSource::Create(kafka_options, nullptr));
    kafka.store(source.get());
    std::vector<std::string> names;
    for (const std::string& topic : flags.topics) names.push_back(absl::StrCat("kafka:", topic));
    // The engine positions it (Resume) and hands it the durable positions to commit as the
    // group's offsets (Commit), for lag monitoring.
    FRESHET_RETURN_IF_ERROR(engine->AddSource(std::move(source), names, {}));
  }

  if (follower != nullptr) FRESHET_RETURN_IF_ERROR(follower->Start());
  if (publisher != nullptr) publisher->Start();
  sources_added.store(true);
  engine::Engine::RunOptions run;
  run.exit_when_done = flags.exit_when_done;
  std::atomic<bool> reporter_stop{false};
  std::thread reporter;
  if (flags.status_interval_s > 0) {
    reporter = std::thread([&] {
      const absl::Duration every = absl::Seconds(flags.status_interval_s);
      absl::Time next = absl::Now() + every;
      while (!reporter_stop.load()) {
        absl::SleepFor(absl::Milliseconds(50));
        if (absl::Now() < next) continue;
        next += every;
        std::fprintf(stderr, "status %s\n", StatusLine(*engine).c_str());
      }
    });
  }
  absl::Status status = engine->Run(g_stop, run);
  if (server != nullptr) server->Stop();
  if (publisher != nullptr) publisher->Stop();  // a last round: what was learnt reaches replicas
  if (follower != nullptr) follower->Stop();
  reporter_stop.store(true);
  if (reporter.joinable()) reporter.join();
  std::fprintf(stderr, "final %s\n", StatusLine(*engine).c_str());
  return status;
}

}  // namespace

int RunServe(const ServeFlags& flags) {
  const absl::Status status = Serve(flags);
  if (!status.ok()) {
    PrintError(status);
    return absl::IsInvalidArgument(status) ? 2 : 1;
  }
  return 0;
}

}  // namespace freshet::cli
