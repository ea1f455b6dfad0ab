// Walker/Vose alias table: O(n) construction, O(1) sampling from a fixed discrete distribution.
// Private to stream/synthetic/.
//
// Thread-safety: immutable after Build(); Sample() is const and may be called concurrently, each
// caller with its own Rng.
#ifndef FRESHET_STREAM_SYNTHETIC_INTERNAL_ALIAS_TABLE_H_
#define FRESHET_STREAM_SYNTHETIC_INTERNAL_ALIAS_TABLE_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "common/random.h"

namespace freshet::stream::synthetic_internal {

class AliasTable {
 public:
  AliasTable() = default;

  // Builds the table for P(i) = weights[i] / sum(weights). Requires a non-empty `weights` with
  // finite, non-negative entries and a positive sum (callers validate their options first).
  void Build(absl::Span<const double> weights) {
    const size_t n = weights.size();
    slots_.resize(n);
    double sum = 0;
    for (double w : weights) sum += w;
    // Scaled probabilities: mean 1. Vose's two work lists split the slots into under- and
    // over-full ones; each under-full slot is topped up from one over-full slot.
    std::vector<double> scaled(n);
    std::vector<uint32_t> small;
    std::vector<uint32_t> large;
    small.reserve(n);
    large.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      scaled[i] = weights[i] * static_cast<double>(n) / sum;
      slots_[i] = {0, static_cast<uint32_t>(i)};  // full until proven otherwise
      (scaled[i] < 1.0 ? small : large).push_back(static_cast<uint32_t>(i));
    }
    while (!small.empty() && !large.empty()) {
      const uint32_t s = small.back();
      small.pop_back();
      const uint32_t l = large.back();
      slots_[s] = {ToThreshold(scaled[s]), l};
      scaled[l] -= 1.0 - scaled[s];
      if (scaled[l] < 1.0) {
        large.pop_back();
        small.push_back(l);
      }
    }
    // Slots left in either list are full up to rounding error and keep alias == self.
  }

  size_t size() const { return slots_.size(); }

  // One 64-bit draw per sample: the high 32 bits pick the slot, the low 32 bits decide between
  // the slot and its alias, so sampling costs one generator step, no division and one cache line.
  uint32_t Sample(Rng& rng) const {
    const uint64_t x = rng.Next();
    const Slot& slot = slots_[((x >> 32) * static_cast<uint64_t>(slots_.size())) >> 32];
    return static_cast<uint32_t>(x) < slot.threshold ? static_cast<uint32_t>(&slot - slots_.data())
                                                     : slot.alias;
  }

 private:
  // Slot i returns i when the low 32 bits of the draw are below `threshold` (out of 2^32), else
  // `alias`. A full slot has alias == i, so the threshold does not matter.
  struct Slot {
    uint32_t threshold;
    uint32_t alias;
  };

  static uint32_t ToThreshold(double p) {
    if (p <= 0) return 0;
    const double t = p * 4294967296.0;
    return t >= 4294967295.0 ? 4294967295u : static_cast<uint32_t>(t);
  }

  std::vector<Slot> slots_;
};

}  // namespace freshet::stream::synthetic_internal

#endif  // FRESHET_STREAM_SYNTHETIC_INTERNAL_ALIAS_TABLE_H_
