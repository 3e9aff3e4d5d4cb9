// PagedKvCache: the per-layer paged cache storage on a backend. For MLA each entry is
// one token's latent (kv_lora_rank values, normalised) followed by its rotated rope key
// (qk_rope_head_dim values); for GQA the token's key then its value for each of this rank's
// KV heads (GqaCacheWrite in ops.h). Page allocation is the engine's job; this only holds memory.
//
// DeepSeek sparse attention models (GLM-5, DeepSeek-V3.2) also cache each token's indexer key
// (index_head_dim values) per layer, in pages parallel to the attention's: same page ids, same
// slots, same element type.
//
// Element types: the backend's activation dtype (f32 on the CPU oracle, bf16 on CUDA), or
// FP8 (KvCacheDtype::Fp8): values as F8_E4M3 plus one f32 scale per entry, so that
// entry value = e4m3 * scale (the write op picks the scale, see MlaCacheWrite in ops.h).
#pragma once

#include <cstdint>
#include <optional>

#include "backend/backend.h"
#include "models/kv_cache_dtype.h"

namespace rackserve {

// The element type a cache of `dtype` has on `backend`: nullopt -> the activation dtype;
// Bf16 -> BF16 (throws unless that is the backend's activation dtype: the CPU oracle's
// attention reads f32 or fp8); Fp8 -> F8_E4M3.
DType kv_cache_value_dtype(const Backend& backend, std::optional<KvCacheDtype> dtype);

// One layer's views of a PagedKvCache, as the attention of that layer reads and writes them.
struct LayerKvCache {
  Tensor entries;           // [pages, page_size, entry_width]
  Tensor scales;            // [pages, page_size] f32 when entries are F8_E4M3, else empty
  Tensor index_keys;        // [pages, page_size, index_key_width]; empty without an indexer
  Tensor index_key_scales;  // [pages, page_size] f32 when index_keys are F8_E4M3, else empty
};

class PagedKvCache {
 public:
  // index_key_width: the DSA indexer's key width (0: no indexer keys).
  PagedKvCache(Backend& backend, int64_t layers, int64_t pages, int64_t page_size, int64_t entry_width,
               std::optional<KvCacheDtype> dtype = std::nullopt, int64_t index_key_width = 0);

  int64_t layers() const { return storage_.dim(0); }
  int64_t pages() const { return storage_.dim(1); }
  int64_t page_size() const { return page_size_; }
  int64_t entry_width() const { return storage_.dim(3); }
  DType value_dtype() const { return storage_.dtype; }
  bool fp8() const { return storage_.dtype == DType::F8_E4M3; }
  // [layers, pages, page_size, entry_width] values.
  const Tensor& storage() const { return storage_; }
  // [layers, pages, page_size] f32 scales when fp8(), else empty.
  const Tensor& scale_storage() const { return scales_; }
  // [pages, page_size, entry_width] view of one layer.
  Tensor layer(int64_t index) const;
  // [pages, page_size] view of one layer's scales when fp8(), else an empty tensor.
  Tensor layer_scales(int64_t index) const;
  int64_t index_key_width() const { return index_keys_.empty() ? 0 : index_keys_.dim(3); }
  // Every view of one layer.
  LayerKvCache layer_views(int64_t index) const;

 private:
  Tensor storage_;
  Tensor scales_;
  Tensor index_keys_;        // [layers, pages, page_size, index_key_width] or empty
  Tensor index_key_scales_;  // [layers, pages, page_size] f32 when fp8() and index keys exist
  int64_t page_size_;
};

}  // namespace rackserve
