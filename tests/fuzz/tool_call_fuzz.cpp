// libFuzzer target for the tool-call parsers (build with -DRACKSERVE_FUZZ=ON and clang).
// The first four bytes are two cut points (little-endian u16, modulo the text's length
// + 1); the rest is a model's answer, fed to the parser of every format in up to three
// appends cut there, then finish(). Checked against the contract in tool_call_parser.h:
// - the merged result equals a one-shot parse of the whole text;
// - a call's first delta carries a name, later deltas of it carry neither name nor id,
//   and calls are numbered 0, 1, 2, ... in order;
// - when the answer is valid UTF-8, so is every string of every delta.
// A violation, an exception, a crash, a hang or a sanitizer report is a finding.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/fuzz_pieces.h"
#include "support/tool_call_merge.h"
#include "text/parsers/tool_call_parser.h"

namespace {

using namespace rackserve::text;
using rackserve::text::testing::MergedParse;

constexpr ToolCallFormat kFormats[] = {ToolCallFormat::DeepSeekV3, ToolCallFormat::DeepSeekV31,
                                       ToolCallFormat::KimiK2, ToolCallFormat::Glm45, ToolCallFormat::MiniMaxM2};

// Typed, untyped and unknown parameters, so GLM's and MiniMax-M2's values take every path.
const nlohmann::json& tools() {
  static const nlohmann::json tools = nlohmann::json::parse(R"([
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {
      "city": {"type": "string"}, "days": {"type": "integer"}, "unit": {"type": ["string", "null"]}}}}},
    {"type": "function", "function": {"name": "web_search", "parameters": {"type": "object", "properties": {
      "query": {"type": "string"}, "filters": {"type": "array"}, "strict": {"type": "boolean"}, "any": {}}}}}
  ])");
  return tools;
}

[[noreturn]] void finding(ToolCallFormat format, const char* what) {
  std::fprintf(stderr, "finding (%s): %s\n", std::string(tool_call_format_name(format)).c_str(), what);
  std::abort();
}

void merge(ToolCallFormat format, const ToolCallParse& parse, bool valid_utf8, MergedParse& merged) {
  if (const auto violation = testing::merge_deltas(merged, parse, valid_utf8)) finding(format, violation->c_str());
}

MergedParse parse(ToolCallFormat format, const std::vector<std::string_view>& pieces, bool valid_utf8) {
  MergedParse merged;
  try {
    auto parser = make_tool_call_parser(format, tools());
    for (std::string_view piece : pieces) merge(format, parser->append(piece), valid_utf8, merged);
    merge(format, parser->finish(), valid_utf8, merged);
  } catch (const std::exception& error) {
    finding(format, error.what());
  }
  return merged;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto input = rackserve::testing::fuzz_pieces(data, size);
  if (!input) return 0;
  const bool valid_utf8 = utf8::find_invalid(input->text) == std::string_view::npos;
  for (const ToolCallFormat format : kFormats) {
    if (parse(format, input->pieces, valid_utf8) != parse(format, {input->text}, valid_utf8))
      finding(format, "the result depends on where the text was split");
  }
  return 0;
}
