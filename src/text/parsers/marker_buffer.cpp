#include "text/parsers/marker_buffer.h"

#include <algorithm>

namespace rackserve::text {

size_t partial_marker_length(std::string_view text, std::string_view marker) {
  if (marker.empty()) return 0;
  for (size_t length = std::min(text.size(), marker.size() - 1); length > 0; --length) {
    if (text.substr(text.size() - length) == marker.substr(0, length)) return length;
  }
  return 0;
}

void MarkerBuffer::append(std::string_view text) {
  searched_ = view().size();
  // Keep the buffer from growing by what was consumed: compact once that is most of it.
  if (begin_ > 0 && begin_ >= text_.size() / 2) {
    text_.erase(0, begin_);
    begin_ = 0;
  }
  text_.append(text);
}

void MarkerBuffer::consume(size_t length) {
  begin_ += std::min(length, view().size());
  searched_ = 0;
  if (begin_ == text_.size()) {
    text_.clear();
    begin_ = 0;
  }
}

std::string MarkerBuffer::take(size_t length) {
  std::string taken(view().substr(0, length));
  consume(taken.size());
  return taken;
}

std::optional<MarkerHit> MarkerBuffer::find_first(std::initializer_list<std::string_view> markers) const {
  const std::string_view text = view();
  std::optional<MarkerHit> best;
  size_t index = 0;
  for (std::string_view marker : markers) {
    if (!marker.empty()) {
      // Text searched before cannot hold the whole marker; it can hold its first bytes.
      const size_t start = searched_ >= marker.size() ? searched_ - marker.size() + 1 : 0;
      const size_t at = text.find(marker, start);
      if (at != std::string_view::npos && (!best || at < best->position)) best = MarkerHit{at, index};
    }
    ++index;
  }
  return best;
}

size_t MarkerBuffer::find_first_of(std::string_view bytes) const {
  return view().find_first_of(bytes, searched_);
}

size_t MarkerBuffer::partial_length(std::initializer_list<std::string_view> markers) const {
  size_t longest = 0;
  for (std::string_view marker : markers) longest = std::max(longest, partial_marker_length(view(), marker));
  return longest;
}

void MarkerBuffer::drop_all_but_partial(std::initializer_list<std::string_view> markers) {
  consume(view().size() - partial_length(markers));
}

}  // namespace rackserve::text
