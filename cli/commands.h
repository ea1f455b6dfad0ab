// The subcommands of the `freshet` binary. Each returns the process exit code: 0 on success, 1 when
// the work failed, 2 for bad usage (CLI11 handles most of that before these run).
#ifndef FRESHET_CLI_COMMANDS_H_
#define FRESHET_CLI_COMMANDS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace freshet::cli {

// Options shared by commands that read a configuration.
struct ConfigFlags {
  std::string config_path;        // --config FILE (TOML); empty: built-in defaults
  std::vector<std::string> sets;  // --set key=value, applied after the file
};

// How to read an event log file.
struct DataFlags {
  std::string path;
  std::string format = "movielens-100k";
  std::string columns;
  std::string delimiter;
  bool header = false;
  std::string ts_unit;
  std::string type_weights;  // "view=1,click=2"; merged over [events.types]
  bool no_sort = false;
};

struct ReplayFlags {
  ConfigFlags config;
  DataFlags data;
  std::string algorithms = "bpr,ials,cooc";
  int k = 0;  // 0: replay.k from the config
  std::string report_dir;
  bool no_eval = false;
  int windows = 0;           // 0: replay.windows from the config
  int stability_every = 10;  // users sampled for the stability figure (1 in N); 0: off
  std::string backend;
  bool quiet = false;
};
int RunReplay(const ReplayFlags& flags);

struct GenerateFlags {
  std::string output;
  int64_t events = 1'000'000;
  int32_t users = 10'000;
  int32_t items = 10'000;
  uint64_t seed = 1;
  int32_t topics = 32;
  double popularity_exponent = 1.0;
  double sequential_probability = 0.3;
  double drift_rate = 0.002;
  double events_per_second = 100;
  int32_t user_topics = 3;
  double topic_concentration = 0.9;
  int32_t max_successors = 3;
  // Also rank every event by the generator's own next-item distribution and print that ceiling.
  bool ceiling = false;
};
int RunGenerate(const GenerateFlags& flags);

// Prints the effective configuration as TOML.
int RunConfig(const ConfigFlags& flags);

}  // namespace freshet::cli

#endif  // FRESHET_CLI_COMMANDS_H_
