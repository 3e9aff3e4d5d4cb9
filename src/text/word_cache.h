// A bounded, thread-safe cache from a pre-tokenized piece to its token ids. Encoding is
// called from many HTTP threads at once, so the map is split into shards with one mutex
// each; a shard that fills up is cleared (old words go, frequent ones come back).
#pragma once

#include <array>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/token_id.h"

namespace rackserve::text {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
};

class WordCache {
 public:
  explicit WordCache(size_t capacity) : shard_capacity_(capacity / kShards + 1) {}

  // Appends the cached ids of `word` to `out`; false when absent.
  bool get(std::string_view word, std::vector<TokenId>& out) const {
    Shard& shard = shard_for(word);
    std::lock_guard lock(shard.mutex);
    auto it = shard.map.find(word);
    if (it == shard.map.end()) return false;
    out.insert(out.end(), it->second.begin(), it->second.end());
    return true;
  }

  void put(std::string_view word, std::span<const TokenId> ids) const {
    Shard& shard = shard_for(word);
    std::lock_guard lock(shard.mutex);
    if (shard.map.size() >= shard_capacity_) shard.map.clear();
    shard.map.try_emplace(std::string(word), ids.begin(), ids.end());
  }

 private:
  static constexpr size_t kShards = 16;
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<TokenId>, StringHash, std::equal_to<>> map;
  };
  Shard& shard_for(std::string_view word) const { return shards_[StringHash{}(word) % kShards]; }

  size_t shard_capacity_;
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace rackserve::text
