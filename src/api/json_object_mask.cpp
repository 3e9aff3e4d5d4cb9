#include "api/json_object_mask.h"

#include <optional>
#include <string>
#include <vector>

namespace rackserve::api {

std::shared_ptr<const JsonTokenMask> make_json_object_mask(const text::Tokenizer& tokenizer, int32_t vocab_size,
                                                           std::span<const int32_t> eos_ids) {
  std::optional<std::vector<std::string>> bytes = tokenizer.raw_token_bytes();
  if (!bytes) return nullptr;
  bytes->resize(static_cast<size_t>(vocab_size));  // the model's ids: padding ids decode to nothing
  // An EOS id outside the model's vocabulary can never be sampled: nothing to allow.
  std::vector<int32_t> eos;
  for (int32_t id : eos_ids)
    if (id >= 0 && id < vocab_size) eos.push_back(id);
  return std::make_shared<const JsonTokenMask>(std::move(*bytes), std::move(eos));
}

}  // namespace rackserve::api
