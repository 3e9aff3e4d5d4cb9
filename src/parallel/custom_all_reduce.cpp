#include "parallel/custom_all_reduce.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>

#include <cuda_runtime.h>
#include <fmt/format.h>

#include "core/error.h"
#include "rackserve/kernels/all_reduce_params.h"

namespace rackserve {

namespace {

void check_cuda(cudaError_t status, const char* what) {
  RS_CHECK(status == cudaSuccess, "custom all-reduce: {}: {}", what, cudaGetErrorString(status));
}

// Restores the calling thread's current device on scope exit.
class DeviceGuard {
 public:
  DeviceGuard() { cudaGetDevice(&previous_); }
  ~DeviceGuard() { cudaSetDevice(previous_); }

 private:
  int previous_ = 0;
};

}  // namespace

std::string CustomAllReduce::peer_access_between(const std::vector<int>& devices) {
  for (int a : devices)
    for (int b : devices) {
      if (a == b) continue;
      int can = 0;
      if (cudaDeviceCanAccessPeer(&can, a, b) != cudaSuccess || !can)
        return fmt::format("GPU {} cannot access GPU {} directly (no peer access)", a, b);
    }
  return {};
}

CustomAllReduce::CustomAllReduce(std::vector<int> devices, CustomAllReduceOptions options)
    : devices_(std::move(devices)), options_(options) {
  const int world = world_size();
  RS_CHECK(world >= 2 && world <= kernels::kAllReduceMaxRanks, "custom all-reduce: {} ranks (2 to {})", world,
           kernels::kAllReduceMaxRanks);
  RS_CHECK(options_.capacity_bytes > 0 && options_.capacity_bytes % 16 == 0,
           "custom all-reduce: capacity {} is not a positive multiple of 16 bytes", options_.capacity_bytes);
  const std::string no_peer = peer_access_between(devices_);
  RS_CHECK(no_peer.empty(), "custom all-reduce: {}", no_peer);
  DeviceGuard guard;
  std::map<int, int> ranks_on_device;
  for (int device : devices_) ++ranks_on_device[device];
  max_blocks_ = kernels::kAllReduceMaxBlocks;
  for (const auto& [device, count] : ranks_on_device) {
    int sms = 0;
    check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "SM count");
    max_blocks_ = std::min(max_blocks_, std::max(1, sms / count));
    check_cuda(cudaSetDevice(device), "cudaSetDevice");
    for (const auto& [peer, unused] : ranks_on_device) {
      if (peer == device) continue;
      const cudaError_t status = cudaDeviceEnablePeerAccess(peer, 0);
      if (status == cudaErrorPeerAccessAlreadyEnabled) {
        cudaGetLastError();  // clears the sticky-free error state
        continue;
      }
      check_cuda(status, "cudaDeviceEnablePeerAccess");
    }
  }
  check_cuda(cudaHostAlloc(reinterpret_cast<void**>(&abort_flag_), sizeof(int), cudaHostAllocMapped | cudaHostAllocPortable),
             "cudaHostAlloc (abort flag)");
  *abort_flag_ = 0;
  ranks_.resize(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r) {
    Rank& rank = ranks_[static_cast<size_t>(r)];
    check_cuda(cudaSetDevice(devices_[static_cast<size_t>(r)]), "cudaSetDevice");
    const size_t flag_bytes = sizeof(uint64_t) * static_cast<size_t>(world * kernels::kAllReduceMaxBlocks);
    check_cuda(cudaMalloc(&rank.buffer, 2 * static_cast<size_t>(options_.capacity_bytes)), "cudaMalloc (buffer)");
    check_cuda(cudaMalloc(reinterpret_cast<void**>(&rank.flags), flag_bytes), "cudaMalloc (flags)");
    check_cuda(cudaMalloc(reinterpret_cast<void**>(&rank.call_counter), 2 * sizeof(uint64_t)), "cudaMalloc (counter)");
    check_cuda(cudaHostAlloc(reinterpret_cast<void**>(&rank.report), 2 * sizeof(uint64_t) + flag_bytes, cudaHostAllocDefault),
               "cudaHostAlloc (report)");
    cudaStream_t report_stream = nullptr;
    check_cuda(cudaStreamCreateWithFlags(&report_stream, cudaStreamNonBlocking), "cudaStreamCreate (report)");
    rank.report_stream = report_stream;
    check_cuda(cudaMemset(rank.flags, 0, flag_bytes), "cudaMemset (flags)");
    check_cuda(cudaMemset(rank.call_counter, 0, 2 * sizeof(uint64_t)), "cudaMemset (counter)");
  }
  for (int device : devices_) {
    check_cuda(cudaSetDevice(device), "cudaSetDevice");
    check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize (buffers zeroed)");
  }
}

CustomAllReduce::~CustomAllReduce() {
  DeviceGuard guard;
  for (size_t r = 0; r < ranks_.size(); ++r) {
    cudaSetDevice(devices_[r]);
    cudaDeviceSynchronize();
    cudaFree(ranks_[r].buffer);
    cudaFree(ranks_[r].flags);
    cudaFree(ranks_[r].call_counter);
    if (ranks_[r].report_stream) cudaStreamDestroy(static_cast<cudaStream_t>(ranks_[r].report_stream));
    if (ranks_[r].report) cudaFreeHost(ranks_[r].report);
  }
  if (abort_flag_) cudaFreeHost(abort_flag_);
}

bool CustomAllReduce::takes(const Tensor& tensor) const {
  return (tensor.dtype == DType::F32 || tensor.dtype == DType::BF16) &&
         reinterpret_cast<uintptr_t>(tensor.data) % 16 == 0 &&
         static_cast<int64_t>(tensor.bytes()) <= std::min(options_.crossover_bytes, options_.capacity_bytes);
}

bool CustomAllReduce::all_reduce(int rank, const Tensor& tensor, void* stream) {
  if (!takes(tensor)) return false;
  launch(rank, tensor.data, tensor.numel(), tensor.dtype, stream);
  return true;
}

void CustomAllReduce::launch(int rank, void* data, int64_t count, DType dtype, void* stream) {
  RS_CHECK(rank >= 0 && rank < world_size(), "custom all-reduce: rank {} of {}", rank, world_size());
  RS_CHECK(dtype == DType::F32 || dtype == DType::BF16, "custom all-reduce: dtype {} (F32 or BF16 only)",
           dtype_name(dtype));
  kernels::OneShotAllReduceParams params{};
  for (int q = 0; q < world_size(); ++q) {
    params.buffers[q] = ranks_[static_cast<size_t>(q)].buffer;
    params.flags[q] = ranks_[static_cast<size_t>(q)].flags;
  }
  params.call_counter = ranks_[static_cast<size_t>(rank)].call_counter;
  params.abort = abort_flag_;  // mapped pinned memory: the same address on the device (UVA)
  params.inout = data;
  params.type = dtype == DType::F32 ? kernels::ElementType::F32 : kernels::ElementType::BF16;
  params.count = count;
  params.capacity_bytes = options_.capacity_bytes;
  params.rank = rank;
  params.world = world_size();
  params.max_blocks = max_blocks_;
  const int status = kernels::launch_one_shot_all_reduce(params, stream);
  RS_CHECK(status == 0, "custom all-reduce: launch of {} {} elements on rank {} failed: {}", count, dtype_name(dtype),
           rank, cudaGetErrorString(static_cast<cudaError_t>(status)));
}

void CustomAllReduce::abort() {
  if (abort_flag_) *static_cast<volatile int*>(abort_flag_) = 1;
}

namespace {

// "v" for one value, "v x n" for a run of n equal values, runs separated by spaces.
std::string run_lengths(const uint64_t* values, int count) {
  std::string out;
  for (int i = 0; i < count;) {
    int j = i;
    while (j < count && values[j] == values[i]) ++j;
    if (!out.empty()) out += ' ';
    out += j - i == 1 ? fmt::format("{}", values[i]) : fmt::format("{}x{}", values[i], j - i);
    i = j;
  }
  return out;
}

}  // namespace

std::string CustomAllReduce::progress_report(int wait_ms) const {
  DeviceGuard guard;
  const int world = world_size();
  const size_t slots = static_cast<size_t>(world) * kernels::kAllReduceMaxBlocks;
  std::string report;
  for (int r = 0; r < world; ++r) {
    const Rank& rank = ranks_[static_cast<size_t>(r)];
    if (!report.empty()) report += "; ";
    report += fmt::format("rank {}: ", r);
    auto stream = static_cast<cudaStream_t>(rank.report_stream);
    cudaError_t status = cudaSetDevice(devices_[static_cast<size_t>(r)]);
    if (status == cudaSuccess)
      status = cudaMemcpyAsync(rank.report, rank.call_counter, 2 * sizeof(uint64_t), cudaMemcpyDeviceToHost, stream);
    if (status == cudaSuccess)
      status = cudaMemcpyAsync(rank.report + 2, rank.flags, slots * sizeof(uint64_t), cudaMemcpyDeviceToHost, stream);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    if (status == cudaSuccess) status = cudaStreamQuery(stream);
    while (status == cudaErrorNotReady && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      status = cudaStreamQuery(stream);
    }
    if (status != cudaSuccess) {
      cudaGetLastError();
      report += fmt::format("? ({})", cudaGetErrorString(status));
      continue;
    }
    report += fmt::format("done {}, finished {}", rank.report[0], rank.report[1]);
    for (int q = 0; q < world; ++q)
      report += fmt::format(", from rank {} {}", q,
                            run_lengths(rank.report + 2 + static_cast<size_t>(q) * kernels::kAllReduceMaxBlocks, max_blocks_));
  }
  return report;
}

std::unique_ptr<CustomAllReduce> make_custom_all_reduce(const std::vector<int>& devices, std::string* why_not,
                                                        CustomAllReduceOptions options) {
  std::string reason = CustomAllReduce::peer_access_between(devices);
  if (reason.empty() && (devices.size() < 2 || devices.size() > kernels::kAllReduceMaxRanks))
    reason = fmt::format("{} ranks (the kernel takes 2 to {})", devices.size(), kernels::kAllReduceMaxRanks);
  if (!reason.empty()) {
    if (why_not) *why_not = reason;
    return nullptr;
  }
  return std::make_unique<CustomAllReduce>(devices, options);
}

}  // namespace rackserve
