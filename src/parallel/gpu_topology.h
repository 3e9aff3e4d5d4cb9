// GpuTopology: what a box of GPUs looks like to the tensor-parallel runtime — each GPU's
// name, architecture, memory, PCIe link and NUMA node, which pairs can reach each other
// directly (peer access), how fast they do, and the NCCL the binary links. Probed once by
// `rackserve doctor` (and at `serve` startup); plain data, so the advice rules in
// nccl_advice.h are pure functions tested without GPUs.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rackserve::parallel {

struct GpuInfo {
  int index = 0;
  std::string name;
  int sm_major = 0, sm_minor = 0;
  int sm_count = 0;
  int64_t memory_bytes = 0;
  std::string pci_bus_id;  // "0000:41:00.0"
  // From sysfs (Linux); empty / -1 where the platform does not say.
  std::string link_speed, max_link_speed;  // "32.0 GT/s PCIe"
  int link_width = -1, max_link_width = -1;
  int numa_node = -1;
};

// One ordered pair (src -> dst) of distinct GPUs.
struct PeerLink {
  bool can_access = false;                   // cudaDeviceCanAccessPeer
  std::optional<double> bandwidth_gb_per_s;  // measured peer copy (32 MiB), when measured
  std::optional<double> latency_us;          // measured 4-byte peer copy, when measured
  std::string error;                         // what failed while enabling or measuring
};

struct GpuTopology {
  std::vector<GpuInfo> gpus;
  std::vector<std::vector<PeerLink>> peers;  // [src][dst]; the diagonal is unused
  std::string nccl_version;                  // "2.28.3", empty when the build has no NCCL
  std::map<std::string, std::string> environment;  // the NCCL_* / CUDA_* variables set now
};

struct ProbeOptions {
  bool measure_peers = true;  // time copies between every pair with peer access
  double peer_timeout_seconds = 10.0;  // a pair whose copy does not finish in time is reported as hung
};

// Reads the GPUs of this machine (throws rackserve::Error when CUDA is absent or fails).
GpuTopology probe_gpu_topology(const ProbeOptions& options = {});

// The variables probe_gpu_topology reports from the environment (NCCL_*, CUDA_VISIBLE_DEVICES, ...).
std::map<std::string, std::string> read_communication_environment();

}  // namespace rackserve::parallel
