#include "engine/engine.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "engine/durable_state.h"
#include "engine/exactly_once_filter.h"
#include "engine/replicas/replica_sync.h"

namespace freshet::engine {

Engine::Engine(const EngineOptions& options) : options_(options) {}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Open(const EngineOptions& options,
                                                     const kernels::Backend* backend) {
  std::unique_ptr<Engine> engine(new Engine(options));
  FRESHET_ASSIGN_OR_RETURN(engine->model_,
                           LiveModel::Create(options.algorithm, options.config, backend));
  engine->reader_ = engine->model_.get();
  engine->filter_ =
      std::make_unique<ExactlyOnceFilter>(static_cast<size_t>(options.config.idempotency_keys));
  if (options.replicas != nullptr) {
    // Before the load: the first exchange sends every row as it is, loaded or not.
    FRESHET_RETURN_IF_ERROR(engine->model_->WithLearnerExclusive(
        [](learner::Learner& l) { return l.EnableReplicas(); }));
    engine->replicas_ = std::make_unique<ReplicaSync>(options.replicas);
  }
  LoadedState loaded;
  if (!options.data_dir.empty()) {
    DurableState::Options durable;
    durable.data_dir = options.data_dir;
    durable.algorithm = options.algorithm;
    durable.config = options.config;
    durable.reset = options.reset;
    FRESHET_ASSIGN_OR_RETURN(engine->durable_, DurableState::Open(durable, engine->model_.get(),
                                                                  engine->filter_.get(), &loaded));
    engine->model_->SetHiddenItems(loaded.hidden_items);
    engine->counting_changes_ = loaded.counting_changes;
    const absl::Time catalog_start = absl::Now();
    FRESHET_RETURN_IF_ERROR(engine->durable_->LoadCatalog(&engine->catalog_));
    if (engine->catalog_.size() > 0) {
      LogInfo(absl::StrCat(
          "catalog: ", engine->catalog_.size(), " items loaded from the store in ",
          absl::FormatDuration(absl::Trunc(absl::Now() - catalog_start, absl::Milliseconds(1)))));
    }
    engine->model_->PublishModelVersion(engine->durable_->queued_version());
  } else {
    engine->model_->CountRoundsAsVersion();
  }
  engine->ingest_ = std::make_unique<IngestLoop>(
      options.config, backend, engine->model_.get(), engine->filter_.get(), engine->durable_.get(),
      engine->replicas_.get(), &engine->catalog_, loaded.sources);
  engine->model_->Start();
  return engine;
}

Engine::~Engine() {
  if (model_ != nullptr) model_->Stop();  // answers what is queued before anything goes
  ingest_.reset();
  durable_.reset();  // the persister, then the store
}

absl::Status Engine::AddSource(std::unique_ptr<stream::EventSource> source,
                               std::vector<std::string> stream_names, SourceOptions options) {
  return ingest_->AddSource(std::move(source), std::move(stream_names), options);
}

const std::vector<std::string>& Engine::stream_names() const { return ingest_->stream_names(); }

int64_t Engine::AppliedOffset(int32_t stream, int32_t partition) const {
  return filter_->Applied(stream, partition);
}

absl::Status Engine::Run(const std::atomic<bool>& stop, const RunOptions& options) {
  return ingest_->Run(stop, options);
}

int64_t Engine::ApplyDirect(absl::Span<const stream::Event> events) {
  // With replicas, not between an exchange's taking of this rank's changes and its merge (the
  // merge rewrites the rows it merges; changes made in between would be lost or sent wrong).
  std::optional<MutexLock> exchange;
  if (replicas_ != nullptr) exchange.emplace(&replicas_->exchange_mutex());
  const bool any_id = std::any_of(events.begin(), events.end(),
                                  [](const stream::Event& e) { return !e.id.empty(); });
  int64_t learnt = static_cast<int64_t>(events.size());
  if (!any_id) {
    model_->Apply(events);  // in slices, like the ingest loop
  } else {
    // Ids are remembered and their events learnt under one exclusive hold of the learner, so a
    // persisted cut (which takes it shared) never holds an id without its event.
    learnt = model_->ApplyAdmitted(events,
                                   [this](const stream::Event& e) { return filter_->AdmitId(e); });
  }
  direct_.fetch_add(learnt, std::memory_order_relaxed);
  // No source can deliver these again: they are written with the next prompt flush.
  if (durable_ != nullptr && learnt > 0) durable_->FlushPromptly();
  return static_cast<int64_t>(events.size()) - learnt;
}

absl::StatusOr<int64_t> Engine::UpsertCatalog(absl::Span<const CatalogEntry> entries) {
  MutexLock lock(&catalog_write_mu_);
  std::vector<std::pair<std::string, std::string>> merged = catalog_.Merge(entries);
  // Only what changes is written (a restart that loads the same file again writes nothing).
  merged.erase(std::remove_if(merged.begin(), merged.end(),
                              [&](const auto& entry) {
                                return catalog_.Encoded(entry.first) == entry.second;
                              }),
               merged.end());
  const size_t changed = merged.size();
  size_t stored = changed;
  const absl::Status written = durable_ != nullptr && !merged.empty()
                                   ? durable_->WriteCatalog(merged, &stored)
                                   : absl::OkStatus();
  // Answers show what the store holds: on a failed write, the entries stored before it (a restart
  // would show them), and not the rest.
  merged.resize(stored);
  catalog_.Put(std::move(merged));
  if (!written.ok()) {
    return absl::Status(
        written.code(),
        absl::StrCat("stored ", stored, " of the ", changed,
                     " catalog entries that change an item, and not the rest (sending the same "
                     "entries again stores them): ",
                     written.message()));
  }
  return static_cast<int64_t>(changed);
}

absl::Status Engine::SetItemHidden(const std::string& item, bool hidden) {
  MutexLock lock(&hidden_write_mu_);
  std::vector<std::string> items;
  if (!model_->WithItemHidden(item, hidden, &items)) return absl::OkStatus();
  // Stored first: an answer never leaves out an item a restart would show again.
  if (durable_ != nullptr) FRESHET_RETURN_IF_ERROR(durable_->WriteHiddenItems(items));
  model_->SetHiddenItems(std::move(items));
  return absl::OkStatus();
}

EngineStats Engine::stats() const {
  EngineStats s;
  static_cast<ModelStats&>(s) = model_->stats();
  if (replicas_ != nullptr) {
    const ReplicaStats r = replicas_->stats();
    s.replica_exchanges = r.exchanges;
    s.replica_rows_received = r.rows_received;
    s.replica_items_added = r.items_added;
    s.replica_last_exchange_ms = r.last_exchange_ms;
  }
  const IngestStats ingest = ingest_->stats();
  s.events_polled = ingest.events_polled;
  s.source_errors = ingest.source_errors;
  s.events_malformed = ingest.events_malformed;
  s.duplicates_dropped = filter_->duplicates_dropped();
  s.duplicate_ids_dropped = filter_->duplicate_ids_dropped();
  s.idempotency_keys = filter_->ids_held();
  s.events_direct = direct_.load(std::memory_order_relaxed);
  if (durable_ != nullptr) s.persister = durable_->stats();
  return s;
}

absl::Status Engine::PersistenceHealth() const {
  return durable_ != nullptr ? durable_->Health() : absl::OkStatus();
}

absl::Status Engine::IngestHealth(absl::Duration stall) const { return ingest_->Health(stall); }

namespace {
absl::Status NoDataDir() { return absl::FailedPreconditionError("no --data-dir"); }
}  // namespace

absl::StatusOr<SnapshotManifest> Engine::CreateSnapshot(const std::string& id) {
  if (durable_ == nullptr) {
    return absl::FailedPreconditionError("no --data-dir: nothing to snapshot");
  }
  return durable_->CreateSnapshot(id);
}

absl::StatusOr<std::vector<SnapshotManifest>> Engine::ListSnapshots() const {
  if (durable_ == nullptr) return NoDataDir();
  return durable_->ListSnapshots();
}

absl::StatusOr<SnapshotManifest> Engine::InspectSnapshot(const std::string& id) const {
  if (durable_ == nullptr) return NoDataDir();
  return durable_->InspectSnapshot(id);
}

absl::Status Engine::DeleteSnapshot(const std::string& id) {
  if (durable_ == nullptr) return NoDataDir();
  return durable_->DeleteSnapshot(id);
}

absl::Status Engine::RestoreSnapshot(const std::string& id, absl::Duration timeout) {
  if (durable_ == nullptr) {
    return absl::FailedPreconditionError("no --data-dir: nothing to restore");
  }
  FRESHET_RETURN_IF_ERROR(durable_->InspectSnapshot(id).status());  // fail fast, before queueing
  return ingest_->RequestRestore(id, timeout);
}

void Engine::SetSnapshotHookForTesting(std::function<void()> hook) {
  if (durable_ != nullptr) durable_->SetSnapshotHookForTesting(std::move(hook));
}

void Engine::SetRestoreHookForTesting(std::function<void()> hook) {
  if (durable_ != nullptr) durable_->SetRestoreHookForTesting(std::move(hook));
}

}  // namespace freshet::engine
