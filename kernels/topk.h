// CPU reference kernels for exact top-K retrieval. CpuBackend calls these; any other backend (the
// CUDA one) is tested against them.
//
// Score contract. The score of item row i for query q is
//
//   s = 0.0f;  for c in 0 .. dim-1:  s = MulAdd(items[i][c], q[c], s);   then  s += bias[i]
//
// i.e. one multiply-add chain per item in dimension order (MulAdd is a fused multiply-add when the
// build target has FMA, see ReferenceScore), plus the bias in one rounded add when bias is not
// null. Every path here (single query, batched, portable, AVX-512) computes exactly that sequence,
// so a query's result is bit-identical whatever batch it arrives in and whichever path ran it.
// Ranking is RanksBefore (backend.h): higher score first, ties to the lower row; NaN scores are
// never returned. A backend that sums in another order (a GEMM library, the GPU) cannot match
// these bits and must be compared with a tolerance, treating near-ties as interchangeable.
//
// Cost. Selection is bounded (a heap of min(k, rows) per query, entered only by scores above the
// current k-th best), so the work is one pass of multiply-adds over the matrix plus O(candidates *
// log k), never a sort of all scores. Batched calls pack each block of items once and score it
// against every query, so the matrix is read from memory once per call, not once per query.
//
// Threads. The functions use no threads of their own (callers parallelise across queries or
// requests) and share no state: concurrent calls are safe as long as each call has its own
// results. Scratch memory is allocated per call.
//
// Preconditions are the caller's job (CpuBackend checks them and returns InvalidArgument); the
// functions FRESHET_CHECK the cheap ones.
#ifndef FRESHET_KERNELS_TOPK_H_
#define FRESHET_KERNELS_TOPK_H_

#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "kernels/backend.h"

namespace freshet::kernels {

// One multiply-add step of the score contract: fused (a single rounding) when the target has FMA
// (FP_FAST_FMAF, i.e. -mfma / -march=native on any current x86 or ARM), otherwise a rounded
// multiply then a rounded add.
inline float MulAdd(float a, float b, float c) {
#ifdef FP_FAST_FMAF
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

// The score of `row` for `query` by the contract above, computed one scalar step at a time.
// Slow; for tests and for checking other backends. Requires 0 <= row < items.rows.
float ReferenceScore(const ItemMatrixView& items, const float* query, int64_t row);

// Writes into *result (cleared first) the min(k, available) best item rows for `query`, best
// first. `exclude`: rows never returned, sorted ascending, duplicates allowed, rows outside
// [0, items.rows) ignored. Requires k >= 1, items.dim >= 1, items.stride >= items.dim,
// 0 <= items.rows <= 2^31 - 1 (rows are int32 item ids), items.vectors not null when rows > 0,
// query not null.
void TopKInnerProduct(const ItemMatrixView& items, const float* query,
                      absl::Span<const int32_t> exclude, int k, std::vector<ScoredItem>* result);

// TopKInnerProduct for every query at once: (*results)[q] receives query q's answer, exactly as
// if it had been asked alone. Requires results.size() == queries.size(); see TopKInnerProduct for
// the rest. From 2 queries on this beats one call per query: the item matrix is read once per
// call, packed once per block, and scored by a register-blocked kernel (4 x 16 items x 6 queries
// per step) that keeps both FMA units busy.
void TopKInnerProductBatch(const ItemMatrixView& items, absl::Span<const TopKQuery> queries, int k,
                           absl::Span<std::vector<ScoredItem>> results);

// Top-K over precomputed dense scores: scores[i] is row i's score, for i in [0, n). Same
// ordering, NaN and exclusion rules as TopKInnerProduct. Requires k >= 1, 0 <= n <= 2^31 - 1,
// scores not null when n > 0.
void SelectTopK(const float* scores, int64_t n, absl::Span<const int32_t> exclude, int k,
                std::vector<ScoredItem>* result);

}  // namespace freshet::kernels

#endif  // FRESHET_KERNELS_TOPK_H_
