// Validation of a step's paged-attention metadata, shared by the CPU attention ops.
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace rackserve::cpu {

PagedSequences::PagedSequences(const AttentionBatch& batch, int64_t pages)
    : sequence_of_(batch.num_tokens),
      block_table_(batch.block_table.as<int32_t>()),
      max_blocks_(batch.block_table.dim(1)),
      page_size_(batch.page_size) {
  const int32_t* query_start = batch.query_start.as<int32_t>();
  const int32_t* context_length = batch.context_length.as<int32_t>();
  const int32_t* positions = batch.positions.as<int32_t>();
  const int64_t tokens = batch.num_tokens;
  for (int64_t s = 0; s < batch.num_sequences; ++s) {
    RS_CHECK(query_start[s] <= query_start[s + 1] && query_start[s + 1] <= tokens, "bad query_start");
    for (int32_t t = query_start[s]; t < query_start[s + 1]; ++t) {
      sequence_of_[t] = static_cast<int32_t>(s);
      RS_CHECK(positions[t] >= 0 && positions[t] < context_length[s], "token {} position {} beyond context {}", t,
               positions[t], context_length[s]);
    }
    const int64_t blocks = (context_length[s] + page_size_ - 1) / page_size_;
    RS_CHECK(blocks <= max_blocks_, "sequence {} exceeds its block table", s);
    for (int64_t b = 0; b < blocks; ++b)
      RS_CHECK(block_table_[s * max_blocks_ + b] >= 0 && block_table_[s * max_blocks_ + b] < pages,
               "sequence {} block {} names page {} outside [0, {})", s, b, block_table_[s * max_blocks_ + b], pages);
  }
}

}  // namespace rackserve::cpu
