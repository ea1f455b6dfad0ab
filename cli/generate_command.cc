// `freshet generate`: a synthetic JSON-lines clickstream for tests and benchmarks.
#include <chrono>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/commands.h"
#include "cli/common_flags.h"
#include "cli/progress_line.h"
#include "common/log.h"
#include "stream/synthetic/synthetic_stream.h"

namespace freshet::cli {

int RunGenerate(const GenerateFlags& flags) {
  stream::SyntheticStreamOptions options;
  options.events = flags.events;
  options.users = flags.users;
  options.items = flags.items;
  options.seed = flags.seed;
  options.topics = flags.topics;
  options.popularity_exponent = flags.popularity_exponent;
  options.sequential_probability = flags.sequential_probability;
  options.drift_rate = flags.drift_rate;
  options.events_per_second = flags.events_per_second;
  options.user_topics = flags.user_topics;
  options.topic_concentration = flags.topic_concentration;
  options.max_successors = flags.max_successors;
  ProgressLine progress;
  const auto start = std::chrono::steady_clock::now();
  const auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  const absl::Status status = stream::WriteSyntheticStream(
      options, flags.output,
      [&](int64_t written) { progress.Update("[generate]", written, flags.events, seconds()); });
  progress.Finish();
  if (!status.ok()) {
    PrintError(status);
    return 1;
  }
  LogInfo(absl::StrCat("wrote ", WithThousands(flags.events), " events to ", flags.output, " in ",
                       absl::StrFormat("%.1f", seconds()), " s"));
  return 0;
}

int RunConfig(const ConfigFlags& flags) {
  absl::StatusOr<config::Config> config = LoadConfig(flags);
  if (!config.ok()) {
    PrintError(config.status());
    return 1;
  }
  std::fputs(config::ToToml(*config).c_str(), stdout);
  return 0;
}

}  // namespace freshet::cli
