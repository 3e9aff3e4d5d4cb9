#include "engine/block_pool.h"

#include "core/error.h"

namespace rackserve {

BlockPool::BlockPool(int32_t num_pages, int32_t page_size)
    : page_size_(page_size),
      refcount_(num_pages, 0),
      cached_(num_pages, false),
      where_(num_pages, Where::Free),
      next_(num_pages, -1),
      prev_(num_pages, -1) {
  RS_CHECK(num_pages > 0 && page_size > 0, "a block pool needs pages ({}) and a page size ({})", num_pages,
           page_size);
  for (int32_t page = 0; page < num_pages; ++page) push_back(free_, Where::Free, page);
}

std::optional<int32_t> BlockPool::allocate() {
  int32_t page;
  if (free_.size > 0) {
    page = free_.head;
    unlink(free_, page);
  } else if (evictable_.size > 0) {
    page = evictable_.head;
    unlink(evictable_, page);
    cached_[page] = false;
    if (on_evict_) on_evict_(page);
  } else {
    return std::nullopt;
  }
  where_[page] = Where::InUse;
  refcount_[page] = 1;
  return page;
}

bool BlockPool::allocate(int32_t count, std::vector<int32_t>& pages) {
  if (count > num_available()) return false;
  for (int32_t i = 0; i < count; ++i) pages.push_back(*allocate());
  return true;
}

void BlockPool::acquire(int32_t page) {
  if (where_[page] == Where::Evictable) {
    unlink(evictable_, page);
    where_[page] = Where::InUse;
  }
  RS_CHECK(where_[page] == Where::InUse, "acquire of free page {}", page);
  ++refcount_[page];
}

void BlockPool::release(int32_t page) {
  RS_CHECK(where_[page] == Where::InUse && refcount_[page] > 0, "release of page {} that is not in use", page);
  if (--refcount_[page] > 0) return;
  if (cached_[page])
    push_back(evictable_, Where::Evictable, page);
  else
    push_back(free_, Where::Free, page);
}

void BlockPool::mark_cached(int32_t page) {
  RS_CHECK(where_[page] == Where::InUse, "only a page in use can become cached (page {})", page);
  cached_[page] = true;
}

void BlockPool::push_back(PageList& list, Where where, int32_t page) {
  where_[page] = where;
  prev_[page] = list.tail;
  next_[page] = -1;
  if (list.tail >= 0)
    next_[list.tail] = page;
  else
    list.head = page;
  list.tail = page;
  ++list.size;
}

void BlockPool::unlink(PageList& list, int32_t page) {
  if (prev_[page] >= 0)
    next_[prev_[page]] = next_[page];
  else
    list.head = next_[page];
  if (next_[page] >= 0)
    prev_[next_[page]] = prev_[page];
  else
    list.tail = prev_[page];
  prev_[page] = next_[page] = -1;
  --list.size;
}

void BlockPool::check_invariants() const {
  std::vector<int> seen(refcount_.size(), 0);
  auto walk = [&](const PageList& list, Where where, const char* name) {
    int32_t count = 0, previous = -1;
    for (int32_t page = list.head; page >= 0; previous = page, page = next_[page]) {
      RS_CHECK(where_[page] == where, "page {} is linked into the {} list but marked otherwise", page, name);
      RS_CHECK(prev_[page] == previous, "broken back link at page {} of the {} list", page, name);
      RS_CHECK(refcount_[page] == 0, "page {} in the {} list has refcount {}", page, name, refcount_[page]);
      RS_CHECK(++seen[page] == 1, "page {} is linked twice", page);
      ++count;
    }
    RS_CHECK(list.tail == previous && count == list.size, "{} list size {} but {} pages linked", name, list.size, count);
  };
  walk(free_, Where::Free, "free");
  walk(evictable_, Where::Evictable, "evictable");
  for (size_t page = 0; page < refcount_.size(); ++page) {
    if (where_[page] == Where::InUse)
      RS_CHECK(refcount_[page] > 0 && seen[page] == 0, "page {} in use has refcount {}", page, refcount_[page]);
    if (where_[page] == Where::Free) RS_CHECK(!cached_[page], "free page {} is marked cached", page);
    if (where_[page] == Where::Evictable) RS_CHECK(cached_[page], "evictable page {} is not cached", page);
  }
}

}  // namespace rackserve
