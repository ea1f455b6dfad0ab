// Sessions: which of a user's latest events belong to the same session as a new one. An event more
// than a gap (event time) after the user's previous event starts a new session. Models that learn
// from pairs of nearby events (cooc, the blend's transitions) pair an event only with the earlier
// events of its session, so events hours apart do not count like events seconds apart.
#ifndef FRESHET_LEARNER_SESSIONS_H_
#define FRESHET_LEARNER_SESSIONS_H_

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/byte_codec.h"
#include "stream/event_validation.h"

namespace freshet::learner {

// Not thread-safe.
class Sessions {
 public:
  // gap_s <= 0: one endless session per user.
  explicit Sessions(double gap_s) : gap_ms_(static_cast<int64_t>(gap_s * 1000.0)) {}

  void Grow(int32_t users) {
    if (gap_ms_ <= 0) return;
    last_ts_.resize(static_cast<size_t>(users), 0);
    length_.resize(static_cast<size_t>(users), 0);
  }

  // How many of the user's latest events are in the same session as an event at `ts_ms` (every
  // one without sessions).
  int Items(int32_t user, int64_t ts_ms) const {
    if (gap_ms_ <= 0) return std::numeric_limits<int>::max();
    return ts_ms - last_ts_[user] > gap_ms_ ? 0 : length_[user];
  }

  // Whether an event at `ts_ms` starts a new session of the user (never without sessions).
  bool Starts(int32_t user, int64_t ts_ms) const {
    return gap_ms_ > 0 && user >= 0 && static_cast<size_t>(user) < last_ts_.size() &&
           ts_ms - last_ts_[user] > gap_ms_;
  }
  // The time of the user's latest event (0 without sessions).
  int64_t LastTime(int32_t user) const { return gap_ms_ > 0 ? last_ts_[user] : 0; }

  // Counts the user's event at `ts_ms` (after Items() for it).
  void Count(int32_t user, int64_t ts_ms) {
    if (gap_ms_ <= 0) return;
    length_[user] = std::min(Items(user, ts_ms), kMaxLength) + 1;
    last_ts_[user] = ts_ms;
  }

  // A user's persisted session: the latest event time and the events of its session (nothing
  // without sessions).
  void Encode(int32_t user, std::string* out) const {
    if (gap_ms_ <= 0) return;
    ByteWriter w(out);
    w.Put(last_ts_[user]);
    w.Put(length_[user]);
  }
  // An empty value (stored without sessions) starts a new session with the user's next event.
  // DataLoss, the user's session unchanged, for a value Encode() cannot write.
  absl::Status Decode(int32_t user, absl::string_view in) {
    int64_t ts = 0;
    int32_t length = 0;
    const absl::Status status = Parse(user, in, &ts, &length);
    if (status.ok() && gap_ms_ > 0) {
      last_ts_[user] = ts;
      length_[user] = length;
    }
    return status;
  }
  // What Decode() would answer, without writing anything.
  absl::Status Check(int32_t user, absl::string_view in) const {
    int64_t ts = 0;
    int32_t length = 0;
    return Parse(user, in, &ts, &length);
  }
  void Reset(int32_t user) {
    if (gap_ms_ <= 0) return;
    last_ts_[user] = 0;
    length_[user] = 0;
  }
  int64_t BytesPerUser() const {
    return gap_ms_ <= 0 ? 0 : static_cast<int64_t>(sizeof(int64_t) + sizeof(int32_t));
  }

 private:
  // A persisted session: the latest event time (an event's, [0, stream::kMaxEventTsMs), or 0) and
  // the events of the session (at most kMaxLength + 1, Count()'s cap).
  absl::Status Parse(int32_t user, absl::string_view in, int64_t* ts, int32_t* length) const {
    if (gap_ms_ <= 0 || in.empty()) return absl::OkStatus();
    ByteReader r(in);
    if (!r.Get(ts) || !r.Get(length) || !r.done()) {
      return absl::DataLossError(
          absl::StrCat("user row ", user, ": malformed session (", in.size(), " bytes)"));
    }
    if (*ts < 0 || *ts >= stream::kMaxEventTsMs) {
      return absl::DataLossError(
          absl::StrCat("user row ", user, ": session time ", *ts, " is not an event's time"));
    }
    if (*length < 0 || *length > kMaxLength + 1) {
      return absl::DataLossError(
          absl::StrCat("user row ", user, ": session length ", *length, " is out of range"));
    }
    return absl::OkStatus();
  }

  static constexpr int kMaxLength = 1 << 30;
  const int64_t gap_ms_;
  std::vector<int64_t> last_ts_;  // per user: time of the latest event
  std::vector<int32_t> length_;   // per user: events in the current session
};

}  // namespace freshet::learner

#endif  // FRESHET_LEARNER_SESSIONS_H_
