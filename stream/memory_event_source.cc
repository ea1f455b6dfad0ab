#include "stream/memory_event_source.h"

#include <algorithm>
#include <utility>

#include "common/check.h"

namespace freshet::stream {

MemoryEventSource::MemoryEventSource(std::vector<Event> events, std::string name)
    : events_(std::move(events)), name_(std::move(name)) {
  for (size_t i = 0; i < events_.size(); ++i) {
    if (events_[i].position.offset == -1) events_[i].position.offset = static_cast<int64_t>(i);
  }
}

absl::Status MemoryEventSource::Poll(size_t max_events, absl::Duration /*timeout*/,
                                     std::vector<Event>* out) {
  FRESHET_CHECK(out != nullptr);
  const size_t n = std::min(max_events, events_.size() - next_);
  out->insert(out->end(), events_.begin() + next_, events_.begin() + next_ + n);
  next_ += n;
  return absl::OkStatus();
}

SourceStats MemoryEventSource::stats() const {
  SourceStats stats;
  stats.records_read = size();
  stats.events = size();
  return stats;
}

}  // namespace freshet::stream
