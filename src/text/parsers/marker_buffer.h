// MarkerBuffer: the model text a streaming tool-call parser has received but not yet
// consumed, with marker search that does not rescan. Parsers wait for more text only after
// a search over the whole unconsumed text failed, so append() records that text as
// searched; the next search of the same state starts where a marker could straddle the
// old end. Every state change goes through consume() (even of 0 bytes), which forgets
// what was searched, because the next state looks for other markers.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

namespace rackserve::text {

// Length of the longest end of `text` that is a proper prefix of `marker`: the bytes to
// hold back because the next append may complete the marker.
size_t partial_marker_length(std::string_view text, std::string_view marker);

struct MarkerHit {
  size_t position = 0;  // in MarkerBuffer::view()
  size_t marker = 0;    // index in the list searched for
};

class MarkerBuffer {
 public:
  void append(std::string_view text);
  std::string_view view() const { return std::string_view(text_).substr(begin_); }
  // Drops `length` bytes from the front and forgets what was searched.
  void consume(size_t length);
  // The first `length` bytes, consumed.
  std::string take(size_t length);

  // The earliest occurrence of any of `markers` (empty markers are skipped); on a tie the
  // first listed wins.
  std::optional<MarkerHit> find_first(std::initializer_list<std::string_view> markers) const;
  // The first byte that is one of `bytes`, or npos.
  size_t find_first_of(std::string_view bytes) const;
  // Longest end of view() that could still become one of `markers`.
  size_t partial_length(std::initializer_list<std::string_view> markers) const;
  // Consumes everything but what could still become one of `markers` (text dropped as
  // markup noise while waiting for them).
  void drop_all_but_partial(std::initializer_list<std::string_view> markers);

 private:
  std::string text_;
  size_t begin_ = 0;     // consumed bytes at the front of text_
  size_t searched_ = 0;  // bytes at the front of view() searched without a match
};

}  // namespace rackserve::text
