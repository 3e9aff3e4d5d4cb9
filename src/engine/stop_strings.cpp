#include "engine/stop_strings.h"

#include <algorithm>
#include <utility>

namespace rackserve {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops, bool include_stop)
    : stops_(std::move(stops)), include_stop_(include_stop) {
  std::erase_if(stops_, [](const std::string& stop) { return stop.empty(); });
}

StopStringMatcher::Result StopStringMatcher::append(const std::string& text) {
  Result result;
  if (stopped_) return result;
  // Everything sent so far ends before any possible match (the held tail covers every
  // suffix that is a prefix of a stop string), so searching held_ + text is enough.
  std::string pending = held_ + text;
  held_.clear();
  size_t first = std::string::npos, length = 0;
  for (const std::string& stop : stops_) {
    size_t at = pending.find(stop);
    if (at < first || (at == first && at != std::string::npos && stop.size() > length)) {
      first = at;
      length = stop.size();
      result.stop = stop;
    }
  }
  if (first != std::string::npos) {
    stopped_ = true;
    result.emit = pending.substr(0, include_stop_ ? first + length : first);
    return result;
  }
  // Hold back the longest suffix of `pending` that is a proper prefix of a stop string.
  size_t hold = 0;
  for (const std::string& stop : stops_) {
    for (size_t n = std::min(stop.size() - 1, pending.size()); n > hold; --n) {
      if (pending.compare(pending.size() - n, n, stop, 0, n) == 0) {
        hold = n;
        break;
      }
    }
  }
  result.emit = pending.substr(0, pending.size() - hold);
  held_ = pending.substr(pending.size() - hold);
  return result;
}

std::string StopStringMatcher::finish() {
  if (stopped_) return {};
  return std::exchange(held_, {});
}

}  // namespace rackserve
