#include "learner/user_history.h"

#include <algorithm>

#include "common/byte_codec.h"
#include "stream/event_validation.h"

namespace freshet::learner {

void UserHistory::Add(int32_t item, int recent_cap, int seen_cap) {
  recent_.push_back(item);
  if (recent_.size() >= 2 * static_cast<size_t>(recent_cap)) {
    recent_.erase(recent_.begin(), recent_.end() - recent_cap);
  }
  pending_.push_back(item);
  if (pending_.size() >= kPendingMax) MergePending(seen_cap);
}

void UserHistory::MergePending(int seen_cap) {
  if (pending_.empty()) return;
  // The distinct pending items not yet in sorted_, found with one sort and one merge-like pass.
  thread_local std::vector<int32_t> fresh;
  fresh.assign(pending_.begin(), pending_.end());
  std::sort(fresh.begin(), fresh.end());
  fresh.erase(std::unique(fresh.begin(), fresh.end()), fresh.end());
  size_t out = 0;
  auto it = sorted_.begin();
  for (int32_t item : fresh) {
    it = std::lower_bound(it, sorted_.end(), item);
    if (it == sorted_.end() || *it != item) fresh[out++] = item;
  }
  fresh.resize(out);
  if (!fresh.empty()) {
    // Eviction order is first interaction: append the fresh items in arrival order, once each
    // (a bit per fresh item; there are at most kPendingMax of them).
    uint64_t appended = 0;
    for (int32_t item : pending_) {
      const auto pos = std::lower_bound(fresh.begin(), fresh.end(), item);
      if (pos == fresh.end() || *pos != item) continue;
      const uint64_t bit = uint64_t{1} << (pos - fresh.begin());
      if ((appended & bit) == 0) {
        appended |= bit;
        order_.push_back(item);
      }
    }
    // Merge in place from the back: only the elements above the smallest fresh item move.
    size_t a = sorted_.size(), b = fresh.size();
    sorted_.resize(a + b);
    for (size_t w = a + b; b > 0;) {
      if (a > 0 && sorted_[a - 1] > fresh[b - 1]) {
        sorted_[--w] = sorted_[--a];
      } else {
        sorted_[--w] = fresh[--b];
      }
    }
  }
  pending_.clear();
  if (sorted_.size() > static_cast<size_t>(seen_cap)) {
    Evict(static_cast<size_t>(seen_cap - seen_cap / 16));
  }
}

size_t UserHistory::seen_count() const {
  size_t n = sorted_.size();
  for (size_t i = 0; i < pending_.size(); ++i) {
    const int32_t item = pending_[i];
    if (!std::binary_search(sorted_.begin(), sorted_.end(), item) &&
        std::find(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(i), item) ==
            pending_.begin() + static_cast<std::ptrdiff_t>(i)) {
      ++n;
    }
  }
  return n;
}

void UserHistory::Evict(size_t keep) {
  const size_t drop = sorted_.size() - keep;
  std::vector<int32_t> gone(order_.begin() + static_cast<std::ptrdiff_t>(order_begin_),
                            order_.begin() + static_cast<std::ptrdiff_t>(order_begin_ + drop));
  order_begin_ += drop;
  if (order_begin_ * 2 > order_.size()) {
    order_.erase(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(order_begin_));
    order_begin_ = 0;
  }
  std::sort(gone.begin(), gone.end());
  size_t out = 0, g = 0;
  for (int32_t item : sorted_) {
    while (g < gone.size() && gone[g] < item) ++g;
    if (g < gone.size() && gone[g] == item) continue;
    sorted_[out++] = item;
  }
  sorted_.resize(out);
}

absl::Span<const int32_t> UserHistory::Seen(std::vector<int32_t>* scratch) const {
  if (pending_.empty()) return sorted_;
  scratch->assign(pending_.begin(), pending_.end());
  std::sort(scratch->begin(), scratch->end());
  scratch->erase(std::unique(scratch->begin(), scratch->end()), scratch->end());
  const size_t mid = scratch->size();
  scratch->insert(scratch->end(), sorted_.begin(), sorted_.end());
  std::inplace_merge(scratch->begin(), scratch->begin() + static_cast<std::ptrdiff_t>(mid),
                     scratch->end());
  scratch->erase(std::unique(scratch->begin(), scratch->end()), scratch->end());
  return *scratch;
}

void UserHistory::Encode(int recent_cap, std::string* out) const {
  ByteWriter w(out);
  w.Put(events_);
  w.Put(last_ts_ms_);
  w.PutArray(Recent(recent_cap));
  // Distinct items by first interaction: the merged ones, then pending ones not seen before.
  std::vector<int32_t> order(order_.begin() + static_cast<std::ptrdiff_t>(order_begin_),
                             order_.end());
  for (size_t i = 0; i < pending_.size(); ++i) {
    const int32_t item = pending_[i];
    if (std::binary_search(sorted_.begin(), sorted_.end(), item)) continue;
    if (std::find(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(i), item) !=
        pending_.begin() + static_cast<std::ptrdiff_t>(i)) {
      continue;
    }
    order.push_back(item);
  }
  w.PutArray(absl::MakeConstSpan(order));
}

bool UserHistory::Decode(absl::string_view in, int32_t items, bool drop_unknown) {
  // Read whole and checked before anything is written: a refused value changes nothing.
  ByteReader r(in);
  std::vector<int32_t> recent, order;
  constexpr uint64_t kMaxItems = uint64_t{1} << 24;
  int64_t events = 0, last_ts_ms = 0;
  r.Get(&events);
  r.Get(&last_ts_ms);
  r.GetArray<int32_t>(&recent, kMaxItems);
  r.GetArray<int32_t>(&order, kMaxItems);
  if (!r.done() || events < 0 || last_ts_ms < 0 || last_ts_ms >= stream::kMaxEventTsMs) {
    return false;
  }
  for (std::vector<int32_t>* v : {&recent, &order}) {
    for (int32_t item : *v) {
      if (item < 0 || (item >= items && !drop_unknown)) return false;
    }
    if (drop_unknown) {
      v->erase(
          std::remove_if(v->begin(), v->end(), [items](int32_t item) { return item >= items; }),
          v->end());
    }
  }
  std::vector<int32_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) return false;
  events_ = events;
  last_ts_ms_ = last_ts_ms;
  recent_ = std::move(recent);
  pending_.clear();
  sorted_ = std::move(sorted);
  order_ = std::move(order);
  order_begin_ = 0;
  return true;
}

}  // namespace freshet::learner
