// Learner replicas (learner.h, "Replicas"): the messages replicas exchange and how they merge.
//
// A message: format version (u8), kind (u8: kChanges, kJoin, kCatchUp), width (i32), the number
// of rows (varint), then per row: the item id (string), flags (u8: kNew, kChange), the start value
// (width floats, kNew) and the change since the start (width floats, kChange).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/byte_codec.h"
#include "common/status_macros.h"
#include "learner/learner.h"

namespace freshet::learner {
namespace {

constexpr uint8_t kReplicaFormat = 1;
// Message kinds.
constexpr uint8_t kChanges = 0;  // rows changed since the last merge
constexpr uint8_t kJoin = 1;     // every row, as new: the sender (re)joins the group
constexpr uint8_t kCatchUp = 2;  // after a join: the whole table, or nothing
// Row flags.
constexpr uint8_t kNew = 1;
constexpr uint8_t kChange = 2;

// One row of one message, pointing into it.
struct Row {
  absl::string_view id;
  const char* start = nullptr;   // width floats (unaligned) or null
  const char* change = nullptr;  // width floats (unaligned) or null
};

struct Message {
  uint8_t kind = kChanges;
  std::vector<Row> rows;
};

bool AllFinite(const char* unaligned, int n) {
  float probe = 0.0f;  // NaN once any value is NaN or infinite
  for (int j = 0; j < n; ++j) {
    float v;
    std::memcpy(&v, unaligned + j * sizeof(float), sizeof(float));
    probe += v * 0.0f;
  }
  return probe == 0.0f;
}

absl::Status ParseMessage(absl::string_view in, int rank, int width, Message* out) {
  ByteReader r(in);
  uint8_t format = 0;
  int32_t their_width = 0;
  uint64_t count = 0;
  const auto malformed = [rank](absl::string_view what) {
    return absl::DataLossError(absl::StrCat("replica message from rank ", rank, ": ", what));
  };
  if (!r.Get(&format) || !r.Get(&out->kind) || !r.Get(&their_width) || !r.GetVarint(&count)) {
    return malformed("truncated header");
  }
  if (format != kReplicaFormat) {
    return malformed(absl::StrCat("unknown format ", static_cast<int>(format)));
  }
  if (out->kind > kCatchUp) return malformed(absl::StrCat("unknown kind ", int{out->kind}));
  if (their_width != width) {
    return absl::FailedPreconditionError(absl::StrCat(
        "rank ", rank, " replicates item rows of ", their_width, " floats, this model has ", width,
        ": every replica must run the same algorithm, dimension and bpr.tied_context"));
  }
  const uint64_t bytes = static_cast<uint64_t>(width) * sizeof(float);
  // Every row takes at least 2 bytes: the bound keeps a corrupt count from allocating much.
  if (count > in.size() / 2) return malformed("row count larger than the message");
  out->rows.resize(count);
  for (Row& row : out->rows) {
    uint8_t flags = 0;
    if (!r.GetStringView(&row.id) || !r.Get(&flags)) return malformed("truncated row");
    if (row.id.empty() || flags > (kNew | kChange)) return malformed("bad row");
    if ((flags & kNew) != 0 && !r.GetBytes(bytes, &row.start)) return malformed("truncated row");
    if ((flags & kChange) != 0 && !r.GetBytes(bytes, &row.change)) {
      return malformed("truncated row");
    }
    // A NaN or an infinity would spread through every replica's sum: refused before any merge.
    for (const char* values : {row.start, row.change}) {
      if (values != nullptr && !AllFinite(values, width)) {
        return malformed(absl::StrCat("item '", row.id, "' has a value that is not finite"));
      }
    }
  }
  if (!r.done()) return malformed("trailing bytes");
  return absl::OkStatus();
}

void AddFloats(const char* unaligned, float* sum, int n) {
  for (int j = 0; j < n; ++j) {
    float v;
    std::memcpy(&v, unaligned + j * sizeof(float), sizeof(float));
    sum[j] += v;
  }
}

}  // namespace

absl::Status Learner::EnableReplicas() {
  const int width = replicated_items().ReplicaItemWidth();
  if (width <= 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "replicas need a model with replicated item parameters (bpr); ", algorithm_, " has none"));
  }
  if (replicas_ != nullptr) dirty_items_.RemoveAlso(&replicas_->changed);
  replicas_ = std::make_unique<ReplicaState>();
  replicas_->width = width;
  dirty_items_.AddAlso(&replicas_->changed);
  return absl::OkStatus();
}

std::string Learner::EncodeReplicaRows(uint8_t kind, absl::Span<const int32_t> rows, bool as_new,
                                       bool from_initial) {
  ReplicaState& state = *replicas_;
  const int width = state.width;
  std::string body;
  ByteWriter w(&body);
  std::vector<float> now(width), start(width), change(width);
  uint64_t count = 0;
  for (const int32_t row : rows) {
    replicated_items().ReadReplicaItem(row, /*initial=*/false, now.data());
    const bool is_new = as_new || row >= state.base_rows;
    const float* from = nullptr;
    if (!is_new) {
      from = &state.base[static_cast<size_t>(row) * width];
    } else if (from_initial) {
      replicated_items().ReadReplicaItem(row, /*initial=*/true, start.data());
      from = start.data();
    }
    bool changed = false;
    if (from != nullptr) {
      for (int j = 0; j < width; ++j) {
        change[j] = now[j] - from[j];
        changed = changed || change[j] != 0.0f;
      }
    }
    if (!is_new && !changed) continue;  // a new row is sent even unchanged: others learn its id
    w.PutString(items_.ExternalId(row));
    w.Put(static_cast<uint8_t>((is_new ? kNew : 0) | (changed ? kChange : 0)));
    if (is_new) w.PutRaw(from_initial ? start.data() : now.data(), static_cast<size_t>(width));
    if (changed) w.PutRaw(change.data(), static_cast<size_t>(width));
    ++count;
  }
  std::string out;
  ByteWriter header(&out);
  header.Put(kReplicaFormat);
  header.Put(kind);
  header.Put(static_cast<int32_t>(width));
  header.PutVarint(count);
  out += body;
  return out;
}

std::string Learner::TakeReplicaChanges() {
  learning().Flush();  // held events are part of this replica's changes
  ReplicaState& state = *replicas_;
  std::vector<int32_t> rows = state.changed.Take();
  if (state.joining) {
    // Every row, with its value as the start: the group takes this replica's rows as they are.
    rows.resize(static_cast<size_t>(items_.size()));
    for (int32_t r = 0; r < items_.size(); ++r) rows[r] = r;
    return EncodeReplicaRows(kJoin, rows, /*as_new=*/true, /*from_initial=*/false);
  }
  // Rows created since the last merge are new: they start from their initial value, so an item
  // that several replicas met at once counts every replica's learning on top of one start.
  for (int32_t r = state.base_rows; r < items_.size(); ++r) rows.push_back(r);
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return EncodeReplicaRows(kChanges, rows, /*as_new=*/false, /*from_initial=*/true);
}

std::string Learner::ReplicaCatchUp() {
  ReplicaState& state = *replicas_;
  std::vector<int32_t> rows;
  if (state.catch_up_sender) {
    rows.resize(static_cast<size_t>(items_.size()));
    for (int32_t r = 0; r < items_.size(); ++r) rows[r] = r;
  }
  state.catch_up_sender = false;
  return EncodeReplicaRows(kCatchUp, rows, /*as_new=*/true, /*from_initial=*/false);
}

absl::Status Learner::MergeReplicaChanges(absl::Span<const std::string> messages, int rank,
                                          ReplicaMergeStats* stats) {
  ReplicaState& state = *replicas_;
  const int width = state.width;
  *stats = ReplicaMergeStats();
  if (rank < 0 || static_cast<size_t>(rank) >= messages.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " of ", messages.size(), " replica messages"));
  }
  std::vector<Message> parsed(messages.size());
  for (size_t r = 0; r < messages.size(); ++r) {
    FRESHET_RETURN_IF_ERROR(ParseMessage(messages[r], static_cast<int>(r), width, &parsed[r]));
  }
  const bool joining = parsed[rank].kind == kJoin;

  // Each item's start (the lowest rank that sends it as new) and its changes summed in rank
  // order: the same arithmetic on every replica.
  struct Merged {
    absl::string_view id;
    const char* start = nullptr;
    int32_t row = -1;
  };
  std::vector<Merged> merged;
  std::vector<float> sums;
  absl::flat_hash_map<absl::string_view, size_t> index;
  for (size_t r = 0; r < parsed.size(); ++r) {
    for (const Row& row : parsed[r].rows) {
      const auto [it, inserted] = index.try_emplace(row.id, merged.size());
      if (inserted) {
        merged.push_back(Merged{row.id, nullptr, -1});
        sums.resize(sums.size() + static_cast<size_t>(width), 0.0f);
      }
      Merged& m = merged[it->second];
      if (row.start != nullptr && m.start == nullptr) m.start = row.start;
      if (row.change != nullptr) AddFloats(row.change, &sums[it->second * width], width);
      if (static_cast<int>(r) != rank) ++stats->rows_received;
    }
  }
  // Check before changing anything: a row sent only as a change must have a base here, except
  // on a joining replica, which receives such rows whole in the catch-up.
  for (Merged& m : merged) {
    m.row = items_.Find(m.id);
    if (m.start != nullptr) continue;
    if (m.row != IdDictionary::kMissing && m.row < state.base_rows) continue;
    if (joining) continue;
    return absl::FailedPreconditionError(
        absl::StrCat("a replica changed item '", m.id,
                     "', which this replica never received: the replicas did not start together"));
  }
  // Each merged value (its start, or the base here, plus the summed changes) into `sums`, and
  // every one checked by the model (finite, accumulators >= 0) before any row is written.
  for (size_t i = 0; i < merged.size(); ++i) {
    const Merged& m = merged[i];
    if (m.row == IdDictionary::kMissing && m.start == nullptr) continue;
    float* value = &sums[i * width];
    const size_t base_at = static_cast<size_t>(std::max(m.row, 0)) * width;
    for (int j = 0; j < width; ++j) {
      float from = 0.0f;
      if (m.start != nullptr) {
        std::memcpy(&from, m.start + j * sizeof(float), sizeof(float));
      } else if (base_at + width <= state.base.size()) {
        from = state.base[base_at + j];
      }
      value[j] += from;
    }
    const absl::Status valid = replicated_items().CheckReplicaItem(value);
    if (!valid.ok()) {
      return absl::DataLossError(
          absl::StrCat("replicas: merged item '", m.id, "' refused: ", valid.message()));
    }
  }

  bool grew = false;
  for (Merged& m : merged) {
    if (m.row != IdDictionary::kMissing || m.start == nullptr) continue;
    bool inserted = false;
    m.row = items_.FindOrInsert(m.id, &inserted);
    grew = true;
    ++stats->items_added;
  }
  if (grew) {
    popularity_.Resize(items_.size());
    learning().Grow(users_.size(), items_.size());
    catalog_ = std::max(catalog_, items_.size());
    globals_dirty_ = true;
  }
  state.base.resize(static_cast<size_t>(items_.size()) * width, 0.0f);
  for (size_t i = 0; i < merged.size(); ++i) {
    const Merged& m = merged[i];
    if (m.row == IdDictionary::kMissing) continue;  // a joiner's: comes with the catch-up
    const float* value = &sums[i * width];
    replicated_items().WriteReplicaItem(m.row, value);
    std::copy_n(value, width, &state.base[static_cast<size_t>(m.row) * width]);
    dirty_items_.Mark(m.row);  // persisted with the next flush
    ++stats->rows_merged;
  }
  replicated_items().ReplicaWritesDone();
  // Every row here now has a base: a joiner sent all of its rows, and every other replica its
  // rows created since the last merge.
  state.base_rows = items_.size();
  state.changed.Take();  // the merge's own marks are not changes to send
  state.joining = false;

  // After a join, the lowest non-joining rank sends its whole table in a catch-up exchange.
  bool any_join = false;
  int lowest_member = -1;
  for (size_t r = 0; r < parsed.size(); ++r) {
    if (parsed[r].kind == kJoin) any_join = true;
    if (parsed[r].kind == kChanges && lowest_member < 0) lowest_member = static_cast<int>(r);
  }
  stats->catch_up = any_join && lowest_member >= 0;
  state.catch_up_sender = stats->catch_up && lowest_member == rank;
  return absl::OkStatus();
}

}  // namespace freshet::learner
