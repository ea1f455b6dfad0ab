// The HTTP server's own cost: HttpServer with one trivial route, driven by an external load
// generator (wrk), reporting requests per server CPU-second from getrusage over its lifetime.
//
// Workload: GET /hello -> 200 {"hello":"world"} (application/json), keep-alive. Any other path is
// the server's 404 JSON. With --metrics, per-route metrics are recorded (GET /metrics renders
// them), so the cost of instrumentation can be compared.
//
// Flags: --port N (0: pick a free one; default 0)  --io_threads N (2)  --max_in_flight N (4096)
//        --metrics  --seconds S (stop after S seconds; default: run until SIGINT/SIGTERM)
//
// Output (stdout, JSON lines): at start {"listening":PORT}; at the end
//   {"requests":N,"wall_s":W,"active_s":A,"cpu_user_s":U,"cpu_sys_s":S,"cpu_s":U+S,
//    "requests_per_cpu_s":N/(U+S),"requests_per_active_s":N/A}
// where active_s runs from the first request to the last. CPU time is the whole process's
// (all I/O threads), from after Start() to the signal.
//
// Run (two shells, or in the background):
//   build/benchmarks/serving/freshet_http_hello_bench --port 18080 &
//   wrk -t1 -c32 -d5s http://127.0.0.1:18080/hello
//   kill -INT %1
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "serving/http/http_server.h"
#include "serving/metrics/metrics_registry.h"

namespace freshet::serving {
namespace {

using Clock = std::chrono::steady_clock;

double CpuSeconds(const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec * 1e-6; }

int Usage(absl::string_view message) {
  std::fprintf(stderr,
               "%s\nusage: freshet_http_hello_bench [--port N] [--io_threads N] "
               "[--max_in_flight N] [--metrics] [--seconds S]\n",
               std::string(message).c_str());
  return 2;
}

int Main(int argc, char** argv) {
  HttpServerOptions options;
  options.port = 0;
  options.max_in_flight = 4096;
  bool with_metrics = false;
  double seconds = 0;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--metrics") {
      with_metrics = true;
    } else if (arg == "--port" && has_value) {
      if (!absl::SimpleAtoi(argv[++i], &options.port)) return Usage("bad --port");
    } else if (arg == "--io_threads" && has_value) {
      if (!absl::SimpleAtoi(argv[++i], &options.io_threads)) return Usage("bad --io_threads");
    } else if (arg == "--max_in_flight" && has_value) {
      if (!absl::SimpleAtoi(argv[++i], &options.max_in_flight)) {
        return Usage("bad --max_in_flight");
      }
    } else if (arg == "--seconds" && has_value) {
      if (!absl::SimpleAtod(argv[++i], &seconds) || seconds < 0) return Usage("bad --seconds");
    } else {
      return Usage(absl::StrCat("unknown argument ", arg));
    }
  }

  // Block the stop signals in every thread (the I/O threads inherit the mask); main waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  MetricsRegistry registry;
  if (with_metrics) options.metrics = &registry;
  HttpServer server(options);
  std::atomic<uint64_t> requests{0};
  std::atomic<int64_t> first_ns{0};
  std::atomic<int64_t> last_ns{0};
  const Clock::time_point origin = Clock::now();
  absl::Status s = server.Handle("GET", "/hello", [&](const HttpRequest&) {
    const int64_t now = (Clock::now() - origin).count();
    int64_t expected = 0;
    first_ns.compare_exchange_strong(expected, now, std::memory_order_relaxed);
    last_ns.store(now, std::memory_order_relaxed);
    requests.fetch_add(1, std::memory_order_relaxed);
    return HttpResponse::Json(200, "{\"hello\":\"world\"}");
  });
  if (s.ok() && with_metrics) {
    s = server.Handle("GET", "/metrics", [&](const HttpRequest&) {
      return HttpResponse::Text(200, registry.RenderText(),
                                std::string(MetricsRegistry::kContentType));
    });
  }
  if (s.ok()) s = server.Start();
  if (!s.ok()) {
    std::fprintf(stderr, "freshet_http_hello_bench: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("{\"listening\":%d}\n", server.port());
  std::fflush(stdout);

  rusage start_usage{};
  getrusage(RUSAGE_SELF, &start_usage);
  const Clock::time_point start = Clock::now();
  if (seconds > 0) {
    timespec timeout{};
    timeout.tv_sec = static_cast<time_t>(seconds);
    timeout.tv_nsec = static_cast<long>((seconds - static_cast<double>(timeout.tv_sec)) * 1e9);
    sigtimedwait(&stop_signals, nullptr, &timeout);
  } else {
    int signal = 0;
    sigwait(&stop_signals, &signal);
  }
  rusage end_usage{};
  getrusage(RUSAGE_SELF, &end_usage);
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  server.Stop();

  const double user = CpuSeconds(end_usage.ru_utime) - CpuSeconds(start_usage.ru_utime);
  const double sys = CpuSeconds(end_usage.ru_stime) - CpuSeconds(start_usage.ru_stime);
  const uint64_t n = requests.load();
  const double active = static_cast<double>(last_ns.load() - first_ns.load()) * 1e-9;
  std::printf(
      "{\"requests\":%llu,\"wall_s\":%.3f,\"active_s\":%.3f,\"cpu_user_s\":%.3f,"
      "\"cpu_sys_s\":%.3f,\"cpu_s\":%.3f,\"requests_per_cpu_s\":%.0f,"
      "\"requests_per_active_s\":%.0f,\"io_threads\":%d,\"metrics\":%s}\n",
      static_cast<unsigned long long>(n), wall, active, user, sys, user + sys,
      user + sys > 0 ? static_cast<double>(n) / (user + sys) : 0.0,
      active > 0 ? static_cast<double>(n) / active : 0.0, options.io_threads,
      with_metrics ? "true" : "false");
  return 0;
}

}  // namespace
}  // namespace freshet::serving

int main(int argc, char** argv) { return freshet::serving::Main(argc, argv); }
