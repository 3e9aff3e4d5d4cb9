// DeepSeek sparse attention's indexer (kernels/attention/dsa_*.cu): the paged indexer-key
// write, the per-query scores over the cached keys, and the top-k choice of key positions.
// Semantics: DsaKeyWrite and DsaTopK in backend/ops.h (the CPU oracle's contract).
#pragma once

#include "rackserve/kernels/common.h"
#include "rackserve/kernels/mla_params.h"

namespace rackserve::kernels {

// Keys are cached like MLA latents: bf16, or e4m3 with one f32 scale per entry (MlaCacheType).
struct DsaKeyWriteParams {
  const void* k;            // [tokens, width] bf16 output of the indexer's wk
  const void* norm_weight;  // [width] bf16 (LayerNorm weight)
  const void* norm_bias;    // [width] bf16
  const int32_t* positions; // [tokens]
  const int32_t* slots;     // [tokens]; -1: padding, not written
  const float* inv_freq;    // [dim / 2]
  void* cache;              // [pages * page_size, width] bf16 or e4m3 bytes
  float* cache_scales;      // [pages * page_size] f32 when E4M3
  MlaCacheType cache_type;
  int64_t tokens, width, dim, capacity;  // width <= 1024; the first dim values rotate
  float eps, rope_scale;
  bool interleaved;
};
int launch_dsa_write_keys(const DsaKeyWriteParams& params, Stream stream);

// The query side of one step. Token t of the batch scores the positions j <= positions[t] of
// its sequence when positions[t] + 1 > top_k (the other rows need no scores: every key is
// chosen).
struct DsaQueryParams {
  const void* q;               // [tokens, heads, width] bf16, rotated
  const float* head_weights;   // [tokens, heads] f32 (weights_proj)
  const void* cache;           // the key cache, as DsaKeyWriteParams
  const float* cache_scales;
  MlaCacheType cache_type;
  const int32_t* query_start;  // [sequences + 1]
  const int32_t* block_table;  // [sequences, max_blocks]
  const int32_t* positions;    // [tokens]
  // heads <= 128, width <= 256, width % 32 == 0, and the score kernel's shared memory
  // 4 x (heads x (width + 1) + heads + 8 x width) bytes within 99 KB (GLM-5 21 KB, V3.2 37 KB)
  int64_t tokens, sequences, heads, width, page_size, max_blocks, top_k;
  float softmax_scale, head_scale;
};

// Whether the kernels take these parameters (the limits above; pointers set when tokens > 0).
bool dsa_query_supported(const DsaQueryParams& params);

// Scores of tokens [token_begin, token_end) into scores [token_end - token_begin, score_stride]
// f32, row r for token token_begin + r, columns [0, positions[t] + 1) (rows of tokens needing
// no scores are left unwritten). Precondition, not checked (positions live on the device):
// score_stride >= the largest positions[t] + 1 of the range.
int launch_dsa_scores(const DsaQueryParams& params, int64_t token_begin, int64_t token_end, float* scores,
                      int64_t score_stride, Stream stream);

// For tokens [token_begin, token_end): key_positions[t, 0..top_k) = the top_k positions of
// highest score (a tie to the lower position), ascending, or 0..positions[t] then -1 when
// positions[t] + 1 <= top_k. `scores` as launch_dsa_scores wrote them.
int launch_dsa_select(const DsaQueryParams& params, int64_t token_begin, int64_t token_end, const float* scores,
                      int64_t score_stride, int32_t* key_positions, Stream stream);

}  // namespace rackserve::kernels
