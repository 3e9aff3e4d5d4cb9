#include "engine/prefix_cache.h"

#include <algorithm>

#include "core/error.h"

namespace rackserve {

namespace {

constexpr uint64_t kRootHash = 0x72616b7365727665ull;  // parent of page 0

uint64_t mix64(uint64_t x) {  // splitmix64 finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t page_hash(uint64_t parent, std::span<const int32_t> tokens) {
  uint64_t h = mix64(parent ^ 0x9e3779b97f4a7c15ull);
  for (int32_t token : tokens) h = mix64(h ^ (static_cast<uint64_t>(static_cast<uint32_t>(token)) + 0x9e3779b97f4a7c15ull));
  return h;
}

uint64_t parent_of(std::span<const uint64_t> hashes, int32_t index) { return index == 0 ? kRootHash : hashes[index - 1]; }

}  // namespace

void extend_page_hashes(std::span<const int32_t> tokens, int32_t page_size, std::vector<uint64_t>& hashes) {
  const size_t full_pages = tokens.size() / page_size;
  while (hashes.size() < full_pages) {
    const int32_t index = static_cast<int32_t>(hashes.size());
    hashes.push_back(page_hash(parent_of(hashes, index), tokens.subspan(size_t(index) * page_size, page_size)));
  }
}

PrefixCache::PrefixCache(BlockPool& pool) : pool_(pool), entries_(pool.num_pages()) {
  pool_.set_eviction_listener([this](int32_t page) { evicted(page); });
}

std::vector<int32_t> PrefixCache::match(std::span<const int32_t> tokens, std::span<const uint64_t> hashes,
                                        int32_t max_pages) {
  const int32_t page_size = pool_.page_size();
  const int32_t limit = std::min<int32_t>(max_pages, static_cast<int32_t>(hashes.size()));
  std::vector<int32_t> pages;
  for (int32_t index = 0; index < limit; ++index) {
    auto found = by_hash_.find(hashes[index]);
    if (found == by_hash_.end()) break;
    const Entry& entry = entries_[found->second];
    auto page_tokens = tokens.subspan(size_t(index) * page_size, page_size);
    if (entry.parent_hash != parent_of(hashes, index) ||
        !std::equal(page_tokens.begin(), page_tokens.end(), entry.tokens.begin(), entry.tokens.end()))
      break;
    pool_.acquire(found->second);
    pages.push_back(found->second);
  }
  return pages;
}

bool PrefixCache::insert(int32_t page, int32_t index, std::span<const int32_t> tokens,
                         std::span<const uint64_t> hashes) {
  const int32_t page_size = pool_.page_size();
  RS_CHECK(index < static_cast<int32_t>(hashes.size()) && tokens.size() >= size_t(index + 1) * page_size,
           "page {} of the sequence is not full", index);
  if (pool_.is_cached(page) || by_hash_.count(hashes[index])) return false;
  pool_.mark_cached(page);
  Entry& entry = entries_[page];
  entry.hash = hashes[index];
  entry.parent_hash = parent_of(hashes, index);
  auto page_tokens = tokens.subspan(size_t(index) * page_size, page_size);
  entry.tokens.assign(page_tokens.begin(), page_tokens.end());
  entry.valid = true;
  by_hash_.emplace(entry.hash, page);
  return true;
}

int32_t PrefixCache::find(uint64_t hash) const {
  auto found = by_hash_.find(hash);
  return found == by_hash_.end() ? -1 : found->second;
}

void PrefixCache::evicted(int32_t page) {
  Entry& entry = entries_[page];
  RS_CHECK(entry.valid, "evicted page {} has no cache entry", page);
  by_hash_.erase(entry.hash);
  entry = Entry{};
}

void PrefixCache::check_invariants() const {
  int32_t valid = 0;
  for (int32_t page = 0; page < static_cast<int32_t>(entries_.size()); ++page) {
    const Entry& entry = entries_[page];
    RS_CHECK(entry.valid == pool_.is_cached(page), "page {}: cache entry {} but pool cached flag {}", page,
             entry.valid, pool_.is_cached(page));
    if (!entry.valid) continue;
    ++valid;
    auto found = by_hash_.find(entry.hash);
    RS_CHECK(found != by_hash_.end() && found->second == page, "page {}'s hash does not map back to it", page);
  }
  RS_CHECK(valid == size(), "{} cached pages but {} hashes", valid, size());
}

}  // namespace rackserve
