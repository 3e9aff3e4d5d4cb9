// Fused FP8 (e4m3, W8A8) routed experts (kernels/moe/): the FP8 counterpart of
// MoeGroupedExpertsParams. x comes quantized per token (launch_fp8_quantize_activations, or a
// fused producer: fp8_activation_params.h). Each routed pair (token, slot) runs
//   1. gate_up: a = silu(gate_e x_t) * (up_e x_t), each product in the W8A8 math of
//      fp8_gemm_params.h (f32 accumulation, both scales);
//   2. down:    the activation a is quantized again (same layout rules, per pair) and
//               contribution = weight[pair] * (down_e a);
//   3. output[t] = sum over slots k in order of contribution[t * top_k + k] (no float atomics).
// The CPU oracle's moe_experts with FP8 experts is the contract (backend/cpu/fp8_linear.h).
#pragma once

#include <cstddef>

#include "rackserve/kernels/common.h"
#include "rackserve/kernels/fp8_gemm_params.h"

namespace rackserve::kernels {

// The problem. Pair lists come from launch_moe_align_tokens (moe_params.h), run with
// config.block_m as the align block.
struct MoeFp8ExpertsParams {
  const void* x;                 // [tokens, hidden] e4m3, x quantized per the layout (Block: per 128 columns)
  const float* x_scales;         // Block: [tokens, hidden / 128]; Channel: [tokens]
  const float* weights;          // [pairs] routing weights (= [tokens, top_k])
  const void* gate_up;           // [experts, 2 * inter, hidden] e4m3 (gate rows, then up rows)
  const float* gate_up_scales;   // Block: [experts, ceil(2 * inter / block_out), hidden / 128]; Channel: [experts, 2 * inter]
  const void* down;              // [experts, hidden, inter] e4m3
  const float* down_scales;      // Block: [experts, ceil(hidden / block_out), inter / 128]; Channel: [experts, hidden]
  const int32_t* sorted_pairs;   // the MoeAlignParams outputs, same names and shapes
  const int32_t* active_experts;
  const int32_t* active_offsets;
  const int32_t* active_counts;
  const int32_t* block_slots;
  void* workspace;               // moe_fp8_workspace_bytes(...) bytes, 16-byte aligned
  float* output;                 // [tokens, hidden] f32
  Fp8ScaleLayout layout;
  int64_t block_out;             // Block: weight rows per scale (128 in real checkpoints); Channel: ignored
  int64_t tokens, top_k, experts, hidden, inter;  // Block: hidden, inter multiples of 128; Channel: of 16
  int64_t max_active, max_blocks;                 // from moe_align_layout with block_m
  // The tiled GEMMs' K-split target in CTAs (moe_fp8_resident_ctas of the config on this
  // device); <= 0 takes kMoeFp8DefaultSplitCtas. The workspace must be sized with the same.
  int64_t split_target_ctas = 0;
};

// How it runs (the tuned JSON files under configs/kernels/ hold exactly these fields, under
// these names; src/backend/cuda/moe_fp8_config_file.h reads, writes and prints them).
struct MoeFp8Config {
  int block_m = 16;  // pairs per M tile and the align block: 16, 32 or 64
  int block_n = 64;  // weight rows per CTA tile: 32, 64 or 128
  int block_k = 128; // K slice per pipeline stage in e4m3 bytes: 64 or 128
  int stages = 3;    // cp.async ring depth: 2, 3 or 4
  int warps = 4;     // warps per CTA: 4 or 8
  // At <= kMoeFp8SmallMMaxTokens tokens, run both GEMMs on the small-M path instead of the
  // tiled one: the dense small-M GEMM (per-warp cp.async rings over each active expert's weight
  // rows, split over K; block_n, block_k, stages and warps unused). Above it the tiled GEMM runs
  // with the fields above. Needs each token to route to an expert at most once (top-k of
  // distinct experts), so that no expert has more pairs than there are tokens.
  bool small_m = false;
};

constexpr int64_t kMoeFp8SmallMMaxTokens = 64;
// Whether a launch of `tokens` tokens with `config` runs the small-M path.
constexpr bool moe_fp8_small_m_applies(const MoeFp8Config& config, int64_t tokens) {
  return config.small_m && tokens <= kMoeFp8SmallMMaxTokens;
}
// The small-M path's largest shared-memory need: 8 warps x 6 stages x 2 KB of weights (one CTA
// per SM above 16 tokens); 48 KB at <= 16.
constexpr int kMoeFp8SmallMSharedBytes = 8 * 6 * 2048;

// Dynamic shared memory of a config, in plain constexpr C++ so the kernels (launches and
// static_asserts), the tuner and the CUDA-free config files (moe_fp8_config_file.h) share one
// formula: the cp.async ring, `stages` slots of block_n weight rows + block_m pair rows of
// block_k e4m3 bytes (after the main loop the K groups' reduction reuses it), then the tables:
// per pair its activation row's byte offset (int64), id and Block scale row (int32), per weight
// row its Block scale row (int32). A small_m config needs the larger of that and the small-M
// ring. Checked against the device's opt-in limit before every launch; a config over it is
// refused, never launched.
constexpr int moe_fp8_ring_bytes(int block_m, int block_n, int block_k, int stages) {
  return stages * (block_m + block_n) * block_k;
}
constexpr int moe_fp8_table_bytes(int block_m, int block_n) { return block_m * (8 + 4 + 4) + block_n * 4; }
// What the tiled GEMMs launch with (a small_m config runs them above kMoeFp8SmallMMaxTokens).
constexpr size_t moe_fp8_tiled_shared_bytes(const MoeFp8Config& config) {
  return static_cast<size_t>(moe_fp8_ring_bytes(config.block_m, config.block_n, config.block_k, config.stages) +
                             moe_fp8_table_bytes(config.block_m, config.block_n));
}
// The most either path of `config` launches with: what must fit the device.
constexpr size_t moe_fp8_shared_bytes(const MoeFp8Config& config) {
  const size_t tiled = moe_fp8_tiled_shared_bytes(config);
  const size_t small_m = static_cast<size_t>(kMoeFp8SmallMSharedBytes);
  return config.small_m && small_m > tiled ? small_m : tiled;
}
// Whether the kernel has an instantiation for `config`'s field values.
bool moe_fp8_config_supported(const MoeFp8Config& config);
// The tiled GEMMs' K splits aim at this many CTAs when the device's own count is not given:
// about 2 resident CTAs on each of SM120's 188 SMs.
constexpr int64_t kMoeFp8DefaultSplitCtas = 384;
// CTAs of `config`'s tiled GEMM resident at once on the current device (SMs x the kernel's
// occupancy): the split target that fills every resident slot once, 660 on an H200 (132 SMs x
// 5) where the fixed 384 left 0.73 of a wave (ncu, 2026-12-05). 0 when it cannot be told (an
// unsupported config, no device). Splits change the order of the f32 sums, so one problem sums
// the same way on every device with the same SM count and occupancy, not on every device.
int64_t moe_fp8_resident_ctas(const MoeFp8Config& config, Fp8ScaleLayout layout);
// Bytes of `workspace` for a problem of this size, K-split for `split_target_ctas` (as in
// MoeFp8ExpertsParams).
size_t moe_fp8_workspace_bytes(int64_t tokens, int64_t top_k, int64_t hidden, int64_t inter,
                               const MoeFp8Config& config, int64_t split_target_ctas);
// The config for `tokens` tokens when no tuned file has one (and what `tune-moe
// --untuned-defaults` writes): decode, or few pairs per expert, takes 16-pair blocks and 64-row
// tiles split over K (streaming the weights once); more pairs per expert take larger M tiles to
// reuse each weight byte more. 41, 61 and 74 KB of shared memory: all fit SM120's 99 KB.
constexpr MoeFp8Config default_moe_fp8_config(int64_t tokens, int64_t top_k, int64_t experts) {
  const int64_t pairs_per_expert = tokens * (top_k > 1 ? top_k : 1) / (experts > 1 ? experts : 1);
  if (tokens <= 64 || pairs_per_expert <= 16) return {16, 64, 128, 4, 4};
  if (pairs_per_expert <= 48) return {32, 128, 128, 3, 8};
  return {64, 128, 128, 3, 8};
}
// Every supported config (the tuner's candidates; some may not fit a given device).
int moe_fp8_candidate_configs(MoeFp8Config* out, int capacity);  // returns the count written (<= capacity)

// Returns cudaErrorInvalidValue for a malformed problem or unsupported config, and
// cudaErrorInvalidConfiguration (saying why on stderr) when the config's shared memory exceeds
// the device's limit.
int launch_moe_experts_fp8(const MoeFp8ExpertsParams& params, const MoeFp8Config& config, Stream stream);

}  // namespace rackserve::kernels
