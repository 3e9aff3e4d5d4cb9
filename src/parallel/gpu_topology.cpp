// probe_gpu_topology on the CUDA runtime, sysfs (PCIe link, NUMA) and NCCL's version call.
#include "parallel/gpu_topology.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "core/error.h"

#if RACKSERVE_HAVE_NCCL
#include <nccl.h>
#endif

namespace rackserve::parallel {

namespace {

void check_cuda(cudaError_t status, const char* what) {
  RS_CHECK(status == cudaSuccess, "CUDA error in {}: {}", what, cudaGetErrorString(status));
}

std::string read_sysfs(const std::string& bus_id, const char* file) {
  std::string bus = bus_id;
  std::transform(bus.begin(), bus.end(), bus.begin(), [](unsigned char c) { return std::tolower(c); });
  std::ifstream in("/sys/bus/pci/devices/" + bus + "/" + file);
  std::string value;
  std::getline(in, value);
  return value;
}

int to_int(const std::string& text, int fallback) {
  try {
    return text.empty() ? fallback : std::stoi(text);
  } catch (const std::exception&) {
    return fallback;
  }
}

GpuInfo read_gpu(int index) {
  cudaDeviceProp properties{};
  check_cuda(cudaGetDeviceProperties(&properties, index), "cudaGetDeviceProperties");
  GpuInfo gpu;
  gpu.index = index;
  gpu.name = properties.name;
  gpu.sm_major = properties.major;
  gpu.sm_minor = properties.minor;
  gpu.sm_count = properties.multiProcessorCount;
  gpu.memory_bytes = static_cast<int64_t>(properties.totalGlobalMem);
  char bus_id[32] = {};
  if (cudaDeviceGetPCIBusId(bus_id, sizeof bus_id, index) == cudaSuccess) gpu.pci_bus_id = bus_id;
  if (!gpu.pci_bus_id.empty()) {
    gpu.link_speed = read_sysfs(gpu.pci_bus_id, "current_link_speed");
    gpu.max_link_speed = read_sysfs(gpu.pci_bus_id, "max_link_speed");
    gpu.link_width = to_int(read_sysfs(gpu.pci_bus_id, "current_link_width"), -1);
    gpu.max_link_width = to_int(read_sysfs(gpu.pci_bus_id, "max_link_width"), -1);
    gpu.numa_node = to_int(read_sysfs(gpu.pci_bus_id, "numa_node"), -1);
  }
  return gpu;
}

// Waits for `event` up to `timeout_seconds`; false when it did not complete (a hung copy).
bool wait_for(cudaEvent_t event, double timeout_seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  for (;;) {
    const cudaError_t status = cudaEventQuery(event);
    if (status == cudaSuccess) return true;
    RS_CHECK(status == cudaErrorNotReady, "peer copy failed: {}", cudaGetErrorString(status));
    (void)cudaGetLastError();  // "not ready" is an answer, not a fault: keep it out of the next launch check
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// Times copies src -> dst: 32 MiB for bandwidth (median of 5), 4 bytes for latency (mean of 100).
void measure_pair(int src, int dst, double timeout_seconds, PeerLink& link) {
  constexpr size_t kBytes = size_t{32} << 20;
  void *from = nullptr, *to = nullptr;
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  try {
    check_cuda(cudaSetDevice(dst), "cudaSetDevice");
    check_cuda(cudaMalloc(&to, kBytes), "cudaMalloc");
    check_cuda(cudaSetDevice(src), "cudaSetDevice");
    const cudaError_t enabled = cudaDeviceEnablePeerAccess(dst, 0);
    if (enabled == cudaErrorPeerAccessAlreadyEnabled) cudaGetLastError();
    else check_cuda(enabled, "cudaDeviceEnablePeerAccess");
    check_cuda(cudaMalloc(&from, kBytes), "cudaMalloc");
    check_cuda(cudaMemset(from, 1, kBytes), "cudaMemset");
    check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
    check_cuda(cudaEventCreate(&start), "cudaEventCreate");
    check_cuda(cudaEventCreate(&stop), "cudaEventCreate");
    std::vector<float> samples;
    for (int i = 0; i < 6; ++i) {
      check_cuda(cudaEventRecord(start, stream), "cudaEventRecord");
      check_cuda(cudaMemcpyPeerAsync(to, dst, from, src, kBytes, stream), "cudaMemcpyPeerAsync");
      check_cuda(cudaEventRecord(stop, stream), "cudaEventRecord");
      if (!wait_for(stop, timeout_seconds)) {
        link.error = fmt::format("a 32 MiB copy did not finish within {:.0f} s (hung)", timeout_seconds);
        return;  // the stream may never drain: leak it rather than block
      }
      float ms = 0;
      check_cuda(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
      if (i > 0) samples.push_back(ms);  // the first copy pays for the peer mapping
    }
    std::sort(samples.begin(), samples.end());
    link.bandwidth_gb_per_s = kBytes / (samples[samples.size() / 2] * 1e-3) / 1e9;
    constexpr int kSmallCopies = 100;
    check_cuda(cudaEventRecord(start, stream), "cudaEventRecord");
    for (int i = 0; i < kSmallCopies; ++i)
      check_cuda(cudaMemcpyPeerAsync(to, dst, from, src, 4, stream), "cudaMemcpyPeerAsync");
    check_cuda(cudaEventRecord(stop, stream), "cudaEventRecord");
    if (!wait_for(stop, timeout_seconds)) {
      link.error = "small copies did not finish (hung)";
      return;
    }
    float ms = 0;
    check_cuda(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    link.latency_us = ms * 1e3 / kSmallCopies;
  } catch (const std::exception& error) {
    link.error = error.what();
  }
  if (start) cudaEventDestroy(start);
  if (stop) cudaEventDestroy(stop);
  if (stream) cudaStreamDestroy(stream);
  if (from) cudaFree(from);
  cudaSetDevice(dst);
  if (to) cudaFree(to);
}

}  // namespace

GpuTopology probe_gpu_topology(const ProbeOptions& options) {
  GpuTopology topology;
  topology.environment = read_communication_environment();
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  RS_CHECK(status == cudaSuccess || status == cudaErrorNoDevice, "cannot query CUDA devices: {}",
           cudaGetErrorString(status));
  if (status != cudaSuccess) count = 0;
  for (int i = 0; i < count; ++i) topology.gpus.push_back(read_gpu(i));
  topology.peers.assign(count, std::vector<PeerLink>(count));
  for (int i = 0; i < count; ++i)
    for (int j = 0; j < count; ++j) {
      if (i == j) continue;
      int access = 0;
      check_cuda(cudaDeviceCanAccessPeer(&access, i, j), "cudaDeviceCanAccessPeer");
      topology.peers[i][j].can_access = access != 0;
      if (access && options.measure_peers) measure_pair(i, j, options.peer_timeout_seconds, topology.peers[i][j]);
    }
#if RACKSERVE_HAVE_NCCL
  int version = 0;
  if (ncclGetVersion(&version) == ncclSuccess)
    topology.nccl_version = fmt::format("{}.{}.{}", version / 10000, version / 100 % 100, version % 100);
#endif
  return topology;
}

}  // namespace rackserve::parallel
