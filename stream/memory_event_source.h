// MemoryEventSource: replays a vector of events held in memory, for tests and for programmatic
// replay (the memenv of EventSource).
#ifndef FRESHET_STREAM_MEMORY_EVENT_SOURCE_H_
#define FRESHET_STREAM_MEMORY_EVENT_SOURCE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "stream/event.h"
#include "stream/event_source.h"

namespace freshet::stream {

// Delivers the events in vector order, as given (no sorting, no weight resolution). An event
// whose position.offset is -1 gets its index in the vector as offset; other positions are kept.
// Finished() once every event has been polled.
//
// Not thread-safe: one consumer thread polls a source (EventSource).
class MemoryEventSource final : public EventSource {
 public:
  // `name` appears in Name() as "memory:<name>".
  explicit MemoryEventSource(std::vector<Event> events, std::string name = "events");

  // Appends up to `max_events` copies of the next events. Never waits and never fails.
  absl::Status Poll(size_t max_events, absl::Duration timeout, std::vector<Event>* out) override;
  bool Finished() const override { return next_ >= events_.size(); }
  std::string Name() const override { return "memory:" + name_; }
  // records_read and events: the number of events held; malformed: 0.
  SourceStats stats() const override;

  int64_t size() const { return static_cast<int64_t>(events_.size()); }
  // Starts the replay again from the first event.
  void Rewind() { next_ = 0; }
  // Continues after event index applied(0, 0) (the offsets of Poll()'s events are their indices
  // unless the caller set them).
  absl::Status SeekToApplied(const AppliedFn& applied) override {
    const int64_t offset = applied(0, 0);
    if (offset < -1 || offset >= size()) return absl::OutOfRangeError("position beyond the events");
    next_ = static_cast<size_t>(offset + 1);
    return absl::OkStatus();
  }

 private:
  std::vector<Event> events_;
  std::string name_;
  size_t next_ = 0;
};

}  // namespace freshet::stream

#endif  // FRESHET_STREAM_MEMORY_EVENT_SOURCE_H_
