// StatsReporter: a thread that logs one line every interval with running/waiting
// requests, prompt and generation throughput since the previous line, KV page usage and
// prefix-cache hits. It reads only Engine::stats() snapshots.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "engine/engine_stats.h"

namespace rackserve {
class Engine;
}

namespace rackserve::api {

// The stats line for the interval between two snapshots (pure; unit-tested).
std::string format_stats_line(const EngineStats& previous, const EngineStats& current);

class StatsReporter {
 public:
  // Starts logging every `interval` (no thread when interval is zero); `engine` must
  // outlive the reporter.
  StatsReporter(const Engine& engine, std::chrono::seconds interval);
  ~StatsReporter();  // stops and joins
  StatsReporter(const StatsReporter&) = delete;
  StatsReporter& operator=(const StatsReporter&) = delete;

 private:
  void run();

  const Engine& engine_;
  const std::chrono::seconds interval_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace rackserve::api
