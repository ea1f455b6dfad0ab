// `freshet generate`: a synthetic JSON-lines clickstream for tests and benchmarks.
#include <chrono>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/commands.h"
#include "cli/common_flags.h"
#include "cli/progress_line.h"
#include "common/json_writer.h"
#include "common/log.h"
#include "stream/synthetic/synthetic_ceiling.h"
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
  if (!flags.ceiling) return 0;
  const double ceiling_start = seconds();
  const absl::StatusOr<stream::SyntheticCeiling> ceiling = stream::MeasureSyntheticCeiling(options);
  if (!ceiling.ok()) {
    PrintError(ceiling.status());
    return 1;
  }
  LogInfo(absl::StrCat("ranked ", WithThousands(ceiling->evaluated),
                       " events by the generator's own distribution in ",
                       absl::StrFormat("%.1f", seconds() - ceiling_start), " s"));
  JsonWriter w;
  w.BeginObject().Key("ceiling").BeginObject();
  w.Key("k").Int(ceiling->k).Key("events").Int(ceiling->events);
  w.Key("evaluated").Int(ceiling->evaluated);
  w.Key("recall").Double(ceiling->recall).Key("ndcg").Double(ceiling->ndcg);
  w.Key("early_events").Int(ceiling->early_events);
  w.Key("early_evaluated").Int(ceiling->early_evaluated);
  w.Key("early_recall").Double(ceiling->early_recall);
  w.Key("later_evaluated").Int(ceiling->later_evaluated);
  w.Key("later_recall").Double(ceiling->later_recall);
  w.EndObject().EndObject();
  std::printf("%s\n", w.str().c_str());
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
