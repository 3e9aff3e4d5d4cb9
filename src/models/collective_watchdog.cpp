#include "models/collective_watchdog.h"

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

namespace rackserve {

namespace {
void print_and_exit(const std::string& reason) {
  std::fprintf(stderr, "rackserve: fatal: %s\n", reason.c_str());
  std::fflush(stderr);
  std::_Exit(70);  // EX_SOFTWARE; the stuck thread cannot be joined, so no orderly shutdown
}
}  // namespace

CollectiveWatchdog::CollectiveWatchdog(std::vector<Communicator*> communicators, WatchdogOptions options)
    : communicators_(std::move(communicators)), options_(std::move(options)), thread_([this] { loop(); }) {}

CollectiveWatchdog::~CollectiveWatchdog() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void CollectiveWatchdog::begin(std::string what) {
  {
    std::lock_guard lock(mutex_);
    running_ = true;
    what_ = std::move(what);
    started_ = std::chrono::steady_clock::now();
  }
  changed_.notify_all();
}

void CollectiveWatchdog::end() {
  std::lock_guard lock(mutex_);
  running_ = false;
}

std::optional<std::string> CollectiveWatchdog::abort_reason() const {
  std::lock_guard lock(mutex_);
  return abort_reason_;
}

void CollectiveWatchdog::loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    changed_.wait_for(lock, options_.poll_interval, [&] { return stopping_; });
    if (stopping_ || !running_) continue;
    const auto now = std::chrono::steady_clock::now();
    if (abort_reason_) {
      if (!stuck_reported_ && now - aborted_at_ > options_.grace) {
        stuck_reported_ = true;
        const std::string reason =
            fmt::format("{}; a tensor-parallel rank is still blocked {} ms after the abort (stuck outside the "
                        "collectives, e.g. in a device call), so the process cannot recover",
                        *abort_reason_, options_.grace.count());
        lock.unlock();
        (options_.on_stuck ? options_.on_stuck : print_and_exit)(reason);
        lock.lock();
      }
      continue;
    }
    std::string reason;
    for (size_t r = 0; r < communicators_.size() && reason.empty(); ++r)
      if (std::string error = communicators_[r]->async_error(); !error.empty())
        reason = fmt::format("rank {} communication error: {}", r, error);
    if (reason.empty() && options_.step_timeout.count() > 0 && now - started_ > options_.step_timeout)
      reason = fmt::format("the {} step did not finish within {} s on every rank (a rank or a collective hangs)",
                           what_, std::chrono::duration<double>(options_.step_timeout).count());
    if (reason.empty()) continue;
    abort_reason_ = reason;
    aborted_at_ = now;
    lock.unlock();
    for (Communicator* communicator : communicators_) communicator->abort(reason);
    lock.lock();
  }
}

}  // namespace rackserve
