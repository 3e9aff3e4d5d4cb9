// Pieces shared by the fused FP8 routed experts (moe_experts_fp8.cu runs them in order):
// the expert GEMM that both stages use (moe_fp8_gemm.cuh, instantiated per scale layout in
// moe_fp8_gemm_block.cu / moe_fp8_gemm_channel.cu), its K-split plan, the workspace layout,
// and the SiLU x up + e4m3 quantization of the activation (moe_fp8_activation.cu).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "rackserve/kernels/moe_fp8_params.h"

namespace rackserve::kernels {

// One expert GEMM over the aligned pair lists: for every block b of sorted_pairs (expert e =
// active_experts[block_slots[b]]) and weight rows n,
//   partials[split][pair][n] = sum over the split's k of A[pair][k] W_e[n][k], scaled
// with the layout's scales (Block: per 128-wide k block; Channel: x_scale * w_scale at the end).
// gate_up: A = x quantized per token (row = pair / top_k); down: A = the activation quantized
// per pair (row = pair).
struct MoeFp8GemmArgs {
  const uint8_t* activations;      // [rows, k] e4m3, 16-byte aligned rows (k % 16 == 0)
  const float* activation_scales;  // Block: [rows, k / 128]; Channel: [rows]
  int64_t pairs_per_row;           // pair -> activation row = pair / pairs_per_row
  const uint8_t* weights;          // [experts, n, k] e4m3
  const float* weight_scales;      // Block: [experts, ceil(n / block_out), k / 128]; Channel: [experts, n]
  float* partials;                 // [splits, pairs, n] f32
  const int32_t* sorted_pairs;     // the align outputs, block = the config's block_m
  const int32_t* active_experts;
  const int32_t* active_offsets;   // (the small-M path's; the tiled one walks block_slots)
  const int32_t* active_counts;
  const int32_t* block_slots;
  int64_t pairs, n, k, block_out;
  int k_tiles_per_split;  // tiled: K tiles of config.block_k bytes per split (gridDim.z splits)
};

// Every GEMM instantiation has this signature; block_k and stages are runtime values.
using MoeFp8GemmKernel = void (*)(MoeFp8GemmArgs args, int block_k, int stages);
// The instantiation for config.block_m x block_n x warps (nullptr when unsupported).
MoeFp8GemmKernel moe_fp8_gemm_block_kernel(const MoeFp8Config& config);
MoeFp8GemmKernel moe_fp8_gemm_channel_kernel(const MoeFp8Config& config);

// K split of one GEMM: about `target_ctas` CTAs (MoeFp8ExpertsParams::split_target_ctas).
struct MoeFp8SplitPlan {
  int splits = 1;
  int k_tiles_per_split = 1;  // tiled: K tiles of block_k bytes; small-M: 128-byte K blocks
  int row_warps = 1;          // small-M only (small_m_stream.cuh)
};
MoeFp8SplitPlan plan_moe_fp8_splits(int64_t pairs, int64_t n, int64_t k, const MoeFp8Config& config,
                                    int64_t target_ctas);

// The small-M path (moe_fp8_small_m_applies): the dense small-M GEMM design
// (gemm/small_m_stream.cuh) over each active expert's [n, k] weights, gridDim.z = the active
// slots, the expert's pairs as the tokens (<= `tokens` of them: a token picks an expert once).
// Writes the same partials [splits, pairs, n] as the tiled GEMM.
MoeFp8SplitPlan plan_moe_fp8_small_m(int64_t tokens, int64_t top_k, int64_t n, int64_t k);
int launch_moe_fp8_gemm_small_m(const MoeFp8GemmArgs& args, Fp8ScaleLayout layout, const MoeFp8SplitPlan& plan,
                                int64_t tokens, int64_t max_active, cudaStream_t stream);

// Byte offsets inside the workspace (each 256-byte aligned) and its total size.
struct MoeFp8Workspace {
  MoeFp8SplitPlan gate_up, down;
  size_t gate_up_partials, activation_q, activation_scales, down_partials, bytes;
};
MoeFp8Workspace moe_fp8_workspace(int64_t tokens, int64_t top_k, int64_t hidden, int64_t inter,
                                  const MoeFp8Config& config, int64_t split_target_ctas);

// a[pair] = silu(gate) * up from the gate_up partials [splits, pairs, 2 * inter] (summed in
// split order), quantized per the layout (Block: groups of 128 columns; Channel: the whole row)
// with the CPU oracle's rounding, into q [pairs, inter] e4m3 and scales.
struct MoeFp8ActivationArgs {
  const float* gate_up_partials;
  uint8_t* q;
  float* scales;  // Block: [pairs, inter / 128]; Channel: [pairs]
  int64_t pairs, inter;
  int splits;
  Fp8ScaleLayout layout;
};
int launch_moe_fp8_activation(const MoeFp8ActivationArgs& args, cudaStream_t stream);

}  // namespace rackserve::kernels
