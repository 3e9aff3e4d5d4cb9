// The engine's text hook: one IncrementalDetokenizer per generated sequence, made by a
// DetokenizerFactory the caller passes to the Engine. The API layer implements it with
// the real tokenizer (text::Tokenizer::decode_stream); tests use small fakes. The engine
// only ever calls it on its own thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

namespace rackserve {

class IncrementalDetokenizer {
 public:
  virtual ~IncrementalDetokenizer() = default;
  // The text `token` makes final (empty while, say, a UTF-8 character is still partial).
  virtual std::string append(int32_t token) = 0;
  // Whatever is still buffered when the sequence ends.
  virtual std::string finish() { return {}; }
};

// Makes the detokenizer of one sequence. `prompt` gives the context some tokenizers need
// to decode the first generated token (a leading space, say); `skip_special_tokens` is the
// request's SamplingParams field. An empty factory means "no text": outputs carry token ids
// only and stop strings never match.
using DetokenizerFactory =
    std::function<std::unique_ptr<IncrementalDetokenizer>(std::span<const int32_t> prompt, bool skip_special_tokens)>;

}  // namespace rackserve
