#include "engine/step_plan.h"

#include <nlohmann/json.hpp>

namespace rackserve {

int32_t StepPlan::num_tokens() const {
  int32_t total = 0;
  for (const PlannedSequence& sequence : sequences) total += static_cast<int32_t>(sequence.token_ids.size());
  return total;
}

ForwardBatch to_forward_batch(const StepPlan& plan) {
  ForwardBatch batch;
  batch.sequences.reserve(plan.sequences.size());
  for (const PlannedSequence& planned : plan.sequences)
    batch.sequences.push_back({planned.token_ids, planned.start_position, planned.pages, /*all_logits=*/false});
  return batch;
}

void to_json(nlohmann::json& json, const StepPlan& plan) {
  json = nlohmann::json::array();
  for (const PlannedSequence& s : plan.sequences)
    json.push_back({{"sequence_id", s.sequence_id},
                    {"token_ids", s.token_ids},
                    {"start_position", s.start_position},
                    {"pages", s.pages},
                    {"needs_logits", s.needs_logits}});
}

void from_json(const nlohmann::json& json, StepPlan& plan) {
  plan.sequences.clear();
  for (const nlohmann::json& s : json)
    plan.sequences.push_back({s.at("sequence_id").get<SequenceId>(), s.at("token_ids").get<std::vector<int32_t>>(),
                              s.at("start_position").get<int32_t>(), s.at("pages").get<std::vector<int32_t>>(),
                              s.at("needs_logits").get<bool>()});
}

}  // namespace rackserve
