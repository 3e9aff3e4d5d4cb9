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
  void* cache;            // [capacity, 2 * kv_heads * head_dim] bf16
  int64_t tokens, kv_heads, head_dim, capacity;
};
int launch_gqa_cache_write(const GqaCacheWriteParams& params, Stream stream);

// Maximum head_dim of launch_gqa_attention (a lane holds head_dim / 32 values of q and of the
// output accumulator in registers).
constexpr int64_t kGqaMaxHeadDim = 256;

struct GqaAttentionParams {
  const void* q;               // [tokens, heads, head_dim] bf16 (rotated)
  const void* cache;           // [pages, page_size, 2 * kv_heads * head_dim] bf16
  const int32_t* query_start;  // [sequences + 1]
  const int32_t* block_table;  // [sequences, max_blocks]
  const int32_t* positions;    // [tokens]; token t attends to positions [0, positions[t]] of its sequence
  void* output;                // [tokens, heads, head_dim] bf16
  int64_t tokens, sequences, heads, kv_heads, head_dim, page_size, max_blocks;  // head_dim % 32 == 0, <= 256
  float softmax_scale;
};
// One CTA per (token, query head): its warps stream the keys of the sequence with an online
// softmax each (f32), then merge. Every query head of a KV group reads the group's keys (from
// L2 after the first); a split-KV decode kernel that reads each KV page once per group is the
// planned faster path.
int launch_gqa_attention(const GqaAttentionParams& params, Stream stream);

}  // namespace rackserve::kernels
