// OpProfiler: GPU time per backend op, from a cudaEvent pair recorded around each op on
// the backend's stream and summed per label ("linear 7168->1536", "moe_experts", ...).
// Recording costs two cudaEventRecord calls per op and never waits; collect() waits for
// the stream once and reads the pairs. Only ProfilingCudaBackend uses it, so a backend
// made without CudaBackendOptions::profile_ops pays nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rackserve {

struct OpTiming {
  std::string label;
  int64_t calls = 0;
  double milliseconds = 0.0;  // summed GPU time between each call's start and stop events
};

class OpProfiler {
 public:
  // `stream` is the cudaStream_t the timed ops run on; it must outlive the profiler.
  explicit OpProfiler(void* stream);
  ~OpProfiler();
  OpProfiler(const OpProfiler&) = delete;
  OpProfiler& operator=(const OpProfiler&) = delete;

  // Records the start event now and the stop event when the scope ends (after the op has
  // enqueued its kernels). A default-constructed scope records nothing, and so does one
  // opened inside another (an op calling an op is timed once, as the outer op).
  class Scope {
   public:
    Scope() = default;
    Scope(OpProfiler* owner, size_t pending) : owner_(owner), pending_(pending) {}
    Scope(Scope&& other) noexcept : owner_(other.owner_), pending_(other.pending_) { other.owner_ = nullptr; }
    Scope& operator=(Scope&&) = delete;
    ~Scope();

   private:
    OpProfiler* owner_ = nullptr;
    size_t pending_ = 0;
  };

  // Off: time() returns empty scopes (the label is still built by the caller: check
  // enabled() first where that costs).
  void set_enabled(bool enabled) { enabled_ = enabled; }
  bool enabled() const { return enabled_; }

  Scope time(std::string label);
  // Waits for the stream, adds every finished pair to the totals and returns the totals
  // since the last reset(), longest first.
  std::vector<OpTiming> collect();
  void reset();

 private:
  struct Pending {
    std::string label;
    size_t start_event = 0;  // the stop event is start_event + 1
  };
  void stop(size_t pending);
  void accumulate();  // waits for the stream; folds pending pairs into totals_

  void* stream_;
  bool enabled_ = true;
  bool inside_scope_ = false;
  std::vector<void*> events_;  // cudaEvent_t pool; [0, 2 * pending_.size()) in use
  std::vector<Pending> pending_;
  std::map<std::string, OpTiming> totals_;
};

}  // namespace rackserve
