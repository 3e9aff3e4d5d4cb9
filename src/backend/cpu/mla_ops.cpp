// Multi-head latent attention on the CPU: RoPE, the latent cache write, and attention in
// the absorbed form (queries projected into the latent space with W_UK, attention over
// the cached latents, output projected back with W_UV). Mathematically equal to the
// Hugging Face form that decompresses K and V per head. The cache is f32, or FP8 (e4m3
// bytes + one f32 scale per entry, ops.h): quantized on write, dequantized on read.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/fp8_linear.h"
#include "core/error.h"

namespace rackserve {

namespace cpu {
void rope_row(float* x, const RopeTable& rope, int32_t position) {
  int64_t half = rope.dim / 2;
  float pairs[2][256];
  RS_CHECK(half <= 256, "rope dim {} exceeds 512", rope.dim);
  for (int64_t i = 0; i < half; ++i) {
    pairs[0][i] = rope.interleaved ? x[2 * i] : x[i];
    pairs[1][i] = rope.interleaved ? x[2 * i + 1] : x[i + half];
  }
  const float* inv_freq = rope.inv_freq.as<float>();
  for (int64_t i = 0; i < half; ++i) {
    // float32 angle and trig, as the reference computes them.
    float angle = static_cast<float>(position) * inv_freq[i];
    float cos_value = std::cos(angle) * rope.scale;
    float sin_value = std::sin(angle) * rope.scale;
    x[i] = pairs[0][i] * cos_value - pairs[1][i] * sin_value;
    x[i + half] = pairs[1][i] * cos_value + pairs[0][i] * sin_value;
  }
}
}  // namespace cpu

void CpuBackend::rope_inplace(const Tensor& x, int64_t offset, const RopeTable& rope, const Tensor& positions) {
  RS_CHECK(x.rank() == 3 && x.dtype == DType::F32, "rope input must be [T, heads, width] F32, got {}",
           shape_string(x.shape));
  int64_t tokens = x.dim(0), heads = x.dim(1), width = x.dim(2);
  RS_CHECK(offset >= 0 && offset + rope.dim <= width, "rope columns [{}, {}) exceed width {}", offset,
           offset + rope.dim, width);
  RS_CHECK(positions.numel() == tokens, "rope: {} positions for {} tokens", positions.numel(), tokens);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t h = 0; h < heads; ++h)
      cpu::rope_row(x.as<float>() + (t * heads + h) * width + offset, rope, positions.as<int32_t>()[t]);
}

void CpuBackend::mla_write_cache(const MlaCacheWrite& args) {
  const Tensor& kv = args.kv;
  int64_t tokens = kv.dim(0), width = kv.dim(1);
  int64_t lora = args.norm_weight.numel();
  RS_CHECK(args.rope && lora + args.rope->dim == width, "mla_write_cache: kv width {} != {} + rope {}", width, lora,
           args.rope ? args.rope->dim : 0);
  const Tensor& cache = args.cache_layer;
  check_paged_cache("mla_write_cache", cache, args.cache_scales, DType::F32, width);
  const bool fp8 = cache.dtype == DType::F8_E4M3;
  int64_t capacity = cache.dim(0) * cache.dim(1);
  std::vector<float> values(width);
  for (int64_t t = 0; t < tokens; ++t) {
    int32_t slot = args.slots.as<int32_t>()[t];
    if (slot == -1) continue;  // a padding token: nothing to write
    RS_CHECK(slot >= 0 && slot < capacity, "mla_write_cache: slot {} outside the cache [0, {})", slot, capacity);
    const float* source = kv.as<float>() + t * width;
    float* entry = fp8 ? values.data() : cache.as<float>() + static_cast<int64_t>(slot) * width;
    cpu::rms_norm_row(source, args.norm_weight.as<float>(), entry, lora, args.norm_eps);
    std::copy(source + lora, source + width, entry + lora);
    cpu::rope_row(entry + lora, *args.rope, args.positions.as<int32_t>()[t]);
    if (fp8)
      args.cache_scales.as<float>()[slot] = cpu::quantize_e4m3_group_codes(
          entry, width, kMlaCacheMinScale, cache.as<uint8_t>() + static_cast<int64_t>(slot) * width);
  }
}

Tensor CpuBackend::mla_attention(const MlaAttention& args) {
  const AttentionBatch& batch = *args.batch;
  const int64_t heads = args.heads, nope = args.qk_nope_dim, rope = args.rope_dim, v_dim = args.v_dim;
  const int64_t lora = args.kv_lora_rank, width = lora + rope, tokens = batch.num_tokens;
  RS_CHECK(args.q.rank() == 3 && args.q.dim(0) == tokens && args.q.dim(1) == heads && args.q.dim(2) == nope + rope,
           "mla_attention: q {} is not [{}, {}, {}]", shape_string(args.q.shape), tokens, heads, nope + rope);
  RS_CHECK(args.kv_b.rank() == 2 && args.kv_b.dim(0) == heads * (nope + v_dim) && args.kv_b.dim(1) == lora,
           "mla_attention: kv_b {} is not [{}, {}]", shape_string(args.kv_b.shape), heads * (nope + v_dim), lora);
  check_paged_cache("mla_attention", args.cache_layer, args.cache_scales, DType::F32, width);
  RS_CHECK(args.cache_layer.dim(1) == batch.page_size, "mla_attention: cache pages of {} tokens, batch pages of {}",
           args.cache_layer.dim(1), batch.page_size);

  const int32_t* positions = batch.positions.as<int32_t>();
  const cpu::PagedSequences sequences(batch, args.cache_layer.dim(0));
  const float* kv_b = args.kv_b.as<float>();
  // The keys token t attends to: every position up to its own, or the ones key_positions names.
  const bool sparse = !args.key_positions.empty();
  const int64_t chosen = sparse ? args.key_positions.dim(1) : 0;
  RS_CHECK(!sparse || (args.key_positions.rank() == 2 && args.key_positions.dim(0) == tokens &&
                       args.key_positions.dtype == DType::I32),
           "mla_attention: key positions {} are not [{}, top_k] int32", shape_string(args.key_positions.shape), tokens);
  auto keys_of = [&](int64_t t, std::vector<int32_t>& keys) {
    keys.clear();
    if (!sparse) {
      for (int32_t j = 0; j <= positions[t]; ++j) keys.push_back(j);
      return;
    }
    const int64_t count = std::min<int64_t>(positions[t] + 1, chosen);
    for (int64_t i = 0; i < chosen; ++i) {
      const int32_t j = args.key_positions.as<int32_t>()[t * chosen + i];
      RS_CHECK(i < count ? (j >= 0 && j <= positions[t] && (keys.empty() || j > keys.back())) : j == -1,
               "mla_attention: token {} at position {} has key position {} at {}: rows hold min(position + 1, "
               "top_k) ascending positions, then -1",
               t, positions[t], j, i);
      if (i < count) keys.push_back(j);
    }
  };
  // Entry j of sequence s as f32: a pointer into an f32 cache, or the FP8 entry dequantized
  // (e4m3 * scale) into `scratch`.
  const bool fp8 = args.cache_layer.dtype == DType::F8_E4M3;
  const float* e4m3 = cpu::e4m3_table();
  auto cache_entry = [&](int64_t s, int64_t j, float* scratch) -> const float* {
    const int64_t slot = sequences.slot(s, j);
    if (!fp8) return args.cache_layer.as<float>() + slot * width;
    const uint8_t* codes = args.cache_layer.as<uint8_t>() + slot * width;
    const float scale = args.cache_scales.as<float>()[slot];
    for (int64_t c = 0; c < width; ++c) scratch[c] = e4m3[codes[c]] * scale;
    return scratch;
  };

  Tensor out = allocate_step(DType::F32, {tokens, heads, v_dim});
  pool_.parallel_for(tokens * heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> q_latent(lora), out_latent(lora), scores, scratch(width);
    std::vector<int32_t> keys;
    for (int64_t item = begin; item < end; ++item) {
      int64_t t = item / heads, h = item % heads;
      int64_t s = sequences.sequence_of(t);
      const float* q_nope = args.q.as<float>() + (t * heads + h) * (nope + rope);
      const float* q_rope = q_nope + nope;
      // q_latent = W_UK[h]^T q_nope, W_UK[h] = kv_b rows [h*(nope+v), h*(nope+v)+nope).
      std::fill(q_latent.begin(), q_latent.end(), 0.0f);
      const float* w_uk = kv_b + h * (nope + v_dim) * lora;
      for (int64_t i = 0; i < nope; ++i)
        for (int64_t c = 0; c < lora; ++c) q_latent[c] += q_nope[i] * w_uk[i * lora + c];

      keys_of(t, keys);
      const int64_t count = static_cast<int64_t>(keys.size());
      scores.resize(count);
      float max_score = -std::numeric_limits<float>::infinity();
      for (int64_t i = 0; i < count; ++i) {
        const float* entry = cache_entry(s, keys[i], scratch.data());
        scores[i] = (cpu::dot(q_latent.data(), entry, lora) + cpu::dot(q_rope, entry + lora, rope)) * args.softmax_scale;
        max_score = std::max(max_score, scores[i]);
      }
      float total = 0.0f;
      for (int64_t i = 0; i < count; ++i) total += scores[i] = std::exp(scores[i] - max_score);
      std::fill(out_latent.begin(), out_latent.end(), 0.0f);
      for (int64_t i = 0; i < count; ++i) {
        const float* entry = cache_entry(s, keys[i], scratch.data());
        float weight = scores[i] / total;
        for (int64_t c = 0; c < lora; ++c) out_latent[c] += weight * entry[c];
      }
      // out = W_UV[h] out_latent, W_UV[h] = kv_b rows [h*(nope+v)+nope, (h+1)*(nope+v)).
      cpu::matvec(w_uk + nope * lora, out_latent.data(), out.as<float>() + (t * heads + h) * v_dim, v_dim, lora);
    }
  });
  return out;
}

}  // namespace rackserve
