// Compute backends: exact top-K scoring over an item matrix. The CPU backend is the reference; a
// CUDA backend implements the same interface and must pass the same parity tests.
#ifndef FRESHET_KERNELS_BACKEND_H_
#define FRESHET_KERNELS_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace freshet::kernels {

// A read-only view of `rows` item vectors of `dim` floats, row i at `vectors + i * stride`
// (stride >= dim, in floats), plus an optional additive per-item term (`bias`, `rows` floats,
// may be null). Score(q, i) = dot(q, vectors[i]) + bias[i].
struct ItemMatrixView {
  const float* vectors = nullptr;
  const float* bias = nullptr;
  int64_t rows = 0;
  int dim = 0;
  int64_t stride = 0;
};

// One scored item: its dense row and its score.
struct ScoredItem {
  int32_t item = -1;
  float score = 0.0f;
  friend bool operator==(const ScoredItem& a, const ScoredItem& b) {
    return a.item == b.item && a.score == b.score;
  }
};

// One top-K query: `dim` floats, and the item rows that must not be returned (exclude-seen,
// hidden items), sorted ascending, duplicates allowed.
struct TopKQuery {
  const float* vector = nullptr;
  absl::Span<const int32_t> exclude;
};

// The ranking order used everywhere in freshet: higher score first; equal scores by lower item
// row first (older items, deterministic). NaN scores are never returned.
inline bool RanksBefore(const ScoredItem& a, const ScoredItem& b) {
  return a.score > b.score || (a.score == b.score && a.item < b.item);
}

// Thread-safety: a Backend may be used from several threads at once.
class Backend {
 public:
  virtual ~Backend() = default;

  // "cpu", "cuda".
  virtual std::string Name() const = 0;

  // For every query, writes into (*results)[q] (cleared first) the min(k, available) best items by
  // RanksBefore order, best first. `results` must have queries.size() entries.
  // InvalidArgument on k < 1, a dim mismatch or a null vector pointer.
  virtual absl::Status TopK(const ItemMatrixView& items, absl::Span<const TopKQuery> queries, int k,
                            absl::Span<std::vector<ScoredItem>> results) const = 0;

  // Top-K over precomputed dense scores (`scores[i]` for item row i, `n` rows), for models that
  // do not score by inner product. Same ordering, exclusion and result contract as TopK.
  virtual absl::Status TopKFromScores(const float* scores, int64_t n,
                                      absl::Span<const int32_t> exclude, int k,
                                      std::vector<ScoredItem>* result) const = 0;
};

// Creates a backend by name: "cpu"; "cuda" (Unavailable when CUDA was not compiled in or no device
// is present, with a message saying which); "auto" (cuda when usable, else cpu). InvalidArgument
// for any other name. `*note`, if not null, receives a one-line explanation of the choice (e.g.
// why auto fell back to the CPU).
absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(absl::string_view name,
                                                       std::string* note = nullptr);

}  // namespace freshet::kernels

#endif  // FRESHET_KERNELS_BACKEND_H_
