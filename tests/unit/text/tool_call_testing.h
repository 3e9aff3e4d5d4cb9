// Running a ToolCallParser over a text cut into pieces and merging its deltas into whole
// calls, as a streaming client does; the merge checks the delta contract on the way (a
// call's first delta names it, later ones carry only arguments, indices count up).
#pragma once

#include <cstdint>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/tool_call_merge.h"
#include "text/parsers/tool_call_parser.h"

namespace rackserve::text {

// Test names and failure messages print formats by name.
inline void PrintTo(ToolCallFormat format, std::ostream* out) { *out << tool_call_format_name(format); }

}  // namespace rackserve::text

namespace rackserve::text::testing {

inline std::ostream& operator<<(std::ostream& out, const MergedParse& parse) {
  out << "content " << nlohmann::json(parse.content).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  for (const auto& call : parse.calls) {
    out << "\n  call id=" << call.id << " name=" << call.name << " arguments=" << call.arguments;
  }
  return out;
}

// Adds one result's deltas to `merged` (support/tool_call_merge.h); a contract violation fails
// the test.
inline void merge_into(MergedParse& merged, const ToolCallParse& parse, bool whole_characters) {
  if (const auto violation = merge_deltas(merged, parse, whole_characters)) ADD_FAILURE() << *violation;
}

inline MergedParse parse_pieces(ToolCallFormat format, const nlohmann::json& tools,
                                const std::vector<std::string_view>& pieces, bool whole_characters = true) {
  auto parser = make_tool_call_parser(format, tools);
  MergedParse merged;
  for (std::string_view piece : pieces) merge_into(merged, parser->append(piece), whole_characters);
  merge_into(merged, parser->finish(), whole_characters);
  return merged;
}

inline MergedParse parse_whole(ToolCallFormat format, std::string_view text, const nlohmann::json& tools = nullptr,
                               bool whole_characters = true) {
  return parse_pieces(format, tools, {text}, whole_characters);
}

// `text` in pieces of `size` bytes (the last may be shorter).
inline std::vector<std::string_view> pieces_of(std::string_view text, size_t size) {
  std::vector<std::string_view> pieces;
  for (size_t at = 0; at < text.size(); at += size) pieces.push_back(text.substr(at, size));
  return pieces;
}

// `text` in pieces of 1 to `longest` bytes drawn from `random`.
inline std::vector<std::string_view> random_pieces(std::string_view text, std::mt19937& random, size_t longest) {
  std::uniform_int_distribution<size_t> size(1, longest);
  std::vector<std::string_view> pieces;
  for (size_t at = 0; at < text.size();) {
    const size_t length = std::min(size(random), text.size() - at);
    pieces.push_back(text.substr(at, length));
    at += length;
  }
  return pieces;
}

// Every way `text` can arrive: split in two at every byte, one byte at a time, and
// `random_chunkings` random chunkings (fixed seed); each must merge to `expected`.
inline void expect_split_independent(ToolCallFormat format, const nlohmann::json& tools, std::string_view text,
                                     const MergedParse& expected, bool whole_characters = true,
                                     int random_chunkings = 20) {
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    ASSERT_EQ(parse_pieces(format, tools, {text.substr(0, cut), text.substr(cut)}, whole_characters), expected)
        << "split at byte " << cut;
  }
  ASSERT_EQ(parse_pieces(format, tools, pieces_of(text, 1), whole_characters), expected) << "1-byte pieces";
  std::mt19937 random(20250715);
  for (int chunking = 0; chunking < random_chunkings; ++chunking) {
    ASSERT_EQ(parse_pieces(format, tools, random_pieces(text, random, 16), whole_characters), expected)
        << "random chunking " << chunking;
  }
}

}  // namespace rackserve::text::testing
