// libFuzzer target for ToolCallListReader (api/tool_call_list.h; build with
// -DRACKSERVE_FUZZ=ON and clang): an answer under tool_choice "required" cut into three
// pieces (support/fuzz_pieces.h), read in three appends, then finish(). Checked: the merged
// calls equal a one-shot read of the whole text, and the delta contract holds
// (support/tool_call_merge.h: a call's first delta names it, indices count up, whole UTF-8
// characters for valid input). The reader assumes a grammar-shaped list but must never throw
// or crash on anything else.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "api/tool_call_list.h"
#include "support/fuzz_pieces.h"
#include "support/tool_call_merge.h"

namespace {

using namespace rackserve;

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "finding: %s\n", what.c_str());
  std::abort();
}

text::testing::MergedParse read(const std::vector<std::string_view>& pieces, bool valid_utf8) {
  api::ToolCallListReader reader;
  text::testing::MergedParse merged;
  auto merge = [&](std::vector<text::ToolCallDelta> deltas) {
    if (const auto violation = text::testing::merge_deltas(merged, {.content = {}, .calls = std::move(deltas)}, valid_utf8))
      finding(*violation);
  };
  for (std::string_view piece : pieces) merge(reader.append(piece));
  merge(reader.finish());
  return merged;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto input = testing::fuzz_pieces(data, size);
  if (!input) return 0;
  const bool valid_utf8 = text::utf8::find_invalid(input->text) == std::string_view::npos;
  if (read(input->pieces, valid_utf8) != read({input->text}, valid_utf8))
    finding("the result depends on where the text was split");
  return 0;
}
