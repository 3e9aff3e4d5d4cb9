// BlockPool and PrefixCache invariants: page states, refcounts, LRU eviction of
// unreferenced cached pages only, chained hashes verified on hit.
#include <gtest/gtest.h>

#include <random>

#include "core/error.h"
#include "engine/block_pool.h"
#include "engine/prefix_cache.h"

namespace rackserve {
namespace {

TEST(BlockPool, AllocatesEveryPageOnceThenNothing) {
  BlockPool pool(4, 64);
  std::vector<int32_t> pages;
  ASSERT_TRUE(pool.allocate(4, pages));
  std::sort(pages.begin(), pages.end());
  EXPECT_EQ(pages, (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_FALSE(pool.allocate());
  EXPECT_FALSE(pool.allocate(1, pages));
  EXPECT_EQ(pages.size(), 4u);  // a failed allocate(count) adds nothing
  for (int32_t page : pages) pool.release(page);
  EXPECT_EQ(pool.num_free(), 4);
  pool.check_invariants();
}

TEST(BlockPool, SharedPageIsFreedAtTheLastRelease) {
  BlockPool pool(2, 64);
  int32_t page = *pool.allocate();
  pool.acquire(page);
  EXPECT_EQ(pool.refcount(page), 2);
  pool.release(page);
  EXPECT_EQ(pool.num_in_use(), 1);
  pool.release(page);
  EXPECT_EQ(pool.num_in_use(), 0);
  EXPECT_THROW(pool.release(page), Error);
  EXPECT_THROW(pool.acquire(page), Error);
}

TEST(BlockPool, EvictsCachedPagesLeastRecentlyReleasedFirstAndOnlyWhenNoneIsFree) {
  BlockPool pool(4, 64);
  std::vector<int32_t> evicted;
  pool.set_eviction_listener([&](int32_t page) { evicted.push_back(page); });
  std::vector<int32_t> pages;
  ASSERT_TRUE(pool.allocate(3, pages));
  for (int32_t page : pages) pool.mark_cached(page);
  pool.release(pages[1]);
  pool.release(pages[0]);
  pool.release(pages[2]);
  EXPECT_EQ(pool.num_evictable(), 3);
  EXPECT_EQ(pool.num_available(), 4);
  int32_t fresh = *pool.allocate();  // the never-used page first
  EXPECT_TRUE(evicted.empty());
  EXPECT_FALSE(pool.is_cached(fresh));
  pool.acquire(pages[1]);  // a hit revives it: it must not be evicted now
  EXPECT_EQ(*pool.allocate(), pages[0]);
  EXPECT_EQ(*pool.allocate(), pages[2]);
  EXPECT_EQ(evicted, (std::vector<int32_t>{pages[0], pages[2]}));
  EXPECT_FALSE(pool.allocate());  // pages[1] is in use again
  pool.check_invariants();
}

TEST(BlockPool, RandomOperationsKeepInvariantsAndNeverEvictAPageInUse) {
  std::mt19937 random(7);
  BlockPool pool(16, 4);
  std::vector<int32_t> held;  // one entry per reference we hold
  pool.set_eviction_listener([&](int32_t page) {
    ASSERT_EQ(std::count(held.begin(), held.end(), page), 0) << "evicted page " << page << " is in use";
  });
  for (int op = 0; op < 20000; ++op) {
    switch (random() % 4) {
      case 0:
        if (auto page = pool.allocate()) held.push_back(*page);
        break;
      case 1:
        if (!held.empty()) {
          size_t i = random() % held.size();
          pool.release(held[i]);
          held.erase(held.begin() + i);
        }
        break;
      case 2:
        if (!held.empty()) pool.mark_cached(held[random() % held.size()]);
        break;
      case 3: {
        int32_t page = static_cast<int32_t>(random() % 16);
        if (pool.refcount(page) > 0 || pool.is_cached(page)) {
          pool.acquire(page);
          held.push_back(page);
        }
        break;
      }
    }
    pool.check_invariants();
    for (int32_t page = 0; page < 16; ++page)
      ASSERT_EQ(pool.refcount(page), std::count(held.begin(), held.end(), page));
  }
  for (int32_t page : held) pool.release(page);
  EXPECT_EQ(pool.num_in_use(), 0);
  pool.check_invariants();
}

std::vector<int32_t> iota_tokens(int32_t count, int32_t first = 0) {
  std::vector<int32_t> tokens(count);
  for (int32_t i = 0; i < count; ++i) tokens[i] = first + i;
  return tokens;
}

TEST(PageHashes, ChainedOverFullPagesOnly) {
  std::vector<uint64_t> a, b, c;
  std::vector<int32_t> tokens = iota_tokens(10);
  extend_page_hashes(tokens, 4, a);
  EXPECT_EQ(a.size(), 2u);  // the last 2 tokens are not a full page
  std::vector<int32_t> other_first = tokens;
  other_first[0] = 99;
  extend_page_hashes(other_first, 4, b);
  EXPECT_NE(a[0], b[0]);
  EXPECT_NE(a[1], b[1]) << "page 1's hash must depend on page 0";
  extend_page_hashes(std::span(tokens).first(5), 4, c);
  extend_page_hashes(tokens, 4, c);  // extending continues where it stopped
  EXPECT_EQ(a, c);
}

TEST(PrefixCache, MatchAcquiresTheLeadingCachedPages) {
  BlockPool pool(8, 4);
  PrefixCache cache(pool);
  std::vector<int32_t> tokens = iota_tokens(12);
  std::vector<uint64_t> hashes;
  extend_page_hashes(tokens, 4, hashes);
  std::vector<int32_t> pages;
  ASSERT_TRUE(pool.allocate(3, pages));
  for (int32_t i = 0; i < 3; ++i) EXPECT_TRUE(cache.insert(pages[i], i, tokens, hashes));
  EXPECT_FALSE(cache.insert(pages[0], 0, tokens, hashes));  // already cached
  for (int32_t page : pages) pool.release(page);
  EXPECT_EQ(pool.num_evictable(), 3);

  std::vector<int32_t> query = tokens;
  query[9] = 1000;  // third page differs
  std::vector<uint64_t> query_hashes;
  extend_page_hashes(query, 4, query_hashes);
  std::vector<int32_t> hit = cache.match(query, query_hashes, 3);
  EXPECT_EQ(hit, (std::vector<int32_t>{pages[0], pages[1]}));
  EXPECT_EQ(pool.refcount(pages[0]), 1);
  EXPECT_EQ(cache.match(query, query_hashes, 1).size(), 1u);  // max_pages
  pool.release(pages[0]);
  for (int32_t page : hit) pool.release(page);
  cache.check_invariants();
  pool.check_invariants();
}

TEST(PrefixCache, HitIsVerifiedAgainstTheTokens) {
  BlockPool pool(4, 4);
  PrefixCache cache(pool);
  std::vector<int32_t> tokens = iota_tokens(4);
  std::vector<uint64_t> hashes;
  extend_page_hashes(tokens, 4, hashes);
  int32_t page = *pool.allocate();
  cache.insert(page, 0, tokens, hashes);
  pool.release(page);
  // A query whose hash collides (forced here) but whose tokens differ is a miss.
  std::vector<int32_t> other = iota_tokens(4, 50);
  EXPECT_TRUE(cache.match(other, hashes, 1).empty());
  EXPECT_EQ(cache.match(tokens, hashes, 1), std::vector<int32_t>{page});
  pool.release(page);
}

TEST(PrefixCache, EvictionForgetsThePage) {
  BlockPool pool(2, 4);
  PrefixCache cache(pool);
  std::vector<int32_t> tokens = iota_tokens(4);
  std::vector<uint64_t> hashes;
  extend_page_hashes(tokens, 4, hashes);
  int32_t page = *pool.allocate();
  cache.insert(page, 0, tokens, hashes);
  pool.release(page);
  int32_t a = *pool.allocate(), b = *pool.allocate();  // the second one evicts
  EXPECT_TRUE(a == page || b == page);
  EXPECT_EQ(cache.size(), 0);
  EXPECT_EQ(cache.find(hashes[0]), -1);
  EXPECT_TRUE(cache.match(tokens, hashes, 1).empty());
  cache.check_invariants();
}

}  // namespace
}  // namespace rackserve
