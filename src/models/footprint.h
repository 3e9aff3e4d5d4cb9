// Footprint: what a model costs in memory under tensor parallelism, from its WeightManifest
// and ModelConfig alone: parameter counts, checkpoint bytes by storage format, weight bytes
// per GPU, KV-cache bytes per token per GPU, and how many tokens of KV fit beside the weights.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "config/model_config.h"
#include "models/kv_cache_dtype.h"
#include "models/weight_manifest.h"

namespace rackserve {

// One token's KV cache on one TP rank, per layer:
// - MLA caches the latent (kv_lora_rank values) and the rotated rope key (qk_rope_head_dim
//   values); K and V both come from it, so it is not split by heads and every rank holds all
//   of it (replicated).
// - GQA caches the key and the value of every KV head (2 × num_kv_heads × head_dim values),
//   split by heads: each rank holds its num_kv_heads / tp heads.
//   bf16: 2 bytes per value, no scales.
//   fp8:  1 byte per value (e4m3) and one f32 scale per entry (per token per layer per rank,
//         chosen when the entry is written): 576 + 4 = 580 bytes for DeepSeek-V3's 512 + 64.
// DSA models (GLM-5, V3.2) also cache the indexer's key (index_head_dim values) per layer,
// replicated like the latent, in the cache's dtype (PagedKvCache): bf16 256 bytes for
// index_head_dim 128; fp8 128 + 4 = 132 bytes (one f32 scale per entry, which for 128 values
// is DeepSeek's reference layout of one scale per 128).
struct KvCacheLayout {
  int64_t layers = 0;              // main layers, plus MTP layers when they are counted
  int64_t entry_values = 0;        // per token per layer on one rank: MLA latent + rope key, GQA K and V
  int64_t entry_bytes = 0;         // per token per layer on one rank, the fp8 scale included
  bool split_by_heads = false;     // GQA: the ranks hold disjoint heads; MLA: every rank holds it all
  int64_t indexer_values = 0;      // index_head_dim, 0 without DSA
  int64_t indexer_bytes = 0;       // per token per layer, scale included
  int64_t bytes_per_token() const { return layers * (entry_bytes + indexer_bytes); }
};
// Throws when `tp` does not divide a GQA model's KV heads.
KvCacheLayout kv_cache_layout(const ModelConfig& config, KvCacheDtype dtype, bool include_mtp, int64_t tp = 1);

struct WeightTotals {
  int64_t parameters = 0;  // logical values (packed 4-bit weights count unpacked; scales count 0)
  uint64_t bytes = 0;      // checkpoint bytes, scales included
  std::map<std::string, uint64_t> bytes_by_storage;  // "nvfp4", "fp8-block", "bf16", "f32", ...
};
// Totals of the main model, or of main + MTP layers.
WeightTotals weight_totals(const WeightManifest& manifest, bool include_mtp);
// Bytes `entry` takes on one of `tp` ranks once rackserve has loaded it (split tensors
// divided, replicated ones whole): an FP8 kv_b_proj is expanded to BF16 (it is absorbed into
// the attention; its scales are folded in and take nothing), FP8 scales are held as f32
// whatever the checkpoint stores (compressed-tensors: bf16); 4-bit routed experts keep their
// codes and scales (NVFP4: its scalar weight_scale_2 held as one f32 per row, input_scale and
// INT4's weight_shape not loaded) and other 4-bit layers become BF16; everything else as stored.
uint64_t loaded_bytes_per_rank(const ManifestEntry& entry, int64_t tp);
// Loaded bytes one of `tp` ranks holds (loaded_bytes_per_rank over the manifest).
uint64_t weight_bytes_per_rank(const WeightManifest& manifest, int64_t tp, bool include_mtp);

// The memory plan of one GPU, as the server makes it at start:
//   usable    = gpu_memory_gib × gpu_memory_utilization (the rest is left to the driver,
//               CUDA context and other processes)
//   KV budget = usable − weights per GPU − activation_reserve_gib (activations, CUDA graphs,
//               NCCL buffers: a fixed estimate until the profiling forward measures it)
//   KV tokens = KV budget / KV bytes per token, rounded down to whole pages.
struct MemoryPlanOptions {
  int64_t tp = 1;
  KvCacheDtype kv_dtype = KvCacheDtype::Bf16;
  double gpu_memory_gib = 96.0;
  double gpu_memory_utilization = 0.9;
  double activation_reserve_gib = 4.0;
  int64_t page_tokens = 64;     // KV page size; a sequence holds whole pages
  int64_t context_tokens = 0;   // sequence length for the concurrency count; 0: none
  bool include_mtp = false;     // load the MTP layers (weights and their KV layer)
};

struct MemoryPlan {
  uint64_t gpu_bytes = 0;
  uint64_t usable_bytes = 0;
  uint64_t weight_bytes = 0;            // per GPU
  uint64_t activation_reserve_bytes = 0;
  int64_t kv_budget_bytes = 0;          // negative when weights and reserve exceed the usable memory
  KvCacheLayout kv;
  int64_t kv_tokens = 0;                // per GPU = for the whole TP group (every rank caches every token)
  int64_t sequences_at_context = 0;     // concurrent sequences of context_tokens each
  bool weights_fit() const { return kv_budget_bytes > 0; }
};
MemoryPlan plan_memory(const ModelConfig& config, const WeightManifest& manifest, const MemoryPlanOptions& options);

// The KV pages `serve` allocates on a GPU whose weights are loaded: what is left of
// utilization x total_bytes once the memory in use (the weights, the CUDA context, other
// processes: total - free) and reserve_bytes are taken off,
//   pages = floor((free - (1 - utilization) x total - reserve) / bytes_per_page),
// at most max_pages. Throws, with the numbers, when not one page fits.
struct KvPagesRequest {
  uint64_t free_bytes = 0;   // the device's free memory now
  uint64_t total_bytes = 0;
  double utilization = 0.9;
  uint64_t reserve_bytes = 0;
  int64_t bytes_per_page = 0;  // page_size x KV bytes per token on this GPU
  int64_t max_pages = 0;       // more serve no sequence (max_running_requests full-length ones)
};
int64_t kv_pages_that_fit(const KvPagesRequest& request);

}  // namespace rackserve
