// Grouped-query attention on the CPU: the paged key/value cache write and causal attention
// over it, in f32 (softmax in f32 as transformers' eager attention computes it).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace rackserve {

namespace {
// Throws unless cache_layer is an f32 [pages, page_size, 2 * kv_heads * head_dim] cache.
void check_gqa_cache(const char* op, const Tensor& cache_layer, int64_t kv_heads, int64_t head_dim) {
  RS_CHECK(cache_layer.dtype == DType::F32 && cache_layer.rank() == 3 && cache_layer.dim(2) == 2 * kv_heads * head_dim,
           "{}: cache layer {} {} is not an F32 [pages, page_size, 2 x {} x {}] cache", op,
           dtype_name(cache_layer.dtype), shape_string(cache_layer.shape), kv_heads, head_dim);
}
}  // namespace

void CpuBackend::gqa_write_cache(const GqaCacheWrite& args) {
  RS_CHECK(args.k.rank() == 3 && args.v.shape == args.k.shape && args.k.dtype == DType::F32 &&
               args.v.dtype == DType::F32,
           "gqa_write_cache: k {} and v {} must be equal F32 [T, kv_heads, head_dim]", shape_string(args.k.shape),
           shape_string(args.v.shape));
  const int64_t tokens = args.k.dim(0), kv_heads = args.k.dim(1), head_dim = args.k.dim(2);
  const int64_t half = kv_heads * head_dim;
  check_gqa_cache("gqa_write_cache", args.cache_layer, kv_heads, head_dim);
  RS_CHECK(args.slots.numel() == tokens, "gqa_write_cache: {} slots for {} tokens", args.slots.numel(), tokens);
  const int64_t capacity = args.cache_layer.dim(0) * args.cache_layer.dim(1);
  for (int64_t t = 0; t < tokens; ++t) {
    const int32_t slot = args.slots.as<int32_t>()[t];
    if (slot == -1) continue;  // a padding token: nothing to write
    RS_CHECK(slot >= 0 && slot < capacity, "gqa_write_cache: slot {} outside the cache [0, {})", slot, capacity);
    float* entry = args.cache_layer.as<float>() + static_cast<int64_t>(slot) * 2 * half;
    std::memcpy(entry, args.k.as<float>() + t * half, half * sizeof(float));
    std::memcpy(entry + half, args.v.as<float>() + t * half, half * sizeof(float));
  }
}

Tensor CpuBackend::gqa_attention(const GqaAttention& args) {
  const AttentionBatch& batch = *args.batch;
  const int64_t heads = args.heads, kv_heads = args.kv_heads, head_dim = args.head_dim, tokens = batch.num_tokens;
  RS_CHECK(kv_heads > 0 && heads % kv_heads == 0, "gqa_attention: {} KV heads for {} query heads", kv_heads, heads);
  RS_CHECK(args.q.rank() == 3 && args.q.dtype == DType::F32 && args.q.dim(0) == tokens && args.q.dim(1) == heads &&
               args.q.dim(2) == head_dim,
           "gqa_attention: q {} is not F32 [{}, {}, {}]", shape_string(args.q.shape), tokens, heads, head_dim);
  check_gqa_cache("gqa_attention", args.cache_layer, kv_heads, head_dim);
  RS_CHECK(args.cache_layer.dim(1) == batch.page_size, "gqa_attention: cache pages of {} tokens, batch pages of {}",
           args.cache_layer.dim(1), batch.page_size);
  const cpu::PagedSequences sequences(batch, args.cache_layer.dim(0));
  const int32_t* positions = batch.positions.as<int32_t>();
  const int64_t width = 2 * kv_heads * head_dim, group = heads / kv_heads;
  const float* cache = args.cache_layer.as<float>();

  Tensor out = allocate_step(DType::F32, {tokens, heads, head_dim});
  pool_.parallel_for(tokens * heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t t = item / heads, h = item % heads, kv_head = h / group;
      const int64_t s = sequences.sequence_of(t);
      const float* q = args.q.as<float>() + item * head_dim;
      const int64_t keys = positions[t] + 1;  // causal: every cached position up to this token's
      scores.resize(keys);
      float max_score = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < keys; ++j) {
        const float* key = cache + sequences.slot(s, j) * width + kv_head * head_dim;
        scores[j] = cpu::dot(q, key, head_dim) * args.softmax_scale;
        max_score = std::max(max_score, scores[j]);
      }
      float total = 0.0f;
      for (int64_t j = 0; j < keys; ++j) total += scores[j] = std::exp(scores[j] - max_score);
      float* target = out.as<float>() + item * head_dim;
      std::fill(target, target + head_dim, 0.0f);
      for (int64_t j = 0; j < keys; ++j) {
        const float* value = cache + sequences.slot(s, j) * width + (kv_heads + kv_head) * head_dim;
        const float weight = scores[j] / total;
        for (int64_t c = 0; c < head_dim; ++c) target[c] += weight * value[c];
      }
    }
  });
  return out;
}

}  // namespace rackserve
