// The JsonTokenMask of the served model for response_format {"type": "json_object"}: built
// once at start-up from the tokenizer's raw token bytes (rackserve_text) and handed to the
// engine inside each such Request, so the engine never depends on the tokenizer.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "engine/token_mask.h"
#include "text/tokenizer.h"

namespace rackserve::api {

// The mask over the model's `vocab_size` ids (ids past the tokenizer's vocabulary have no
// bytes: never allowed), allowing `eos_ids` (the engine's: generation_config.json's
// eos_token_id) once the object is complete. Null when the tokenizer's tokens have no fixed
// bytes (text::Tokenizer::raw_token_bytes): json_object requests then answer 422.
std::shared_ptr<const JsonTokenMask> make_json_object_mask(const text::Tokenizer& tokenizer, int32_t vocab_size,
                                                           std::span<const int32_t> eos_ids);

}  // namespace rackserve::api
