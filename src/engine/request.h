// What the API layer hands the Engine (Request) and what comes back on the request's
// stream (RequestOutput, one per engine step with news). Plain data, no engine state.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "engine/sampling_params.h"

namespace rackserve {

// Assigned by Engine::submit; unique for the engine's lifetime.
using RequestId = uint64_t;

class JsonTokenMask;  // engine/token_mask.h
class JsonSchema;     // engine/json_schema.h
class TextChoices;    // engine/choice_grammar.h

struct Request {
  std::vector<int32_t> prompt;  // token ids, non-empty, each < vocab size
  // Unset optional fields take the model's generation_config.json defaults, then the
  // neutral values; max_tokens defaults to max_model_len - prompt length.
  SamplingParams params;
  // Set alone: response_format {"type": "json_object"}. Every sequence's output stays a
  // prefix of a JSON object document, and its EOS ids (the mask's, which should be the
  // engine's generation_config ones) are allowed only once the object is closed. The mask's
  // vocabulary must be the model's. Null: unconstrained.
  std::shared_ptr<const JsonTokenMask> json_mask;
  // Set (with json_mask, the tokenizer's mask): response_format {"type":
  // "json_schema"}: the same, but every output stays a prefix of a document this compiled
  // schema accepts (json_schema_grammar.h), and EOS is allowed once it is whole.
  std::shared_ptr<const JsonSchema> json_schema;
  // Set (with json_mask, instead of json_schema): structured_outputs {"choice": [...]}: every
  // output stays a prefix of one of these texts (choice_grammar.h), EOS once it is one.
  std::shared_ptr<const TextChoices> choices;
  // Set (with json_mask): the constraint above starts only once this token is sampled (a
  // reasoning model's "</think>": it thinks freely, then answers under the constraint).
  // Until then the output is unconstrained except that the EOS and stop token ids are
  // banned, so a sequence that stops on one holds the whole document after the token
  // (max_tokens or a stop string may still cut it, as without this field). From the token
  // on, the grammar starts from its initial state. Must be neither an EOS nor a stop id.
  std::optional<int32_t> constrain_after_token;
};

enum class FinishReason {
  Stop,    // EOS, a stop token id or a stop string
  Length,  // max_tokens reached, or max_model_len
  Abort,   // cancelled (cancel(), stream dropped, engine stopped)
  Error,   // the engine failed on this request; RequestOutput::error says why
};
// "stop", "length", "abort", "error".
const char* to_string(FinishReason reason);

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;  // natural log, of the raw model distribution
};

// Logprobs of one generated token (present when params.logprobs is set).
struct LogprobEntry {
  TokenLogprob sampled;
  std::vector<TokenLogprob> top;  // params.logprobs most likely tokens, most likely first
};

// What one sequence (choice `index` of the request's n) produced since the last output.
struct SequenceDelta {
  int32_t index = 0;
  // Every sampled token, the EOS / stop token that finished it included.
  std::vector<int32_t> token_ids;
  // New text. Stop strings (unless include_stop_str_in_output) and EOS / stop-token text
  // are never emitted; text that might begin a stop string is held back until it can't.
  std::string text;
  std::vector<LogprobEntry> logprobs;  // one per token_ids entry, or empty
  std::optional<FinishReason> finish_reason;  // set on the sequence's last delta
  // With FinishReason::Stop: the stop string matched, or the token id (EOS or stop id).
  std::variant<std::monostate, std::string, int32_t> stop_reason;
};

struct Usage {
  int32_t prompt_tokens = 0;         // prompt length (counted once, whatever n)
  int32_t completion_tokens = 0;     // generated tokens over all n sequences
  int32_t cached_prompt_tokens = 0;  // prompt tokens the prefix cache served (first sequence)
};

struct RequestOutput {
  RequestId id = 0;
  std::vector<SequenceDelta> sequences;  // only sequences with news, by index
  Usage usage;                           // cumulative up to this output
  bool finished = false;                 // every sequence has finished: the stream's last output
  std::string error;                     // why, when a sequence finished with FinishReason::Error
};

}  // namespace rackserve
