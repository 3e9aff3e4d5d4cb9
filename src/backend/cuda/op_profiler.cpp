#include "backend/cuda/op_profiler.h"

#include <cuda_runtime.h>

#include <algorithm>

#include "core/error.h"

namespace rackserve {

namespace {
// Pairs recorded before collect() folds them in on its own (bounds the event pool).
constexpr size_t kMaxPending = size_t{1} << 14;

void check_cuda(cudaError_t status, const char* what) {
  RS_CHECK(status == cudaSuccess, "CUDA error in {}: {}", what, cudaGetErrorString(status));
}
}  // namespace

OpProfiler::OpProfiler(void* stream) : stream_(stream) {}

OpProfiler::~OpProfiler() {
  for (void* event : events_) cudaEventDestroy(static_cast<cudaEvent_t>(event));
}

OpProfiler::Scope::~Scope() {
  if (owner_) owner_->stop(pending_);
}

OpProfiler::Scope OpProfiler::time(std::string label) {
  if (!enabled_ || inside_scope_) return {};
  if (pending_.size() >= kMaxPending) accumulate();
  const size_t start = 2 * pending_.size();
  while (events_.size() < start + 2) {
    cudaEvent_t event;
    check_cuda(cudaEventCreate(&event), "cudaEventCreate (op profiler)");
    events_.push_back(event);
  }
  check_cuda(cudaEventRecord(static_cast<cudaEvent_t>(events_[start]), static_cast<cudaStream_t>(stream_)),
             "cudaEventRecord (op profiler)");
  pending_.push_back({std::move(label), start});
  inside_scope_ = true;
  return Scope(this, pending_.size() - 1);
}

void OpProfiler::stop(size_t pending) {
  cudaEvent_t stop_event = static_cast<cudaEvent_t>(events_[pending_[pending].start_event + 1]);
  inside_scope_ = false;
  check_cuda(cudaEventRecord(stop_event, static_cast<cudaStream_t>(stream_)), "cudaEventRecord (op profiler)");
}

void OpProfiler::accumulate() {
  check_cuda(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)), "op profiler");
  for (const Pending& pending : pending_) {
    float milliseconds = 0.0f;
    check_cuda(cudaEventElapsedTime(&milliseconds, static_cast<cudaEvent_t>(events_[pending.start_event]),
                                    static_cast<cudaEvent_t>(events_[pending.start_event + 1])),
               "cudaEventElapsedTime (op profiler)");
    OpTiming& total = totals_[pending.label];
    total.label = pending.label;
    total.calls += 1;
    total.milliseconds += milliseconds;
  }
  pending_.clear();
}

std::vector<OpTiming> OpProfiler::collect() {
  accumulate();
  std::vector<OpTiming> result;
  for (const auto& [label, timing] : totals_) result.push_back(timing);
  std::sort(result.begin(), result.end(),
            [](const OpTiming& a, const OpTiming& b) { return a.milliseconds > b.milliseconds; });
  return result;
}

void OpProfiler::reset() {
  accumulate();
  totals_.clear();
}

}  // namespace rackserve
