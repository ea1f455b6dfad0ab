// Minimal leveled logging to stderr, and a rate limiter for messages that bad input could repeat
// millions of times (malformed events, bad requests).
//
// Thread-safe: Log() may be called from any thread; one call writes one whole line.
#ifndef FRESHET_COMMON_LOG_H_
#define FRESHET_COMMON_LOG_H_

#include <atomic>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace freshet {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Messages below this level are dropped. Default kInfo; FRESHET_LOG_LEVEL=debug|info|warning|error
// in the environment sets it at start-up.
void SetMinLogLevel(LogLevel level);
LogLevel MinLogLevel();

// Writes "<time> <level> <message>\n" to stderr.
void Log(LogLevel level, absl::string_view message);
inline void LogInfo(absl::string_view m) { Log(LogLevel::kInfo, m); }
inline void LogWarning(absl::string_view m) { Log(LogLevel::kWarning, m); }
inline void LogError(absl::string_view m) { Log(LogLevel::kError, m); }

// Allows at most `burst` messages per `period`; counts the ones it suppresses so the next allowed
// message can say how many were dropped. Thread-safe (lock-free).
class RateLimiter {
 public:
  RateLimiter(int burst, absl::Duration period) : burst_(burst), period_(period) {}

  // True when a message may be written now. When it returns true, *suppressed (if not null)
  // receives the number of messages dropped since the last allowed one.
  bool Allow(int64_t* suppressed = nullptr);

 private:
  const int burst_;
  const absl::Duration period_;
  std::atomic<int64_t> window_start_ns_{0};
  std::atomic<int> in_window_{0};
  std::atomic<int64_t> suppressed_{0};
};

}  // namespace freshet

#endif  // FRESHET_COMMON_LOG_H_
