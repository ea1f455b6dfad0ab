#include "cli/common_flags.h"

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace freshet::cli {

absl::StatusOr<config::Config> LoadConfig(const ConfigFlags& flags) {
  config::Config config;
  if (!flags.config_path.empty()) {
    FRESHET_ASSIGN_OR_RETURN(config, config::LoadConfigFile(flags.config_path));
  }
  FRESHET_RETURN_IF_ERROR(config::ApplyOverrides(&config, flags.sets));
  return config;
}

absl::StatusOr<std::unique_ptr<stream::FileEventSource>> OpenDataFile(
    const DataFlags& flags, const config::Config& config) {
  FRESHET_ASSIGN_OR_RETURN(stream::FileSourceOptions options,
                           stream::FileSourceOptions::ForFormat(flags.format));
  if (!flags.columns.empty()) {
    FRESHET_ASSIGN_OR_RETURN(options.columns, stream::ParseColumns(flags.columns));
  }
  if (!flags.delimiter.empty()) {
    FRESHET_ASSIGN_OR_RETURN(options.delimiter, stream::ParseDelimiter(flags.delimiter));
  }
  options.header = options.header || flags.header;
  if (!flags.ts_unit.empty()) {
    FRESHET_ASSIGN_OR_RETURN(options.ts_unit, stream::ParseTimestampUnit(flags.ts_unit));
  }
  options.type_weights = config.type_weights;
  options.default_weight = config.default_weight;
  options.limits = {config.max_event_weight, config.max_id_bytes};
  if (!flags.type_weights.empty()) {
    FRESHET_ASSIGN_OR_RETURN(auto weights, stream::ParseTypeWeights(flags.type_weights));
    // Checked as [events.types] is: a weight above events.max_weight would refuse every event
    // of its type as malformed.
    config::Config merged = config;
    for (const auto& [type, weight] : weights) merged.type_weights[type] = weight;
    if (absl::Status valid = config::Validate(merged); !valid.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--type-weights: ", valid.message()));
    }
    options.type_weights = std::move(merged.type_weights);
  }
  options.sort_by_time = !flags.no_sort;
  return stream::FileEventSource::Open(flags.path, options);
}

absl::Status RequireEvents(const stream::FileEventSource& source, absl::string_view verb) {
  if (source.size() > 0) return absl::OkStatus();
  const int64_t malformed = source.stats().malformed;
  return absl::InvalidArgumentError(
      malformed > 0 ? absl::StrCat(source.Name(), ": no event to ", verb, ": every record (",
                                   malformed, ") is malformed (the warnings above say why)")
                    : absl::StrCat(source.Name(), ": no event to ", verb, ": the file holds none"));
}

void PrintError(const absl::Status& status) {
  std::fprintf(stderr, "freshet: %s\n", std::string(status.message()).c_str());
}

}  // namespace freshet::cli
