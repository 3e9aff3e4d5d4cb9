// DeepSeek sparse attention's indexer on CUDA (DsaKeyWrite and DsaTopK in ops.h): the key
// write, then per step the scores of every query over its cached keys and the top-k choice
// (kernels/attention/dsa_indexer.cu, dsa_select.cu).
#include <algorithm>

#include "backend/cuda/cuda_backend.h"
#include "core/error.h"
#include "rackserve/kernels/dsa_params.h"

namespace rackserve {

namespace {
// The f32 score rows of one launch: prefill chunks of many tokens over long contexts are
// scored and chosen in groups of rows that fit this, so the workspace stays bounded (128 rows
// at 128k keys). dsa_top_k hands the workspace back to the step arena when it returns, so every
// DSA layer of a step reuses the same memory.
constexpr int64_t kScoreWorkspaceBytes = int64_t{64} << 20;

kernels::MlaCacheType cache_type_of(const Tensor& cache_layer) {
  return cache_layer.dtype == DType::F8_E4M3 ? kernels::MlaCacheType::E4M3 : kernels::MlaCacheType::BF16;
}
}  // namespace

void CudaBackend::dsa_write_keys(const DsaKeyWrite& args) {
  RS_CHECK(args.k.dtype == DType::BF16 && args.k.rank() == 2, "dsa_write_keys: k must be [T, width] BF16, got {} {}",
           dtype_name(args.k.dtype), shape_string(args.k.shape));
  const int64_t tokens = args.k.dim(0), width = args.k.dim(1);
  check_paged_cache("dsa_write_keys", args.cache_layer, args.cache_scales, DType::BF16, width);
  RS_CHECK(args.rope && args.norm_weight.numel() == width && args.norm_bias.numel() == width &&
               args.norm_weight.dtype == DType::BF16 && args.norm_bias.dtype == DType::BF16 &&
               args.slots.numel() == tokens && args.positions.numel() == tokens && args.slots.dtype == DType::I32 &&
               args.positions.dtype == DType::I32,
           "dsa_write_keys: norm (BF16), rope, slots or positions (I32) do not match keys {}",
           shape_string(args.k.shape));
  const bool fp8 = args.cache_layer.dtype == DType::F8_E4M3;
  kernels::DsaKeyWriteParams params{};
  params.k = args.k.data;
  params.norm_weight = args.norm_weight.data;
  params.norm_bias = args.norm_bias.data;
  params.positions = args.positions.as<int32_t>();
  params.slots = args.slots.as<int32_t>();
  params.inv_freq = args.rope->inv_freq.as<float>();
  params.cache = args.cache_layer.data;
  params.cache_scales = fp8 ? args.cache_scales.as<float>() : nullptr;
  params.cache_type = cache_type_of(args.cache_layer);
  params.tokens = tokens;
  params.width = width;
  params.dim = args.rope->dim;
  params.capacity = args.cache_layer.dim(0) * args.cache_layer.dim(1);
  params.eps = args.norm_eps;
  params.rope_scale = args.rope->scale;
  params.interleaved = args.rope->interleaved;
  check(kernels::launch_dsa_write_keys(params, stream_), "dsa_write_keys");
}

Tensor CudaBackend::dsa_top_k(const DsaTopK& args) {
  const AttentionBatch& batch = *args.batch;
  const int64_t tokens = batch.num_tokens;
  RS_CHECK(args.q.dtype == DType::BF16 && args.q.rank() == 3 && args.q.dim(0) == tokens,
           "dsa_top_k: q must be [{}, heads, width] BF16, got {} {}", tokens, dtype_name(args.q.dtype),
           shape_string(args.q.shape));
  const int64_t heads = args.q.dim(1), width = args.q.dim(2);
  RS_CHECK(args.head_weights.dtype == DType::F32 && args.head_weights.rank() == 2 &&
               args.head_weights.dim(0) == tokens && args.head_weights.dim(1) == heads,
           "dsa_top_k: head weights {} are not [{}, {}] F32", shape_string(args.head_weights.shape), tokens, heads);
  check_paged_cache("dsa_top_k", args.cache_layer, args.cache_scales, DType::BF16, width);
  RS_CHECK(args.cache_layer.dim(1) == batch.page_size, "dsa_top_k: cache pages of {} tokens, batch pages of {}",
           args.cache_layer.dim(1), batch.page_size);
  kernels::DsaQueryParams params{};
  params.q = args.q.data;
  params.head_weights = args.head_weights.as<float>();
  params.cache = args.cache_layer.data;
  params.cache_scales = args.cache_layer.dtype == DType::F8_E4M3 ? args.cache_scales.as<float>() : nullptr;
  params.cache_type = cache_type_of(args.cache_layer);
  params.query_start = batch.query_start.as<int32_t>();
  params.block_table = batch.block_table.as<int32_t>();
  params.positions = batch.positions.as<int32_t>();
  params.tokens = tokens;
  params.sequences = batch.num_sequences;
  params.heads = heads;
  params.width = width;
  params.page_size = batch.page_size;
  params.max_blocks = batch.block_table.dim(1);
  params.top_k = args.top_k;
  params.softmax_scale = args.softmax_scale;
  params.head_scale = args.head_scale;
  RS_CHECK(kernels::dsa_query_supported(params),
           "dsa_top_k: {} heads of {} values, top_k {}: outside the kernels' limits (<= 128 heads, width a multiple "
           "of 32 up to 256)",
           heads, width, args.top_k);
  Tensor out = allocate_step(DType::I32, {tokens, args.top_k});
  if (tokens == 0) return out;
  // Score rows span the longest context of the step; without scoring work (every context
  // within top_k) no workspace is needed at all.
  const int64_t max_keys = batch.max_context_length > 0 ? batch.max_context_length : params.max_blocks * batch.page_size;
  const bool scoring = max_keys > args.top_k;
  const int64_t rows_per_group =
      scoring ? std::clamp<int64_t>(kScoreWorkspaceBytes / (max_keys * 4), 1, std::min<int64_t>(tokens, 65535)) : tokens;
  const ArenaMark before_scores{chunk_index_, chunk_offset_};
  Tensor scores = scoring ? allocate_step(DType::F32, {rows_per_group, max_keys}) : Tensor{};
  for (int64_t begin = 0; begin < tokens; begin += rows_per_group) {
    const int64_t end = std::min(tokens, begin + rows_per_group);
    if (scoring)
      check(kernels::launch_dsa_scores(params, begin, end, scores.as<float>(), max_keys, stream_), "dsa_scores");
    check(kernels::launch_dsa_select(params, begin, end, scoring ? scores.as<float>() : nullptr, std::max<int64_t>(max_keys, 1),
                                     out.as<int32_t>(), stream_),
          "dsa_select");
  }
  // The scores are read only by the launches above: later allocations may take their memory
  // (same stream, so no kernel of this op can see it rewritten).
  chunk_index_ = before_scores.chunk;
  chunk_offset_ = before_scores.offset;
  return out;
}

}  // namespace rackserve
