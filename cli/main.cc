// The `freshet` binary: one executable, one subcommand per operator task.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/commands.h"

namespace {

void AddConfigFlags(CLI::App* cmd, freshet::cli::ConfigFlags* flags) {
  cmd->add_option("--config", flags->config_path, "TOML configuration file (see config/freshet.toml)");
  cmd->add_option("--set", flags->sets, "override one configuration key: --set bpr.lr=0.05 (repeatable)");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"freshet: streaming online-learning recommendation engine"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "freshet 0.1.0");

  freshet::cli::ReplayFlags replay;
  CLI::App* replay_cmd = app.add_subcommand(
      "replay", "replay an event log test-then-train and report Recall/NDCG/MRR@K per model");
  AddConfigFlags(replay_cmd, &replay.config);
  replay_cmd->add_option("--data", replay.data.path, "event log file (.gz is read directly)")->required();
  replay_cmd->add_option("--format", replay.data.format,
                         "movielens-100k | movielens | csv | tsv | jsonl")->capture_default_str();
  replay_cmd->add_option("--columns", replay.data.columns,
                         "csv/tsv column roles in order, e.g. user,item,_,type,ts (_ skips)");
  replay_cmd->add_option("--delimiter", replay.data.delimiter, "csv field separator (default ',')");
  replay_cmd->add_flag("--header", replay.data.header, "the first line is a header");
  replay_cmd->add_option("--ts-unit", replay.data.ts_unit, "auto | s | ms (default: auto; jsonl ms)");
  replay_cmd->add_option("--type-weights", replay.data.type_weights,
                         "event type weights, e.g. view=1,click=2,purchase=8");
  replay_cmd->add_flag("--no-sort", replay.data.no_sort, "replay in file order instead of time order");
  replay_cmd->add_option("--algo", replay.algorithms,
                         "comma-separated models (popularity is always added): bpr, ials, cooc, "
                         "hybrid, popularity")->capture_default_str();
  replay_cmd->add_option("--k", replay.k, "K of Recall@K (default: replay.k = 10)")
      ->check(CLI::Range(1, 10000));
  replay_cmd->add_option("--report", replay.report_dir, "write report.json and report.html here");
  replay_cmd->add_flag("--no-eval", replay.no_eval, "learn only: measure pure learning throughput");
  replay_cmd->add_option("--windows", replay.windows, "slices of the stream in the report (default 20)")
      ->check(CLI::Range(1, 10000));
  replay_cmd->add_option("--backend", replay.backend, "cpu | cuda | auto (default: kernels.backend)");
  replay_cmd->add_flag("--quiet", replay.quiet, "no progress line");

  freshet::cli::GenerateFlags generate;
  CLI::App* gen_cmd = app.add_subcommand(
      "generate", "write a synthetic JSON-lines clickstream with planted structure");
  gen_cmd->add_option("--output", generate.output, "output file (.gz: gzip)")->required();
  gen_cmd->add_option("--events", generate.events, "number of events")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  gen_cmd->add_option("--users", generate.users, "number of users")->capture_default_str();
  gen_cmd->add_option("--items", generate.items, "number of items")->capture_default_str();
  gen_cmd->add_option("--seed", generate.seed, "random seed")->capture_default_str();
  gen_cmd->add_option("--topics", generate.topics, "planted rank (taste topics)")->capture_default_str();
  gen_cmd->add_option("--popularity-exponent", generate.popularity_exponent,
                      "Zipf exponent of item popularity")->capture_default_str();
  gen_cmd->add_option("--sequential", generate.sequential_probability,
                      "probability that the next item follows the previous one")->capture_default_str();
  gen_cmd->add_option("--drift", generate.drift_rate, "per-event probability of a taste change")
      ->capture_default_str();
  gen_cmd->add_option("--user-topics", generate.user_topics, "preferred topics per user")
      ->capture_default_str();
  gen_cmd->add_option("--concentration", generate.topic_concentration,
                      "probability that an item comes from a preferred topic")->capture_default_str();
  gen_cmd->add_option("--successors", generate.max_successors,
                      "most planted successors per item")->capture_default_str();
  gen_cmd->add_option("--rate", generate.events_per_second,
                      "events per second of simulated time")->capture_default_str();

  freshet::cli::ConfigFlags config;
  CLI::App* config_cmd = app.add_subcommand("config", "print the effective configuration as TOML");
  AddConfigFlags(config_cmd, &config);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Prints help/version (exit 0) or the usage error; every usage error exits 2.
    return app.exit(e) == 0 ? 0 : 2;
  }

  if (replay_cmd->parsed()) return freshet::cli::RunReplay(replay);
  if (gen_cmd->parsed()) return freshet::cli::RunGenerate(generate);
  if (config_cmd->parsed()) return freshet::cli::RunConfig(config);
  return 2;
}
