// PagedKvCache: the per-layer paged cache storage on a backend. For MLA each entry is
// one token's latent (kv_lora_rank values, normalised) followed by its rotated rope key
// (qk_rope_head_dim values). Page allocation is the engine's job; this only holds memory.
#pragma once

#include <cstdint>

#include "backend/backend.h"

namespace rackserve {

class PagedKvCache {
 public:
  PagedKvCache(Backend& backend, int64_t layers, int64_t pages, int64_t page_size, int64_t entry_width)
      : storage_(backend.allocate_persistent(backend.activation_dtype(), {layers, pages, page_size, entry_width})),
        page_size_(page_size) {}

  int64_t layers() const { return storage_.dim(0); }
  int64_t pages() const { return storage_.dim(1); }
  int64_t page_size() const { return page_size_; }
  int64_t entry_width() const { return storage_.dim(3); }
  const Tensor& storage() const { return storage_; }
  // [pages, page_size, entry_width] view of one layer.
  Tensor layer(int64_t index) const {
    Tensor view = storage_.rows(index, index + 1);
    return view.reshaped({pages(), page_size_, entry_width()});
  }

 private:
  Tensor storage_;
  int64_t page_size_;
};

}  // namespace rackserve
