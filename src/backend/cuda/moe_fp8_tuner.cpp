// tune-moe's measurement loop. Random e4m3 weights (valid codes, no NaN) and f32 scales of the
// real per-GPU shape, and random quantized activations (the launch takes x quantized), live on
// the device once; each batch size M gets warmup + repetitions random
// routings (distinct experts per token), so consecutive timed launches touch different experts and
// small M reads its weights from memory, not from L2, as a real decode step does. The pair lists
// of each routing are built on the host for every align block the candidates use (the contract
// of MoeAlignParams with block = config.block_m), so the measurement depends on nothing but
// launch_moe_experts_fp8. Each launch is timed alone with a CUDA event pair; the median is kept.
#include "backend/cuda/moe_fp8_tuner.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <map>
#include <numeric>
#include <random>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "rackserve/kernels/moe_params.h"

namespace rackserve {

namespace {

using kernels::MoeFp8ExpertsParams;

void check(cudaError_t status, const char* what) {
  RS_CHECK(status == cudaSuccess, "{} failed: {}", what, cudaGetErrorString(status));
}

// One device allocation, freed on scope exit.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    check(cudaMalloc(&data_, std::max<size_t>(bytes, 16)), fmt::format("cudaMalloc of {} bytes", bytes).c_str());
  }
  DeviceBuffer(DeviceBuffer&& other) noexcept { *this = std::move(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(bytes_, other.bytes_);
    return *this;
  }
  ~DeviceBuffer() {
    if (data_) cudaFree(data_);
  }
  template <typename T>
  T* as() const { return static_cast<T*>(data_); }
  size_t bytes() const { return bytes_; }

  template <typename T>
  static DeviceBuffer upload(const std::vector<T>& host) {
    DeviceBuffer buffer(host.size() * sizeof(T));
    check(cudaMemcpy(buffer.data_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy");
    return buffer;
  }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// `bytes` of random valid e4m3 codes: one 16 MiB host chunk repeated (values do not change the timing).
DeviceBuffer random_e4m3(size_t bytes, std::mt19937_64& rng) {
  DeviceBuffer buffer(bytes);
  std::vector<uint8_t> chunk(std::min<size_t>(bytes, size_t{16} << 20));
  for (auto& code : chunk) {
    code = static_cast<uint8_t>(rng());
    if ((code & 0x7f) == 0x7f) code ^= 1;  // 0x7f / 0xff are NaN in e4m3fn
  }
  for (size_t offset = 0; offset < bytes; offset += chunk.size())
    check(cudaMemcpy(buffer.as<uint8_t>() + offset, chunk.data(), std::min(chunk.size(), bytes - offset),
                     cudaMemcpyHostToDevice),
          "cudaMemcpy of weights");
  return buffer;
}

DeviceBuffer random_floats(size_t count, float low, float high, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> value(low, high);
  std::vector<float> host(count);
  for (auto& x : host) x = value(rng);
  return DeviceBuffer::upload(host);
}

// The align outputs (MoeAlignParams' contract) of one routing for align block `block`.
struct PairLists {
  DeviceBuffer sorted_pairs, active_experts, active_offsets, active_counts, block_slots;
  int64_t max_active = 0, max_blocks = 0;
};

PairLists align_on_host(const std::vector<int32_t>& expert_ids, int64_t experts, int64_t block) {
  const int64_t pairs = static_cast<int64_t>(expert_ids.size());
  const kernels::MoeAlignLayout layout = kernels::moe_align_layout(pairs, 1, experts, block);
  const int64_t max_active = layout.max_active, max_blocks = layout.max_blocks;
  std::vector<std::vector<int32_t>> lists(experts);
  for (int64_t pair = 0; pair < pairs; ++pair) lists[expert_ids[pair]].push_back(static_cast<int32_t>(pair));
  std::vector<int32_t> sorted(max_blocks * block, -1), active(max_active, -1), counts(max_active, 0),
      offsets(max_active, 0), slots(max_blocks, -1);
  int64_t slot = 0, offset = 0;
  for (int64_t expert = 0; expert < experts; ++expert) {
    if (lists[expert].empty()) continue;
    active[slot] = static_cast<int32_t>(expert);
    counts[slot] = static_cast<int32_t>(lists[expert].size());
    offsets[slot] = static_cast<int32_t>(offset);
    std::copy(lists[expert].begin(), lists[expert].end(), sorted.begin() + offset);
    const int64_t padded = (counts[slot] + block - 1) / block * block;
    std::fill(slots.begin() + offset / block, slots.begin() + (offset + padded) / block, static_cast<int32_t>(slot));
    offset += padded;
    ++slot;
  }
  for (int64_t rest = slot; rest < max_active; ++rest) offsets[rest] = static_cast<int32_t>(offset);
  return {DeviceBuffer::upload(sorted), DeviceBuffer::upload(active), DeviceBuffer::upload(offsets),
          DeviceBuffer::upload(counts), DeviceBuffer::upload(slots), max_active, max_blocks};
}

// One routing of M tokens: top_k distinct experts per token, its weights, its pair lists per align block.
struct Routing {
  DeviceBuffer weights;
  std::map<int, PairLists> lists;  // by block_m
};

bool same_config(const MoeFp8Config& a, const MoeFp8Config& b) {
  return a.block_m == b.block_m && a.block_n == b.block_n && a.block_k == b.block_k && a.stages == b.stages &&
         a.warps == b.warps && a.small_m == b.small_m;
}

// The device-resident problem of one shape, sized for the largest M.
struct Problem {
  DeviceBuffer x, x_scales, gate_up, gate_up_scales, down, down_scales, output, workspace;
};

// Median microseconds of `repetitions` launches, or the launch error's text.
struct Timing {
  double median_us = 0;
  std::string error;
};

}  // namespace

MoeDeviceInfo query_moe_device(int device) {
  cudaDeviceProp properties{};
  check(cudaGetDeviceProperties(&properties, device), "cudaGetDeviceProperties");
  return {properties.name, properties.major * 10 + properties.minor, properties.sharedMemPerBlockOptin};
}

MoeFp8TuneResult tune_moe_fp8(const MoeFp8Shape& shape, const MoeFp8TuneOptions& options) {
  RS_CHECK(!options.batch_sizes.empty() && options.repetitions >= 1 && options.warmup >= 0,
           "need batch sizes and at least one repetition");
  int device_count = 0;
  const cudaError_t counted = cudaGetDeviceCount(&device_count);
  RS_CHECK(counted == cudaSuccess && device_count > 0, "no CUDA GPU available ({}); tuning needs one",
           counted == cudaSuccess ? "no device" : cudaGetErrorString(counted));
  RS_CHECK(options.device >= 0 && options.device < device_count, "--device {} does not exist ({} GPUs)", options.device,
           device_count);
  check(cudaSetDevice(options.device), "cudaSetDevice");
  MoeFp8TuneResult result;
  result.device = query_moe_device(options.device);
  const MoeFp8ConfigChecks checks{result.device.max_shared_bytes, kernels::moe_fp8_config_supported};

  // Candidates, filtered once: what cannot run on this device is logged and never launched.
  std::vector<MoeFp8Config> all(512);
  all.resize(kernels::moe_fp8_candidate_configs(all.data(), static_cast<int>(all.size())));
  std::vector<MoeFp8Config> candidates;
  int refused = 0;
  for (const auto& config : all) {
    const std::string problem = moe_fp8_config_problem(config, checks);
    if (problem.empty()) {
      candidates.push_back(config);
    } else {
      ++refused;
      spdlog::info("tune-moe: skipping {}: {}", describe(config), problem);
    }
  }
  spdlog::info("tune-moe: {} on {} (sm_{}, {} bytes of shared memory per block): {} candidates, {} skipped",
               describe(shape), result.device.name, result.device.sm, result.device.max_shared_bytes,
               candidates.size(), refused);

  const int64_t max_tokens = *std::max_element(options.batch_sizes.begin(), options.batch_sizes.end());
  const bool block = shape.dtype == MoeFp8Dtype::Block;
  const int64_t e = shape.experts, n = shape.inter, h = shape.hidden;
  std::mt19937_64 rng(options.seed);
  Problem problem;
  // x as the experts take it, already quantized (its quantization is the caller's, outside the
  // timed launch): random e4m3 codes and one scale per 128 columns (Block) or per token.
  problem.x = random_e4m3(size_t(max_tokens) * h, rng);
  problem.x_scales = random_floats(block ? max_tokens * (h / 128) : max_tokens, 1e-3f, 1e-2f, rng);
  problem.gate_up = random_e4m3(size_t(e) * 2 * n * h, rng);
  problem.down = random_e4m3(size_t(e) * h * n, rng);
  problem.gate_up_scales = random_floats(block ? e * ((2 * n + 127) / 128) * (h / 128) : e * 2 * n, 5e-4f, 1.5e-3f, rng);
  problem.down_scales = random_floats(block ? e * ((h + 127) / 128) * (n / 128) : e * h, 5e-4f, 1.5e-3f, rng);
  problem.output = DeviceBuffer(size_t(max_tokens) * h * sizeof(float));

  cudaStream_t stream = nullptr;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  std::vector<cudaEvent_t> events(2 * options.repetitions);
  for (auto& event : events) check(cudaEventCreate(&event), "cudaEventCreate");
  struct Cleanup {
    cudaStream_t stream;
    std::vector<cudaEvent_t>& events;
    ~Cleanup() {
      for (auto event : events) cudaEventDestroy(event);
      cudaStreamDestroy(stream);
    }
  } cleanup{stream, events};

  result.file.device = device_directory_name(result.device.name);
  result.file.sm = result.device.sm;
  result.file.tuned = true;
  result.file.shape = shape;
  for (const int64_t tokens : options.batch_sizes) {
    RS_CHECK(tokens >= 1, "batch size {} must be >= 1", tokens);
    const MoeFp8Config fallback = kernels::default_moe_fp8_config(tokens, shape.top_k, e);
    // Above kMoeFp8SmallMMaxTokens a small_m config runs the tiled path: a duplicate, not timed.
    std::vector<MoeFp8Config> configs;
    std::copy_if(candidates.begin(), candidates.end(), std::back_inserter(configs),
                 [&](const MoeFp8Config& c) { return !c.small_m || kernels::moe_fp8_small_m_applies(c, tokens); });
    if (std::none_of(configs.begin(), configs.end(), [&](const auto& c) { return same_config(c, fallback); }) &&
        moe_fp8_config_problem(fallback, checks).empty())
      configs.push_back(fallback);

    // warmup + repetitions routings, each with pair lists for every align block in use.
    const int64_t pairs = tokens * shape.top_k;
    std::vector<Routing> routings(options.warmup + options.repetitions);
    std::vector<int32_t> experts(e);
    std::iota(experts.begin(), experts.end(), 0);
    for (auto& routing : routings) {
      std::vector<int32_t> ids(pairs);
      for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t k = 0; k < shape.top_k; ++k)  // partial Fisher-Yates: distinct experts per token
          std::swap(experts[k], experts[k + std::uniform_int_distribution<int64_t>(0, e - 1 - k)(rng)]);
        std::copy(experts.begin(), experts.begin() + shape.top_k, ids.begin() + t * shape.top_k);
      }
      routing.weights = random_floats(pairs, 0.0f, 1.0f / shape.top_k, rng);
      for (const auto& config : configs)
        if (!routing.lists.count(config.block_m)) routing.lists.emplace(config.block_m, align_on_host(ids, e, config.block_m));
    }

    auto run = [&](const MoeFp8Config& config) -> Timing {
      // The K-split target the backend gives the same config on this device.
      const kernels::Fp8ScaleLayout layout = block ? kernels::Fp8ScaleLayout::Block : kernels::Fp8ScaleLayout::Channel;
      const int64_t split_target = kernels::moe_fp8_resident_ctas(config, layout);
      const size_t workspace = kernels::moe_fp8_workspace_bytes(tokens, shape.top_k, h, n, config, split_target);
      if (workspace > problem.workspace.bytes() || !problem.workspace.as<void>()) problem.workspace = DeviceBuffer(workspace);
      auto launch = [&](const Routing& routing) {
        const PairLists& lists = routing.lists.at(config.block_m);
        MoeFp8ExpertsParams params{};
        params.x = problem.x.as<void>();
        params.x_scales = problem.x_scales.as<float>();
        params.weights = routing.weights.as<float>();
        params.gate_up = problem.gate_up.as<void>();
        params.gate_up_scales = problem.gate_up_scales.as<float>();
        params.down = problem.down.as<void>();
        params.down_scales = problem.down_scales.as<float>();
        params.sorted_pairs = lists.sorted_pairs.as<int32_t>();
        params.active_experts = lists.active_experts.as<int32_t>();
        params.active_offsets = lists.active_offsets.as<int32_t>();
        params.active_counts = lists.active_counts.as<int32_t>();
        params.block_slots = lists.block_slots.as<int32_t>();
        params.workspace = problem.workspace.as<void>();
        params.output = problem.output.as<float>();
        params.layout = layout;
        params.split_target_ctas = split_target;
        params.block_out = 128;
        params.tokens = tokens;
        params.top_k = shape.top_k;
        params.experts = e;
        params.hidden = h;
        params.inter = n;
        params.max_active = lists.max_active;
        params.max_blocks = lists.max_blocks;
        return kernels::launch_moe_experts_fp8(params, config, stream);
      };
      Timing timing;
      for (int r = 0; r < options.warmup + options.repetitions; ++r) {
        const bool timed = r >= options.warmup;
        if (timed) check(cudaEventRecord(events[2 * (r - options.warmup)], stream), "cudaEventRecord");
        if (const int status = launch(routings[r])) {
          cudaGetLastError();  // clear a non-sticky launch error; a sticky one fails the sync below
          timing.error = cudaGetErrorString(static_cast<cudaError_t>(status));
          break;
        }
        if (timed) check(cudaEventRecord(events[2 * (r - options.warmup) + 1], stream), "cudaEventRecord");
      }
      const cudaError_t synced = cudaStreamSynchronize(stream);
      RS_CHECK(synced == cudaSuccess, "{} at M={} failed on the device ({}); the CUDA context is lost",
               describe(config), tokens, cudaGetErrorString(synced));
      if (!timing.error.empty()) return timing;
      std::vector<double> us(options.repetitions);
      for (int r = 0; r < options.repetitions; ++r) {
        float ms = 0;
        check(cudaEventElapsedTime(&ms, events[2 * r], events[2 * r + 1]), "cudaEventElapsedTime");
        us[r] = ms * 1000.0;
      }
      std::nth_element(us.begin(), us.begin() + us.size() / 2, us.end());
      timing.median_us = us[us.size() / 2];
      return timing;
    };

    MoeFp8TuneRow row;
    row.tokens = tokens;
    row.skipped = refused;
    for (const auto& config : configs) {
      const Timing timing = run(config);
      if (!timing.error.empty()) {
        ++row.skipped;
        spdlog::warn("tune-moe: M={} {}: launch failed ({}), skipped", tokens, describe(config), timing.error);
        continue;
      }
      if (row.timed++ == 0 || timing.median_us < row.best_us) {
        row.best = config;
        row.best_us = timing.median_us;
      }
      if (same_config(config, fallback)) row.default_us = timing.median_us;
    }
    RS_CHECK(row.timed > 0, "no candidate config ran at M={} for {}", tokens, describe(shape));
    spdlog::info("tune-moe: M={:<5} best {} {:.1f} us{}, {} timed, {} skipped", tokens, describe(row.best),
                 row.best_us,
                 row.default_us > 0 ? fmt::format(" (default {:.1f} us, {:.2f}x)", row.default_us, row.default_us / row.best_us)
                                    : "",
                 row.timed, row.skipped);
    result.file.configs[tokens] = row.best;
    result.file.time_us[tokens] = std::round(row.best_us * 10) / 10;
    result.rows.push_back(row);
  }
  result.file.note = fmt::format("tuned by rackserve tune-moe on {} (sm_{}): median of {} launches per config, random "
                                 "e4m3 weights and uniform random routing",
                                 result.device.name, result.device.sm, options.repetitions);
  return result;
}

}  // namespace rackserve
