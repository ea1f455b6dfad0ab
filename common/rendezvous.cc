#include "common/rendezvous.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <memory>
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

namespace freshet {
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
  absl::StatusOr<RedisConnection> c = Connect(*at);
  if (!c.ok()) return c.status();
  absl::StatusOr<RedisReplyPtr> reply =
      Command(c->get(), *at, "SET %b %b EX %d", at->key.data(), at->key.size(), blob.data(),
              blob.size(), kRedisExpirySeconds);
  return reply.status();
}

absl::StatusOr<std::string> WaitForBlob(const std::string& location, size_t size,
                                        absl::Duration timeout) {
  if (location.empty()) return absl::InvalidArgumentError("no rendezvous location");
  const absl::Time deadline = absl::Now() + timeout;
  const bool redis = absl::StartsWith(location, kRedisScheme);
  RedisLocation at;
  if (redis) {
    absl::StatusOr<RedisLocation> parsed = ParseRedis(location);
    if (!parsed.ok()) return parsed.status();
    at = *std::move(parsed);
  }
  RedisConnection connection;
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
      if (connection == nullptr) {
        absl::StatusOr<RedisConnection> c = Connect(at);
        if (c.ok()) {
          connection = *std::move(c);
        } else {
          last = c.status();
        }
      }
      if (connection != nullptr) {
        absl::StatusOr<RedisReplyPtr> reply =
            Command(connection.get(), at, "GET %b", at.key.data(), at.key.size());
        if (!reply.ok()) {
          last = reply.status();
          connection.reset();  // reconnect on the next round
        } else if ((*reply)->type == REDIS_REPLY_STRING) {
          std::string blob((*reply)->str, (*reply)->len);
          if (absl::Status s = CheckSize(location, blob, size); !s.ok()) return s;
          return blob;
        }
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

}  // namespace freshet
