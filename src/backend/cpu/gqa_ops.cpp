// Grouped-query attention on the CPU: the paged key/value cache write and causal attention
// over it, in f32 (softmax in f32 as transformers' eager attention computes it). The cache is
// f32, or FP8 (e4m3 bytes + one f32 scale per entry, ops.h): quantized on write, dequantized
// on read.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/fp8_linear.h"
#include "core/error.h"

namespace rackserve {

void CpuBackend::gqa_write_cache(const GqaCacheWrite& args) {
  RS_CHECK(args.k.rank() == 3 && args.v.shape == args.k.shape && args.k.dtype == DType::F32 &&
               args.v.dtype == DType::F32,
           "gqa_write_cache: k {} and v {} must be equal F32 [T, kv_heads, head_dim]", shape_string(args.k.shape),
           shape_string(args.v.shape));
  const int64_t tokens = args.k.dim(0), half = args.k.dim(1) * args.k.dim(2), width = 2 * half;
  check_paged_cache("gqa_write_cache", args.cache_layer, args.cache_scales, DType::F32, width);
  RS_CHECK(args.slots.numel() == tokens, "gqa_write_cache: {} slots for {} tokens", args.slots.numel(), tokens);
  const bool fp8 = args.cache_layer.dtype == DType::F8_E4M3;
  const int64_t capacity = args.cache_layer.dim(0) * args.cache_layer.dim(1);
  std::vector<float> values(width);
  for (int64_t t = 0; t < tokens; ++t) {
    const int32_t slot = args.slots.as<int32_t>()[t];
    if (slot == -1) continue;  // a padding token: nothing to write
    RS_CHECK(slot >= 0 && slot < capacity, "gqa_write_cache: slot {} outside the cache [0, {})", slot, capacity);
    float* entry = fp8 ? values.data() : args.cache_layer.as<float>() + static_cast<int64_t>(slot) * width;
    std::memcpy(entry, args.k.as<float>() + t * half, half * sizeof(float));
    std::memcpy(entry + half, args.v.as<float>() + t * half, half * sizeof(float));
    if (fp8)
      args.cache_scales.as<float>()[slot] = cpu::quantize_e4m3_group_codes(
          entry, width, kMlaCacheMinScale, args.cache_layer.as<uint8_t>() + static_cast<int64_t>(slot) * width);
  }
}

Tensor CpuBackend::gqa_attention(const GqaAttention& args) {
  const AttentionBatch& batch = *args.batch;
  const int64_t heads = args.heads, kv_heads = args.kv_heads, head_dim = args.head_dim, tokens = batch.num_tokens;
  RS_CHECK(kv_heads > 0 && heads % kv_heads == 0, "gqa_attention: {} KV heads for {} query heads", kv_heads, heads);
  RS_CHECK(args.q.rank() == 3 && args.q.dtype == DType::F32 && args.q.dim(0) == tokens && args.q.dim(1) == heads &&
               args.q.dim(2) == head_dim,
           "gqa_attention: q {} is not F32 [{}, {}, {}]", shape_string(args.q.shape), tokens, heads, head_dim);
  const int64_t width = 2 * kv_heads * head_dim, group = heads / kv_heads;
  check_paged_cache("gqa_attention", args.cache_layer, args.cache_scales, DType::F32, width);
  RS_CHECK(args.cache_layer.dim(1) == batch.page_size, "gqa_attention: cache pages of {} tokens, batch pages of {}",
           args.cache_layer.dim(1), batch.page_size);
  const cpu::PagedSequences sequences(batch, args.cache_layer.dim(0));
  const int32_t* positions = batch.positions.as<int32_t>();
  // The head_dim values at `offset` of the entry at `slot` as f32: a pointer into an f32 cache,
  // or the FP8 values dequantized (e4m3 * scale) into `scratch`.
  const bool fp8 = args.cache_layer.dtype == DType::F8_E4M3;
  const float* e4m3 = cpu::e4m3_table();
  auto cached = [&](int64_t slot, int64_t offset, float* scratch) -> const float* {
    if (!fp8) return args.cache_layer.as<float>() + slot * width + offset;
    const uint8_t* codes = args.cache_layer.as<uint8_t>() + slot * width + offset;
    const float scale = args.cache_scales.as<float>()[slot];
    for (int64_t c = 0; c < head_dim; ++c) scratch[c] = e4m3[codes[c]] * scale;
    return scratch;
  };

  Tensor out = allocate_step(DType::F32, {tokens, heads, head_dim});
  pool_.parallel_for(tokens * heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores, scratch(head_dim);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t t = item / heads, h = item % heads, kv_head = h / group;
      const int64_t s = sequences.sequence_of(t);
      const float* q = args.q.as<float>() + item * head_dim;
      const int64_t keys = positions[t] + 1;  // causal: every cached position up to this token's
      scores.resize(keys);
      float max_score = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < keys; ++j) {
        const float* key = cached(sequences.slot(s, j), kv_head * head_dim, scratch.data());
        scores[j] = cpu::dot(q, key, head_dim) * args.softmax_scale;
        max_score = std::max(max_score, scores[j]);
      }
      float total = 0.0f;
      for (int64_t j = 0; j < keys; ++j) total += scores[j] = std::exp(scores[j] - max_score);
      float* target = out.as<float>() + item * head_dim;
      std::fill(target, target + head_dim, 0.0f);
      for (int64_t j = 0; j < keys; ++j) {
        const float* value = cached(sequences.slot(s, j), (kv_heads + kv_head) * head_dim, scratch.data());
        const float weight = scores[j] / total;
        for (int64_t c = 0; c < head_dim; ++c) target[c] += weight * value[c];
      }
    }
  });
  return out;
}

}  // namespace rackserve
