// compile_json_schema: what it refuses, each with a message naming the keyword and where,
// and what it accepts of the supported subset.
#include <gtest/gtest.h>

#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/json_schema_compile.h"

namespace rackserve {
namespace {

std::string refusal(std::string_view schema) {
  try {
    compile_json_schema(nlohmann::ordered_json::parse(schema));
  } catch (const JsonSchemaError& error) {
    return error.what();
  }
  return "";
}

TEST(JsonSchemaCompile, NamesTheUnsupportedKeyword) {
  EXPECT_NE(refusal(R"({"type":"object","properties":{"a":{"type":"integer","multipleOf":2}}})").find("'multipleOf'"),
            std::string::npos);
  EXPECT_NE(refusal(R"({"type":"object","properties":{"a":{"type":"number","minimum":0}}})").find("'minimum'"),
            std::string::npos);  // bounds are for integers
  EXPECT_NE(refusal(R"({"type":"object","patternProperties":{}})").find("'patternProperties'"), std::string::npos);
  EXPECT_NE(refusal(R"({"type":"object","properties":{"a":{"oneOf":[]}}})").find("'oneOf'"), std::string::npos);
  EXPECT_NE(refusal(R"({"type":"object","if":{}})").find("'if'"), std::string::npos);
  EXPECT_NE(refusal(R"({"type":"object","properties":{"a":{"type":"integer","minimum":3,"maximum":2}}})").find("/properties/a"),
            std::string::npos);
}

TEST(JsonSchemaCompile, RefusesWhatTheGrammarCannotGenerate) {
  EXPECT_NE(refusal(R"({"type":"array","items":{"type":"string"}})"), "");  // top level not an object
  EXPECT_NE(refusal(R"({"type":"object","properties":{"a":{"anyOf":[{"type":"object"},{"type":"object"}]}}})"), "");  // no tags
  EXPECT_NE(refusal(R"({"type":"object","additionalProperties":{"type":"string"}})"), "");
  EXPECT_NE(refusal(R"({"type":"object","required":["a"]})"), "");  // required but not declared
  EXPECT_NE(refusal(R"({"type":"object","properties":{"a":{"$ref":"#/$defs/missing"}}})"), "");
  EXPECT_NE(refusal(R"({"type":"object","properties":{"a":{"$ref":"http://x/y"}}})"), "");
  EXPECT_NE(refusal(R"({"$defs":{"a":{"$ref":"#/$defs/a"}},"type":"object","properties":{"a":{"$ref":"#/$defs/a"}}})"),
            "");  // a cycle that reads nothing
  EXPECT_NE(refusal(R"({"type":"object","properties":{"a":{"type":"array"}}})"), "");  // items missing
  EXPECT_NE(refusal(R"({"type":"object","properties":{"a":{"type":"string","enum":[1]}}})"), "");
  EXPECT_NE(refusal(R"({"type":"object","properties":{"a":{}}})"), "");
}

// Objects in one anyOf need a first property, required, under one key, whose const / enum
// values no two share: the grammar tells them apart by it.
TEST(JsonSchemaCompile, TellsObjectAlternativesApartOnlyByTheirFirstProperty) {
  auto two = [](std::string_view first, std::string_view second) {
    return refusal(fmt::format(R"({{"type":"object","properties":{{"a":{{"anyOf":[{},{}]}}}}}})", first, second));
  };
  const std::string cat = R"({"type":"object","properties":{"kind":{"const":"cat"},"n":{"type":"integer"}},"required":["kind"]})";
  EXPECT_EQ(two(cat, R"({"type":"object","properties":{"kind":{"enum":["dog","cow"]}},"required":["kind"]})"), "");
  const std::string same_tag = two(cat, R"({"type":"object","properties":{"kind":{"const":"cat"}},"required":["kind"]})");
  EXPECT_NE(same_tag.find("\"cat\" in two"), std::string::npos) << same_tag;
  EXPECT_NE(two(cat, R"({"type":"object","properties":{"type":{"const":"dog"}},"required":["type"]})"), "");
  EXPECT_NE(two(cat, R"({"type":"object","properties":{"kind":{"const":"dog"}}})"), "");  // tag not required
  EXPECT_NE(two(cat, R"({"type":"object","properties":{"kind":{"type":"string"}},"required":["kind"]})"), "");
  EXPECT_NE(two(cat, R"({"type":"object","properties":{}})"), "");
}

TEST(JsonSchemaCompile, TakesAnArrayAtTheTopOnlyWhenAskedTo) {
  const auto array = nlohmann::ordered_json::parse(R"({"type":"array","items":{"type":"integer"},"minItems":1})");
  EXPECT_THROW(compile_json_schema(array), JsonSchemaError);
  const auto schema = compile_json_schema(array, {.top_level = TopLevel::Array});
  EXPECT_EQ(schema->node(schema->root()).kind, SchemaKind::Array);
  EXPECT_THROW(compile_json_schema(nlohmann::ordered_json::parse(R"({"type":"object"})"), {.top_level = TopLevel::Array}),
               JsonSchemaError);
}

TEST(JsonSchemaCompile, AcceptsTheSubset) {
  EXPECT_EQ(refusal(R"({"type":"object","title":"t","description":"d","properties":{
      "a":{"type":["integer","number","null"]},
      "b":{"anyOf":[{"type":"string","format":"date"},{"$ref":"#/definitions/p"}]},
      "c":{"type":"array","items":{"enum":["x",1,true,null]},"minItems":0,"maxItems":4},
      "d":{"const":"k"}},"required":["a"],"additionalProperties":false,
      "definitions":{"p":{"type":"object","properties":{}}}})"),
            "");
}

}  // namespace
}  // namespace rackserve
