// FlatBatch: a ForwardBatch flattened into the integer arrays the backend's paged attention
// reads (token ids, positions, cache slots, block table, ...), and their upload as one step
// tensor. Every model of the DeepSeek-V3 family shares it; step graphs pad it.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "models/forward_batch.h"

namespace rackserve {

struct FlatBatch {
  std::vector<int32_t> token_ids, positions, slots;  // [T]; slot -1: the token's KV is not written
  std::vector<int32_t> query_start{0};               // [S + 1]
  std::vector<int32_t> context_length;               // [S]
  std::vector<int32_t> block_table;                  // [S, max_blocks], rows padded with page 0
  std::vector<int32_t> logit_rows;                   // rows of the step whose logits are returned
  int64_t max_blocks = 0, max_context = 0;

  int64_t sequences() const { return static_cast<int64_t>(context_length.size()); }
  int64_t tokens() const { return static_cast<int64_t>(token_ids.size()); }
};

// Validates `batch` against the cache and the model (positions, pages, token ids) and
// flattens it; throws rackserve::Error on the first violation.
FlatBatch flatten(const ForwardBatch& batch, int64_t page_size, int64_t cache_pages, int64_t max_positions,
                  int64_t vocab);

// The step tensors of a flat batch: every array in one upload (views into one step tensor).
struct StepInputs {
  Tensor token_ids;   // [T]
  Tensor logit_rows;  // [R]
  AttentionBatch attention;
};
StepInputs upload_step_inputs(Backend& backend, const FlatBatch& flat, int64_t page_size);

}  // namespace rackserve
