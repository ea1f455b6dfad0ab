// Turning command-line flags into configuration and sources, shared by the subcommands.
#ifndef FRESHET_CLI_COMMON_FLAGS_H_
#define FRESHET_CLI_COMMON_FLAGS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cli/commands.h"
#include "config/config.h"
#include "stream/file_event_source.h"

namespace freshet::cli {

// --config then --set, over the built-in defaults.
absl::StatusOr<config::Config> LoadConfig(const ConfigFlags& flags);

// Opens (reads, validates and sorts) the event log described by `flags`.
absl::StatusOr<std::unique_ptr<stream::FileEventSource>> OpenDataFile(const DataFlags& flags,
                                                                      const config::Config& config);

// An error naming `source` when it holds no valid event (every record malformed, or none at all),
// for commands where that can only be a mistake: "<name>: no event to <verb>: ...".
absl::Status RequireEvents(const stream::FileEventSource& source, absl::string_view verb);

// Prints "freshet: <message>" to stderr.
void PrintError(const absl::Status& status);

}  // namespace freshet::cli

#endif  // FRESHET_CLI_COMMON_FLAGS_H_
