// Grouped-query attention kernels (kernels/attention/gqa_attention_paged.cu): the paged
// key/value cache write and causal attention over the pages. Cache layout (backend/ops.h,
// GqaCacheWrite): per token, its key then its value for each of the layer's KV heads.
#pragma once

#include "rackserve/kernels/common.h"

namespace rackserve::kernels {

struct GqaCacheWriteParams {
  const void* k;          // [tokens, kv_heads, head_dim] bf16
  const void* v;          // [tokens, kv_heads, head_dim] bf16
  const int32_t* slots;   // [tokens], page * page_size + offset; -1: skipped (padding)
  void* cache;            // [capacity, 2 * kv_heads * head_dim] bf16, or e4m3 bytes when cache_scales is set
  int64_t tokens, kv_heads, head_dim, capacity;
  // E4M3 cache: [capacity] f32, one scale per entry (the MLA cache's rule, mla_params.h); nullptr: bf16.
  float* cache_scales = nullptr;
};
int launch_gqa_cache_write(const GqaCacheWriteParams& params, Stream stream);

// Maximum head_dim of launch_gqa_attention (a lane holds head_dim / 32 values of q and of the
// output accumulator in registers).
constexpr int64_t kGqaMaxHeadDim = 256;

struct GqaAttentionParams {
  const void* q;               // [tokens, heads, head_dim] bf16 (rotated)
  const void* cache;           // [pages, page_size, 2 * kv_heads * head_dim] bf16, or e4m3 bytes (cache_scales set)
  const int32_t* query_start;  // [sequences + 1]
  const int32_t* block_table;  // [sequences, max_blocks]
  const int32_t* positions;    // [tokens]; token t attends to positions [0, positions[t]] of its sequence
  void* output;                // [tokens, heads, head_dim] bf16
  int64_t tokens, sequences, heads, kv_heads, head_dim, page_size, max_blocks;  // head_dim % 32 == 0, <= 256
  float softmax_scale;
  // launch_gqa_decode_split_kv with splits > 1 only: [tokens, splits, heads, head_dim + 2] f32
  // partial outputs (unnormalised accumulator, running max, running sum).
  float* partials = nullptr;
  const float* cache_scales = nullptr;  // [pages, page_size] f32 for an e4m3 cache; nullptr: bf16
};
// One CTA per (token, query head): its warps stream the keys of the sequence with an online
// softmax each (f32), then merge. Every query head of a KV group reads the group's keys (from
// L2 after the first); a split-KV decode kernel that reads each KV page once per group is the
// planned faster path.
int launch_gqa_attention(const GqaAttentionParams& params, Stream stream);

// The prefill path (flash-attention 2 on mma.sync): one CTA per (64 query tokens of one
// sequence, query head), key/value tiles of 64 rows read once per CTA; any batch, correct for
// decode rows too (one query row of 64 used). head_dim 64 or 128, bf16 or e4m3 cache; q, cache
// and output 16-byte aligned.
bool gqa_prefill_supported(int64_t heads, int64_t kv_heads, int64_t head_dim);
int launch_gqa_prefill_tiled(const GqaAttentionParams& params, Stream stream);

// The decode path (flash-decoding): one CTA per (query token, KV head, split of the context)
// with one warp per query head of the KV head's group, so the group reads each cached key and
// value once (its warps share the rows through L1); each split's partial softmax goes to
// `partials`, and a second kernel merges the splits. Correct for any batch; fast when each
// sequence has one query (decode), as every query reads its whole context.
constexpr int64_t kGqaDecodeMaxGroup = 16;  // query heads per KV head: one warp each
bool gqa_decode_supported(int64_t heads, int64_t kv_heads, int64_t head_dim);

// The context of each query is cut into chunks of keys_per_split keys; query t uses splits
// CTAs per KV head, the last one also taking any keys beyond splits x keys_per_split.
struct GqaDecodeConfig {
  int splits = 1;
  int keys_per_split = 0;
};
// Splits so that tokens x kv_heads x splits CTAs fill `sm_count` SMs about twice, with about
// 256 keys or more per chunk; max_keys bounds positions[t] + 1 over the batch (an
// underestimate stays correct, only slower); sm_count <= 0 asks the current device.
GqaDecodeConfig plan_gqa_decode(int64_t tokens, int64_t kv_heads, int64_t max_keys, int sm_count = 0);
// Floats of `partials` the config needs, 0 when splits == 1.
int64_t gqa_decode_workspace_floats(int64_t tokens, int64_t heads, int64_t head_dim, const GqaDecodeConfig& config);
int launch_gqa_decode_split_kv(const GqaAttentionParams& params, const GqaDecodeConfig& config, Stream stream);

}  // namespace rackserve::kernels
