// The one place where RocksDB's Status becomes an absl::Status.
#ifndef FRESHET_STORE_ROCKSDB_STATUS_H_
#define FRESHET_STORE_ROCKSDB_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "rocksdb/status.h"

namespace freshet::store {

// Maps `s` to the closest absl code, prefixing the message with `context` (what was being done,
// e.g. "opening /data/db"): NotFound -> NotFound, Corruption -> DataLoss, IOError -> Unavailable
// (NoSpace -> ResourceExhausted), InvalidArgument/NotSupported -> InvalidArgument/Unimplemented,
// Busy/TimedOut/TryAgain -> Unavailable, locked database (IOError "lock") -> FailedPrecondition.
absl::Status FromRocksDb(const rocksdb::Status& s, absl::string_view context);

}  // namespace freshet::store

#endif  // FRESHET_STORE_ROCKSDB_STATUS_H_
