// Checks of persisted row values that come from outside the process (RocksDB at load, the model
// topic and Redis on a serving replica): the row codecs validate a whole row from its bytes before
// they copy any of it, so a refused row leaves the model exactly as it was. Each check returns OK
// without allocating; only a refusal builds its message (DataLoss naming the row and the field).
#ifndef FRESHET_LEARNER_INTERNAL_ROW_CHECKS_H_
#define FRESHET_LEARNER_INTERNAL_ROW_CHECKS_H_

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace freshet::learner::internal {

// Names a row in errors: "<model> <kind> row <row>", e.g. "bpr item row 7"; "<model> <kind>"
// when row < 0 (a value not yet at a row).
struct RowName {
  const char* model;
  const char* kind;
  int32_t row;
};

inline absl::Status BadRow(const RowName& name, absl::string_view what) {
  if (name.row < 0)
    return absl::DataLossError(absl::StrCat(name.model, " ", name.kind, ": ", what));
  return absl::DataLossError(
      absl::StrCat(name.model, " ", name.kind, " row ", name.row, ": ", what));
}

// The i-th float of values stored packed (host order, unaligned) at `bytes`.
inline float FloatAt(const char* bytes, size_t i) {
  float v;
  std::memcpy(&v, bytes + i * sizeof(float), sizeof(float));
  return v;
}

// The largest magnitude a stored parameter (an embedding entry, a bias, a ranker weight) may have.
// Learning moves one by at most its learning rate per Adagrad step (ials: a regularised solve),
// so no model comes within orders of magnitude of it, while inner products of d <= 1024 such
// entries, and their squares in a step, stay finite. A larger finite value (1e30) would make
// scores infinite and every step that touches its row non-finite and skipped, so the row would
// never heal: it is refused as corruption, like a NaN.
inline constexpr float kMaxParameter = 1e8f;

// Refuses a NaN, an infinity or a magnitude above kMaxParameter.
inline absl::Status CheckParameter(const RowName& name, absl::string_view field, float v) {
  // Also false for a NaN.
  if (std::fabs(v) <= kMaxParameter) return absl::OkStatus();
  return BadRow(
      name, absl::StrCat(field, " is ", v, " (must be finite, |value| <= ", kMaxParameter, ")"));
}

// CheckParameter() on each of the `n` parameters packed at `bytes` (a vector named `field`).
inline absl::Status CheckParameters(const RowName& name, const char* field, const char* bytes,
                                    size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float v = FloatAt(bytes, i);
    if (!(std::fabs(v) <= kMaxParameter)) {
      return CheckParameter(name, absl::StrCat(field, "[", i, "]"), v);
    }
  }
  return absl::OkStatus();
}

// Refuses anything but a finite value >= 0 (Adagrad accumulators, counts and weighted sums of
// event weights, which are never negative).
inline absl::Status CheckNonNegative(const RowName& name, const char* field, float v) {
  if (std::isfinite(v) && v >= 0.0f) return absl::OkStatus();
  return BadRow(name, absl::StrCat(field, " is ", v, " (must be finite and >= 0)"));
}

// Lists of (item row, weight) pairs stored packed, an int32 and a float each (cooc's neighbours,
// blend's transitions).
inline constexpr size_t kItemWeightBytes = sizeof(int32_t) + sizeof(float);

// The i-th pair of such a list at `pairs`.
inline void ItemWeightAt(const char* pairs, uint64_t i, int32_t* item, float* weight) {
  const char* pair = pairs + i * kItemWeightBytes;
  std::memcpy(item, pair, sizeof(*item));
  *weight = FloatAt(pair + sizeof(int32_t), 0);
}

// Refuses a list of `n` pairs where an item is not a row in [0, items) or a weight is not finite
// and >= 0; `pair` names one in errors ("neighbour", "transition").
inline absl::Status CheckItemWeights(const RowName& name, const char* pair, const char* pairs,
                                     uint64_t n, int64_t items) {
  for (uint64_t i = 0; i < n; ++i) {
    int32_t item;
    float weight;
    ItemWeightAt(pairs, i, &item, &weight);
    if (item < 0 || item >= items) {
      return BadRow(name, absl::StrCat(pair, " ", i, " is to row ", item, " of ", items));
    }
    if (!std::isfinite(weight) || weight < 0.0f) {
      return BadRow(
          name, absl::StrCat(pair, " ", i, "'s weight is ", weight, " (must be finite and >= 0)"));
    }
  }
  return absl::OkStatus();
}

// Replaces the contents of `map` (item row -> weight) with a list CheckItemWeights() accepted.
template <typename Map>
void DecodeItemWeights(const char* pairs, uint64_t n, Map* map) {
  map->clear();
  map->reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    int32_t item;
    float weight;
    ItemWeightAt(pairs, i, &item, &weight);
    (*map)[item] = weight;
  }
}

}  // namespace freshet::learner::internal

#endif  // FRESHET_LEARNER_INTERNAL_ROW_CHECKS_H_
