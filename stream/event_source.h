// EventSource: the seam between where events come from (files, Kafka, memory) and the learner.
#ifndef FRESHET_STREAM_EVENT_SOURCE_H_
#define FRESHET_STREAM_EVENT_SOURCE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "stream/event.h"

namespace freshet::stream {

// Counters every source keeps. `malformed` counts input records that were skipped because they
// could not be decoded; they never stop a source.
struct SourceStats {
  int64_t records_read = 0;  // lines or messages looked at
  int64_t events = 0;        // events decoded successfully
  int64_t malformed = 0;     // records skipped as malformed
};

// A stream of events. Implementations: FileEventSource (replay of a log file), MemoryEventSource
// (tests), and adapters to brokers in their own targets.
//
// Not thread-safe: one consumer thread polls a source.
class EventSource {
 public:
  virtual ~EventSource() = default;

  // Appends up to `max_events` events to `*out` (which is not cleared), in source order, waiting
  // up to `timeout` for the first one. Appending nothing is not an error (nothing arrived in time,
  // or the source is finished). Returns a non-OK status only when the source itself failed
  // (e.g. Unavailable for a broker outage, DataLoss for an unreadable compressed block); malformed
  // records are counted in stats() and skipped instead.
  virtual absl::Status Poll(size_t max_events, absl::Duration timeout, std::vector<Event>* out) = 0;

  // True once a finite source (a file) has delivered its last event. Unbounded sources (Kafka)
  // always return false.
  virtual bool Finished() const = 0;

  // Human-readable identity for logs and reports ("file:/data/u.data").
  virtual std::string Name() const = 0;

  virtual SourceStats stats() const = 0;

  // The last applied offset of one of the source's streams and partitions (its own stream
  // numbering), -1 for none.
  using AppliedFn = std::function<int64_t(int32_t stream, int32_t partition)>;

  // Repositions the source so the next events are those after `applied(stream, partition)` for
  // each of its streams and partitions: a snapshot restore rewinds the sources to the snapshot's
  // positions. Unimplemented by default.
  virtual absl::Status SeekToApplied(const AppliedFn& /*applied*/) {
    return absl::UnimplementedError(Name() + " cannot be repositioned");
  }

  // Called once by the engine when the source is added, before the first Poll(), with the stored
  // positions: the source resumes after them by itself, and keeps `applied` for partitions it is
  // given later (a broker's rebalance), which the engine keeps current. By default
  // SeekToApplied(applied), except that a source that cannot seek is fine with nothing stored.
  virtual absl::Status Resume(AppliedFn applied) {
    const absl::Status seek = SeekToApplied(applied);
    if (absl::IsUnimplemented(seek) && applied(0, 0) < 0) return absl::OkStatus();
    return seek;
  }

  // Tells the source that the state including `durable` (last applied offsets, its own stream
  // numbering) is stored. It may acknowledge them upstream (Kafka group offsets, for lag
  // monitoring) but must not block: the engine calls it on its learning thread. Failures are the
  // source's to count and log; they change nothing else. Nothing by default.
  virtual void Commit(absl::Span<const SourcePosition> /*durable*/) {}
};

}  // namespace freshet::stream

#endif  // FRESHET_STREAM_EVENT_SOURCE_H_
