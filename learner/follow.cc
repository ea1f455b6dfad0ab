// Learner: publishing to serving replicas and following a learner (learner.h, "Serving
// replicas").
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/byte_codec.h"
#include "common/status_macros.h"
#include "learner/learner.h"

namespace freshet::learner {

void Learner::EnablePublishing() {
  if (publish_ != nullptr) return;
  publish_ = std::make_unique<PublishState>();
  publish_->rescales = popularity_.rescales();
  dirty_users_.AddAlso(&publish_->users);
  dirty_items_.AddAlso(&publish_->items);
}

Learner::PublishedChanges Learner::TakePublishedChanges() {
  learning().Flush();  // the held events' rows belong to this round
  PublishedChanges changes;
  if (publish_ == nullptr) return changes;
  if (popularity_.rescales() != publish_->rescales) {
    // Every item's popularity score changed scale at once.
    publish_->rescales = popularity_.rescales();
    MarkAllPublished(/*users=*/false);
  }
  changes.users = publish_->users.Take();
  changes.items = publish_->items.Take();
  changes.users.erase(std::remove_if(changes.users.begin(), changes.users.end(),
                                     [this](int32_t row) { return !users_.IsLive(row); }),
                      changes.users.end());
  return changes;
}

void Learner::MarkAllPublished(bool users) {
  if (publish_ == nullptr) return;
  publish_->items.MarkAll(items_.size());
  if (users) publish_->users.MarkAll(users_.size());
}

void Learner::EncodePublishedUser(int32_t row, std::string* out) const {
  std::string user, history;
  EncodeUser(row, &user);
  EncodeHistory(row, &history);
  ByteWriter w(out);
  w.Put(kFormatVersion);
  w.PutString(user);
  w.PutString(history);
  w.Put(histories_[row].applied_ns());
}

absl::Status Learner::FollowGlobals(absl::string_view globals, int64_t version) {
  if (version < followed_globals_version_) return absl::OkStatus();  // older than what we have
  ByteReader r(globals);
  uint8_t format = 0;
  std::string algorithm, popularity;
  int32_t dim = 0, users = 0, items = 0, catalog = 0;
  int64_t events = 0, filtered = 0, expired = 0, latest = 0;
  r.Get(&format);
  r.GetString(&algorithm);
  r.Get(&dim);
  r.Get(&users);
  r.Get(&items);
  r.Get(&catalog);
  r.Get(&events);
  r.Get(&filtered);
  r.Get(&expired);
  r.Get(&latest);
  r.GetString(&popularity);
  if (format != kFormatVersion || !r.done() || items < 0 || catalog < 0 || catalog > items ||
      events < 0) {
    return absl::DataLossError("followed globals: malformed value");
  }
  if (algorithm != algorithm_ || dim != config_.dim) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the followed learner runs algorithm '", algorithm, "' with dimension ", dim,
        "; this replica is configured for '", algorithm_, "' with dimension ", config_.dim));
  }
  if (items > followed_items()) {
    FRESHET_RETURN_IF_ERROR(CheckRowsFit("followed globals", users_.size(), items));
  }
  if (!popularity_.DecodeGlobals(popularity)) {
    return absl::DataLossError("followed globals: malformed popularity");
  }
  // The rows the learner has: item rows refer to one another (cooc's neighbours), so every row
  // exists before any is decoded; those not received yet are not live and stay out of the catalog.
  followed_globals_version_ = version;
  if (items > followed_items()) {
    followed_item_ids_.resize(static_cast<size_t>(items));
    followed_item_versions_.resize(static_cast<size_t>(items), 0);
    popularity_.Resize(items);
    learning().Grow(users_.size(), items);
  }
  events_applied_ = events;
  events_filtered_ = filtered;
  latest_ts_ms_ = latest;
  // Rows not received yet stay out of the catalog until they are (FollowItem).
  catalog_ = std::max(catalog_, std::min(catalog, followed_items()));
  return absl::OkStatus();
}

absl::Status Learner::FollowItem(int32_t row, absl::string_view value, int64_t version) {
  const std::string what = absl::StrCat("followed item row ", row);
  constexpr int32_t kMaxRows = int32_t{1} << 30;
  if (row < 0 || row >= kMaxRows) return absl::DataLossError(what + ": out of range");
  ByteReader r(value);
  uint8_t format = 0;
  absl::string_view id, popularity;
  if (!r.Get(&format) || format != kFormatVersion || !r.GetStringView(&id) || id.empty() ||
      !r.GetStringView(&popularity)) {
    return absl::DataLossError(what + ": malformed id or popularity");
  }
  if (row >= followed_items()) {
    const int32_t rows = row + 1;
    if (followed_items() != row) followed_ids_changed_ = true;  // a gap, filled later
    followed_item_ids_.resize(static_cast<size_t>(rows));
    followed_item_versions_.resize(static_cast<size_t>(rows), 0);
    popularity_.Resize(rows);
    learning().Grow(users_.size(), rows);
  }
  std::string& known = followed_item_ids_[row];
  if (!known.empty() && known != id) {
    return absl::DataLossError(absl::StrCat(what, " is '", known, "' here and '", id,
                                            "' in the followed state: it comes from another "
                                            "learner (a reset learner needs a new model topic)"));
  }
  if (version < followed_item_versions_[row]) return absl::OkStatus();  // older than what we have
  // The model's decoder may read the row's new popularity (ials' prior), so popularity goes
  // first; when the model refuses its part, the popularity it replaced is put back and the row
  // keeps serving exactly as before.
  popularity_.EncodeItem(row, &follow_scratch_);
  if (!popularity_.DecodeItem(row, popularity)) {
    follow_scratch_.clear();
    return absl::DataLossError(what + ": malformed popularity");
  }
  const size_t used = static_cast<size_t>(popularity.data() + popularity.size() - value.data());
  const absl::Status decoded = codec().DecodeServedItem(row, value.substr(used));
  if (!decoded.ok()) popularity_.DecodeItem(row, follow_scratch_);
  follow_scratch_.clear();
  if (!decoded.ok()) return absl::DataLossError(absl::StrCat(what, ": ", decoded.message()));
  if (known.empty()) {
    known.assign(id.data(), id.size());
    bool inserted = false;
    if (!followed_ids_changed_ && items_.size() == row) {
      const int32_t at = items_.FindOrInsert(id, &inserted);
      if (!inserted || at != row) followed_ids_changed_ = true;
    } else {
      followed_ids_changed_ = true;
    }
  }
  followed_item_versions_[row] = version;
  dirty_items_.Mark(row);  // moves the row's version: packed scoring copies refresh it
  return absl::OkStatus();
}

absl::Status Learner::FollowItemsDone() {
  if (followed_ids_changed_) {
    std::vector<std::string> sorted;
    for (const std::string& id : followed_item_ids_) {
      if (!id.empty()) sorted.push_back(id);
    }
    std::sort(sorted.begin(), sorted.end());
    const auto dup = std::adjacent_find(sorted.begin(), sorted.end());
    if (dup != sorted.end()) {
      return absl::DataLossError(
          absl::StrCat("followed item '", *dup, "' has two rows: the model topic mixes learners"));
    }
    items_.Restore(followed_item_ids_);
    followed_ids_changed_ = false;
  }
  // Every received row up to the first gap is in the catalog.
  int32_t catalog = 0;
  while (catalog < followed_items() && !followed_item_ids_[catalog].empty()) ++catalog;
  catalog_ = std::max(catalog_, catalog);
  codec().FollowEvents(events_applied_, !dirty_items_.empty());
  dirty_items_.Take();  // versions moved; nobody persists a replica's rows
  return absl::OkStatus();
}

absl::StatusOr<int32_t> Learner::FollowUser(absl::string_view published) {
  ByteReader r(published);
  uint8_t version = 0;
  absl::string_view user, history;
  int64_t applied_ns = 0;
  if (!r.Get(&version) || version != kFormatVersion || !r.GetStringView(&user) ||
      !r.GetStringView(&history) || !r.Get(&applied_ns) || !r.done()) {
    return absl::DataLossError("published user: malformed value");
  }
  ByteReader u(user);
  absl::string_view id;
  if (!u.Get(&version) || version != kFormatVersion || !u.GetStringView(&id) || id.empty()) {
    return absl::DataLossError("published user: malformed id");
  }
  if (history.empty() || static_cast<uint8_t>(history[0]) != kFormatVersion) {
    return absl::DataLossError("published user: malformed history");
  }
  bool inserted = false;
  const int32_t row = users_.FindOrInsert(id, &inserted);
  if (static_cast<size_t>(row) >= histories_.size()) {
    histories_.resize(static_cast<size_t>(users_.size()));
  }
  learning().Grow(users_.size(), std::max(items_.size(), followed_items()));
  const size_t used = static_cast<size_t>(id.data() + id.size() - user.data());
  // The history is decoded aside first, and the model's decoder changes nothing when it refuses:
  // a refused state leaves a user this replica already had exactly as it was.
  UserHistory decoded;
  absl::Status status = absl::OkStatus();
  if (!decoded.Decode(history.substr(1), catalog_, /*drop_unknown=*/true)) {
    status = absl::DataLossError("published user: malformed history");
  }
  if (status.ok()) status = codec().DecodeUser(row, user.substr(used));
  if (!status.ok()) {
    if (inserted) ForgetUser(row);
    return status;
  }
  decoded.set_applied_ns(applied_ns);
  histories_[row] = std::move(decoded);
  return row;
}

void Learner::ForgetUser(int32_t row) {
  if (row < 0 || row >= users_.size() || !users_.IsLive(row)) return;
  users_.Erase(row);
  histories_[row] = UserHistory();
  codec().ResetUser(row);
}

}  // namespace freshet::learner
