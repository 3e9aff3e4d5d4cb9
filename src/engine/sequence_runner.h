// SequenceRunner: drives one sequence through a model with its own KV pages: prefill
// (optionally in chunks), then one token per decode step, each step reading the prefix
// from the paged cache. The continuous-batching scheduler generalises this to many
// sequences; this class serves the CLI and the reference tests.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "models/model.h"

namespace rackserve {

class SequenceRunner {
 public:
  // Reserves pages for `capacity` tokens of one sequence, in a cache of `kv_dtype`
  // (nullopt: the backend's native cache).
  SequenceRunner(CausalLM& model, int64_t capacity, int64_t page_size = 64,
                 std::optional<KvCacheDtype> kv_dtype = std::nullopt);

  // Appends `tokens` to the sequence in steps of at most `chunk` tokens (0: one step).
  // Returns logits [tokens.size()][vocab] when `all_logits`, else only the last row.
  std::vector<std::vector<float>> append(const std::vector<int32_t>& tokens, bool all_logits, int64_t chunk = 0);

  // Greedy continuation: appends `prompt`, then `max_new_tokens` argmax tokens one by one.
  std::vector<int32_t> generate_greedy(const std::vector<int32_t>& prompt, int64_t max_new_tokens,
                                       int64_t prefill_chunk = 0);

  int64_t length() const { return length_; }
  // The sequence's cache (tests inspect or corrupt it).
  const PagedKvCache& cache() const { return cache_; }

 private:
  CausalLM& model_;
  PagedKvCache cache_;
  std::vector<int32_t> pages_;
  int64_t length_ = 0;
};

// Index of the largest logit; the lowest index wins ties.
int32_t argmax(const std::vector<float>& logits);

}  // namespace rackserve
