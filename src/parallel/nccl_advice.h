// The advice `rackserve doctor` prints and `serve` applies: NCCL settings that suit the
// probed topology (PCIe boxes without NVLink above all), and warnings about placements
// that cost bandwidth or hang. Pure functions of a GpuTopology.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "parallel/gpu_topology.h"

namespace rackserve::parallel {

struct Advice {
  // Variables to set (name -> value) with the reason for each; only ones the user has not set.
  struct Setting {
    std::string name, value, reason;
  };
  std::vector<Setting> settings;
  std::vector<std::string> warnings;  // one line each
  std::vector<std::string> notes;     // observations that need no action
};

// `tp` is the tensor-parallel size planned (0: as many GPUs as the topology has).
Advice advise(const GpuTopology& topology, int tp = 0);

// Applies advice.settings to this process's environment where unset; returns what it set.
std::vector<Advice::Setting> apply_advice(const Advice& advice);

}  // namespace rackserve::parallel
