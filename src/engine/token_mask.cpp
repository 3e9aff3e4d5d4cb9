#include "engine/token_mask.h"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <utility>

#include "core/error.h"
#include "engine/json_bytes.h"

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
  for (const std::string& bytes : token_bytes_)
    max_token_bytes_ = std::max(max_token_bytes_, static_cast<uint32_t>(std::min<size_t>(bytes.size(), UINT32_MAX)));
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
    while (at < pending.end && token_bytes[order[at]].size() == pending.length) ++at;
    nodes_[pending.node].first_id = static_cast<uint32_t>(pending.begin);
    nodes_[pending.node].id_count = static_cast<uint32_t>(at - pending.begin);
    nodes_[pending.node].subtree_end = static_cast<uint32_t>(pending.end);
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
  ids_ = std::move(order);
  mark_plain_subtrees();
}

namespace {

// Where a plain string stands inside a UTF-8 character: kBoundary, or which continuation
// bytes must come (json_bytes::utf8_lead's table); kBroken once a byte breaks it.
enum Utf8Position : uint8_t {
  kBoundary,
  kOneMore,          // 80..BF, then a boundary
  kTwoMore,          // 80..BF, then kOneMore
  kThreeMore,        // 80..BF, then kTwoMore
  kTwoMoreFromA0,    // after E0: A0..BF, then kOneMore
  kTwoMoreTo9F,      // after ED: 80..9F, then kOneMore
  kThreeMoreFrom90,  // after F0: 90..BF, then kTwoMore
  kThreeMoreTo8F,    // after F4: 80..8F, then kTwoMore
  kPositions,
  kBroken = kPositions,
};

Utf8Position after_plain_byte(Utf8Position position, uint8_t byte) {
  auto continuation = [&](uint8_t low, uint8_t high, Utf8Position next) {
    return byte >= low && byte <= high ? next : kBroken;
  };
  switch (position) {
    case kBoundary: {
      if (byte < 0x80) return json_bytes::is_plain_string_ascii(byte) ? kBoundary : kBroken;
      const json_bytes::Utf8Lead lead = json_bytes::utf8_lead(byte);
      if (lead.continuations == 1) return kOneMore;
      if (lead.continuations == 2) return lead.low == 0xA0 ? kTwoMoreFromA0 : lead.high == 0x9F ? kTwoMoreTo9F : kTwoMore;
      if (lead.continuations == 3)
        return lead.low == 0x90 ? kThreeMoreFrom90 : lead.high == 0x8F ? kThreeMoreTo8F : kThreeMore;
      return kBroken;
    }
    case kOneMore: return continuation(0x80, 0xBF, kBoundary);
    case kTwoMore: return continuation(0x80, 0xBF, kOneMore);
    case kThreeMore: return continuation(0x80, 0xBF, kTwoMore);
    case kTwoMoreFromA0: return continuation(0xA0, 0xBF, kOneMore);
    case kTwoMoreTo9F: return continuation(0x80, 0x9F, kOneMore);
    case kThreeMoreFrom90: return continuation(0x90, 0xBF, kTwoMore);
    case kThreeMoreTo8F: return continuation(0x80, 0x8F, kTwoMore);
    default: return kBroken;
  }
}

}  // namespace

// Bottom up (children come after their parent in nodes_): plain[n] holds bit p when every
// string below n, read from UTF-8 position p, is plain string content.
void JsonTokenMask::mark_plain_subtrees() {
  std::vector<uint8_t> plain(nodes_.size(), 0);
  for (size_t n = nodes_.size(); n-- > 0;) {
    uint8_t positions = 0;
    for (int p = 0; p < kPositions; ++p) {
      bool all = true;
      for (uint32_t c = nodes_[n].first_child; all && c < nodes_[n].first_child + nodes_[n].child_count; ++c) {
        const Utf8Position next = after_plain_byte(static_cast<Utf8Position>(p), nodes_[c].byte);
        all = next != kBroken && (plain[c] >> next & 1);
      }
      if (all) positions |= uint8_t{1} << p;
    }
    plain[n] = positions;
    nodes_[n].plain_below = positions & 1;
  }
}

template <class Grammar>
std::vector<uint8_t> JsonTokenMask::allowed_flags(const Grammar& state) const {
  std::vector<uint8_t> flags(static_cast<size_t>(vocab_size_), 0);
  auto allow = [&](uint32_t begin, uint32_t end) {
    for (uint32_t i = begin; i < end; ++i) flags[static_cast<size_t>(ids_[i])] = 1;
  };
  if (state.complete())
    for (int32_t id : eos_ids_) flags[static_cast<size_t>(id)] = 1;
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
    // Every token below is plain content, and the string has room for the longest.
    if (parent.plain_below && frame.state.plain_string_room() >= max_token_bytes_) {
      allow(parent.first_id + parent.id_count, parent.subtree_end);
      continue;
    }
    for (uint32_t child = parent.first_child; child < parent.first_child + parent.child_count; ++child) {
      Grammar next = frame.state;
      if (!next.accept(nodes_[child].byte)) continue;
      const Node& node = nodes_[child];
      allow(node.first_id, node.first_id + node.id_count);
      if (node.child_count > 0) stack.push_back({child, next});
    }
  }
  return flags;
}

template <class Grammar>
std::vector<int32_t> JsonTokenMask::allowed(const Grammar& state) const {
  const std::vector<uint8_t> flags = allowed_flags(state);
  std::vector<int32_t> result;
  for (int32_t id = 0; id < vocab_size_; ++id)
    if (flags[static_cast<size_t>(id)]) result.push_back(id);
  return result;
}

template <class Grammar>
std::vector<int32_t> JsonTokenMask::banned(const Grammar& state) const {
  const std::vector<uint8_t> flags = allowed_flags(state);
  std::vector<int32_t> result;
  for (int32_t id = 0; id < vocab_size_; ++id)
    if (!flags[static_cast<size_t>(id)]) result.push_back(id);
  return result;
}

template std::vector<int32_t> JsonTokenMask::allowed(const JsonGrammar&) const;
template std::vector<int32_t> JsonTokenMask::banned(const JsonGrammar&) const;
template std::vector<int32_t> JsonTokenMask::allowed(const JsonSchemaGrammar&) const;
template std::vector<int32_t> JsonTokenMask::banned(const JsonSchemaGrammar&) const;
template std::vector<int32_t> JsonTokenMask::allowed(const ChoiceGrammar&) const;
template std::vector<int32_t> JsonTokenMask::banned(const ChoiceGrammar&) const;

}  // namespace rackserve
