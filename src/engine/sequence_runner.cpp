#include "engine/sequence_runner.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace rackserve {

namespace {
int64_t pages_for(int64_t tokens, int64_t page_size) { return std::max<int64_t>(1, (tokens + page_size - 1) / page_size); }
}  // namespace

SequenceRunner::SequenceRunner(CausalLM& model, int64_t capacity, int64_t page_size,
                               std::optional<KvCacheDtype> kv_dtype)
    : model_(model), cache_(model.allocate_kv_cache(pages_for(capacity, page_size), page_size, kv_dtype)) {
  RS_CHECK(capacity > 0 && page_size > 0, "capacity and page size must be positive");
  pages_.resize(cache_.pages());
  // Pages in reverse order, so a kernel that ignored the block table would read wrong data.
  std::iota(pages_.rbegin(), pages_.rend(), 0);
}

std::vector<std::vector<float>> SequenceRunner::append(const std::vector<int32_t>& tokens, bool all_logits,
                                                       int64_t chunk) {
  RS_CHECK(!tokens.empty(), "nothing to append");
  RS_CHECK(length_ + static_cast<int64_t>(tokens.size()) <= cache_.pages() * cache_.page_size(),
           "sequence of {} tokens exceeds the reserved capacity {}", length_ + tokens.size(),
           cache_.pages() * cache_.page_size());
  const int64_t vocab = model_.config().vocab_size;
  const int64_t step_tokens = chunk > 0 ? chunk : static_cast<int64_t>(tokens.size());
  std::vector<std::vector<float>> logits;
  for (size_t begin = 0; begin < tokens.size(); begin += step_tokens) {
    size_t end = std::min(tokens.size(), begin + static_cast<size_t>(step_tokens));
    SequenceChunk sequence;
    sequence.token_ids.assign(tokens.begin() + begin, tokens.begin() + end);
    sequence.start_position = static_cast<int32_t>(length_);
    sequence.pages.assign(pages_.begin(), pages_.begin() + pages_for(length_ + (end - begin), cache_.page_size()));
    sequence.all_logits = all_logits;
    bool last_chunk = end == tokens.size();
    ForwardBatch batch{{sequence}};
    Tensor rows = model_.forward(batch, cache_);
    length_ += static_cast<int64_t>(end - begin);
    if (!all_logits && !last_chunk) continue;
    std::vector<float> host = model_.backend().download_f32(rows);
    for (int64_t r = 0; r < rows.dim(0); ++r)
      logits.emplace_back(host.begin() + r * vocab, host.begin() + (r + 1) * vocab);
  }
  return logits;
}

std::vector<int32_t> SequenceRunner::generate_greedy(const std::vector<int32_t>& prompt, int64_t max_new_tokens,
                                                     int64_t prefill_chunk) {
  std::vector<int32_t> generated;
  if (max_new_tokens <= 0) return generated;
  std::vector<float> last = append(prompt, false, prefill_chunk).back();
  for (;;) {
    generated.push_back(argmax(last));
    if (static_cast<int64_t>(generated.size()) == max_new_tokens) return generated;
    last = append({generated.back()}, false).back();
  }
}

int32_t argmax(const std::vector<float>& logits) {
  RS_CHECK(!logits.empty(), "argmax of empty logits");
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

}  // namespace rackserve
