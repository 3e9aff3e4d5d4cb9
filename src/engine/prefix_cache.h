// PrefixCache: finds KV pages already computed for a token prefix. A FULL page is named
// by a chained hash, hash(previous page's hash, this page's tokens), so a hit on page i
// implies the whole prefix up to page i matches. Each entry also keeps its tokens and
// its parent's hash, which are compared on every hit.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "engine/block_pool.h"

namespace rackserve {

// Appends to `hashes` the chained hash of every full page of `tokens` not hashed yet
// (hashes[i] names tokens[0, (i + 1) * page_size)).
void extend_page_hashes(std::span<const int32_t> tokens, int32_t page_size, std::vector<uint64_t>& hashes);

// Contract:
// - Only full pages whose KV has been written are inserted; their content never changes
//   afterwards (sequences write only into pages past their cached prefix).
// - A cached page stays until the pool evicts it, which it does only at refcount 0:
//   pages returned by match() are acquired, so they cannot be evicted while in use.
// - A wrong hit needs two different token prefixes with equal 64-bit chained hashes AND
//   equal last-page tokens; each entry verifies its tokens and its parent's hash.
class PrefixCache {
 public:
  // Registers itself as `pool`'s eviction listener; `pool` must outlive the cache.
  explicit PrefixCache(BlockPool& pool);
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  // The cached pages holding the leading full pages of `tokens`, at most `max_pages`,
  // stopping at the first miss. `hashes` must name those pages (extend_page_hashes).
  // Every returned page is acquired once for the caller, who releases it to the pool.
  std::vector<int32_t> match(std::span<const int32_t> tokens, std::span<const uint64_t> hashes, int32_t max_pages);

  // Registers `page` (in use, full, written) as page `index` of a sequence whose page
  // hashes are `hashes` and whose tokens are `tokens`. Does nothing and returns false
  // when that prefix is already cached in another page (the caller's page then stays
  // private and is freed on release) or when `page` is already cached.
  bool insert(int32_t page, int32_t index, std::span<const int32_t> tokens, std::span<const uint64_t> hashes);

  int32_t size() const { return static_cast<int32_t>(by_hash_.size()); }
  // Page holding `hash`, or -1.
  int32_t find(uint64_t hash) const;
  // Throws rackserve::Error when the map and the pool's cached flags disagree.
  void check_invariants() const;

 private:
  struct Entry {
    uint64_t hash = 0, parent_hash = 0;
    std::vector<int32_t> tokens;
    bool valid = false;
  };
  void evicted(int32_t page);

  BlockPool& pool_;
  std::unordered_map<uint64_t, int32_t> by_hash_;
  std::vector<Entry> entries_;  // by page id
};

}  // namespace rackserve
