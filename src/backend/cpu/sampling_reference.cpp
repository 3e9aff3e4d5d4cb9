#include "backend/cpu/sampling_reference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>

#include "core/error.h"
#include "rackserve/random_hash.h"

namespace rackserve::cpu {

namespace {

constexpr float kNegativeInfinity = -std::numeric_limits<float>::infinity();

struct Candidate {
  int32_t token;
  float weight;  // unnormalised probability, the most likely token has 1
};

// Penalised, masked logits of the row and, unless greedy, the kept candidates in
// ascending id order (the draw's order). Returns the greedy token instead when greedy.
std::optional<int32_t> keep_set(std::span<const float> logits, const SamplingRow& row, std::vector<Candidate>& kept) {
  // A model that produced NaN or +inf has no distribution to sample: an error for this
  // request (the engine fails it), never an empty candidate set.
  RS_CHECK(std::none_of(logits.begin(), logits.end(), [](float x) { return std::isnan(x) || x == -kNegativeInfinity; }),
           "the logits hold NaN or +inf: the model produced invalid values");
  std::vector<float> work(logits.begin(), logits.end());
  apply_penalties(work, row);
  for (int32_t token : row.banned) work.at(token) = kNegativeInfinity;
  const float max_logit = *std::max_element(work.begin(), work.end());
  RS_CHECK(max_logit > kNegativeInfinity, "every token is masked");
  if (row.greedy()) return static_cast<int32_t>(std::max_element(work.begin(), work.end()) - work.begin());

  kept.clear();
  for (size_t token = 0; token < work.size(); ++token) {
    const float weight = std::exp((work[token] - max_logit) / row.temperature);
    if (weight > 0.0f && weight >= row.min_p) kept.push_back({static_cast<int32_t>(token), weight});
  }
  auto more_likely = [](const Candidate& a, const Candidate& b) {
    return a.weight > b.weight || (a.weight == b.weight && a.token < b.token);
  };
  std::vector<Candidate> sorted = kept;
  std::sort(sorted.begin(), sorted.end(), more_likely);
  size_t keep = sorted.size();
  if (row.top_k > 0 && static_cast<size_t>(row.top_k) < keep) {
    const float kth = sorted[row.top_k - 1].weight;  // ties at the cut stay
    keep = static_cast<size_t>(std::partition_point(sorted.begin(), sorted.end(),
                                                    [kth](const Candidate& c) { return c.weight >= kth; }) -
                               sorted.begin());
  }
  if (row.top_p < 1.0f) {
    double total = 0.0;
    for (size_t i = 0; i < keep; ++i) total += sorted[i].weight;
    const double limit = static_cast<double>(row.top_p) * total;
    double above = 0.0;
    size_t within = 0;
    while (within < keep && above < limit) above += sorted[within++].weight;
    keep = std::max<size_t>(within, 1);
  }
  sorted.resize(keep);
  std::sort(sorted.begin(), sorted.end(), [](const Candidate& a, const Candidate& b) { return a.token < b.token; });
  kept = std::move(sorted);
  return std::nullopt;
}

}  // namespace

void apply_penalties(std::span<float> logits, const SamplingRow& row) {
  for (const PenaltyToken& entry : row.penalty_tokens) {
    RS_CHECK(entry.token >= 0 && static_cast<size_t>(entry.token) < logits.size(), "penalty token {} out of range",
             entry.token);
    float& logit = logits[entry.token];
    if (entry.repeated && row.repetition_penalty != 1.0f)
      logit = logit > 0.0f ? logit / row.repetition_penalty : logit * row.repetition_penalty;
    if (entry.output_count > 0)
      logit -= row.frequency_penalty * static_cast<float>(entry.output_count) + row.presence_penalty;
  }
}

std::vector<float> log_softmax(std::span<const float> logits) {
  const float max = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float logit : logits) sum += std::exp(static_cast<double>(logit) - max);
  const double log_normaliser = max + std::log(sum);
  std::vector<float> result(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) result[i] = static_cast<float>(logits[i] - log_normaliser);
  return result;
}

std::vector<float> sampling_distribution(std::span<const float> logits, const SamplingRow& row) {
  std::vector<float> probabilities(logits.size(), 0.0f);
  std::vector<Candidate> kept;
  if (auto greedy = keep_set(logits, row, kept)) {
    probabilities[*greedy] = 1.0f;
    return probabilities;
  }
  double total = 0.0;
  for (const Candidate& c : kept) total += c.weight;
  for (const Candidate& c : kept) probabilities[c.token] = static_cast<float>(c.weight / total);
  return probabilities;
}

SampledRow sample_row(std::span<const float> logits, const SamplingRow& row) {
  RS_CHECK(!logits.empty(), "sampling an empty row");
  SampledRow result;
  std::vector<Candidate> kept;
  if (auto greedy = keep_set(logits, row, kept)) {
    result.token = *greedy;
  } else {
    double total = 0.0;
    for (const Candidate& c : kept) total += c.weight;
    const double target = sampling_uniform(row.seed, row.counter) * total;
    double cumulative = 0.0;
    result.token = kept.back().token;
    for (const Candidate& c : kept) {
      cumulative += c.weight;
      if (cumulative > target) {
        result.token = c.token;
        break;
      }
    }
  }
  if (row.logprobs >= 0) {
    std::vector<float> logprobs = log_softmax(logits);
    result.logprob = logprobs[result.token];
    const size_t top = std::min<size_t>(row.logprobs, logprobs.size());
    std::vector<int32_t> order(logprobs.size());
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + top, order.end(), [&](int32_t a, int32_t b) {
      return logprobs[a] > logprobs[b] || (logprobs[a] == logprobs[b] && a < b);
    });
    for (size_t i = 0; i < top; ++i) result.top_logprobs.push_back({order[i], logprobs[order[i]]});
  }
  return result;
}

}  // namespace rackserve::cpu
