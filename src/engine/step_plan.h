// StepPlan: what the scheduler decided one forward step computes, in tokens and pages
// only. Plain data, so the same plan can later travel to other ranks or nodes; it
// converts to the model's ForwardBatch.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "models/forward_batch.h"

namespace rackserve {

using SequenceId = int64_t;

struct PlannedSequence {
  SequenceId sequence_id = 0;
  std::vector<int32_t> token_ids;  // the tokens computed this step (a prefill chunk, or one decode token)
  int32_t start_position = 0;      // position of token_ids[0]; earlier positions are in the cache
  std::vector<int32_t> pages;      // page table covering [0, start_position + token_ids.size())
  bool needs_logits = false;       // the chunk ends the sequence: its last token's logits are sampled
};

struct StepPlan {
  std::vector<PlannedSequence> sequences;

  bool empty() const { return sequences.empty(); }
  int32_t num_tokens() const;
};

// One chunk per planned sequence, in plan order; the model returns one logits row per
// sequence (the last token's), whether or not the plan needs it.
ForwardBatch to_forward_batch(const StepPlan& plan);

void to_json(nlohmann::json& json, const StepPlan& plan);
void from_json(const nlohmann::json& json, StepPlan& plan);

}  // namespace rackserve
