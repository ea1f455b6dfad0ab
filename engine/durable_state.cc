#include "engine/durable_state.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "engine/learner_rows.h"

namespace freshet::engine {

namespace {

// ": it was written with --set ..." naming the blend settings that fix its row layout, read from
// the configuration stored beside the state; empty where that text is missing or does not give
// the stored fingerprint (so the settings named are the ones the rows were written with).
std::string WrittenBlendLayout(absl::string_view algorithm, const store::StoreMeta& meta) {
  if (algorithm != "blend" || meta.config_toml.empty()) return "";
  absl::StatusOr<config::Config> written = config::ParseConfig(meta.config_toml, "stored");
  if (!written.ok()) return "";
  // A key that joined the fingerprint later reads, in a configuration written before it, as
  // today's default: try what such states were written with.
  bool found = false;
  for (int older = 0; older < 4 && !found; ++older) {
    config::Config c = *written;
    // Written before blend.sparse_scale: the sparse scores were divided by their s.d.
    if ((older & 1) != 0) c.blend_sparse_scale = "sd";
    if ((older & 2) != 0) {
      // Written before topics had a table of its own: topics was fitted to the profile table.
      c.blend_topics_user_exponent = c.blend_profile_user_exponent;
      c.blend_topics_window = c.history_recent;
      c.blend_topics_unit_weights = false;
    }
    if (store::StateFingerprint("blend", c) == meta.fingerprint) {
      *written = c;
      found = true;
    }
  }
  if (!found) return "";
  // The defaults before profile and ease joined them are config/blend-fast.toml's.
  const bool former_defaults =
      written->blend_features == "bpr,cooc,history,transitions,popularity,trending,ials" &&
      written->blend_cold_events == config::Config{}.blend_cold_events &&
      written->blend_session_start == config::Config{}.blend_session_start;
  return absl::StrCat(
      ": it was written with --set blend.features=", written->blend_features,
      " --set blend.cold_events=", written->blend_cold_events,
      " --set blend.session_start=", written->blend_session_start ? "true" : "false",
      config::BlendNamesFeature(*written, "topics")
          ? absl::StrCat(" --set blend.topics_user_exponent=", written->blend_topics_user_exponent,
                         " --set blend.topics_window=", written->blend_topics_window,
                         " --set blend.topics_unit_weights=",
                         written->blend_topics_unit_weights ? "true" : "false")
          : "",
      " --set blend.sparse_scale=", written->blend_sparse_scale,
      former_defaults ? " (blend's defaults before profile and ease joined them: "
                        "--config config/blend-fast.toml opens it)"
                      : "");
}

LoadedState ToLoadedState(const store::StoreMeta& meta) {
  LoadedState s;
  s.events_applied = meta.events_applied;
  s.model_version = meta.model_version;
  s.sources = meta.sources;
  s.hidden_items = meta.hidden_items;
  return s;
}

}  // namespace

absl::StatusOr<std::unique_ptr<DurableState>> DurableState::Open(const Options& options,
                                                                 LiveModel* model,
                                                                 ExactlyOnceFilter* filter,
                                                                 LoadedState* loaded) {
  const absl::Time start = absl::Now();
  std::unique_ptr<DurableState> state(new DurableState(options));
  FRESHET_ASSIGN_OR_RETURN(store::DataDirLock lock, store::DataDirLock::Acquire(options.data_dir));
  state->lock_.emplace(std::move(lock));
  FRESHET_RETURN_IF_ERROR(store::RecoverDataDir(options.data_dir));
  MutexLock store_lock(&state->store_mu_);
  FRESHET_ASSIGN_OR_RETURN(const store::StoreMeta meta, state->Attach(options.reset));
  if (!meta.empty) {
    if (meta.algorithm != options.algorithm || meta.dim != options.config.dim) {
      return absl::FailedPreconditionError(
          absl::StrCat("data directory ", options.data_dir, " holds state of algorithm '",
                       meta.algorithm, "' with dimension ", meta.dim, ", but this run asks for '",
                       options.algorithm, "' with dimension ", options.config.dim,
                       "; use another --data-dir, or --reset to discard the stored state"));
    }
    const bool legacy_blend = options.algorithm == "blend" &&
                              meta.fingerprint == store::LegacyBlendFingerprint(options.config);
    if (meta.fingerprint != store::StateFingerprint(options.algorithm, options.config) &&
        !legacy_blend) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data directory ", options.data_dir,
          " was written with a different row layout (e.g. bpr.tied_context, or blend.features "
          "and its weight sets: blend.cold_events, blend.session_start, and whether topics has "
          "a table of its own: blend.topics_user_exponent, blend.topics_window, "
          "blend.topics_unit_weights; blend.sparse_scale)",
          WrittenBlendLayout(options.algorithm, meta),
          "; run with the settings it was written with, use another --data-dir, or --reset to "
          "discard the stored state"));
    }
    const store::StateStore* store = state->store_.get();
    const absl::Status load = model->WithLearnerExclusive(
        [store](learner::Learner& l) { return LoadLearner(*store, l); });
    if (!load.ok() && legacy_blend && absl::IsDataLoss(load)) {
      // Its fingerprint does not say which components wrote it.
      return absl::Status(
          load.code(),
          absl::StrCat(load.message(), " (this blend state does not record its blend.features; ",
                       "if they differ from this run's '", options.config.blend_features,
                       "' — the defaults gained ials, then the cold and session-start weight "
                       "sets — run with the ones it was written with, e.g. --set "
                       "blend.features=bpr,cooc,history,transitions,popularity,trending --set "
                       "blend.cold_events=0 --set blend.session_start=false, or --reset to "
                       "discard it)"));
    }
    FRESHET_RETURN_IF_ERROR(load);
  }
  FRESHET_RETURN_IF_ERROR(state->LoadPositions(meta, *filter));
  *loaded = ToLoadedState(meta);
  if (!meta.empty && !meta.config_toml.empty()) {
    absl::StatusOr<config::Config> counted = config::ParseConfig(meta.config_toml, "stored");
    if (counted.ok()) {
      loaded->counting_changes =
          config::CountingChanges(options.algorithm, *counted, options.config);
    } else {
      LogWarning(absl::StrCat("data directory ", options.data_dir,
                              ": the configuration stored with the state does not parse (",
                              counted.status().message(),
                              "); whether its tables were counted with this run's settings is "
                              "not known"));
    }
  }
  if (!loaded->counting_changes.empty()) {
    LogWarning(absl::StrCat(
        "data directory ", options.data_dir, " was counted with other settings than this run's (",
        absl::StrJoin(loaded->counting_changes, ", "),
        "): what it has counted stays and it goes on counting with this run's settings, so it "
        "mixes both; run with the former values to keep it consistent, or --reset to count "
        "afresh. This run's settings are now stored with the state"));
  }
  if (meta.empty || !loaded->counting_changes.empty()) {
    // A new state states what it is at once, so even a snapshot taken before the first flush
    // knows its algorithm and dimension. A stored one keeps its fingerprint (its row layout, which
    // has just loaded) and records the settings it is counted with from here on.
    std::unique_ptr<store::StateBatch> identity = state->store_->NewBatch();
    identity->PutIdentity(
        options.algorithm, options.config.dim,
        meta.empty ? store::StateFingerprint(options.algorithm, options.config) : meta.fingerprint,
        config::ToToml(options.config));
    FRESHET_RETURN_IF_ERROR(state->store_->Write(identity.get()));
  }
  if (!meta.empty) {
    const ModelStats s = model->stats();
    LogInfo(absl::StrCat("loaded ", s.users, " users, ", s.items, " items, ", s.events_applied,
                         " events applied (model version ", meta.model_version, ") from ",
                         options.data_dir, ", opened in ",
                         absl::FormatDuration(absl::Now() - start)));
  }
  return state;
}

DurableState::~DurableState() {
  persister_.reset();  // before the store it writes to
  MutexLock lock(&store_mu_);
  store_.reset();
}

absl::StatusOr<store::StoreMeta> DurableState::Attach(bool reset) {
  store::StateStore::Options store_options;
  store_options.sync = options_.config.store_sync;
  store_options.accept_wal_loss = options_.config.store_accept_wal_loss;
  FRESHET_ASSIGN_OR_RETURN(
      store_, store::StateStore::Open(store::LiveDbPath(options_.data_dir), store_options));
  FRESHET_ASSIGN_OR_RETURN(store::StoreMeta meta, store_->ReadMeta());
  if (reset && !meta.empty) {
    LogWarning(absl::StrCat("--reset: discarding the state in ", options_.data_dir, " (",
                            meta.events_applied, " events applied, algorithm ", meta.algorithm,
                            ", d=", meta.dim, ")"));
    FRESHET_RETURN_IF_ERROR(store_->Clear());
    meta = store::StoreMeta();
  }
  store::Persister::Options persist;
  persist.flush_interval = absl::Milliseconds(options_.config.flush_interval_ms);
  persist.prompt_flush_interval = absl::Milliseconds(options_.config.direct_flush_interval_ms);
  auto persister = std::make_unique<store::Persister>(store_.get(), persist, meta.model_version);
  persister->Start();
  MutexLock lock(&persister_mu_);
  persister_ = std::move(persister);
  return meta;
}

absl::Status DurableState::LoadPositions(const store::StoreMeta& meta, ExactlyOnceFilter& filter) {
  const store::StateStore* store = store_.get();
  store::Persister* persister = persister_.get();
  return filter.WithPositions([&](stream::AppliedPositions& applied) -> absl::Status {
    applied.Clear();
    for (const store::StoredPosition& p : meta.positions) {
      applied.Set(p.stream, p.partition, p.offset);
    }
    applied.ClearIds();
    int64_t lowest = -1;  // event ids stored: numbers [lowest, next)
    FRESHET_RETURN_IF_ERROR(store->LoadEventIds([&](int64_t seq, absl::string_view id) {
      if (lowest < 0) lowest = seq;
      applied.RestoreId(seq, id);
    }));
    persister->SetStoredEventIds(lowest < 0 ? applied.next_id_seq() : lowest,
                                 applied.next_id_seq());
    return absl::OkStatus();
  });
}

bool DurableState::MaybeFlush(LiveModel& model, ExactlyOnceFilter& filter,
                              const std::vector<std::string>& stream_names) {
  return WithCut(model, filter, [&](learner::Learner& l, const stream::AppliedPositions& applied) {
    LearnerRows rows(l);
    return persister_->MaybeFlush(rows, applied, stream_names);
  });
}

void DurableState::FlushPromptly() {
  MutexLock lock(&persister_mu_);
  if (persister_ != nullptr) persister_->FlushPromptly();
}

absl::Status DurableState::Flush(LiveModel& model, ExactlyOnceFilter& filter,
                                 const std::vector<std::string>& stream_names,
                                 absl::Duration timeout) {
  return WithCut(model, filter, [&](learner::Learner& l, const stream::AppliedPositions& applied) {
    LearnerRows rows(l);
    return persister_->Flush(rows, applied, stream_names, timeout);
  });
}

absl::Status DurableState::Restore(const std::string& id, const kernels::Backend* backend,
                                   bool replicas, LiveModel& model, ExactlyOnceFilter& filter,
                                   const std::vector<std::string>& stream_names,
                                   LoadedState* loaded) {
  store::SnapshotStore snapshots(options_.data_dir);
  FRESHET_ASSIGN_OR_RETURN(store::SnapshotManifest manifest,
                           snapshots.Inspect(id, /*verify=*/true));
  if (manifest.algorithm != options_.algorithm || manifest.dim != options_.config.dim) {
    return absl::FailedPreconditionError(absl::StrCat(
        "snapshot ", id, " holds algorithm '", manifest.algorithm, "' d=", manifest.dim,
        "; this server runs '", options_.algorithm, "' d=", options_.config.dim));
  }
  // Load the snapshot into a new learner first (read-only, from the snapshot's own files), so a
  // failure leaves the running state as it was.
  FRESHET_ASSIGN_OR_RETURN(std::unique_ptr<learner::Learner> fresh,
                           learner::Learner::Create(options_.algorithm, options_.config, backend));
  {
    store::StateStore::Options ro;
    ro.read_only = true;
    FRESHET_ASSIGN_OR_RETURN(std::unique_ptr<store::StateStore> snapshot_db,
                             store::StateStore::Open(snapshots.DbPath(id), ro));
    FRESHET_RETURN_IF_ERROR(LoadLearner(*snapshot_db, *fresh));
  }
  // Its first exchange rejoins the group with the snapshot's item rows.
  if (replicas) FRESHET_RETURN_IF_ERROR(fresh->EnableReplicas());
  // Everything learnt so far is written, then the snapshot replaces the live database.
  MutexLock store_lock(&store_mu_);
  FRESHET_RETURN_IF_ERROR(Flush(model, filter, stream_names, absl::Seconds(60)));
  if (restore_hook_) restore_hook_();
  {
    MutexLock persister_lock(&persister_mu_);
    persister_.reset();
  }
  store_.reset();
  const absl::Status swapped = snapshots.RestoreOffline(id);
  FRESHET_ASSIGN_OR_RETURN(const store::StoreMeta meta, Attach(/*reset=*/false));
  FRESHET_RETURN_IF_ERROR(swapped);  // the old database is live again
  absl::Status positions;
  model.Replace(std::move(fresh), [&] {
    store_mu_.AssertHeld();  // held by this function, around the call
    positions = LoadPositions(meta, filter);
  });
  *loaded = ToLoadedState(meta);
  return positions;
}

absl::Status DurableState::WriteHiddenItems(const std::vector<std::string>& hidden) {
  MutexLock lock(&store_mu_);
  // Written at once (not with the next batch): availability is an operator's decision, not
  // learnt state, and must survive a restart.
  std::unique_ptr<store::StateBatch> batch = store_->NewBatch();
  batch->PutHiddenItems(hidden);
  return store_->Write(batch.get());
}

absl::Status DurableState::WriteCatalog(
    const std::vector<std::pair<std::string, std::string>>& encoded, size_t* stored) {
  MutexLock lock(&store_mu_);
  // In batches of bounded size: a catalog of millions of items is not one write.
  constexpr size_t kPerBatch = 4096;
  *stored = 0;
  for (size_t begin = 0; begin < encoded.size(); begin += kPerBatch) {
    std::unique_ptr<store::StateBatch> batch = store_->NewBatch();
    const size_t end = std::min(encoded.size(), begin + kPerBatch);
    for (size_t i = begin; i < end; ++i) batch->PutCatalogItem(encoded[i].first, encoded[i].second);
    FRESHET_RETURN_IF_ERROR(store_->Write(batch.get()));
    *stored = end;
  }
  return absl::OkStatus();
}

absl::Status DurableState::LoadCatalog(Catalog* catalog) {
  absl::flat_hash_map<std::string, std::string> entries;
  std::vector<std::pair<std::string, std::string>> fields;
  {
    MutexLock lock(&store_mu_);
    FRESHET_RETURN_IF_ERROR(
        store_->LoadCatalog([&](absl::string_view item, absl::string_view encoded) {
          if (!DecodeCatalogFields(encoded, &fields)) {
            return absl::DataLossError(
                absl::StrCat("the stored catalog entry of item '", item, "' is damaged"));
          }
          entries.emplace(item, encoded);
          return absl::OkStatus();
        }));
  }
  catalog->Reset(std::move(entries));
  return absl::OkStatus();
}

absl::StatusOr<store::SnapshotManifest> DurableState::CreateSnapshot(const std::string& id) {
  MutexLock lock(&store_mu_);  // not during a restore's swap
  if (snapshot_hook_) snapshot_hook_();
  return store::SnapshotStore(options_.data_dir).Create(*store_, id);
}

absl::StatusOr<std::vector<store::SnapshotManifest>> DurableState::ListSnapshots() const {
  return store::SnapshotStore(options_.data_dir).List();
}

absl::StatusOr<store::SnapshotManifest> DurableState::InspectSnapshot(const std::string& id) const {
  return store::SnapshotStore(options_.data_dir).Inspect(id, /*verify=*/true);
}

absl::Status DurableState::DeleteSnapshot(const std::string& id) {
  return store::SnapshotStore(options_.data_dir).Delete(id);
}

absl::Status DurableState::Health() const {
  MutexLock lock(&persister_mu_);
  return persister_ != nullptr ? persister_->Health() : absl::OkStatus();
}

store::PersisterStats DurableState::stats() const {
  MutexLock lock(&persister_mu_);
  return persister_ != nullptr ? persister_->stats() : store::PersisterStats();
}

}  // namespace freshet::engine
