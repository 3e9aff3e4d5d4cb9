// The fused FP8 (W8A8 e4m3) routed experts (moe_fp8_params.h): configs, the K-split plan,
// the workspace, validation, and the launches in order, on x the caller quantized per token:
//   1. gate_up GEMM (moe_fp8_gemm.cuh tiled, or moe_fp8_small_m.cu for a small_m config at
//      decode sizes) -> f32 partials [splits, pairs, 2 * inter];
//   2. SiLU x up and its e4m3 quantization per pair (moe_fp8_activation.cu);
//   3. down GEMM -> f32 partials [splits, pairs, hidden];
//   4. output[t] = sum over slots k in order of weight[t, k] x (sum over splits in order).
// Every sum has a fixed order (no float atomics), so a run is bit-reproducible, and the split
// plan does not depend on the device, so neither does the order.
#include <algorithm>
#include <cstdio>

#include "common/device_utils.cuh"
#include "common/shared_memory_budget.cuh"
#include "gemm/linear_fp8.cuh"
#include "moe/moe_fp8.cuh"
#include "rackserve/kernels/moe_params.h"

namespace rackserve::kernels {

namespace {

constexpr int kBlockMs[] = {16, 32, 64};
constexpr int kBlockNs[] = {32, 64, 128};
constexpr int kBlockKs[] = {64, 128};
constexpr int kStages[] = {2, 3, 4};
constexpr int kWarps[] = {4, 8};

// A split keeps >= 512 bytes of k (4 or 8 K tiles: the ring gets past its prologue).
constexpr int64_t kMinSplitK = 512;
constexpr int kMaxSplits = 32;
// The split plan's guess of the active align blocks, without the expert count: one per pair
// up to this many experts, else one per block_m pairs.
constexpr int64_t kPlanExperts = 256;
constexpr int kSumThreads = 256;

template <size_t N>
constexpr bool contains(const int (&values)[N], int value) {
  for (int v : values)
    if (v == value) return true;
  return false;
}

size_t align256(size_t bytes) { return (bytes + 255) / 256 * 256; }

// output[t, h] = sum over k in order of weight[t, k] * (sum over s in order of partials[s][t * top_k + k][h]).
// Bounded to 4 CTAs per SM (64 registers): left free, ptxas gave sm_90a 32 registers and spilled.
__global__ void __launch_bounds__(kSumThreads, 4) moe_fp8_sum_slots_kernel(MoeFp8ExpertsParams p, const float* partials,
                                                                        int splits) {
  wait_for_prior_kernel();
  const int64_t pairs = p.tokens * p.top_k, quads = p.hidden / 4, total = p.tokens * quads;
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = index / quads, h = (index % quads) * 4;
    float4 sum = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int64_t k = 0; k < p.top_k; ++k) {
      const int64_t pair = t * p.top_k + k;
      float4 value = *reinterpret_cast<const float4*>(partials + pair * p.hidden + h);
#pragma unroll 4  // independent loads in flight; the sums keep split order
      for (int s = 1; s < splits; ++s) {
        const float4 more = *reinterpret_cast<const float4*>(partials + (s * pairs + pair) * p.hidden + h);
        value.x += more.x, value.y += more.y, value.z += more.z, value.w += more.w;
      }
      const float weight = p.weights[pair];
      if (k == 0) {
        sum = make_float4(value.x * weight, value.y * weight, value.z * weight, value.w * weight);
      } else {
        sum.x += value.x * weight, sum.y += value.y * weight, sum.z += value.z * weight, sum.w += value.w * weight;
      }
    }
    *reinterpret_cast<float4*>(p.output + t * p.hidden + h) = sum;
  }
}

MoeFp8GemmKernel gemm_kernel(const MoeFp8Config& config, Fp8ScaleLayout layout) {
  return layout == Fp8ScaleLayout::Block ? moe_fp8_gemm_block_kernel(config) : moe_fp8_gemm_channel_kernel(config);
}

int validate(const MoeFp8ExpertsParams& p, const MoeFp8Config& config) {
  const bool block = p.layout == Fp8ScaleLayout::Block;
  if (!block && p.layout != Fp8ScaleLayout::Channel) return cudaErrorInvalidValue;
  if (!moe_fp8_config_supported(config)) return cudaErrorInvalidValue;
  const int64_t granule = block ? kFp8BlockK : 16;
  if (p.tokens < 0 || p.top_k <= 0 || p.experts <= 0 || p.experts > kMoeAlignMaxExperts || p.hidden <= 0 ||
      p.inter <= 0 || p.hidden % granule != 0 || p.inter % granule != 0 || (block && p.block_out <= 0))
    return cudaErrorInvalidValue;
  // The activation row lives in shared memory (moe_fp8_activation.cu).
  if (p.inter * 4 > kSharedMemoryBudgetBytes - 1024) return cudaErrorInvalidValue;
  const MoeAlignLayout layout = moe_align_layout(p.tokens, p.top_k, p.experts, config.block_m);
  if (layout.pairs > INT32_MAX / 2 || layout.capacity > INT32_MAX || p.max_active < layout.max_active ||
      p.max_blocks < layout.max_blocks || p.max_blocks > INT32_MAX)
    return cudaErrorInvalidValue;
  // The GEMM's Block-scale offsets are 32-bit.
  const int64_t gate_up_scales = p.experts * ((2 * p.inter + p.block_out - 1) / std::max<int64_t>(p.block_out, 1)) *
                                 fp8_k_blocks(p.hidden);
  const int64_t down_scales = p.experts * ((p.hidden + p.block_out - 1) / std::max<int64_t>(p.block_out, 1)) *
                              fp8_k_blocks(p.inter);
  if (block && (gate_up_scales >= INT32_MAX || down_scales >= INT32_MAX || p.tokens * fp8_k_blocks(p.hidden) >= INT32_MAX ||
                layout.pairs * fp8_k_blocks(p.inter) >= INT32_MAX))
    return cudaErrorInvalidValue;
  if ((2 * p.inter + config.block_n - 1) / config.block_n > 65535 || (p.hidden + config.block_n - 1) / config.block_n > 65535)
    return cudaErrorInvalidValue;
  if (p.tokens > 0 && (!p.x || !p.x_scales || !p.weights || !p.gate_up || !p.gate_up_scales || !p.down ||
                       !p.down_scales || !p.sorted_pairs || !p.active_experts || !p.active_offsets ||
                       !p.active_counts || !p.block_slots || !p.workspace || !p.output))
    return cudaErrorInvalidValue;
  if (!aligned16(p.x) || !aligned16(p.gate_up) || !aligned16(p.down) || !aligned16(p.workspace) || !aligned16(p.output))
    return cudaErrorInvalidValue;
  return cudaSuccess;
}

int launch_gemm(MoeFp8GemmKernel kernel, const MoeFp8GemmArgs& args, const MoeFp8Config& config, int64_t max_blocks,
                int splits, cudaStream_t stream) {
  if (max_blocks == 0) return cudaSuccess;
  const int64_t n_tiles = (args.n + config.block_n - 1) / config.block_n;
  dim3 grid(static_cast<unsigned>(max_blocks), static_cast<unsigned>(n_tiles), static_cast<unsigned>(splits));
  kernel<<<grid, config.warps * 32, moe_fp8_tiled_shared_bytes(config), stream>>>(args, config.block_k, config.stages);
  return launch_status();
}

}  // namespace

bool moe_fp8_config_supported(const MoeFp8Config& c) {
  return contains(kBlockMs, c.block_m) && contains(kBlockNs, c.block_n) && contains(kBlockKs, c.block_k) &&
         contains(kStages, c.stages) && contains(kWarps, c.warps);
}

int moe_fp8_candidate_configs(MoeFp8Config* out, int capacity) {
  int count = 0;
  // The small-M path (decode sizes; its tiled fields are the decode default's).
  if (count < capacity) {
    out[count] = MoeFp8Config{16, 64, 128, 4, 4};
    out[count++].small_m = true;
  }
  for (int block_m : kBlockMs)
    for (int block_n : kBlockNs)
      for (int block_k : kBlockKs)
        for (int stages : kStages)
          for (int warps : kWarps) {
            if (count >= capacity) return count;
            out[count++] = MoeFp8Config{block_m, block_n, block_k, stages, warps};
          }
  return count;
}

MoeFp8SplitPlan plan_moe_fp8_splits(int64_t pairs, int64_t n, int64_t k, const MoeFp8Config& config,
                                    int64_t target_ctas) {
  if (target_ctas <= 0) target_ctas = kMoeFp8DefaultSplitCtas;
  const int64_t k_tiles = std::max<int64_t>(1, (k + config.block_k - 1) / config.block_k);
  const int64_t blocks = std::max<int64_t>((pairs + config.block_m - 1) / config.block_m, std::min(pairs, kPlanExperts));
  const int64_t tiles = std::max<int64_t>(1, blocks * ((n + config.block_n - 1) / config.block_n));
  // As many splits as keep the CTAs within the target (one wave of resident CTAs), at least one.
  int64_t splits = target_ctas / tiles;
  splits = std::min<int64_t>({splits, kMaxSplits, std::max<int64_t>(1, k / kMinSplitK)});
  splits = std::max<int64_t>(1, splits);
  MoeFp8SplitPlan plan;
  plan.k_tiles_per_split = static_cast<int>((k_tiles + splits - 1) / splits);
  plan.splits = static_cast<int>((k_tiles + plan.k_tiles_per_split - 1) / plan.k_tiles_per_split);  // none empty
  return plan;
}

MoeFp8Workspace moe_fp8_workspace(int64_t tokens, int64_t top_k, int64_t hidden, int64_t inter,
                                  const MoeFp8Config& config, int64_t split_target_ctas) {
  const int64_t pairs = tokens * top_k;
  MoeFp8Workspace w;
  if (moe_fp8_small_m_applies(config, tokens)) {
    w.gate_up = plan_moe_fp8_small_m(tokens, top_k, 2 * inter, hidden);
    w.down = plan_moe_fp8_small_m(tokens, top_k, hidden, inter);
  } else {
    w.gate_up = plan_moe_fp8_splits(pairs, 2 * inter, hidden, config, split_target_ctas);
    w.down = plan_moe_fp8_splits(pairs, hidden, inter, config, split_target_ctas);
  }
  // Scales sized for the Block layout (>= the Channel layout's one per row).
  const int64_t a_scales = pairs * std::max<int64_t>(1, fp8_k_blocks(inter));
  size_t at = 0;
  auto take = [&](size_t bytes) {
    const size_t offset = at;
    at += align256(bytes);
    return offset;
  };
  w.gate_up_partials = take(static_cast<size_t>(w.gate_up.splits) * pairs * 2 * inter * 4);
  w.activation_q = take(static_cast<size_t>(pairs * inter));
  w.activation_scales = take(static_cast<size_t>(a_scales) * 4);
  w.down_partials = take(static_cast<size_t>(w.down.splits) * pairs * hidden * 4);
  w.bytes = at;
  return w;
}

size_t moe_fp8_workspace_bytes(int64_t tokens, int64_t top_k, int64_t hidden, int64_t inter,
                               const MoeFp8Config& config, int64_t split_target_ctas) {
  return moe_fp8_workspace(tokens, top_k, hidden, inter, config, split_target_ctas).bytes;
}

int64_t moe_fp8_resident_ctas(const MoeFp8Config& config, Fp8ScaleLayout layout) {
  const MoeFp8GemmKernel kernel = gemm_kernel(config, layout);
  const int bytes = static_cast<int>(moe_fp8_tiled_shared_bytes(config));
  int device = 0, sms = 0, per_sm = 0;
  if (!kernel || cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
      opt_in_dynamic_shared_memory(reinterpret_cast<const void*>(kernel), bytes, "moe_fp8_gemm") != cudaSuccess ||
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, config.warps * 32, bytes) != cudaSuccess) {
    cudaGetLastError();  // leave no sticky error for the next launch check
    return 0;
  }
  return int64_t{sms} * per_sm;
}

int launch_moe_experts_fp8(const MoeFp8ExpertsParams& p, const MoeFp8Config& config, Stream stream) {
  if (int status = validate(p, config)) return status;
  const MoeFp8GemmKernel kernel = gemm_kernel(config, p.layout);
  if (!kernel) return cudaErrorInvalidValue;
  // Refuse a config over the device's limit before anything is launched.
  if (int status = opt_in_dynamic_shared_memory(reinterpret_cast<const void*>(kernel),
                                                static_cast<int>(moe_fp8_shared_bytes(config)), "moe_fp8_gemm"))
    return status;
  if (p.tokens == 0) return cudaSuccess;
  auto s = static_cast<cudaStream_t>(stream);
  const bool block = p.layout == Fp8ScaleLayout::Block;
  const int64_t pairs = p.tokens * p.top_k;
  const MoeFp8Workspace w = moe_fp8_workspace(p.tokens, p.top_k, p.hidden, p.inter, config, p.split_target_ctas);
  auto* workspace = static_cast<uint8_t*>(p.workspace);
  auto* gate_up_partials = reinterpret_cast<float*>(workspace + w.gate_up_partials);
  auto* activation_q = workspace + w.activation_q;
  auto* activation_scales = reinterpret_cast<float*>(workspace + w.activation_scales);
  auto* down_partials = reinterpret_cast<float*>(workspace + w.down_partials);

  MoeFp8GemmArgs gemm{};
  gemm.activations = static_cast<const uint8_t*>(p.x);
  gemm.activation_scales = p.x_scales;
  gemm.pairs_per_row = p.top_k;
  gemm.weights = static_cast<const uint8_t*>(p.gate_up);
  gemm.weight_scales = p.gate_up_scales;
  gemm.partials = gate_up_partials;
  gemm.sorted_pairs = p.sorted_pairs;
  gemm.active_experts = p.active_experts;
  gemm.active_offsets = p.active_offsets;
  gemm.active_counts = p.active_counts;
  gemm.block_slots = p.block_slots;
  gemm.pairs = pairs;
  gemm.n = 2 * p.inter;
  gemm.k = p.hidden;
  gemm.block_out = block ? p.block_out : 1;
  gemm.k_tiles_per_split = w.gate_up.k_tiles_per_split;
  const bool small_m = moe_fp8_small_m_applies(config, p.tokens);
  // One GEMM on the chosen path: tiled over align blocks, or small-M over active slots.
  auto run_gemm = [&](const MoeFp8SplitPlan& plan) {
    return small_m ? launch_moe_fp8_gemm_small_m(gemm, p.layout, plan, p.tokens, p.max_active, s)
                   : launch_gemm(kernel, gemm, config, p.max_blocks, plan.splits, s);
  };
  if (int status = run_gemm(w.gate_up)) return status;

  if (int status = launch_moe_fp8_activation(
          {gate_up_partials, activation_q, activation_scales, pairs, p.inter, w.gate_up.splits, p.layout}, s))
    return status;

  gemm.activations = activation_q;
  gemm.activation_scales = activation_scales;
  gemm.pairs_per_row = 1;
  gemm.weights = static_cast<const uint8_t*>(p.down);
  gemm.weight_scales = p.down_scales;
  gemm.partials = down_partials;
  gemm.n = p.hidden;
  gemm.k = p.inter;
  gemm.k_tiles_per_split = w.down.k_tiles_per_split;
  if (int status = run_gemm(w.down)) return status;

  moe_fp8_sum_slots_kernel<<<grid_blocks(p.tokens * p.hidden / 4, kSumThreads, 4096), kSumThreads, 0, s>>>(
      p, down_partials, w.down.splits);
  return launch_status();
}

}  // namespace rackserve::kernels
