#include "engine/token_mask.h"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <utility>

#include "core/error.h"

namespace rackserve {

JsonTokenMask::JsonTokenMask(std::vector<std::string> token_bytes, std::vector<int32_t> eos_ids)
    : token_bytes_(std::move(token_bytes)),
      eos_ids_(std::move(eos_ids)),
      vocab_size_(static_cast<int32_t>(token_bytes_.size())) {
  RS_CHECK(token_bytes_.size() <= static_cast<size_t>(INT32_MAX), "vocabulary of {} tokens is too large",
           token_bytes_.size());
  for (int32_t id : eos_ids_)
    RS_CHECK(id >= 0 && id < vocab_size_, "EOS token id {} is outside the vocabulary of {} tokens", id, vocab_size_);
  std::sort(eos_ids_.begin(), eos_ids_.end());
  eos_ids_.erase(std::unique(eos_ids_.begin(), eos_ids_.end()), eos_ids_.end());
  build();
}

bool JsonTokenMask::is_eos(int32_t id) const { return std::binary_search(eos_ids_.begin(), eos_ids_.end(), id); }

// Breadth-first over the tokens sorted by bytes: the tokens below a node form a contiguous
// range of that order, those ending at the node first, then one run per next byte. Children
// are appended all at once, so each node's children are contiguous and sorted.
void JsonTokenMask::build() {
  const std::vector<std::string>& token_bytes = token_bytes_;
  std::vector<int32_t> order;
  for (int32_t id = 0; id < vocab_size_; ++id) {
    if (!token_bytes[id].empty() && !std::binary_search(eos_ids_.begin(), eos_ids_.end(), id)) order.push_back(id);
  }
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return token_bytes[a] < token_bytes[b]; });

  struct Pending {
    uint32_t node;
    size_t begin, end;  // range of `order` below the node
    size_t length;      // the node's string length
  };
  nodes_.assign(1, Node{});
  std::deque<Pending> queue{{0, 0, order.size(), 0}};
  while (!queue.empty()) {
    const Pending pending = queue.front();
    queue.pop_front();
    size_t at = pending.begin;
    nodes_[pending.node].first_id = static_cast<uint32_t>(ids_.size());
    for (; at < pending.end && token_bytes[order[at]].size() == pending.length; ++at) ids_.push_back(order[at]);
    nodes_[pending.node].id_count = static_cast<uint32_t>(at - pending.begin);
    nodes_[pending.node].first_child = static_cast<uint32_t>(nodes_.size());
    while (at < pending.end) {
      const char byte = token_bytes[order[at]][pending.length];
      size_t run_end = at;
      while (run_end < pending.end && token_bytes[order[run_end]][pending.length] == byte) ++run_end;
      Node child;
      child.byte = static_cast<uint8_t>(byte);
      queue.push_back({static_cast<uint32_t>(nodes_.size()), at, run_end, pending.length + 1});
      nodes_.push_back(child);
      ++nodes_[pending.node].child_count;
      at = run_end;
    }
  }
}

template <class Grammar>
std::vector<int32_t> JsonTokenMask::allowed(const Grammar& state) const {
  std::vector<int32_t> result;
  if (state.complete()) result = eos_ids_;
  // Each frame: a node whose string the grammar accepted, and the state after it.
  struct Frame {
    uint32_t node;
    Grammar state;
  };
  std::vector<Frame> stack{{0, state}};
  while (!stack.empty()) {
    const Frame frame = stack.back();
    stack.pop_back();
    const Node& parent = nodes_[frame.node];
    for (uint32_t child = parent.first_child; child < parent.first_child + parent.child_count; ++child) {
      Grammar next = frame.state;
      if (!next.accept(nodes_[child].byte)) continue;
      const Node& node = nodes_[child];
      result.insert(result.end(), ids_.begin() + node.first_id, ids_.begin() + node.first_id + node.id_count);
      if (node.child_count > 0) stack.push_back({child, next});
    }
  }
  std::sort(result.begin(), result.end());
  return result;
}

template <class Grammar>
std::vector<int32_t> JsonTokenMask::banned(const Grammar& state) const {
  const std::vector<int32_t> allowed_ids = allowed(state);
  std::vector<int32_t> result;
  result.reserve(vocab_size_ - allowed_ids.size());
  auto next_allowed = allowed_ids.begin();
  for (int32_t id = 0; id < vocab_size_; ++id) {
    if (next_allowed != allowed_ids.end() && *next_allowed == id)
      ++next_allowed;
    else
      result.push_back(id);
  }
  return result;
}

template std::vector<int32_t> JsonTokenMask::allowed(const JsonGrammar&) const;
template std::vector<int32_t> JsonTokenMask::banned(const JsonGrammar&) const;
template std::vector<int32_t> JsonTokenMask::allowed(const JsonSchemaGrammar&) const;
template std::vector<int32_t> JsonTokenMask::banned(const JsonSchemaGrammar&) const;

}  // namespace rackserve
