// BlockingPool: a few threads for the handlers that wait (a broker's acknowledgement, a snapshot's
// checkpoint, a restore), so that they never hold the HTTP I/O threads, which must stay free for
// every other request. The queue is bounded: a task that finds it full is refused at once, and
// its request is answered 503 with Retry-After.
//
// Thread-safe. Start() once; Stop() is idempotent and joins: queued tasks that have not begun are
// cancelled (their `cancel` runs instead), running ones finish.
#ifndef FRESHET_SERVING_HTTP_BLOCKING_POOL_H_
#define FRESHET_SERVING_HTTP_BLOCKING_POOL_H_

#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "common/mutex.h"

namespace freshet::serving {

class BlockingPool {
 public:
  // `threads` >= 1 run tasks; at most `queue` >= 0 wait beyond them.
  BlockingPool(int threads, int queue);
  ~BlockingPool();  // Stop()
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  // Starts the threads; does nothing when running or stopped.
  void Start() ABSL_LOCKS_EXCLUDED(stop_mu_, mu_);
  void Stop() ABSL_LOCKS_EXCLUDED(stop_mu_, mu_);

  // Queues `run`; false (nothing queued) when every thread is busy and the queue is full, or
  // the pool is not running. `cancel` runs instead of `run` if Stop() comes first.
  bool TrySubmit(std::function<void()> run, std::function<void()> cancel) ABSL_LOCKS_EXCLUDED(mu_);

  int threads() const { return threads_; }
  int queue() const { return queue_limit_; }

 private:
  struct Task {
    std::function<void()> run;
    std::function<void()> cancel;
  };
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);

  const int threads_;
  const int queue_limit_;
  // Serialises Start() and Stop(), which start and join the threads (never taken by them).
  Mutex stop_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  Mutex mu_;
  CondVar cv_;  // a task queued, Stop()
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  int busy_ ABSL_GUARDED_BY(mu_) = 0;  // threads running a task
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_ ABSL_GUARDED_BY(stop_mu_);
};

}  // namespace freshet::serving

#endif  // FRESHET_SERVING_HTTP_BLOCKING_POOL_H_
