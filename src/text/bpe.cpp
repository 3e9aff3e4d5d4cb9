// BPE model (see bpe.h): vocabulary tables, initial symbols, and the heap merge loop.
#include "text/bpe.h"

#include <algorithm>
#include <fmt/format.h>

#include "core/error.h"
#include "text/byte_level.h"
#include "text/utf8.h"

namespace rackserve::text {
namespace {

constexpr size_t kMaxCachedWordBytes = 256;

uint64_t pair_key(TokenId left, TokenId right) { return (static_cast<uint64_t>(left) << 32) | right; }

struct HeapEntry {
  uint32_t rank;
  int32_t pos;
  TokenId result;
  bool operator>(const HeapEntry& other) const {
    return rank != other.rank ? rank > other.rank : pos > other.pos;
  }
};

}  // namespace

void BpeModel::add_token(std::string spelling, std::string key, TokenId id) {
  if (id >= tokens_.size()) {
    tokens_.resize(id + 1);
    present_.resize(id + 1, false);
  }
  tokens_[id] = std::move(spelling);
  present_[id] = true;
  encoder_.insert_or_assign(std::move(key), id);
}

BpeModel::BpeModel(const std::vector<std::pair<std::string, TokenId>>& vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options)
    : options_(std::move(options)), cache_(options_.cache_capacity) {
  std::unordered_map<std::string, TokenId, StringHash, std::equal_to<>> by_spelling;
  by_spelling.reserve(vocab.size());
  for (const auto& [spelling, id] : vocab) {
    by_spelling.insert_or_assign(spelling, id);
    if (options_.byte_level) {
      // A spelling outside the byte alphabet can be decoded but never produced.
      auto bytes = byte_level::to_bytes(spelling);
      if (tokens_.size() <= id) {
        tokens_.resize(id + 1);
        present_.resize(id + 1, false);
      }
      tokens_[id] = spelling;
      present_[id] = true;
      if (bytes) {
        encoder_.insert_or_assign(std::move(*bytes), id);
      } else {
        other_spellings_.insert_or_assign(spelling, id);
      }
    } else {
      add_token(spelling, spelling, id);
    }
  }
  merges_.reserve(merges.size());
  const std::string& prefix = options_.continuing_subword_prefix;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    auto left_it = by_spelling.find(left);
    auto right_it = by_spelling.find(right);
    RS_CHECK(left_it != by_spelling.end(), "model.merges[{}]: token {} is not in model.vocab", rank, utf8::quoted(left));
    RS_CHECK(right_it != by_spelling.end(), "model.merges[{}]: token {} is not in model.vocab", rank, utf8::quoted(right));
    std::string joined = left;
    joined.append(!prefix.empty() && right.starts_with(prefix) ? right.substr(prefix.size()) : right);
    auto result_it = by_spelling.find(joined);
    RS_CHECK(result_it != by_spelling.end(), "model.merges[{}]: merged token {} is not in model.vocab", rank, utf8::quoted(joined));
    merges_.insert_or_assign(pair_key(left_it->second, right_it->second),
                             Merge{static_cast<uint32_t>(rank), result_it->second});
  }
  byte_ids_.assign(256, -1);
  fallback_ids_.assign(256, -1);
  for (int b = 0; b < 256; ++b) {
    if (options_.byte_level) {
      auto it = encoder_.find(std::string(1, static_cast<char>(b)));
      if (it != encoder_.end()) byte_ids_[b] = it->second;
    }
    auto fallback = by_spelling.find(fmt::format("<0x{:02X}>", b));
    if (fallback != by_spelling.end()) fallback_ids_[b] = fallback->second;
  }
  if (options_.unk_token) {
    auto it = by_spelling.find(*options_.unk_token);
    if (it != by_spelling.end()) unk_id_ = it->second;
  }
}

BpeModel::BpeModel(const std::vector<std::pair<std::string, TokenId>>& ranks)
    : ranks_mode_(true), cache_(1 << 16) {
  options_.byte_level = true;
  options_.ignore_merges = true;
  encoder_.reserve(ranks.size());
  for (const auto& [bytes, rank] : ranks) add_token(bytes, bytes, rank);
  byte_ids_.assign(256, -1);
  fallback_ids_.assign(256, -1);
  for (int b = 0; b < 256; ++b) {
    auto it = encoder_.find(std::string(1, static_cast<char>(b)));
    RS_CHECK(it != encoder_.end(), "tiktoken ranks: the single byte 0x{:02X} has no rank", b);
    byte_ids_[b] = it->second;
  }
}

const std::string* BpeModel::token(TokenId id) const {
  return id < tokens_.size() && present_[id] ? &tokens_[id] : nullptr;
}

std::optional<TokenId> BpeModel::find(std::string_view token) const {
  if (options_.byte_level && !ranks_mode_) {
    auto bytes = byte_level::to_bytes(token);
    if (!bytes) {
      auto other = other_spellings_.find(token);
      return other == other_spellings_.end() ? std::nullopt : std::optional<TokenId>(other->second);
    }
    auto it = encoder_.find(*bytes);
    return it == encoder_.end() ? std::nullopt : std::optional<TokenId>(it->second);
  }
  auto it = encoder_.find(token);
  return it == encoder_.end() ? std::nullopt : std::optional<TokenId>(it->second);
}

void BpeModel::initial_symbols(std::string_view piece, std::vector<Symbol>& symbols) const {
  std::optional<Symbol> unknown;  // pending (possibly fused) unknown token
  auto push = [&](TokenId id, size_t begin, size_t end) {
    if (unknown) {
      symbols.push_back(*unknown);
      unknown.reset();
    }
    symbols.push_back({id, static_cast<uint32_t>(begin), static_cast<uint32_t>(end), 0, 0});
  };
  auto push_unknown = [&](size_t begin, size_t end) {
    if (!options_.unk_token) return;  // no unknown token: the text is dropped, as in tokenizers
    RS_CHECK(unk_id_.has_value(), "model.unk_token {} is not in model.vocab", utf8::quoted(*options_.unk_token));
    if (unknown && options_.fuse_unk) {
      unknown->end = static_cast<uint32_t>(end);
      return;
    }
    if (unknown) symbols.push_back(*unknown);
    unknown = Symbol{*unk_id_, static_cast<uint32_t>(begin), static_cast<uint32_t>(end), 0, 0};
  };

  if (options_.byte_level) {
    for (size_t i = 0; i < piece.size(); ++i) {
      const int64_t id = byte_ids_[static_cast<unsigned char>(piece[i])];
      if (id >= 0) {
        push(static_cast<TokenId>(id), i, i + 1);
      } else {
        push_unknown(i, i + 1);
      }
    }
  } else {
    std::string key;
    size_t pos = 0;
    while (pos < piece.size()) {
      const size_t begin = pos;
      pos += std::min(utf8::sequence_length(static_cast<unsigned char>(piece[pos])), piece.size() - pos);
      std::string_view character = piece.substr(begin, pos - begin);
      std::string_view lookup = character;
      if ((begin > 0 && !options_.continuing_subword_prefix.empty()) ||
          (pos == piece.size() && !options_.end_of_word_suffix.empty())) {
        key.assign(begin > 0 ? options_.continuing_subword_prefix : "");
        key.append(character);
        if (pos == piece.size()) key.append(options_.end_of_word_suffix);
        lookup = key;
      }
      if (auto it = encoder_.find(lookup); it != encoder_.end()) {
        push(it->second, begin, pos);
        continue;
      }
      if (options_.byte_fallback &&
          std::all_of(lookup.begin(), lookup.end(), [&](char b) { return fallback_ids_[static_cast<unsigned char>(b)] >= 0; })) {
        for (char b : lookup) push(static_cast<TokenId>(fallback_ids_[static_cast<unsigned char>(b)]), begin, pos);
        continue;
      }
      push_unknown(begin, pos);
    }
  }
  if (unknown) symbols.push_back(*unknown);
  for (size_t i = 0; i < symbols.size(); ++i) {
    symbols[i].prev = static_cast<int32_t>(i) - 1;
    symbols[i].next = i + 1 < symbols.size() ? static_cast<int32_t>(i + 1) : -1;
  }
}

std::optional<BpeModel::Merge> BpeModel::merge_of(std::string_view piece, const Symbol& left, const Symbol& right) const {
  if (ranks_mode_) {
    auto it = encoder_.find(piece.substr(left.begin, right.end - left.begin));
    if (it == encoder_.end()) return std::nullopt;
    return Merge{it->second, it->second};
  }
  auto it = merges_.find(pair_key(left.id, right.id));
  if (it == merges_.end()) return std::nullopt;
  return it->second;
}

void BpeModel::merge(std::string_view piece, std::vector<Symbol>& symbols) const {
  thread_local std::vector<HeapEntry> heap;
  heap.clear();
  auto consider = [&](int32_t pos) {
    const Symbol& left = symbols[pos];
    if (left.next < 0) return;
    if (auto merge = merge_of(piece, left, symbols[left.next])) {
      heap.push_back({merge->rank, pos, merge->result});
      std::push_heap(heap.begin(), heap.end(), std::greater<>{});
    }
  };
  for (size_t i = 0; i + 1 < symbols.size(); ++i) consider(static_cast<int32_t>(i));
  std::vector<bool> dead(symbols.size(), false);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
    const HeapEntry top = heap.back();
    heap.pop_back();
    Symbol& left = symbols[top.pos];
    if (dead[top.pos] || left.next < 0) continue;
    const int32_t right_pos = left.next;
    const Symbol right = symbols[right_pos];
    const auto current = merge_of(piece, left, right);
    if (!current || current->rank != top.rank || current->result != top.result) continue;  // stale
    left.id = top.result;
    left.end = right.end;
    left.next = right.next;
    dead[right_pos] = true;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) consider(left.prev);
    consider(top.pos);
  }
  size_t kept = 0;
  for (size_t i = 0; i < symbols.size(); ++i) {
    if (!dead[i]) symbols[kept++] = symbols[i];
  }
  symbols.resize(kept);
}

void BpeModel::encode(std::string_view piece, std::vector<TokenId>& out) const {
  if (piece.empty()) return;
  if (options_.ignore_merges) {
    if (auto it = encoder_.find(piece); it != encoder_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = options_.cache_capacity > 0 && piece.size() > 2 && piece.size() <= kMaxCachedWordBytes;
  if (cacheable && cache_.get(piece, out)) return;
  thread_local std::vector<Symbol> symbols;
  symbols.clear();
  initial_symbols(piece, symbols);
  if (symbols.size() > 1) merge(piece, symbols);
  const size_t first = out.size();
  for (const Symbol& symbol : symbols) out.push_back(symbol.id);
  if (cacheable) cache_.put(piece, std::span<const TokenId>(out.data() + first, out.size() - first));
}

}  // namespace rackserve::text
