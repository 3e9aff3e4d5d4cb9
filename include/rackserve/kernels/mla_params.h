// Multi-head latent attention kernels (kernels/attention/): RoPE, the paged latent
// cache write, and absorbed attention over the paged cache.
#pragma once

#include "rackserve/kernels/common.h"

namespace rackserve::kernels {

// How the paged latent cache stores an entry (one token's lora + rope values).
enum class MlaCacheType : uint8_t {
  BF16,  // bf16 values
  E4M3,  // OCP e4m3fn bytes and one f32 scale per entry: value = e4m3 * scale
};
// E4M3 entries: scale = max(amax / 448, kMlaCacheMinScale), byte = e4m3_rn_satfinite(x / scale),
// x the f32 values a bf16 cache would hold before rounding (the CPU oracle's rule, backend/ops.h).
constexpr float kMlaCacheMinScale = 1e-10f / 448.0f;

struct RopeParams {
  void* x;                  // [tokens, heads, width] bf16, rotated in place
  const int32_t* positions; // [tokens]
  const float* inv_freq;    // [dim / 2]
  int64_t tokens, heads, width, offset, dim;  // columns [offset, offset + dim) rotate
  float scale;              // multiplies cos and sin
  bool interleaved;         // input pairs (2i, 2i+1) instead of (i, i + dim/2); output is half-split
};
int launch_rope(const RopeParams& params, Stream stream);

struct MlaCacheWriteParams {
  const void* kv;           // [tokens, lora + dim] bf16 output of kv_a_proj_with_mqa
  const void* norm_weight;  // [lora] bf16
  const int32_t* positions; // [tokens]
  const int32_t* slots;     // [tokens], page * page_size + offset
  const float* inv_freq;    // [dim / 2]
  void* cache;              // [pages * page_size, lora + dim] bf16, or e4m3 bytes when cache_type is E4M3
  float* cache_scales;      // [pages * page_size] f32 when cache_type is E4M3, else unused
  MlaCacheType cache_type;
  int64_t tokens, lora, dim, capacity;  // E4M3: lora + dim <= 8192 (the f32 entry is staged in shared memory)
  float eps, rope_scale;
  bool interleaved;
};
int launch_mla_cache_write(const MlaCacheWriteParams& params, Stream stream);

struct MlaAttentionParams {
  const void* q;               // [tokens, heads, nope + rope] bf16 (rope part rotated)
  const void* kv_b;            // [heads * (nope + v), lora] bf16: W_UK rows then W_UV rows per head
  const void* cache;           // [pages, page_size, lora + rope] bf16, or e4m3 bytes when cache_type is E4M3
  const float* cache_scales;   // [pages, page_size] f32 when cache_type is E4M3, else unused
  MlaCacheType cache_type;
  const int32_t* query_start;  // [sequences + 1]
  const int32_t* block_table;  // [sequences, max_blocks]
  const int32_t* positions;    // [tokens]
  float* q_latent;             // [tokens, heads, lora] f32 workspace
  float* out_latent;           // [tokens, heads, lora] f32 workspace
  void* output;                // [tokens, heads, v] bf16
  int64_t tokens, sequences, heads, nope, rope, v, lora, page_size, max_blocks;  // lora % 32 == 0, lora <= 512
  float softmax_scale;
  // DeepSeek sparse attention: [tokens, top_k] int32, row t the min(positions[t] + 1, top_k)
  // ascending cache positions the token attends to, then -1 to the row's end (dsa_top_k's rows);
  // nullptr: every position <= positions[t].
  const int32_t* key_positions;
  int64_t top_k;
};
// Three launches: q_latent = W_UK^T q_nope; attention over the pages; output = W_UV out_latent.
int launch_mla_attention(const MlaAttentionParams& params, Stream stream);
// Steps 1 and 3 alone, around the split-KV decode kernel (mla_decode_params.h) that
// replaces step 2; they read and write the same workspaces.
int launch_mla_q_latent(const MlaAttentionParams& params, Stream stream);
int launch_mla_output(const MlaAttentionParams& params, Stream stream);

}  // namespace rackserve::kernels
