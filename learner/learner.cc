#include "learner/learner.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/byte_codec.h"
#include "common/status_macros.h"
#include "learner/blend_model.h"
#include "learner/bpr_model.h"
#include "learner/cooc_model.h"
#include "learner/hybrid_model.h"
#include "learner/ials_model.h"
#include "stream/event_validation.h"

namespace freshet::learner {

const std::vector<std::string>& AlgorithmNames() {
  static const std::vector<std::string>* names =
      new std::vector<std::string>{"bpr", "ials", "cooc", "hybrid", "blend", "popularity"};
  return *names;
}

Learner::Learner(std::string algorithm, const config::Config& config,
                 const kernels::Backend* backend)
    : backend_(backend),
      algorithm_(std::move(algorithm)),
      config_(config),
      popularity_(config.popularity_half_life_s),
      fallback_(&popularity_, backend) {}

absl::StatusOr<std::unique_ptr<Learner>> Learner::Create(absl::string_view algorithm,
                                                         const config::Config& config,
                                                         const kernels::Backend* backend) {
  return Create(algorithm, config, backend, NewBprTrainer);
}

absl::StatusOr<std::unique_ptr<Learner>> Learner::Create(absl::string_view algorithm,
                                                         const config::Config& config,
                                                         const kernels::Backend* backend,
                                                         BprTrainerFactory make_trainer) {
  if (backend == nullptr) return absl::InvalidArgumentError("Learner needs a compute backend");
  std::unique_ptr<Learner> learner(new Learner(std::string(algorithm), config, backend));
  const Popularity* pop = &learner->popularity_;
  if (algorithm == "bpr") {
    auto bpr = std::make_unique<BprModel>(config, pop, backend);
    FRESHET_RETURN_IF_ERROR(bpr->InitLearning(make_trainer));
    learner->model_ = std::move(bpr);
  } else if (algorithm == "ials") {
    learner->model_ = std::make_unique<IalsModel>(config, pop, backend);
  } else if (algorithm == "cooc") {
    learner->model_ = std::make_unique<CoocModel>(config, pop, backend);
  } else if (algorithm == "hybrid") {
    learner->model_ = std::make_unique<HybridModel>(config, pop, backend);
  } else if (algorithm == "blend") {
    absl::StatusOr<std::vector<BlendModel::Feature>> features =
        BlendModel::ParseFeatures(config.blend_features);
    if (!features.ok()) return features.status();
    learner->model_ = std::make_unique<BlendModel>(config, *std::move(features), pop, backend);
  } else if (algorithm == "popularity") {
    learner->model_ = std::make_unique<PopularityModel>(pop, backend);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown algorithm '", algorithm, "'; valid: ", absl::StrJoin(AlgorithmNames(), ", ")));
  }
  learner->model_->set_dirty_items(&learner->dirty_items_);
  learner->dirty_items_.TrackGroupVersions();
  if (config.admit_min_events > 1) learner->admission_.assign(size_t{1} << 22, 0);
  return learner;
}

Learner::Rows Learner::Resolve(const stream::Event& event, uint64_t user_hash, uint64_t item_hash,
                               bool* grew) {
  bool new_user = false, new_item = false;
  const Rows rows{users_.FindOrInsert(event.user, user_hash, &new_user),
                  items_.FindOrInsert(event.item, item_hash, &new_item)};
  if (new_user) {
    histories_.emplace_back();
  }
  if (new_item) popularity_.Resize(items_.size());
  *grew = *grew || new_user || new_item;
  return rows;
}

bool Learner::Admit(uint64_t hash) {
  // A counting filter of 4M one-byte counters: an id is admitted once its counter (shared with
  // the ids that collide with it) reaches the threshold, so admission can come early, never late.
  uint8_t& count = admission_[hash >> 42];
  if (count + 1 >= config_.admit_min_events) return true;
  ++count;
  return false;
}

void Learner::MaybeExpire(int64_t ts_ms) {
  if (config_.user_ttl_s <= 0 || ts_ms < next_expiry_ms_) return;
  const int64_t ttl_ms = static_cast<int64_t>(config_.user_ttl_s * 1000.0);
  if (next_expiry_ms_ != 0) ExpireUsers(ts_ms);
  // Sweep again after a tenth of the TTL (at least a second) of event time.
  next_expiry_ms_ = ts_ms + std::max<int64_t>(1000, ttl_ms / 10);
}

int64_t Learner::ExpireUsers(int64_t now_ms) {
  if (config_.user_ttl_s <= 0) return 0;
  const int64_t cutoff = now_ms - static_cast<int64_t>(config_.user_ttl_s * 1000.0);
  learning().Flush();  // held events may refer to the rows about to be reset
  int64_t expired = 0;
  for (int32_t row = 0; row < users_.size(); ++row) {
    if (!users_.IsLive(row) || histories_[row].last_ts_ms() >= cutoff) continue;
    users_.Erase(row);
    histories_[row] = UserHistory();
    codec().ResetUser(row);
    erased_users_.push_back(row);
    ++expired;
  }
  users_expired_ += expired;
  return expired;
}

void Learner::ApplyResolved(Rows rows, const stream::Event& event) {
  UserHistory& history = histories_[rows.user];
  dirty_users_.Mark(rows.user);
  dirty_items_.Mark(rows.item);
  // Rows are assigned in order of first appearance, so the catalog is every row up to this one.
  catalog_ = std::max(catalog_, rows.item + 1);
  learning().Learn(Interaction{rows.user, rows.item, event.weight, event.ts_ms,
                               history.Recent(config_.history_recent), catalog_});
  const bool first_of_user = history.events() == 0;  // a new user (or one expired since)
  history.Add(rows.item, config_.history_recent, config_.history_max_items);
  popularity_.Add(rows.item, event.weight, event.ts_ms, first_of_user);
  history.CountEvent(event.ts_ms);
  if (apply_clock_ns_ != 0) history.set_applied_ns(apply_clock_ns_);
  ++events_applied_;
  latest_ts_ms_ = std::max(latest_ts_ms_, event.ts_ms);
}

bool Learner::Acceptable(const stream::Event& event) const {
  return std::isfinite(event.weight) && event.weight >= 0 &&
         event.weight <= config_.max_event_weight && event.ts_ms >= 0 &&
         event.ts_ms < stream::kMaxEventTsMs;
}

void Learner::Apply(const stream::Event& event) {
  if (!Acceptable(event)) {
    ++events_rejected_;
    return;
  }
  MaybeExpire(event.ts_ms);
  if (!admission_.empty()) {
    // Both ids count this occurrence; the event is learnt once both are admitted.
    const bool user_in =
        users_.Find(event.user) != IdDictionary::kMissing || Admit(IdDictionary::Hash(event.user));
    const bool item_in = items_.Find(event.item) != IdDictionary::kMissing ||
                         Admit(IdDictionary::Hash(event.item) * 0x9E3779B97F4A7C15ull);
    if (!user_in || !item_in) {
      ++events_filtered_;
      globals_dirty_ = true;  // so the positions that include it are written too
      return;
    }
  }
  bool grew = false;
  const Rows rows =
      Resolve(event, IdDictionary::Hash(event.user), IdDictionary::Hash(event.item), &grew);
  if (grew) learning().Grow(users_.size(), items_.size());
  ApplyResolved(rows, event);
}

void Learner::ApplyBatch(absl::Span<const stream::Event> events) {
  // Resolving every id first is equivalent to resolving them one by one: rows are assigned in
  // order of first appearance either way, and nothing below depends on rows added later.
  // The lookups are pipelined: the hash slots of event i + 32 and the ids they point at for event
  // i + 16 are fetched while event i is resolved.
  if (!admission_.empty() ||  // the filter decides event by event
      !std::all_of(events.begin(), events.end(),
                   [this](const stream::Event& e) { return Acceptable(e); })) {
    for (const stream::Event& event : events) Apply(event);
    learning().Flush();
    return;
  }
  if (!events.empty()) MaybeExpire(events.front().ts_ms);
  const size_t n = events.size();
  batch_hashes_.clear();
  for (const stream::Event& event : events) {
    batch_hashes_.emplace_back(IdDictionary::Hash(event.user), IdDictionary::Hash(event.item));
  }
  bool grew = false;
  batch_rows_.clear();
  for (size_t i = 0; i < n; ++i) {
    if (i + 32 < n) {
      users_.Prefetch(batch_hashes_[i + 32].first);
      items_.Prefetch(batch_hashes_[i + 32].second);
    }
    if (i + 16 < n) {
      users_.PrefetchCandidate(batch_hashes_[i + 16].first);
      items_.PrefetchCandidate(batch_hashes_[i + 16].second);
    }
    batch_rows_.push_back(
        Resolve(events[i], batch_hashes_[i].first, batch_hashes_[i].second, &grew));
  }
  if (grew) learning().Grow(users_.size(), items_.size());
  // Staged prefetch, hiding the latency of rows of random users and items: the history object
  // far ahead, its contents nearer (their address is known once the object is in cache), and the
  // model's rows (which may depend on the history) nearest.
  constexpr size_t kFar = 16, kMid = 10, kNear = 5;
  for (size_t i = 0; i < n; ++i) {
    if (i + kFar < n) {
      __builtin_prefetch(&histories_[batch_rows_[i + kFar].user]);  // one line: see UserHistory
    }
    if (i + kMid < n) histories_[batch_rows_[i + kMid].user].Prefetch();
    if (i + kNear < n) {
      const Rows& ahead = batch_rows_[i + kNear];
      learning().Prefetch(Interaction{ahead.user, ahead.item, 0.0f, 0,
                                      histories_[ahead.user].Recent(config_.history_recent)});
    }
    ApplyResolved(batch_rows_[i], events[i]);
  }
  // Readers that come after this call see every event of it.
  learning().Flush();
}

namespace {

// The sorted union of two sorted lists (duplicates allowed in the result).
absl::Span<const int32_t> MergeSorted(absl::Span<const int32_t> a, absl::Span<const int32_t> b,
                                      std::vector<int32_t>* out) {
  if (b.empty()) return a;
  if (a.empty()) return b;
  out->resize(a.size() + b.size());
  std::merge(a.begin(), a.end(), b.begin(), b.end(), out->begin());
  return *out;
}

}  // namespace

absl::Status Learner::Recommend(absl::string_view user, int k, bool exclude_seen,
                                absl::Span<const int32_t> also_exclude, Recommendation* out) const {
  if (k < 1) return absl::InvalidArgumentError(absl::StrCat("k must be at least 1, got ", k));
  out->items.clear();
  const int32_t row = users_.Find(user);
  if (row == IdDictionary::kMissing) {
    out->personalized = false;
    UserQuery query;
    query.exclude = also_exclude;
    if (algorithm_ == "popularity" || config_.popularity_new_users != "first") {
      return fallback_.Recommend(query, k, &out->items);
    }
    std::vector<float> scores(popularity_.Scores().size());
    popularity_.NewUserScores(kNewUserPrior, absl::MakeSpan(scores));
    return backend_->TopKFromScores(scores.data(), static_cast<int64_t>(scores.size()),
                                    also_exclude, k, &out->items);
  }
  const UserHistory& history = histories_[row];
  std::vector<int32_t> scratch, merged;
  const absl::Span<const int32_t> seen =
      exclude_seen ? history.Seen(&scratch) : absl::Span<const int32_t>();
  const UserQuery query{row, history.Recent(config_.history_recent),
                        MergeSorted(seen, also_exclude, &merged)};
  out->personalized = algorithm_ != "popularity";
  return scoring().Recommend(query, k, &out->items);
}

bool Learner::PrepareQuery(absl::string_view user, bool exclude_seen,
                           absl::Span<const int32_t> also_exclude, std::vector<float>* vector,
                           std::vector<int32_t>* exclude) const {
  const int32_t row = users_.Find(user);
  if (row == IdDictionary::kMissing || algorithm_ == "popularity") return false;
  const UserHistory& history = histories_[row];
  std::vector<int32_t> scratch, merged;
  const absl::Span<const int32_t> seen =
      exclude_seen ? history.Seen(&scratch) : absl::Span<const int32_t>();
  const absl::Span<const int32_t> all = MergeSorted(seen, also_exclude, &merged);
  const UserQuery query{row, history.Recent(config_.history_recent), all};
  if (!scoring().QueryVector(query, vector)) return false;
  exclude->assign(all.begin(), all.end());
  return true;
}

absl::Status Learner::Similar(absl::string_view item, int k, absl::Span<const int32_t> also_exclude,
                              std::vector<kernels::ScoredItem>* out) const {
  if (k < 1) return absl::InvalidArgumentError(absl::StrCat("k must be at least 1, got ", k));
  out->clear();
  const int32_t row = items_.Find(item);
  if (row == IdDictionary::kMissing) {
    return absl::NotFoundError(absl::StrCat("unknown item '", item, "'"));
  }
  std::vector<int32_t> self = {row}, merged;
  const absl::Span<const int32_t> exclude = MergeSorted(self, also_exclude, &merged);
  const kernels::ItemMatrixView vectors = scoring().ItemVectors();
  if (vectors.rows > row) {
    // Cosine-free inner product with the item's own vector, without the bias (a property of the
    // candidate, not of the pair).
    kernels::ItemMatrixView view = vectors;
    view.bias = nullptr;
    view.rows = std::min<int64_t>(view.rows, items_.size());
    const kernels::TopKQuery q{vectors.vectors + row * vectors.stride, exclude};
    return backend_->TopK(view, absl::MakeConstSpan(&q, 1), k, absl::MakeSpan(out, 1));
  }
  const int32_t recent[1] = {row};
  UserQuery query;
  query.recent = absl::MakeConstSpan(recent, 1);
  query.exclude = exclude;
  return scoring().Recommend(query, k, out);
}

// --- Persistence ---------------------------------------------------------------------------

StateChanges Learner::TakeChanges() {
  learning().Flush();  // the held events' rows belong to this set of changes
  StateChanges changes;
  if (popularity_.rescales() != popularity_rescales_) {
    // Every item's persisted popularity score changed scale at once.
    popularity_rescales_ = popularity_.rescales();
    dirty_items_.MarkAll(items_.size());
  }
  changes.users = dirty_users_.Take();
  changes.items = dirty_items_.Take();
  changes.erased_users.swap(erased_users_);
  changes.globals = globals_dirty_ || !changes.users.empty() || !changes.items.empty() ||
                    !changes.erased_users.empty();
  globals_dirty_ = false;
  // Rows freed and not reused since are deletions only.
  changes.users.erase(std::remove_if(changes.users.begin(), changes.users.end(),
                                     [this](int32_t row) { return !users_.IsLive(row); }),
                      changes.users.end());
  return changes;
}

void Learner::EncodeUser(int32_t row, std::string* out) const {
  ByteWriter w(out);
  w.Put(kFormatVersion);
  w.PutString(users_.ExternalId(row));
  codec().EncodeUser(row, out);
}

void Learner::EncodeHistory(int32_t row, std::string* out) const {
  ByteWriter(out).Put(kFormatVersion);
  histories_[row].Encode(std::max(config_.history_recent, 1), out);
}

void Learner::EncodeItem(int32_t row, std::string* out) const {
  ByteWriter w(out);
  w.Put(kFormatVersion);
  w.PutString(items_.ExternalId(row));
  std::string popularity;
  popularity_.EncodeItem(row, &popularity);
  w.PutString(popularity);
  codec().EncodeItem(row, out);
}

void Learner::EncodeGlobals(std::string* out) const {
  ByteWriter w(out);
  w.Put(kFormatVersion);
  w.PutString(algorithm_);
  w.Put(static_cast<int32_t>(config_.dim));
  w.Put(users_.size());
  w.Put(items_.size());
  w.Put(catalog_);
  w.Put(events_applied_);
  w.Put(events_filtered_);
  w.Put(users_expired_);
  w.Put(latest_ts_ms_);
  std::string popularity;
  popularity_.EncodeGlobals(&popularity);
  w.PutString(popularity);
}

namespace {

absl::Status CheckVersion(ByteReader& r, absl::string_view what) {
  uint8_t version = 0;
  if (!r.Get(&version)) return absl::DataLossError(absl::StrCat(what, ": empty value"));
  if (version != Learner::kFormatVersion) {
    return absl::DataLossError(absl::StrCat(what, ": unknown format version ",
                                            static_cast<int>(version), " (this build reads ",
                                            static_cast<int>(Learner::kFormatVersion), ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Learner::CheckRowsFit(absl::string_view what, int64_t users, int64_t items) const {
  // On top of the model's bytes: an id, its dictionary slots, a history or a popularity entry.
  constexpr int64_t kRowOverhead = 64;
  const int64_t need = users * (diagnostics().BytesPerUser() + kRowOverhead) +
                       items * (diagnostics().BytesPerItem() + kRowOverhead);
  int64_t limit = int64_t{config_.max_state_mb} << 20;
  if (limit == 0) limit = int64_t{sysconf(_SC_PHYS_PAGES)} * int64_t{sysconf(_SC_PAGESIZE)};
  if (limit <= 0 || need <= limit) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat(
      what, ": ", users, " users and ", items, " items would take ", (need + (1 << 20) - 1) >> 20,
      " MiB (rounded up), more than the ", limit >> 20,
      " MiB a state may take (memory.max_state_mb, else this machine's memory): a corrupt count"));
}

absl::Status Learner::BeginLoad(absl::string_view globals) {
  ByteReader r(globals);
  FRESHET_RETURN_IF_ERROR(CheckVersion(r, "state globals"));
  std::string algorithm, popularity;
  int32_t dim = 0, users = 0, items = 0, catalog = 0;
  r.GetString(&algorithm);
  r.Get(&dim);
  r.Get(&users);
  r.Get(&items);
  r.Get(&catalog);
  r.Get(&events_applied_);
  r.Get(&events_filtered_);
  r.Get(&users_expired_);
  r.Get(&latest_ts_ms_);
  r.GetString(&popularity);
  if (!r.done() || users < 0 || items < 0 || catalog < 0 || catalog > items ||
      events_applied_ < 0 || !popularity_.DecodeGlobals(popularity)) {
    return absl::DataLossError("state globals: malformed value");
  }
  if (algorithm != algorithm_) {
    return absl::FailedPreconditionError(
        absl::StrCat("the stored state was learnt by algorithm '", algorithm, "', not '",
                     algorithm_, "'; use a new data directory, or reset this one"));
  }
  if (dim != config_.dim) {
    return absl::FailedPreconditionError(
        absl::StrCat("the stored state has embedding dimension ", dim, ", the configuration says ",
                     config_.dim, "; use a new data directory, or reset this one"));
  }
  FRESHET_RETURN_IF_ERROR(CheckRowsFit("state globals", users, items));
  catalog_ = catalog;
  histories_.resize(static_cast<size_t>(users));
  popularity_.Resize(items);
  learning().Grow(users, items);
  loading_user_ids_.assign(static_cast<size_t>(users), std::string());
  loading_item_ids_.assign(static_cast<size_t>(items), std::string());
  return absl::OkStatus();
}

absl::Status Learner::LoadUser(int32_t row, absl::string_view value) {
  const std::string what = absl::StrCat("user row ", row);
  if (row < 0 || static_cast<size_t>(row) >= loading_user_ids_.size()) {
    return absl::DataLossError(
        absl::StrCat(what, ": beyond the stored user count ", loading_user_ids_.size()));
  }
  ByteReader r(value);
  FRESHET_RETURN_IF_ERROR(CheckVersion(r, what));
  absl::string_view id;
  if (!r.GetStringView(&id) || id.empty()) return absl::DataLossError(what + ": malformed id");
  const size_t used = static_cast<size_t>(id.data() + id.size() - value.data());
  FRESHET_RETURN_IF_ERROR(codec().DecodeUser(row, value.substr(used)));
  loading_user_ids_[row].assign(id.data(), id.size());
  return absl::OkStatus();
}

absl::Status Learner::LoadHistory(int32_t row, absl::string_view value) {
  const std::string what = absl::StrCat("history of user row ", row);
  if (row < 0 || static_cast<size_t>(row) >= histories_.size()) {
    return absl::DataLossError(absl::StrCat(what, ": beyond the stored user count"));
  }
  ByteReader r(value);
  FRESHET_RETURN_IF_ERROR(CheckVersion(r, what));
  if (!histories_[row].Decode(value.substr(1), static_cast<int32_t>(loading_item_ids_.size()))) {
    return absl::DataLossError(what + ": malformed value");
  }
  return absl::OkStatus();
}

absl::Status Learner::LoadItem(int32_t row, absl::string_view value) {
  const std::string what = absl::StrCat("item row ", row);
  if (row < 0 || static_cast<size_t>(row) >= loading_item_ids_.size()) {
    return absl::DataLossError(
        absl::StrCat(what, ": beyond the stored item count ", loading_item_ids_.size()));
  }
  ByteReader r(value);
  FRESHET_RETURN_IF_ERROR(CheckVersion(r, what));
  absl::string_view id, popularity;
  if (!r.GetStringView(&id) || id.empty() || !r.GetStringView(&popularity) ||
      !Popularity::CheckItem(popularity)) {
    return absl::DataLossError(what + ": malformed id or popularity");
  }
  // The popularity part is checked first and written after the model's: a refused row changes
  // neither.
  const size_t used = static_cast<size_t>(popularity.data() + popularity.size() - value.data());
  FRESHET_RETURN_IF_ERROR(codec().DecodeItem(row, value.substr(used)));
  popularity_.DecodeItem(row, popularity);
  loading_item_ids_[row].assign(id.data(), id.size());
  return absl::OkStatus();
}

absl::Status Learner::FinishLoad() {
  const int32_t users = static_cast<int32_t>(loading_user_ids_.size());
  const int32_t items = static_cast<int32_t>(loading_item_ids_.size());
  for (int32_t row = 0; row < items; ++row) {
    if (loading_item_ids_[row].empty()) {
      return absl::DataLossError(absl::StrCat("item row ", row, " of ", items, " is missing"));
    }
  }
  for (int32_t row = 0; row < users; ++row) {
    if (loading_user_ids_[row].empty()) histories_[row] = UserHistory();  // a free row
  }
  users_.Restore(std::move(loading_user_ids_));
  items_.Restore(std::move(loading_item_ids_));
  loading_user_ids_.clear();
  loading_item_ids_.clear();
  codec().FinishLoad(users, catalog_, events_applied_);
  popularity_rescales_ = popularity_.rescales();
  return absl::OkStatus();
}

MemoryUsage Learner::Memory() const {
  MemoryUsage m;
  m.users = users_.live();
  m.items = items_.live();
  // Hash slots: 8 bytes each, at most half full, so up to 4 slots per id.
  constexpr int64_t kSlotBytes = 8 * 3;
  int64_t history_heap = 0, user_ids = 0;
  for (int32_t row = 0; row < users_.size(); ++row) {
    history_heap += static_cast<int64_t>(histories_[row].HeapBytes());
    const std::string& id = users_.ExternalId(row);
    user_ids += static_cast<int64_t>(sizeof(std::string)) +
                (id.capacity() > 15 ? static_cast<int64_t>(id.capacity()) + 1 : 0);
  }
  const int64_t user_rows = users_.size();
  m.user_bytes = user_rows * (diagnostics().BytesPerUser() +
                              static_cast<int64_t>(sizeof(UserHistory)) + kSlotBytes) +
                 history_heap + user_ids;
  int64_t item_ids = 0;
  for (int32_t row = 0; row < items_.size(); ++row) {
    const std::string& id = items_.ExternalId(row);
    item_ids += static_cast<int64_t>(sizeof(std::string)) +
                (id.capacity() > 15 ? static_cast<int64_t>(id.capacity()) + 1 : 0);
  }
  m.item_bytes = static_cast<int64_t>(items_.size()) *
                     (diagnostics().BytesPerItem() +
                      static_cast<int64_t>(sizeof(float) + sizeof(int64_t)) + kSlotBytes) +
                 item_ids;
  return m;
}

}  // namespace freshet::learner
