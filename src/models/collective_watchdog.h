// CollectiveWatchdog: makes sure a tensor-parallel group never hangs silently. A thread
// that, while a step runs on the ranks, (1) polls every communicator's async_error() and
// (2) checks the step against a deadline; on either it aborts the group, which releases
// every rank waiting in a collective or in Communicator::synchronize so the step throws.
// A rank stuck outside the communicators (a CUDA call that never returns) cannot be
// released that way: when the step still runs `grace` after the abort, on_stuck is called
// (by default: the reason on stderr, then the process exits with status 70).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "parallel/communicator.h"

namespace rackserve {

struct WatchdogOptions {
  std::chrono::milliseconds step_timeout{0};  // 0: no deadline (async errors are still polled)
  std::chrono::milliseconds grace{10'000};    // after an abort, how long ranks get to return
  std::chrono::milliseconds poll_interval{50};
  std::function<void(const std::string& reason)> on_stuck;  // empty: print and exit(70)
};

class CollectiveWatchdog {
 public:
  CollectiveWatchdog(std::vector<Communicator*> communicators, WatchdogOptions options);
  ~CollectiveWatchdog();
  CollectiveWatchdog(const CollectiveWatchdog&) = delete;
  CollectiveWatchdog& operator=(const CollectiveWatchdog&) = delete;

  // Brackets one step on all ranks; `what` names it in messages ("forward").
  void begin(std::string what);
  void end();
  // Why the watchdog aborted the group, if it did.
  std::optional<std::string> abort_reason() const;

 private:
  void loop();

  std::vector<Communicator*> communicators_;
  WatchdogOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false, running_ = false, stuck_reported_ = false;
  std::string what_;
  std::chrono::steady_clock::time_point started_, aborted_at_;
  std::optional<std::string> abort_reason_;
  std::thread thread_;  // last: starts after the members it reads
};

}  // namespace rackserve
