// BlockingPool: a few threads for the handlers that wait (a broker's acknowledgement, a snapshot's
// checkpoint, a restore), so that they never hold the HTTP I/O threads, which must stay free for
// every other request. The queue is bounded: a task that finds it full is refused at once, and
// its request is answered 503 with Retry-After.
//
// Thread-safe. Start() once; Stop() is idempotent and joins: queued tasks that have not begun are
// cancelled (their `cancel` runs instead), running ones finish.
#ifndef FRESHET_SERVING_HTTP_BLOCKING_POOL_H_
#define FRESHET_SERVING_HTTP_BLOCKING_POOL_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace freshet::serving {

class BlockingPool {
 public:
  // `threads` >= 1 run tasks; at most `queue` >= 0 wait beyond them.
  BlockingPool(int threads, int queue);
  ~BlockingPool();  // Stop()
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  void Start();
  void Stop();

  // Queues `run`; false (nothing queued) when every thread is busy and the queue is full, or
  // the pool is not running. `cancel` runs instead of `run` if Stop() comes first.
  bool TrySubmit(std::function<void()> run, std::function<void()> cancel);

  int threads() const { return threads_; }
  int queue() const { return queue_limit_; }

 private:
  struct Task {
    std::function<void()> run;
    std::function<void()> cancel;
  };
  void Loop();

  const int threads_;
  const int queue_limit_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;  // guarded by mu_
  int busy_ = 0;            // guarded by mu_: threads running a task
  bool running_ = false;    // guarded by mu_
  bool stopped_ = false;    // guarded by mu_
  std::vector<std::thread> workers_;
};

}  // namespace freshet::serving

#endif  // FRESHET_SERVING_HTTP_BLOCKING_POOL_H_
