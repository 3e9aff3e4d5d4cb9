// Merging a ToolCallParser's deltas into whole calls, as a streaming client does, checking the
// delta contract on the way: a call's first delta names it, later ones carry only arguments,
// indices count up, and (for valid UTF-8 input) every piece of text is whole characters.
// Framework-free, so unit tests and the fuzz target share it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "text/parsers/tool_call_parser.h"
#include "text/utf8.h"

namespace rackserve::text::testing {

struct MergedCall {
  std::string id;
  std::string name;
  std::string arguments;
  bool operator==(const MergedCall&) const = default;
};

struct MergedParse {
  std::string content;
  std::vector<MergedCall> calls;
  bool operator==(const MergedParse&) const = default;
};

// Adds one result's deltas to `merged`; returns the first contract violation, if any (the
// merge stops there). With `whole_characters`, every text must be valid UTF-8.
inline std::optional<std::string> merge_deltas(MergedParse& merged, const ToolCallParse& parse,
                                               bool whole_characters) {
  const auto valid = [](std::string_view text) { return utf8::find_invalid(text) == std::string_view::npos; };
  if (whole_characters && !valid(parse.content)) return "content cuts a character";
  merged.content += parse.content;
  for (const ToolCallDelta& delta : parse.calls) {
    if (whole_characters && !(valid(delta.name) && valid(delta.id) && valid(delta.arguments)))
      return "a delta cuts a character";
    const auto calls = static_cast<int32_t>(merged.calls.size());
    if (delta.index == calls) {
      if (delta.name.empty()) return "a call's first delta has no name";
      merged.calls.push_back({delta.id, delta.name, delta.arguments});
    } else if (delta.index == calls - 1) {
      if (!delta.name.empty() || !delta.id.empty()) return "a later delta names its call again";
      merged.calls.back().arguments += delta.arguments;
    } else {
      return "call indices out of order";
    }
  }
  return std::nullopt;
}

}  // namespace rackserve::text::testing
