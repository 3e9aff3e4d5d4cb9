// StopStringMatcher: finds stop strings in a sequence's incremental text (across token
// boundaries) and holds back any tail that could still become one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rackserve {

// Contract: the concatenation of every `emit` equals the generated text up to (and, with
// include_stop, including) the first occurrence of any stop string, and nothing after it.
// Text that could be the beginning of a stop string is held back until it can't be.
class StopStringMatcher {
 public:
  StopStringMatcher() = default;
  StopStringMatcher(std::vector<std::string> stops, bool include_stop);

  struct Result {
    std::string emit;                 // text safe to send now
    std::optional<std::string> stop;  // the stop string that ended the text, when one did
  };
  // Appends the next piece of text. After a stop, further calls emit nothing.
  Result append(const std::string& text);
  // Releases the held-back text at the end of the sequence (when no stop string matched).
  std::string finish();

  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  bool include_stop_ = false;
  bool stopped_ = false;
  std::string held_;  // the unsent tail that is a prefix of some stop string
};

}  // namespace rackserve
