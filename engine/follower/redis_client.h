// RedisClient: the little of Redis that serving replicas need — pipelined SETs of many users'
// states (the learner's write-behind) and pipelined GETs of a burst's users (a replica) — over one
// hiredis connection with a timeout, reconnecting after an error. RedisInvalidations: the other
// half of Redis's server-assisted client-side caching (CLIENT TRACKING, Redis >= 6), with which a
// replica keeps the users it has read until Redis says they changed.
#ifndef FRESHET_ENGINE_FOLLOWER_REDIS_CLIENT_H_
#define FRESHET_ENGINE_FOLLOWER_REDIS_CLIENT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace freshet::engine {

// Where the user states live: redis://HOST:PORT (a trailing "/" and nothing else allowed).
struct RedisAddress {
  std::string host;
  int port = 0;
};
// InvalidArgument naming what is wrong.
absl::StatusOr<RedisAddress> ParseRedisUrl(absl::string_view url);

// The key of a user's state: `prefix` + "{" + user + "}". The braces make the user id the key's
// Redis Cluster hash tag, so users spread over the shards by id.
std::string UserStateKey(absl::string_view prefix, absl::string_view user);
// The user of a key UserStateKey() made with `prefix`; nullopt for any other key.
std::optional<absl::string_view> UserOfStateKey(absl::string_view prefix, absl::string_view key);

// Not thread-safe: one connection, one caller at a time.
class RedisClient {
 public:
  // Connects lazily (the first call). Unimplemented when freshet was built without hiredis.
  static absl::StatusOr<std::unique_ptr<RedisClient>> Create(RedisAddress address,
                                                             absl::Duration timeout);
  virtual ~RedisClient() = default;

  // SET key value [EX ttl_s] for every pair, pipelined; Unavailable (the connection is dropped and
  // remade by the next call) when Redis cannot be reached or answers an error.
  virtual absl::Status SetMany(const std::vector<std::pair<std::string, std::string>>& entries,
                               int64_t ttl_s) = 0;
  // GET of every key, pipelined (one round trip; keys may live in different cluster slots): each
  // value, or nullopt for a key that does not exist; Unavailable as above.
  absl::StatusOr<std::vector<std::optional<std::string>>> GetMany(
      const std::vector<std::string>& keys) {
    return GetManyTracked(keys, 0, nullptr);
  }
  // GetMany(), with the keys tracked for `redirect` (> 0: the id of a RedisInvalidations
  // connection): once one of them changes, Redis sends it there. *tracked says whether these
  // reads were tracked (false when Redis refused CLIENT TRACKING, e.g. before version 6, or no
  // longer knows that connection). Keys read on a connection that is later lost are no longer
  // tracked: an Unavailable answer means every key read through this client so far may change
  // unannounced.
  virtual absl::StatusOr<std::vector<std::optional<std::string>>> GetManyTracked(
      const std::vector<std::string>& keys, int64_t redirect, bool* tracked) = 0;
  // Why Redis refused the latest CLIENT TRACKING (empty when it did not).
  virtual std::string tracking_error() const = 0;
  // GetMany of one key.
  absl::StatusOr<std::optional<std::string>> Get(absl::string_view key) {
    absl::StatusOr<std::vector<std::optional<std::string>>> values = GetMany({std::string(key)});
    if (!values.ok()) return values.status();
    return std::move((*values)[0]);
  }
};

// The connection that receives the invalidations of keys read with GetManyTracked(): subscribed
// to __redis__:invalidate (CLIENT TRACKING's RESP2 redirect form). Not thread-safe: one reader.
class RedisInvalidations {
 public:
  // Unimplemented when freshet was built without hiredis.
  static absl::StatusOr<std::unique_ptr<RedisInvalidations>> Create(RedisAddress address,
                                                                    absl::Duration timeout);
  virtual ~RedisInvalidations() = default;

  // Connects (again) and subscribes: the connection's id, for GetManyTracked(). Unavailable when
  // Redis cannot be reached or refuses.
  virtual absl::StatusOr<int64_t> Connect() = 0;
  // Waits up to `wait` for invalidations and appends the keys they name to *keys; *all is set
  // when Redis invalidated every key (FLUSHALL, FLUSHDB). Also answers Barrier(). Unavailable
  // when the connection is lost: every tracked key may then change unannounced; Connect() again.
  virtual absl::Status Poll(absl::Duration wait, std::vector<std::string>* keys, bool* all) = 0;
  // Asks Redis for a marker (a PING) behind every invalidation it has sent so far; the Poll()
  // that meets it counts it in barriers(). Unavailable as Poll().
  virtual absl::Status Barrier() = 0;
  // Markers met so far.
  virtual int64_t barriers() const = 0;
};

}  // namespace freshet::engine

#endif  // FRESHET_ENGINE_FOLLOWER_REDIS_CLIENT_H_
