// SamplingParams: how one request picks its tokens and when it stops, in OpenAI / vLLM
// terms. Fields a request may omit are optional; Engine::submit fills them from the
// model's generation_config.json (GenerationConfig) and then from the neutral values
// below, so the sampler only ever sees resolved params.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rackserve {

struct SamplingParams {
  // Defaultable from generation_config.json; neutral values after the colon.
  std::optional<float> temperature;         // 1.0; 0 (below 1e-5) means greedy
  std::optional<float> top_p;               // 1.0; keep the smallest set with mass >= top_p
  std::optional<int32_t> top_k;             // 0 (or -1): off
  std::optional<float> min_p;               // 0.0; drop tokens with p < min_p * max p
  std::optional<float> repetition_penalty;  // 1.0; HF semantics over prompt + output tokens
  std::optional<int32_t> max_tokens;        // max_model_len - prompt length

  float presence_penalty = 0.0f;   // subtracted once from every token present in the output
  float frequency_penalty = 0.0f;  // subtracted per occurrence in the output
  // Same seed + same prompt => same tokens (alone or batched, across preemption). Without
  // a seed the engine draws one per request.
  std::optional<uint64_t> seed;
  // Log-probabilities of the RAW model logits (before penalties, temperature and
  // filtering; vLLM's default "raw_logprobs"): nullopt none, 0 the sampled token's only,
  // k > 0 also the k most likely tokens.
  std::optional<int32_t> logprobs;

  std::vector<int32_t> stop_token_ids;  // finish with reason stop; the token is not detokenized
  std::vector<std::string> stop;        // stop strings, matched on detokenized text
  bool include_stop_str_in_output = false;
  bool ignore_eos = false;
  // The text leaves out special tokens (vLLM's default); false keeps them, e.g. for a model
  // whose tool-call markup is made of special tokens.
  bool skip_special_tokens = true;
  int32_t min_tokens = 0;  // EOS and stop tokens are masked until this many are generated
  int32_t n = 1;           // sequences per request; they share the prompt's pages

  bool greedy() const { return temperature.value_or(1.0f) < 1e-5f; }
};

// The sampling defaults a checkpoint ships in generation_config.json (only the keys vLLM
// honours; `do_sample` is ignored, as in vLLM), plus its EOS ids.
struct GenerationConfig {
  std::optional<float> temperature, top_p, min_p, repetition_penalty;
  std::optional<int32_t> top_k, max_new_tokens;
  std::vector<int32_t> eos_token_ids;  // `eos_token_id`: an int or a list
  std::optional<int32_t> bos_token_id;

  // `source` names the file in error messages; wrong types throw rackserve::Error.
  static GenerationConfig from_json_text(const std::string& text, const std::string& source);
  // Reads DIR/generation_config.json; an absent file gives an empty config.
  static GenerationConfig load(const std::string& model_directory);

  // Fills every unset defaultable field of `params` from this config, then from the
  // neutral values (max_tokens excepted: it depends on the prompt; see Engine::submit).
  SamplingParams apply(SamplingParams params) const;
};

}  // namespace rackserve
