// BlockPool: the KV cache's pages as an allocator. Each page holds `page_size` tokens of
// every layer; the pool only counts references to page ids and never sees a tensor.
// The prefix cache marks pages as cached; such pages outlive their last reference (they
// wait in an LRU list) until allocate() needs them back.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace rackserve {

// Contract:
// - Every page is in exactly one state: in use (refcount > 0), free (refcount 0, not
//   cached) or evictable (refcount 0, cached; ordered least recently released first).
// - allocate() takes a free page first and evicts only when none is left; it never
//   returns a page with a nonzero refcount, so a page in use is never handed out twice.
// - Evicting a cached page calls the eviction listener before the page is returned, so
//   the cache forgets the page before anyone writes into it.
class BlockPool {
 public:
  BlockPool(int32_t num_pages, int32_t page_size);

  int32_t num_pages() const { return static_cast<int32_t>(refcount_.size()); }
  int32_t page_size() const { return page_size_; }
  // Pages allocate() can hand out now: free plus evictable.
  int32_t num_available() const { return free_.size + evictable_.size; }
  int32_t num_free() const { return free_.size; }
  int32_t num_evictable() const { return evictable_.size; }
  int32_t num_in_use() const { return num_pages() - num_available(); }
  int32_t refcount(int32_t page) const { return refcount_[page]; }
  bool is_cached(int32_t page) const { return cached_[page]; }

  // A page with refcount 1, or nothing when every page is in use.
  std::optional<int32_t> allocate();
  // `count` pages appended to `pages`, or none at all (returns false) when fewer are available.
  bool allocate(int32_t count, std::vector<int32_t>& pages);
  // One more reference to a page in use or evictable (a prefix-cache hit revives the latter).
  void acquire(int32_t page);
  // Drops one reference; at zero the page becomes evictable when cached, else free.
  void release(int32_t page);
  // Marks a page in use as cached (it will be kept after its last release). Pages stop
  // being cached only by eviction.
  void mark_cached(int32_t page);
  // Called with each cached page allocate() reclaims, before it is returned.
  void set_eviction_listener(std::function<void(int32_t page)> listener) { on_evict_ = std::move(listener); }

  // Throws rackserve::Error when the lists and refcounts disagree (tests call it after every op).
  void check_invariants() const;

 private:
  // Doubly linked list of page ids threaded through next_/prev_; -1 ends it.
  struct PageList {
    int32_t head = -1, tail = -1, size = 0;
  };
  enum class Where : uint8_t { InUse, Free, Evictable };

  void push_back(PageList& list, Where where, int32_t page);
  void unlink(PageList& list, int32_t page);
  PageList& list_of(Where where) { return where == Where::Free ? free_ : evictable_; }

  int32_t page_size_;
  std::vector<int32_t> refcount_;
  std::vector<bool> cached_;
  std::vector<Where> where_;
  std::vector<int32_t> next_, prev_;
  PageList free_, evictable_;
  std::function<void(int32_t)> on_evict_;
};

}  // namespace rackserve
