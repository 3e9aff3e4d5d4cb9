// Hostile and malformed inputs: a broken tokenizer.json, tiktoken file or
// tokenizer_config.json, invalid UTF-8 text and unknown ids must give a rackserve::Error
// whose message names the file and the field (or the byte offset), never a crash or a
// silently different tokenizer.
#include <filesystem>
#include <fstream>
#include <unistd.h>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"
#include "fixture_files.h"
#include "text/tokenizer.h"

namespace rackserve::text {
namespace {

// A small valid byte-level tokenizer.json; tests break one part at a time.
nlohmann::json small_tokenizer() {
  return nlohmann::json::parse(R"({
    "version": "1.0",
    "added_tokens": [{"id": 4, "content": "<s>", "special": true, "normalized": false,
                      "lstrip": false, "rstrip": false, "single_word": false}],
    "normalizer": {"type": "NFC"},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": "\\s+|\\p{L}+|\\p{N}"}, "behavior": "Isolated", "invert": false},
      {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}]},
    "post_processor": null,
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3}, "merges": ["a b"]}
  })");
}

// Expects loading `document` to fail with a message containing every fragment.
void expect_load_error(const std::string& document, std::initializer_list<std::string_view> fragments) {
  try {
    Tokenizer::from_tokenizer_json(document, "bad/tokenizer.json");
    ADD_FAILURE() << "loaded: " << document.substr(0, 200);
  } catch (const Error& error) {
    const std::string message = error.what();
    for (std::string_view fragment : fragments) {
      EXPECT_NE(message.find(fragment), std::string::npos) << "message: " << message << "\nlacks: " << fragment;
    }
  }
}

TEST(TokenizerErrors, SmallTokenizerLoadsAndEncodes) {
  const Tokenizer tokenizer = Tokenizer::from_tokenizer_json(small_tokenizer().dump());
  EXPECT_EQ(tokenizer.encode("ab a<s>"), (std::vector<TokenId>{2, 3, 0, 4}));
  EXPECT_EQ(tokenizer.decode(std::vector<TokenId>{2, 3, 0, 4}), "ab a<s>");
  EXPECT_EQ(tokenizer.decode(std::vector<TokenId>{2, 3, 0, 4}, true), "ab a");
}

TEST(TokenizerErrors, MalformedTokenizerJson) {
  expect_load_error("{not json", {"bad/tokenizer.json", "not valid JSON"});
  expect_load_error("[]", {"bad/tokenizer.json", "expected an object"});
  expect_load_error("{}", {"missing field \"model\""});
  auto doc = small_tokenizer();
  doc["model"]["merges"] = {"a c"};
  expect_load_error(doc.dump(), {"model.merges[0]", "\"c\"", "not in model.vocab"});
  doc = small_tokenizer();
  doc["model"]["merges"] = {"a b c"};
  expect_load_error(doc.dump(), {"model.merges[0]", "one space"});
  doc = small_tokenizer();
  doc["model"]["merges"] = {42};
  expect_load_error(doc.dump(), {"model.merges[0]"});
  doc = small_tokenizer();
  doc["model"]["vocab"]["a"] = -1;
  expect_load_error(doc.dump(), {"model.vocab", "\"a\""});
  doc = small_tokenizer();
  doc["model"]["type"] = "WordPiece";
  expect_load_error(doc.dump(), {"model.type", "WordPiece"});
  doc = small_tokenizer();
  doc["model"]["dropout"] = 0.1;
  expect_load_error(doc.dump(), {"dropout"});
  doc = small_tokenizer();
  doc["normalizer"] = {{"type", "BertNormalizer"}};
  expect_load_error(doc.dump(), {"normalizer.type", "BertNormalizer", "not supported"});
  doc = small_tokenizer();
  doc["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {{"Regex", "[unterminated"}};
  expect_load_error(doc.dump(), {"pre_tokenizer.pretokenizers[0].pattern.Regex", "unterminated"});
  doc = small_tokenizer();
  doc["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Sideways";
  expect_load_error(doc.dump(), {"behavior", "Sideways"});
  doc = small_tokenizer();
  std::swap(doc["pre_tokenizer"]["pretokenizers"][0], doc["pre_tokenizer"]["pretokenizers"][1]);
  expect_load_error(doc.dump(), {"ByteLevel must be the last"});
  doc = small_tokenizer();
  doc["added_tokens"][0]["content"] = "";
  expect_load_error(doc.dump(), {"added_tokens[0].content"});
  doc = small_tokenizer();
  doc["decoder"] = {{"type", "WordPiece"}};
  expect_load_error(doc.dump(), {"decoder.type", "WordPiece"});
  doc = small_tokenizer();
  doc["post_processor"] = {{"type", "TemplateProcessing"}, {"single", {{{"SpecialToken", {{"id", "<x>"}}}}}},
                           {"special_tokens", nlohmann::json::object()}};
  expect_load_error(doc.dump(), {"post_processor.special_tokens", "<x>"});
  // Invalid UTF-8 inside a JSON string is refused by the parser, and named safely.
  expect_load_error(std::string("{\"model\": \"\xFF\"}"), {"not valid JSON"});
}

TEST(TokenizerErrors, InvalidUtf8TextIsRefusedWithItsOffset) {
  const Tokenizer tokenizer = Tokenizer::from_tokenizer_json(small_tokenizer().dump());
  for (const auto& [text, offset] : std::vector<std::pair<std::string, size_t>>{
           {"ab\xFF", 2}, {"\xC0\x80", 0}, {"a\xED\xA0\x80", 1}, {"ab\xE4\xBD", 2}, {"\xF4\x90\x80\x80", 0}, {"\x80", 0}}) {
    try {
      tokenizer.encode(text);
      ADD_FAILURE() << "encoded invalid UTF-8 at offset " << offset;
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find("offset " + std::to_string(offset)), std::string::npos) << error.what();
    }
  }
}

TEST(TokenizerErrors, UnknownIdsAreRefused) {
  const Tokenizer tokenizer = Tokenizer::from_tokenizer_json(small_tokenizer().dump());
  EXPECT_THROW(tokenizer.decode(std::vector<TokenId>{0, 99}), Error);
  auto stream = tokenizer.decode_stream();
  EXPECT_THROW(stream.step(1u << 30), Error);
}

TEST(TokenizerErrors, MalformedTiktokenFiles) {
  std::string ranks;
  for (int b = 0; b < 256; ++b) {
    static constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    ranks += std::string{kBase64[b >> 2], kBase64[(b & 3) << 4], '=', '='} + " " + std::to_string(b) + "\n";
  }
  const TiktokenSpec spec{"\\p{L}+|\\s+|[^\\s\\p{L}]+", {}, 0};
  EXPECT_EQ(Tokenizer::from_tiktoken(ranks, spec).encode("hi"), (std::vector<TokenId>{'h', 'i'}));
  auto expect_error = [&](const std::string& file, const TiktokenSpec& with, std::string_view fragment) {
    try {
      Tokenizer::from_tiktoken(file, with, "bad.tiktoken");
      ADD_FAILURE() << "loaded";
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
    }
  };
  expect_error(ranks + "YWI=\n", spec, "line 257");
  expect_error(ranks + "!!!! 300\n", spec, "invalid base64");
  expect_error(ranks + "YWI= 12x\n", spec, "invalid rank");
  expect_error(ranks.substr(ranks.find('\n') + 1), spec, "0x00 has no rank");
  expect_error("", spec, "no ranks");
  expect_error(ranks, {"[abc", {}, 0}, "unterminated");
  expect_error(ranks, {"\\p{L}", {{5, "<|x|>", true}}, 0}, "which is a rank");
}

TEST(TokenizerErrors, ModelDirectories) {
  const auto dir = std::filesystem::temp_directory_path() / ("rackserve_tokenizer_errors_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  EXPECT_THROW(Tokenizer::from_directory(dir), Error);  // neither file
  std::ofstream(dir / "tokenizer_config.json") << "{broken";
  std::ofstream(dir / "tokenizer.json") << small_tokenizer().dump();
  try {
    Tokenizer::from_directory(dir);
    ADD_FAILURE() << "loaded a directory with a broken tokenizer_config.json";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("tokenizer_config.json"), std::string::npos) << error.what();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rackserve::text
