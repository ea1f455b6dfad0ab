#include "cli/progress_line.h"

#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace freshet::cli {

ProgressLine::ProgressLine() : enabled_(isatty(STDERR_FILENO) == 1) {}

std::string WithThousands(int64_t value) {
  std::string digits = absl::StrCat(value < 0 ? -value : value);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return value < 0 ? "-" + out : out;
}

std::string HumanRate(double v) {
  if (v >= 1e6) return absl::StrFormat("%.2fM", v / 1e6);
  if (v >= 1e3) return absl::StrFormat("%.1fk", v / 1e3);
  return absl::StrFormat("%.0f", v);
}

void ProgressLine::Update(const std::string& label, int64_t done, int64_t total, double seconds) {
  if (!enabled_) return;
  const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0.0;
  std::string line = absl::StrFormat("%s %s", label, WithThousands(done));
  if (total > 0) {
    const double eta = rate > 0 ? static_cast<double>(total - done) / rate : 0.0;
    absl::StrAppendFormat(&line, "/%s events  %5.1f%%  %s ev/s  ETA %.0fs", WithThousands(total),
                          100.0 * static_cast<double>(done) / static_cast<double>(total),
                          HumanRate(rate), eta);
  } else {
    absl::StrAppendFormat(&line, " events  %s ev/s", HumanRate(rate));
  }
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressLine::Finish() {
  if (enabled_ && drawn_) std::fputc('\n', stderr);
  drawn_ = false;
}

}  // namespace freshet::cli
