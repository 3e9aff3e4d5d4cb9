#include "models/flat_batch.h"

#include <algorithm>

#include "core/error.h"

namespace rackserve {

FlatBatch flatten(const ForwardBatch& batch, int64_t page_size, int64_t cache_pages, int64_t max_positions,
                  int64_t vocab) {
  FlatBatch flat;
  for (const auto& sequence : batch.sequences) flat.max_blocks = std::max<int64_t>(flat.max_blocks, sequence.pages.size());
  for (const auto& sequence : batch.sequences) {
    RS_CHECK(!sequence.token_ids.empty(), "a sequence in the batch has no new tokens");
    int64_t end = sequence.start_position + static_cast<int64_t>(sequence.token_ids.size());
    RS_CHECK(sequence.start_position >= 0 && end <= max_positions,
             "positions [{}, {}) exceed max_position_embeddings {}", sequence.start_position, end, max_positions);
    RS_CHECK(static_cast<int64_t>(sequence.pages.size()) * page_size >= end,
             "{} pages of {} tokens cannot hold {} positions", sequence.pages.size(), page_size, end);
    for (int32_t page : sequence.pages)
      RS_CHECK(page >= 0 && page < cache_pages, "page {} outside the cache [0, {})", page, cache_pages);
    for (size_t i = 0; i < sequence.token_ids.size(); ++i) {
      int32_t position = sequence.start_position + static_cast<int32_t>(i);
      if (sequence.all_logits || i + 1 == sequence.token_ids.size())
        flat.logit_rows.push_back(static_cast<int32_t>(flat.token_ids.size()));
      RS_CHECK(sequence.token_ids[i] >= 0 && sequence.token_ids[i] < vocab, "token id {} is outside the vocabulary [0, {})",
               sequence.token_ids[i], vocab);
      flat.token_ids.push_back(sequence.token_ids[i]);
      flat.positions.push_back(position);
      flat.slots.push_back(static_cast<int32_t>(sequence.pages[position / page_size] * page_size + position % page_size));
    }
    flat.query_start.push_back(static_cast<int32_t>(flat.token_ids.size()));
    flat.context_length.push_back(static_cast<int32_t>(end));
    flat.max_context = std::max(flat.max_context, end);
    std::vector<int32_t> row(sequence.pages.begin(), sequence.pages.end());
    row.resize(flat.max_blocks, 0);
    flat.block_table.insert(flat.block_table.end(), row.begin(), row.end());
  }
  return flat;
}

StepInputs upload_step_inputs(Backend& backend, const FlatBatch& flat, int64_t page_size) {
  const std::vector<int32_t>* arrays[] = {&flat.token_ids,      &flat.positions,   &flat.slots,     &flat.query_start,
                                          &flat.context_length, &flat.block_table, &flat.logit_rows};
  std::vector<int32_t> packed;
  for (const auto* array : arrays) packed.insert(packed.end(), array->begin(), array->end());
  Tensor all = backend.upload_step_ints(packed);
  Tensor views[std::size(arrays)];
  int64_t offset = 0;
  for (size_t i = 0; i < std::size(arrays); ++i) {
    const int64_t count = static_cast<int64_t>(arrays[i]->size());
    views[i] = Tensor{static_cast<int32_t*>(all.data) + offset, DType::I32, {count}, all.device};
    offset += count;
  }
  StepInputs inputs;
  inputs.token_ids = views[0];
  inputs.logit_rows = views[6];
  AttentionBatch& attention = inputs.attention;
  attention.positions = views[1];
  attention.slots = views[2];
  attention.query_start = views[3];
  attention.context_length = views[4];
  attention.block_table = views[5].reshaped({flat.sequences(), flat.max_blocks});
  attention.num_sequences = flat.sequences();
  attention.num_tokens = flat.tokens();
  attention.max_context_length = flat.max_context;
  attention.page_size = page_size;
  return inputs;
}

}  // namespace rackserve
