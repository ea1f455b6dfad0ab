// RedisClient: the little of Redis that serving replicas need — pipelined SETs of many users'
// states (the learner's write-behind) and one GET per request (a replica) — over one hiredis
// connection with a timeout, reconnecting after an error.
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
  virtual absl::StatusOr<std::vector<std::optional<std::string>>> GetMany(
      const std::vector<std::string>& keys) = 0;
  // GetMany of one key.
  absl::StatusOr<std::optional<std::string>> Get(absl::string_view key) {
    absl::StatusOr<std::vector<std::optional<std::string>>> values = GetMany({std::string(key)});
    if (!values.ok()) return values.status();
    return std::move((*values)[0]);
  }
};

}  // namespace freshet::engine

#endif  // FRESHET_ENGINE_FOLLOWER_REDIS_CLIENT_H_
