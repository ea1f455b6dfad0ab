// The `freshet` binary: one executable, one subcommand per operator task.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "cli/kafka_commands.h"
#include "cli/state_commands.h"

namespace {

void AddConfigFlags(CLI::App* cmd, freshet::cli::ConfigFlags* flags) {
  cmd->add_option("--config", flags->config_path,
                  "TOML configuration file (see config/freshet.toml)");
  cmd->add_option("--set", flags->sets,
                  "override one configuration key: --set bpr.lr=0.05 (repeatable)");
}

}  // namespace

namespace {

// A binary built for an x86-64 level this processor lacks would die of SIGILL somewhere inside;
// say so plainly instead (FRESHET_ARCH in CMakeLists.txt).
bool ProcessorRunsThisBuild() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
#if defined(__AVX512F__)
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
      !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512dq")) {
    std::fprintf(stderr,
                 "freshet: this binary was built for AVX-512 (x86-64-v4), which this processor "
                 "does not have; rebuild with -DFRESHET_ARCH=x86-64-v3\n");
    return false;
  }
#endif
#if defined(__AVX2__) && defined(__FMA__)
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    std::fprintf(stderr,
                 "freshet: this binary was built for AVX2 + FMA (x86-64-v3), which this processor "
                 "does not have; rebuild with -DFRESHET_ARCH=x86-64-v2\n");
    return false;
  }
#endif
#endif
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (!ProcessorRunsThisBuild()) return 1;
  CLI::App app{"freshet: streaming online-learning recommendation engine"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "freshet 0.1.0");

  freshet::cli::ReplayFlags replay;
  CLI::App* replay_cmd = app.add_subcommand(
      "replay", "replay an event log test-then-train and report Recall/NDCG/MRR@K per model");
  AddConfigFlags(replay_cmd, &replay.config);
  replay_cmd->add_option("--data", replay.data.path, "event log file (.gz is read directly)")
      ->required();
  replay_cmd
      ->add_option("--format", replay.data.format, "movielens-100k | movielens | csv | tsv | jsonl")
      ->capture_default_str();
  replay_cmd->add_option("--columns", replay.data.columns,
                         "csv/tsv column roles in order, e.g. user,item,_,type,ts (_ skips)");
  replay_cmd->add_option("--delimiter", replay.data.delimiter, "csv field separator (default ',')");
  replay_cmd->add_flag("--header", replay.data.header, "the first line is a header");
  replay_cmd->add_option("--ts-unit", replay.data.ts_unit,
                         "auto | s | ms (default: auto; jsonl ms)");
  replay_cmd->add_option("--type-weights", replay.data.type_weights,
                         "event type weights, e.g. view=1,click=2,purchase=8");
  replay_cmd->add_flag("--no-sort", replay.data.no_sort,
                       "replay in file order instead of time order");
  replay_cmd
      ->add_option("--algo", replay.algorithms,
                   "comma-separated models (popularity is always added): bpr, ials, cooc, "
                   "hybrid, blend, popularity")
      ->capture_default_str();
  replay_cmd->add_option("--k", replay.k, "K of Recall@K (default: replay.k = 10)")
      ->check(CLI::Range(1, 10000));
  replay_cmd->add_option("--report", replay.report_dir, "write report.json and report.html here");
  replay_cmd->add_flag("--no-eval", replay.no_eval, "learn only: measure pure learning throughput");
  replay_cmd
      ->add_option("--windows", replay.windows, "slices of the stream in the report (default 20)")
      ->check(CLI::Range(1, 10000));
  replay_cmd
      ->add_option("--stability-every", replay.stability_every,
                   "measure the stability of top-K lists for 1 user in N (by id hash); 0: off")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  replay_cmd->add_option("--backend", replay.backend,
                         "cpu | cuda | auto (default: kernels.backend)");
  replay_cmd->add_flag("--quiet", replay.quiet, "no progress line");

  freshet::cli::GenerateFlags generate;
  CLI::App* gen_cmd = app.add_subcommand(
      "generate", "write a synthetic JSON-lines clickstream with planted structure");
  gen_cmd->add_option("--output", generate.output, "output file (.gz: gzip)")->required();
  gen_cmd->add_option("--events", generate.events, "number of events")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  gen_cmd->add_option("--users", generate.users, "number of users")->capture_default_str();
  gen_cmd->add_option("--items", generate.items, "number of items")->capture_default_str();
  gen_cmd->add_option("--seed", generate.seed, "random seed")->capture_default_str();
  gen_cmd->add_option("--topics", generate.topics, "planted rank (taste topics)")
      ->capture_default_str();
  gen_cmd
      ->add_option("--popularity-exponent", generate.popularity_exponent,
                   "Zipf exponent of item popularity")
      ->capture_default_str();
  gen_cmd
      ->add_option("--sequential", generate.sequential_probability,
                   "probability that the next item follows the previous one")
      ->capture_default_str();
  gen_cmd->add_option("--drift", generate.drift_rate, "per-event probability of a taste change")
      ->capture_default_str();
  gen_cmd->add_option("--user-topics", generate.user_topics, "preferred topics per user")
      ->capture_default_str();
  gen_cmd
      ->add_option("--concentration", generate.topic_concentration,
                   "probability that an item comes from a preferred topic")
      ->capture_default_str();
  gen_cmd->add_option("--successors", generate.max_successors, "most planted successors per item")
      ->capture_default_str();
  gen_cmd->add_option("--rate", generate.events_per_second, "events per second of simulated time")
      ->capture_default_str();
  gen_cmd->add_flag("--ceiling", generate.ceiling,
                    "then print, as a JSON line, Recall@10 of ranking each event by the "
                    "generator's own next-item distribution (replay's protocol): the best any "
                    "model can reach on this stream");

  freshet::cli::ConfigFlags config;
  CLI::App* config_cmd = app.add_subcommand("config", "print the effective configuration as TOML");
  AddConfigFlags(config_cmd, &config);

  freshet::cli::ProduceFlags produce;
  CLI::App* produce_cmd = app.add_subcommand(
      "produce", "write an event log into a Kafka topic as JSON events keyed by user");
  AddConfigFlags(produce_cmd, &produce.config);
  produce_cmd->add_option("--brokers", produce.brokers, "Kafka bootstrap servers (host:port,...)")
      ->required();
  produce_cmd->add_option("--topic", produce.topic, "topic to write to")->required();
  produce_cmd->add_option("--data", produce.data.path, "event log file (.gz is read directly)")
      ->required();
  produce_cmd
      ->add_option("--format", produce.data.format,
                   "movielens-100k | movielens | csv | tsv | jsonl")
      ->capture_default_str();
  produce_cmd->add_option("--columns", produce.data.columns,
                          "csv/tsv column roles in order, e.g. user,item,_,type,ts (_ skips)");
  produce_cmd->add_option("--delimiter", produce.data.delimiter,
                          "csv field separator (default ',')");
  produce_cmd->add_flag("--header", produce.data.header, "the first line is a header");
  produce_cmd->add_option("--ts-unit", produce.data.ts_unit,
                          "auto | s | ms (default: auto; jsonl ms)");
  produce_cmd->add_option("--type-weights", produce.data.type_weights,
                          "event type weights, e.g. view=1,click=2,purchase=8");
  produce_cmd->add_flag("--no-sort", produce.data.no_sort,
                        "write in file order instead of time order");
  produce_cmd->add_option("--rate", produce.rate, "events per second (0: as fast as possible)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  produce_cmd
      ->add_option("--partitions", produce.partitions,
                   "create the topic with this many partitions if it does not exist")
      ->check(CLI::Range(1, 100000));
  produce_cmd->add_option(
      "--property", produce.properties,
      "librdkafka property key=value, e.g. message.timeout.ms=5000 (repeatable)");
  produce_cmd->add_flag("--quiet", produce.quiet, "no progress line");

  freshet::cli::BrokerFlags broker;
  CLI::App* broker_cmd = app.add_subcommand(
      "broker",
      "development broker: librdkafka's in-process mock cluster on 127.0.0.1 (in memory, no "
      "durability, about 5 MiB retained per partition, eager consumer groups only). A tool for "
      "development and tests; production uses real Kafka via --brokers/bootstrap.servers, and "
      "nothing depends on the mock. Prints bootstrap=127.0.0.1:PORT, runs until SIGINT/SIGTERM");
  broker_cmd->add_option("--topics", broker.topics, "topics to create, comma-separated")
      ->delimiter(',');
  broker_cmd->add_option("--partitions", broker.partitions, "partitions per topic")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  broker_cmd
      ->add_option("--port", broker.port,
                   "fixed bootstrap port on 127.0.0.1 (relayed; 0: the mock's random port)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();

  freshet::cli::ServeFlags serve;
  CLI::App* serve_cmd = app.add_subcommand(
      "serve", "consume, learn, persist and serve: sources -> learner -> RocksDB -> HTTP");
  AddConfigFlags(serve_cmd, &serve.config);
  serve_cmd->add_option("--data-dir", serve.data_dir,
                        "state directory (RocksDB, snapshots); without it nothing is persisted");
  serve_cmd
      ->add_option("--algo", serve.algorithm, "bpr | ials | cooc | hybrid | blend | popularity")
      ->capture_default_str();
  serve_cmd->add_option("--source", serve.sources,
                        "an event log to replay: file:PATH (repeatable; resumes after its stored "
                        "position)");
  serve_cmd
      ->add_option("--format", serve.data.format,
                   "format of file sources: movielens-100k | movielens | csv | tsv | jsonl")
      ->capture_default_str();
  serve_cmd->add_option("--columns", serve.data.columns,
                        "csv/tsv column roles, e.g. user,item,_,ts");
  serve_cmd->add_option("--delimiter", serve.data.delimiter, "csv field separator");
  serve_cmd->add_flag("--header", serve.data.header, "file sources start with a header line");
  serve_cmd->add_option("--ts-unit", serve.data.ts_unit, "auto | s | ms");
  serve_cmd->add_flag("--no-sort", serve.data.no_sort,
                      "replay files in file order, not time order");
  serve_cmd->add_option("--rate", serve.rate, "events per second per file source (0: unlimited)")
      ->check(CLI::NonNegativeNumber);
  serve_cmd->add_option("--brokers", serve.brokers, "Kafka bootstrap servers (host:port,...)");
  serve_cmd->add_option("--topic", serve.topics, "Kafka topic to consume (repeatable)");
  serve_cmd->add_option("--group", serve.group, "Kafka consumer group")->capture_default_str();
  serve_cmd->add_option("--kafka-property", serve.kafka_properties,
                        "librdkafka consumer property key=value, e.g. security.protocol=SSL or "
                        "session.timeout.ms=6000 (repeatable)");
  serve_cmd->add_option("--backend", serve.backend, "cpu | cuda | auto (default: kernels.backend)");
  serve_cmd->add_flag("--exit-when-done", serve.exit_when_done,
                      "exit (after the final write) once every file source is replayed");
  serve_cmd->add_flag("--reset", serve.reset,
                      "discard the state stored in --data-dir and start from nothing");
  serve_cmd
      ->add_option("--status-interval", serve.status_interval_s,
                   "seconds between status lines on stderr (0: none)")
      ->capture_default_str();
  serve_cmd->add_option("--bind", serve.bind, "HTTP address (default: serve.bind, 127.0.0.1)");
  serve_cmd->add_option("--port", serve.port, "HTTP port (default: serve.port, 8080; 0: any free)")
      ->check(CLI::Range(0, 65535));
  serve_cmd->add_flag("--no-http", serve.no_http,
                      "learn and persist only, without the HTTP server");
  serve_cmd->add_option("--catalog", serve.catalog,
                        "item catalog to load (titles, categories, ...): JSON lines, CSV or TSV "
                        "with a header naming an item (or id) column, or MovieLens u.item / "
                        "movies.dat; stored with the state. Default: u.item or movies.dat beside "
                        "a MovieLens --source");
  serve_cmd->add_flag("--follow", serve.follow,
                      "run as a stateless serving replica: no sources, no data directory; item "
                      "state from the model topic on --brokers, users' states from --redis");
  serve_cmd->add_option("--model-topic", serve.model_topic,
                        "the model topic (default: serving_replicas.model_topic): a learner "
                        "publishes its item rows to it, a --follow replica reads it");
  serve_cmd->add_option("--bootstrap", serve.bootstrap,
                        "with --follow: the learner's HTTP address (http://HOST:PORT) to take "
                        "its whole item state from first (GET /admin/model/items, with the admin "
                        "token), for a model topic that is not compacted");
  serve_cmd->add_option("--redis", serve.redis,
                        "redis://HOST:PORT of the users' states (default: serving_replicas.redis)");
  serve_cmd->add_option("--catalog-format", serve.catalog_format,
                        "jsonl | csv | tsv | movielens-100k | movielens-1m (default: from the "
                        "file name)");

  freshet::cli::InspectFlags inspect;
  CLI::App* inspect_cmd = app.add_subcommand(
      "inspect", "print what a data directory holds: counters, positions, memory; or one row");
  inspect_cmd->add_option("--data-dir", inspect.data_dir, "state directory")->required();
  inspect_cmd->add_option("--snapshot", inspect.snapshot, "inspect this snapshot instead");
  inspect_cmd->add_option("--user", inspect.user, "print this user's counters and vector norm");
  inspect_cmd->add_option("--item", inspect.item, "print this item's counters and vector norm");
  inspect_cmd->add_flag("--json", inspect.json, "one line of JSON");

  freshet::cli::SnapshotFlags snapshot;
  CLI::App* snapshot_cmd = app.add_subcommand(
      "snapshot", "create | list | inspect | restore | delete | export snapshots of a data dir");
  snapshot_cmd
      ->add_option("action", snapshot.action, "create | list | inspect | restore | delete | export")
      ->required();
  snapshot_cmd->add_option("--data-dir", snapshot.data_dir, "state directory (offline)");
  snapshot_cmd->add_option("--server", snapshot.server,
                           "a running server's base URL, e.g. http://127.0.0.1:8080 (admin API)");
  snapshot_cmd->add_option("--token", snapshot.token,
                           "admin bearer token for --server (default: $FRESHET_ADMIN_TOKEN)");
  snapshot_cmd->add_option("--id", snapshot.id,
                           "snapshot id (create: optional name; export: default the live state)");
  snapshot_cmd->add_flag("--json", snapshot.json, "JSON output");
  snapshot_cmd->add_option("--output", snapshot.output, "export: output directory");
  snapshot_cmd->add_option("--format", snapshot.format, "export: npy (+ .ids files) | tsv")
      ->capture_default_str();
  snapshot_cmd->add_flag("--users", snapshot.users, "export: user vectors too");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Prints help/version (exit 0) or the usage error; every usage error exits 2.
    return app.exit(e) == 0 ? 0 : 2;
  }

  if (replay_cmd->parsed()) return freshet::cli::RunReplay(replay);
  if (gen_cmd->parsed()) return freshet::cli::RunGenerate(generate);
  if (config_cmd->parsed()) return freshet::cli::RunConfig(config);
  if (produce_cmd->parsed()) return freshet::cli::RunProduce(produce);
  if (broker_cmd->parsed()) return freshet::cli::RunBroker(broker);
  if (serve_cmd->parsed()) return freshet::cli::RunServe(serve);
  if (inspect_cmd->parsed()) return freshet::cli::RunInspect(inspect);
  if (snapshot_cmd->parsed()) return freshet::cli::RunSnapshot(snapshot);
  return 2;
}
