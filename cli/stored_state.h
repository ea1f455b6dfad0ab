// Opening a stored state (the live database of a data directory, or a snapshot) read-only, for
// the offline operator commands.
#ifndef FRESHET_CLI_STORED_STATE_H_
#define FRESHET_CLI_STORED_STATE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "learner/learner.h"
#include "store/rocksdb/state_store.h"

namespace freshet::cli {

struct StoredState {
  store::StoreMeta meta;
  std::unique_ptr<kernels::Backend> backend;
  std::unique_ptr<learner::Learner> learner;  // null when `load_rows` was false
  int64_t disk_bytes = 0;
};

// Opens the database in `db_path` read-only (works beside a running server) and, with
// `load_rows`, loads it into a learner built from the stored algorithm and configuration.
absl::StatusOr<StoredState> OpenStoredState(const std::string& db_path, bool load_rows);

}  // namespace freshet::cli

#endif  // FRESHET_CLI_STORED_STATE_H_
