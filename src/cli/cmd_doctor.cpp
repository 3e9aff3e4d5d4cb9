// `rackserve doctor`: probes the GPUs (name, SM, memory, PCIe link, NUMA node), the peer
// access matrix with measured copy bandwidth and latency per pair, the NCCL the binary
// links and the communication environment, then prints concrete advice (parallel/nccl_advice.h).
#include <optional>
#include <string>

#include <cxxopts.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "parallel/gpu_topology.h"
#include "parallel/nccl_advice.h"

namespace rackserve::cli {

namespace {

using parallel::Advice;
using parallel::GpuTopology;

std::string link_text(const parallel::GpuInfo& gpu) {
  if (gpu.link_width < 0 && gpu.link_speed.empty()) return "unknown";
  return fmt::format("x{} {} (max x{} {})", gpu.link_width, gpu.link_speed.empty() ? "?" : gpu.link_speed,
                     gpu.max_link_width, gpu.max_link_speed.empty() ? "?" : gpu.max_link_speed);
}

void print_text(const GpuTopology& topology, const Advice& advice) {
  fmt::print("GPUs ({})\n", topology.gpus.size());
  for (const auto& gpu : topology.gpus)
    fmt::print("  {}  {}  sm_{}{}  {} SMs  {:.1f} GiB  bus {}  PCIe {}  NUMA {}\n", gpu.index, gpu.name, gpu.sm_major,
               gpu.sm_minor, gpu.sm_count, gpu.memory_bytes / double(1 << 30), gpu.pci_bus_id, link_text(gpu),
               gpu.numa_node >= 0 ? std::to_string(gpu.numa_node) : "unknown");
  if (topology.gpus.size() > 1) {
    fmt::print("\npeer access (row -> column): GB/s, latency us; '-' no peer access\n");
    for (size_t i = 0; i < topology.gpus.size(); ++i) {
      fmt::print("  {}:", i);
      for (size_t j = 0; j < topology.gpus.size(); ++j) {
        const auto& link = topology.peers[i][j];
        if (i == j)
          fmt::print("  {:>16}", "self");
        else if (!link.can_access)
          fmt::print("  {:>16}", "-");
        else if (!link.error.empty())
          fmt::print("  {:>16}", "FAILED");
        else if (link.bandwidth_gb_per_s)
          fmt::print("  {:>7.1f}, {:>6.2f}", *link.bandwidth_gb_per_s, link.latency_us.value_or(0.0));
        else
          fmt::print("  {:>16}", "yes");
      }
      fmt::print("\n");
    }
  }
  fmt::print("\nNCCL: {}\n", topology.nccl_version.empty() ? "not linked in this build" : topology.nccl_version);
  fmt::print("environment:{}\n", topology.environment.empty() ? " (no NCCL_* / CUDA_* variables set)" : "");
  for (const auto& [name, value] : topology.environment) fmt::print("  {}={}\n", name, value);
  fmt::print("\nadvice:\n");
  for (const auto& setting : advice.settings) fmt::print("  set {}={}: {}\n", setting.name, setting.value, setting.reason);
  for (const auto& warning : advice.warnings) fmt::print("  warning: {}\n", warning);
  for (const auto& note : advice.notes) fmt::print("  note: {}\n", note);
  if (advice.settings.empty() && advice.warnings.empty()) fmt::print("  nothing to change\n");
  fmt::print("\n`rackserve serve` applies the settings above when you have not set them, and logs them.\n");
}

nlohmann::json to_json(const GpuTopology& topology, const Advice& advice) {
  nlohmann::json out;
  for (const auto& gpu : topology.gpus)
    out["gpus"].push_back({{"index", gpu.index},
                           {"name", gpu.name},
                           {"sm", fmt::format("{}{}", gpu.sm_major, gpu.sm_minor)},
                           {"sms", gpu.sm_count},
                           {"memory_bytes", gpu.memory_bytes},
                           {"pci_bus_id", gpu.pci_bus_id},
                           {"link_speed", gpu.link_speed},
                           {"max_link_speed", gpu.max_link_speed},
                           {"link_width", gpu.link_width},
                           {"max_link_width", gpu.max_link_width},
                           {"numa_node", gpu.numa_node}});
  for (size_t i = 0; i < topology.peers.size(); ++i)
    for (size_t j = 0; j < topology.peers[i].size(); ++j) {
      if (i == j) continue;
      const auto& link = topology.peers[i][j];
      nlohmann::json entry{{"src", i}, {"dst", j}, {"can_access", link.can_access}};
      if (link.bandwidth_gb_per_s) entry["bandwidth_gb_per_s"] = *link.bandwidth_gb_per_s;
      if (link.latency_us) entry["latency_us"] = *link.latency_us;
      if (!link.error.empty()) entry["error"] = link.error;
      out["peers"].push_back(entry);
    }
  out["nccl_version"] = topology.nccl_version;
  out["environment"] = topology.environment;
  for (const auto& setting : advice.settings)
    out["settings"].push_back({{"name", setting.name}, {"value", setting.value}, {"reason", setting.reason}});
  out["warnings"] = advice.warnings;
  out["notes"] = advice.notes;
  return out;
}

}  // namespace

int run_doctor(const Arguments& args) {
  cxxopts::Options options("rackserve doctor",
                           "The GPUs of this machine as tensor parallelism sees them, and the NCCL settings that suit them.");
  options.add_options()("tp", "tensor-parallel size to advise for (0: every visible GPU)",
                        cxxopts::value<int>()->default_value("0"))(
      "no-measure", "skip the peer copy measurements")("json", "print JSON instead of text")("h,help", "show this help");
  cxxopts::ParseResult result;
  if (!parse_or_help(options, args, result)) return 0;
  parallel::ProbeOptions probe;
  probe.measure_peers = result.count("no-measure") == 0;
  const GpuTopology topology = parallel::probe_gpu_topology(probe);
  const Advice advice = parallel::advise(topology, result["tp"].as<int>());
  if (result.count("json"))
    fmt::print("{}\n", to_json(topology, advice).dump(2));
  else
    print_text(topology, advice);
  return 0;
}

}  // namespace rackserve::cli
