// Mixture-of-experts kernels (kernels/moe/): routing and expert evaluation.
#pragma once

#include "rackserve/kernels/common.h"

namespace rackserve::kernels {

struct MoeRouteParams {
  const float* logits;       // [tokens, experts]
  const float* bias;         // [experts] or nullptr (selection only)
  int32_t* expert_ids;       // [tokens, top_k + shared_slots]
  float* weights;            // [tokens, top_k + shared_slots]
  int64_t tokens, experts, top_k, groups, top_k_groups;
  bool sigmoid, normalize;
  float scaling;
  int64_t shared_slots = 0;  // appended always-on slots: ids experts, experts + 1, ..., weight 1
};
int launch_moe_route(const MoeRouteParams& params, Stream stream);

// --- Token sort/align per expert (moe_align_tokens) --------------------------------------
// A "pair" is one (token, slot) routing choice, numbered token * top_k + slot. The grouped
// expert kernels work on per-expert lists of pairs, each padded to a multiple of the align
// block (the M tile of the kernel that consumes them: kMoeAlignBlock for the BF16 grouped
// experts, MoeFp8Config::block_m for the FP8 ones) with sentinel entries (-1).
constexpr int64_t kMoeAlignBlock = 32;
constexpr int64_t kMoeAlignMaxBlock = 1024;
constexpr int64_t kMoeAlignMaxExperts = 1024;

// Upper bounds of the align outputs, known on the host without reading expert_ids:
// at most min(experts, pairs) experts are active, and sum_e ceil(count_e / block) <=
// (pairs + active * (block - 1)) / block.
struct MoeAlignLayout {
  int64_t pairs, max_active, max_blocks, capacity;  // capacity = max_blocks * block
};
inline MoeAlignLayout moe_align_layout(int64_t tokens, int64_t top_k, int64_t experts,
                                       int64_t block = kMoeAlignBlock) {
  const int64_t pairs = tokens * top_k;
  const int64_t max_active = pairs < experts ? pairs : experts;
  const int64_t max_blocks = (pairs + max_active * (block - 1) + block - 1) / block;
  return {pairs, max_active, max_blocks, max_blocks * block};
}

struct MoeAlignParams {
  const int32_t* expert_ids;  // [pairs] (= [tokens, top_k]); ids outside [0, experts) are dropped
  int32_t* sorted_pairs;      // [capacity]: each active expert's pairs in increasing order, then -1 up to
                              //   the next multiple of `block`; -1 past the last list
  int32_t* active_experts;    // [max_active]: experts with >= 1 pair, ascending; -1 after the last
  int32_t* active_offsets;    // [max_active]: start of each active expert's list (a multiple of the block)
  int32_t* active_counts;     // [max_active]: pairs of each active expert; 0 after the last
  int32_t* block_slots;       // [max_blocks]: active slot owning sorted_pairs[b * block, (b + 1) * block); -1 after
  int64_t pairs, experts, max_active, max_blocks;  // from moe_align_layout(..., block); experts <= kMoeAlignMaxExperts
  int64_t block = kMoeAlignBlock;                  // list padding granule, 1..kMoeAlignMaxBlock
};
// One CTA; deterministic (the lists keep pair order, no order-dependent atomics).
int launch_moe_align_tokens(const MoeAlignParams& params, Stream stream);

// Copies the pair lists an align made (and their bounds) into a routed-experts launch:
// MoeGroupedExpertsParams and MoeFp8ExpertsParams read them under the same names.
template <typename ExpertsParams>
void set_pair_lists(ExpertsParams& params, const MoeAlignParams& align) {
  params.sorted_pairs = align.sorted_pairs;
  params.active_experts = align.active_experts;
  params.active_offsets = align.active_offsets;
  params.active_counts = align.active_counts;
  params.block_slots = align.block_slots;
  params.max_active = align.max_active;
  params.max_blocks = align.max_blocks;
}

// --- Grouped routed experts (weights read once per expert per step) -----------------------
//   1. gate_up: activated[pair] = silu(gate_e x_t) * (up_e x_t) for every pair of expert e;
//   2. down:    contributions[pair] = weight[pair] * down_e activated[pair];
//   3. output[t] = sum over slots k in order of contributions[t * top_k + k] (no float atomics).
// Each active expert runs on one of two paths, chosen on the device from its pair count:
// below `tiled_min_tokens` the CUDA-core path (weights streamed with 16-byte loads, tiles of
// 8 tokens), from it on the mma.sync tiled path (M = the expert's pairs, N = weight rows).
// How the grouped experts' weights are stored.
enum class MoeWeightFormat : uint8_t {
  BF16,  // bf16 values
  INT4,   // W4A16: I32 words of 8 4-bit codes (column 8w + i in bits [4i, 4i + 4), value + 8) and
          // one bf16 scale per `group` inputs of a row: weight = (code - 8) * scale (Int4Weight, ops.h)
  NVFP4,  // W4A16: bytes of 2 e2m1 codes (column 2b low nibble, 2b + 1 high), one e4m3 scale per
          // 16 inputs of a row and one f32 scale per row: weight = e2m1 * e4m3 * row scale (Fp4Weight)
};

struct MoeGroupedExpertsParams {
  const void* x;                 // [tokens, hidden] bf16
  const float* weights;          // [pairs] routing weights (= [tokens, top_k])
  const void* gate_up;           // [experts, 2 * inter, hidden] bf16 (gate rows, then up rows); INT4: [.., hidden / 8] I32
  const void* down;              // [experts, hidden, inter] bf16; INT4: [.., inter / 8] I32
  const int32_t* sorted_pairs;   // the MoeAlignParams outputs, same names and shapes
  const int32_t* active_experts;
  const int32_t* active_offsets;
  const int32_t* active_counts;
  const int32_t* block_slots;
  void* activated_high;          // [pairs, inter] bf16 workspace: bf16(a)
  void* activated_low;           // [pairs, inter] bf16 workspace: bf16(a - bf16(a)); high + low keeps ~16 bits
  float* contributions;          // [pairs, hidden] f32 workspace
  float* output;                 // [tokens, hidden] f32
  int64_t tokens, top_k, experts, hidden, inter;  // hidden, inter multiples of 8
  int64_t max_active, max_blocks;                 // from moe_align_layout
  // Last, so that positional initialisers of the fields above stay valid (BF16 by default).
  MoeWeightFormat weight_format;
  const void* gate_up_scales;    // INT4: [experts, 2 * inter, hidden / group] bf16; NVFP4: e4m3 bytes, group 16
  const void* down_scales;       // INT4: [experts, hidden, inter / group] bf16; NVFP4: e4m3 bytes
  int64_t group;                 // INT4 / NVFP4 (16): inputs per scale, a multiple of 8 dividing hidden and inter
  const float* gate_up_row_scales;  // NVFP4: [experts, 2 * inter] f32
  const float* down_row_scales;     // NVFP4: [experts, hidden] f32
};

// How the grouped experts run (the problem is MoeGroupedExpertsParams).
struct MoeGroupedConfig {
  int64_t tiled_min_tokens;  // experts with at least this many pairs take the tiled path
};
// Decode-sized batches (<= 64 tokens) keep every expert on the streaming path: a few hot
// experts alone on the tiled path would leave most SMs idle. Larger batches send experts
// with >= 16 pairs to the tiled path. INT4 and NVFP4 weights take the streaming path at every
// size (the tiled path reads bf16 tiles; a 4-bit tile dequantized into shared memory is future work).
MoeGroupedConfig plan_moe_grouped(int64_t tokens, int64_t top_k, int64_t experts);
int launch_moe_experts_grouped(const MoeGroupedExpertsParams& params, const MoeGroupedConfig& config,
                               Stream stream);

}  // namespace rackserve::kernels
