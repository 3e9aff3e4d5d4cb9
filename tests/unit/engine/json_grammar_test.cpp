// JsonGrammar against Python's json module (tests/data/json_grammar/cases.jsonl, written by
// tests/reference/make_json_grammar_cases.py), with nlohmann::json as a second parser for
// completed prefixes, and JsonTokenMask against a brute-force scan of the vocabulary.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "engine/json_grammar.h"
#include "engine/token_mask.h"

namespace rackserve {
namespace {

struct Case {
  std::string bytes;
  bool object = false;  // Python: a valid document whose value is an object, starting with '{'
  int depth = 0;        // nesting depth of the value, for objects
};

std::string from_hex(const std::string& hex) {
  std::string bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return bytes;
}

const std::vector<Case>& reference_cases() {
  static const std::vector<Case> cases = [] {
    std::vector<Case> loaded;
    std::ifstream in(std::filesystem::path(RACKSERVE_TEST_DATA_DIR) / "json_grammar" / "cases.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      const nlohmann::json record = nlohmann::json::parse(line);
      loaded.push_back({from_hex(record["hex"]), record["object"], record.value("depth", 0)});
    }
    return loaded;
  }();
  return cases;
}

bool all_whitespace(std::string_view text) { return text.find_first_not_of(" \t\n\r") == std::string_view::npos; }

// The bytes (the first 300) as a JSON string literal, for failure messages (invalid UTF-8
// shown as U+FFFD).
std::string printable(const std::string& bytes) {
  return nlohmann::json(bytes.substr(0, 300)).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
}

// Feeds `bytes` one at a time; returns how many were accepted before the first refusal.
size_t feed(JsonGrammar& grammar, std::string_view bytes) {
  for (size_t i = 0; i < bytes.size(); ++i) {
    const JsonGrammar before = grammar;
    if (!grammar.accept(static_cast<uint8_t>(bytes[i]))) {
      EXPECT_EQ(grammar, before) << "a refused byte changed the state";
      return i;
    }
  }
  return bytes.size();
}

TEST(JsonGrammar, AgreesWithPythonOnEveryReferenceCase) {
  const std::vector<Case>& cases = reference_cases();
  ASSERT_GT(cases.size(), 800u);
  int objects = 0, too_deep = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(printable(c.bytes));
    JsonGrammar grammar;
    size_t accepted = 0;
    for (; accepted < c.bytes.size(); ++accepted) {
      if (!grammar.accept(static_cast<uint8_t>(c.bytes[accepted]))) break;
      // A prefix is whole exactly when only whitespace follows it in a valid document.
      if (c.object) {
        EXPECT_EQ(grammar.complete(), all_whitespace(std::string_view(c.bytes).substr(accepted + 1)));
      }
    }
    JsonGrammar at_once;
    EXPECT_EQ(at_once.accept(c.bytes), accepted == c.bytes.size());
    if (accepted < c.bytes.size()) {
      EXPECT_EQ(at_once, JsonGrammar{}) << "a refused string changed the state";
    }

    if (c.object && c.depth <= JsonGrammar::kMaxDepth) {
      ++objects;
      EXPECT_EQ(accepted, c.bytes.size()) << "refused byte " << accepted;
      EXPECT_TRUE(grammar.complete());
    } else if (c.object) {
      ++too_deep;
      ASSERT_LT(accepted, c.bytes.size()) << "deeper than the limit, yet accepted";
      EXPECT_EQ(grammar.depth(), JsonGrammar::kMaxDepth);
      EXPECT_TRUE(c.bytes[accepted] == '{' || c.bytes[accepted] == '[');
    } else {
      EXPECT_TRUE(accepted < c.bytes.size() || !grammar.complete()) << "Python refuses this document";
    }
  }
  EXPECT_GT(objects, 300);
  EXPECT_GT(too_deep, 0);
}

// Ends the text from `grammar`'s state: every byte tried in this order is accepted by some
// state, and each choice closes or shortens what is open, so this reaches a whole document.
std::string complete_greedily(JsonGrammar& grammar) {
  static constexpr uint8_t kPreferred[] = {'"', '}', ']', '0', ':', 'r', 'u', 'e', 'a', 'l', 's', 0x80, 0xA0, '{'};
  std::string suffix;
  while (!grammar.complete() && suffix.size() < 10000) {
    const uint8_t* choice = std::find_if(std::begin(kPreferred), std::end(kPreferred),
                                         [&](uint8_t byte) { return JsonGrammar(grammar).accept(byte); });
    if (choice == std::end(kPreferred)) break;
    grammar.accept(*choice);
    suffix.push_back(static_cast<char>(*choice));
  }
  return suffix;
}

TEST(JsonGrammar, EveryAcceptedPrefixCompletesToADocumentNlohmannAccepts) {
  for (const Case& c : reference_cases()) {
    for (size_t cut : {c.bytes.size(), c.bytes.size() / 2, c.bytes.size() / 3}) {
      JsonGrammar grammar;
      const size_t accepted = feed(grammar, std::string_view(c.bytes).substr(0, cut));
      const std::string text = c.bytes.substr(0, accepted) + complete_greedily(grammar);
      SCOPED_TRACE(printable(text));
      ASSERT_TRUE(grammar.complete()) << "a dead end after an accepted prefix";
      // nlohmann refuses lone surrogate escapes, which Python and the grammar accept.
      if (text.find("\\ud") != std::string::npos || text.find("\\uD") != std::string::npos) continue;
      try {
        EXPECT_TRUE(nlohmann::json::parse(text).is_object());
      } catch (const nlohmann::json::out_of_range&) {
        // Numbers beyond a double's range (1e400): nlohmann refuses them, Python reads inf.
      } catch (const nlohmann::json::parse_error& error) {
        ADD_FAILURE() << error.what();
      }
    }
  }
}

TEST(JsonGrammar, NumbersEndAtTheFirstByteThatCannotContinueThem) {
  for (const char* text : {R"({"a":1,"b":-0.5e+3})", R"({"a":[1,0,2.5E7]})", R"({"a":0 })", "{\"a\":1e5\n}"}) {
    JsonGrammar grammar;
    EXPECT_TRUE(grammar.accept(text)) << text;
    EXPECT_TRUE(grammar.complete()) << text;
  }
  for (const char* text : {R"({"a":01)", R"({"a":1.})", R"({"a":1e})", R"({"a":-})", R"({"a":1.e5)", R"({"a":1x)"}) {
    JsonGrammar grammar;
    EXPECT_FALSE(grammar.accept(text)) << text;
  }
  JsonGrammar grammar;
  ASSERT_TRUE(grammar.accept(R"({"a":12)"));
  EXPECT_FALSE(grammar.complete());
  EXPECT_FALSE(JsonGrammar(grammar).accept(']'));  // the innermost container is an object
  EXPECT_TRUE(grammar.accept('}'));
  EXPECT_TRUE(grammar.complete());
}

TEST(JsonGrammar, OnlyAnObjectAndWhitespaceAfterIt) {
  for (const char* text : {" {}", "[]", "1", "\"s\"", "true", "\xEF\xBB\xBF{}"})
    EXPECT_FALSE(JsonGrammar().accept(text)) << text;
  JsonGrammar grammar;
  EXPECT_FALSE(grammar.complete());
  ASSERT_TRUE(grammar.accept("{}"));
  EXPECT_TRUE(grammar.complete());
  EXPECT_TRUE(grammar.accept(" \t\r\n"));
  EXPECT_TRUE(grammar.complete());
  EXPECT_FALSE(grammar.accept('{'));
  EXPECT_FALSE(grammar.accept('\v'));
}

TEST(JsonGrammar, DepthLimitRefusesTheOpeningByte) {
  JsonGrammar grammar;
  ASSERT_TRUE(grammar.accept('{'));
  ASSERT_TRUE(grammar.accept(R"("a":)"));
  for (int level = 1; level < JsonGrammar::kMaxDepth; ++level) ASSERT_TRUE(grammar.accept('[')) << level;
  EXPECT_EQ(grammar.depth(), JsonGrammar::kMaxDepth);
  EXPECT_FALSE(grammar.accept('['));
  EXPECT_FALSE(grammar.accept('{'));
  EXPECT_TRUE(grammar.accept("1"));
  for (int level = 1; level < JsonGrammar::kMaxDepth; ++level) ASSERT_TRUE(grammar.accept(']')) << level;
  EXPECT_FALSE(grammar.accept(']'));
  EXPECT_TRUE(grammar.accept('}'));
  EXPECT_TRUE(grammar.complete());
}

TEST(JsonGrammar, Utf8FirstContinuationByteRanges) {
  struct Expectation {
    const char* bytes;
    bool accepted;
  };
  // clang-format off
  const Expectation expectations[] = {
      {"\xC2\x80", true},         {"\xC1\xBF", false},         {"\xE0\xA0\x80", true}, {"\xE0\x9F\xBF", false},
      {"\xED\x9F\xBF", true},     {"\xED\xA0\x80", false},     {"\xF0\x90\x80\x80", true},
      {"\xF0\x8F\xBF\xBF", false}, {"\xF4\x8F\xBF\xBF", true},   {"\xF4\x90\x80\x80", false},
      {"\xF5\x80\x80\x80", false}, {"\x80", false},             {"\xE2\x82\xC3", false}};
  // clang-format on
  for (const Expectation& e : expectations) {
    JsonGrammar grammar;
    ASSERT_TRUE(grammar.accept(R"({"a":")"));
    EXPECT_EQ(grammar.accept(std::string(e.bytes) + "\"}"), e.accepted) << printable(e.bytes);
  }
}

// --- JsonTokenMask over a synthetic vocabulary: the 256 single bytes (so any text tokenizes),
// pairs and triples of JSON-relevant bytes, multi-byte UTF-8 pieces (whole, cut, invalid),
// longer JSON fragments, a duplicate, special tokens (empty) and two EOS tokens.
struct Vocabulary {
  std::vector<std::string> tokens;
  std::vector<int32_t> eos;
};

Vocabulary synthetic_vocabulary() {
  Vocabulary vocabulary;
  std::vector<std::string>& tokens = vocabulary.tokens;
  for (int byte = 0; byte < 256; ++byte) tokens.push_back(std::string(1, static_cast<char>(byte)));
  const std::string pairs = "{}[]:,\"\\ \n\t-.019eEtrufalsnx/b\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xED\xA0\xC0\xFF\x01";
  for (char a : pairs)
    for (char b : pairs) tokens.push_back({a, b});
  const std::string triples = "{}[]:,\" -.0e1tu\\\xC3\xA9";
  for (char a : triples)
    for (char b : triples)
      for (char c : triples) tokens.push_back({a, b, c});
  for (const char* piece : {"{\"", "\":", "\", \"", "\"}", "true", "false", "null", "\n  ", "\\u00", "\\ud83d", "é", "€",
                            "😀", "\xF0\x9F", "\x9F\x98\x80", "\"key\"", "\": \"", "},{", "]}", "12345", ".5e-3",
                            "Hello world", "\"\n}", "\":[", "true,", "null]"})
    tokens.push_back(piece);
  tokens.push_back("true");  // a second id for the same bytes
  tokens.push_back("");      // special tokens
  tokens.push_back("");
  vocabulary.eos.push_back(static_cast<int32_t>(tokens.size()));
  tokens.push_back("");
  vocabulary.eos.push_back(static_cast<int32_t>(tokens.size()));
  tokens.push_back("</s>");  // bytes of its own: still allowed only as EOS
  return vocabulary;
}

std::vector<int32_t> brute_force_allowed(const Vocabulary& vocabulary, const JsonGrammar& state) {
  std::vector<int32_t> allowed;
  for (int32_t id = 0; id < static_cast<int32_t>(vocabulary.tokens.size()); ++id) {
    const bool eos = std::find(vocabulary.eos.begin(), vocabulary.eos.end(), id) != vocabulary.eos.end();
    const std::string& bytes = vocabulary.tokens[id];
    if (eos ? state.complete() : !bytes.empty() && JsonGrammar(state).accept(bytes)) allowed.push_back(id);
  }
  return allowed;
}

// Longest match first, left to right.
std::vector<int32_t> greedy_tokens(const Vocabulary& vocabulary, const std::string& text) {
  std::map<std::string, int32_t> by_bytes;
  for (int32_t id = 0; id < static_cast<int32_t>(vocabulary.tokens.size()); ++id) {
    const bool eos = std::find(vocabulary.eos.begin(), vocabulary.eos.end(), id) != vocabulary.eos.end();
    if (!eos && !vocabulary.tokens[id].empty()) by_bytes.emplace(vocabulary.tokens[id], id);
  }
  std::vector<int32_t> ids;
  for (size_t at = 0; at < text.size();) {
    for (size_t length = std::min<size_t>(16, text.size() - at); length > 0; --length) {
      auto found = by_bytes.find(text.substr(at, length));
      if (found == by_bytes.end()) continue;
      ids.push_back(found->second);
      at += length;
      break;
    }
  }
  return ids;
}

TEST(JsonTokenMask, AllowedIsTheBruteForceSetAlongDocuments) {
  const Vocabulary vocabulary = synthetic_vocabulary();
  const JsonTokenMask mask(vocabulary.tokens, vocabulary.eos);
  ASSERT_EQ(mask.vocab_size(), static_cast<int32_t>(vocabulary.tokens.size()));
  std::vector<std::string> documents = {
      "{\"key\": \"Hello world\", \"n\": [1, -0.5e-3, 12345, true, false, null], \"u\": \"é€😀\\ud83d\\ude00\"}\n",
      "{\"a\":{\"b\":[{},[],{\"c\":\"\\\\\\/\\n\"}]},\"t\":true}",
      "{\n  \"x\": 0,\n  \"y\": [\n    10.5E+2\n  ]\n}",
  };
  for (const Case& c : reference_cases())
    if (c.object && c.depth <= JsonGrammar::kMaxDepth && documents.size() < 40) documents.push_back(c.bytes);

  for (const std::string& document : documents) {
    SCOPED_TRACE(printable(document));
    JsonGrammar state;
    for (int32_t token : greedy_tokens(vocabulary, document)) {
      const std::vector<int32_t> allowed = mask.allowed(state);
      ASSERT_EQ(allowed, brute_force_allowed(vocabulary, state));
      EXPECT_TRUE(std::binary_search(allowed.begin(), allowed.end(), token)) << "token " << token;
      const std::vector<int32_t> banned = mask.banned(state);
      EXPECT_EQ(allowed.size() + banned.size(), vocabulary.tokens.size());
      EXPECT_FALSE(std::binary_search(banned.begin(), banned.end(), token));
      ASSERT_TRUE(state.accept(vocabulary.tokens[token]));
    }
    ASSERT_TRUE(state.complete());
    const std::vector<int32_t> allowed = mask.allowed(state);
    EXPECT_EQ(allowed, brute_force_allowed(vocabulary, state));
    for (int32_t eos : vocabulary.eos) EXPECT_TRUE(std::binary_search(allowed.begin(), allowed.end(), eos));
  }
}

TEST(JsonTokenMask, StartAllowsOnlyTokensOpeningTheObject) {
  const JsonTokenMask mask({"{", "a", "{\"", "", " {", "{}", "{}x", "</s>"}, {7});
  EXPECT_EQ(mask.allowed(JsonGrammar{}), (std::vector<int32_t>{0, 2, 5}));
  EXPECT_EQ(mask.banned(JsonGrammar{}), (std::vector<int32_t>{1, 3, 4, 6, 7}));
  JsonGrammar closed;
  ASSERT_TRUE(closed.accept("{}"));
  EXPECT_EQ(mask.allowed(closed), (std::vector<int32_t>{7}));
  EXPECT_THROW(JsonTokenMask({"a"}, {1}), Error);
}

}  // namespace
}  // namespace rackserve
