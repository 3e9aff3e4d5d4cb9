// `rackserve tune-moe`'s measurement: every candidate launch config of the fused FP8 MoE experts
// (kernels::moe_fp8_candidate_configs) timed at each batch size M on random FP8 weights of one
// per-GPU shape, the fastest kept per M. Needs a CUDA device; the result is a config file
// (moe_fp8_config_file.h) with tuned = true.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/cuda/moe_fp8_config_file.h"

namespace rackserve {

struct MoeFp8TuneOptions {
  std::vector<int64_t> batch_sizes = default_tuning_batch_sizes();
  int device = 0;
  int warmup = 2;       // untimed launches per candidate (each on its own routing)
  int repetitions = 7;  // timed launches per candidate; the median is kept
  uint64_t seed = 1;
};

// One batch size's outcome.
struct MoeFp8TuneRow {
  int64_t tokens = 0;
  MoeFp8Config best;
  double best_us = 0;
  double default_us = -1;  // default_moe_fp8_config's median, -1 when it did not run
  int timed = 0;           // candidates measured
  int skipped = 0;         // candidates refused before launch or failing at launch
};

struct MoeFp8TuneResult {
  MoeDeviceInfo device;
  MoeFp8ConfigFile file;  // tuned = true, device = device_directory_name(device.name)
  std::vector<MoeFp8TuneRow> rows;
};

// The device as the config lookup sees it.
MoeDeviceInfo query_moe_device(int device);

// Times every candidate at every batch size. Candidates that are not supported or exceed the
// device's shared memory are skipped before launch; a launch error skips that candidate. Both
// are logged (spdlog). Throws when the device itself fails (out of memory, a sticky CUDA error)
// or no candidate runs at some M.
MoeFp8TuneResult tune_moe_fp8(const MoeFp8Shape& shape, const MoeFp8TuneOptions& options);

}  // namespace rackserve
