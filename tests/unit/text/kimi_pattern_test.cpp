// Kimi K2's pat_str uses class intersection ([\p{Lu}...&&[^\p{Han}]]), which PCRE2 lacks;
// translate_regex rewrites it. Checked three ways against references we did not write:
// the Python `regex` module's splits (pattern_probes.jsonl, regex_module_splits.jsonl),
// and ICU's character properties for every assigned code point of a few blocks.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <unicode/uchar.h>
#include <unicode/uscript.h>

#include "core/error.h"
#include "fixture_files.h"
#include "text/regex.h"
#include "text/utf8.h"

namespace rackserve::text {
namespace {

std::string kimi_pattern() {
  std::string pattern = testing::read_text_file(std::filesystem::path(RACKSERVE_SHARED_MODELS_DIR) / "kimi-k2" / "pat_str.txt");
  while (!pattern.empty() && pattern.back() == '\n') pattern.pop_back();
  return pattern;
}

std::vector<std::string> split(const Regex& regex, std::string_view text) {
  std::vector<std::string> pieces;
  regex.for_each_match(text, [&](size_t start, size_t end) { pieces.emplace_back(text.substr(start, end - start)); });
  return pieces;
}

void expect_python_regex_splits(const std::string& file) {
  const Regex regex(kimi_pattern());
  const auto records = testing::read_jsonl(testing::tokenizer_data_dir() / "kimi_tiktoken" / file);
  ASSERT_GE(records.size(), 20u);
  for (const auto& record : records) {
    const std::string text = record["text"];
    EXPECT_EQ(split(regex, text), record["pieces"].get<std::vector<std::string>>()) << nlohmann::json(text).dump();
  }
}

TEST(KimiPattern, HanAgainstOtherLettersAndApostrophesAsPythonRegex) { expect_python_regex_splits("pattern_probes.jsonl"); }

TEST(KimiPattern, HandcraftedLinesAsPythonRegex) { expect_python_regex_splits("regex_module_splits.jsonl"); }

TEST(KimiPattern, TranslationHasNoSetOperators) {
  const std::string translated = translate_regex(kimi_pattern());
  EXPECT_EQ(translated.find("&&"), std::string::npos) << translated;
  EXPECT_NE(translated.find("\\p{sc:Han}"), std::string::npos) << "Han must be the Script property: " << translated;
}

// [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]] matches exactly the characters whose
// general category is one of those and whose Script is not Han, per ICU.
TEST(KimiPattern, IntersectionClassAgreesWithIcuProperties) {
  const Regex regex(R"(^[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]$)");
  const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {0x0000, 0x0500}, {0x0900, 0x0980}, {0x1100, 0x1200}, {0x2E80, 0x3100}, {0x3190, 0x3400},
      {0x4DB0, 0x4E10}, {0x9FF0, 0xA000}, {0xAC00, 0xAC40}, {0xF900, 0xFB10}, {0xFF00, 0xFFF0},
      {0x16FE0, 0x17000}, {0x1F100, 0x1F300}, {0x20000, 0x20040}, {0x2F800, 0x2F830}, {0x30000, 0x30010}};
  int checked = 0;
  for (const auto& [first, last] : ranges) {
    for (char32_t c = first; c < last; ++c) {
      if (c >= 0xD800 && c <= 0xDFFF) continue;
      UVersionInfo age;
      u_charAge(static_cast<UChar32>(c), age);
      // PCRE2 10.42 carries Unicode 14; skip what ICU knows from later versions.
      if (u_charType(static_cast<UChar32>(c)) == U_UNASSIGNED || age[0] >= 14) continue;
      const auto category = U_GET_GC_MASK(static_cast<UChar32>(c));
      UErrorCode status = U_ZERO_ERROR;
      const bool han = uscript_getScript(static_cast<UChar32>(c), &status) == USCRIPT_HAN;
      const bool want = (category & (U_GC_LU_MASK | U_GC_LT_MASK | U_GC_LM_MASK | U_GC_LO_MASK | U_GC_M_MASK)) != 0 && !han;
      std::string text;
      utf8::append(text, c);
      bool matched = false;
      regex.for_each_match(text, [&](size_t, size_t) { matched = true; });
      EXPECT_EQ(matched, want) << std::hex << "U+" << static_cast<uint32_t>(c);
      ++checked;
    }
  }
  EXPECT_GT(checked, 3000);
}

TEST(RegexTranslation, OtherSetOperationsAndNesting) {
  const Regex difference(R"(^[a-z--[aeiou]]+$)");
  const Regex symmetric(R"(^[[a-f]~~[d-k]]+$)");
  const Regex nested(R"(^[x[^\p{L}]]+$)");
  auto whole = [](const Regex& regex, std::string_view text) { return split(regex, text).size() == 1; };
  EXPECT_TRUE(whole(difference, "bcdfg"));
  EXPECT_FALSE(whole(difference, "bad"));
  EXPECT_TRUE(whole(symmetric, "abcghk"));
  EXPECT_FALSE(whole(symmetric, "abcd"));
  EXPECT_TRUE(whole(nested, "x1-x"));
  EXPECT_FALSE(whole(nested, "xy"));
}

TEST(RegexTranslation, WhiteSpaceIsTheUnicodeProperty) {
  const Regex space(R"(\s+)");
  EXPECT_EQ(split(space, "a\xC2\x85" "b"), std::vector<std::string>{"\xC2\x85"});  // U+0085 is White_Space
  EXPECT_TRUE(split(space, "a\xEF\xBB\xBF" "b").empty());                          // U+FEFF is not
}

TEST(RegexTranslation, MalformedPatternsThrow) {
  for (const char* pattern : {"[abc", "\\", "(?<", "[\\p{L}&&[^\\p{Han}]", "\\p{", "a{2,1}", "\\p{NoSuchProperty}"}) {
    EXPECT_THROW(Regex{pattern}, Error) << pattern;
  }
  try {
    Regex bad("[\xFF");
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("\\xFF"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace rackserve::text
