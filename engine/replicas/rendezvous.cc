#include "engine/replicas/rendezvous.h"

#include <sys/time.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

#if FRESHET_HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif

namespace freshet::engine {
namespace {

constexpr absl::string_view kRedisScheme = "redis://";
constexpr int kRedisExpirySeconds = 3600;
constexpr absl::Duration kPollPause = absl::Milliseconds(10);

struct RedisLocation {
  std::string host;
  int port = 0;
  std::string key;
};

absl::StatusOr<RedisLocation> ParseRedis(absl::string_view location) {
  absl::string_view rest = location.substr(kRedisScheme.size());
  const size_t slash = rest.find('/');
  const size_t colon = rest.substr(0, slash).rfind(':');
  RedisLocation out;
  if (slash == absl::string_view::npos || colon == absl::string_view::npos || colon == 0 ||
      slash + 1 >= rest.size() ||
      !absl::SimpleAtoi(rest.substr(colon + 1, slash - colon - 1), &out.port) || out.port <= 0 ||
      out.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("rendezvous '", location, "': expected redis://HOST:PORT/KEY"));
  }
  out.host = std::string(rest.substr(0, colon));
  out.key = std::string(rest.substr(slash + 1));
  return out;
}

#if FRESHET_HAVE_HIREDIS
struct RedisFree {
  void operator()(redisContext* c) const { redisFree(c); }
};
struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using RedisConnection = std::unique_ptr<redisContext, RedisFree>;
using RedisReplyPtr = std::unique_ptr<redisReply, ReplyFree>;

absl::StatusOr<RedisConnection> Connect(const RedisLocation& at) {
  const timeval timeout{2, 0};
  RedisConnection c(redisConnectWithTimeout(at.host.c_str(), at.port, timeout));
  if (c == nullptr) return absl::ResourceExhaustedError("no memory for a Redis connection");
  if (c->err != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot reach Redis at ", at.host, ":", at.port, ": ", c->errstr));
  }
  if (redisSetTimeout(c.get(), timeout) != REDIS_OK) {
    return absl::UnavailableError(
        absl::StrCat("Redis at ", at.host, ":", at.port, ": ", c->errstr));
  }
  return c;
}

// Runs one command; Unavailable on a connection error or an error reply.
absl::StatusOr<RedisReplyPtr> Command(redisContext* c, const RedisLocation& at, const char* format,
                                      ...) {
  va_list args;
  va_start(args, format);
  RedisReplyPtr reply(static_cast<redisReply*>(redisvCommand(c, format, args)));
  va_end(args);
  if (reply == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("Redis at ", at.host, ":", at.port, ": ", c->errstr));
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    return absl::UnavailableError(absl::StrCat("Redis at ", at.host, ":", at.port, " refused: ",
                                               absl::string_view(reply->str, reply->len)));
  }
  return reply;
}

absl::Status PublishRedis(const RedisLocation& at, absl::string_view blob) {
  absl::StatusOr<RedisConnection> c = Connect(at);
  if (!c.ok()) return c.status();
  absl::StatusOr<RedisReplyPtr> reply =
      Command(c->get(), at, "SET %b %b EX %d", at.key.data(), at.key.size(), blob.data(),
              blob.size(), kRedisExpirySeconds);
  return reply.status();
}

// Reads a key, keeping its connection between calls.
class RedisReader {
 public:
  explicit RedisReader(RedisLocation at) : at_(std::move(at)) {}
  static absl::Status Supported() { return absl::OkStatus(); }
  // The value, nullopt while the key is absent, or the connection's error (reconnects next).
  absl::StatusOr<std::optional<std::string>> Get() {
    if (connection_ == nullptr) {
      absl::StatusOr<RedisConnection> c = Connect(at_);
      if (!c.ok()) return c.status();
      connection_ = *std::move(c);
    }
    absl::StatusOr<RedisReplyPtr> reply =
        Command(connection_.get(), at_, "GET %b", at_.key.data(), at_.key.size());
    if (!reply.ok()) {
      connection_.reset();
      return reply.status();
    }
    if ((*reply)->type != REDIS_REPLY_STRING) return std::optional<std::string>();
    return std::optional<std::string>(std::string((*reply)->str, (*reply)->len));
  }

 private:
  RedisLocation at_;
  RedisConnection connection_;
};
#else
absl::Status NoRedisClient() {
  return absl::FailedPreconditionError(
      "this freshet was built without a Redis client (hiredis was not found when it was "
      "configured): use a file rendezvous, or rebuild with libhiredis-dev installed");
}

absl::Status PublishRedis(const RedisLocation&, absl::string_view) { return NoRedisClient(); }

class RedisReader {
 public:
  explicit RedisReader(RedisLocation) {}
  static absl::Status Supported() { return NoRedisClient(); }
  absl::StatusOr<std::optional<std::string>> Get() { return NoRedisClient(); }
};
#endif  // FRESHET_HAVE_HIREDIS

absl::Status PublishFile(const std::string& path, absl::string_view blob) {
  const std::string temp = absl::StrCat(path, ".tmp.", getpid());
  std::FILE* file = std::fopen(temp.c_str(), "wb");
  if (file == nullptr) return absl::UnavailableError(absl::StrCat("cannot create ", temp));
  const bool written = blob.empty() || std::fwrite(blob.data(), blob.size(), 1, file) == 1;
  const bool closed = std::fclose(file) == 0;
  if (!written || !closed || std::rename(temp.c_str(), path.c_str()) != 0) {
    std::remove(temp.c_str());
    return absl::UnavailableError(absl::StrCat("cannot write ", path));
  }
  return absl::OkStatus();
}

// The contents of `path`; NotFound while the file does not exist.
absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return absl::NotFoundError(absl::StrCat("no file at ", path));
  std::string out;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) out.append(buffer, n);
  std::fclose(file);
  return out;
}

absl::Status CheckSize(const std::string& location, const std::string& blob, size_t size) {
  if (blob.size() == size) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat("rendezvous ", location, " holds ", blob.size(),
                                          " bytes, expected ", size, " (a foreign value?)"));
}

}  // namespace

absl::Status PublishBlob(const std::string& location, absl::string_view blob) {
  if (location.empty()) return absl::InvalidArgumentError("no rendezvous location");
  if (!absl::StartsWith(location, kRedisScheme)) return PublishFile(location, blob);
  absl::StatusOr<RedisLocation> at = ParseRedis(location);
  if (!at.ok()) return at.status();
  return PublishRedis(*at, blob);
}

absl::StatusOr<std::string> WaitForBlob(const std::string& location, size_t size,
                                        absl::Duration timeout) {
  if (location.empty()) return absl::InvalidArgumentError("no rendezvous location");
  const absl::Time deadline = absl::Now() + timeout;
  const bool redis = absl::StartsWith(location, kRedisScheme);
  std::optional<RedisReader> reader;
  if (redis) {
    absl::StatusOr<RedisLocation> parsed = ParseRedis(location);
    if (!parsed.ok()) return parsed.status();
    if (absl::Status s = RedisReader::Supported(); !s.ok()) return s;
    reader.emplace(*std::move(parsed));
  }
  absl::Status last = absl::OkStatus();  // the latest error worth reporting
  while (true) {
    if (!redis) {
      absl::StatusOr<std::string> blob = ReadFile(location);
      if (blob.ok()) {
        // The publisher renames a complete file into place, so a short one is a foreign file.
        if (absl::Status s = CheckSize(location, *blob, size); !s.ok()) return s;
        return blob;
      }
    } else {
      absl::StatusOr<std::optional<std::string>> blob = reader->Get();
      if (!blob.ok()) {
        last = blob.status();
      } else if (blob->has_value()) {
        if (absl::Status s = CheckSize(location, **blob, size); !s.ok()) return s;
        return **std::move(blob);
      }
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("nothing at rendezvous ", location, " after ", absl::FormatDuration(timeout),
                       last.ok() ? "" : absl::StrCat(" (last error: ", last.message(), ")")));
    }
    absl::SleepFor(kPollPause);
  }
}

}  // namespace freshet::engine
