#include "models/kv_cache.h"

#include "core/error.h"

namespace rackserve {

std::string_view kv_cache_dtype_name(KvCacheDtype dtype) { return dtype == KvCacheDtype::Bf16 ? "bf16" : "fp8"; }

KvCacheDtype parse_kv_cache_dtype(std::string_view name) {
  if (name == "bf16" || name == "auto") return KvCacheDtype::Bf16;
  if (name == "fp8" || name == "fp8_e4m3") return KvCacheDtype::Fp8;
  RS_FAIL("KV cache dtype \"{}\" is not supported (auto, bf16, fp8)", name);
}

std::optional<KvCacheDtype> parse_kv_cache_dtype_option(std::string_view name) {
  if (name == "auto") return std::nullopt;
  return parse_kv_cache_dtype(name);
}

DType kv_cache_value_dtype(const Backend& backend, std::optional<KvCacheDtype> dtype) {
  if (!dtype) return backend.activation_dtype();
  if (*dtype == KvCacheDtype::Fp8) return DType::F8_E4M3;
  RS_CHECK(backend.activation_dtype() == DType::BF16,
           "KV cache dtype bf16: the {} backend keeps its KV cache in {} or fp8; use auto or fp8", backend.name(),
           dtype_name(backend.activation_dtype()));
  return DType::BF16;
}

PagedKvCache::PagedKvCache(Backend& backend, int64_t layers, int64_t pages, int64_t page_size, int64_t entry_width,
                           std::optional<KvCacheDtype> dtype, int64_t index_key_width)
    : storage_(backend.allocate_persistent(kv_cache_value_dtype(backend, dtype), {layers, pages, page_size, entry_width})),
      page_size_(page_size) {
  RS_CHECK(index_key_width >= 0, "negative indexer key width {}", index_key_width);
  if (fp8()) scales_ = backend.allocate_persistent(DType::F32, {layers, pages, page_size});
  if (index_key_width == 0) return;
  index_keys_ = backend.allocate_persistent(storage_.dtype, {layers, pages, page_size, index_key_width});
  if (fp8()) index_key_scales_ = backend.allocate_persistent(DType::F32, {layers, pages, page_size});
}

Tensor PagedKvCache::layer(int64_t index) const {
  return storage_.rows(index, index + 1).reshaped({pages(), page_size_, entry_width()});
}

Tensor PagedKvCache::layer_scales(int64_t index) const {
  if (!fp8()) return Tensor{};
  return scales_.rows(index, index + 1).reshaped({pages(), page_size_});
}

LayerKvCache PagedKvCache::layer_views(int64_t index) const {
  LayerKvCache views{layer(index), layer_scales(index), {}, {}};
  if (index_keys_.empty()) return views;
  views.index_keys = index_keys_.rows(index, index + 1).reshaped({pages(), page_size_, index_key_width()});
  if (fp8()) views.index_key_scales = index_key_scales_.rows(index, index + 1).reshaped({pages(), page_size_});
  return views;
}

}  // namespace rackserve
