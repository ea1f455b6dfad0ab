#include "cli/stored_state.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "config/config.h"
#include "engine/learner_rows.h"

namespace freshet::cli {

absl::StatusOr<StoredState> OpenStoredState(const std::string& db_path, bool load_rows) {
  StoredState state;
  store::StateStore::Options options;
  options.read_only = true;
  FRESHET_ASSIGN_OR_RETURN(std::unique_ptr<store::StateStore> db,
                           store::StateStore::Open(db_path, options));
  FRESHET_ASSIGN_OR_RETURN(state.meta, db->ReadMeta());
  state.disk_bytes = db->SizeOnDisk();
  if (!load_rows || state.meta.empty) return state;
  config::Config config;
  if (!state.meta.config_toml.empty()) {
    auto parsed =
        config::ParseConfig(state.meta.config_toml, absl::StrCat(db_path, " meta 'config'"));
    if (!parsed.ok()) {
      return absl::DataLossError(
          absl::StrCat(db_path, ": meta key 'config': ", parsed.status().message()));
    }
    config = *parsed;
  }
  config.dim = state.meta.dim;
  FRESHET_ASSIGN_OR_RETURN(state.backend, kernels::CreateBackend("cpu"));
  FRESHET_ASSIGN_OR_RETURN(
      state.learner, learner::Learner::Create(state.meta.algorithm, config, state.backend.get()));
  FRESHET_RETURN_IF_ERROR(engine::LoadLearner(*db, *state.learner));
  return state;
}

}  // namespace freshet::cli
