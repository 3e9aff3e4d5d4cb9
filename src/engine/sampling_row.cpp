#include "engine/sampling_row.h"

#include <algorithm>
#include <vector>

namespace rackserve {

void PenaltyTally::add(int32_t token, int32_t output_count) {
  auto at = std::lower_bound(tokens_.begin(), tokens_.end(), token,
                             [](const PenaltyToken& entry, int32_t value) { return entry.token < value; });
  if (at == tokens_.end() || at->token != token) at = tokens_.insert(at, PenaltyToken{token, 0, true});
  at->output_count += output_count;
}

void PenaltyTally::update(const SamplingHistory& history, bool with_prompt) {
  if (history.output.size() < counted_output_ || (prompt_counted_ && !with_prompt)) *this = PenaltyTally{};  // not an extension: recount
  if (with_prompt && !prompt_counted_) {
    for (int32_t token : history.prompt) add(token, 0);
    prompt_counted_ = true;
  }
  for (size_t i = counted_output_; i < history.output.size(); ++i) add(history.output[i], 1);
  counted_output_ = history.output.size();
}

SamplingRow make_sampling_row(const SamplingParams& params, const SamplingHistory& history, PenaltyTally* tally) {
  SamplingRow row;
  row.temperature = params.temperature.value_or(1.0f);
  row.top_p = params.top_p.value_or(1.0f);
  row.top_k = params.top_k.value_or(0);
  row.min_p = params.min_p.value_or(0.0f);
  row.repetition_penalty = params.repetition_penalty.value_or(1.0f);
  row.frequency_penalty = params.frequency_penalty;
  row.presence_penalty = params.presence_penalty;
  row.seed = history.seed;
  row.counter = history.output.size();
  row.logprobs = params.logprobs ? std::max(*params.logprobs, 0) : -1;
  row.banned.assign(history.banned.begin(), history.banned.end());
  std::sort(row.banned.begin(), row.banned.end());
  row.banned.erase(std::unique(row.banned.begin(), row.banned.end()), row.banned.end());

  const bool repetition = row.repetition_penalty != 1.0f;
  const bool counted = row.frequency_penalty != 0.0f || row.presence_penalty != 0.0f;
  if (!repetition && !counted) return row;
  if (tally) {
    tally->update(history, repetition);
    row.penalty_tokens = tally->tokens();
    for (PenaltyToken& entry : row.penalty_tokens) {
      entry.repeated = repetition;
      if (!counted) entry.output_count = 0;
    }
    return row;
  }
  // (token, from output) pairs sorted by token: one PenaltyToken per distinct token.
  std::vector<std::pair<int32_t, bool>> seen;
  if (repetition)
    for (int32_t token : history.prompt) seen.emplace_back(token, false);
  for (int32_t token : history.output) seen.emplace_back(token, true);
  std::sort(seen.begin(), seen.end());
  for (size_t begin = 0; begin < seen.size();) {
    PenaltyToken entry;
    entry.token = seen[begin].first;
    entry.repeated = repetition;
    size_t end = begin;
    for (; end < seen.size() && seen[end].first == entry.token; ++end) entry.output_count += seen[end].second ? 1 : 0;
    if (!counted) entry.output_count = 0;
    row.penalty_tokens.push_back(entry);
    begin = end;
  }
  return row;
}

}  // namespace rackserve
