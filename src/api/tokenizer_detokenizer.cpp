#include "api/tokenizer_detokenizer.h"

#include "core/error.h"

namespace rackserve::api {
namespace {

class StreamDetokenizer : public IncrementalDetokenizer {
 public:
  StreamDetokenizer(std::shared_ptr<const text::Tokenizer> tokenizer, bool skip_special_tokens)
      : tokenizer_(std::move(tokenizer)), stream_(tokenizer_->decode_stream(skip_special_tokens)) {}

  std::string append(int32_t token) override {
    // Ids the model can emit beyond the tokenizer's vocabulary (padded embedding rows)
    // have no text.
    if (token < 0 || static_cast<size_t>(token) >= tokenizer_->vocab_size()) return {};
    try {
      return stream_.step(static_cast<text::TokenId>(token));
    } catch (const Error&) {
      return {};
    }
  }
  std::string finish() override { return stream_.finish(); }

 private:
  std::shared_ptr<const text::Tokenizer> tokenizer_;  // outlives stream_, which refers to its tables
  text::DecodeStream stream_;
};

}  // namespace

DetokenizerFactory make_detokenizer_factory(std::shared_ptr<const text::Tokenizer> tokenizer) {
  return [tokenizer](std::span<const int32_t>, bool skip_special_tokens) -> std::unique_ptr<IncrementalDetokenizer> {
    return std::make_unique<StreamDetokenizer>(tokenizer, skip_special_tokens);
  };
}

}  // namespace rackserve::api
