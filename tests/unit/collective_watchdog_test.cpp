// CollectiveWatchdog on the in-process communicators: a step past its deadline aborts the
// group (a rank waiting in a collective for a rank that never comes throws), a
// communicator's async error aborts it too, and a rank stuck outside the collectives is
// reported through on_stuck once the grace period is over.
#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "models/collective_watchdog.h"
#include "parallel/in_process_communicator.h"

namespace rackserve {
namespace {

using namespace std::chrono_literals;

std::vector<Communicator*> pointers(const std::vector<std::unique_ptr<Communicator>>& communicators) {
  std::vector<Communicator*> out;
  for (const auto& communicator : communicators) out.push_back(communicator.get());
  return out;
}

TEST(CollectiveWatchdog, AStepPastItsDeadlineAbortsTheGroup) {
  auto communicators = make_in_process_communicators(2);
  WatchdogOptions options;
  options.step_timeout = 200ms;
  options.poll_interval = 10ms;
  CollectiveWatchdog watchdog(pointers(communicators), options);
  std::vector<float> values(4, 1.0f);
  Tensor tensor{values.data(), DType::F32, {4}, Device{}};
  watchdog.begin("forward");
  const auto start = std::chrono::steady_clock::now();
  // Rank 1 never joins: without the watchdog this would wait forever.
  try {
    communicators[0]->all_reduce_sum(tensor);
    FAIL() << "the all-reduce returned";
  } catch (const std::exception& error) {
    EXPECT_NE(std::string(error.what()).find("the forward step did not finish within 0.2 s"), std::string::npos)
        << error.what();
  }
  watchdog.end();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  ASSERT_TRUE(watchdog.abort_reason().has_value());
}

class FailingTransport final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  void all_reduce_sum(const Tensor&) override {}
  void all_gather_last_dim(const Tensor&, const Tensor&) override {}
  void barrier() override {}
  void abort(const std::string& reason) override { aborted_with = reason; }
  std::string async_error() const override { return "peer vanished"; }
  std::string aborted_with;
};

TEST(CollectiveWatchdog, AnAsyncErrorAbortsTheGroup) {
  FailingTransport transport;
  WatchdogOptions options;
  options.poll_interval = 5ms;
  options.on_stuck = [](const std::string&) {};
  CollectiveWatchdog watchdog({&transport}, options);
  watchdog.begin("forward");
  for (int i = 0; i < 400 && !watchdog.abort_reason(); ++i) std::this_thread::sleep_for(5ms);
  watchdog.end();
  ASSERT_TRUE(watchdog.abort_reason().has_value());
  EXPECT_EQ(transport.aborted_with, "rank 0 communication error: peer vanished");
}

TEST(CollectiveWatchdog, ARankStuckOutsideTheCollectivesIsReported) {
  auto communicators = make_in_process_communicators(2);
  std::atomic<int> reports{0};
  std::string reason;
  WatchdogOptions options;
  options.step_timeout = 50ms;
  options.grace = 100ms;
  options.poll_interval = 5ms;
  options.on_stuck = [&](const std::string& text) {
    reason = text;
    ++reports;
  };
  CollectiveWatchdog watchdog(pointers(communicators), options);
  watchdog.begin("forward");  // and nothing ends it for a while: a rank stuck in a device call
  for (int i = 0; i < 400 && reports == 0; ++i) std::this_thread::sleep_for(5ms);
  std::this_thread::sleep_for(50ms);
  watchdog.end();
  EXPECT_EQ(reports, 1);  // once, not every poll
  EXPECT_NE(reason.find("still blocked"), std::string::npos) << reason;
}

TEST(CollectiveWatchdog, QuietWhenStepsFinishInTime) {
  auto communicators = make_in_process_communicators(2);
  WatchdogOptions options;
  options.step_timeout = 500ms;
  options.poll_interval = 5ms;
  CollectiveWatchdog watchdog(pointers(communicators), options);
  for (int step = 0; step < 5; ++step) {
    watchdog.begin("forward");
    std::this_thread::sleep_for(20ms);
    watchdog.end();
  }
  std::this_thread::sleep_for(600ms);  // idle time between steps does not count
  EXPECT_FALSE(watchdog.abort_reason().has_value());
}

}  // namespace
}  // namespace rackserve
