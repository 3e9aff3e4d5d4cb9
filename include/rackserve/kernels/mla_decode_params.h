// Split-KV (flash-decoding) MLA decode over the paged latent cache: step 2 of absorbed
// MLA (out_latent = softmax(q_latent . latent + q_rope . rope) . latent) for queries whose
// context is long, with all heads of a CTA's head group sharing one read of each latent
// row. Steps 1 and 3 are launch_mla_q_latent / launch_mla_output (mla_params.h).
#pragma once

#include "rackserve/kernels/common.h"
#include "rackserve/kernels/mla_params.h"

namespace rackserve::kernels {

// The problem. Query token t attends cache positions 0..positions[t] of its sequence
// (found from query_start), or the positions key_positions lists, so any batch is computed
// correctly; it is fast when each sequence has few queries (decode), since every query reads
// its whole context.
struct MlaDecodeParams {
  const float* q_latent;       // [tokens, heads, lora] f32 (W_UK^T q_nope, unscaled)
  const void* q;               // [tokens, heads, nope + rope] bf16; columns [nope, nope + rope) are the rotated rope part
  const void* cache;           // [pages, page_size, lora + rope] bf16 (or e4m3 bytes, see cache_type), 16-byte aligned
  const int32_t* query_start;  // [sequences + 1]
  const int32_t* block_table;  // [sequences, max_blocks] page ids
  const int32_t* positions;    // [tokens]
  float* out_latent;           // [tokens, heads, lora] f32, normalised attention output in latent space
  float* partial_out;          // [tokens, splits, heads, lora] f32 workspace; may be nullptr when splits == 1
  float* partial_lse;          // [tokens, splits, heads] f32 workspace (log2 domain); may be nullptr when splits == 1
  int64_t tokens, sequences, heads, nope, rope, lora, page_size, max_blocks;
  float softmax_scale;
  // Last, so positional initialisers of the fields above stay valid (BF16 and nullptr by default).
  MlaCacheType cache_type;     // BF16, or E4M3: cache holds e4m3 bytes (mla_params.h)
  const float* cache_scales;   // [pages, page_size] f32 when E4M3, else unused
  const int32_t* key_positions;  // sparse attention's chosen positions, as MlaAttentionParams; nullptr: causal
  int64_t top_k;
};

// How to run it: the context of each query is cut into chunks of keys_per_split keys
// (a multiple of 16); query t uses min(splits, ceil(keys_t / keys_per_split)) CTAs per
// head group, the last one taking the remainder.
struct MlaDecodeConfig {
  int splits = 1;
  int keys_per_split = 0;
};

// True when the mma fast path covers the shape: lora 512, rope 64 (DeepSeek-V3, Kimi-K2,
// GLM-5), nope % 8 == 0; any head count and page size (a power of two is fastest). Other
// shapes use launch_mla_attention.
bool mla_decode_supported(int64_t lora, int64_t rope, int64_t nope);

// Picks splits for the fewest waves x keys per CTA (one CTA per SM, a fixed cost per CTA):
// tokens * head_groups * splits CTAs fill the GPU without a mostly empty last wave, never
// cutting chunks below 256 keys; keys_per_split is a multiple of the kernel's 32-key tile.
// max_keys bounds positions[t] + 1 over the batch (an
// underestimate stays correct, only slower); sm_count <= 0 asks the current device.
MlaDecodeConfig plan_mla_decode(int64_t tokens, int64_t heads, int64_t max_keys, int sm_count = 0);

// Floats of workspace the config needs (partial_out + partial_lse), 0 when splits == 1.
int64_t mla_decode_workspace_floats(int64_t tokens, int64_t heads, int64_t lora, const MlaDecodeConfig& config);

// The split-KV kernel, then (splits > 1) the log-sum-exp combine into out_latent. The
// config may be forced (benchmarks); it is validated, not re-planned.
int launch_mla_decode_split_kv(const MlaDecodeParams& params, const MlaDecodeConfig& config, Stream stream);

}  // namespace rackserve::kernels
