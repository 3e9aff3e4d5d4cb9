#include "parallel/nccl_advice.h"

#include <cstdlib>
#include <set>

#include <fmt/format.h>

namespace rackserve::parallel {

namespace {

// Peer copies slower than this are PCIe-class (x16 Gen5 moves ~50 GB/s one way; NVLink
// pairs move hundreds).
constexpr double kPcieClassGbPerS = 80.0;

bool is_set(const GpuTopology& topology, const std::string& name) {
  return topology.environment.count(name) > 0;
}

void suggest(Advice& advice, const GpuTopology& topology, const std::string& name, const std::string& value,
             const std::string& reason) {
  if (is_set(topology, name)) {
    advice.notes.push_back(fmt::format("{}={} is set by you (suggested {}: {})", name, topology.environment.at(name),
                                       value, reason));
    return;
  }
  advice.settings.push_back({name, value, reason});
}

}  // namespace

std::map<std::string, std::string> read_communication_environment() {
  static constexpr const char* kNames[] = {
      "NCCL_P2P_LEVEL",  "NCCL_P2P_DISABLE",     "NCCL_SHM_DISABLE",  "NCCL_IB_DISABLE",    "NCCL_NVLS_ENABLE",
      "NCCL_ALGO",       "NCCL_PROTO",           "NCCL_MIN_NCHANNELS", "NCCL_MAX_NCHANNELS", "NCCL_BUFFSIZE",
      "NCCL_SOCKET_IFNAME", "NCCL_DEBUG",        "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "NCCL_CUMEM_ENABLE"};
  std::map<std::string, std::string> environment;
  for (const char* name : kNames)
    if (const char* value = std::getenv(name)) environment[name] = value;
  return environment;
}

Advice advise(const GpuTopology& topology, int tp) {
  Advice advice;
  const int count = static_cast<int>(topology.gpus.size());
  if (count == 0) {
    advice.warnings.push_back("no CUDA GPU is visible (check the driver, CUDA_VISIBLE_DEVICES and container flags)");
    return advice;
  }
  const int group = tp > 0 ? tp : count;
  if (group > count)
    advice.warnings.push_back(fmt::format("--tp {} needs {} GPUs but {} are visible", group, group, count));
  const int used = std::min(group, count);

  // Mixed models or architectures in one tensor-parallel group run at the slowest card.
  std::set<std::string> names;
  for (int i = 0; i < used; ++i) names.insert(topology.gpus[i].name);
  if (names.size() > 1)
    advice.warnings.push_back(fmt::format("the first {} GPUs are not all the same model: {}", used,
                                          fmt::join(names, ", ")));

  for (int i = 0; i < used; ++i) {
    const GpuInfo& gpu = topology.gpus[i];
    if (gpu.link_width > 0 && gpu.max_link_width > 0 && gpu.link_width < gpu.max_link_width)
      advice.warnings.push_back(fmt::format("GPU {} ({}) links at x{} of x{}: a narrower slot or a riser halves its "
                                            "PCIe bandwidth (idle cards may also downtrain; check under load)",
                                            i, gpu.pci_bus_id, gpu.link_width, gpu.max_link_width));
    if (!gpu.link_speed.empty() && !gpu.max_link_speed.empty() && gpu.link_speed != gpu.max_link_speed)
      advice.notes.push_back(fmt::format("GPU {} links at {} (max {}); idle GPUs lower their link speed, so this "
                                         "only matters if it stays so under load",
                                         i, gpu.link_speed, gpu.max_link_speed));
  }

  std::set<int> numa_nodes;
  for (int i = 0; i < used; ++i)
    if (topology.gpus[i].numa_node >= 0) numa_nodes.insert(topology.gpus[i].numa_node);
  if (numa_nodes.size() > 1)
    advice.warnings.push_back(fmt::format(
        "the GPUs of the group sit on {} NUMA nodes ({}): their traffic crosses the CPU interconnect, which is "
        "slower and on some boards breaks peer-to-peer; prefer GPUs of one node via CUDA_VISIBLE_DEVICES",
        numa_nodes.size(), fmt::join(numa_nodes, ", ")));

  bool all_peer = true, any_hung = false, any_measured = false;
  double slowest = 0.0;
  for (int i = 0; i < used; ++i)
    for (int j = 0; j < used; ++j) {
      if (i == j || i >= static_cast<int>(topology.peers.size()) || j >= static_cast<int>(topology.peers[i].size()))
        continue;
      const PeerLink& link = topology.peers[i][j];
      if (!link.can_access) all_peer = false;
      if (!link.error.empty()) {
        any_hung = true;
        advice.warnings.push_back(fmt::format("peer copy GPU {} -> {} failed: {}", i, j, link.error));
      }
      if (link.bandwidth_gb_per_s) {
        slowest = any_measured ? std::min(slowest, *link.bandwidth_gb_per_s) : *link.bandwidth_gb_per_s;
        any_measured = true;
      }
    }

  if (used > 1) {
    if (any_hung) {
      suggest(advice, topology, "NCCL_P2P_DISABLE", "1",
              "peer-to-peer is reported but a peer copy failed or hung (typical with the IOMMU on or ACS enabled "
              "on the PCIe switches): NCCL would hang the same way; staging through host memory is slower but works");
    } else if (!all_peer) {
      advice.notes.push_back(
          "some pairs have no peer access (different root complexes, or P2P disabled by the driver/board): NCCL "
          "stages those through host memory, and the custom all-reduce falls back to NCCL");
    } else if (any_measured && slowest < kPcieClassGbPerS) {
      suggest(advice, topology, "NCCL_P2P_LEVEL", "SYS",
              fmt::format("every pair reaches the others peer-to-peer over PCIe (slowest {:.1f} GB/s measured): let "
                          "NCCL use P2P across the root complex too instead of staging through host memory",
                          slowest));
    }
    suggest(advice, topology, "NCCL_IB_DISABLE", "1",
            "one machine: no InfiniBand/RoCE needed, and probing absent HCAs only delays startup");
    if (any_measured && slowest < kPcieClassGbPerS)
      suggest(advice, topology, "NCCL_NVLS_ENABLE", "0", "no NVSwitch on a PCIe box: NVLink SHARP cannot be used");
  } else {
    advice.notes.push_back("one GPU in the group: no collective communication is needed");
  }
  suggest(advice, topology, "CUDA_DEVICE_ORDER", "PCI_BUS_ID",
          "CUDA numbers GPUs fastest-first by default; in bus order its indices match nvidia-smi's");
  return advice;
}

std::vector<Advice::Setting> apply_advice(const Advice& advice) {
  std::vector<Advice::Setting> applied;
  for (const Advice::Setting& setting : advice.settings) {
    if (std::getenv(setting.name.c_str())) continue;
    if (setenv(setting.name.c_str(), setting.value.c_str(), 0) == 0) applied.push_back(setting);
  }
  return applied;
}

}  // namespace rackserve::parallel
