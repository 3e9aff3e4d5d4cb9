// DeepSeek sparse attention's indexer on the CPU (DsaKeyWrite and DsaTopK in ops.h): the
// indexer keys' LayerNorm, RoPE and paged cache write, and the per-query top-k choice of key
// positions, scored in f32 as Hugging Face's DeepseekV32Indexer scores them.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/fp8_linear.h"
#include "core/error.h"

namespace rackserve {

namespace {

// torch.nn.LayerNorm over one row: (x - mean) / sqrt(variance + eps) * weight + bias, the
// variance biased (divided by width).
void layer_norm_row(const float* x, const float* weight, const float* bias, float* out, int64_t width, float eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < width; ++i) sum += x[i];
  const float mean = static_cast<float>(sum / static_cast<double>(width));
  double squares = 0.0;
  for (int64_t i = 0; i < width; ++i) squares += static_cast<double>(x[i] - mean) * (x[i] - mean);
  const float inverse = 1.0f / std::sqrt(static_cast<float>(squares / static_cast<double>(width)) + eps);
  for (int64_t i = 0; i < width; ++i) out[i] = (x[i] - mean) * inverse * weight[i] + bias[i];
}

}  // namespace

void CpuBackend::dsa_write_keys(const DsaKeyWrite& args) {
  const Tensor& k = args.k;
  RS_CHECK(k.rank() == 2 && k.dtype == DType::F32, "dsa_write_keys: k must be [T, width] F32, got {}",
           shape_string(k.shape));
  const int64_t tokens = k.dim(0), width = k.dim(1);
  RS_CHECK(args.norm_weight.numel() == width && args.norm_bias.numel() == width,
           "dsa_write_keys: norm weight {} and bias {} for keys of {}", args.norm_weight.numel(),
           args.norm_bias.numel(), width);
  RS_CHECK(args.rope && args.rope->dim <= width, "dsa_write_keys: rope width {} exceeds the key width {}",
           args.rope ? args.rope->dim : 0, width);
  RS_CHECK(args.slots.numel() == tokens && args.positions.numel() == tokens,
           "dsa_write_keys: {} slots and {} positions for {} tokens", args.slots.numel(), args.positions.numel(),
           tokens);
  const Tensor& cache = args.cache_layer;
  check_paged_cache("dsa_write_keys", cache, args.cache_scales, DType::F32, width);
  const bool fp8 = cache.dtype == DType::F8_E4M3;
  const int64_t capacity = cache.dim(0) * cache.dim(1);
  std::vector<float> values(width);
  for (int64_t t = 0; t < tokens; ++t) {
    const int32_t slot = args.slots.as<int32_t>()[t];
    if (slot == -1) continue;  // a padding token: nothing to write
    RS_CHECK(slot >= 0 && slot < capacity, "dsa_write_keys: slot {} outside the cache [0, {})", slot, capacity);
    float* entry = fp8 ? values.data() : cache.as<float>() + static_cast<int64_t>(slot) * width;
    layer_norm_row(k.as<float>() + t * width, args.norm_weight.as<float>(), args.norm_bias.as<float>(), entry, width,
                   args.norm_eps);
    cpu::rope_row(entry, *args.rope, args.positions.as<int32_t>()[t]);
    if (fp8)
      args.cache_scales.as<float>()[slot] = cpu::quantize_e4m3_group_codes(
          entry, width, kMlaCacheMinScale, cache.as<uint8_t>() + static_cast<int64_t>(slot) * width);
  }
}

Tensor CpuBackend::dsa_top_k(const DsaTopK& args) {
  const AttentionBatch& batch = *args.batch;
  const int64_t tokens = batch.num_tokens;
  RS_CHECK(args.q.rank() == 3 && args.q.dim(0) == tokens && args.q.dtype == DType::F32,
           "dsa_top_k: q {} is not [{}, heads, width] F32", shape_string(args.q.shape), tokens);
  const int64_t heads = args.q.dim(1), width = args.q.dim(2);
  RS_CHECK(args.head_weights.rank() == 2 && args.head_weights.dim(0) == tokens && args.head_weights.dim(1) == heads &&
               args.head_weights.dtype == DType::F32,
           "dsa_top_k: head weights {} are not [{}, {}] F32", shape_string(args.head_weights.shape), tokens, heads);
  RS_CHECK(args.top_k > 0, "dsa_top_k: top_k must be positive, got {}", args.top_k);
  check_paged_cache("dsa_top_k", args.cache_layer, args.cache_scales, DType::F32, width);
  RS_CHECK(args.cache_layer.dim(1) == batch.page_size, "dsa_top_k: cache pages of {} tokens, batch pages of {}",
           args.cache_layer.dim(1), batch.page_size);

  const int32_t* positions = batch.positions.as<int32_t>();
  const cpu::PagedSequences sequences(batch, args.cache_layer.dim(0));
  const bool fp8 = args.cache_layer.dtype == DType::F8_E4M3;
  const float* e4m3 = cpu::e4m3_table();
  Tensor out = allocate_step(DType::I32, {tokens, args.top_k});
  pool_.parallel_for(tokens, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores, key(width);
    std::vector<int32_t> order;
    for (int64_t t = begin; t < end; ++t) {
      int32_t* row = out.as<int32_t>() + t * args.top_k;
      const int64_t keys = positions[t] + 1;  // causal
      std::fill(row, row + args.top_k, -1);
      if (keys <= args.top_k) {  // every key is chosen: nothing to rank
        std::iota(row, row + keys, 0);
        continue;
      }
      const int64_t s = sequences.sequence_of(t);
      const float* q = args.q.as<float>() + t * heads * width;
      const float* weights = args.head_weights.as<float>() + t * heads;
      scores.resize(keys);
      for (int64_t j = 0; j < keys; ++j) {
        const int64_t slot = sequences.slot(s, j);
        const float* entry = args.cache_layer.as<float>() + slot * width;
        if (fp8) {
          const uint8_t* codes = args.cache_layer.as<uint8_t>() + slot * width;
          const float scale = args.cache_scales.as<float>()[slot];
          for (int64_t c = 0; c < width; ++c) key[c] = e4m3[codes[c]] * scale;
          entry = key.data();
        }
        float score = 0.0f;
        for (int64_t h = 0; h < heads; ++h)
          score += weights[h] * args.head_scale * std::fmax(cpu::dot(q + h * width, entry, width) * args.softmax_scale, 0.0f);
        scores[j] = score;
      }
      order.resize(keys);
      std::iota(order.begin(), order.end(), 0);
      // Highest score first, the lower position first among equal scores; a NaN score ranks
      // below every number (-inf included).
      auto before = [&](int32_t a, int32_t b) {
        const bool a_nan = std::isnan(scores[a]), b_nan = std::isnan(scores[b]);
        if (a_nan != b_nan) return b_nan;
        return a_nan || scores[a] == scores[b] ? a < b : scores[a] > scores[b];
      };
      std::partial_sort(order.begin(), order.begin() + args.top_k, order.end(), before);
      std::sort(order.begin(), order.begin() + args.top_k);
      std::copy(order.begin(), order.begin() + args.top_k, row);
    }
  });
  return out;
}

}  // namespace rackserve
