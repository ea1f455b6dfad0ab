// `freshet replay`: prequential (test-then-train) evaluation of one or more models over a log file.
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/commands.h"
#include "cli/common_flags.h"
#include "cli/progress_line.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "kernels/backend.h"
#include "learner/eval/prequential_evaluator.h"
#include "learner/eval/replay_report.h"
#include "learner/learner.h"

namespace freshet::cli {
namespace {

// Models to run, in order, popularity last (always present: it is the baseline).
absl::StatusOr<std::vector<std::string>> ModelList(const std::string& spec) {
  std::vector<std::string> models;
  for (absl::string_view name : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    const std::string model(absl::StripAsciiWhitespace(name));
    bool known = false;
    for (const std::string& valid : learner::AlgorithmNames()) known = known || valid == model;
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown algorithm '", model,
                       "' in --algo; valid: ", absl::StrJoin(learner::AlgorithmNames(), ", ")));
    }
    if (model != "popularity" && std::find(models.begin(), models.end(), model) == models.end()) {
      models.push_back(model);
    }
  }
  models.push_back("popularity");
  return models;
}

absl::Status Replay(const ReplayFlags& flags) {
  FRESHET_ASSIGN_OR_RETURN(config::Config config, LoadConfig(flags.config));
  FRESHET_ASSIGN_OR_RETURN(std::vector<std::string> models, ModelList(flags.algorithms));
  const std::string backend_name = flags.backend.empty() ? config.backend : flags.backend;
  std::string note;
  FRESHET_ASSIGN_OR_RETURN(std::unique_ptr<kernels::Backend> backend,
                           kernels::CreateBackend(backend_name, &note));
  if (!note.empty()) LogInfo(note);

  ProgressLine progress(!flags.quiet && ProgressLine().enabled());
  FRESHET_ASSIGN_OR_RETURN(std::unique_ptr<stream::FileEventSource> source,
                           OpenDataFile(flags.data, config));
  const stream::SourceStats stats = source->stats();
  // Metrics over nothing would read as a model that recommends nothing well.
  FRESHET_RETURN_IF_ERROR(RequireEvents(*source, "replay"));
  LogInfo(absl::StrCat("replaying ", WithThousands(source->size()), " events from ", source->Name(),
                       stats.malformed > 0
                           ? absl::StrCat(" (", stats.malformed, " malformed records skipped)")
                           : ""));

  learner::ReplayReport report;
  report.dataset = std::filesystem::path(flags.data.path).filename().string();
  report.events = source->size();
  report.k = flags.k > 0 ? flags.k : config.replay_k;
  report.evaluated = !flags.no_eval;
  report.malformed = stats.malformed;

  for (const std::string& model : models) {
    source->Rewind();
    FRESHET_ASSIGN_OR_RETURN(std::unique_ptr<learner::Learner> learner,
                             learner::Learner::Create(model, config, backend.get()));
    learner::EvaluatorOptions options;
    options.k = report.k;
    options.evaluate = !flags.no_eval;
    options.windows = flags.windows > 0 ? flags.windows : config.replay_windows;
    options.total_events = source->size();
    options.stability_every = flags.stability_every;
    const std::string label = absl::StrCat("[", model, "]");
    options.progress = [&](const learner::ReplayProgress& p) {
      progress.Update(label, p.done, p.total, p.seconds);
    };
    FRESHET_ASSIGN_OR_RETURN(learner::ReplayRun run,
                             learner::RunPrequential(*learner, *source, options));
    progress.Finish();
    report.runs.push_back(std::move(run));
  }

  std::fputs(learner::SummaryTable(report).c_str(), stdout);
  std::fflush(stdout);
  if (!flags.report_dir.empty()) {
    FRESHET_RETURN_IF_ERROR(learner::WriteReport(report, flags.report_dir));
    LogInfo(absl::StrCat("report written to ", flags.report_dir, "/report.json and report.html"));
  }
  return absl::OkStatus();
}

}  // namespace

int RunReplay(const ReplayFlags& flags) {
  const absl::Status status = Replay(flags);
  if (!status.ok()) {
    PrintError(status);
    return 1;
  }
  return 0;
}

}  // namespace freshet::cli
