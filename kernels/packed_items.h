// PackedItemMatrix: a copy of an item matrix that batched top-K calls score against — int8 rows for
// a two-stage scan where the processor has AVX-512 VNNI, else the transposed float layout of the
// batched kernels (kernels/internal/item_panels.h) — kept current between calls by re-packing only
// the groups of rows that changed.
//
// Backend::TopK transposes every block of the matrix on every call before scoring it (about 19
// cycles per item at dim 64 with AVX-512, as much as scoring six queries against it). A server
// that scores a batch of requests every fraction of a millisecond against a matrix that learning
// changes a few rows at a time pays that again and again for rows that did not change. With this
// copy, a call re-packs only the groups (kGroupRows rows each) whose version moved since the last
// call, and a single query is scored by the same register-blocked kernel as a batch instead of by
// in-register transposes.
//
// Results are bit-identical to CpuBackend::TopK over the same matrix: the same multiply-add chain
// per item in dimension order (kernels/topk.h), the same selection and tie rule.
//
// Two stages. Where the processor has AVX-512 VNNI, the copy also keeps every row in int8 with a
// per-row scale (kernels/internal/quantized_items.h), re-quantized with the same group versions.
// A query is then first scored against the int8 rows, which gives every item an interval that
// provably holds its exact float score; only the items whose interval reaches the k-th best lower
// bound can be in the top k, and just those are scored again by the exact multiply-add chain and
// selected as the exact kernels would. A query the int8 stage cannot bound (NaN or infinity in it,
// in the rows or in the bias, magnitudes beyond the bound's range) or that leaves more than
// kMaxCandidates candidates (many near-ties) is answered by the exact kernels instead; either way
// the answer is the same.
//
// The caller keeps a version per group of rows: any change of a row of group g (its vector; the
// bias is read from the matrix at each call) must change versions[g] before the next Update().
// learner::Learner::item_group_versions() is such a record.
//
// With two stages the float copy is not kept: the exact second stage reads the candidates' rows
// from the matrix itself, and a query the int8 stage cannot answer goes to the backend's own
// kernel (kernels/topk.h) over the matrix, as CpuBackend::TopK would.
//
// Memory: with two stages, ceil(dim / 4) * 4 bytes and a float per row and two floats per group
// of kGroupRows rows; without, a second copy of the vectors, rows rounded up to kGroupRows, dim
// floats each.
//
// Thread-safety: not thread-safe. One thread at a time calls Update() and TopK(), while the matrix
// Update() last saw (and its bias) stays unchanged.
#ifndef FRESHET_KERNELS_PACKED_ITEMS_H_
#define FRESHET_KERNELS_PACKED_ITEMS_H_

#include <cstdint>
#include <memory>
#include <new>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "kernels/backend.h"

namespace freshet::kernels {

class PackedItemMatrix {
 public:
  // Rows per versioned group: row r belongs to group r / kGroupRows.
  static constexpr int kGroupRows = 64;

  struct Options {
    // Score with the portable kernels even where AVX-512 runs (tests compare the two).
    bool portable = false;
    // Answer through the int8 stage where the processor runs it (see above). Off: the exact
    // kernels answer every query (the results are the same; benchmarks compare the two).
    bool two_stage = true;
  };

  // A query whose int8 stage leaves more candidates than this is answered by the exact kernels.
  static constexpr int64_t kMaxCandidates = 4096;
  PackedItemMatrix() : PackedItemMatrix(Options{}) {}
  explicit PackedItemMatrix(const Options& options);
  ~PackedItemMatrix();

  // Brings the copy up to date with `items`: packs every group it has not packed yet, and re-packs
  // every group whose version differs from the one it was packed at or that has rows it did not
  // have then (the matrix grew). Groups beyond the end of `versions` have version 0 (never
  // changed). A different dimension starts the copy over. InvalidArgument for a view TopK() would
  // refuse (dim < 1, stride < dim, rows out of range, no vectors).
  //
  // row_versions (optional): a version per row that every change of the row moves (rows beyond
  // its end: 0). With it, the two-stage copy re-quantizes only the rows of a moved group whose own
  // version moved; learning changes a few rows of each group it touches.
  absl::Status Update(const ItemMatrixView& items, absl::Span<const uint32_t> versions,
                      absl::Span<const uint32_t> row_versions = {});

  // Forgets the copy: the next Update() packs every row (for a matrix that was replaced).
  void Clear();

  // Backend::TopK over the matrix of the latest Update() (its vectors as packed, its bias as it
  // is now), with the same results and the same InvalidArgument checks.
  absl::Status TopK(absl::Span<const TopKQuery> queries, int k,
                    absl::Span<std::vector<ScoredItem>> results) const;

  int64_t rows() const { return rows_; }
  // Groups packed since construction (each Update() adds the ones it re-packed).
  int64_t groups_packed() const { return groups_packed_; }
  // Rows quantized for the int8 stage since construction.
  int64_t rows_quantized() const { return rows_quantized_; }
  // True when TopK() can use the int8 stage (Options::two_stage, not portable, and the processor
  // has AVX-512 VNNI).
  bool two_stage() const { return two_stage_; }
  // Queries TopK() answered through the int8 stage since construction (the others went to the
  // exact kernels).
  int64_t two_stage_queries() const { return two_stage_queries_; }

 private:
  struct FreeAligned {
    void operator()(float* p) const { ::operator delete[](p, std::align_val_t{64}); }
    void operator()(uint8_t* p) const { ::operator delete[](p, std::align_val_t{64}); }
  };

  // The exact kernels over the packed copy.
  void ExactTopK(absl::Span<const TopKQuery> queries, int k,
                 absl::Span<std::vector<ScoredItem>> results) const;
  // The two stages; queries they cannot answer go to ExactTopK().
  void TwoStageTopK(absl::Span<const TopKQuery> queries, int k,
                    absl::Span<std::vector<ScoredItem>> results) const;
  // Re-quantizes group g (n rows): every row when `whole`, else the rows whose version moved.
  void QuantizeGroup(const ItemMatrixView& items, int64_t g, int32_t n, bool whole,
                     absl::Span<const uint32_t> row_versions);
  // The two stages apply to the current copy (dim in range, no wild rows, indices fit int32).
  bool TwoStageUsable() const;

  const bool portable_;
  const bool two_stage_;
  // Without two stages: capacity_rows_ x dim_, item-block layout.
  std::unique_ptr<float[], FreeAligned> data_;
  // With two stages: the int8 rows (capacity_rows_ / kGroupRows groups, quantized_items.h layout)
  // and each row's scale; by group, the rows' error and norm bounds, how many of its rows the int8
  // stage cannot bound, and their total.
  std::unique_ptr<uint8_t[], FreeAligned> quantized_;
  std::vector<float> row_scale_;
  // By row: its own bounds, whether it is wild, and the version it was quantized at.
  std::vector<float> row_error_;
  std::vector<float> row_norm_;
  std::vector<uint8_t> row_wild_;
  std::vector<uint32_t> row_versions_;
  int64_t rows_quantized_ = 0;
  std::vector<float> group_error_;
  std::vector<float> group_norm_;
  std::vector<int32_t> group_wild_;
  int64_t wild_rows_ = 0;
  int64_t capacity_rows_ = 0;
  int64_t rows_ = 0;
  int dim_ = 0;
  const float* bias_ = nullptr;  // the bias of the latest Update()'s view
  // Its vectors: what the exact second stage (and, with two stages, the exact fallback) reads.
  const float* vectors_ = nullptr;
  int64_t stride_ = 0;
  std::vector<uint32_t> versions_;  // by group: the version packed
  std::vector<int32_t>
      group_rows_;  // by group: rows packed (kGroupRows, fewer in the last; 0: none)
  int64_t groups_packed_ = 0;
  mutable int64_t two_stage_queries_ = 0;
  // TwoStageTopK()'s buffers, kept between calls.
  struct TwoStageScratch;
  mutable std::unique_ptr<TwoStageScratch> scratch_;
};

}  // namespace freshet::kernels

#endif  // FRESHET_KERNELS_PACKED_ITEMS_H_
