// The engine's DetokenizerFactory made from a text::Tokenizer: one DecodeStream per
// sequence, special tokens skipped unless the request keeps them (SamplingParams).
#pragma once

#include <memory>

#include "engine/detokenizer.h"
#include "text/tokenizer.h"

namespace rackserve::api {

// The tokenizer is shared with the factory and every detokenizer it makes.
DetokenizerFactory make_detokenizer_factory(std::shared_ptr<const text::Tokenizer> tokenizer);

}  // namespace rackserve::api
