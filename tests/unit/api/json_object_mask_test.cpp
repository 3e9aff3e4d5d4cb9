// make_json_object_mask on real tokenizers: o200k_base (200k byte-level tokens, tiktoken), the
// DeepSeek-V3 excerpt (tokenizer.json ByteLevel) and a ByteFallback one (no fixed bytes: no
// mask). The tokenizer's own spelling of JSON documents written by nlohmann::json must pass
// the mask token by token, EOS only at the end; special tokens and padding ids never pass.
// Prints the build time and the cost of one step inside a string (the engine pays it per
// constrained sequence and step).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/json_object_mask.h"
#include "api/reasoning_splitter.h"
#include "engine/json_grammar.h"
#include "engine/json_schema_compile.h"
#include "engine/json_schema_grammar.h"
#include "text/tokenizer.h"

namespace rackserve::api {
namespace {

std::filesystem::path tokenizer_dir(const std::string& name) {
  return std::filesystem::path(RACKSERVE_TEST_DATA_DIR) / "tokenizers" / name;
}

bool banned_from(const JsonTokenMask& mask, const JsonGrammar& state, int32_t id) {
  const std::vector<int32_t> banned = mask.banned(state);
  return std::binary_search(banned.begin(), banned.end(), id);
}

// Documents the way a client's JSON library writes them, compact and indented.
std::vector<std::string> documents() {
  const std::vector<nlohmann::json> values = {
      nlohmann::json::object(),
      {{"name", "Ada Lovelace"}, {"born", 1815}, {"languages", {"en", "fr"}}, {"analyst", true}},
      {{"city", "Zürich"}, {"emoji", "👍🏽"}, {"ratio", -0.125e-3}, {"nothing", nullptr}, {"quote", "say \"hi\"\n"}},
      {{"nested", {{"deeper", {{"list", {1, 2, {{"x", "y"}}, nlohmann::json::array()}}}}}}},
  };
  std::vector<std::string> texts;
  for (const nlohmann::json& value : values) {
    texts.push_back(value.dump());
    texts.push_back(value.dump(2));
  }
  return texts;
}

TEST(JsonObjectMask, PassesTheTokenizersSpellingOfJsonDocuments) {
  const text::Tokenizer tokenizer = text::Tokenizer::from_directory(tokenizer_dir("js_tiktoken/o200k_base"));
  const auto eos = tokenizer.token_to_id("<|endoftext|>");
  ASSERT_TRUE(eos.has_value());
  const int32_t padded_vocab = static_cast<int32_t>(tokenizer.vocab_size()) + 64;  // the model's rows
  const auto start = std::chrono::steady_clock::now();
  const auto mask = make_json_object_mask(tokenizer, padded_vocab, std::vector<int32_t>{static_cast<int32_t>(*eos)});
  const double build_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  ASSERT_NE(mask, nullptr);
  EXPECT_EQ(mask->vocab_size(), padded_vocab);

  for (const std::string& document : documents()) {
    SCOPED_TRACE(document);
    JsonGrammar state;
    for (text::TokenId token : tokenizer.encode(document, {.add_special_tokens = false})) {
      const std::vector<int32_t> banned = mask->banned(state);
      ASSERT_FALSE(std::binary_search(banned.begin(), banned.end(), static_cast<int32_t>(token))) << "token " << token;
      ASSERT_TRUE(std::binary_search(banned.begin(), banned.end(), static_cast<int32_t>(*eos)))
          << "EOS before the object is closed";
      ASSERT_TRUE(state.accept(mask->token_bytes(static_cast<int32_t>(token))));
    }
    EXPECT_TRUE(state.complete());
    EXPECT_FALSE(banned_from(*mask, state, static_cast<int32_t>(*eos)));
  }

  JsonGrammar after_comma;
  ASSERT_TRUE(after_comma.accept("{\"a\": 1,"));
  auto step_start = std::chrono::steady_clock::now();
  const size_t banned_after_comma = mask->banned(after_comma).size();
  const double structural_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - step_start).count();
  JsonGrammar in_string;
  ASSERT_TRUE(in_string.accept("{\""));
  step_start = std::chrono::steady_clock::now();
  const std::vector<int32_t> banned = mask->banned(in_string);
  const double step_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - step_start).count();
  for (int32_t id : {static_cast<int32_t>(*eos), static_cast<int32_t>(*tokenizer.token_to_id("<|endofprompt|>")),
                     padded_vocab - 1, static_cast<int32_t>(tokenizer.vocab_size())})
    EXPECT_TRUE(std::binary_search(banned.begin(), banned.end(), id)) << "id " << id;
  std::cout << "o200k_base: " << tokenizer.vocab_size() << " ids, mask built in " << build_ms
            << " ms; one step after a comma " << structural_ms << " ms (" << banned_after_comma
            << " banned), inside a string " << step_ms << " ms (" << banned.size() << " banned)\n";
}

// The same mask drives JsonSchemaGrammar: the tokenizer's spelling of documents of a schema
// passes it token by token; prints the cost of a step at a key and inside a string value
// (the schema grammar's state is larger, so each trie edge costs a bigger copy).
TEST(JsonObjectMask, DrivesTheSchemaGrammarToo) {
  const text::Tokenizer tokenizer = text::Tokenizer::from_directory(tokenizer_dir("js_tiktoken/o200k_base"));
  const auto eos = static_cast<int32_t>(*tokenizer.token_to_id("<|endoftext|>"));
  const auto mask = make_json_object_mask(tokenizer, static_cast<int32_t>(tokenizer.vocab_size()), std::vector<int32_t>{eos});
  ASSERT_NE(mask, nullptr);
  const auto schema = compile_json_schema(nlohmann::ordered_json::parse(
      R"({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
          "tags": {"type": "array", "items": {"enum": ["a", "bc"]}}}, "required": ["name"]})"));
  for (const char* document : {R"({"name": "Ada Lovelace", "age": 36, "tags": ["bc", "a"]})", R"({"name":"\u00e9"})"}) {
    SCOPED_TRACE(document);
    JsonSchemaGrammar state(*schema);
    for (text::TokenId token : tokenizer.encode(document, {.add_special_tokens = false})) {
      const std::vector<int32_t> banned = mask->banned(state);
      ASSERT_FALSE(std::binary_search(banned.begin(), banned.end(), static_cast<int32_t>(token))) << "token " << token;
      ASSERT_TRUE(std::binary_search(banned.begin(), banned.end(), eos)) << "EOS before the object is closed";
      ASSERT_TRUE(state.accept(mask->token_bytes(static_cast<int32_t>(token))));
    }
    EXPECT_TRUE(state.complete());
    const std::vector<int32_t> banned = mask->banned(state);
    EXPECT_FALSE(std::binary_search(banned.begin(), banned.end(), eos));
  }
  JsonSchemaGrammar at_key(*schema);
  ASSERT_TRUE(at_key.accept(std::string_view(R"({"name": "x",)")));
  auto start = std::chrono::steady_clock::now();
  const size_t banned_at_key = mask->banned(at_key).size();
  const double key_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  JsonSchemaGrammar in_string(*schema);
  ASSERT_TRUE(in_string.accept(std::string_view(R"({"name": ")")));
  start = std::chrono::steady_clock::now();
  const size_t banned_in_string = mask->banned(in_string).size();
  const double string_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GT(banned_at_key, banned_in_string);
  std::cout << "o200k_base, json_schema: one step at a key " << key_ms << " ms (" << banned_at_key
            << " banned), inside a string " << string_ms << " ms (" << banned_in_string << " banned)\n";
}

TEST(JsonObjectMask, TokenBytesAreWhatDecodingOneTokenGives) {
  const text::Tokenizer tokenizer = text::Tokenizer::from_directory(tokenizer_dir("deepseek_v3"));
  const auto bytes = tokenizer.raw_token_bytes();
  ASSERT_TRUE(bytes.has_value());
  ASSERT_EQ(bytes->size(), tokenizer.vocab_size());
  int compared = 0;
  for (size_t id = 0; id < bytes->size(); ++id) {
    const text::TokenId token = static_cast<text::TokenId>(id);
    if (tokenizer.is_special(token)) {
      EXPECT_TRUE((*bytes)[id].empty()) << "special id " << id;
      continue;
    }
    const std::string decoded = tokenizer.decode(std::vector<text::TokenId>{token});
    if (decoded.find("\xEF\xBF\xBD") != std::string::npos) continue;  // a partial character: U+FFFD
    EXPECT_EQ((*bytes)[id], decoded) << "id " << id;
    ++compared;
  }
  EXPECT_GT(compared, 1000);
}

TEST(JsonObjectMask, NoMaskWithoutFixedTokenBytes) {
  const text::Tokenizer tokenizer = text::Tokenizer::from_directory(tokenizer_dir("llama_byte_fallback"));
  EXPECT_FALSE(tokenizer.raw_token_bytes().has_value());
  EXPECT_EQ(make_json_object_mask(tokenizer, static_cast<int32_t>(tokenizer.vocab_size()), std::vector<int32_t>{2}),
            nullptr);
}

// The token a reasoning model's constrained answer starts after: one whose text is "</think>".
TEST(ReasoningEndToken, IsTheSingleTokenSpellingTheClosingTag) {
  const text::Tokenizer glm = text::Tokenizer::from_directory(tokenizer_dir("glm_bytelevel"));
  const int32_t vocab = static_cast<int32_t>(glm.vocab_size());
  const std::optional<int32_t> id = reasoning_end_token(glm, vocab);
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(glm.decode(std::vector<text::TokenId>{static_cast<text::TokenId>(*id)}), "</think>");
  EXPECT_EQ(reasoning_end_token(glm, *id), std::nullopt) << "an id the model does not have";
  // No "</think>" token: the tag would take several tokens.
  const text::Tokenizer deepseek = text::Tokenizer::from_directory(tokenizer_dir("deepseek_v3"));
  EXPECT_EQ(reasoning_end_token(deepseek, static_cast<int32_t>(deepseek.vocab_size())), std::nullopt);
}

}  // namespace
}  // namespace rackserve::api
