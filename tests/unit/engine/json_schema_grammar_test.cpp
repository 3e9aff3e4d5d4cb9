// JsonSchemaGrammar against reference cases labelled by Python's jsonschema (Draft 2020-12;
// tests/reference/make_json_schema_cases.py): canonical valid documents must be accepted whole,
// texts json.loads or jsonschema refuses must never be; plus the deliberate strictness
// (declaration order, bounded whitespace, bounded depth) and the mask over a tiny vocabulary.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/grammar_constraint.h"
#include "engine/json_schema_compile.h"
#include "engine/json_schema_grammar.h"
#include "support/mask_walk.h"

namespace rackserve {
namespace {

using Json = nlohmann::ordered_json;

std::filesystem::path data_dir() { return std::filesystem::path(RACKSERVE_TEST_DATA_DIR) / "json_schema"; }

// Accepted as a whole document: every byte accepted and the state complete.
bool accepts_whole(const JsonSchema& schema, std::string_view text) {
  JsonSchemaGrammar grammar(schema);
  return grammar.accept(text) && grammar.complete();
}

std::shared_ptr<const JsonSchema> compile(std::string_view schema) { return compile_json_schema(Json::parse(schema)); }

TEST(JsonSchemaGrammar, AgreesWithJsonschemaOnTheReferenceCases) {
  std::ifstream schemas_file(data_dir() / "schemas.json");
  ASSERT_TRUE(schemas_file) << "missing " << (data_dir() / "schemas.json");
  const Json schemas = Json::parse(schemas_file);
  std::vector<std::shared_ptr<const JsonSchema>> compiled;
  for (const Json& schema : schemas) compiled.push_back(compile_json_schema(schema));

  std::ifstream cases(data_dir() / "cases.jsonl");
  std::string line;
  int accepted = 0, rejected = 0;
  while (std::getline(cases, line)) {
    if (line.empty()) continue;
    const nlohmann::json record = nlohmann::json::parse(line);
    const std::string text = record["text"];
    const std::string expect = record["expect"];
    const JsonSchema& schema = *compiled.at(record["schema"].get<size_t>());
    const bool whole = accepts_whole(schema, text);
    if (expect == "accept") {
      EXPECT_TRUE(whole) << "schema " << record["schema"] << " refuses valid " << text;
      ++accepted;
    } else if (expect == "reject") {
      EXPECT_FALSE(whole) << "schema " << record["schema"] << " accepts invalid " << text;
      ++rejected;
    }
  }
  EXPECT_GT(accepted, 100);
  EXPECT_GT(rejected, 100);
}

TEST(JsonSchemaGrammar, WritesPropertiesInDeclarationOrderAndNeedsTheRequiredOnes) {
  auto schema = compile(R"({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"},
                            "c": {"type": "boolean"}}, "required": ["b"]})");
  EXPECT_TRUE(accepts_whole(*schema, R"({"a":1,"b":"x","c":true})"));
  EXPECT_TRUE(accepts_whole(*schema, R"({"b":"x"})"));
  EXPECT_FALSE(accepts_whole(*schema, R"({"b":"x","a":1})"));  // valid JSON Schema, but out of order
  JsonSchemaGrammar grammar(*schema);
  EXPECT_FALSE(grammar.accept(std::string_view("{}")));        // b is required
  EXPECT_FALSE(grammar.accept(std::string_view(R"({"c")")));  // c cannot come before b
  EXPECT_FALSE(grammar.accept(std::string_view(R"({"a":1,"b":"x","b")")));  // no repeats
  EXPECT_FALSE(grammar.accept(std::string_view(R"({"d")")));  // undeclared
}

TEST(JsonSchemaGrammar, BoundsWhitespaceRuns) {
  auto schema = compile(R"({"type": "object", "properties": {"a": {"type": "null"}}})");
  const std::string run(JsonSchema::kDefaultMaxWhitespaceRun, ' ');
  EXPECT_TRUE(accepts_whole(*schema, "{" + run + "\"a\"" + run + ":" + run + "null" + run + "}" + run));
  EXPECT_FALSE(accepts_whole(*schema, "{" + run + " \"a\":null}"));
  JsonSchemaGrammar grammar(*schema);
  ASSERT_TRUE(grammar.accept(std::string_view("{}") ));
  ASSERT_TRUE(grammar.accept(run));
  EXPECT_FALSE(grammar.accept(uint8_t{'\n'}));  // after the document too: only EOS is left
  EXPECT_TRUE(grammar.complete());
  EXPECT_FALSE(accepts_whole(*schema, " {}"));  // nothing before the object, as JsonGrammar
}

TEST(JsonSchemaGrammar, ReadsLiteralsThatArePrefixesOfEachOther) {
  auto schema = compile(R"({"type": "object", "properties": {"n": {"enum": [1, 12, "1"]}}, "required": ["n"]})");
  EXPECT_TRUE(accepts_whole(*schema, R"({"n":1})"));
  EXPECT_TRUE(accepts_whole(*schema, R"({"n":12})"));
  EXPECT_TRUE(accepts_whole(*schema, R"({"n":"1"})"));
  EXPECT_FALSE(accepts_whole(*schema, R"({"n":123})"));
  EXPECT_FALSE(accepts_whole(*schema, R"({"n":2})"));
}

TEST(JsonSchemaGrammar, IntegersHaveNoFractionOrExponent) {
  auto schema = compile(R"({"type": "object", "properties": {"i": {"type": "integer"}}, "required": ["i"]})");
  EXPECT_TRUE(accepts_whole(*schema, R"({"i":-120})"));
  EXPECT_FALSE(accepts_whole(*schema, R"({"i":1.5})"));
  EXPECT_FALSE(accepts_whole(*schema, R"({"i":1e3})"));
  EXPECT_FALSE(accepts_whole(*schema, R"({"i":01})"));
}

TEST(JsonSchemaGrammar, BoundsRecursionDepth) {
  auto schema = compile(R"({"$defs": {"list": {"type": "object", "properties": {"next": {"$ref": "#/$defs/list"}}}},
                            "$ref": "#/$defs/list"})");
  std::string deep;
  for (int i = 1; i < JsonSchemaGrammar::kMaxDepth; ++i) deep += R"({"next":)";
  deep += "{}";
  for (int i = 1; i < JsonSchemaGrammar::kMaxDepth; ++i) deep += "}";
  EXPECT_TRUE(accepts_whole(*schema, deep));
  JsonSchemaGrammar grammar(*schema);
  for (int i = 1; i < JsonSchemaGrammar::kMaxDepth; ++i) ASSERT_TRUE(grammar.accept(std::string_view(R"({"next":)")));
  EXPECT_EQ(grammar.depth(), JsonSchemaGrammar::kMaxDepth - 1);
  ASSERT_TRUE(grammar.accept(uint8_t{'{'}));
  ASSERT_TRUE(grammar.accept(std::string_view(R"("next":)")));
  EXPECT_FALSE(grammar.accept(uint8_t{'{'}));  // one level too many
}

TEST(JsonSchemaGrammar, ArrayBoundsAndAlternatives) {
  auto schema = compile(R"({"type": "object", "properties": {"v": {"type": "array", "minItems": 1, "maxItems": 2,
                            "items": {"type": ["string", "null"]}}}, "required": ["v"]})");
  EXPECT_FALSE(accepts_whole(*schema, R"({"v":[]})"));
  EXPECT_TRUE(accepts_whole(*schema, R"({"v":[null]})"));
  EXPECT_TRUE(accepts_whole(*schema, R"({"v":["a",null]})"));
  EXPECT_FALSE(accepts_whole(*schema, R"({"v":["a",null,"b"]})"));
  EXPECT_FALSE(accepts_whole(*schema, R"({"v":[1]})"));
}

// A discriminated union: the tag comes first and picks the variant; the variant's other
// properties then follow its own rules (and another variant's are refused).
TEST(JsonSchemaGrammar, ObjectAlternativesFollowTheirTag) {
  auto schema = compile(R"({"type": "object", "properties": {"x": {"anyOf": [
      {"type": "object", "properties": {"t": {"const": "a"}, "n": {"type": "integer"}}, "required": ["t", "n"]},
      {"type": "object", "properties": {"t": {"enum": ["ab", "b"]}, "s": {"type": "string"}}, "required": ["t"]},
      {"type": "string"}]}}, "required": ["x"]})");
  EXPECT_TRUE(accepts_whole(*schema, R"({"x":{"t":"a","n":1}})"));
  EXPECT_TRUE(accepts_whole(*schema, R"({"x":{"t":"ab","s":"q"}})"));
  EXPECT_TRUE(accepts_whole(*schema, R"({"x":{"t":"b"}})"));
  EXPECT_TRUE(accepts_whole(*schema, R"({"x":"text"})"));
  EXPECT_FALSE(accepts_whole(*schema, R"({"x":{"t":"a"}})"));         // n is required for "a"
  EXPECT_FALSE(accepts_whole(*schema, R"({"x":{"t":"ab","n":1}})"));  // n is the other variant's
  EXPECT_FALSE(accepts_whole(*schema, R"({"x":{"t":"c"}})"));
  EXPECT_FALSE(accepts_whole(*schema, R"({"x":{"n":1,"t":"a"}})"));  // the tag comes first
  EXPECT_FALSE(accepts_whole(*schema, R"({"x":{}})"));
}

// minLength / maxLength count code points: a multi-byte character and an escape are one each;
// a surrogate escape is refused where the length counts (an astral character is written as
// UTF-8 there), allowed elsewhere.
TEST(JsonSchemaGrammar, StringLengthsCountCharacters) {
  auto schema = compile(R"({"type": "object", "properties": {"s": {"type": "string", "minLength": 2, "maxLength": 3},
      "free": {"type": "string"}}, "required": ["s"]})");
  EXPECT_TRUE(accepts_whole(*schema, R"({"s":"ab"})"));
  EXPECT_TRUE(accepts_whole(*schema, "{\"s\":\"\xc3\xa9\xe6\x97\xa5\"}"));  // é日: 2
  EXPECT_TRUE(accepts_whole(*schema, R"({"s":"\n\u00e9x"})"));
  EXPECT_TRUE(accepts_whole(*schema, "{\"s\":\"a\xf0\x9f\x98\x80\"}"));  // a😀: 2
  EXPECT_FALSE(accepts_whole(*schema, R"({"s":"a"})"));
  EXPECT_FALSE(accepts_whole(*schema, R"({"s":"abcd"})"));
  EXPECT_FALSE(accepts_whole(*schema, R"({"s":"a\ud83d\ude00"})")) << "a surrogate escape where the length counts";
  EXPECT_TRUE(accepts_whole(*schema, R"({"s":"ab","free":"\ud83d\ude00"})"));
  JsonSchemaGrammar grammar(*schema);
  ASSERT_TRUE(grammar.accept(R"({"s":"a)"));
  EXPECT_EQ(grammar.plain_string_room(), 2u);
  ASSERT_TRUE(grammar.accept(R"(bc)"));
  EXPECT_EQ(grammar.plain_string_room(), 0u);
  EXPECT_FALSE(grammar.accept('d'));
}

// Integer bounds: every prefix accepted can still end inside them; the value ends only inside.
TEST(JsonSchemaGrammar, IntegerBoundsHoldForEveryPrefix) {
  auto schema = compile(R"({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1000,
      "exclusiveMaximum": 2500}, "m": {"type": "integer", "minimum": -40, "maximum": -3}}, "required": ["n", "m"]})");
  for (int n = -50; n <= 3000; ++n)
    for (int m : {-41, -40, -3, -2, 0}) {
      const std::string text = "{\"n\":" + std::to_string(n) + ",\"m\":" + std::to_string(m) + "}";
      EXPECT_EQ(accepts_whole(*schema, text), n >= 1000 && n < 2500 && m >= -40 && m <= -3) << text;
    }
  JsonSchemaGrammar grammar(*schema);
  ASSERT_TRUE(grammar.accept(R"({"n":)"));
  EXPECT_FALSE(JsonSchemaGrammar(grammar).accept('-'));
  EXPECT_FALSE(JsonSchemaGrammar(grammar).accept('0'));
  EXPECT_FALSE(JsonSchemaGrammar(grammar).accept('3'));  // 3, 3x, 3xx below; 3xxx at or above 2500
  EXPECT_TRUE(JsonSchemaGrammar(grammar).accept('2'));   // 2000-2499
  EXPECT_FALSE(JsonSchemaGrammar(grammar).accept("25"));
  EXPECT_FALSE(JsonSchemaGrammar(grammar).accept("1000000"));
}

// With TopLevel::Array the document is an array (tool_choice "required": a list of calls).// With TopLevel::Array the document is an array (tool_choice "required": a list of calls).
TEST(JsonSchemaGrammar, ReadsAnArrayAtTheTop) {
  auto schema = compile_json_schema(Json::parse(R"({"type": "array", "minItems": 1, "items": {"anyOf": [
      {"type": "object", "properties": {"name": {"const": "f"}, "arguments": {"type": "object", "properties": {
          "a": {"type": "integer"}}, "required": ["a"]}}, "required": ["name", "arguments"]},
      {"type": "object", "properties": {"name": {"const": "g"}, "arguments": {"type": "object", "properties": {}}},
       "required": ["name", "arguments"]}]}})"),
                                    {.top_level = TopLevel::Array});
  EXPECT_TRUE(accepts_whole(*schema, R"([{"name":"f","arguments":{"a":1}}])"));
  EXPECT_TRUE(accepts_whole(*schema, R"([ {"name": "g", "arguments": {}}, {"name":"f","arguments":{"a":2}} ])"));
  EXPECT_FALSE(accepts_whole(*schema, "[]"));
  EXPECT_FALSE(accepts_whole(*schema, R"([{"name":"g","arguments":{"a":1}}])"));
  EXPECT_FALSE(accepts_whole(*schema, R"({"name":"f","arguments":{"a":1}})"));
}

// Under maxLength the mask adds plain-string subtrees wholesale only while the string has room
// for the longest token: random walks over multi-character tokens never overrun the bound.
TEST(JsonSchemaConstraint, RandomWalksKeepStringLengths) {
  std::vector<std::string> vocabulary = {"{\"s\":\"", "a", "bc", "def", "ghij", "\\n", "\"", "\"}", "}", "</s>"};
  const int32_t eos = static_cast<int32_t>(vocabulary.size() - 1);
  vocabulary[static_cast<size_t>(eos)].clear();
  auto mask = std::make_shared<const JsonTokenMask>(vocabulary, std::vector<int32_t>{eos});
  auto schema = compile(R"({"type": "object", "properties": {"s": {"type": "string", "minLength": 2, "maxLength": 5}},
      "required": ["s"], "additionalProperties": false})");
  std::mt19937 random(11);
  int finished = 0;
  for (int walk = 0; walk < 300; ++walk) {
    JsonSchemaConstraint constraint(mask, schema);
    const testing::MaskWalk end = testing::walk_mask(*mask, constraint, vocabulary, eos, random, 20);
    if (!end.ended_on_eos) continue;
    const std::string value = Json::parse(end.text)["s"];
    EXPECT_GE(value.size(), 2u) << end.text;  // ASCII here: bytes are characters
    EXPECT_LE(value.size(), 5u) << end.text;
    ++finished;
  }
  EXPECT_GT(finished, 100);
}

// Random walks over the allowed bytes of a tiny vocabulary end, when the mask allows EOS, in
// text that is a whole document again for a fresh grammar and that nlohmann reads.
TEST(JsonSchemaConstraint, RandomWalksOverTheMaskEndInWholeDocuments) {
  std::vector<std::string> vocabulary = {"{", "}", "[", "]", ",", ":", " ", "\"", "a", "1", "-", "null", "true",
                                         "\"name\"", "\"tags\"", "\"n\"", "\"name\":\"", "\"}",
                                         // single letters: every key and literal can also be spelled byte by byte
                                         "n", "m", "e", "t", "g", "s", "l", "u", "r", "</s>"};
  const int32_t eos = static_cast<int32_t>(vocabulary.size() - 1);
  auto mask = std::make_shared<const JsonTokenMask>(vocabulary, std::vector<int32_t>{eos});
  auto schema = compile(R"({"type": "object", "properties": {"name": {"type": "string"}, "tags": {"type": "array",
      "maxItems": 3, "items": {"anyOf": [{"type": "integer"}, {"type": "null"}]}}, "n": {"type": "boolean"}},
      "required": ["name", "n"]})");
  std::mt19937 random(7);
  int finished = 0;
  for (int walk = 0; walk < 200; ++walk) {
    JsonSchemaConstraint constraint(mask, schema);
    const testing::MaskWalk end = testing::walk_mask(*mask, constraint, vocabulary, eos, random, 200);
    if (!end.ended_on_eos) continue;
    EXPECT_TRUE(constraint.complete());
    EXPECT_TRUE(accepts_whole(*schema, end.text)) << end.text;
    const Json document = Json::parse(end.text);
    EXPECT_TRUE(document["name"].is_string()) << end.text;
    EXPECT_TRUE(document["n"].is_boolean()) << end.text;
    ++finished;
  }
  EXPECT_GT(finished, 10);
}

}  // namespace
}  // namespace rackserve
