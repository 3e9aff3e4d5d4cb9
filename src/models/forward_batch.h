// ForwardBatch: what one forward step computes, in host terms (token ids, positions,
// page tables). The model turns it into backend tensors; the scheduler (engine) builds
// it and never sees a tensor.
#pragma once

#include <cstdint>
#include <vector>

namespace rackserve {

struct SequenceChunk {
  std::vector<int32_t> token_ids;  // the new tokens of this sequence in this step
  int32_t start_position = 0;      // position of token_ids[0]; every earlier position is cached
  std::vector<int32_t> pages;      // KV page ids covering positions [0, start_position + token_ids.size())
  bool all_logits = false;         // logits for every new token, or only for the last one
};

struct ForwardBatch {
  std::vector<SequenceChunk> sequences;
};

}  // namespace rackserve
