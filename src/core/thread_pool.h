// A fixed pool of worker threads for data-parallel loops on the CPU. Owned by whoever
// needs it (the CPU backend); there is no process-wide pool.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace rackserve {

class ThreadPool {
 public:
  // threads == 0 means one per hardware thread.
  explicit ThreadPool(unsigned threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  unsigned size() const { return static_cast<unsigned>(workers_.size()) + 1; }

  // Calls body(begin, end) on disjoint chunks covering [0, count), on the pool and the
  // calling thread, and returns when all are done. `grain` is the smallest chunk worth
  // a thread. Not reentrant: body must not call parallel_for on the same pool.
  void parallel_for(int64_t count, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

 private:
  void worker_loop(unsigned worker);
  void run_chunks();

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int64_t, int64_t)>* body_ = nullptr;
  int64_t count_ = 0;
  int64_t chunk_ = 0;
  int64_t next_ = 0;
  unsigned active_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

}  // namespace rackserve
