#include "models/footprint.h"

#include <cmath>

#include "core/error.h"

namespace rackserve {

namespace {

constexpr int64_t kEntryScaleBytes = 4;       // fp8 cache: one f32 scale per entry
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

uint64_t gib_to_bytes(double gib) { return static_cast<uint64_t>(std::llround(gib * kGiB)); }

}  // namespace

KvCacheLayout kv_cache_layout(const ModelConfig& config, KvCacheDtype dtype, bool include_mtp, int64_t tp) {
  RS_CHECK(tp >= 1, "tensor parallel size must be >= 1, got {}", tp);
  KvCacheLayout layout;
  layout.layers = config.num_layers + (include_mtp ? config.num_mtp_layers : 0);
  if (config.is_mla()) {
    layout.entry_values = config.mla.latent_width();
  } else {
    const GqaConfig& gqa = config.gqa;
    RS_CHECK(gqa.num_kv_heads % tp == 0, "TP={} does not divide num_key_value_heads {}", tp, gqa.num_kv_heads);
    layout.entry_values = gqa.cache_width() / tp;
    layout.split_by_heads = true;
  }
  auto bytes_of = [&](int64_t values) { return dtype == KvCacheDtype::Bf16 ? values * 2 : values + kEntryScaleBytes; };
  layout.entry_bytes = bytes_of(layout.entry_values);
  if (config.indexer) {
    layout.indexer_values = config.indexer->head_dim;
    layout.indexer_bytes = bytes_of(layout.indexer_values);
  }
  return layout;
}

WeightTotals weight_totals(const WeightManifest& manifest, bool include_mtp) {
  WeightTotals totals;
  for (const auto& entry : manifest.entries()) {
    if (entry.optional && !include_mtp) continue;
    totals.parameters += entry.parameters;
    totals.bytes += entry.bytes();
    totals.bytes_by_storage[entry.storage] += entry.bytes();
  }
  return totals;
}

uint64_t loaded_bytes_per_rank(const ManifestEntry& entry, int64_t tp) {
  if (entry.format == WeightFormat::Int4Group || entry.format == WeightFormat::Nvfp4) {
    // 4-bit layers: routed experts keep their codes and scales (an NVFP4 module's global
    // weight_scale_2 becomes an f32 per row, input_scale is not read; an INT4 weight_shape is
    // not read); any other 4-bit layer is dequantized to BF16 at load.
    const bool expert = entry.name.find(".experts.") != std::string::npos;
    const bool codes = entry.name.ends_with(".weight") || entry.name.ends_with(".weight_packed");
    const Shape local = entry.shape_per_rank(tp);
    if (!expert) {
      if (!codes) return 0;
      const uint64_t local_values = static_cast<uint64_t>(entry.parameters) *
                                    static_cast<uint64_t>(shape_numel(local)) / static_cast<uint64_t>(entry.numel());
      return local_values * dtype_size(DType::BF16);
    }
    if (entry.name.ends_with(".weight_shape") || entry.name.ends_with(".weight_scale_2") ||
        entry.name.ends_with(".input_scale"))
      return 0;
    const bool nvfp4_block_scales = entry.format == WeightFormat::Nvfp4 && entry.name.ends_with(".weight_scale");
    return entry.bytes_per_rank(tp) + (nvfp4_block_scales ? static_cast<uint64_t>(local[0]) * sizeof(float) : 0);
  }
  if (entry.format != WeightFormat::Fp8Block && entry.format != WeightFormat::Fp8Channel) return entry.bytes_per_rank(tp);
  const uint64_t values = static_cast<uint64_t>(shape_numel(entry.shape_per_rank(tp)));
  const bool weight = entry.name.ends_with(".weight");
  if (entry.name.find(".kv_b_proj.") != std::string::npos) return weight ? values * dtype_size(DType::BF16) : 0;
  return weight ? entry.bytes_per_rank(tp) : values * dtype_size(DType::F32);
}

uint64_t weight_bytes_per_rank(const WeightManifest& manifest, int64_t tp, bool include_mtp) {
  uint64_t bytes = 0;
  for (const auto& entry : manifest.entries())
    if (!entry.optional || include_mtp) bytes += loaded_bytes_per_rank(entry, tp);
  return bytes;
}

MemoryPlan plan_memory(const ModelConfig& config, const WeightManifest& manifest, const MemoryPlanOptions& options) {
  RS_CHECK(options.gpu_memory_gib > 0, "GPU memory must be positive, got {} GiB", options.gpu_memory_gib);
  RS_CHECK(options.gpu_memory_utilization > 0 && options.gpu_memory_utilization <= 1,
           "GPU memory utilization must be in (0, 1], got {}", options.gpu_memory_utilization);
  RS_CHECK(options.activation_reserve_gib >= 0, "activation reserve must be >= 0, got {} GiB",
           options.activation_reserve_gib);
  RS_CHECK(options.page_tokens >= 1 && options.context_tokens >= 0, "page size must be >= 1 and context >= 0");
  RS_CHECK(config.num_attention_heads() % options.tp == 0, "TP={} does not divide num_attention_heads {}", options.tp,
           config.num_attention_heads());
  manifest.check_divisible(options.tp);

  MemoryPlan plan;
  plan.gpu_bytes = gib_to_bytes(options.gpu_memory_gib);
  plan.usable_bytes = static_cast<uint64_t>(std::floor(static_cast<double>(plan.gpu_bytes) * options.gpu_memory_utilization));
  plan.weight_bytes = weight_bytes_per_rank(manifest, options.tp, options.include_mtp);
  plan.activation_reserve_bytes = gib_to_bytes(options.activation_reserve_gib);
  plan.kv_budget_bytes = static_cast<int64_t>(plan.usable_bytes) - static_cast<int64_t>(plan.weight_bytes) -
                         static_cast<int64_t>(plan.activation_reserve_bytes);
  plan.kv = kv_cache_layout(config, options.kv_dtype, options.include_mtp, options.tp);
  if (plan.kv_budget_bytes > 0) {
    int64_t page_bytes = plan.kv.bytes_per_token() * options.page_tokens;
    plan.kv_tokens = plan.kv_budget_bytes / page_bytes * options.page_tokens;
    if (options.context_tokens > 0) {
      int64_t pages_per_sequence = (options.context_tokens + options.page_tokens - 1) / options.page_tokens;
      plan.sequences_at_context = plan.kv_tokens / options.page_tokens / pages_per_sequence;
    }
  }
  return plan;
}

int64_t kv_pages_that_fit(const KvPagesRequest& r) {
  RS_CHECK(r.bytes_per_page > 0 && r.max_pages > 0 && r.free_bytes <= r.total_bytes,
           "KV pages: bad request (page {} B, max {} pages, free {} of {} B)", r.bytes_per_page, r.max_pages,
           r.free_bytes, r.total_bytes);
  const double kept_back = (1.0 - r.utilization) * static_cast<double>(r.total_bytes) + static_cast<double>(r.reserve_bytes);
  const double budget = static_cast<double>(r.free_bytes) - kept_back;
  const int64_t pages = budget > 0 ? static_cast<int64_t>(budget / static_cast<double>(r.bytes_per_page)) : 0;
  RS_CHECK(pages >= 1,
           "no room for the KV cache: {:.2f} GiB of {:.2f} GiB free after loading, {:.2f} GiB kept back "
           "(gpu_memory_utilization {} and an activation reserve of {:.2f} GiB), a page needs {} bytes; use more "
           "GPUs (--tp), an FP8 KV cache, or a higher gpu_memory_utilization",
           static_cast<double>(r.free_bytes) / kGiB, static_cast<double>(r.total_bytes) / kGiB, kept_back / kGiB,
           r.utilization, static_cast<double>(r.reserve_bytes) / kGiB, r.bytes_per_page);
  return std::min(pages, r.max_pages);
}

}  // namespace rackserve
