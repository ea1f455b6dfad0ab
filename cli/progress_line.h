// ProgressLine: a single self-overwriting status line on a terminal (events, rate, percent, ETA).
// Silent when stderr is not a terminal, so logs and CI output stay clean.
#ifndef FRESHET_CLI_PROGRESS_LINE_H_
#define FRESHET_CLI_PROGRESS_LINE_H_

#include <cstdint>
#include <string>

namespace freshet::cli {

// Not thread-safe.
class ProgressLine {
 public:
  // `enabled` false makes every call a no-op; by default it follows isatty(stderr).
  ProgressLine();
  explicit ProgressLine(bool enabled) : enabled_(enabled) {}

  // Redraws: "<label> 45,000/100,000 events  45.0%  1.2M ev/s  ETA 3s". total <= 0: no percent.
  void Update(const std::string& label, int64_t done, int64_t total, double seconds);
  // Ends the line (newline) if anything was drawn.
  void Finish();

  bool enabled() const { return enabled_; }

 private:
  bool enabled_;
  bool drawn_ = false;
};

// 1234567 -> "1,234,567".
std::string WithThousands(int64_t value);
// 1234567.0 -> "1.23M".
std::string HumanRate(double per_second);

}  // namespace freshet::cli

#endif  // FRESHET_CLI_PROGRESS_LINE_H_
