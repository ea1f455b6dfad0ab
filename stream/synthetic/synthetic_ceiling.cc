#include "stream/synthetic/synthetic_ceiling.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace freshet::stream {

absl::StatusOr<SyntheticCeiling> MeasureSyntheticCeiling(const SyntheticStreamOptions& options,
                                                         int k, int early_events) {
  if (k < 1) return absl::InvalidArgumentError(absl::StrCat("ceiling: k must be >= 1, got ", k));
  FRESHET_ASSIGN_OR_RETURN(SyntheticStream stream, SyntheticStream::Create(options));
  const int32_t items = options.items;
  std::vector<double> p(static_cast<size_t>(items));
  std::vector<char> in_catalog(static_cast<size_t>(items), 0);
  std::vector<int32_t> previous(static_cast<size_t>(options.users), -1);
  std::vector<std::vector<int32_t>> had(static_cast<size_t>(options.users));  // distinct items
  std::vector<int64_t> made(static_cast<size_t>(options.users), 0);           // events
  std::vector<int32_t> catalog;  // items in the catalog, in order of arrival
  // The best K so far as (probability, item), best first; ties go to the lower item id, so the
  // ranking does not depend on arrival order.
  std::vector<std::pair<double, int32_t>> top;
  top.reserve(static_cast<size_t>(k) + 1);
  const auto better = [](const std::pair<double, int32_t>& a, const std::pair<double, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };

  SyntheticCeiling result;
  result.k = k;
  result.events = options.events;
  result.early_events = early_events;
  double hits = 0, gain = 0, early_hits = 0, later_hits = 0;
  SyntheticEventIds event;
  for (int64_t n = 0; n < options.events; ++n) {
    stream.NextIds(&event);
    std::vector<int32_t>& mine = had[event.user];
    const bool had_it = std::find(mine.begin(), mine.end(), event.item) != mine.end();
    if (in_catalog[event.item] && !had_it) {
      stream.NextItemDistribution(event.user, previous[event.user], absl::MakeSpan(p));
      for (int32_t item : mine) p[item] = -1;  // not a candidate
      top.clear();
      for (int32_t item : catalog) {
        if (p[item] < 0) continue;
        const std::pair<double, int32_t> cand{p[item], item};
        if (static_cast<int>(top.size()) == k && !better(cand, top.back())) continue;
        top.insert(std::upper_bound(top.begin(), top.end(), cand, better), cand);
        if (static_cast<int>(top.size()) > k) top.pop_back();
      }
      ++result.evaluated;
      const bool early = made[event.user] < early_events;
      ++(early ? result.early_evaluated : result.later_evaluated);
      for (size_t r = 0; r < top.size(); ++r) {
        if (top[r].second != event.item) continue;
        hits += 1;
        gain += 1.0 / std::log2(static_cast<double>(r) + 2.0);
        (early ? early_hits : later_hits) += 1;
        break;
      }
    }
    if (!in_catalog[event.item]) {
      in_catalog[event.item] = 1;
      catalog.push_back(event.item);
    }
    if (!had_it) mine.push_back(event.item);
    previous[event.user] = event.item;
    ++made[event.user];
  }
  const auto ratio = [](double a, int64_t b) { return b > 0 ? a / static_cast<double>(b) : 0.0; };
  result.recall = ratio(hits, result.evaluated);
  result.ndcg = ratio(gain, result.evaluated);
  result.early_recall = ratio(early_hits, result.early_evaluated);
  result.later_recall = ratio(later_hits, result.later_evaluated);
  return result;
}

}  // namespace freshet::stream
