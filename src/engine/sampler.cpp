#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace rackserve {

namespace {

constexpr float kNegativeInfinity = -std::numeric_limits<float>::infinity();

uint64_t mix64(uint64_t x) {  // splitmix64 finaliser: a bijection with full avalanche
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

int32_t argmax(std::span<const float> values) {
  return static_cast<int32_t>(std::max_element(values.begin(), values.end()) - values.begin());
}

}  // namespace

double counter_uniform(uint64_t seed, uint64_t counter) {
  uint64_t bits = mix64(mix64(seed ^ 0x6a09e667f3bcc909ull) + counter * 0x9e3779b97f4a7c15ull);
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

void apply_penalties(std::span<float> logits, const SamplingParams& params, std::span<const int32_t> prompt,
                     std::span<const int32_t> output) {
  const float repetition = params.repetition_penalty.value_or(1.0f);
  if (repetition != 1.0f) {
    std::vector<int32_t> seen(prompt.begin(), prompt.end());
    seen.insert(seen.end(), output.begin(), output.end());
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (int32_t token : seen) {
      float& logit = logits[token];
      logit = logit > 0.0f ? logit / repetition : logit * repetition;
    }
  }
  if (params.frequency_penalty == 0.0f && params.presence_penalty == 0.0f) return;
  std::vector<int32_t> sorted(output.begin(), output.end());
  std::sort(sorted.begin(), sorted.end());
  for (size_t begin = 0; begin < sorted.size();) {
    size_t end = begin;
    while (end < sorted.size() && sorted[end] == sorted[begin]) ++end;
    logits[sorted[begin]] -= params.frequency_penalty * static_cast<float>(end - begin) + params.presence_penalty;
    begin = end;
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

std::optional<int32_t> Sampler::prepare(std::span<const float> logits, const SamplingParams& params,
                                        const SamplingHistory& history) {
  work_.assign(logits.begin(), logits.end());
  apply_penalties(work_, params, history.prompt, history.output);
  for (int32_t token : history.banned) work_[token] = kNegativeInfinity;
  if (params.greedy()) return argmax(work_);

  // Temperature, then weights relative to the most likely token (so the max weight is 1).
  const float temperature = params.temperature.value_or(1.0f);
  const float max_logit = *std::max_element(work_.begin(), work_.end());
  RS_CHECK(std::isfinite(max_logit), "every token is masked");
  const float min_p = params.min_p.value_or(0.0f);
  candidates_.clear();
  for (size_t token = 0; token < work_.size(); ++token) {
    float weight = std::exp((work_[token] - max_logit) / temperature);
    // min_p: p >= min_p * p_max, i.e. weight >= min_p.
    if (weight > 0.0f && weight >= min_p) candidates_.push_back({static_cast<int32_t>(token), weight});
  }
  auto more_likely = [](const Candidate& a, const Candidate& b) {
    return a.weight > b.weight || (a.weight == b.weight && a.token < b.token);
  };
  // top_k keeps every token at least as likely as the k-th (ties at the cut stay, as in vLLM).
  const int32_t top_k = params.top_k.value_or(0);
  if (top_k > 0 && static_cast<size_t>(top_k) < candidates_.size()) {
    std::nth_element(candidates_.begin(), candidates_.begin() + (top_k - 1), candidates_.end(), more_likely);
    const float kth = candidates_[top_k - 1].weight;
    std::erase_if(candidates_, [kth](const Candidate& c) { return c.weight < kth; });
  }
  std::sort(candidates_.begin(), candidates_.end(), more_likely);
  // top_p keeps a token while the mass of the tokens more likely than it is below top_p.
  const float top_p = params.top_p.value_or(1.0f);
  if (top_p < 1.0f) {
    double total = 0.0;
    for (const Candidate& c : candidates_) total += c.weight;
    double above = 0.0;
    size_t keep = 0;
    while (keep < candidates_.size() && above < top_p * total) above += candidates_[keep++].weight;
    candidates_.resize(std::max<size_t>(keep, 1));
  }
  return std::nullopt;
}

std::vector<float> Sampler::distribution(std::span<const float> logits, const SamplingParams& params,
                                         const SamplingHistory& history) {
  std::vector<float> probabilities(logits.size(), 0.0f);
  if (auto greedy = prepare(logits, params, history)) {
    probabilities[*greedy] = 1.0f;
    return probabilities;
  }
  double total = 0.0;
  for (const Candidate& c : candidates_) total += c.weight;
  for (const Candidate& c : candidates_) probabilities[c.token] = static_cast<float>(c.weight / total);
  return probabilities;
}

SampledToken Sampler::sample(std::span<const float> logits, const SamplingParams& params,
                             const SamplingHistory& history) {
  SampledToken result;
  if (auto greedy = prepare(logits, params, history)) {
    result.token = *greedy;
  } else {
    double total = 0.0;
    for (const Candidate& c : candidates_) total += c.weight;
    const double target = counter_uniform(history.seed, history.output.size()) * total;
    double cumulative = 0.0;
    result.token = candidates_.back().token;
    for (const Candidate& c : candidates_) {
      cumulative += c.weight;
      if (cumulative > target) {
        result.token = c.token;
        break;
      }
    }
  }
  if (params.logprobs) {
    std::vector<float> logprobs = log_softmax(logits);
    result.logprob = logprobs[result.token];
    const size_t top = std::min<size_t>(std::max(*params.logprobs, 0), logprobs.size());
    std::vector<int32_t> order(logprobs.size());
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + top, order.end(), [&](int32_t a, int32_t b) {
      return logprobs[a] > logprobs[b] || (logprobs[a] == logprobs[b] && a < b);
    });
    for (size_t i = 0; i < top; ++i) result.top_logprobs.push_back({order[i], logprobs[order[i]]});
  }
  return result;
}

}  // namespace rackserve
