#include "kernels/packed_items.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "common/status_macros.h"
#include "kernels/internal/inner_product_top_k.h"
#include "kernels/internal/item_panels.h"
#include "kernels/internal/quantized_items.h"
#include "kernels/internal/top_k_args.h"
#include "kernels/internal/top_k_selector.h"
#include "kernels/topk.h"

namespace freshet::kernels {

static_assert(PackedItemMatrix::kGroupRows == internal::kGroupItems,
              "a versioned group is one transposed item group of the kernels");

namespace {

// Int8 rows per block of the scan: the largest multiple of kGroupRows in about 32 KiB, so that a
// block stays in L1 while every query group is scored against it.
int64_t QuantizedBlockRows(int dim) {
  const int64_t groups = 32 * 1024 / internal::QuantizedGroupBytes(dim);
  return std::max<int64_t>(1, groups) * PackedItemMatrix::kGroupRows;
}

}  // namespace

struct PackedItemMatrix::TwoStageScratch {
  std::vector<size_t> exact;
  std::vector<size_t> fast;
  std::vector<int32_t> quantized_vectors;
  std::vector<internal::QuantizedQuery> states;
  std::vector<internal::QuantizedQuery> batch_states;
  std::vector<internal::KthLargest> lower;
  std::vector<std::vector<int32_t>> candidate_rows;
  std::vector<std::vector<float>> candidate_upper;
  std::vector<int32_t> packed;
  internal::AlignedFloats buckets;
  size_t bucket_floats = 0;
  internal::TopKSelector selector;
};

PackedItemMatrix::PackedItemMatrix(const Options& options)
    : portable_(options.portable || !internal::SimdLevelCompiled(internal::SimdLevel::kAvx512)),
      two_stage_(options.two_stage && !portable_ && internal::QuantizedScanSupported()) {}

PackedItemMatrix::~PackedItemMatrix() = default;

void PackedItemMatrix::Clear() {
  rows_ = 0;
  bias_ = nullptr;
  vectors_ = nullptr;
  stride_ = 0;
  versions_.clear();
  group_rows_.clear();
  group_wild_.clear();
  wild_rows_ = 0;
}

void PackedItemMatrix::QuantizeGroup(const ItemMatrixView& items, int64_t g, int32_t n, bool whole,
                                     absl::Span<const uint32_t> row_versions) {
  const int64_t first = g * kGroupRows;
  uint8_t* group = quantized_.get() + g * internal::QuantizedGroupBytes(dim_);
  if (whole) {
    // Lanes past n are padding: zero rows with scale 0, never reported.
    std::memset(group, 128, static_cast<size_t>(internal::QuantizedGroupBytes(dim_)));
    std::fill(row_scale_.begin() + first, row_scale_.begin() + first + kGroupRows, 0.0f);
  }
  float error = 0.0f;
  float norm = 0.0f;
  int32_t wild = 0;
  for (int32_t l = 0; l < n; ++l) {
    const int64_t row = first + l;
    const uint32_t version = static_cast<size_t>(row) < row_versions.size() ? row_versions[row] : 0;
    if (whole || version != row_versions_[row]) {
      const internal::QuantizedRowBounds r =
          internal::QuantizeItemRowAvx512(items.vectors + row * items.stride, dim_, l, group);
      row_scale_[row] = r.scale;
      row_error_[row] = r.error;
      row_norm_[row] = r.norm;
      row_wild_[row] = r.wild ? 1 : 0;
      row_versions_[row] = version;
      ++rows_quantized_;
    }
    // The group's bounds are its rows' largest (wild rows carry none: the scan is off then).
    if (row_wild_[row] != 0) {
      ++wild;
      continue;
    }
    error = std::max(error, row_error_[row]);
    norm = std::max(norm, row_norm_[row]);
  }
  group_error_[g] = error;
  group_norm_[g] = norm;
  group_wild_[g] = wild;
}

absl::Status PackedItemMatrix::Update(const ItemMatrixView& items,
                                      absl::Span<const uint32_t> versions,
                                      absl::Span<const uint32_t> row_versions) {
  FRESHET_RETURN_IF_ERROR(internal::ValidateTopKArgs(items, {}, /*k=*/1, /*num_results=*/0));
  if (items.dim != dim_) {
    Clear();
    data_.reset();
    capacity_rows_ = 0;
    dim_ = items.dim;
  }
  const int64_t groups = (items.rows + kGroupRows - 1) / kGroupRows;
  const int64_t needed = groups * kGroupRows;
  if (needed > capacity_rows_) {
    // Grows by half again at least, so that a catalogue growing an item at a time is not copied
    // on every call; what is packed keeps its place.
    const int64_t capacity = std::max(
        needed, (capacity_rows_ + capacity_rows_ / 2 + kGroupRows - 1) / kGroupRows * kGroupRows);
    if (!two_stage_) {
      std::unique_ptr<float[], FreeAligned> grown(
          new (std::align_val_t{64}) float[static_cast<size_t>(capacity * dim_)]);
      if (data_ != nullptr) {
        std::memcpy(grown.get(), data_.get(),
                    static_cast<size_t>(capacity_rows_ * dim_) * sizeof(float));
      }
      data_ = std::move(grown);
    }
    if (two_stage_) {
      const int64_t group_bytes = internal::QuantizedGroupBytes(dim_);
      std::unique_ptr<uint8_t[], FreeAligned> grown_quantized(new (
          std::align_val_t{64}) uint8_t[static_cast<size_t>(capacity / kGroupRows * group_bytes)]);
      if (quantized_ != nullptr) {
        std::memcpy(grown_quantized.get(), quantized_.get(),
                    static_cast<size_t>(capacity_rows_ / kGroupRows * group_bytes));
      }
      quantized_ = std::move(grown_quantized);
      row_scale_.resize(static_cast<size_t>(capacity));
      row_error_.resize(static_cast<size_t>(capacity));
      row_norm_.resize(static_cast<size_t>(capacity));
      row_wild_.resize(static_cast<size_t>(capacity));
      row_versions_.resize(static_cast<size_t>(capacity));
      group_error_.resize(static_cast<size_t>(capacity / kGroupRows));
      group_norm_.resize(static_cast<size_t>(capacity / kGroupRows));
    }
    capacity_rows_ = capacity;
  }
  versions_.resize(static_cast<size_t>(groups), 0);
  group_rows_.resize(static_cast<size_t>(groups), 0);
  group_wild_.resize(static_cast<size_t>(groups), 0);
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t first = g * kGroupRows;
    const int32_t n = static_cast<int32_t>(std::min<int64_t>(kGroupRows, items.rows - first));
    const uint32_t version = static_cast<size_t>(g) < versions.size() ? versions[g] : 0;
    if (group_rows_[g] == n && versions_[g] == version) continue;
    if (!two_stage_) {
      float* out = data_.get() + first * dim_;
      if constexpr (internal::kAvx512Compiled) {
        if (!portable_) internal::PackItemRowsAvx512(items, first, n, out);
      }
      if (portable_) internal::PackItemRowsPortable(items, first, n, out);
    } else {
      QuantizeGroup(items, g, n, /*whole=*/group_rows_[g] != n || row_versions.empty(),
                    row_versions);
    }
    versions_[g] = version;
    group_rows_[g] = n;
    ++groups_packed_;
  }
  wild_rows_ = 0;
  for (const int32_t wild : group_wild_) wild_rows_ += wild;
  rows_ = items.rows;
  bias_ = items.bias;
  vectors_ = items.vectors;
  stride_ = items.stride;
  return absl::OkStatus();
}

absl::Status PackedItemMatrix::TopK(absl::Span<const TopKQuery> queries, int k,
                                    absl::Span<std::vector<ScoredItem>> results) const {
  // The matrix of the latest Update() as a view, for the same checks (and messages) as every
  // backend.
  const ItemMatrixView view{vectors_, bias_, rows_, std::max(1, dim_),
                            std::max<int64_t>(std::max(1, dim_), stride_)};
  FRESHET_RETURN_IF_ERROR(internal::ValidateTopKArgs(view, queries, k, results.size()));
  for (std::vector<ScoredItem>& result : results) result.clear();
  if (rows_ == 0 || queries.empty()) return absl::OkStatus();
  if (TwoStageUsable()) {
    TwoStageTopK(queries, k, results);
  } else {
    ExactTopK(queries, k, results);
  }
  return absl::OkStatus();
}

bool PackedItemMatrix::TwoStageUsable() const {
  return two_stage_ && wild_rows_ == 0 && dim_ <= internal::kMaxQuantizedDim &&
         capacity_rows_ * dim_ <= std::numeric_limits<int32_t>::max();
}

void PackedItemMatrix::TwoStageTopK(absl::Span<const TopKQuery> queries, int k,
                                    absl::Span<std::vector<ScoredItem>> results) const {
  const double bias_max = bias_ == nullptr ? 0.0 : internal::MaxAbsBiasAvx512(bias_, rows_);
  if (!(bias_max <= internal::kMaxBias) || k > kMaxCandidates) {
    ExactTopK(queries, k, results);
    return;
  }
  const int dim = dim_;
  const int quads = internal::QuantizedQuads(dim);
  const int64_t capacity = std::min<int64_t>(k, rows_);

  // Buffers kept from call to call (a server calls this for every batch).
  if (scratch_ == nullptr) scratch_ = std::make_unique<TwoStageScratch>();
  TwoStageScratch& s = *scratch_;
  // First stage for the queries it can bound; the others are answered exactly at the end.
  std::vector<size_t>& exact = s.exact;
  std::vector<size_t>& fast = s.fast;
  exact.clear();
  fast.clear();
  std::vector<int32_t>& quantized_vectors = s.quantized_vectors;
  quantized_vectors.assign(queries.size() * static_cast<size_t>(quads), 0);
  std::vector<internal::QuantizedQuery>& states = s.states;
  states.assign(queries.size(), internal::QuantizedQuery{});
  for (size_t q = 0; q < queries.size(); ++q) {
    if (internal::QuantizeQuery(queries[q].vector, dim, bias_max,
                                reinterpret_cast<int8_t*>(quantized_vectors.data() + q * quads),
                                &states[q])) {
      fast.push_back(q);
    } else {
      exact.push_back(q);
    }
  }
  const int64_t count = static_cast<int64_t>(fast.size());
  std::vector<internal::QuantizedQuery>& batch_states = s.batch_states;
  batch_states.assign(fast.size(), internal::QuantizedQuery{});
  std::vector<internal::KthLargest>& lower = s.lower;
  if (lower.size() < fast.size()) lower.resize(fast.size());
  // Grown, never shrunk: each query's candidate buffers keep their capacity for the next call.
  std::vector<std::vector<int32_t>>& candidate_rows = s.candidate_rows;
  std::vector<std::vector<float>>& candidate_upper = s.candidate_upper;
  if (candidate_rows.size() < fast.size()) {
    candidate_rows.resize(fast.size());
    candidate_upper.resize(fast.size());
  }
  std::vector<int32_t>& packed = s.packed;
  packed.assign(fast.size() * static_cast<size_t>(quads), 0);
  for (int64_t first = 0; first < count; first += internal::kQueryGroup) {
    const int64_t group = std::min<int64_t>(internal::kQueryGroup, count - first);
    for (int64_t j = 0; j < group; ++j) {
      const int32_t* source = quantized_vectors.data() + fast[first + j] * quads;
      for (int c = 0; c < quads; ++c) packed[first * quads + c * group + j] = source[c];
    }
  }
  const size_t bucket_floats = static_cast<size_t>(std::max<int64_t>(1, count)) * kGroupRows;
  if (s.bucket_floats < bucket_floats) {
    s.buckets = internal::MakeAlignedFloats(bucket_floats);
    s.bucket_floats = bucket_floats;
  }
  float* const buckets = s.buckets.get();
  std::fill(buckets, buckets + count * kGroupRows, -std::numeric_limits<float>::infinity());
  for (int64_t f = 0; f < count; ++f) {
    internal::QuantizedQuery& state = batch_states[f];
    state = states[fast[f]];
    lower[f].Reset(capacity, queries[fast[f]].exclude);
    state.lower = &lower[f];
    state.rows = &candidate_rows[f];
    state.upper = &candidate_upper[f];
    state.buckets = buckets + f * kGroupRows;
    state.seed_exclude = queries[fast[f]].exclude.data();
    state.seed_exclude_end = state.seed_exclude + queries[fast[f]].exclude.size();
    state.count = 0;
    state.compact_at = 1024;
    if (candidate_rows[f].size() < 256) {
      candidate_rows[f].resize(256);
      candidate_upper[f].resize(256);
    }
  }
  const internal::QuantizedQueryBatch batch{packed.data(), count, dim, batch_states.data()};
  const int64_t block_rows = QuantizedBlockRows(dim);
  const int64_t group_bytes = internal::QuantizedGroupBytes(dim);
  const auto block_at = [&](int64_t first) {
    return internal::QuantizedItemBlock{quantized_.get() + first / kGroupRows * group_bytes,
                                        row_scale_.data() + first,
                                        group_error_.data() + first / kGroupRows,
                                        group_norm_.data() + first / kGroupRows,
                                        bias_ == nullptr ? nullptr : bias_ + first,
                                        first,
                                        std::min(block_rows, rows_ - first),
                                        dim};
  };
  // A floor for each query's k-th lower bound from the first block (see ScanQuantizedAvx512),
  // when it leaves enough of the matrix to pay for itself.
  if (count > 0 && capacity <= internal::KthLargest::kSlots && rows_ >= 4 * block_rows) {
    internal::ScanQuantizedAvx512(block_at(0), batch, /*seed=*/true);
    static_assert(kGroupRows == 64, "one bucket per row of a group");
    for (int64_t f = 0; f < count; ++f) {
      lower[f].Seed(
          internal::KthLargestOf64Avx512(batch_states[f].buckets, static_cast<int>(capacity)));
    }
  }
  for (int64_t first = 0; count > 0 && first < rows_; first += block_rows) {
    internal::ScanQuantizedAvx512(block_at(first), batch, /*seed=*/false);
  }

  // Second stage: the candidates whose upper bound reaches the k-th best lower bound, scored
  // exactly.
  const ItemMatrixView rows_view{vectors_, bias_, rows_, dim, stride_};
  internal::TopKSelector& selector = s.selector;
  for (int64_t f = 0; f < count; ++f) {
    std::vector<int32_t>& rows = candidate_rows[f];
    const std::vector<float>& upper = candidate_upper[f];
    const float threshold = lower[f].Final();  // tau
    size_t kept = 0;
    for (size_t i = 0; i < batch_states[f].count; ++i) {
      if (upper[i] >= threshold) rows[kept++] = rows[i];
    }
    rows.resize(kept);
    const size_t q = fast[f];
    if (static_cast<int64_t>(rows.size()) > kMaxCandidates) {
      exact.push_back(q);
      continue;
    }
    selector.Reset(capacity, queries[q].exclude);
    internal::ScoreListedRowsAvx512(rows_view, rows, queries[q].vector, selector);
    selector.TakeSorted(&results[q]);
    ++two_stage_queries_;
  }

  if (exact.empty()) return;
  std::vector<TopKQuery> rest;
  rest.reserve(exact.size());
  for (const size_t q : exact) rest.push_back(queries[q]);
  std::vector<std::vector<ScoredItem>> rest_results(exact.size());
  ExactTopK(rest, k, absl::MakeSpan(rest_results));
  for (size_t i = 0; i < exact.size(); ++i) results[exact[i]] = std::move(rest_results[i]);
}

void PackedItemMatrix::ExactTopK(absl::Span<const TopKQuery> queries, int k,
                                 absl::Span<std::vector<ScoredItem>> results) const {
  if (two_stage_) {
    // No float copy is kept with two stages: the backend's own kernel over the matrix itself.
    TopKInnerProductBatch(ItemMatrixView{vectors_, bias_, rows_, dim_, stride_}, queries, k,
                          results);
    return;
  }
  const int dim = dim_;
  const int64_t count = static_cast<int64_t>(queries.size());
  std::vector<internal::TopKSelector> selectors(queries.size());
  for (size_t q = 0; q < queries.size(); ++q) {
    selectors[q].Reset(std::min<int64_t>(k, rows_), queries[q].exclude);
  }
  internal::AlignedFloats packed_queries =
      internal::MakeAlignedFloats(static_cast<size_t>(count) * dim);
  internal::PackQueries(queries, dim, packed_queries.get());
  const internal::PackedQueryBatch batch{packed_queries.get(), count, dim, selectors.data()};

  // Blocks in increasing row order, rows offered in increasing order within each: what the
  // selectors' exclude cursor and tie rule rely on (as in InnerProductTopK). Block sizes are
  // multiples of kGroupRows, so each block starts at a group of the packed copy.
  const int64_t block_rows = internal::ItemBlockRows(dim);
  for (int64_t first = 0; first < rows_; first += block_rows) {
    const int64_t rows = std::min(block_rows, rows_ - first);
    const internal::PackedItemBlock block{
        data_.get() + first * dim, bias_ == nullptr ? nullptr : bias_ + first, first, rows, dim};
    if (portable_ || !internal::kAvx512Compiled) {
      internal::ScorePackedPortable(block, batch);
      continue;
    }
    const int64_t next_first = first + rows;
    const int64_t next_rows = std::min(block_rows, rows_ - next_first);
    const absl::Span<const float> next =
        next_rows <= 0 ? absl::Span<const float>()
                       : absl::MakeConstSpan(data_.get() + next_first * dim,
                                             internal::ScratchFloats(next_rows, dim));
    if constexpr (internal::kAvx512Compiled) internal::ScorePackedAvx512(block, batch, next);
  }
  for (size_t q = 0; q < queries.size(); ++q) selectors[q].TakeSorted(&results[q]);
}

}  // namespace freshet::kernels
