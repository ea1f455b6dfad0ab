#include "engine/exactly_once_filter.h"

namespace freshet::engine {

ExactlyOnceFilter::ExactlyOnceFilter(size_t id_capacity) {
  MutexLock lock(&mu_);
  applied_.set_id_capacity(id_capacity);
}

int64_t ExactlyOnceFilter::AdmitPolled(std::vector<stream::Event>* events) {
  const size_t polled = events->size();
  int64_t repeated_ids = 0;
  size_t kept = 0;
  {
    MutexLock lock(&mu_);
    for (stream::Event& e : *events) {
      if (!applied_.Accept(e.position)) continue;
      // The message is consumed (its position recorded) even when its id is a repeat.
      if (!e.id.empty() && !applied_.AcceptId(e.id)) {
        ++repeated_ids;
        continue;
      }
      if (&(*events)[kept] != &e) (*events)[kept] = std::move(e);
      ++kept;
    }
    ids_held_.store(static_cast<int64_t>(applied_.ids()), std::memory_order_relaxed);
  }
  events->resize(kept);
  duplicates_.fetch_add(static_cast<int64_t>(polled - kept) - repeated_ids,
                        std::memory_order_relaxed);
  duplicate_ids_.fetch_add(repeated_ids, std::memory_order_relaxed);
  return repeated_ids;
}

bool ExactlyOnceFilter::AdmitId(const stream::Event& event) {
  if (event.id.empty()) return true;
  bool fresh = false;
  {
    MutexLock lock(&mu_);
    fresh = applied_.AcceptId(event.id);
    ids_held_.store(static_cast<int64_t>(applied_.ids()), std::memory_order_relaxed);
  }
  if (!fresh) duplicate_ids_.fetch_add(1, std::memory_order_relaxed);
  return fresh;
}

int64_t ExactlyOnceFilter::Applied(int32_t stream, int32_t partition) const {
  MutexLock lock(&mu_);
  return applied_.Get(stream, partition);
}

std::vector<stream::SourcePosition> ExactlyOnceFilter::All() const {
  MutexLock lock(&mu_);
  return applied_.All();
}

}  // namespace freshet::engine
