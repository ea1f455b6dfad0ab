// Rendezvous: one process publishes a small blob under a name and the others wait for it — how the
// ranks of a replica group agree on their NCCL unique id. A location is either
//   a file path   "/shared/job-42.nccl": written to a temporary file that is then renamed into
//                 place, so a reader never sees half of it (every rank must reach the path);
//   a Redis key   "redis://HOST:PORT/KEY": SET with an expiry of an hour, read with GET (in a
//                 build with hiredis, FRESHET_REDIS=ON and libhiredis-dev found; without it
//                 FailedPrecondition says so).
// A location must be new for each launch of a group: a blob left by an earlier launch would send
// the other ranks to a group that no longer exists (Redis keys expire; files stay until removed).
#ifndef FRESHET_ENGINE_REPLICAS_RENDEZVOUS_H_
#define FRESHET_ENGINE_REPLICAS_RENDEZVOUS_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace freshet::engine {

// Publishes `blob` at `location`. InvalidArgument for an empty or malformed location (a redis://
// one without host, port or key); Unavailable when the file cannot be written or Redis cannot be
// reached or refuses the write (the message says which and why).
absl::Status PublishBlob(const std::string& location, absl::string_view blob);

// Waits up to `timeout` for a blob of exactly `size` bytes at `location`, retrying a Redis that
// cannot be reached yet. InvalidArgument as above; DeadlineExceeded when none appears in time
// (naming the last connection error, if any); DataLoss when the blob found has another size.
absl::StatusOr<std::string> WaitForBlob(const std::string& location, size_t size,
                                        absl::Duration timeout);

}  // namespace freshet::engine

#endif  // FRESHET_ENGINE_REPLICAS_RENDEZVOUS_H_
